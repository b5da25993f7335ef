"""FIR resampling on the CPU: the folded single-channel convolution against a depthwise one.

``conv_per_channel`` (stylegan_link/resample.py) picks the depthwise form on CPUs and the
folded one on GPUs; this measures why, forward + backward and with R1's double backward,
at shapes StyleGAN2 and EG3D use::

    python bench/fir_resample.py --out bench/results/fir_resample_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stylegan_link.resample import conv_depthwise, conv_folded, fir_kernel  # noqa: E402

SHAPES = [(4, 128, 64, 64), (4, 32, 256, 256), (8, 512, 16, 16)]
OPS = {  # name: (transpose, gain, conv kwargs)
    "down": (False, 1.0, {"stride": 2, "padding": 1}),
    "up": (True, 4.0, {"stride": 2, "padding": 1}),
}


def best_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(shape: tuple[int, ...], op: str, reps: int) -> dict:
    transpose, gain, kw = OPS[op]
    k = fir_kernel(gain)
    x = torch.randn(*shape, requires_grad=True)
    row: dict = {"shape": list(shape), "op": op}
    for name, conv in (("folded", conv_folded), ("depthwise", conv_depthwise)):

        def fwd_bwd(conv=conv) -> None:
            conv(x, k, transpose, **kw).square().sum().backward()

        def double(conv=conv) -> None:  # R1: the gradient's norm, differentiated again
            y = conv(x, k, transpose, **kw).square().sum()
            (g,) = torch.autograd.grad(y, x, create_graph=True)
            g.square().sum().backward()

        fwd_bwd()
        row[f"{name}_fwd_bwd_s"] = best_time(fwd_bwd, reps)
        row[f"{name}_double_bwd_s"] = best_time(double, reps)
    a = conv_folded(x, k, transpose, **kw)
    b = conv_depthwise(x, k, transpose, **kw)
    row["max_abs_difference"] = float((a - b).abs().max())
    row["speedup_fwd_bwd"] = row["folded_fwd_bwd_s"] / row["depthwise_fwd_bwd_s"]
    row["speedup_double_bwd"] = row["folded_double_bwd_s"] / row["depthwise_double_bwd_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for shape in SHAPES:
        for op in OPS:
            row = measure(shape, op, args.reps)
            rows.append(row)
            print(
                f"{op:4s} {str(shape):20s} fwd+bwd {row['folded_fwd_bwd_s'] * 1e3:7.1f} -> "
                f"{row['depthwise_fwd_bwd_s'] * 1e3:6.1f} ms ({row['speedup_fwd_bwd']:.1f}x), "
                f"double bwd {row['speedup_double_bwd']:.1f}x, "
                f"max diff {row['max_abs_difference']:.1e}",
                flush=True,
            )
    doc = {
        "machine": {"cpu": platform.machine(), "threads": args.threads, "torch": torch.__version__},
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
