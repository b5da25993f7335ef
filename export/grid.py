"""Density grids of a generator's 3-D field, sampled in bounded-memory chunks.

The grid has N³ samples at the *centres* of N³ equal voxels tiling the cube
``[-b/2, b/2]³`` (``b`` = ``bounds``, by default ``G.box_size``): sample ``(i, j, k)`` lies at
``-b/2 + (ijk + 0.5)·b/N`` in world units, and the array is indexed ``[x, y, z]``. Centres
(not corners) keep every sample strictly inside the box, where a clamped density is
defined, and make the voxel size ``b/N`` exact: :func:`voxel_to_world` maps back.

Memory: the only N³ array is the float32 result (512 MB at 512³). Points are generated
from flat indices chunk by chunk, so at most ``chunk`` points (and their features) exist at
once, and the tri-planes are built once (``G.planes``) and reused for every chunk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

BORDERS = ("zero", "keep")

FieldFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
"""``field(points [1, P, 3]) -> G.sample_mixed(...)`` outputs (``sigma [1, P, 1]``, ``rgb``…)."""


def make_field(G: Any, ws: torch.Tensor, noise_mode: str = "const") -> FieldFn:
    """The field of one latent as a callable of points, with tri-planes built once.

    ``ws``: ``[1, num_ws, w_dim]``. Works for any 3-D generator
    (:class:`~link_core.interface.Generator3D`): its tri-planes are computed here once and
    passed on every call.
    """
    if not getattr(G, "is_3d", False):  # a clear error for a wrong argument
        raise TypeError(
            f"{type(G).__name__} has no 3-D field (sample_mixed); export needs a 3-D generator"
        )
    if ws.dim() != 3 or ws.shape[0] != 1:
        raise ValueError(
            f"export works on one latent: ws must be [1, num_ws, w_dim], got {list(ws.shape)}"
        )
    with torch.no_grad():
        planes = G.planes(ws, noise_mode)

    def field(points: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return G.sample_mixed(points.to(ws.device, ws.dtype), ws, planes=planes)

    return field


def voxel_size(resolution: int, bounds: float) -> float:
    """Edge of one voxel in world units."""
    return bounds / resolution


def voxel_to_world(index_coords: np.ndarray, resolution: int, bounds: float) -> np.ndarray:
    """Continuous voxel-index coordinates ``[..., 3]`` (``[x, y, z]`` axis order, as marching
    cubes returns them) -> world points ``[..., 3]`` float32 (voxel centres convention)."""
    h = voxel_size(resolution, bounds)
    return ((index_coords + 0.5) * h - bounds / 2).astype(np.float32)


def grid_points(
    start: int, stop: int, resolution: int, bounds: float, device: Any = None
) -> torch.Tensor:
    """World points ``[stop - start, 3]`` of the flat voxel indices ``start:stop`` (C order
    over ``[x, y, z]``), computed on the fly so no N³ coordinate array ever exists."""
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    n = resolution
    ijk = torch.stack([idx // (n * n), (idx // n) % n, idx % n], -1)
    h = bounds / n
    return (ijk.to(torch.float32) + 0.5) * h - bounds / 2


def density_grid(
    G: Any,
    ws: torch.Tensor,
    resolution: int,
    chunk: int = 2**18,
    bounds: float | None = None,
    progress: bool = False,
    border: str = "zero",
    noise_mode: str = "const",
) -> np.ndarray:
    """Activated density σ of ``G``'s field for latent ``ws [1, num_ws, w_dim]``.

    Returns float32 ``[N, N, N]`` indexed ``[x, y, z]`` at voxel centres (module docstring)
    over the cube of edge ``bounds`` (default ``G.box_size``). ``chunk`` points are
    evaluated per call; the result does not depend on it. ``border``: ``"zero"`` sets the
    outermost layer of voxels to 0, so an object touching the box still gives a closed
    surface (EG3D does the same); ``"keep"`` leaves them.
    """
    bounds = float(G.box_size if bounds is None else bounds)
    field = make_field(G, ws, noise_mode)
    return field_grid(field, resolution, bounds, chunk, progress, border, ws.device)


def field_grid(
    field: FieldFn,
    resolution: int,
    bounds: float,
    chunk: int = 2**18,
    progress: bool = False,
    border: str = "zero",
    device: Any = None,
) -> np.ndarray:
    """:func:`density_grid` of a prepared field (:func:`make_field`): float32 ``[N, N, N]``."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    if resolution < 2:
        raise ValueError(f"grid resolution must be at least 2, got {resolution}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    total = resolution**3
    out = np.empty(total, dtype=np.float32)
    bar = _progress(total, "density grid") if progress else None
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        pts = grid_points(start, stop, resolution, bounds, device)
        sigma = field(pts[None])["sigma"]
        out[start:stop] = sigma.reshape(-1).float().cpu().numpy()
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    grid = out.reshape(resolution, resolution, resolution)
    if border == "zero":
        for axis in range(3):
            index: list[Any] = [slice(None)] * 3
            index[axis] = [0, -1]
            grid[tuple(index)] = 0.0
    return grid


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="pt", unit_scale=True, file=sys.stderr)
