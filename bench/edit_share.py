"""Where an edit's change goes: the share of each resample's summed squared change that lies
inside its link's region (``link_mse``'s ``edit_share``), for several models measured with
the same links, over N seeds and on the demo's own edit grids (seeds 0-2 from the front,
4 resamples each: what ``make demo`` writes to ``edits/``).

The per-pixel ratio edit_out / edit_in (the paper's Table 2) says how strongly a pixel
outside moves compared with one inside; this says how much of what a person sees change in
an edit's heat map is the part. A part that covers 1% of the image needs a per-pixel ratio
near 0.01 before half of the change is its own.

    python bench/edit_share.py base:heads_3d base:heads_3d_links \\
        --config configs/quickstart_3d.yaml --out bench/results/edit_share.json

``--render-res 64`` measures the grids as ``make demo`` renders them (finer than trained).
``--maps maps.png --grid-seeds 24`` also draws where the change goes: per model (rows) and
link, the RMS change in RGB and depth over the grids' resamples, the region outlined.
``--yaw 180`` renders the grids (and maps) from that yaw instead of the front (3-D models;
each grid row then also holds the silhouette's mean opacity, ``alpha``: whether the head
hides what lies behind it).

A model without links in its config (a base) is measured with the config's links
(``--config-links``: every model is). About a minute per model on 2 cores. For 3-D models
the JSON also splits the share by view (front: within 60° of yaw of the front, side: 60-120°,
back: beyond), with the number of views that saw the part in each.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from link_core.data.cameras import orbit_labels
from link_core.data.images import write_png
from link_core.link import change_share, resize_mask
from link_core.metrics import link_mse
from link_core.train.config import load_config
from linkgan import api
from linkgan.report import views_text
from render.frames import labelled_grid
from render.grids import link_resamples
from render.heatmap import colorize, outline, upscale

KEYS = ("edit_share", "edit_share_pooled", "region_area", "out_over_in", "edit_in", "edit_out")
# 3-D models: the share per view range, how many views saw the part, their mean change
VIEW_KEYS = ("edit_share_by_view", "seen_by_view", "change_by_view")


@torch.no_grad()
def grid_shares(
    G: torch.nn.Module,
    links: list,
    seeds: range,
    samples: int,
    render_res: int | None = None,
    yaw_deg: float | None = None,
) -> tuple[dict, dict]:
    """Per link and grid seed: each resample's share of its change inside the region
    (RGB; depth for 3-D models) and the region's share of the image, as the grids show;
    per link also the ``mean`` over its grids' resamples. ``yaw_deg``: render from that yaw
    (pitch 0) instead of the model's default camera; rows then hold ``alpha``, the mean
    opacity where the original's opacity exceeds 0.5 (its silhouette).

    Also returns where the change goes: per link and map, the squared change per pixel
    averaged over every grid resample ``[H, W]``, and under ``"region"`` the mean mask."""
    out: dict = {}
    maps: dict = {}
    view = None
    if yaw_deg is not None:
        view = orbit_labels(torch.tensor([math.radians(yaw_deg)]), torch.zeros(1), G.camera)
    for link in links:
        acc: dict[str, torch.Tensor] = {}
        for seed in seeds:
            ws, c, _ = api.latent(G, seed, None)
            c = c if view is None else view
            base, edited, mask = link_resamples(G, ws, link, samples, seed, c, render_res)
            row = {"region_area": float(mask.mean())}
            if view is not None and "image_alpha" in base:
                alpha = base["image_alpha"]
                row["alpha"] = round(float(alpha[alpha > 0.5].mean()), 4)
            size = base["image"].shape[-2:]
            acc["region"] = acc.get("region", 0) + resize_mask(mask, size)[0, 0] / len(seeds)
            for key, name in (("image", "image"), ("image_depth", "depth")):
                if key in base:
                    x = base[key].expand_as(edited[key])
                    sq = (edited[key] - x).square().sum(dim=1).mean(dim=0)  # [H, W]
                    acc[name] = acc.get(name, 0) + sq / len(seeds)
                    m = resize_mask(mask, x.shape[-2:]).expand(len(x), -1, -1, -1)
                    row[name] = [round(float(v), 4) for v in change_share(edited[key], x, m)]
                    row[f"{name}_change"] = round(float(sq.sum()), 5)  # per resample, summed
            out.setdefault(link.name, {})[str(seed)] = row
        maps[link.name] = acc
        grids = out[link.name]
        out[link.name]["mean"] = {
            name: round(sum(v for g in grids.values() for v in g[name]) / (len(seeds) * samples), 4)
            for name in ("image", "depth")
            if name in grids[str(seeds[0])]
        }
    return out, maps


def change_maps_image(maps: dict[str, dict], tile: int = 128, view: str = "front") -> np.ndarray:
    """Rows: models; columns: each link's mean RGB (and depth) change (``grid_shares``'s
    maps) seen from ``view``, each tile on its own scale (where, not how much), the region
    outlined."""
    rows, cols = [], []
    for per_link in maps.values():
        row = []
        for name, acc in per_link.items():
            region = acc["region"].cpu().numpy()
            for kind in ("image", "depth"):
                if kind in acc:
                    rms = acc[kind].sqrt().cpu().numpy()  # like the grids' |change| maps
                    row.append(outline(upscale(colorize(rms, float(rms.max())), tile), region))
                    if len(rows) == 0:
                        cols.append(f"{name} {'RGB' if kind == 'image' else kind}")
        rows.append(row)
    title = f"RMS change of each link's resamples ({view} view; own scale per tile)"
    labels = ["/".join(Path(spec).parts[-2:]) for spec in maps]  # run/on, not the path
    return labelled_grid(rows, cols, labels, title=title, row_label_width=96)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="run dirs, weights files or base:NAME")
    parser.add_argument("--config", default="configs/quickstart_3d.yaml", help="links for bases")
    parser.add_argument(
        "--config-links",
        action="store_true",
        help="measure every model with the config's links (one yardstick for all)",
    )
    parser.add_argument("--num", type=int, default=128)
    parser.add_argument("--grid-seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument(
        "--render-res", type=int, default=0, help="grids' neural rendering size (0: as trained)"
    )
    parser.add_argument("--out", default="bench/results/edit_share.json")
    parser.add_argument("--maps", default="", help="also write the change maps to this PNG")
    parser.add_argument(
        "--yaw", type=float, default=None, help="3-D: grids and maps from this yaw (degrees)"
    )
    args = parser.parse_args()
    result: dict = {"config": args.config, "num": args.num, "models": {}}
    if args.yaw is not None:
        result["grid_yaw_deg"] = args.yaw
    fallback = api.model_links(load_config(args.config))
    change_maps: dict = {}
    for spec in args.weights:
        G, cfg = api.load_generator(spec)
        if args.yaw is not None and not G.is_3d:
            parser.error(f"--yaw: {spec} is a 2-D model (no cameras to turn)")
        links = fallback if args.config_links else (api.model_links(cfg) or fallback)
        mse = link_mse(G, links, num=args.num, seed=cfg.metrics.seed)["link_mse"]
        grids, change_maps[spec] = grid_shares(
            G, links, range(args.grid_seeds), args.samples, args.render_res or None, args.yaw
        )
        result["models"][spec] = {
            "link_mse": {
                n: {m: {k: v[k] for k in (*KEYS, *VIEW_KEYS) if k in v} for m, v in maps.items()}
                for n, maps in mse.items()
            },
            "grids": grids,
        }
        print(spec)
        for n, maps in mse.items():
            cells = "  ".join(
                f"{m} {v['edit_share']:.3f} (pooled {v['edit_share_pooled']:.3f},"
                f" area {v['region_area']:.3f}"
                + (f"; front / side / back {views_text(v)})" if VIEW_KEYS[0] in v else ")")
                for m, v in maps.items()
            )
            grid = result["models"][spec]["grids"][n]["mean"]
            front = " / ".join(f"{v:.3f}" for v in grid.values())
            print(f"  {n:8s} change inside: {cells}; the grids: {front}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if args.maps:
        view = "front" if args.yaw is None else f"{args.yaw:g}° yaw"
        print(f"change maps -> {write_png(change_maps_image(change_maps, view=view), args.maps)}")


if __name__ == "__main__":
    main()
