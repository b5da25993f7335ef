"""EG3D-style tri-plane generator and dual discriminator (Chan et al. 2022), pure PyTorch.

Re-implemented from the paper (§4: tri-plane representation, neural renderer, super-
resolution, dual discrimination, pose conditioning) and published facts about it; no code
is copied. Differences from NVlabs' release: plane size, latent size and SR factor are free,
the SR module never writes into ``image_raw``, and ``sample_mixed`` accepts pre-built planes
so a density grid builds the tri-planes once, not once per chunk.

Generator interface (``link_core.interface``): ``mapping(z, c) -> ws``,
``synthesis(ws, c) -> {"image" [B,3,H,W], "image_raw" [B,3,h,w], "image_depth" [B,1,h,w],
"image_alpha" [B,1,h,w]}``
with images in [-1, 1] and depth in world units (distance along the ray), plus
``sample_mixed(points, ws) -> {"sigma", "rgb", ...}`` for export and volumetric losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from eg3d_link.options import DEPTH_MODES, EG3DOptions
from eg3d_link.renderer import RenderOptions, density, render_rays
from link_core.data.cameras import CameraSpec, frontal_labels, ray_bundle, sample_poses
from stylegan_link.layers import FullyConnected
from stylegan_link.networks import (
    Discriminator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisNetwork,
    scale_style_affines,
)
from stylegan_link.resample import conv_per_channel

CAMERA_DIM = 25


def scheduled_render_resolution(opts: EG3DOptions, kimg: float) -> int:
    """EG3D's neural-rendering-resolution fade: initial -> final over the fade (even sizes)."""
    if opts.render_resolution_final <= 0:
        return opts.render_resolution
    fade = opts.render_resolution_fade_kimg
    t = 1.0 if fade <= 0 else min(kimg / fade, 1.0)
    res = opts.render_resolution + t * (opts.render_resolution_final - opts.render_resolution)
    return int(round(res / 2)) * 2


def _mirror_schedule(module: nn.Module, _keys: object) -> None:
    """After ``load_state_dict``: the Python mirror of the rendering-resolution buffer follows
    it (one read per load, not per forward)."""
    module._render_res = int(module.render_resolution)


def _mirror_d_schedule(module: nn.Module, keys: object) -> None:
    """:func:`_mirror_schedule` for the discriminator, with its blur."""
    _mirror_schedule(module, keys)
    module._blur_sigma = float(module.blur_sigma)


def sample_triplanes(
    planes: torch.Tensor, points: torch.Tensor, box_size: float, axes: str = "xy-xz-zy"
) -> torch.Tensor:
    """Bilinear features of ``points [B, P, 3]`` from ``planes [B, 3, C, H, W]``: ``[B, P, C]``.

    Each point is projected onto the three planes, sampled (zeros outside the box) and the
    three features are averaged (EG3D §4.1). ``axes`` names each plane's (width, height)
    coordinates: xy, xz and zy (the paper), or zx for the third plane (NVlabs' release; see
    :data:`eg3d_link.options.PLANE_AXES`).
    """
    B, _, C, H, W = planes.shape
    coords = points * (2.0 / box_size)  # the box spans grid_sample's [-1, 1]
    x, y, z = coords.unbind(-1)
    third = torch.stack([z, y], -1) if axes == "xy-xz-zy" else torch.stack([z, x], -1)
    grid = torch.stack([torch.stack([x, y], -1), torch.stack([x, z], -1), third], 1)  # [B, 3, P, 2]
    feats = F.grid_sample(
        planes.reshape(B * 3, C, H, W),
        grid.reshape(B * 3, 1, -1, 2).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B*3, C, 1, P]
    return feats.reshape(B, 3, C, -1).mean(1).transpose(1, 2)


INFERENCE_RAY_CHUNK = 2**16
"""Rays per chunk (over the batch) when rendering without gradients: memory stays bounded
at any resolution and batch (at 48 + 48 samples: ~6M points per chunk)."""
TRAIN_RAY_CHUNK = 2**14
"""Rays per checkpointed chunk (over the batch) with ``checkpoint_render``."""


