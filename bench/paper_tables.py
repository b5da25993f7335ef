"""The LinkGAN paper's tables at small scale (issue #5), as JSON and a Markdown table.

    python bench/paper_tables.py --quick --out bench/results/paper_tables_quick.json

- Table 1: FID / KID with and without the link loss at the same wall-clock budget, for the
  2-D quickstart (from scratch) and the 3-D quickstart (fine-tuned from base:heads_3d), and
  fine-tuning the converged base vs training the same linked model from scratch.
- Table 2: edit_in / edit_out per part (eyes, nose, mouth), RGB and depth, linked vs not.
- Table 3: the number of linked w axes (of 64) against rest_in and edit_out (2-D).
- Cross-leak: resample link i, mean change inside link j's region (3-D, RGB).

Every training runs for the same minutes on 2 threads, one after the other. ``--quick``
(about 50 minutes on a 2-core CPU) uses short budgets and few images: its FIDs are biased
upward by the small sample (compare columns, not with published numbers). Writes JSON and
a ``.md`` table beside it; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from link_core.metrics import cross_leak, link_mse  # noqa: E402
from linkgan import api  # noqa: E402

LEFT_EYE = "{box: [0.1875, 0.3125, 0.4375, 0.5625]}"  # quickstart_2d's region


def axes_override(n: int) -> str:
    return f"link.links=[{{name: left_eye, axes: [0, {n}], region: {LEFT_EYE}}}]"


def plan(quick: bool) -> dict[str, tuple[str, list[str], float]]:
    """Run name -> (config, overrides, minutes)."""
    m2, m3, m_axes = (4.0, 6.0, 3.0) if quick else (15.0, 30.0, 10.0)
    runs = {
        "2d_link": ("configs/quickstart_2d.yaml", [], m2),
        "2d_off": ("configs/quickstart_2d.yaml", ["link.enabled=false"], m2),
        "3d_finetune_link": ("configs/quickstart_3d.yaml", [], m3),
        "3d_finetune_off": ("configs/quickstart_3d.yaml", ["link.enabled=false"], m3),
        "3d_scratch_link": ("configs/quickstart_3d.yaml", ["train.init="], m3),
    }
    for n in (8, 32) if quick else (4, 8, 16, 32, 48):
        runs[f"2d_axes_{n}"] = ("configs/quickstart_2d.yaml", [axes_override(n)], m_axes)
    return runs


def run_one(root: Path, name: str, config: str, overrides: list[str], minutes: float, args):
    sets = [*overrides, f"train.minutes={minutes}", "train.kimg=0", "train.num_threads=2"]
    run = api.train(root / name, config, sets, progress=not args.no_progress)
    entry: dict = {
        "config": config,
        "overrides": overrides,
        "minutes": minutes,
        "kimg": round(run.images_seen / 1000, 2),
    }
    metrics = ["fid", "kid"] if not name.startswith("2d_axes") else []
    if metrics:
        entry.update(api.measure(run.run_dir, metrics, num=args.fid_num, progress=False))
    G, cfg = api.load_generator(run.run_dir)
    links = api.model_links(cfg)
    if links:
        entry["link_mse"] = link_mse(G, links, num=args.link_num, seed=cfg.metrics.seed)["link_mse"]
        if len(links) > 1:
            entry["cross_leak"] = cross_leak(G, links, num=args.link_num, seed=cfg.metrics.seed)
    return entry


def fmt(x: float) -> str:
    return f"{x * 1e3:.2f}"


def markdown(res: dict) -> str:
    runs = res["runs"]
    out = [f"Machine: {res['machine']}; `{res['command']}`", ""]
    out += ["**Table 1 (FID / KID, same minutes)**", ""]
    out += ["| run | minutes | kimg | FID | KID |", "|---|---|---|---|---|"]
    for name, r in runs.items():
        if "fid" in r:
            row = f"| {name} | {r['minutes']:g} | {r['kimg']} | {r['fid']:.1f} | {r['kid']:.4f} |"
            out.append(row)
    out += ["", "**Table 2 (×10⁻³: edit_in / edit_out per part; 3-D fine-tuned)**", ""]
    out += ["| run | map | " + " | ".join(runs["3d_finetune_link"]["link_mse"]) + " |"]
    out += ["|---|---|" + "---|" * len(runs["3d_finetune_link"]["link_mse"])]
    for name in ("3d_finetune_link", "3d_finetune_off", "3d_scratch_link"):
        lm = runs[name]["link_mse"]
        for m in next(iter(lm.values())):
            cells = [f"{fmt(lm[p][m]['edit_in'])} / {fmt(lm[p][m]['edit_out'])}" for p in lm]
            out.append(f"| {name} | {m} | " + " | ".join(cells) + " |")
    out += ["", "**Table 3 (2-D left eye: number of linked axes of 64; ×10⁻³)**", ""]
    out += [
        "| axes | kimg | edit_in | edit_out | rest_in | rest_out |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        if name.startswith("2d_axes"):
            m = r["link_mse"]["left_eye"]["image"]
            cells = " | ".join(fmt(m[k]) for k in ("edit_in", "edit_out", "rest_in", "rest_out"))
            out.append(f"| {name.split('_')[-1]} | {r['kimg']} | {cells} |")
    for name in ("3d_finetune_link", "3d_finetune_off"):
        leak = runs[name]["cross_leak"]["image"]
        targets = list(next(iter(leak.values())))
        out += ["", f"**Cross-leak, {name} (RGB ×10⁻³; row: resampled link)**", ""]
        out += ["| resampled | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
        for i, row in leak.items():
            out.append(f"| {i} | " + " | ".join(fmt(row[j]) for j in targets) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short budgets (about 50 CPU minutes)")
    ap.add_argument("--fid-num", type=int, default=0, help="images for FID (0: 256 quick, 2000)")
    ap.add_argument("--link-num", type=int, default=0, help="seeds for link_mse (0: 64 / 256)")
    ap.add_argument("--only", default="", help="comma-separated run names")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default="bench/results/paper_tables.json")
    args = ap.parse_args()
    args.fid_num = args.fid_num or (256 if args.quick else 2000)
    args.link_num = args.link_num or (64 if args.quick else 256)
    torch.set_num_threads(2)
    runs = plan(args.quick)
    only = [n for n in args.only.split(",") if n]
    if unknown := [n for n in only if n not in runs]:
        ap.error(f"--only: unknown run {unknown[0]!r} (known: {', '.join(runs)})")
    res: dict = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "quick": args.quick,
        "fid_num": args.fid_num,
        "link_num": args.link_num,
        "runs": {},
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, overrides, minutes) in runs.items():
            if only and name not in only:
                continue
            print(f"[{(time.time() - t0) / 60:.1f} min] {name}", flush=True)
            res["runs"][name] = run_one(Path(tmp), name, config, overrides, minutes, args)
    res["wall_minutes"] = round((time.time() - t0) / 60, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    if not only:
        out.with_suffix(".md").write_text(markdown(res), encoding="utf-8")
    print(f"wrote {out} ({res['wall_minutes']} min)")


if __name__ == "__main__":
    main()
