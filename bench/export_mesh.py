"""Coloured mesh export speed and memory: an N³ density grid -> marching cubes -> colours.

    python bench/export_mesh.py --grid 256 --out bench/results/export_mesh_256.json
    python bench/export_mesh.py --grid 256 --eg3d --out ...       # tiny random EG3D too
    python bench/export_mesh.py --grid 256 --ckpt RUN_DIR --out ...  # a trained model too

The default field is a fixed analytic "head" (an ellipsoid with a nose and ears, smooth
union, coloured by position), so the number measures export itself; ``--eg3d`` adds the
quickstart_3d tiny EG3D at random init (its σ may never reach the level: few vertices) and
``--ckpt`` a trained generator. Each entry times :func:`export.extract_mesh` end to end
(``seconds``), with the field queries (grid + colours) and the writers split out, and
reads the process's peak RSS (``resource.getrusage``; it includes Python and torch, so the
RSS before exporting is reported too). Each field runs in a fresh process, so the peak
belongs to that field alone. Writes JSON; never asserts (machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from export import extract_mesh, write_mesh  # noqa: E402


def _smooth_min(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _ellipsoid(p: torch.Tensor, centre, axes) -> torch.Tensor:
    """Approximate signed distance to an ellipsoid (exact on spheres, fine for a bench)."""
    q = (p - p.new_tensor(centre)) / p.new_tensor(axes)
    return (q.norm(dim=-1) - 1) * min(axes)


class HeadField(torch.nn.Module):
    """A fixed analytic 3-D generator in the unit box: σ = max(0, 10 − 1000·sdf), linear
    across the surface; rgb varies smoothly with position (skin tones, a darker top)."""

    box_size = 1.0
    is_3d = True

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> None:
        """No tri-planes: the field is analytic."""

    def sample_mixed(self, points: torch.Tensor, ws: torch.Tensor, planes=None) -> dict:
        d = _ellipsoid(points, (0.0, 0.0, 0.0), (0.30, 0.38, 0.32))
        d = _smooth_min(d, _ellipsoid(points, (0.0, -0.02, 0.32), (0.05, 0.08, 0.06)), 0.03)
        for side in (-1.0, 1.0):
            ear = _ellipsoid(points, (0.30 * side, 0.0, 0.0), (0.04, 0.09, 0.06))
            d = _smooth_min(d, ear, 0.02)
        sigma = (10.0 - 1000.0 * d).clamp(min=0)[..., None]
        sigma = sigma * (points.abs() <= self.box_size / 2).all(-1, keepdim=True)
        x, y, z = points.unbind(-1)
        top = torch.sigmoid((y - 0.18) * 40)
        skin = torch.stack([0.85 + 0.1 * x, 0.65 + 0.1 * z, 0.55 + 0.1 * y], -1)
        hair = torch.stack([0.25 + 0.0 * x, 0.15 + 0.05 * z, 0.1 + 0.0 * y], -1)
        rgb = (skin * (1 - top[..., None]) + hair * top[..., None]).clamp(0, 1)
        return {"sigma": sigma, "sigma_raw": sigma, "rgb": rgb, "features": rgb}


def _generator(kind: str, ckpt: str | None) -> tuple[torch.nn.Module, torch.Tensor]:
    if kind == "analytic":
        return HeadField(), torch.zeros(1, 1, 1)
    if kind == "eg3d_random":
        from eg3d_link import build
        from link_core.train.config import load_config

        cfg = load_config("configs/quickstart_3d.yaml", [])
        torch.manual_seed(0)
        G, _ = build(cfg.model)
    else:
        from linkgan.api import load_generator

        G, _ = load_generator(ckpt)
    G.eval().requires_grad_(False)
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = G.mapping(z, G.default_cameras(1))
    return G, ws


def _rss_mb() -> float:
    # ru_maxrss is kilobytes on Linux (bytes on macOS).
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure_one(kind: str, grid: int, ckpt: str | None, chunk: int, formats: list[str]) -> dict:
    """Export one field in this process: timings, vertex count, peak RSS."""
    G, ws = _generator(kind, ckpt)
    field_s = [0.0]
    inner = G.sample_mixed

    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = inner(*args, **kwargs)
        field_s[0] += time.perf_counter() - t
        return out

    G.sample_mixed = timed  # instance attribute: counts grid and colour queries alike
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    mesh = extract_mesh(G, ws, resolution=grid, chunk=chunk)
    seconds = time.perf_counter() - t0
    result = {
        "field": kind,
        "grid": grid,
        "seconds": round(seconds, 3),
        "field_query_s": round(field_s[0], 3),
        "vertices": mesh.num_vertices,
        "faces": mesh.num_faces,
        "colored": mesh.colors is not None,
        "chunk": chunk,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            t = time.perf_counter()
            path = write_mesh(mesh, Path(tmp) / f"mesh.{fmt}")
            result[f"write_{fmt}_s"] = round(time.perf_counter() - t, 3)
            result[f"{fmt}_mb"] = round(path.stat().st_size / 2**20, 2)
    result["rss_before_mb"] = round(rss_before, 1)
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    return result


def machine(threads: int) -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=256, help="grid resolution N (N³ samples)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--eg3d", action="store_true", help="also a tiny random EG3D")
    parser.add_argument("--ckpt", default=None, help="also a trained generator (run dir/file)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=2**18, help="points per field query")
    parser.add_argument("--formats", default="ply,glb", help="files to write ('' for none)")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    formats = [f for f in args.formats.split(",") if f]

    if args.only:  # one field, in its own process so its peak RSS is its own
        print(json.dumps(measure_one(args.only, args.grid, args.ckpt, args.chunk, formats)))
        return

    kinds = ["analytic"] + (["eg3d_random"] if args.eg3d else []) + (["ckpt"] if args.ckpt else [])
    runs = {}
    for kind in kinds:
        cmd = [sys.executable, __file__, "--grid", str(args.grid), "--out", args.out]
        cmd += ["--threads", str(args.threads), "--chunk", str(args.chunk)]
        cmd += ["--formats", args.formats, "--only", kind]
        if args.ckpt:
            cmd += ["--ckpt", args.ckpt]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        print(kind, runs[kind], flush=True)
    first = runs["analytic"]
    result = {
        "grid": args.grid,
        "seconds": first["seconds"],
        "peak_rss_mb": first["peak_rss_mb"],
        "vertices": first["vertices"],
        "machine": machine(args.threads),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
