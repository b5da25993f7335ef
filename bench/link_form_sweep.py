"""Which link-loss settings form links when fine-tuning a converged base (issue #8).

    python bench/link_form_sweep.py --minutes 5 --out bench/results/link_form_sweep.json
    python bench/link_form_sweep.py --variants off,rel03i2 --minutes 8 --parallel 1

Fine-tunes ``--config`` (default: the 3-D quickstart, from base:heads_3d) once per variant,
all at the same wall-clock budget and side by side (``--parallel`` at a time; on a GPU
machine all at once), then measures link_mse on ``--num`` seeds and reports, per link and
map, how many times lower edit_out / edit_in is than the ``off`` variant and edit_in's
ratio to it (issue #8 asks >= 3x and >= 0.5). ``--data`` points to a data-set zip (e.g.
from ``linkgan synth``) where pytorch3d, which renders the built-in synthetic set, is
missing. Writes JSON; never asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linkgan import api  # noqa: E402


def _v(form: str, lam: float, interval: int, *extra: str) -> list[str]:
    """A variant spelled out in full, so results do not depend on the preset's values."""
    return [
        f"link.form={form}",
        f"link.lambda_in={lam}",
        f"link.lambda_out={lam}",
        f"link.interval={interval}",
        f"link.batch_shrink={2 if interval >= 4 else 1}",
        *extra,
    ]


VARIANTS = {
    "off": ["link.enabled=false"],
    "preset": [],  # whatever --config says
    "abs_l3i4": _v("absolute", 3, 4),  # the 3-D quickstart before the relative form
    "abs_l03i4": _v("absolute", 0.3, 4),
    "abs_l10i2": _v("absolute", 10, 2),
    "abs_l10i2_quiet": _v("absolute", 10, 2, "link.init_axes_scale=0.1"),
    "abs_l30i1": _v("absolute", 30, 1),
    "abs_l3i4_volume": _v("absolute", 3, 4, "link.volume_weight=1.0"),
    "rel_l1i4": _v("relative", 1, 4),
    "rel_l1i4_quiet": _v("relative", 1, 4, "link.init_axes_scale=0.3"),
    "rel_l03i4": _v("relative", 0.3, 4),
    "rel_l01i4": _v("relative", 0.1, 4),
    "rel_l03i2": _v("relative", 0.3, 2),
}


def train_all(names: list[str], args: argparse.Namespace, root: Path) -> None:
    common = [
        f"train.minutes={args.minutes}",
        "train.kimg=0",
        f"train.num_threads={args.threads}",
        "train.sample_every_kimg=1000",
        *([f"data.path={args.data}"] if args.data else []),
        *args.overrides,
    ]
    pending = list(names)
    running: dict[str, subprocess.Popen] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            cmd = [sys.executable, "-m", "linkgan", "train", "--config", args.config]
            cmd += ["--out", str(root / name), "--no-progress"]
            for item in [*common, *VARIANTS[name]]:
                cmd += ["--set", item]
            log = open(root / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
            running[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                print(f"{name}: exit {proc.returncode}", flush=True)
                del running[name]
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="configs/quickstart_3d.yaml")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--parallel", type=int, default=1, help="trainings at a time")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per training")
    ap.add_argument("--num", type=int, default=128, help="seeds for link_mse")
    ap.add_argument("--data", default="", help="data-set zip instead of the built-in set")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default="bench/results/link_form_sweep.json")
    args = ap.parse_args()
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or "off" not in names:
        ap.error(f"variants: unknown {unknown}" if unknown else "variants: 'off' is the baseline")
    result: dict = {"config": args.config, "minutes": args.minutes, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        train_all(names, args, Path(tmp))
        for name in names:
            run = Path(tmp) / name
            stats = [json.loads(line) for line in (run / "stats.jsonl").open()]
            metrics = api.measure(run, ["link_mse"], num=args.num, progress=False)
            result["variants"][name] = {
                "overrides": VARIANTS[name],
                "kimg": max(s.get("kimg", 0.0) for s in stats),
                "link_mse": metrics["link_mse"],
            }
    off = result["variants"]["off"]["link_mse"]
    for name, entry in result["variants"].items():
        entry["vs_off"] = {
            link: {
                m: {
                    "out_over_in_lower_x": off[link][m]["out_over_in"]
                    / max(v["out_over_in"], 1e-12),
                    "edit_in_ratio": v["edit_in"] / max(off[link][m]["edit_in"], 1e-12),
                }
                for m, v in per_map.items()
            }
            for link, per_map in entry["link_mse"].items()
        }
        summary = {
            link: {
                m: f"{v['out_over_in_lower_x']:.1f}x in {v['edit_in_ratio']:.2f}"
                for m, v in pm.items()
            }
            for link, pm in entry["vs_off"].items()
        }
        print(name, f"{entry['kimg']:.1f} kimg", summary, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
