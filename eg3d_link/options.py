"""EG3D's settings, read strictly from the config's ``model.extra`` section.

The shared ``model`` section keeps what both backbones have (resolution, z/w sizes,
mapping, channel budget, style_init); everything tri-plane, rendering and camera specific
lives here, typed and documented, with unknown keys refused like everywhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from link_core.data.cameras import CameraSpec
from link_core.errors import ConfigError
from link_core.train.config import dataclass_from_dict

SR_FACTORS = (1, 2, 4, 8)
DEPTH_MODES = ("far", "nvlabs")
PLANE_AXES = ("xy-xz-zy", "xy-xz-zx")
"""Which two coordinates each tri-plane is indexed by. ``xy-xz-zy`` is the paper's (§4.1);
``xy-xz-zx`` is what NVlabs' released code computes for its third plane (its projection
matrices are inverted before use), so imported EG3D checkpoints need it."""

LIMITS = {
    "plane_resolution": 2048,
    "plane_channels": 1024,
    "decoder_hidden": 4096,
    "feature_channels": 1024,
    "render_resolution": 1024,
    "render_resolution_final": 1024,
    "sr_channels": 4096,
    "num_coarse": 1024,
    "num_fine": 1024,
    "density_reg_points": 1 << 20,
}
"""Upper bounds of the sizes that allocate memory (NVlabs' EG3D: 256² planes of 32 channels,
rendering at 128², 48 + 48 samples): a value past one is a one-line error naming the key."""


@dataclass
class EG3DOptions:
    plane_resolution: int = 32
    """Tri-plane size: the resolution of the StyleGAN2 backbone (EG3D: 256)."""
    plane_channels: int = 16
    """Channels per plane; the backbone makes 3 × this many (EG3D: 32)."""
    decoder_hidden: int = 32
    """Hidden width of the decoder MLP (EG3D: 64)."""
    feature_channels: int = 16
    """Features the decoder emits and the renderer composites; the first 3 are RGB (EG3D: 32)."""
    render_resolution: int = 32
    """Neural rendering resolution: ``image_raw`` and ``image_depth`` are this size."""
    render_resolution_final: int = 0
    """If > 0, fade the rendering resolution to this over ``render_resolution_fade_kimg``
    (EG3D's 64 → 128 fine-tuning)."""
    render_resolution_fade_kimg: float = 0.0
    """kimg over which the rendering resolution fades to ``render_resolution_final``."""
    sr_factor: int = 0
    """Super-resolution factor 1, 2, 4 or 8; ``image`` is ``model.resolution``, the SR input
    ``model.resolution / sr_factor``. 0: ``model.resolution / render_resolution``."""
    sr_channels: int = 64
    """Channels of the super-resolution blocks."""
    sr_blocks: list[list[int]] = field(default_factory=list)
    """Explicit super-resolution layout: ``[[channels, up], ...]`` per StyleGAN2 block
    (``up`` 2 doubles the size, 1 keeps it; the ups multiply to ``sr_factor``). Empty:
    log2(sr_factor) upsampling blocks of ``sr_channels``. NVlabs' 8XDC module is
    ``[[256, 2], [128, 2]]`` on a 128² input; their 2X/4X modules start with a keep-size block."""
    sr_noise: bool = True
    """Noise inputs in the super-resolution blocks (NVlabs' EG3D runs SR without noise)."""
    plane_axes: str = "xy-xz-zy"
    """Tri-plane coordinate layout (:data:`PLANE_AXES`)."""
    ray_start: float = 2.25
    """Near bound of every ray (world units from the camera)."""
    ray_end: float = 3.3
    """Far bound; also the depth reported where a ray hits nothing."""
    box_size: float = 1.0
    """Edge of the cube ``[-s/2, s/2]³`` the tri-planes span (world units)."""
    num_coarse: int = 48
    """Stratified samples per ray."""
    num_fine: int = 48
    """Importance samples per ray."""
    depth_mode: str = "far"
    """What ``image_depth`` reports where a ray is not opaque (:data:`DEPTH_MODES`): ``far``
    blends toward ``ray_end`` (smooth where a surface fades out); ``nvlabs`` is NVIDIA's
    Σwᵢtᵢ / Σwᵢ clamped to the ray range (imported EG3D snapshots use it)."""
    white_background: bool = False
    """Composite onto white (feature value 1) instead of black (0)."""
    clamp_box: bool = True
    """Zero density outside the box (no floaters, clean silhouettes early)."""
    camera_radius: float = 2.7
    """Default camera distance from the pivot (world units; EG3D FFHQ: 2.7)."""
    camera_fov_deg: float = 18.837
    """Default camera field of view in degrees (EG3D FFHQ: 18.837, focal 4.2647)."""
    camera_pivot: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.2])
    """Default camera for renders, edits and metrics (look-at pivot, world units)."""
    pose_mode: str = "frontal"
    """Camera distribution for metrics and samples: ``frontal`` (FFHQ-like) or ``orbit``."""
    pose_cond: bool = True
    """Generator pose conditioning: the camera label also feeds the mapping network."""
    swap_prob: float = 0.5
    """Probability of conditioning the mapping on another sample's camera (EG3D: 0.5–0.8)."""
    density_reg: float = 0.25
    """Weight of the density regularizer (L1 between σ at nearby points); 0: off."""
    density_reg_interval: int = 4
    """Apply the density regularizer every N generator steps (lazy, scaled by N)."""
    density_reg_points: int = 1000
    """Random points per sample the density regularizer compares."""
    density_reg_offset: float = 0.004
    """Distance (world units) to the perturbed point each σ is compared with."""
    dual_d: bool = True
    """Discriminator sees ``image`` and the upsampled ``image_raw`` (6 channels)."""
    blur_sigma: float = 0.0
    """Initial Gaussian blur (pixels) of D's inputs, fading to 0 over ``blur_fade_kimg``."""
    blur_fade_kimg: float = 200.0
    """kimg over which D's input blur fades to 0 (EG3D: 200)."""

    @property
    def camera(self) -> CameraSpec:
        return CameraSpec(self.camera_radius, self.camera_fov_deg, tuple(self.camera_pivot))


