"""How local is an edit: the paper's masked MSE (Table 2's MSE_i / MSE_o, Table 3).

For each link, over N fixed seeds, with images in [0, 1]:
  edit_in / edit_out : MSE inside / outside the link's region after resampling the link's
                       axes (Table 2: high edit_in, low edit_out is a good link);
  rest_in / rest_out : the same after resampling every *other* axis (Table 3's MSE_i is
                       rest_in: the region should not move).
  region_var         : per-pixel variance across the N originals, averaged over the region:
                       a strong λ can "link" by making the part dull, which this exposes.
  edit_share         : the share of an edit's whole squared change (a sum over pixels, not a
                       per-pixel mean) that lies inside the region, averaged over the samples
                       that see the region: what the edit's heat map shows. 1 is a perfectly
                       local edit; an unlinked small part sits near its area share.
  region_area        : the region's mean share of the image: a ``box3d`` region is where
                       the surface lies in its box, so a model can also "link" by moving the
                       part's surface out of the box, which this exposes.
  edit_escapes       : the share of those samples whose edit escapes its region (less than
                       half of its change inside): the edits that change something else
                       (a hat that comes and goes with the eyes' axes), which a mean
                       share of 0.8 can hide. 3-D generators add ``edit_escapes_by_view``
                       (front / side / back, as below): from behind, where a part is a
                       sliver, most edits escape it.
  edit_share_pooled  : the summed change inside over the summed change, pooled over those
                       samples (a ratio of sums): weighs each view by how much its edit
                       changes, where edit_share counts a view whose edit barely changes
                       anything as much as one that changes the part.
  edit_share_by_view : 3-D generators only: edit_share over the samples whose camera lies
                       within 60° of yaw of the front, 60-120° (side) and beyond (back),
                       with ``seen_by_view`` their counts and ``change_by_view`` the
                       edit's mean summed squared change per view there. From behind a
                       face's part is a sliver at the silhouette, and a faint change over
                       the back of the head (no front-facing link camera sees it) outweighs
                       it.
MSE is the mean squared change per masked pixel and channel (``link.masked_mse``), averaged
over samples.

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from link_core.data.cameras import camera_label_yaw_pitch
from link_core.interface import eval_cameras, seeds_to_z
from link_core.link import (
    Link,
    change_sums,
    masked_mse,
    resize_mask,
    share_of_sums,
    swap_axes,
)
from link_core.metrics.diversity import RegionMoments

MapFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]
IMAGE_MAPS: dict[str, MapFn] = {"image": lambda out: (out["image"] + 1) / 2}
DEPTH_MAPS: dict[str, MapFn] = {"depth": lambda out: out["image_depth"]}
ACCUMULATED = (
    "edit_in",
    "edit_out",
    "rest_in",
    "rest_out",
    "region_area",
    "share_sum",
    "share_count",
    "escape_count",
    "pooled_in",
    "pooled_total",
)
"""Sums :func:`link_mse` keeps per link and map (``share_*`` become ``edit_share``,
``pooled_*`` ``edit_share_pooled``, ``escape_count`` ``edit_escapes``)."""
ESCAPE_SHARE = 0.5
"""An edit whose share of change inside its region is below this *escapes* the region
(``edit_escapes``): it changes mostly something else."""
VIEWS = (("front", 0.0, 60.0), ("side", 60.0, 120.0), ("back", 120.0, 180.01))
"""(name, from, to): |yaw| ranges in degrees about the front (+z) for ``edit_share_by_view``;
front is the link phase's camera range in the 3-D presets (``link.view_yaw_deg``)."""


