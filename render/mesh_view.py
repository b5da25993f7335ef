"""Turntables of exported meshes, rasterized with pytorch3d, so the geometry a user keeps
is what they see (not the neural render). Cameras are EG3D labels; meshes are anything
with ``vertices [V, 3]``, ``faces [F, 3]`` and ``colors [V, 3] uint8 | None`` in world
units (``export.Mesh``; render does not import export)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from link_core.data.cameras import CameraSpec, split_labels, turntable_poses
from link_core.synth.raster import project_to_ndc, rasterize_tiled
from render.frames import labelled_grid
from render.video import FrameSink

_GREY = 200  # vertex colour of meshes saved without colours


class Mesh(Protocol):
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals ``[V, 3]`` (outward for outward winding)."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@torch.no_grad()
def render_mesh(mesh: Mesh, c: torch.Tensor, size: int = 128) -> np.ndarray:
    """``[N, size, size, 3]`` uint8: ``mesh`` seen from cameras ``c [N, 25]`` with its
    vertex colours, lit by a light at the camera (Lambert, two-sided), on white.

    Rasterized by pytorch3d through :func:`link_core.synth.raster.rasterize_tiled` (tile binning
    makes its CPU rasterizer fast); ``size`` must be a multiple of 16."""
    n = c.shape[0]
    out = np.full((n, size, size, 3), 255, np.uint8)
    if len(mesh.faces) == 0:
        return out
    verts = np.asarray(mesh.vertices, np.float32)
    faces = np.asarray(mesh.faces, np.int64)
    colors = mesh.colors if mesh.colors is not None else np.full(verts.shape, _GREY, np.uint8)
    colors = np.asarray(colors, np.float32) / 255.0
    normals = vertex_normals(verts, faces)
    # Closed surfaces hide the faces turned away from the camera: skipping them halves the
    # rasterizer's work. (Winding is outward; NDC x points left, so front faces turn
    # clockwise on screen.)
    face_ndc, kept = [], []
    for i in range(n):
        tri = project_to_ndc(verts, c[i])[faces]
        e1, e2 = tri[:, 1, :2] - tri[:, 0, :2], tri[:, 2, :2] - tri[:, 0, :2]
        front = np.nonzero((e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0)[0]
        face_ndc.append(tri[front])
        kept.append(front)
    face, _, bary = rasterize_tiled(face_ndc, size)
    cam2world, _ = split_labels(c.float())
    for i in range(n):
        hit = (face[i] >= 0).numpy()
        if not hit.any():
            continue
        f = kept[i][face[i].numpy()[hit]]
        b = bary[i].numpy()[hit][..., None]  # [P, 3, 1]
        corners = faces[f]  # [P, 3]
        rgb = (colors[corners] * b).sum(1)
        nrm = (normals[corners] * b).sum(1)
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        to_cam = cam2world[i, :3, 3].numpy() - (verts[corners] * b).sum(1)
        to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-12)
        lit = 0.4 + 0.6 * np.abs((nrm * to_cam).sum(1, keepdims=True))
        out[i][hit] = np.clip(rgb * lit * 255, 0, 255).round().astype(np.uint8)
    return out


def fit_camera(meshes: Sequence[Mesh], fov_deg: float = 30.0) -> CameraSpec:
    """A camera spec that frames all meshes: pivot at the centre of their joint bounding
    box, radius so the bounding sphere fills about 80 % of the view."""
    pts = np.concatenate([m.vertices for m in meshes if len(m.vertices)] or [np.zeros((0, 3))])
    if len(pts) == 0:
        return CameraSpec(radius=2.7, fov_deg=fov_deg, pivot=(0.0, 0.0, 0.0))
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo) / 2)
    distance = max(radius / math.sin(math.radians(fov_deg) / 2) / 0.8, 1e-3)
    return CameraSpec(radius=distance, fov_deg=fov_deg, pivot=tuple(float(x) for x in centre))


def mesh_turntable(
    rows: Sequence[Sequence[Mesh]],
    columns: Sequence[str],
    row_labels: Sequence[str],
    out: str | Path,
    *,
    spec: CameraSpec | None = None,
    frames: int = 60,
    pitch_deg: float = 10.0,
    tile: int = 192,
    fps: float = 24.0,
    title: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """A grid of meshes (e.g. original and edits in one row, their heat-map meshes in the
    next), all turning together, written to ``out`` (.mp4, .gif or a PNG folder). The
    camera frames all meshes unless ``spec`` is given."""
    if len(rows) != len(row_labels) or any(len(r) != len(columns) for r in rows):
        raise ValueError("one label per row and per column")
    spec = spec or fit_camera([m for row in rows for m in row])
    cams = turntable_poses(frames, spec, pitch_deg=pitch_deg)
    started = time.perf_counter()
    with FrameSink(out, fps=fps) as sink:
        for i in tqdm(range(frames), desc="mesh turntable", unit="frame", disable=not progress):
            tiles = [[render_mesh(m, cams[i : i + 1], tile)[0] for m in row] for row in rows]
            sink.write(labelled_grid(tiles, list(columns), list(row_labels), title=title))
    seconds = time.perf_counter() - started
    return {
        "path": str(out),
        "frames": frames,
        "fps": fps,
        "seconds": round(seconds, 3),
        "frames_per_second": round(frames / max(seconds, 1e-9), 3),
    }
