"""What a link costs in looks, the LinkGAN paper's way (§4.2, Table 1): from ONE checkpoint,
fine-tune twice for the SAME kimg with the same seed and settings, link on (the preset) and
link off (``--set link.enabled=false``), then measure the base, the unlinked and the linked
model alike: FID and KID with the paper's protocol (the whole data set's statistics, cached;
``--num`` fakes) and ``link_mse`` for locality. Equal kimg, not equal minutes: the link's
extra time per image is reported beside, not traded for fewer images.

    python bench/link_cost.py --init base:toyfaces_2d --config configs/quickstart_2d.yaml \\
        --kimg 0.5 --num 500 --out bench/results/link_cost_toyfaces_2d.json

Writes JSON (with the protocol stated: init, kimg, seeds, fake and real counts) and prints a
Markdown table. ``--repeats N`` fine-tunes each side N times (training seeds ``seed …``) and
draws other fakes each time, so every figure gets a ± (sample std over the repeats); the
base's ± is the FID estimator's own noise at ``--num`` fakes. ``--real-num`` caps the reals
for a quick check (stated in the protocol). Extra ``--set`` overrides apply to both runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from link_core.errors import UserError  # noqa: E402
from link_core.train.config import load_config  # noqa: E402
from link_core.weights import checkpoint as ckpt  # noqa: E402
from linkgan import api  # noqa: E402
from linkgan.model import Model  # noqa: E402

SIDES = ("base", "link_off", "link_on")


def measure(model: Model, args: argparse.Namespace, fake_seed: int) -> dict[str, Any]:
    """FID / KID (``args.num`` fakes from ``fake_seed``) and link_mse of one model."""
    quality = model.measure(
        ["fid", "kid"],
        args.num,
        progress=args.progress,
        real_num=args.real_num,
        fake_seed=fake_seed,
    )
    local = model.measure(["link_mse"], args.link_num or None, progress=False)
    return {
        "fid": quality["fid"],
        "kid": quality["kid"],
        "inception": quality["inception"],
        "protocol": quality["protocol"],
        "link_mse": local["link_mse"],
        "link_mse_settings": local["settings"],
    }


def fine_tune(root: Path, args: argparse.Namespace, seed: int, link: bool) -> dict[str, Any]:
    """Train one side from ``args.init`` for exactly ``args.kimg`` (no minutes budget)."""
    sets = [
        *args.overrides,
        f"train.init={args.init}",
        f"train.kimg={args.kimg}",
        "train.minutes=0",  # the image budget alone decides: equal kimg on both sides
        f"train.seed={seed}",
    ]
    if not link:
        sets.append("link.enabled=false")
    run = api.train(root, args.config, sets, progress=args.progress)
    return {
        "run": str(run.run_dir),
        "kimg": run.images_seen / 1000,
        "steps": run.steps,
        "minutes": round(run.seconds / 60, 2),
        "overrides": sets,
    }


def _mean_std(values: list[float]) -> dict[str, float]:
    out = {"mean": statistics.fmean(values)}
    if len(values) > 1:
        out["std"] = statistics.stdev(values)  # sample std: the spread of one repeat
    return out


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mean (and std over repeats) of FID, KID, minutes and each link's map ``out_over_in``
    / ``edit_in``, per side."""
    out: dict[str, Any] = {}
    for side, reps in runs.items():
        s: dict[str, Any] = {k: _mean_std([r[k] for r in reps]) for k in ("fid", "kid")}
        if "minutes" in reps[0]:
            s["minutes"] = _mean_std([r["minutes"] for r in reps])
            s["kimg"] = reps[0]["kimg"]
        s["link_mse"] = {
            link: {
                m: {k: _mean_std([r["link_mse"][link][m][k] for r in reps]) for k in vals}
                for m, vals in maps.items()
                if isinstance(vals, dict)
            }
            for link, maps in reps[0]["link_mse"].items()
        }
        out[side] = s
    return out


def _cell(v: dict[str, float], fmt: str) -> str:
    text = format(v["mean"], fmt)
    return text + (f" ± {format(v['std'], fmt)}" if "std" in v else "")


