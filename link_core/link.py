"""The LinkGAN regularizer (paper §3.2, eqs. 3–6), shared by every backbone.

A *link* ties a set of axes of w to a region of the image. For each link i we perturb w
on the link's axes (x₁) and on the complement (x₂) and penalize

    L_i  = ‖M_i  ⊙ (x₂ − x)‖²     (eq. 3: the region must not move when the rest moves)
    L_iᶜ = ‖M_iᶜ ⊙ (x₁ − x)‖²     (eq. 4: the rest must not move when the link moves)
    L_reg = Σ_i λ₁·L_i + λ₂·L_iᶜ  (eqs. 5, 6)

Normalization (so λ means the same at every resolution and region size): each squared norm
is divided by the mask's mass times the channel count, i.e. it is the *mean squared change
per masked pixel and channel*, averaged over the batch. A sample whose mask is empty adds 0.

The loss is computed on any set of output maps (``image`` for 2D; EG3D adds ``image_raw``
and a normalized ``image_depth``), each with its own weight; the region's mask is made at
the resolution of ``image`` and resized to each map.

Everything here is a pure function of tensors and a render callable: schedules, intervals
and gains live in the training loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from link_core.cameras import ray_bundle_hw, unproject_depth
from link_core.config import LOSS_FORMS
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


@dataclass(frozen=True)
class Link:
    """A link: a name, the indices of w it owns, and the region they control.

    ``weight`` multiplies this link's terms in the loss (1: the paper's equal weights; a
    small region such as a nose gets little gradient from a mean over its few pixels).
    """

    name: str
    axes: tuple[int, ...]
    region: Region
    weight: float = 1.0

    def axis_mask(self, w_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[w_dim]`` with 1 on the link's axes and 0 elsewhere."""
        m = torch.zeros(w_dim, device=device)
        m[list(self.axes)] = 1.0
        return m


# ----------------------------------------------------------------------------------------
# Building links from config specs.


def parse_axes(spec: Any, where: str) -> tuple[int, ...]:
    """Axes from config: ``[start, stop]`` (a half-open range), ``"a:b"``, a list of indices
    (any length other than two), or ``{indices: [...]}`` (any length, including two)."""
    if isinstance(spec, dict):
        if set(spec) != {"indices"}:
            raise ConfigError(f"{where}.axes: expected {{indices: [...]}}, got {spec!r}")
        spec = spec["indices"]
        values = list(spec) if isinstance(spec, list | tuple) else [spec]
    elif isinstance(spec, str) and ":" in spec:
        try:
            a, b = (int(s) for s in spec.split(":"))
        except ValueError:
            raise ConfigError(f"{where}.axes: cannot parse range {spec!r}") from None
        values = list(range(a, b))
    elif isinstance(spec, list | tuple) and len(spec) == 2:
        a, b = spec
        if not (isinstance(a, int) and isinstance(b, int)) or b <= a:
            raise ConfigError(f"{where}.axes: range [start, stop] needs integers start < stop")
        values = list(range(a, b))
    elif isinstance(spec, list | tuple):
        values = list(spec)
    else:
        raise ConfigError(f"{where}.axes: expected [start, stop] or a list of indices")
    if not values:
        raise ConfigError(f"{where}.axes: no axes")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}.axes: indices must be integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.axes: repeated indices")
    return tuple(sorted(values))