def normalized_depth(t_sum: torch.Tensor, opacity: torch.Tensor, near: float, far: float):
    """NVlabs-style depth ``Σwt / Σw`` clamped to ``[near, far]`` (0/0 -> far), ``[..., 1]``."""
    depth = torch.nan_to_num(t_sum / opacity, nan=float("inf"))
    return depth.clamp(near, far)


class TriplaneDecoder(nn.Module):
    """Plane features -> raw density and features: ``[B, P, C] -> ([B, P, 1], [B, P, F])``.

    One softplus hidden layer (EG3D §4.1: "a lightweight decoder"); features go through a
    sigmoid widened by 0.1 % at both ends so 0 and 1 stay reachable with finite logits.
    """

    def __init__(self, in_channels: int, hidden: int, feature_channels: int) -> None:
        super().__init__()
        self.fc0 = FullyConnected(in_channels, hidden)
        self.fc1 = FullyConnected(hidden, 1 + feature_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, P, C = x.shape
        h = self.fc1(F.softplus(self.fc0(x.reshape(B * P, C)))).reshape(B, P, -1)
        return h[..., :1], torch.sigmoid(h[..., 1:]) * 1.002 - 0.001


class SuperResolution(nn.Module):
    """Feature image -> ``image`` by ``factor`` (2, 4 or 8) with StyleGAN2 blocks (EG3D §4.2).

    ``forward(features [B, F, h, w], ws [B, num_ws, w_dim]) -> [B, 3, h·factor, w·factor]``.
    The RGB skip path starts from the first 3 feature channels (the raw image), so at
    initialization the output is close to an upsampled ``image_raw``. Every block is
    modulated by the last w (as in EG3D), so SR does not add rows to ws.
    ``blocks``: ``[(channels, up), ...]`` per block (up 2 or 1); default log2(factor)
    upsampling blocks of ``channels``.
    """

    def __init__(
        self,
        feature_channels: int,
        channels: int,
        w_dim: int,
        in_resolution: int,
        factor: int,
        use_noise: bool = True,
        blocks: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__()
        self.in_resolution, self.factor = in_resolution, factor
        layout = [tuple(b) for b in blocks] or [(channels, 2)] * int(math.log2(factor))
        if math.prod(up for _, up in layout) != factor:
            raise ValueError(f"super-resolution blocks {layout} do not give factor {factor}")
        modules = []
        in_ch, res = feature_channels, in_resolution
        for out_ch, up in layout:
            res *= up
            modules.append(SynthesisBlock(in_ch, out_ch, w_dim, res, 3, use_noise=use_noise, up=up))
            in_ch = out_ch
        self.blocks = nn.ModuleList(modules)

    def forward(
        self, features: torch.Tensor, ws: torch.Tensor, noise_mode: str = "random"
    ) -> torch.Tensor:
        size = (self.in_resolution, self.in_resolution)
        if features.shape[-2:] != size:  # rendering resolution scheduled away from SR input
            features = F.interpolate(
                features, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        x, img = features, features[:, :3]
        w_last = ws[:, -1:]
        for block in self.blocks:
            rows = w_last.expand(-1, block.num_conv + block.num_torgb, -1)
            x, img = block(x, img, rows, noise_mode=noise_mode)
        return img


class TriplaneGenerator(nn.Module):
    """The EG3D generator: mapping -> StyleGAN2 backbone -> tri-planes -> renderer -> SR.

    Implements :class:`link_core.interface.Generator3D`."""

    is_3d = True

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        img_resolution: int,
        opts: EG3DOptions,
        mapping_layers: int = 2,
        mapping_lr_mult: float = 0.01,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        style_init: float = 1.0,
        depth_mode: str = "far",
    ) -> None:
        super().__init__()
        if depth_mode not in DEPTH_MODES:
            raise ValueError(f"depth_mode: expected one of {DEPTH_MODES}, got {depth_mode!r}")
        self.depth_mode = depth_mode  # see DEPTH_MODES
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, CAMERA_DIM
        self.img_resolution, self.img_channels = img_resolution, 3
        self.opts = opts
        self.render_opts = RenderOptions(
            ray_start=opts.ray_start,
            ray_end=opts.ray_end,
            box_size=opts.box_size,
            num_coarse=opts.num_coarse,
            num_fine=opts.num_fine,
            white_background=opts.white_background,
            clamp_box=opts.clamp_box,
        )
        self.camera: CameraSpec = opts.camera
        self.box_size = opts.box_size
        # Depth enters the link loss normalized to the ray range mapped onto [-1, 1] like the
        # images, so one λ means the same for colour and geometry.
        self.map_scales = {"image_depth": 2.0 / (opts.ray_end - opts.ray_start)}
        self.backbone = SynthesisNetwork(
            w_dim,
            opts.plane_resolution,
            3 * opts.plane_channels,
            channel_base,
            channel_max,
            use_noise,
            style_init,
        )
        self.num_ws = self.backbone.num_ws
        self.mapping_net = MappingNetwork(
            z_dim,
            CAMERA_DIM if opts.pose_cond else 0,
            w_dim,
            self.num_ws,
            mapping_layers,
            mapping_lr_mult,
        )
        self.decoder = TriplaneDecoder(
            opts.plane_channels, opts.decoder_hidden, opts.feature_channels
        )
        sr_in = img_resolution // opts.sr_factor
        self.superres = (
            SuperResolution(
                opts.feature_channels,
                opts.sr_channels,
                w_dim,
                sr_in,
                opts.sr_factor,
                use_noise and opts.sr_noise,
                opts.sr_blocks,
            )
            if opts.sr_factor > 1
            else None
        )
        # A buffer, so checkpoints and the EMA copy carry the scheduled value; its Python
        # mirror is what forward reads (reading a CUDA buffer would sync every call).
        self.register_buffer("render_resolution", torch.tensor(opts.render_resolution))
        self._render_res = int(opts.render_resolution)
        self.register_load_state_dict_post_hook(_mirror_schedule)
        # Memory controls (run-time settings, not architecture): rays per chunk (0: all at
        # once while training, INFERENCE_RAY_CHUNK pixels' worth without gradients) and
        # activation checkpointing of the renderer (recompute each chunk in backward).
        self.ray_chunk = 0
        self.checkpoint_render = False

    # -- schedule ---------------------------------------------------------------------
    def update_schedule(self, kimg: float) -> dict[str, float]:
        """EG3D's neural-rendering-resolution fade (constant without a final resolution)."""
        res = scheduled_render_resolution(self.opts, kimg)
        self.render_resolution.fill_(res)  # a Python number: no device sync per step
        self._render_res = res
        return {"render_resolution": float(res)}

    # -- interface --------------------------------------------------------------------
    def scale_style_inputs(self, axes: Sequence[int], scale: float) -> None:
        """Scale how strongly w axes ``axes`` drive every style (w -> style affine columns);
        see :func:`stylegan_link.networks.scale_style_affines`."""
        scale_style_affines(self, scale, axes)

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, camera ``c [B, 25]`` -> ``ws [B, num_ws, w_dim]``.

        In training mode each sample is conditioned on another sample's camera with
        probability ``swap_prob`` (EG3D §4.4), so the shape does not learn to follow the view.
        """
        cond = None
        if self.opts.pose_cond:
            if c is None:
                raise ValueError("mapping: this generator is pose-conditioned; pass camera c")
            cond = c
            if self.training and self.opts.swap_prob > 0 and c.shape[0] > 1:
                swap = torch.rand(c.shape[0], 1, device=c.device) < self.opts.swap_prob
                cond = torch.where(swap, c.roll(1, 0), c)
        return self.mapping_net(z, cond, truncation_psi, truncation_cutoff, update_emas)

    def planes(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """``ws`` -> tri-planes ``[B, 3, C, H, W]``."""
        p = self.backbone(ws, noise_mode=noise_mode)
        return p.reshape(p.shape[0], 3, self.opts.plane_channels, *p.shape[-2:])

    def field(self, planes: torch.Tensor, points: torch.Tensor):
        """``points [B, P, 3]`` -> (raw σ ``[B, P, 1]``, features ``[B, P, F]`` in [0, 1])."""
        return self.decoder(
            sample_triplanes(planes, points, self.opts.box_size, self.opts.plane_axes)
        )

    def sample_mixed(
        self,
        points: torch.Tensor,
        ws: torch.Tensor,
        planes: torch.Tensor | None = None,
        noise_mode: str = "const",
    ) -> dict[str, torch.Tensor]:
        """Query the field without rendering: ``points [B, P, 3]`` (world units) ->
        ``sigma`` (activated density, zero outside the box when clamped) ``[B, P, 1]``,
        ``sigma_raw`` ``[B, P, 1]``, ``rgb`` ``[B, P, 3]`` in [0, 1], ``features [B, P, F]``.
        Pass ``planes`` (from :meth:`planes`) to reuse them across chunks of points."""
        if planes is None:
            planes = self.planes(ws, noise_mode)
        raw, feat = self.field(planes, points)
        return {
            "sigma": density(raw, points, self.render_opts),
            "sigma_raw": raw,
            "rgb": feat[..., :3],
            "features": feat,
        }

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        render_resolution: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render ws from cameras ``c [B, 25]``.

        ``noise_mode != 'random'`` also makes ray sampling deterministic (bin centres), so
        renders are a function of (ws, c) only: the link loss and edits compare them.
        """
        if c is None or c.shape[-1] != CAMERA_DIM:
            raise ValueError(f"synthesis: expected camera labels c [B, {CAMERA_DIM}]")
        B = ws.shape[0]
        res = int(render_resolution or self._render_res)
        planes = self.planes(ws, noise_mode)
        origins, dirs = ray_bundle(c.to(ws.dtype), res)
        out = self._render(planes, origins, dirs, deterministic=noise_mode != "random")
        feat = out["features"].transpose(1, 2).reshape(B, -1, res, res) * 2 - 1  # to [-1, 1]
        image_raw = feat[:, :3]
        depth = out["depth"].transpose(1, 2).reshape(B, 1, res, res)
        alpha = out["opacity"].transpose(1, 2).reshape(B, 1, res, res)
        if self.superres is None:
            image = image_raw
            if res != self.img_resolution:
                image = F.interpolate(
                    image_raw,
                    size=(self.img_resolution,) * 2,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
        else:
            image = self.superres(feat, ws, noise_mode=noise_mode)
        return {"image": image, "image_raw": image_raw, "image_depth": depth, "image_alpha": alpha}

    def _render(
        self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, deterministic: bool
    ) -> dict[str, torch.Tensor]:
        """:func:`render_rays` over chunks of rays (bounded memory; rays are independent, so
        deterministic renders do not depend on the chunking), each chunk optionally
        recomputed in backward (``checkpoint_render``) instead of keeping its activations."""
        B, R, _ = origins.shape
        grad = torch.is_grad_enabled()
        checkpointed = grad and self.checkpoint_render
        chunk = self.ray_chunk
        if not chunk and (checkpointed or not grad):
            chunk = max(1, (INFERENCE_RAY_CHUNK if not grad else TRAIN_RAY_CHUNK) // B)
        chunk = chunk or R

        ro = self.render_opts
        normalized = self.depth_mode == "nvlabs"

        def run(planes: torch.Tensor, o: torch.Tensor, d: torch.Tensor):
            def field(pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                raw, feat = self.field(planes, pts)
                if not normalized:
                    return raw, feat
                # One more feature: each sample's depth t along its ray, so compositing
                # yields Σwᵢtᵢ exactly (not recovered from the far-filled depth, which
                # cancels badly where Σw is tiny). pts: [B, R·S, 3] in ray order.
                p = pts.reshape(B, o.shape[1], -1, 3)
                t = ((p - o[:, :, None]) * d[:, :, None]).sum(-1)
                return raw, torch.cat([feat, t.reshape(B, -1, 1)], -1)

            out = render_rays(field, o, d, ro, deterministic=deterministic)
            feats, depth, opacity = out["features"], out["depth"], out["opacity"]
            if normalized:
                background = 1.0 if ro.white_background else 0.0
                t_sum = feats[..., -1:] - (1 - opacity) * background
                feats = feats[..., :-1]
                depth = normalized_depth(t_sum, opacity, ro.ray_start, ro.ray_end)
            return feats, depth, opacity

        parts = []
        for i in range(0, R, chunk):
            o, d = origins[:, i : i + chunk], dirs[:, i : i + chunk]
            if checkpointed:
                parts.append(
                    torch.utils.checkpoint.checkpoint(run, planes, o, d, use_reentrant=False)
                )
            else:
                parts.append(run(planes, o, d))
        feats, depth, opacity = (torch.cat(p, 1) for p in zip(*parts, strict=True))
        return {"features": feats, "depth": depth, "opacity": opacity}

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
    ) -> dict[str, torch.Tensor]:
        return self.synthesis(self.mapping(z, c, truncation_psi), c, noise_mode=noise_mode)

    # -- cameras for tools ------------------------------------------------------------
    def sample_cameras(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, 25]`` cameras from the model's pose distribution (metrics, samples)."""
        return sample_poses(n, self.opts.pose_mode, self.camera, generator=generator)

    def default_cameras(self, n: int) -> torch.Tensor:
        """``[n, 25]`` frontal cameras (edits, generate)."""
        return frontal_labels(n, self.camera)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` (reflect padding), radius 3σ."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    pad = min(radius, x.shape[-1] - 1)
    x = F.pad(x, [pad, pad, pad, pad], mode="reflect")
    if pad < radius:  # tiny images: pad the rest with zeros
        x = F.pad(x, [radius - pad] * 4)
    x = conv_per_channel(x, k.view(1, -1))
    return conv_per_channel(x, k.view(-1, 1))


class DualDiscriminator(nn.Module):
    """EG3D's dual discriminator (§4.3): ``image`` and the upsampled ``image_raw``, stacked
    to 6 channels, through a pose-conditioned StyleGAN2 D.

    Real images arrive without ``image_raw``: it is derived by area-downsampling ``image``
    to the current rendering resolution, so reals and fakes go through the same resampling
    (and R1's gradient flows through it). ``blur_sigma`` blurs both inputs early in
    training (EG3D: fades over 200 kimg) so D cannot win on high frequencies at once.
    ``cmap_layers``: layers of the camera-label MLP, the embedding included (NVlabs: 1 + 8).
    """

    def __init__(
        self,
        img_resolution: int,
        opts: EG3DOptions,
        channel_base: int,
        channel_max: int,
        mbstd_group: int = 4,
        cmap_layers: int = 2,
    ) -> None:
        super().__init__()
        self.opts = opts
        self.c_dim, self.img_resolution = CAMERA_DIM, img_resolution
        self.net = Discriminator(
            CAMERA_DIM,
            img_resolution,
            6 if opts.dual_d else 3,
            channel_base,
            channel_max,
            mbstd_group,
            cmap_layers=cmap_layers,
        )
        self.register_buffer("render_resolution", torch.tensor(opts.render_resolution))
        self.register_buffer("blur_sigma", torch.tensor(float(opts.blur_sigma)))
        # Python mirrors of the buffers for forward (no device sync per call).
        self._render_res, self._blur_sigma = int(opts.render_resolution), float(opts.blur_sigma)
        self.register_load_state_dict_post_hook(_mirror_d_schedule)

    def update_schedule(self, kimg: float) -> dict[str, float]:
        o = self.opts
        fade = 0.0 if o.blur_fade_kimg <= 0 else max(0.0, 1.0 - kimg / o.blur_fade_kimg)
        self._render_res = scheduled_render_resolution(o, kimg)
        self._blur_sigma = o.blur_sigma * fade
        self.render_resolution.fill_(self._render_res)
        self.blur_sigma.fill_(self._blur_sigma)
        return {"blur_sigma": self._blur_sigma}

    def forward(self, outputs: dict[str, torch.Tensor], c: torch.Tensor | None = None):
        img = outputs["image"]
        x = img
        if self.opts.dual_d:
            raw = outputs.get("image_raw")
            if raw is None:
                r = self._render_res
                raw = img if r == img.shape[-1] else F.interpolate(img, size=(r, r), mode="area")
            if raw.shape[-2:] != img.shape[-2:]:
                raw = F.interpolate(raw, size=img.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([img, raw], 1)
        sigma = self._blur_sigma
        if sigma > 0:
            x = gaussian_blur(x, sigma)
        return self.net({"image": x}, c)
