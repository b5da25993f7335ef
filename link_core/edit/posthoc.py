"""Post-hoc local editors: directions found on a trained generator without retraining it,
the baselines LinkGAN is compared with (paper §4.3, Table 2, Fig. 8).

Re-implemented from their papers, on any generator of the interface whose styles come from
``affine`` layers (both backbones here):

- **SeFa** (Shen & Zhou, CVPR 2021): closed-form directions in W, the top eigenvectors of
  ``AᵀA`` with ``A`` every style affine's effective weight stacked (:func:`sefa_directions`).
  Global: the reference for what an edit that ignores regions does.
- **GANSpace** (Härkönen et al., NeurIPS 2020): the principal components of sampled w
  (:func:`ganspace_directions`). Global too: the directions along which W varies most.
- **ReSeFa** (Zhu et al., ICML 2022), with LowRankGAN's null-space projection (Zhu et al.,
  NeurIPS 2021): the Jacobian ``J = ∂x/∂w`` of a few samples gives the Gram matrices of the
  change inside and outside the region, ``M_in = Jᵀ diag(m) J`` and ``M_out = Jᵀ diag(1-m)
  J`` (per masked pixel); the direction is the top eigenvector of ``M_in`` restricted to the
  near-null space of ``M_out`` (:func:`resefa_direction`).
- **StyleSpace** (Wu et al., CVPR 2021): style channels (the per-layer modulation vectors)
  ranked by the share of their gradient map that falls inside the region; an edit moves one
  channel (:func:`stylespace_channels`, :func:`style_offsets`).

Jacobians are central differences of the rendered outputs (fixed noise), so only the
generator's forward pass is needed; a w offset moves every row of ``ws`` alike (as the link
loss perturbs, :func:`~link_core.link.perturb_ws`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from link_core.link import resize_mask

MapFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
RegionFn = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]


def style_affines(G: nn.Module) -> dict[str, nn.Module]:
    """Every w -> style affine layer of G by module name (in forward order), each with an
    effective weight ``weight * weight_gain`` of shape ``[channels, w_dim]``."""
    found = {
        name: m
        for name, m in G.named_modules()
        if name.endswith("affine") and hasattr(m, "weight") and hasattr(m, "weight_gain")
    }
    if not found:
        raise ValueError("the generator has no style affine layers (named '*affine')")
    return found


def _largest_entry_positive(directions: torch.Tensor) -> torch.Tensor:
    """``[k, w_dim]`` directions (float32), each signed so its largest entry is positive."""
    sign = directions.gather(1, directions.abs().argmax(1, keepdim=True)).sign()
    return (directions * sign).float()


def sefa_directions(G: nn.Module, k: int = 8) -> torch.Tensor:
    """``[k, w_dim]`` unit directions of SeFa: eigenvectors of ``AᵀA`` by eigenvalue,
    largest first (``A``: the affines' effective weights stacked, ``[Σ channels, w_dim]``).
    The sign of each is fixed so its largest entry is positive."""
    with torch.no_grad():
        a = torch.cat([m.weight.double() * m.weight_gain for m in style_affines(G).values()])
        values, vectors = torch.linalg.eigh(a.T @ a)
        return _largest_entry_positive(vectors[:, values.argsort(descending=True)[:k]].T)


@torch.no_grad()
def ganspace_directions(
    G: nn.Module, c: torch.Tensor, k: int = 8, num: int = 4096, seed: int = 0
) -> torch.Tensor:
    """``[k, w_dim]`` unit directions of GANSpace: the top principal components of ``num``
    sampled w (``G.mapping`` of seeded z, labels ``c [1, c_dim]``; first row of each ws),
    sign fixed as in :func:`sefa_directions`."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num, G.z_dim, generator=gen).to(c.device)
    w = G.mapping(z, c.expand(num, -1))[:, 0].double()  # [num, w_dim]
    _, _, vt = torch.linalg.svd(w - w.mean(0), full_matrices=False)
    return _largest_entry_positive(vt[:k])


@torch.no_grad()
def output_jacobian(
    G: nn.Module,
    ws: torch.Tensor,
    c: torch.Tensor,
    map_fn: MapFn,
    h: float = 0.05,
    batch: int = 32,
) -> torch.Tensor:
    """``[P, w_dim]``: central differences of ``map_fn(outputs)`` (``P`` values, flattened)
    in each w axis, the offset applied to every row of ``ws [1, num_ws, w_dim]``."""
    w_dim = ws.shape[-1]
    eye = torch.eye(w_dim, device=ws.device, dtype=ws.dtype) * h
    offsets = torch.cat([eye, -eye])  # [2·w_dim, w_dim]
    flats = []
    for start in range(0, len(offsets), batch):
        off = offsets[start : start + batch]
        out = G.synthesis(ws + off[:, None, :], c.expand(len(off), -1), noise_mode="const")
        flats.append(map_fn(out).flatten(1).double())
    x = torch.cat(flats)  # [2·w_dim, P]
    return ((x[:w_dim] - x[w_dim:]) / (2 * h)).T.contiguous()


@dataclass
class RegionGram:
    """Gram matrices of the change inside / outside a region per unit w move, averaged over
    samples and normalized per masked value: ``d ᵀ M d`` is the mean squared change a unit
    step along ``d`` makes there (``[w_dim, w_dim]`` each)."""

    inside: torch.Tensor
    outside: torch.Tensor
    samples: int


def region_gram(
    G: nn.Module,
    ws: torch.Tensor,
    c: torch.Tensor,
    region: RegionFn,
    map_fn: MapFn,
    h: float = 0.05,
    batch: int = 32,
) -> RegionGram:
    """:class:`RegionGram` of samples ``ws [N, num_ws, w_dim]`` with cameras ``c [N, c_dim]``;
    each sample's mask is the region of its own original output."""
    w_dim = ws.shape[-1]
    m_in = torch.zeros(w_dim, w_dim, dtype=torch.float64, device=ws.device)
    m_out = torch.zeros_like(m_in)
    for i in range(ws.shape[0]):
        w, ci = ws[i : i + 1], c[i : i + 1]
        with torch.no_grad():
            out = G.synthesis(w, ci, noise_mode="const")
            x = map_fn(out)  # [1, C, H, W]
            mask = resize_mask(region(out, ci), x.shape[-2:]).expand_as(x).flatten().double()
        jac = output_jacobian(G, w, ci, map_fn, h, batch)  # [P, w_dim]
        m_in += (jac * mask[:, None]).T @ jac / mask.sum().clamp(min=1e-8)
        m_out += (jac * (1 - mask)[:, None]).T @ jac / (1 - mask).sum().clamp(min=1e-8)
    n = ws.shape[0]
    return RegionGram(m_in / n, m_out / n, n)


def resefa_direction(gram: RegionGram, null_energy: float = 0.01, min_dim: int = 2) -> torch.Tensor:
    """``[w_dim]`` unit direction: the top eigenvector of ``M_in`` within the near-null space
    of ``M_out`` (LowRankGAN): the eigenvectors of ``M_out`` with the smallest eigenvalues
    whose sum stays within ``null_energy`` of its trace (at least ``min_dim`` of them)."""
    values, vectors = torch.linalg.eigh(gram.outside)  # ascending
    cumulative = values.clamp(min=0).cumsum(0) / values.clamp(min=0).sum().clamp(min=1e-30)
    dim = max(min_dim, int((cumulative <= null_energy).sum()))
    basis = vectors[:, :dim]  # [w_dim, dim]
    inner_values, inner = torch.linalg.eigh(basis.T @ gram.inside @ basis)
    d = basis @ inner[:, -1]
    d = d / d.norm()
    return (d * d[d.abs().argmax()].sign()).float()


@contextmanager
def style_offsets(G: nn.Module, offsets: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Inside the block, affine layer ``name``'s styles get ``offsets[name]`` added
    (``[B, channels]`` or ``[channels]``): a StyleSpace edit, or its finite differences."""
    affines = style_affines(G)
    unknown = set(offsets) - set(affines)
    if unknown:
        raise KeyError(f"no style layer {sorted(unknown)[0]!r}")
    handles = [
        affines[name].register_forward_hook(lambda _m, _i, out, d=delta: out + d)
        for name, delta in offsets.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class StyleChannel:
    """One style channel: its layer, index, the share of its change inside the region
    (StyleSpace's localization score) and its std over samples (the edit's unit)."""

    layer: str
    index: int
    inside: float
    std: float


@torch.no_grad()
def stylespace_channels(
    G: nn.Module,
    ws: torch.Tensor,
    c: torch.Tensor,
    region: RegionFn,
    map_fn: MapFn,
    top: int = 8,
    h: float = 0.05,
    batch: int = 32,
    spread: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[StyleChannel]:
    """The ``top`` style channels most localized in the region, over samples ``ws``: for
    each channel, the change a small move of it makes (central differences) inside the
    region as a share of its whole change, summed over samples (StyleSpace ranks channels
    by their gradient maps' overlap with the region). Each channel's ``std`` (its edit
    unit) is its spread over ``spread`` = (ws, c), at least 2 samples (default: ``ws``)."""
    affines = style_affines(G)
    styles: dict[str, list[torch.Tensor]] = {name: [] for name in affines}
    spread_ws, spread_c = spread if spread is not None else (ws, c)
    if spread_ws.shape[0] < 2:
        raise ValueError(f"a style channel's spread needs at least 2 samples, got {len(spread_ws)}")
    handles = [
        m.register_forward_hook(lambda _m, _i, out, n=name: styles[n].append(out.detach()))
        for name, m in affines.items()
    ]
    try:
        G.synthesis(spread_ws, spread_c, noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()
    std = {name: torch.cat(v).std(0) for name, v in styles.items()}  # [channels]
    base = G.synthesis(ws, c, noise_mode="const")
    channels = [(name, i) for name, m in affines.items() for i in range(m.weight.shape[0])]
    inside = torch.zeros(len(channels), dtype=torch.float64)
    total = torch.zeros_like(inside)
    for s in range(ws.shape[0]):
        w, ci = ws[s : s + 1], c[s : s + 1]
        x0 = {k: v[s : s + 1] for k, v in base.items()}
        mask = resize_mask(region(x0, ci), map_fn(x0).shape[-2:]).double()
        for start in range(0, len(channels), batch // 2):
            part = channels[start : start + batch // 2]
            diffs = []
            for sign in (1.0, -1.0):
                offsets = {
                    name: torch.zeros(len(part), m.weight.shape[0], device=ws.device)
                    for name, m in affines.items()
                }
                for row, (name, i) in enumerate(part):
                    offsets[name][row, i] = sign * h
                with style_offsets(G, offsets):
                    out = G.synthesis(
                        w.expand(len(part), -1, -1), ci.expand(len(part), -1), noise_mode="const"
                    )
                diffs.append(map_fn(out).double())
            sq = (diffs[0] - diffs[1]).square().sum(1, keepdim=True)  # [n, 1, H, W]
            inside[start : start + len(part)] += (sq * mask).sum((1, 2, 3)).cpu()
            total[start : start + len(part)] += sq.sum((1, 2, 3)).cpu()
    share = inside / total.clamp(min=1e-30)
    order = share.argsort(descending=True)[:top]
    found = []
    for j in order.tolist():
        name, i = channels[j]
        found.append(StyleChannel(name, i, float(share[j]), float(std[name][i])))
    return found


def channel_offsets(
    G: nn.Module, channel: StyleChannel, strength: Sequence[float] | torch.Tensor
) -> dict[str, torch.Tensor]:
    """Offsets for :func:`style_offsets` that move ``channel`` by ``strength`` (one value per
    row) times its std."""
    affines = style_affines(G)
    strength = torch.as_tensor(strength, dtype=torch.float32)
    delta = torch.zeros(len(strength), affines[channel.layer].weight.shape[0])
    delta[:, channel.index] = strength * channel.std
    return {channel.layer: delta.to(affines[channel.layer].weight.device)}