FINETUNE_FREE = frozenset(
    {
        "render_resolution",
        "render_resolution_final",
        "render_resolution_fade_kimg",
        "num_coarse",
        "num_fine",
        "blur_sigma",
        "blur_fade_kimg",
        "density_reg",
        "density_reg_interval",
        "density_reg_points",
        "density_reg_offset",
        "swap_prob",
        "pose_mode",
        "camera_radius",
        "camera_fov_deg",
        "camera_pivot",
    }
)
"""``model.extra`` keys a fine-tune may change (``train.init``): the rendering resolution and
ray samples (the super-resolution input size is fixed, renders are resized to it), D's blur,
the density regularizer, pose swapping and the default camera. The rest is architecture and
must equal the weights' own."""


def extra_defaults() -> dict[str, Any]:
    """Every ``model.extra`` key with its default (what a stored ``extra`` leaves out)."""
    return dataclasses.asdict(EG3DOptions())


def _sr_layout(opts: EG3DOptions, w: str) -> None:
    """Check ``sr_blocks`` and derive ``sr_factor`` from it."""
    factor = 1
    for i, block in enumerate(opts.sr_blocks):
        if (
            not isinstance(block, (list, tuple))
            or len(block) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in block)
            or block[0] <= 0
            or block[1] not in (1, 2)
        ):
            raise ConfigError(
                f"{w}.sr_blocks[{i}]: expected [channels > 0, up 1 or 2], got {block}"
            )
        factor *= block[1]
    if opts.sr_factor not in (0, factor):
        raise ConfigError(
            f"{w}.sr_factor: {opts.sr_factor} disagrees with sr_blocks, whose ups give {factor}"
        )
    opts.sr_factor = factor


def parse_options(extra: dict[str, Any], resolution: int) -> EG3DOptions:
    """Typed options from ``model.extra`` with value checks (ConfigError naming the key)."""
    opts = dataclass_from_dict(EG3DOptions, extra or {}, "model.extra")
    w = "model.extra"
    if opts.depth_mode not in DEPTH_MODES:
        raise ConfigError(f"{w}.depth_mode: expected one of {DEPTH_MODES}, got {opts.depth_mode!r}")
    if opts.plane_axes not in PLANE_AXES:
        raise ConfigError(f"{w}.plane_axes: expected one of {PLANE_AXES}, got {opts.plane_axes!r}")
    if opts.sr_blocks:
        _sr_layout(opts, w)
    if opts.sr_factor == 0:
        if resolution % opts.render_resolution:
            raise ConfigError(
                f"{w}.render_resolution ({opts.render_resolution}) must divide "
                f"model.resolution ({resolution})"
            )
        opts.sr_factor = resolution // opts.render_resolution
    if opts.sr_factor not in SR_FACTORS:
        raise ConfigError(f"{w}.sr_factor: expected one of {SR_FACTORS}, got {opts.sr_factor}")
    if resolution % opts.sr_factor or resolution // opts.sr_factor < 4:
        raise ConfigError(f"{w}.sr_factor: {opts.sr_factor} does not divide {resolution}")
    if len(opts.camera_pivot) != 3:
        raise ConfigError(f"{w}.camera_pivot: expected [x, y, z], got {opts.camera_pivot}")
    if opts.pose_mode not in ("frontal", "orbit"):
        raise ConfigError(f"{w}.pose_mode: expected frontal or orbit, got {opts.pose_mode!r}")
    if not 0 <= opts.swap_prob <= 1:
        raise ConfigError(f"{w}.swap_prob: must be in [0, 1], got {opts.swap_prob}")
    if not 0 < opts.ray_start < opts.ray_end:
        raise ConfigError(f"{w}: need 0 < ray_start < ray_end")
    positive = (
        "plane_resolution",
        "plane_channels",
        "decoder_hidden",
        "render_resolution",
        "sr_channels",
        "density_reg_interval",
        "density_reg_points",
    )
    for key in positive:
        if getattr(opts, key) <= 0:
            raise ConfigError(f"{w}.{key}: must be positive, got {getattr(opts, key)}")
    for key, limit in LIMITS.items():
        if getattr(opts, key) > limit:
            raise ConfigError(f"{w}.{key}: {getattr(opts, key)} is more than the limit {limit}")
    if opts.feature_channels < 3:
        raise ConfigError(
            f"{w}.feature_channels: needs at least 3 (RGB), got {opts.feature_channels}"
        )
    if opts.num_coarse < 2 or opts.num_fine < 0:
        raise ConfigError(f"{w}: need num_coarse >= 2 and num_fine >= 0")
    return opts
