"""Turntable rendering speed: frames per second of the generator on a 360° camera path.

    python bench/turntable_fps.py --config configs/quickstart_3d.yaml \
        --out bench/results/turntable_tiny.json
    python bench/turntable_fps.py --config configs/eg3d_ffhq512.yaml --frames 3 \
        --out bench/results/turntable_ffhq512_cpu.json

For each config: the generator at random init (speed does not depend on the weights) renders
a turntable of one seed at batch 1. ``synthesis_fps`` times ``G.synthesis`` alone (the
neural render, what EG3D's visualizer shows); ``video_fps`` times ``render.videos``
end to end (RGB + depth + shaded geometry tiles, labels, H.264 encoding) of the original
and ``--columns - 1`` link resamples. Runs on CUDA when available (``--device``). Writes JSON;
never asserts (machines are noisy).
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

from link_core.data.cameras import turntable_poses  # noqa: E402
from link_core.interface import seeds_to_z  # noqa: E402
from link_core.train.config import load_config  # noqa: E402
from linkgan.api import build_networks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--columns", type=int, default=1, help="w rows per frame (1 + resamples)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-video", action="store_true", help="time the synthesis alone")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    cfg = load_config(args.config, ["train.init=", *args.overrides])
    torch.manual_seed(0)
    G, _ = build_networks(cfg)
    G = G.eval().requires_grad_(False).to(device)
    cams = turntable_poses(args.frames, G.camera).to(device)
    ws = G.mapping(
        seeds_to_z(range(args.columns), G.z_dim).to(device), cams[:1].expand(args.columns, -1)
    )
    with torch.no_grad():
        G.synthesis(ws, cams[:1].expand(args.columns, -1), noise_mode="const")  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(args.frames):
            G.synthesis(ws, cams[i : i + 1].expand(args.columns, -1), noise_mode="const")
        if device.type == "cuda":
            torch.cuda.synchronize()
        synth = time.perf_counter() - t
    video = {"frames_per_second": None}
    if not args.no_video:
        from render.videos import orbit_source, render_video

        with tempfile.TemporaryDirectory() as tmp:
            video = render_video(
                G,
                orbit_source(ws, cams),
                args.frames,
                Path(tmp) / "t.mp4",
                columns=[f"w{i}" for i in range(args.columns)],
                maps=["image", "depth", "geometry"],
                progress=False,
            )
    result = {
        "config": args.config,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {args.threads} threads",
        "torch": torch.__version__,
        "frames": args.frames,
        "columns": args.columns,
        "render_resolution": int(getattr(G, "render_resolution", 0)),
        "image_resolution": G.img_resolution,
        "samples_per_ray": [G.render_opts.num_coarse, G.render_opts.num_fine],
        "synthesis_fps": round(args.frames / synth, 3),
        "video_fps": video["frames_per_second"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
