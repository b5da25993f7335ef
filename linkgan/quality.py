"""Quality figures for model cards: image statistics against the data set and, for 3-D
models, the shape statistics of exported meshes against the synthetic generator's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from link_core.interface import seeds_to_z, view_cameras
from link_core.metrics import sliced_wasserstein
from link_core.train.config import DataConfig


def _real_images(dataset: Any, start: int, num: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(start, start + num)]
    images = torch.stack([it["image"] for it in items]).float() / 127.5 - 1
    labels = torch.stack([it["label"] for it in items])
    return images, labels


@torch.no_grad()
def image_quality(G: torch.nn.Module, dataset: Any, num: int = 512, batch: int = 32) -> dict:
    """Sliced Wasserstein distance (×10³) of ``num`` generated images against ``num`` real
    ones, and the floor: the same distance between two disjoint real sets of that size.
    Generated images use the real set's camera labels (the pose distribution of the data)."""
    num = min(num, len(dataset) // 2)
    real_a, labels = _real_images(dataset, 0, num)
    real_b, _ = _real_images(dataset, num, num)
    c = labels if G.c_dim else torch.zeros(num, 0)
    fakes = []
    for i in range(0, num, batch):
        z = seeds_to_z(range(100_000 + i, 100_000 + min(i + batch, num)), G.z_dim)
        cb = c[i : i + batch]
        fakes.append(G.synthesis(G.mapping(z, cb), cb, noise_mode="const")["image"].clamp(-1, 1))
    fake = torch.cat(fakes)
    if fake.shape[-1] != real_a.shape[-1]:
        fake = torch.nn.functional.interpolate(fake, size=real_a.shape[-2:], mode="area")
    swd = sliced_wasserstein(real_a, fake)
    floor = sliced_wasserstein(real_a, real_b)
    return {
        "num": num,
        "swd_x1e3": round(swd["mean"], 2),
        "swd_real_vs_real": round(floor["mean"], 2),
    }


def _extent(vertices: np.ndarray) -> list[float]:
    return [float(x) for x in vertices.max(0) - vertices.min(0)]


@torch.no_grad()
def shape_quality(
    G: torch.nn.Module, num: int = 8, grid: int = 96, data: DataConfig | None = None
) -> dict:
    """Statistics of coloured meshes exported from ``num`` seeds (marching cubes at EG3D's
    level): bounding-box extent (x, y, z, world units), volume, watertight fraction and
    connected pieces; with ``data`` a built-in synthetic set, that set's extent over its
    first ``num`` items for comparison."""
    import trimesh

    from export import extract_mesh

    extents, volumes, tight, pieces = [], [], [], []
    for seed in range(num):
        ws = G.mapping(seeds_to_z([seed], G.z_dim), view_cameras(G, 1))
        mesh = extract_mesh(G, ws, grid)
        if mesh.num_faces == 0:
            extents.append([0.0, 0.0, 0.0])
            tight.append(False)
            pieces.append(0)
            continue
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        extents.append(_extent(mesh.vertices))
        tight.append(bool(tm.is_watertight))
        if tm.is_watertight:
            volumes.append(float(abs(tm.volume)))
        pieces.append(len(tm.split(only_watertight=False)))
    out: dict[str, Any] = {
        "meshes": num,
        "grid": grid,
        "extent_xyz": [round(float(x), 3) for x in np.mean(extents, 0)],
        "volume": round(float(np.mean(volumes)), 4) if volumes else None,
        "watertight": round(float(np.mean(tight)), 3),
        "pieces": round(float(np.mean(pieces)), 2),
    }
    if data is not None and not data.path:
        from link_core.synth import item_mesh

        items = [_extent(item_mesh(data.synthetic, data.seed, i)[0]) for i in range(num)]
        out["data_extent_xyz"] = [round(float(x), 3) for x in np.mean(items, 0)]
    return out
