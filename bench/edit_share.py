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

A model without links in its config (a base) is measured with the config's links
(``--config-links``: every model is). About a minute per model on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from link_core.config import load_config
from link_core.link import change_share, resize_mask
from link_core.metrics import link_mse
from linkgan import api
from render.grids import link_resamples

KEYS = ("edit_share", "region_area", "out_over_in", "edit_in", "edit_out")


@torch.no_grad()
def grid_shares(
    G: torch.nn.Module, links: list, seeds: range, samples: int, render_res: int | None = None
) -> dict:
    """Per link and grid seed: each resample's share of its change inside the region
    (RGB; depth for 3-D models) and the region's share of the image, as the grids show;
    per link also the ``mean`` over its grids' resamples."""
    out: dict = {}
    for link in links:
        for seed in seeds:
            ws, c, _ = api.latent(G, seed, None)
            base, edited, mask = link_resamples(G, ws, link, samples, seed, c, render_res)
            row = {"region_area": float(mask.mean())}
            for key, name in (("image", "image"), ("image_depth", "depth")):
                if key in base:
                    x = base[key].expand_as(edited[key])
                    m = resize_mask(mask, x.shape[-2:]).expand(len(x), -1, -1, -1)
                    row[name] = [round(float(v), 4) for v in change_share(edited[key], x, m)]
            out.setdefault(link.name, {})[str(seed)] = row
        grids = out[link.name]
        out[link.name]["mean"] = {
            name: round(sum(v for g in grids.values() for v in g[name]) / (len(seeds) * samples), 4)
            for name in ("image", "depth")
            if name in grids[str(seeds[0])]
        }
    return out


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
    args = parser.parse_args()
    fallback = api.make_links(load_config(args.config))
    result: dict = {"config": args.config, "num": args.num, "models": {}}
    for spec in args.weights:
        G, cfg = api.load_generator(spec)
        links = fallback if args.config_links else (api.model_links(cfg) or fallback)
        mse = link_mse(G, links, num=args.num, seed=cfg.metrics.seed)["link_mse"]
        result["models"][spec] = {
            "link_mse": {
                n: {m: {k: v[k] for k in KEYS} for m, v in maps.items()} for n, maps in mse.items()
            },
            "grids": grid_shares(
                G, links, range(args.grid_seeds), args.samples, args.render_res or None
            ),
        }
        print(spec)
        for n, maps in mse.items():
            cells = "  ".join(
                f"{m} {v['edit_share']:.3f} (area {v['region_area']:.3f})" for m, v in maps.items()
            )
            grid = result["models"][spec]["grids"][n]["mean"]
            front = " / ".join(f"{v:.3f}" for v in grid.values())
            print(f"  {n:8s} change inside: {cells}; the grids: {front}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
