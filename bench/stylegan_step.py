"""StyleGAN2 backbone speed on this machine: G and G+D forward+backward, best of N.

    python bench/stylegan_step.py --out bench/results/stylegan_step.json

Sizes: the tiny quickstart (32², ch 32, batch 4) and the reference (64², ch 128,
batch 8). Writes JSON; never asserts (machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stylegan_link import Discriminator, Generator

SIZES = {
    "tiny_32_ch32_b4": dict(res=32, base=1024, cmax=32, batch=4, z=64),
    "ref_64_ch128_b8": dict(res=64, base=32768, cmax=128, batch=8, z=128),
}


def best_time(G, D, batch: int, reps: int) -> float:
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms up
        t = time.perf_counter()
        out = G(torch.randn(batch, G.z_dim))
        loss = F.softplus(-D(out)).mean() if D is not None else out["image"].square().mean()
        loss.backward()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/stylegan_step.json")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        }
    }
    for name, s in SIZES.items():
        kw = dict(channel_base=s["base"], channel_max=s["cmax"])
        G = Generator(s["z"], 0, s["z"], s["res"], mapping_layers=2, **kw)
        D = Discriminator(0, s["res"], **kw)
        result[name] = {
            "G_fwd_bwd_s": round(best_time(G, None, s["batch"], args.reps), 4),
            "G_D_fwd_bwd_s": round(best_time(G, D, s["batch"], args.reps), 4),
            "G_params": sum(p.numel() for p in G.parameters()),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
