"""Geometry of an edit: distances between meshes, heat-map meshes, change inside vs outside
a link's 3-D region, and mesh silhouettes seen by the model's cameras.

Distances are vertex to nearest vertex (pytorch3d ``knn_points``), so a mesh against itself
is exactly 0 and two samplings of the same surface differ by at most about half an edge
(a voxel at most for marching-cubes meshes of one grid). pytorch3d is imported lazily, as
everywhere outside rendering and export.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from export.mesh import Mesh
from link_core.link import Box3DRegion


def mesh_distance(a: Mesh, b: Mesh, chunk: int = 2**14, device: Any = None) -> np.ndarray:
    """For every vertex of ``b``, the distance to the nearest vertex of ``a`` (world units):
    float32 ``[V_b]``. Queries go in chunks of ``chunk`` vertices to bound memory."""
    from pytorch3d.ops import knn_points

    if a.num_vertices == 0:
        raise ValueError("mesh_distance: the reference mesh has no vertices")
    ref = torch.from_numpy(a.vertices).to(device)[None]
    out = np.empty(b.num_vertices, dtype=np.float32)
    for start in range(0, b.num_vertices, chunk):
        query = torch.from_numpy(b.vertices[start : start + chunk]).to(device)[None]
        d2 = knn_points(query, ref, K=1).dists[0, :, 0]  # squared distances
        out[start : start + query.shape[1]] = d2.clamp(min=0).sqrt().cpu().numpy()
    return out


def heatmap_mesh(edited: Mesh, distances: np.ndarray, vmax: float | None = None) -> Mesh:
    """``edited``'s geometry coloured by ``distances [V]`` (from :func:`mesh_distance`):
    black at 0 through purple and orange to pale yellow at ``vmax`` and beyond (OpenCV's
    inferno, as the image heat maps). ``vmax`` defaults to the largest distance; pass one
    shared value to compare several edits."""
    import cv2

    distances = np.asarray(distances, dtype=np.float32).reshape(-1)
    if len(distances) != edited.num_vertices:
        raise ValueError(
            f"heatmap_mesh: {len(distances)} distances for {edited.num_vertices} vertices"
        )
    if vmax is None:
        vmax = float(distances.max()) if len(distances) else 1.0
    scaled = np.clip(distances / max(float(vmax), 1e-8), 0, 1)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8)[:, None], cv2.COLORMAP_INFERNO)
    return Mesh(edited.vertices, edited.faces, bgr[:, 0, ::-1].copy())


def region_change(
    original: Mesh, edited: Mesh, region: Box3DRegion, chunk: int = 2**14
) -> dict[str, float]:
    """How much the shape moved inside vs outside a link's 3-D ``region`` (world units).

    Both directions count, so added and removed geometry both show: every edited vertex
    carries its distance to the original, every original vertex its distance to the edit,
    and each is "in" when it lies inside the box. Returns ``mean_in``, ``mean_out``,
    ``max_in``, ``max_out``, the mean squared distances ``mse_in``, ``mse_out`` (NaN where a
    side has no vertices) and the vertex counts ``num_in``, ``num_out``. A well-linked edit
    has ``mean_out`` near 0.
    """
    d_edit = mesh_distance(original, edited, chunk)
    d_orig = mesh_distance(edited, original, chunk)
    distances = np.concatenate([d_edit, d_orig])
    points = torch.from_numpy(np.concatenate([edited.vertices, original.vertices]))
    inside = region.contains(points).numpy()

    def stats(values: np.ndarray) -> tuple[float, float]:
        if len(values) == 0:
            return math.nan, math.nan
        return float(values.mean()), float(values.max())

    mean_in, max_in = stats(distances[inside])
    mean_out, max_out = stats(distances[~inside])
    sq = distances.astype(np.float64) ** 2
    return {
        "mean_in": mean_in,
        "mean_out": mean_out,
        "max_in": max_in,
        "max_out": max_out,
        "mse_in": stats(sq[inside])[0],
        "mse_out": stats(sq[~inside])[0],
        "num_in": int(inside.sum()),
        "num_out": int((~inside).sum()),
    }


def mesh_silhouette(mesh: Mesh, c: torch.Tensor, image_size: int) -> torch.Tensor:
    """Where ``mesh`` covers the image of cameras ``c [N, 25]``: bool ``[N, S, S]`` (rows v
    down, columns u right, like the generator's images), rasterized by pytorch3d through
    :func:`~link_core.data.cameras.to_pytorch3d`. Naive rasterization on CPU: meant for checks
    at small sizes, not for video."""
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    from link_core.data.cameras import to_pytorch3d

    n = c.shape[0]
    if mesh.num_faces == 0:
        return torch.zeros(n, image_size, image_size, dtype=torch.bool)
    verts = torch.from_numpy(mesh.vertices).to(c.device)
    faces = torch.from_numpy(mesh.faces).to(c.device)
    meshes = Meshes(verts=[verts] * n, faces=[faces] * n)
    rasterizer = MeshRasterizer(
        cameras=to_pytorch3d(c, image_size),
        raster_settings=RasterizationSettings(
            image_size=image_size, blur_radius=0.0, faces_per_pixel=1, bin_size=0
        ),
    )
    fragments = rasterizer(meshes)
    return (fragments.pix_to_face[..., 0] >= 0).cpu()
