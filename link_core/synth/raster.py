"""Fast mesh rasterization on CPU with pytorch3d: tile binning in front of its rasterizer.

On CPU pytorch3d only has the naive rasterizer (every face tested at every pixel: ~9 s for
a 30k-face mesh at 192²). Splitting the image into tiles that each hold only the faces
reaching them makes it tens of times faster. Used by the synthetic data sets and by mesh
turntables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from link_core.data.cameras import split_labels


def project_to_ndc(verts: np.ndarray, c: torch.Tensor) -> np.ndarray:
    """World vertices ``[V, 3]`` seen from camera ``c [25]`` -> rasterizer NDC ``[V, 3]``:
    x left, y up (pixel (i, j) centre at ``(1 - (2j+1)/S, 1 - (2i+1)/S)``), z = camera-space
    depth.

    The projection of :func:`link_core.data.cameras.project`, written per view with elementwise
    numpy: no shape-dependent kernels (batch-independent results) and no thread pool
    (tiny arrays; threads only contend on a busy machine).
    """
    cam2world, k = (a[0].double().numpy() for a in split_labels(c[None]))
    rel = np.asarray(verts, np.float64) - cam2world[:3, 3]
    x, y, z = (
        rel[:, 0:1] * cam2world[0] + rel[:, 1:2] * cam2world[1] + rel[:, 2:3] * cam2world[2]
    )[:, :3].T
    u = k[0, 0] * x / z + k[0, 2]
    v = k[1, 1] * y / z + k[1, 2]
    return np.stack([1.0 - 2.0 * u, 1.0 - 2.0 * v, z], -1).astype(np.float32)


TILE = 16  # rasterizer tile (pixels): see rasterize_tiled


def rasterize_tiled(
    face_ndc: Sequence[np.ndarray], size: int, tile: int = TILE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest face per pixel of each view.

    Args: ``face_ndc``: per view, float32 ``[F_b, 3 corners, 3]`` in rasterizer NDC.
    Returns ``face`` int64 ``[B, S, S]`` (index into the view's faces, -1 = none), ``z``
    float32 ``[B, S, S]`` (camera depth) and perspective-correct barycentrics
    ``[B, S, S, 3]``.

    Why tiles: on CPU pytorch3d only has the naive rasterizer, which tests every face at
    every pixel. Each ``TILE²`` tile becomes its own mesh holding only the faces whose
    bounds reach it, mapped so the tile fills NDC (an affine map of x, y keeps barycentrics
    and z); with ~4k faces per head this is ~30x faster at 128². Tiles of a view depend on
    that view alone, so results do not depend on the batch.
    """
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    if size % tile:
        raise ValueError(f"rasterize_tiled: size must be a multiple of {tile}, got {size}")
    tiles = size // tile
    verts, where, owner = [], [], []
    for b, fv in enumerate(face_ndc):
        # Face bounds in pixel units (pixel j's centre is at x = 1 - (2j+1)/S), one-pixel margin.
        col = (1.0 - fv[..., 0]) * (size / 2) - 0.5
        row = (1.0 - fv[..., 1]) * (size / 2) - 0.5
        lo_c = np.clip(np.floor(col.min(1) - 1) // tile, 0, tiles - 1).astype(int)
        hi_c = np.clip(np.ceil(col.max(1) + 1) // tile, 0, tiles - 1).astype(int)
        lo_r = np.clip(np.floor(row.min(1) - 1) // tile, 0, tiles - 1).astype(int)
        hi_r = np.clip(np.ceil(row.max(1) + 1) // tile, 0, tiles - 1).astype(int)
        t = np.arange(tiles)
        in_c = (lo_c[:, None] <= t) & (t <= hi_c[:, None])  # [F, T]
        in_r = (lo_r[:, None] <= t) & (t <= hi_r[:, None])
        for ty in range(tiles):
            rows_ok = in_r[:, ty]
            for tx in range(tiles):
                idx = np.nonzero(rows_ok & in_c[:, tx])[0]
                if len(idx) == 0:
                    continue
                local = fv[idx].copy()
                local[..., 0] = local[..., 0] * tiles + (1 + 2 * tx - tiles)
                local[..., 1] = local[..., 1] * tiles + (1 + 2 * ty - tiles)
                verts.append(torch.from_numpy(local.reshape(-1, 3)))
                where.append((b, ty, tx))
                owner.append(idx)
    face = torch.full((len(face_ndc), tiles, tiles, tile, tile), -1, dtype=torch.int64)
    z = torch.full((len(face_ndc), tiles, tiles, tile, tile), -1.0)
    bary = torch.zeros(len(face_ndc), tiles, tiles, tile, tile, 3)
    if verts:
        faces = [torch.arange(len(v), dtype=torch.int64).view(-1, 3) for v in verts]
        p2f, zbuf, bc, _ = rasterize_meshes(
            Meshes(verts=verts, faces=faces),
            image_size=tile,
            faces_per_pixel=1,
            perspective_correct=True,
            bin_size=0,
        )
        # packed face index -> the view's own face index
        lookup = torch.from_numpy(np.concatenate(owner))
        p2f = p2f[..., 0]
        hit = p2f >= 0
        b, ty, tx = (torch.tensor(a) for a in zip(*where, strict=True))
        face[b, ty, tx] = torch.where(hit, lookup[p2f.clamp(min=0)], -1)
        z[b, ty, tx] = zbuf[..., 0]
        bary[b, ty, tx] = bc[..., 0, :]
    # [B, Ty, Tx, h, w] -> [B, S, S]
    face = face.permute(0, 1, 3, 2, 4).reshape(len(face_ndc), size, size)
    z = z.permute(0, 1, 3, 2, 4).reshape(len(face_ndc), size, size)
    bary = bary.permute(0, 1, 3, 2, 4, 5).reshape(len(face_ndc), size, size, 3)
    return face, z, bary
