"""EG3D backbone speed on this machine, at sizes we can compare with NVlabs EG3D (docs/results.md).

    python bench/eg3d_step.py --out bench/results/eg3d_step.json

- ``nvlabs_tiny``: img 64, render 32², 24 + 24 samples, batch 4, channel_base 8192,
  channel_max 128, mapping 2, pose-conditioned; tri-planes at 256² as NVlabs always makes
  them, and at 64² (ours may choose). Reference on this kind of CPU: G fwd (eval) 0.95 s,
  G fwd+bwd 2.31 s, D fwd+R1+bwd 0.49 s, density 128³ grid 2.2 s.
- ``ffhq512``: the paper's config at batch 1 (reference: G fwd 3.74 s, fwd+bwd 9.95 s,
  density 128³ 4.1 s).
"G fwd+bwd" is the generator alone (a loss on its outputs, no D). Median of N after a
warm-up. Writes JSON; never asserts (machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eg3d_link import build  # noqa: E402
from link_core.data.cameras import frontal_labels  # noqa: E402
from link_core.train.config import load_config  # noqa: E402
from link_core.train.gan_losses import r1_penalty  # noqa: E402

TINY = [
    "model.backbone=eg3d",
    "model.c_dim=25",
    "model.resolution=64",
    "data.resolution=64",
    "model.z_dim=512",
    "model.w_dim=512",
    "model.mapping_layers=2",
    "model.channel_base=8192",
    "model.channel_max=128",
    "model.extra={plane_channels: 32, decoder_hidden: 64, feature_channels: 32, "
    "render_resolution: 32, num_coarse: 24, num_fine: 24, sr_channels: 128}",
]
SIZES = {
    "nvlabs_tiny_planes256": (TINY + ["model.extra.plane_resolution=256"], 4),
    "nvlabs_tiny_planes64": (TINY + ["model.extra.plane_resolution=64"], 4),
    "ffhq512": (["--config", "configs/eg3d_ffhq512.yaml"], 1),
    # the paper's final render resolution (EG3D fades 64 -> 128 while training)
    "ffhq512_render128": (
        ["--config", "configs/eg3d_ffhq512.yaml", "model.extra.render_resolution=128"],
        1,
    ),
}
DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, reps: int) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def top_ops(fn, k: int = 12) -> list[dict]:
    """One profiled call of ``fn`` (after a warm-up): the ``k`` operators with the most self
    CPU time, with their share of the total."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    return [
        {
            "op": e.key,
            "self_s": round(e.self_cpu_time_total / 1e6, 4),
            "share": round(e.self_cpu_time_total / total, 3),
            "calls": e.count,
        }
        for e in ranked
    ]


def measure(
    overrides: list[str],
    batch: int,
    reps: int,
    skip_d: bool,
    train_batch: int = 0,
    profile_ops: bool = False,
) -> dict:
    config = None
    if overrides and overrides[0] == "--config":
        config, overrides = overrides[1], overrides[2:]
    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    G, D = build(cfg.model)
    G, D = G.to(DEVICE), D.to(DEVICE)
    c = frontal_labels(batch, G.camera).to(DEVICE)
    z = torch.randn(batch, G.z_dim, device=DEVICE)
    res = {"params_G": sum(p.numel() for p in G.parameters()), "batch": batch}

    def g_eval():
        with torch.no_grad():
            G.synthesis(G.mapping(z, c), c)

    def g_fwd_bwd():  # G alone (D is timed on its own below), every output in the loss
        out = G.synthesis(G.mapping(z, c), c)
        sum(v.square().mean() for v in out.values()).backward()

    def d_r1():
        res = G.img_resolution
        real = torch.rand(batch, 3, res, res, device=DEVICE, requires_grad=True)
        logits = D({"image": real}, c)
        (F.softplus(-logits).mean() + r1_penalty(logits, [real])).backward()

    def density_grid():
        with torch.no_grad():
            ws = G.mapping(z[:1], c[:1])
            planes = G.planes(ws, "const")
            n = 128
            axis = torch.linspace(-0.5, 0.5, n, device=DEVICE) * G.box_size
            pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(1, -1, 3)
            for chunk in pts.split(2**20, dim=1):
                G.sample_mixed(chunk, ws, planes=planes)

    def train_step():  # one G step + one D step (R1 every step) at train_batch, as in training
        zb = torch.randn(train_batch, G.z_dim, device=DEVICE)
        cb = frontal_labels(train_batch, G.camera).to(DEVICE)
        out = G.synthesis(G.mapping(zb, cb), cb)
        F.softplus(-D(out, cb)).mean().backward()
        fake = {k: v.detach() for k, v in out.items()}
        real = {k: v.detach().clone().requires_grad_(True) for k, v in out.items()}
        lr, lf = D(real, cb), D(fake, cb)
        loss = F.softplus(lf).mean() + F.softplus(-lr).mean() + r1_penalty(lr, [real["image"]])
        loss.backward()

    res["G_fwd_eval_s"] = round(median_time(g_eval, reps), 4)
    if batch == 1:
        res["frames_per_s_batch1"] = round(1.0 / res["G_fwd_eval_s"], 2)
    if train_batch:
        res["train_batch"] = train_batch
        res["train_images_per_s"] = round(train_batch / median_time(train_step, reps), 2)
    res["G_fwd_bwd_s"] = round(median_time(g_fwd_bwd, reps), 3)
    if not skip_d:
        res["D_fwd_r1_bwd_s"] = round(median_time(d_r1, reps), 3)
    res["density_128_s"] = round(median_time(density_grid, reps), 3)
    if profile_ops:
        res["profile_G_fwd_bwd"] = top_ops(g_fwd_bwd)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/eg3d_step.json")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated size names")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--train-batch", type=int, default=0, help="also time a G+D step")
    parser.add_argument(
        "--profile", action="store_true", help="also list G fwd+bwd's top operators"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    result: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "reference_nvlabs_cpu": {
            "tiny_planes256": {
                "G_fwd_eval_s": 0.95,
                "G_fwd_bwd_s": 2.31,
                "D_fwd_r1_bwd_s": 0.49,
                "density_128_s": 2.2,
                "params_G": 4.04e6,
            },
            "ffhq512": {
                "G_fwd_eval_s": 3.74,
                "G_fwd_bwd_s": 9.95,
                "density_128_s": 4.1,
                "params_G": 30.7e6,
            },
        },
    }
    only = {s for s in args.only.split(",") if s}
    for name, (overrides, batch) in SIZES.items():
        if only and name not in only:
            continue
        result["machine"]["device"] = (
            torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else "cpu"
        )
        result[name] = measure(
            overrides,
            batch,
            args.reps,
            name.startswith("ffhq512"),
            args.train_batch,
            args.profile,
        )
        print(name, result[name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
