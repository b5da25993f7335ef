"""Turntables of exported meshes, rendered with pytorch3d, so the geometry a user keeps is
what they see (not the neural render). Cameras are EG3D labels through
:func:`link_core.cameras.to_pytorch3d`; meshes are anything with ``vertices [V, 3]``,
``faces [F, 3]`` and ``colors [V, 3] uint8 | None`` in world units (``export.Mesh``; render
does not import export)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from link_core.cameras import CameraSpec, split_labels, to_pytorch3d, turntable_poses
from render.frames import labelled_grid
from render.video import FrameSink

_GREY = 200  # vertex colour of meshes saved without colours


class Mesh(Protocol):
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None


@torch.no_grad()
def render_mesh(mesh: Mesh, c: torch.Tensor, size: int = 128) -> np.ndarray:
    """``[N, size, size, 3]`` uint8: ``mesh`` seen from cameras ``c [N, 25]`` with its
    vertex colours, Phong-lit by a light at each camera, on white."""
    from pytorch3d.renderer import (
        BlendParams,
        HardPhongShader,
        MeshRasterizer,
        MeshRenderer,
        PointLights,
        RasterizationSettings,
        TexturesVertex,
    )
    from pytorch3d.structures import Meshes

    n = c.shape[0]
    if len(mesh.faces) == 0:
        return np.full((n, size, size, 3), 255, np.uint8)
    verts = torch.from_numpy(mesh.vertices)
    faces = torch.from_numpy(mesh.faces)
    colors = mesh.colors if mesh.colors is not None else np.full(mesh.vertices.shape, _GREY)
    feats = torch.from_numpy(np.asarray(colors, np.float32) / 255.0)
    meshes = Meshes(
        verts=[verts] * n, faces=[faces] * n, textures=TexturesVertex(verts_features=[feats] * n)
    )
    cameras = to_pytorch3d(c, size)
    cam2world, _ = split_labels(c.float())
    lights = PointLights(
        location=cam2world[:, :3, 3],
        ambient_color=((0.45, 0.45, 0.45),),
        diffuse_color=((0.55, 0.55, 0.55),),
        specular_color=((0.05, 0.05, 0.05),),
    )
    renderer = MeshRenderer(
        rasterizer=MeshRasterizer(
            cameras=cameras,
            raster_settings=RasterizationSettings(
                image_size=size, blur_radius=0.0, faces_per_pixel=1, max_faces_per_bin=200_000
            ),
        ),
        shader=HardPhongShader(
            cameras=cameras, lights=lights, blend_params=BlendParams(background_color=(1, 1, 1))
        ),
    )
    images = renderer(meshes)[..., :3].clamp(0, 1)
    return (images * 255).round().to(torch.uint8).cpu().numpy()


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