def markdown(result: dict[str, Any]) -> str:
    """The Table 1 comparison: one row per side."""
    p, summary = result["protocol"], result["summary"]
    maps = [(link, m) for link, per in summary["link_on"]["link_mse"].items() for m in per]
    lines = [
        f"Equal kimg: {p['kimg']} kimg from `{p['init']}` with `{p['config']}`, "
        f"seeds {p['train_seeds']}; FID/KID: {p['fid']['summary']}.",
        "",
        "| model | kimg | minutes | FID | KID ×10³ | "
        + " | ".join(f"out/in {link} {m}" for link, m in maps)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(maps),
    ]
    for side in SIDES:
        s = summary[side]
        kimg = f"{s['kimg']:g}" if "kimg" in s else "0 (init)"
        minutes = _cell(s["minutes"], ".2f") if "minutes" in s else "–"
        kid = {k: v * 1e3 for k, v in s["kid"].items()}
        cells = [side, kimg, minutes, _cell(s["fid"], ".2f"), _cell(kid, ".2f")]
        cells += [_cell(s["link_mse"][link][m]["out_over_in"], ".3f") for link, m in maps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune both sides ``args.repeats`` times and measure base, off and on."""
    if args.kimg <= 0:
        raise UserError(f"--kimg: must be > 0, got {args.kimg}")
    if args.repeats < 1:
        raise UserError(f"--repeats: must be >= 1, got {args.repeats}")
    if args.num < 2:
        raise UserError(f"--num: FID/KID need at least 2 generated images, got {args.num}")
    preset = load_config(args.config, [*args.overrides, f"train.init={args.init}"])
    if not preset.link.enabled or not preset.link.links:
        raise UserError(f"--config: {args.config} has no enabled link to compare against off")
    base = Model.load(args.init)  # a bad --init fails here, before any training
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for r in range(args.repeats):
            seed = args.seed + r
            fake_seed = r * args.num  # other fakes per repeat: the ± includes FID's noise
            off = fine_tune(root / f"r{r}" / "off", args, seed, link=False)
            on = fine_tune(root / f"r{r}" / "on", args, seed, link=True)
            if on["kimg"] != off["kimg"]:
                raise RuntimeError(f"unequal budgets: {on['kimg']} vs {off['kimg']} kimg")
            on_model = Model.load(on["run"])
            # The base is measured with the linked run's config: the same links, data set
            # and metric settings as the fine-tunes (a base has no links of its own).
            yardstick = Model(base.G, on_model.config, base.source, args.init)
            runs["base"].append(measure(yardstick, args, fake_seed))
            runs["link_off"].append({**off, **measure(Model.load(off["run"]), args, fake_seed)})
            runs["link_on"].append({**on, **measure(on_model, args, fake_seed)})
    first = runs["base"][0]["protocol"]
    inception = {k: v for k, v in first.items() if k not in ("real_stats_cached", "fake_latents")}
    inception["fake_latents"] = (
        f"seeds r*{args.num} .. r*{args.num}+{args.num - 1} for repeat r (the same fakes for "
        "base, off and on within a repeat), truncation 1, noise const"
    )
    result: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "protocol": {
            "comparison": (
                "equal kimg: link on (the preset) vs link off (link.enabled=false), both "
                "fine-tuned from the same init for the same kimg with the same training seed "
                "and settings; base = the init itself, measured alike"
            ),
            "init": args.init,
            "init_file": str(base.source),
            "config": args.config,
            "overrides": args.overrides,
            "kimg": args.kimg,
            "train_seeds": [args.seed + r for r in range(args.repeats)],
            "repeats": args.repeats,
            "fake_images": args.num,
            "real_images": first["real_images"],
            "fid": inception,
            "link_mse": runs["base"][0]["link_mse_settings"],
            "std": "sample std over repeats (training seed and fakes differ per repeat)",
        },
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "torch": torch.__version__,
        },
        "runs": runs,
    }
    result["summary"] = summarize(runs)
    result["table_md"] = markdown(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--init", required=True, help="checkpoint, run directory or base:NAME")
    parser.add_argument("--config", default="configs/quickstart_2d.yaml", help="linked preset")
    parser.add_argument("--kimg", type=float, required=True, help="fine-tuning budget per side")
    parser.add_argument("--num", type=int, default=1000, help="generated images for FID/KID")
    parser.add_argument(
        "--real-num", type=int, default=None, help="cap the reals (default: the whole data set)"
    )
    parser.add_argument("--link-num", type=int, default=0, help="link_mse seeds (0: metrics.num)")
    parser.add_argument("--repeats", type=int, default=1, help="training seeds per side")
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--keep", default="", help="train in DIR/rN/{on,off} and keep the runs")
    parser.add_argument("--out", default="", help="JSON file to write")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        result = run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        ckpt.write_json(args.out, result)
    print(result["table_md"], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
