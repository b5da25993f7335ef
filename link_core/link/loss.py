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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from link_core.link.links import Link
from link_core.link.regions import Outputs, resize_mask

LOSS_FORMS = ("absolute", "relative", "share", "share_fixed", "share_pooled", "share_mixed")
"""How the link loss measures eqs. 3 and 4 (``link.form``; :func:`link_loss`)."""

RenderFn = Callable[[torch.Tensor, torch.Tensor | None], Outputs]
"""``render(ws [B, num_ws, w_dim], c [B, c_dim] | None) -> {"image": [B, 3, H, W], ...}``."""


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per masked pixel and channel, per sample.

    a, b: ``[B, C, H, W]``; mask: ``[B, 1, H, W]`` in [0, 1]. Returns ``[B]``; 0 where the
    mask is empty.
    """
    sq = (a - b).square().sum(dim=1, keepdim=True)
    mass = mask.sum(dim=(1, 2, 3)) * a.shape[1]
    return (sq * mask).sum(dim=(1, 2, 3)) / mass.clamp(min=1e-8)


SHARE_EPS = 1e-8
"""Added to the whole change in :func:`share_of_sums`, so an edit that changes nothing has
share 0."""


def change_share(
    perturbed: torch.Tensor,
    original: torch.Tensor,
    mask: torch.Tensor,
    eps: float = SHARE_EPS,
    fixed_total: bool = False,
) -> torch.Tensor:
    """The share of a perturbation's whole squared change that lies inside ``mask``, per sample.

    ``Σ m·|Δ|² / Σ |Δ|²`` over pixels and channels: *sums*, not per-pixel means, so it is what
    a difference heat map shows. A nose edit that moves the silhouette by one pixel all round
    the head has a small per-pixel mean outside the nose but most of its energy there.
    perturbed, original: ``[B, C, H, W]``; mask: ``[B, 1, H, W]`` in [0, 1]. Returns ``[B]``
    in [0, 1]; 0 where nothing changed. ``fixed_total``: the whole change is a constant to
    the gradient (detached), which then only moves the masked change.
    """
    return share_of_sums(*change_sums(perturbed, original, mask), eps, fixed_total)


def share_of_sums(
    inside: torch.Tensor, total: torch.Tensor, eps: float = SHARE_EPS, fixed_total: bool = False
) -> torch.Tensor:
    """``inside / (total + eps)`` from :func:`change_sums` (``[B]`` each): the share
    :func:`change_share` returns, for callers that also need the sums themselves."""
    total = total + eps
    return inside / (total.detach() if fixed_total else total)


def change_sums(
    perturbed: torch.Tensor, original: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inside [B], total [B])``: a perturbation's squared change summed over pixels and
    channels inside ``mask`` and everywhere (:func:`change_share` is their ratio)."""
    sq = (perturbed - original).square().sum(dim=1, keepdim=True)
    return (sq * mask).sum(dim=(1, 2, 3)), sq.sum(dim=(1, 2, 3))


