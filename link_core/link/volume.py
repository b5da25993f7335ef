"""The volumetric link term: eqs. 3-4 on the 3-D field at points inside / outside 3-D boxes,
without rendering (beyond the paper; generators with ``sample_mixed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from link_core.link.links import Link
from link_core.link.loss import LOSS_FORMS, in_out_terms, perturbed_ws
from link_core.link.regions import Outputs

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
    margin: float = 0.0,
    mix: float = 0.5,
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
    margin: the shares' hinge, as in :func:`link_loss`.
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
        l_in, l_out = in_out_terms(
            x, parts[1 + 2 * i], parts[2 + 2 * i], inside, form, margin=margin, mix=mix
        )
        terms[f"link/{link.name}/volume/in"] = l_in
        terms[f"link/{link.name}/volume/out"] = l_out
        total = total + link.weight * (lambda_in * l_in + lambda_out * l_out)
    return total, terms
