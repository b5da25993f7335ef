"""The README's linking tables: train a quickstart with the link on and off (same budget,
one after the other; with ``train.init`` both start from the same base) and measure
link_mse on both.

    python bench/quickstart_link.py --minutes 6 --out bench/results/quickstart_link.json

About 13 minutes on 2 cores at the default budget. Extra ``--set`` overrides apply to both
runs (e.g. ``--set link.batch_shrink=1``). ``--at 3,6,9`` (with ``--kimg 9``) also measures
the checkpoints written at those kimg: how the link forms, from one pair of runs.
``--fid 500`` adds FID/KID of both final models (a link can buy locality with looks).
``--modes on --unlinked FILE`` compares a linked run against the unlinked run stored in FILE
(this script's JSON, ``link_off``, or a demo's ``metrics.json``, ``unlinked``): a change to
``link.*`` alone leaves the unlinked fine-tune as it was, so it need not be trained again.

    python bench/quickstart_link.py --config configs/quickstart_3d.yaml --minutes 0 \
        --kimg 9 --at 3,6 --num 128 --out bench/results/quickstart3d_9kimg.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from link_core.metrics import compare_to_unlinked
from link_core.weights import checkpoint as ckpt
from linkgan import api


def _measure_at(run_dir: Path, kimg: float, num: int) -> dict:
    """link_mse of the checkpoint written at ``kimg`` (the first one at or past it)."""
    for path in ckpt.list_checkpoints(run_dir):
        seen = int(ckpt.CKPT_PATTERN.match(path.name).group(1))
        if seen >= kimg * 1000:
            metrics = api.measure(path, ["link_mse"], num=num)
            return {"kimg": seen / 1000, "link_mse": metrics["link_mse"]}
    raise SystemExit(f"--at: no checkpoint at or past {kimg} kimg in {run_dir}")


def _stored_unlinked(parser: argparse.ArgumentParser, path: str, modes: list[str]) -> dict:
    """The unlinked run of an earlier result: ``link_off`` (this script) or ``unlinked`` (a
    demo's metrics.json), with its ``link_mse`` and where it came from."""
    if modes != ["on"]:
        parser.error("--unlinked: only with --modes on (the unlinked run is read, not trained)")
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        parser.error(f"--unlinked: cannot read {path}: {e}")
    off = (stored.get("link_off") or stored.get("unlinked")) if isinstance(stored, dict) else None
    if not isinstance(off, dict) or "link_mse" not in off:
        parser.error(f"--unlinked: {path} has no link_off / unlinked run with link_mse")
    return {**off, "from": path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart_2d.yaml")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--out", default="bench/results/quickstart_link.json")
    parser.add_argument("--kimg", type=float, default=0.0, help="image budget (0: minutes only)")
    parser.add_argument("--modes", default="on,off", help="which runs: on, off or both")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--at", default="", help="also measure at these kimg, e.g. 3,6")
    parser.add_argument(
        "--fid", type=int, default=0, help="also FID/KID of the final models on N images (0: off)"
    )
    parser.add_argument(
        "--keep",
        default="",
        help="train in DIR/on, DIR/off and keep the runs (one already there resumes)",
    )
    parser.add_argument(
        "--unlinked",
        default="",
        help="with --modes on: compare against the unlinked run in this JSON (link_off / unlinked)",
    )
    args = parser.parse_args()
    try:
        at = [float(k) for k in args.at.split(",") if k]
    except ValueError:
        parser.error(f"--at: expected kimg values like 3,6; got {args.at!r}")
    if any(k <= 0 for k in at):
        parser.error(f"--at: kimg values must be > 0, got {args.at!r}")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in ("on", "off") for m in modes):
        parser.error(f"--modes: expected on, off or on,off; got {args.modes!r}")
    stored_off = _stored_unlinked(parser, args.unlinked, modes) if args.unlinked else None

    result = {
        "config": args.config,
        "minutes": args.minutes,
        "kimg": args.kimg,
        "overrides": args.overrides,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)  # --keep: to look at the pictures
        for mode in modes:
            overrides = [
                *args.overrides,
                f"train.minutes={args.minutes}",
                f"train.kimg={args.kimg}",
                f"link.enabled={'true' if mode == 'on' else 'false'}",
            ]
            if at:  # a checkpoint at every multiple of the smallest step, all kept
                step = min(b - a for a, b in zip([0.0, *sorted(at)], sorted(at), strict=False))
                overrides += [f"train.ckpt_every_kimg={step}", "train.keep_ckpts=0"]
            run = api.train(root / mode, args.config, overrides, progress=True)
            metrics = api.measure(run.run_dir, ["link_mse"], num=args.num)
            result[f"link_{mode}"] = {
                "steps": run.steps,
                "kimg": run.images_seen / 1000,
                "link_mse": metrics["link_mse"],
                "settings": metrics["settings"],
                "at": {k: _measure_at(run.run_dir, k, args.num) for k in at},
            }
            if args.fid:  # linking must not cost the looks: FID beside the ratios
                quality = api.measure(run.run_dir, ["fid", "kid"], num=args.fid)
                result[f"link_{mode}"].update(fid=quality["fid"], kid=quality["kid"])
    if stored_off is not None:
        result["link_off"] = stored_off
    compared = "link_on" in result and "link_off" in result
    if compared:
        # How many times lower edit_out / edit_in is with the link, per link and map (RGB,
        # depth), and whether linking kept the part's own edit (edit_in on / off; >= 0.5).
        result.update(
            compare_to_unlinked(result["link_on"]["link_mse"], result["link_off"]["link_mse"])
        )
        for k in at if stored_off is None else ():  # a stored run has no checkpoints to match
            result.setdefault("at", {})[k] = compare_to_unlinked(
                result["link_on"]["at"][k]["link_mse"], result["link_off"]["at"][k]["link_mse"]
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if compared:
        print(json.dumps(result["out_over_in_ratio_off_vs_on"]))
        print(json.dumps(result["edit_in_on_over_off"]))


if __name__ == "__main__":
    main()