def _parse_box(box: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ConfigError(f"{where}: a box is [x0, y0, x1, y1], got {box!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        raise ConfigError(f"{where}: box values must be numbers, got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
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
    if any(v[i + 3] <= v[i] for i in range(3)):
        raise ConfigError(f"{where}: box {list(box)} is empty (needs x0 < x1, y0 < y1, z0 < z1)")
    return v  # type: ignore[return-value]


RegionFactory = Callable[[Any, str], Region]
"""Builds a region from its config value and the config path (for messages)."""


def build_region(
    spec: Any,
    where: str,
    providers: Mapping[str, MaskProvider] | None = None,
    region_kinds: Mapping[str, RegionFactory] | None = None,
) -> Region:
    """A region from ``{box: [...]}``, ``{boxes: [[...], ...]}``, ``{mask: NAME}``,
    ``{box3d: [x0, y0, z0, x1, y1, z1]}`` (object space; needs a 3-D-aware backbone; a list
    of such boxes is their union) or ``{box3d_seen: ...}`` (the same boxes, masked where the
    camera sees them: :class:`Box3DRegion`'s ``seen``).

    ``providers`` maps mask names to providers; ``region_kinds`` lets a backbone add kinds
    (EG3D's ``box3d``) without this module knowing about it.
    """
    if not isinstance(spec, dict) or len(spec) != 1:
        kinds = ["box", "boxes", "mask", "box3d", "box3d_seen", *(region_kinds or {})]
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
    if region_kinds and kind in region_kinds:
        return region_kinds[kind](value, f"{where}.{kind}")
    known = ["box", "boxes", "mask", "box3d", "box3d_seen", *(region_kinds or {})]
    raise ConfigError(f"{where}: unknown region kind '{kind}' (known: {', '.join(known)})")


def build_links(
    specs: Sequence[Mapping[str, Any]],
    w_dim: int,
    providers: Mapping[str, MaskProvider] | None = None,
    region_kinds: Mapping[str, RegionFactory] | None = None,
) -> list[Link]:
    """Validate link specs from the config and build :class:`Link` objects.

    Refuses axes outside ``[0, w_dim)``, axes shared by two links, a link owning every axis
    (its complement would be empty), duplicate names, and invalid or empty regions.
    """
    links: list[Link] = []
    owner: dict[int, str] = {}
    for i, spec in enumerate(specs):
        where = f"link.links[{i}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected {{name, axes, region}}, got {spec!r}")
        unknown = set(spec) - {"name", "axes", "region", "weight"}
        if unknown:
            raise ConfigError(f"{where}: unknown key '{sorted(unknown)[0]}'")
        for key in ("axes", "region"):
            if key not in spec:
                raise ConfigError(f"{where}: missing '{key}'")
        name = str(spec.get("name", f"link{i}"))
        where = f"link.links[{i}] ({name})"
        if any(link.name == name for link in links):
            raise ConfigError(f"{where}: duplicate link name '{name}'")
        axes = parse_axes(spec["axes"], where)
        bad = [a for a in axes if not 0 <= a < w_dim]
        if bad:
            raise ConfigError(f"{where}.axes: index {bad[0]} outside [0, {w_dim}) (model.w_dim)")
        if len(axes) == w_dim:
            raise ConfigError(f"{where}.axes: a link cannot own all {w_dim} axes")
        for a in axes:
            if a in owner:
                raise ConfigError(f"{where}.axes: axis {a} is already linked to '{owner[a]}'")
            owner[a] = name
        region = build_region(spec["region"], f"{where}.region", providers, region_kinds)
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(f"{where}.weight: expected a number > 0, got {weight!r}")
        links.append(Link(name=name, axes=axes, region=region, weight=float(weight)))
    for a, b, box in overlapping_regions(links):
        warnings.warn(
            f"link.links: the regions of '{a}' and '{b}' overlap ({box}): there each link's "
            "L_in (eq. 3) forbids the other's edits",
            stacklevel=2,
        )
    return links


def overlapping_regions(links: Sequence[Link]) -> list[tuple[str, str, tuple[float, ...]]]:
    """Pairs of links whose fixed boxes (2-D ``box`` or 3-D ``box3d``/``box3d_seen``) share
    an area or a volume, with the shared box: ``[(name_a, name_b, box), ...]``.

    Where two links own the same pixels, each one's eq. 3 holds them still while the other's
    axes move, so neither can edit there (an eyes box across the bridge of the nose starved
    the nose link, issue #8). Boxes that only touch do not overlap; masks from providers are
    per instance and not checked.
    """
    found = []
    for i, first in enumerate(links):
        for second in links[i + 1 :]:
            ra, rb = first.region, second.region
            if type(ra) is not type(rb) or not isinstance(ra, BoxRegion | Box3DRegion):
                continue
            for p in ra.boxes:
                for q in rb.boxes:
                    half = len(p) // 2
                    lo = [max(p[k], q[k]) for k in range(half)]
                    hi = [min(p[k + half], q[k + half]) for k in range(half)]
                    if all(low < high for low, high in zip(lo, hi, strict=True)):
                        found.append((first.name, second.name, tuple(lo + hi)))
    return found


# ----------------------------------------------------------------------------------------
# The loss.


def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``[B, 1, h, w]`` masks to ``size``: area averaging down, bilinear up."""
    size = (int(size[0]), int(size[1]))
    if tuple(mask.shape[-2:]) == size:
        return mask
    if mask.shape[-2] >= size[0] and mask.shape[-1] >= size[1]:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per masked pixel and channel, per sample.

    a, b: ``[B, C, H, W]``; mask: ``[B, 1, H, W]`` in [0, 1]. Returns ``[B]``; 0 where the
    mask is empty.
    """
    sq = (a - b).square().sum(dim=1, keepdim=True)
    mass = mask.sum(dim=(1, 2, 3)) * a.shape[1]
    return (sq * mask).sum(dim=(1, 2, 3)) / mass.clamp(min=1e-8)


def change_share(
    perturbed: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """The share of a perturbation's whole squared change that lies inside ``mask``, per sample.

    ``Σ m·|Δ|² / Σ |Δ|²`` over pixels and channels: *sums*, not per-pixel means, so it is what
    a difference heat map shows. A nose edit that moves the silhouette by one pixel all round
    the head has a small per-pixel mean outside the nose but most of its energy there.
    perturbed, original: ``[B, C, H, W]``; mask: ``[B, 1, H, W]`` in [0, 1]. Returns ``[B]``
    in [0, 1]; 0 where nothing changed.
    """
    sq = (perturbed - original).square().sum(dim=1, keepdim=True)
    return (sq * mask).sum(dim=(1, 2, 3)) / (sq.sum(dim=(1, 2, 3)) + eps)


def leak_fraction(
    perturbed: torch.Tensor,
    original: torch.Tensor,
    wrong: torch.Tensor,
    eps: float = 1e-6,
    summed: bool = False,
) -> torch.Tensor:
    """The share of a perturbation's change that lands where it should not, in [0, 1).

    ``e_wrong / (e_wrong + e_right + eps)`` with ``e`` the per-pixel mean squared change on
    each side of the mask (:func:`masked_mse`), averaged over the samples whose mask has
    pixels on both sides (a region out of view says nothing about where a change belongs).
    ``summed``: the share of the *summed* squared change instead (:func:`change_share` of
    ``wrong``: what an edit grid's heat map shows). Per pixel, a small part's edit that
    moves everything else a little already looks local (0.1 out/in) while nine tenths of
    its change lie outside the part. perturbed, original: ``[B, C, H, W]``; wrong:
    ``[B, 1, H, W]`` in [0, 1]. Returns a scalar; 0 when no sample qualifies.
    """
    mass = wrong.sum(dim=(1, 2, 3))
    both = ((mass > 0.5) & (mass < wrong[0].numel() - 0.5)).to(perturbed.dtype)
    if summed:
        frac = change_share(perturbed, original, wrong, eps)
    else:
        e_wrong = masked_mse(perturbed, original, wrong)
        e_right = masked_mse(perturbed, original, 1.0 - wrong)
        frac = e_wrong / (e_wrong + e_right + eps)
    return (frac * both).sum() / both.sum().clamp(min=1.0)


def swap_axes(ws: torch.Tensor, source: torch.Tensor, axis_mask: torch.Tensor) -> torch.Tensor:
    """Take the masked axes of w from ``source`` (both ``[B, num_ws, w_dim]``; a mask in
    [0, 1] moves that far towards the source: ``torch.lerp``)."""
    return torch.lerp(ws, source, axis_mask.to(ws.dtype))


def perturb_ws(ws: torch.Tensor, axis_mask: torch.Tensor, p: torch.Tensor, alpha: float):
    """``w + α·p`` on the masked axes, the same offset on every row of ws.

    ws: ``[B, num_ws, w_dim]``; axis_mask: ``[w_dim]``; p: ``[B, w_dim]``. Adding one offset
    to all rows keeps truncation and style mixing meaningful (each row moves alike).
    """
    return ws + alpha * (p * axis_mask)[:, None, :]


def perturbed_ws(
    ws: torch.Tensor,
    links: Sequence[Link],
    *,
    alpha: float = 1.0,
    sources: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """``[w, x₁ of link 0, x₂ of link 0, x₁ of link 1, ...]``, each ``[B, num_ws, w_dim]``:
    x₁ moves the link's axes, x₂ the complement; towards ``sources`` (resampling,
    :func:`swap_axes`) or, without them, by ``α·p``, ``p ~ N(0, I)`` (:func:`perturb_ws`)."""
    batch, _, w_dim = ws.shape
    ws_all = [ws]
    for link in links:
        m = link.axis_mask(w_dim, ws.device)
        if sources is not None:
            ws_all += [swap_axes(ws, sources, alpha * m), swap_axes(ws, sources, alpha * (1 - m))]
            continue
        p1 = torch.randn(batch, w_dim, device=ws.device, generator=generator)
        p2 = torch.randn(batch, w_dim, device=ws.device, generator=generator)
        ws_all += [perturb_ws(ws, m, p1, alpha), perturb_ws(ws, 1.0 - m, p2, alpha)]
    return ws_all


def in_out_terms(
    x: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    mask: torch.Tensor,
    form: str,
    scale2: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 3 and 4 of one link on one map: ``(L_i, L_iᶜ)`` as scalars.

    ``L_i``: x₂'s change inside ``mask``, ``L_iᶜ``: x₁'s change outside, in ``form``
    (:func:`link_loss`): ``absolute`` squared change per pixel, ``relative`` its share on
    the wrong side (:func:`leak_fraction`), ``share`` eq. 4 on summed change. ``scale2``
    multiplies the absolute form (a map's squared scale; the shares are scale-free). x, x₁,
    x₂: ``[B, C, H, W]``; mask: ``[B, 1, H, W]``.
    """
    if form == "absolute":
        l_in = masked_mse(x2, x, mask).mean() * scale2  # eq. 3
        return l_in, masked_mse(x1, x, 1.0 - mask).mean() * scale2  # eq. 4
    l_in = leak_fraction(x2, x, mask)  # eq. 3, as a share of x₂'s change
    # eq. 4, as a share of x₁'s change (per pixel, or summed: ``share``)
    return l_in, leak_fraction(x1, x, 1.0 - mask, summed=form == "share")


@dataclass
class LinkLossResult:
    total: torch.Tensor
    """Scalar: Σ_maps weight · Σ_i weight_i · (λ₁·L_i + λ₂·L_iᶜ)."""
    terms: dict[str, torch.Tensor]
    """Per-term scalars named ``link/<link>/<map>/in`` (L_i) and ``link/<link>/<map>/out``."""
    original: Outputs
    """The unperturbed outputs x, ``[B, ...]`` per map."""
    perturbed: Outputs
    """x₁ and x₂ for every link, concatenated: ``[2·k·B, ...]`` per map (fakes for D)."""
    perturbed_c: torch.Tensor | None
    """Conditioning labels matching ``perturbed`` (``None`` when unconditional)."""
    masks: dict[str, torch.Tensor]
    """Each link's mask ``[B, 1, H, W]`` at the resolution of ``image``."""


def link_loss(
    render: RenderFn,
    ws: torch.Tensor,
    links: Sequence[Link],
    *,
    c: torch.Tensor | None = None,
    alpha: float = 1.0,
    lambda_in: float = 1.0,
    lambda_out: float = 1.0,
    maps: Mapping[str, float] | None = None,
    map_scales: Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
    form: str = "absolute",
    sources: torch.Tensor | None = None,
) -> LinkLossResult:
    """Equations 3–6 for every link, in one batched render.

    render: deterministic synthesis ``(ws, c) -> outputs`` (fixed noise) so that x, x₁ and x₂
        differ only through w.
    ws: ``[B, num_ws, w_dim]`` (already mapped, truncated or style-mixed as the caller likes).
    c: ``[B, c_dim]`` camera/class labels, or None; the perturbed renders use the same c.
    maps: output maps to regularize with their weights (default ``{"image": 1}``).
    map_scales: a factor per map that brings it to the images' [-1, 1] scale before the
        squared differences (the generator's ``map_scales``: EG3D's depth uses
        ``2 / (ray_end - ray_start)``), so one λ means the same for colour and geometry.
    form: ``absolute`` is the paper's squared change (eqs. 3, 4). ``relative`` divides each
        perturbation's change on the wrong side by its whole change (:func:`leak_fraction`):
        scale-free, so it cannot be met by making w matter less. Small generators fine-tuned
        with the absolute form collapse instead of linking (every resample then changes
        little; measured in issue #8's note), the relative form moves change into the region.
        ``share`` is ``relative`` with eq. 4 on *summed* change (``leak_fraction(summed=
        True)``): the share of the link's own edit that lies outside its region, what the
        edit grids show; eq. 3 stays per pixel (a small region's share of the complement's
        change is small anyway and would give L_in no pull). Use it with regions a sample
        cannot empty (``box3d_seen``, fixed boxes): on ``box3d`` regions a summed form
        (then ``−log`` of the share inside) hid the parts instead, since a region the
        surface leaves is empty and an empty region adds no loss (issue #8's note). The 3-D
        demo preset uses it: per pixel, a nose edit that moves a band across the face a
        little still looks local, since the band's pixels outnumber the nose's.
    sources: ``[B, num_ws, w_dim]``, other instances' w. When given, x₁ and x₂ *resample*
        instead of adding noise: they take their moved axes from ``sources`` (α = 1: the
        whole way, :func:`swap_axes`), so every perturbed w is one the mapping produces, as
        in :func:`~link_core.metrics.link_mse` and the editing tools. None: the paper's
        ``w + α·p``, ``p ~ N(0, I)``.
    """
    if not links:
        raise ValueError("link_loss needs at least one link")
    if form not in LOSS_FORMS:
        raise ValueError(f"link loss form must be one of {LOSS_FORMS}, got {form!r}")
    maps = dict(maps or {"image": 1.0})
    batch = ws.shape[0]
    k = len(links)
    if sources is not None and sources.shape != ws.shape:
        raise ValueError(f"sources {tuple(sources.shape)} must match ws {tuple(ws.shape)}")
    ws_all = perturbed_ws(ws, links, alpha=alpha, sources=sources, generator=generator)
    c_all = None if c is None else c.repeat(2 * k + 1, *([1] * (c.dim() - 1)))
    out = render(torch.cat(ws_all), c_all)
    missing = [name for name in maps if name not in out]
    if missing:
        raise KeyError(f"link loss map '{missing[0]}' not in generator outputs {sorted(out)}")

    # The loss in fp32 whatever the forward's autocast dtype: in fp16, the clamps that keep
    # empty masks from dividing by zero (1e-8) would underflow to 0.
    chunks = {name: out[name].float().chunk(2 * k + 1) for name in out}
    original = {name: parts[0] for name, parts in chunks.items()}
    terms: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    total = ws.new_zeros(())
    for i, link in enumerate(links):
        mask = link.region(original, c).detach()
        masks[link.name] = mask
        for name, weight in maps.items():
            x = chunks[name][0]
            x1, x2 = chunks[name][1 + 2 * i], chunks[name][2 + 2 * i]
            m = resize_mask(mask, x.shape[-2:])
            s2 = float((map_scales or {}).get(name, 1.0)) ** 2
            l_in, l_out = in_out_terms(x, x1, x2, m, form, s2)
            terms[f"link/{link.name}/{name}/in"] = l_in
            terms[f"link/{link.name}/{name}/out"] = l_out
            # eqs. 5, 6, with the link's own weight (1 in the paper)
            total = total + link.weight * weight * (lambda_in * l_in + lambda_out * l_out)
    perturbed = {name: torch.cat(parts[1:]) for name, parts in chunks.items()}
    perturbed_c = None if c_all is None else c_all[batch:]
    return LinkLossResult(total, terms, original, perturbed, perturbed_c, masks)


FieldFn = Callable[[torch.Tensor, torch.Tensor], Outputs]
"""``field(points [B, P, 3], ws [B, num_ws, w_dim]) -> {"sigma": [B, P, 1], "rgb": [B, P, 3]}``."""


def volume_points(
    links: Sequence[Link],
    batch: int,
    num_points: int,
    box_size: float,
    *,
    around: float = 0.0,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[batch, num_points, 3]`` points for :func:`volume_link_loss`: half uniform over the
    generator's box ``[-s/2, s/2]³`` (``around`` > 0: over the bounding box of all the
    links' boxes grown by ``around`` on every side, within the generator's box: the face, where
    a leak shows, instead of empty space and the head's hidden inside), half inside the
    links' boxes (an equal share per link, spread over its boxes by volume). Uniform points
    alone almost never meet a small part (a nose's box is 0.3% of the demo's volume: 4 of
    1024 points), so its side of a relative term would be noise; the other links' box points
    are where its leaks land first."""
    boxes_per_link = [torch.tensor(lk.region.boxes, device=device) for lk in links]  # [K, 6]
    half = box_size / 2
    lo, hi = torch.full((3,), -half, device=device), torch.full((3,), half, device=device)
    if around > 0:
        every = torch.cat(boxes_per_link)
        lo = (every[:, :3].amin(0) - around).clamp(min=-half)
        hi = (every[:, 3:].amax(0) + around).clamp(max=half)
    per_link = num_points // 2 // len(links)
    n_uniform = num_points - per_link * len(links)
    parts = [lo + (hi - lo) * torch.rand(batch, n_uniform, 3, device=device, generator=generator)]
    for boxes in boxes_per_link:
        volume = (boxes[:, 3:] - boxes[:, :3]).prod(-1)
        pick = torch.multinomial(
            volume.expand(batch, -1), per_link, replacement=True, generator=generator
        )
        b_lo, b_hi = boxes[pick, :3], boxes[pick, 3:]  # [B, per_link, 3]
        u = torch.rand(batch, per_link, 3, device=device, generator=generator)
        parts.append(b_lo + (b_hi - b_lo) * u)
    return torch.cat(parts, 1)


def volume_link_loss(
    field: FieldFn,
    ws: torch.Tensor,
    links: Sequence[Link],
    *,
    box_size: float,
    num_points: int = 1024,
    alpha: float = 1.0,
    lambda_in: float = 1.0,
    lambda_out: float = 1.0,
    generator: torch.Generator | None = None,
    form: str = "absolute",
    sources: torch.Tensor | None = None,
    around: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The link loss on the 3-D field itself, without rendering (beyond the paper).

    For every link with a 3-D region (``region.contains``), query the field at
    ``num_points`` points per sample (:func:`volume_points`: half uniform over the box
    ``[-s/2, s/2]³``, half inside the links' boxes) for w, x₁ (link's axes moved) and x₂
    (complement moved), and compare *occupancy* ``1 − exp(−σ·s/64)`` (the opacity of a
    1/64-box step: bounded, unlike σ) and occupancy-weighted colour in [-1, 1]: ``L_i`` over
    points inside the region for x₂, ``L_iᶜ`` outside for x₁ (eqs. 3–4 in 3-D).

    It sees what image regions cannot forbid: a tri-plane feature is shared by every point
    on a line through its plane, so a nose feature on the side (zy) plane moves the whole
    face at that height and depth, and an image mask only meets that line where a view
    shows it. form: as :func:`link_loss`, over points instead of pixels
    (:func:`in_out_terms`). sources: resample instead of ``w + α·p``, as in
    :func:`link_loss`. around: where the points outside the boxes lie (:func:`volume_points`).
    Returns (total ``Σ weight_i·(λ₁L_i + λ₂L_iᶜ)``, terms
    ``link/<name>/volume/in|out``).
    """
    if form not in LOSS_FORMS:
        raise ValueError(f"link loss form must be one of {LOSS_FORMS}, got {form!r}")
    volume_links = [lk for lk in links if hasattr(lk.region, "contains")]
    terms: dict[str, torch.Tensor] = {}
    total = ws.new_zeros(())
    if not volume_links:
        return total, terms
    batch = ws.shape[0]
    points = volume_points(
        volume_links,
        batch,
        num_points,
        box_size,
        around=around,
        device=ws.device,
        generator=generator,
    )
    step = box_size / 64

    def describe(w: torch.Tensor) -> torch.Tensor:
        out = field(points.repeat(w.shape[0] // batch, 1, 1), w)
        occ = 1 - torch.exp(-out["sigma"] * step)
        return torch.cat([occ, occ * (out["rgb"] * 2 - 1)], -1)  # [n·B, P, 4]

    ws_all = perturbed_ws(ws, volume_links, alpha=alpha, sources=sources, generator=generator)
    # Points as a one-pixel-wide image, [B, 4, P, 1], so the image losses apply as they are.
    parts = [
        p.float().transpose(1, 2)[..., None] for p in describe(torch.cat(ws_all)).chunk(len(ws_all))
    ]
    x = parts[0]
    for i, link in enumerate(volume_links):
        inside = link.region.contains(points)[:, None, :, None].to(x.dtype)  # [B, 1, P, 1]
        l_in, l_out = in_out_terms(x, parts[1 + 2 * i], parts[2 + 2 * i], inside, form)
        terms[f"link/{link.name}/volume/in"] = l_in
        terms[f"link/{link.name}/volume/out"] = l_out
        total = total + link.weight * (lambda_in * l_in + lambda_out * l_out)
    return total, terms