def leak_fraction(
    perturbed: torch.Tensor,
    original: torch.Tensor,
    wrong: torch.Tensor,
    eps: float = 1e-6,
    summed: bool = False,
    fixed_total: bool = False,
    margin: float = 0.0,
    groups: torch.Tensor | None = None,
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
    ``fixed_total``: the denominator (the whole change) is detached, so the gradient only
    shrinks the wrong side's change and never rewards a bigger change on the right side.
    ``margin``: each sample's share counts only above it (``max(0, share − margin)``), so a
    sample already local enough adds nothing.
    ``groups``: ``[B]`` ids from 0; the summed change is pooled per id: each id's share is
    ``Σ_rows wrong / Σ_rows whole`` (``summed`` implied), every row counted, and the margin
    applies to each id's share; the mean over ids is returned. The rows of one id are one
    sample seen from several cameras (``link.extra_views``), or the whole batch is one id
    (``share_pooled``). A view where the region is out of sight then adds its whole change to
    the wrong side with the gradient ``inside / whole²`` of its id, not the near-0 of a
    per-sample share near 1 (or the skip of an empty region).
    """
    if groups is not None:
        on_wrong_side, whole = change_sums(perturbed, original, wrong)
        n = int(groups.max()) + 1
        frac = share_of_sums(
            on_wrong_side.new_zeros(n).index_add(0, groups, on_wrong_side),
            whole.new_zeros(n).index_add(0, groups, whole),
            eps,
            fixed_total,
        )
        return ((frac - margin).clamp(min=0.0) if margin > 0 else frac).mean()
    mass = wrong.sum(dim=(1, 2, 3))
    both = ((mass > 0.5) & (mass < wrong[0].numel() - 0.5)).to(perturbed.dtype)
    if summed:
        frac = change_share(perturbed, original, wrong, eps, fixed_total)
    else:
        e_wrong = masked_mse(perturbed, original, wrong)
        e_right = masked_mse(perturbed, original, 1.0 - wrong)
        total = e_wrong + e_right + eps
        frac = e_wrong / (total.detach() if fixed_total else total)
    if margin > 0:
        frac = (frac - margin).clamp(min=0.0)
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
    margin: float = 0.0,
    groups: torch.Tensor | None = None,
    mix: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 3 and 4 of one link on one map: ``(L_i, L_iᶜ)`` as scalars.

    ``L_i``: x₂'s change inside ``mask``, ``L_iᶜ``: x₁'s change outside, in ``form``
    (:func:`link_loss`): ``absolute`` squared change per pixel, ``relative`` its share on
    the wrong side (:func:`leak_fraction`), ``share`` eq. 4 on summed change. ``scale2``
    multiplies the absolute form (a map's squared scale; the shares are scale-free);
    ``margin``: the shares' hinge (:func:`leak_fraction`; the absolute form has none).
    ``groups``: ``[B]`` sample ids when rows are views of one sample: eq. 4's share (the
    ``share`` forms) pools each sample's views (:func:`leak_fraction`). ``mix``: with
    ``share_mixed``, the per-sample share's weight in eq. 4 (the pooled one's is
    ``1 − mix``). x, x₁, x₂: ``[B, C, H, W]``; mask: ``[B, 1, H, W]``.
    """
    if form == "absolute":
        l_in = masked_mse(x2, x, mask).mean() * scale2  # eq. 3
        return l_in, masked_mse(x1, x, 1.0 - mask).mean() * scale2  # eq. 4
    fixed = form == "share_fixed"
    # eq. 3, as a share of x₂'s change
    l_in = leak_fraction(x2, x, mask, fixed_total=fixed, margin=margin)
    # eq. 4, as a share of x₁'s change (per pixel, or summed: the ``share`` forms; pooled
    # over the batch: ``share_pooled``, one group)
    pools = form in ("share_pooled", "share_mixed")
    one_group = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if pools else None
    summed = form != "relative"
    l_out = leak_fraction(
        x1,
        x,
        1.0 - mask,
        summed=summed,
        fixed_total=fixed,
        margin=margin,
        groups=one_group if form == "share_pooled" else groups,
    )
    if form == "share_mixed":
        # Part per sample, part pooled: an edit whose change all escaped has a per-sample
        # share near 1 with gradient inside / whole² ≈ 0; pooled, each unit of its change
        # outside is pulled as hard as any other sample's, while the per-sample part keeps
        # the pull on the typical small edit that pooling gives to the batch's big ones.
        pooled = leak_fraction(x1, x, 1.0 - mask, summed=True, margin=margin, groups=one_group)
        l_out = torch.lerp(pooled, l_out, mix)
    return l_in, l_out


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
    margin: float = 0.0,
    groups: torch.Tensor | None = None,
    mix: float = 0.5,
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
        little; docs/results.md), the relative form moves change into the region.
        ``share`` is ``relative`` with eq. 4 on *summed* change (``leak_fraction(summed=
        True)``): the share of the link's own edit that lies outside its region, what the
        edit grids show; eq. 3 stays per pixel (a small region's share of the complement's
        change is small anyway and would give L_in no pull). Use it with regions a sample
        cannot empty (``box3d_seen``, fixed boxes): on ``box3d`` regions a summed form
        (then ``−log`` of the share inside) hid the parts instead, since a region the
        surface leaves is empty and an empty region adds no loss (docs/results.md). The 3-D
        demo preset uses it: per pixel, a nose edit that moves a band across the face a
        little still looks local, since the band's pixels outnumber the nose's.
        ``share_fixed`` is ``share`` with each share's denominator (the perturbation's whole
        change) detached: the same value and scale-free weight, but the gradient only
        shrinks the change on the wrong side. ``share`` can also be lowered by making the
        part's own change larger, which fine-tunes do (the parts then vary more than the
        data's: ``linkgan metrics --metrics diversity``).
        ``share_pooled`` is ``share`` with eq. 4 as one share of the whole batch's summed
        change (:func:`leak_fraction`, one ``groups`` id): samples whose camera hides the region
        count too, so an edit that tints the back of a head is pulled back from behind as
        hard as from the front (per sample, such a view's share sits near 1 and has almost
        no gradient, or is skipped when the region is wholly out of view).
        ``share_mixed`` weighs ``share``'s eq. 4 by ``mix`` and ``share_pooled``'s by
        ``1 − mix`` (by default the mean): the pooled part pulls back an edit whose change
        all lies outside its region (per sample its share sits near 1, where the gradient
        ``inside / whole²`` vanishes), the per-sample part keeps each small edit's own pull.
    sources: ``[B, num_ws, w_dim]``, other instances' w. When given, x₁ and x₂ *resample*
        instead of adding noise: they take their moved axes from ``sources`` (α = 1: the
        whole way, :func:`swap_axes`), so every perturbed w is one the mapping produces, as
        in :func:`~link_core.metrics.link_mse` and the editing tools. None: the paper's
        ``w + α·p``, ``p ~ N(0, I)``.
    margin: with the share forms, each sample's share on the wrong side counts only above
        it (a hinge): a link already that local adds no gradient, so it stops pulling G
        away from what the adversarial loss wants (the shares are scale-free and otherwise
        pull as hard at 1% as at 50%).
    groups: ``[B]`` sample ids from 0, when ws holds each sample several times under other
        cameras ``c`` (the same w, the same sources): with the ``share`` forms, eq. 4 is one
        share per sample of its views' summed change (:func:`leak_fraction` ``groups``), so
        what an edit changes in a view that hides the region counts against that sample.
    """
    if not links:
        raise ValueError("link_loss needs at least one link")
    if form not in LOSS_FORMS:
        raise ValueError(f"link loss form must be one of {LOSS_FORMS}, got {form!r}")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(
            f"link loss mix (the per-sample share's weight) must be in [0, 1], got {mix}"
        )
    if groups is not None and not form.startswith("share"):
        raise ValueError(f"link loss groups (views of one sample) need a share form, got {form!r}")
    if groups is not None and groups.shape != ws.shape[:1]:
        raise ValueError(
            f"groups {tuple(groups.shape)} must have one id per row of ws {ws.shape[0]}"
        )
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
            l_in, l_out = in_out_terms(x, x1, x2, m, form, s2, margin, groups, mix)
            terms[f"link/{link.name}/{name}/in"] = l_in
            terms[f"link/{link.name}/{name}/out"] = l_out
            # eqs. 5, 6, with the link's own weight (1 in the paper)
            total = total + link.weight * weight * (lambda_in * l_in + lambda_out * l_out)
    perturbed = {name: torch.cat(parts[1:]) for name, parts in chunks.items()}
    perturbed_c = None if c_all is None else c_all[batch:]
    return LinkLossResult(total, terms, original, perturbed, perturbed_c, masks)
