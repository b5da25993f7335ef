"""Link regions: where a link's pixels are, per sample (``[B, 1, H, W]`` masks in [0, 1]).

Fixed boxes (the paper's eyes / half-image regions), per-sample masks from a provider (the
paper's semantic regions) and boxes in object space for 3-D-aware backbones. Built from
config specs by :func:`build_region`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from link_core.data.cameras import ray_bundle_hw, unproject_depth
from link_core.errors import ConfigError

Outputs = dict[str, torch.Tensor]
RenderFn = Callable[[torch.Tensor, torch.Tensor | None], Outputs]
"""``render(ws [B, num_ws, w_dim], c [B, c_dim] | None) -> {"image": [B, 3, H, W], ...}``."""


class Region(Protocol):
    """Gives the link's mask for a batch of generated outputs.

    ``region(outputs, c) -> [B, 1, H, W]`` in [0, 1] at the resolution of ``outputs["image"]``.
    Computed without gradients; it may depend on the instance (semantic masks) or on the
    camera (3-D regions).
    """

    def __call__(self, outputs: Outputs, c: torch.Tensor | None) -> torch.Tensor: ...


MaskProvider = Callable[[Outputs, "torch.Tensor | None"], torch.Tensor]


def _box_coverage(lo: float, hi: float, n: int, device: torch.device) -> torch.Tensor:
    """Fraction of each of ``n`` pixel intervals ``[k/n, (k+1)/n]`` covered by ``[lo, hi]``."""
    edges = torch.arange(n + 1, device=device, dtype=torch.float32) / n
    left = torch.clamp(edges[:-1], min=lo)
    right = torch.clamp(edges[1:], max=hi)
    return torch.clamp(right - left, min=0.0) * n


@dataclass(frozen=True)
class BoxRegion:
    """One or several fixed normalized boxes ``(x0, y0, x1, y1)``, the same for every instance.

    Pixels are weighted by the fraction of their area inside a box, so a box on the pixel
    grid gives a binary mask and a box between pixels gives a soft border. Several boxes are
    united with ``max``.
    """

    boxes: tuple[tuple[float, float, float, float], ...]

    def mask(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[1, 1, H, W]`` coverage mask."""
        device = torch.device(device)
        out = torch.zeros(height, width, device=device)
        for x0, y0, x1, y1 in self.boxes:
            cov_y = _box_coverage(y0, y1, height, device)
            cov_x = _box_coverage(x0, x1, width, device)
            out = torch.maximum(out, cov_y[:, None] * cov_x[None, :])
        return out[None, None]

    def __call__(self, outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor:
        image = outputs["image"]
        m = self.mask(image.shape[-2], image.shape[-1], image.device)
        return m.expand(image.shape[0], 1, -1, -1)


@dataclass(frozen=True)
class MaskRegion:
    """Per-sample masks from a provider (a segmenter, part labels, a colour rule).

    The provider sees the generated outputs (detached) and returns ``[B, 1, H, W]`` in [0, 1]:
    the paper's semantic links, whose region moves from instance to instance.
    """

    name: str
    provider: MaskProvider

    def __call__(self, outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor:
        image = outputs["image"]
        with torch.no_grad():
            m = self.provider({k: v.detach() for k, v in outputs.items()}, c)
        if m.dim() != 4 or m.shape[0] != image.shape[0] or m.shape[1] != 1:
            raise ValueError(
                f"mask provider '{self.name}' returned shape {tuple(m.shape)}, "
                f"expected [{image.shape[0]}, 1, H, W]"
            )
        return resize_mask(m.float().clamp(0, 1), image.shape[-2:])


@dataclass(frozen=True)
class Box3DRegion:
    """One or more boxes in object space ``(x0, y0, z0, x1, y1, z1)`` (world units; 3-D-aware
    backbones); a point belongs to the region when it lies in any of them.

    The mask of a view is where the rendered surface point — the camera ray at the rendered
    ``image_depth`` — lies inside the region, so the link owns the same part of the object
    from every angle (beyond the paper, whose regions are fixed in the image). Rays that hit
    nothing report the far bound as depth, which lies outside any box inside the volume.
    Several boxes make a part of separate pieces (the two eyes) without owning the space
    between them (the bridge of the nose, which another link owns).

    ``seen`` (config ``box3d_seen``): the mask is instead every pixel whose ray passes
    through a box before it meets the surface: the box as the camera sees it, unless the
    object stands in front of it. Such a mask does not depend on where the part's own
    surface lies, so fine-tuning cannot empty it by moving that surface out of the box (with
    ``box3d``, the demo's eye and nose masks shrank to half the base's area that way:
    ``bench/edit_share.py``); from the side it also owns the background just in front of
    the part, where the part's silhouette moves.
    """

    boxes: tuple[tuple[float, float, float, float, float, float], ...]
    seen: bool = False

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """``points [..., 3]`` -> bool ``[...]``."""
        boxes = points.new_tensor(self.boxes)  # [K, 6]
        p = points[..., None, :]  # [..., 1, 3]
        return ((p >= boxes[:, :3]) & (p <= boxes[:, 3:])).all(-1).any(-1)

    def __call__(self, outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor:
        depth = outputs.get("image_depth")
        if depth is None or c is None:
            raise ValueError("a box3d region needs 'image_depth' and cameras (a 3-D backbone)")
        with torch.no_grad():
            if self.seen:
                mask = self._seen(c.to(depth.dtype), depth.detach())
            else:
                points = unproject_depth(c.to(depth.dtype), depth.detach())  # [B, h, w, 3]
                mask = self.contains(points)[:, None].to(depth.dtype)
        return resize_mask(mask, outputs["image"].shape[-2:])

    def _seen(self, c: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``[B, 1, h, w]``: rays that enter a box (slab test) no farther than the surface."""
        b, _, h, w = depth.shape
        origins, dirs = ray_bundle_hw(c, h, w)  # [B, P, 3]
        boxes = depth.new_tensor(self.boxes)  # [K, 6]
        o, d = origins[:, :, None], dirs[:, :, None]  # [B, P, 1, 3]
        d = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        t0, t1 = (boxes[:, :3] - o) / d, (boxes[:, 3:] - o) / d  # [B, P, K, 3]
        enter = torch.minimum(t0, t1).amax(-1)  # [B, P, K]
        leave = torch.maximum(t0, t1).amin(-1)
        surface = depth.reshape(b, h * w, 1)
        hit = (leave >= enter.clamp(min=0)) & (enter <= surface)
        return hit.any(-1).reshape(b, 1, h, w).to(depth.dtype)


def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``[B, 1, h, w]`` masks to ``size``: area averaging down, bilinear up."""
    size = (int(size[0]), int(size[1]))
    if tuple(mask.shape[-2:]) == size:
        return mask
    if mask.shape[-2] >= size[0] and mask.shape[-1] >= size[1]:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _parse_box(box: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ConfigError(f"{where}: a box is [x0, y0, x1, y1], got {box!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        raise ConfigError(f"{where}: box values must be numbers, got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ConfigError(f"{where}: box values must be finite, got {list(box)}")
    if min(x0, y0, x1, y1) < 0.0 or max(x0, y0, x1, y1) > 1.0:
        raise ConfigError(f"{where}: box {list(box)} lies outside [0, 1]")
    if x1 <= x0 or y1 <= y0:
        raise ConfigError(f"{where}: box {list(box)} is empty (needs x0 < x1 and y0 < y1)")
    return (x0, y0, x1, y1)


def _parse_box3d(box: Any, where: str) -> tuple[float, float, float, float, float, float]:
    if not isinstance(box, list | tuple) or len(box) != 6:
        raise ConfigError(f"{where}: a 3-D box is [x0, y0, z0, x1, y1, z1], got {box!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        raise ConfigError(f"{where}: box values must be numbers, got {box!r}")
    v = tuple(float(x) for x in box)
    if not all(math.isfinite(x) for x in v):
        raise ConfigError(f"{where}: box values must be finite, got {list(box)}")
    if any(v[i + 3] <= v[i] for i in range(3)):
        raise ConfigError(f"{where}: box {list(box)} is empty (needs x0 < x1, y0 < y1, z0 < z1)")
    return v  # type: ignore[return-value]


def build_region(
    spec: Any,
    where: str,
    providers: Mapping[str, MaskProvider] | None = None,
) -> Region:
    """A region from ``{box: [...]}``, ``{boxes: [[...], ...]}``, ``{mask: NAME}``,
    ``{box3d: [x0, y0, z0, x1, y1, z1]}`` (object space; needs a 3-D-aware backbone; a list
    of such boxes is their union) or ``{box3d_seen: ...}`` (the same boxes, masked where the
    camera sees them: :class:`Box3DRegion`'s ``seen``).

    ``providers`` maps mask names to providers;
    """
    if not isinstance(spec, dict) or len(spec) != 1:
        kinds = [
            "box",
            "boxes",
            "mask",
            "box3d",
            "box3d_seen",
        ]
        raise ConfigError(f"{where}: expected exactly one of {kinds}, got {spec!r}")
    ((kind, value),) = spec.items()
    if kind == "box":
        return BoxRegion((_parse_box(value, f"{where}.box"),))
    if kind == "boxes":
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{where}.boxes: expected a non-empty list of boxes")
        return BoxRegion(tuple(_parse_box(b, f"{where}.boxes[{i}]") for i, b in enumerate(value)))
    if kind == "mask":
        if callable(value):
            return MaskRegion(getattr(value, "__name__", "mask"), value)
        providers = providers or {}
        if not isinstance(value, str) or value not in providers:
            known = ", ".join(sorted(providers)) or "none configured"
            raise ConfigError(f"{where}.mask: unknown mask provider {value!r} (available: {known})")
        return MaskRegion(value, providers[value])
    if kind in ("box3d", "box3d_seen"):
        seen = kind == "box3d_seen"
        if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple):
            boxes = [_parse_box3d(b, f"{where}.{kind}[{i}]") for i, b in enumerate(value)]
            return Box3DRegion(tuple(boxes), seen)
        return Box3DRegion((_parse_box3d(value, f"{where}.{kind}"),), seen)
    known = [
        "box",
        "boxes",
        "mask",
        "box3d",
        "box3d_seen",
    ]
    raise ConfigError(f"{where}: unknown region kind '{kind}' (known: {', '.join(known)})")
