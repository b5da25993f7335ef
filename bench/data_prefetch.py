"""Training speed with and without ``train.prefetch`` on a data set that must be decoded.

A zip of PNG images (the toy faces, written once) is trained on by a small StyleGAN2 whose
step is short enough for decoding to matter; runs alternate prefetch on / off::

    python bench/data_prefetch.py --res 256 --out bench/results/data_prefetch_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from link_core.data.write import write_dataset_zip  # noqa: E402
from link_core.synth import ToyFaces  # noqa: E402
from linkgan.build import train  # noqa: E402


def seconds_per_kimg(run: Path) -> float:
    """The median of the run's logged ``Timing/s_per_kimg`` (its first tick dropped: warm-up)."""
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    values = [r["Timing/s_per_kimg"] for r in rows if "Timing/s_per_kimg" in r][1:]
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--kimg", type=float, default=0.4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    results: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset_zip(ToyFaces(args.res, num_images=args.images), Path(tmp) / "d.zip")
        sets = [
            f"data.path={data}",
            f"data.resolution={args.res}",
            f"model.resolution={args.res}",
            "model.channel_base=512",
            "model.channel_max=16",
            "model.z_dim=16",
            "model.w_dim=16",
            "train.batch=16",
            f"train.kimg={args.kimg}",
            "train.log_every_steps=4",
            "train.sample_every_kimg=1000",
            "train.ckpt_every_minutes=100",
            "link.enabled=false",
            "train.device=cpu",
        ]
        for r in range(args.rounds):
            for mode in ("on", "off"):
                run = Path(tmp) / f"{mode}{r}"
                train(run, None, [*sets, f"train.prefetch={mode == 'on'}"], progress=False)
                results[mode].append(seconds_per_kimg(run))
                print(f"round {r} prefetch {mode}: {results[mode][-1]:.2f} s/kimg", flush=True)
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    doc = {
        "setup": f"toy faces as a {args.images}-image PNG zip at {args.res}², a small StyleGAN2 "
        f"(channel base 512, max 16), batch 16, CPU, 2 threads, {args.rounds} rounds alternating",
        "s_per_kimg": results,
        "median_on": on,
        "median_off": off,
        "speedup": off / on,
    }
    print(json.dumps({k: doc[k] for k in ("median_on", "median_off", "speedup")}))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