def view_bins(G: torch.nn.Module, c: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """``{view: [B] bool}`` for the cameras ``c [B, c_dim]`` of a 3-D generator (its camera
    spec's pivot); None for a 2-D one, whose labels are not cameras."""
    if not getattr(G, "is_3d", False):
        return None
    yaw, _ = camera_label_yaw_pitch(c.float(), G.camera.pivot)
    deg = yaw.abs().rad2deg()
    return {name: (deg >= lo) & (deg < hi) for name, lo, hi in VIEWS}


def default_maps(outputs: Mapping[str, torch.Tensor]) -> dict[str, MapFn]:
    """RGB in [0, 1], plus depth in world units when the generator renders it."""
    return {**IMAGE_MAPS, **(DEPTH_MAPS if "image_depth" in outputs else {})}


def edit_seeds(seed: int, samples: int) -> list[int]:
    """The seeds whose w supplies a link's new axes in edits of ``seed``: ``seed·1000 + 1 …
    seed·1000 + samples``, so every tool (grids, videos, meshes) shows the same edits."""
    return [seed * 1000 + 1 + k for k in range(samples)]


def resample_link_axes(
    G: torch.nn.Module,
    ws: torch.Tensor,
    axis_mask: torch.Tensor,
    samples: int,
    seed: int,
    c: torch.Tensor,
) -> torch.Tensor:
    """``[samples, num_ws, w_dim]``: ``ws [1, num_ws, w_dim]`` with the masked axes taken
    from the mapped w of :func:`edit_seeds` (camera ``c [1, c_dim]`` for pose-conditioned
    mappings). ``torch.lerp(ws, result, t)`` moves continuously between the two."""
    z = seeds_to_z(edit_seeds(seed, samples), G.z_dim).to(ws.device)
    sources = G.mapping(z, c.to(ws.device).expand(samples, -1))
    return swap_axes(ws.expand(samples, -1, -1), sources, axis_mask.to(ws.device))


@torch.no_grad()
def link_mse(
    G: torch.nn.Module,
    links: Sequence[Link],
    *,
    num: int = 256,
    seed: int = 1000,
    mode: str = "resample",
    alpha: float = 1.0,
    batch: int = 32,
    cameras: torch.Tensor | None = None,
    maps: Mapping[str, MapFn] | None = None,
) -> dict[str, Any]:
    """Masked MSE of every link, as ``{"link_mse": {link: {map: {edit_in, ...}}}, ...}``.

    G: any generator of the interface. cameras: ``[num, c_dim]`` labels (None:
    :func:`~link_core.interface.eval_cameras`, seeded by ``seed``).
    mode: ``resample`` takes the axes from the w of another seed (seeds ``seed+num…``);
    ``perturb`` adds ``alpha·p`` on them, ``p ~ N(0, I)`` seeded the same way.
    maps: named functions of the outputs to compare (default: :func:`default_maps`, i.e.
        ``image`` in [0, 1] and, for 3-D backbones, ``depth`` in world units).
    """
    if mode not in ("resample", "perturb"):
        raise ValueError(f"mode must be 'resample' or 'perturb', got {mode!r}")
    device = next(G.parameters()).device
    if cameras is None:
        cameras = eval_cameras(G, num, seed, device)
    sums: dict[str, dict[str, dict[str, float]]] = {}
    moments: dict[str, RegionMoments] = {}  # the region's diversity, per link and map
    for start in range(0, num, batch):
        seeds = range(seed + start, seed + min(num, start + batch))
        n = len(seeds)
        c = cameras[start : start + n].to(device)
        ws = G.mapping(seeds_to_z(seeds, G.z_dim).to(device), c)
        if mode == "resample":
            other = G.mapping(seeds_to_z([s + num for s in seeds], G.z_dim).to(device), c)
        else:
            p = seeds_to_z([s + num for s in seeds], G.w_dim).to(device)
            other = ws + alpha * p[:, None, :]
        base = G.synthesis(ws, c, noise_mode="const")
        if maps is None:
            maps = default_maps(base)
        views = view_bins(G, c)
        for lk in links:
            am = lk.axis_mask(G.w_dim, device)
            edit = G.synthesis(swap_axes(ws, other, am), c, noise_mode="const")
            rest = G.synthesis(swap_axes(ws, other, 1 - am), c, noise_mode="const")
            mask = lk.region(base, c)
            for name, fn in maps.items():
                x, xe, xr = fn(base), fn(edit), fn(rest)
                m = resize_mask(mask, x.shape[-2:])
                moments.setdefault(f"{lk.name}/{name}", RegionMoments()).add(x, m)
                acc = sums.setdefault(lk.name, {}).setdefault(name, dict.fromkeys(ACCUMULATED, 0.0))
                acc["edit_in"] += float(masked_mse(xe, x, m).sum())
                acc["edit_out"] += float(masked_mse(xe, x, 1 - m).sum())
                acc["rest_in"] += float(masked_mse(xr, x, m).sum())
                acc["rest_out"] += float(masked_mse(xr, x, 1 - m).sum())
                acc["region_area"] += float(m.mean((1, 2, 3)).sum())
                seen = m.sum(dim=(1, 2, 3)) > 0.5  # edit_share: samples that see the region
                inside, total = change_sums(xe, x, m)
                share = share_of_sums(inside, total)  # change_share, keeping the sums
                escaped = share < ESCAPE_SHARE
                acc["share_sum"] += float(share[seen].sum())
                acc["share_count"] += float(seen.sum())
                acc["escape_count"] += float(escaped[seen].sum())
                acc["pooled_in"] += float(inside[seen].sum())
                acc["pooled_total"] += float(total[seen].sum())
                for view, in_view in (views or {}).items():
                    keep = seen & in_view
                    for key, v in (
                        ("share_sum", share),
                        ("share_count", keep),
                        ("total", total),
                        ("escape_count", escaped),
                    ):
                        acc[f"{key}/{view}"] = acc.get(f"{key}/{view}", 0.0) + float(v[keep].sum())
    result = {
        name: {m: {k: v / num for k, v in acc.items() if "/" not in k} for m, acc in per.items()}
        for name, per in sums.items()
    }
    for name, per_map in result.items():
        for map_name, acc in per_map.items():
            acc["out_over_in"] = acc["edit_out"] / max(acc["edit_in"], 1e-12)
            seen = max(acc.pop("share_count"), 1e-12)
            acc["edit_share"] = acc.pop("share_sum") / seen
            acc["edit_escapes"] = acc.pop("escape_count") / seen
            acc["edit_share_pooled"] = acc.pop("pooled_in") / max(acc.pop("pooled_total"), 1e-12)
            by_view = sums[name][map_name]
            if "share_sum/front" in by_view:  # None where no sample of that view saw the part
                counts = {v: by_view[f"share_count/{v}"] for v, _, _ in VIEWS}
                acc["edit_share_by_view"] = {
                    v: by_view[f"share_sum/{v}"] / n if n else None for v, n in counts.items()
                }
                acc["edit_escapes_by_view"] = {
                    v: by_view[f"escape_count/{v}"] / n if n else None for v, n in counts.items()
                }
                acc["seen_by_view"] = {v: int(n) for v, n in counts.items()}
                acc["change_by_view"] = {
                    v: by_view[f"total/{v}"] / n if n else None for v, n in counts.items()
                }
            acc["region_var"] = moments[f"{name}/{map_name}"].diversity()
    settings = {
        "num": num,
        "seed": seed,
        "mode": mode,
        "alpha": alpha,
        "images": "[0, 1]",
    }
    if maps and "depth" in maps:
        settings["depth"] = "world units"
    return {"link_mse": result, "settings": settings}


def compare_to_unlinked(
    linked: Mapping[str, Mapping[str, Mapping[str, float]]],
    unlinked: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """What the link bought over the same fine-tuning without it, per link and map.

    linked, unlinked: the ``"link_mse"`` parts of two :func:`link_mse` results for the same
    links and maps (same seeds and settings). Returns
    ``{"out_over_in_ratio_off_vs_on": {link: {map: r}}, "edit_in_on_over_off": {...}}``:
    r = unlinked ``out_over_in`` / linked ``out_over_in`` (how many times more local the
    edit is; >= 3 is a clearly linked part), and the linked ``edit_in`` as a share of the
    unlinked one
    (how much of the part's own change linking kept; >= 0.5 means it was not erased). When
    both results have ``edit_share``, also ``"edit_share_on_over_off"``: how many times more
    of the edit's summed change lies inside the part with the link.
    """
    if {k: set(v) for k, v in linked.items()} != {k: set(v) for k, v in unlinked.items()}:
        raise ValueError(
            f"links/maps differ: linked {sorted(linked)} vs unlinked {sorted(unlinked)}"
        )
    ratio = {
        name: {
            m: unlinked[name][m]["out_over_in"] / max(on["out_over_in"], 1e-12)
            for m, on in maps.items()
        }
        for name, maps in linked.items()
    }
    kept = {
        name: {
            m: on["edit_in"] / max(unlinked[name][m]["edit_in"], 1e-12) for m, on in maps.items()
        }
        for name, maps in linked.items()
    }
    result = {"out_over_in_ratio_off_vs_on": ratio, "edit_in_on_over_off": kept}
    if all(
        "edit_share" in m for maps in (*linked.values(), *unlinked.values()) for m in maps.values()
    ):
        result["edit_share_on_over_off"] = {
            name: {
                m: on["edit_share"] / max(unlinked[name][m]["edit_share"], 1e-12)
                for m, on in maps.items()
            }
            for name, maps in linked.items()
        }
    return result


@torch.no_grad()
def cross_leak(
    G: torch.nn.Module,
    links: Sequence[Link],
    *,
    num: int = 64,
    seed: int = 1000,
    batch: int = 32,
    cameras: torch.Tensor | None = None,
    maps: Mapping[str, MapFn] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """How much resampling link i changes link j's region: ``{map: {i: {j: mse}}}``.

    The per-pixel mean squared change inside each link's region (on the original's mask)
    when link i's axes are taken from another seed's w (as :func:`link_mse`'s ``edit``),
    plus ``"outside_all"``: outside every region. The diagonal is link_mse's edit_in; a
    good multi-link model has small off-diagonal entries. Same seeds and cameras as
    :func:`link_mse`.
    """
    device = next(G.parameters()).device
    if cameras is None:
        cameras = eval_cameras(G, num, seed, device)
    sums: dict[str, dict[str, dict[str, float]]] = {}
    for start in range(0, num, batch):
        seeds = range(seed + start, seed + min(num, start + batch))
        c = cameras[start : start + len(seeds)].to(device)
        ws = G.mapping(seeds_to_z(seeds, G.z_dim).to(device), c)
        other = G.mapping(seeds_to_z([s + num for s in seeds], G.z_dim).to(device), c)
        base = G.synthesis(ws, c, noise_mode="const")
        maps = maps or default_maps(base)
        masks = {lk.name: lk.region(base, c) for lk in links}
        union = torch.stack(list(masks.values())).amax(0)
        for lk in links:
            am = lk.axis_mask(G.w_dim, device)
            edit = G.synthesis(swap_axes(ws, other, am), c, noise_mode="const")
            for name, fn in maps.items():
                x, xe = fn(base), fn(edit)
                row = sums.setdefault(name, {}).setdefault(lk.name, {})
                regions = {**masks, "outside_all": 1 - union}
                for target, mask in regions.items():
                    mse = masked_mse(xe, x, resize_mask(mask, x.shape[-2:])).sum()
                    row[target] = row.get(target, 0.0) + float(mse)
    return {
        m: {i: {j: v / num for j, v in row.items()} for i, row in per.items()}
        for m, per in sums.items()
    }
