"""The synthetic objects' part names, cameras and template meshes (unit size, numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from link_core.data.cameras import (
    POSE_MODES,
    CameraSpec,
)
from link_core.synth.toyfaces import random_colour

HEAD_PARTS: tuple[str, ...] = (
    "background",
    "head",
    "left_eye",
    "right_eye",
    "nose",
    "mouth",
    "hair",
)
"""Part names of ``"heads"``; a part's id in a mask is its index. ``hair`` includes hats."""

HEAD_HD_PARTS: tuple[str, ...] = (*HEAD_PARTS, "ears", "glasses")
"""Part names of ``"heads_hd"``: the heads' parts (same ids) and the detail it adds."""

HEAD_KINDS: tuple[str, ...] = ("heads", "heads_hd")
"""The kinds that draw heads (``heads_hd``: the same heads with eye whites, ears and
glasses, for 128² and up)."""

SCENE_PARTS: tuple[str, ...] = ("sky", "ground", "object")
"""Part names of ``"scenes"``; ``sky`` (id 0) is every pixel that hits no surface."""

KINDS: dict[str, tuple[str, ...]] = {
    "heads": HEAD_PARTS,
    "heads_hd": HEAD_HD_PARTS,
    "scenes": SCENE_PARTS,
}

SYNTH_CAMERA = CameraSpec(radius=2.7, fov_deg=30.0, pivot=(0.0, 0.0, 0.0))
"""Cameras of the synthetic sets. With EG3D's focal rule (focal ≈ 2.64) the frame is
``2.7 / focal ≈ 1.02`` wide at the pivot: a head (0.54-0.74 across, up to 0.92 with a hat)
fills about 55-90 % of it, and the whole ground disc of a scene is in view."""

CAMERA_MODES = POSE_MODES
SUPERSAMPLE = 2
BATCH = 32  # views per rasterizer call: amortizes the per-call overhead on CPU
EXTENT = 0.46  # every vertex lies in [-EXTENT, EXTENT]^3: margin to the renderer's box

# A key light from the upper front right and a weaker fill from the back left: orbit
# cameras go all round, and the back of a head should not be a flat dark blob.
_LIGHTS = (
    (np.array([0.35, 0.75, 0.55]) / np.linalg.norm([0.35, 0.75, 0.55]), 0.65),
    (np.array([-0.5, 0.3, -0.8]) / np.linalg.norm([-0.5, 0.3, -0.8]), 0.3),
)
_AMBIENT = 0.32
_HEAD_BACKGROUND = (1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------------------
# Template meshes (unit size, numpy) and parts


@dataclass
class _Mesh:
    """Triangles with per-vertex normals: verts/normals ``[V, 3]``, faces ``[F, 3]``."""

    verts: np.ndarray
    normals: np.ndarray
    faces: np.ndarray


@dataclass
class _Part:
    mesh: _Mesh
    part: int
    colour: np.ndarray  # [3] in [0, 1], or [F, 3] per face
    closed: bool = True  # a closed surface: its back faces are hidden and can be culled


def _sphere(n_lat: int, n_lon: int) -> _Mesh:
    """Unit sphere, ``n_lat`` rings between the poles; normals = positions."""
    theta = np.linspace(0.0, math.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0.0, 2 * math.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    bottom = len(verts) - 1
    faces = []
    for j in range(n_lon):
        k = (j + 1) % n_lon
        faces.append((0, 1 + k, 1 + j))
        last = 1 + (n_lat - 2) * n_lon
        faces.append((bottom, last + j, last + k))
        for r in range(n_lat - 2):
            a, b = 1 + r * n_lon + j, 1 + r * n_lon + k
            c, d = a + n_lon, b + n_lon
            faces += [(a, b, d), (a, d, c)]
    return _Mesh(verts, verts.copy(), np.asarray(faces, dtype=np.int64))


def _frustum(top: float, n: int) -> _Mesh:
    """Closed frustum of height 1 on y in [0, 1], bottom radius 1, top radius ``top``
    (0 gives a cone). Caps and side have their own vertices so edges stay sharp."""
    phi = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    mid = phi + math.pi / n  # apex normals: one per side face, not one shared point
    cos, sin = np.cos(phi), np.sin(phi)
    bottom = np.stack([sin, np.zeros(n), cos], -1)
    upper = np.stack([top * sin, np.ones(n), top * cos], -1)
    slope = 1.0 - top  # side normal ∝ (radial, (r_bottom - r_top) / height)
    nb = np.stack([sin, np.full(n, slope), cos], -1)
    nt = np.stack(
        [np.sin(mid if top == 0 else phi), np.full(n, slope), np.cos(mid if top == 0 else phi)], -1
    )
    idx = np.arange(n)
    nxt = (idx + 1) % n
    side_f = np.concatenate(
        [np.stack([idx, nxt, n + idx], -1), np.stack([nxt, n + nxt, n + idx], -1)]
    )
    verts = [bottom, upper]
    normals = [nb, nt]
    faces = [side_f]
    base = 2 * n
    # bottom cap (normal -y), top cap (+y) unless it is a cone
    caps = [(0.0, 1.0, -1.0)] + ([(1.0, top, 1.0)] if top > 0 else [])
    for y, r, ny in caps:
        ring = np.stack([r * sin, np.full(n, y), r * cos], -1)
        centre = np.array([[0.0, y, 0.0]])
        verts += [centre, ring]
        normals += [np.tile([0.0, ny, 0.0], (n + 1, 1))]
        tri = np.stack([np.zeros(n, np.int64), 1 + idx, 1 + nxt], -1)
        faces.append(base + (tri if ny > 0 else tri[:, [0, 2, 1]]))
        base += n + 1
    return _Mesh(np.concatenate(verts), np.concatenate(normals), np.concatenate(faces))


def _torus(tube: float, n_major: int, n_minor: int) -> _Mesh:
    """Torus about the z axis: centre line the unit circle in the xy plane, tube radius
    ``tube`` (a spectacle rim facing +z)."""
    u = np.linspace(0.0, 2 * math.pi, n_major, endpoint=False)
    v = np.linspace(0.0, 2 * math.pi, n_minor, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    radial = np.stack([np.cos(uu), np.sin(uu), np.zeros_like(uu)], -1)
    normals = radial * np.cos(vv)[..., None] + np.array([0.0, 0.0, 1.0]) * np.sin(vv)[..., None]
    verts = radial + tube * normals
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a, b = i * n_minor + j, ((i + 1) % n_major) * n_minor + j
    c, d = i * n_minor + (j + 1) % n_minor, ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return _Mesh(verts.reshape(-1, 3), normals.reshape(-1, 3), faces.astype(np.int64))


def _box() -> _Mesh:
    """Cube ``[-1, 1]³`` with 4 vertices per side (sharp edges)."""
    verts, normals, faces = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = [a for a in range(3) if a != axis]
            quad = np.zeros((4, 3))
            quad[:, axis] = sign
            quad[:, u] = [-1, 1, 1, -1]
            quad[:, v] = [-1, -1, 1, 1]
            n = np.zeros(3)
            n[axis] = sign
            k = 4 * len(faces) // 2
            verts.append(quad)
            normals.append(np.tile(n, (4, 1)))
            faces += [(k, k + 1, k + 2), (k, k + 2, k + 3)]
    return _Mesh(np.concatenate(verts), np.concatenate(normals), np.asarray(faces, np.int64))


def _disc(n_rings: int, n_sectors: int) -> tuple[_Mesh, np.ndarray]:
    """Unit disc in the y=0 plane, normal +y; also a ``[F]`` 0/1 chequer of ring x sector."""
    r = np.linspace(0.0, 1.0, n_rings + 1)[1:]
    phi = np.linspace(0.0, 2 * math.pi, n_sectors, endpoint=False)
    rr, pp = np.meshgrid(r, phi, indexing="ij")
    ring = np.stack([rr * np.sin(pp), np.zeros_like(rr), rr * np.cos(pp)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 0.0]], ring])
    faces, chequer = [], []
    for s in range(n_sectors):
        t = (s + 1) % n_sectors
        faces.append((0, 1 + t, 1 + s))
        chequer.append(s % 2)
        for q in range(n_rings - 1):
            a, b = 1 + q * n_sectors + s, 1 + q * n_sectors + t
            c, d = a + n_sectors, b + n_sectors
            faces += [(a, b, d), (a, d, c)]
            chequer += [(s + q + 1) % 2] * 2
    normals = np.tile([0.0, 1.0, 0.0], (len(verts), 1))
    return _Mesh(verts, normals, np.asarray(faces, np.int64)), np.asarray(chequer)


_TEMPLATES: dict[str, Any] = {}


def _outward(mesh: _Mesh) -> _Mesh:
    """Drop degenerate faces and wind the rest counter-clockwise seen from outside (the side
    the vertex normals point to), so that back faces can be culled after any transform
    with a positive determinant."""
    v = mesh.verts[mesh.faces]  # [F, 3, 3]
    g = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    area = np.linalg.norm(g, axis=1)
    keep = area > 1e-9 * area.max()
    flip = np.einsum("fi,fi->f", g, mesh.normals[mesh.faces].sum(1)) < 0
    faces = np.where(flip[:, None], mesh.faces[:, [0, 2, 1]], mesh.faces)[keep]
    return _Mesh(mesh.verts, mesh.normals, faces)


def _template(name: str) -> Any:
    if not _TEMPLATES:
        disc, chequer = _disc(4, 16)
        _TEMPLATES.update(
            sphere=_outward(_sphere(16, 32)),
            small_sphere=_outward(_sphere(8, 16)),
            mouth=_outward(_sphere(8, 24)),
            cone=_outward(_frustum(0.0, 24)),
            cylinder=_outward(_frustum(1.0, 32)),
            box=_outward(_box()),
            rim=_outward(_torus(0.12, 32, 8)),
            disc=(_outward(disc), chequer),
        )
    return _TEMPLATES[name]


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y_to(direction: Sequence[float]) -> np.ndarray:
    """The rotation that turns +y onto ``direction`` (Rodrigues; a template's long axis)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    axis = np.cross([0.0, 1.0, 0.0], d)
    s, c = float(np.linalg.norm(axis)), float(d[1])
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def _place(mesh: _Mesh, scale: Sequence[float], offset: Sequence[float], rot: Any = None) -> _Mesh:
    """``x -> rot @ (scale * x) + offset``; normals by the inverse transpose."""
    a = np.diag(np.asarray(scale, dtype=np.float64))
    if rot is not None:
        a = rot @ a
    verts = mesh.verts @ a.T + np.asarray(offset, dtype=np.float64)
    normals = mesh.normals @ np.linalg.inv(a)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    return _Mesh(verts, normals, mesh.faces)


def _colour(
    rng: np.random.Generator,
    hue: tuple[float, float] = (0.0, 1.0),
    sat: tuple[float, float] = (0.3, 1.0),
    val: tuple[float, float] = (0.3, 1.0),
) -> np.ndarray:
    """A random RGB colour ``[3]`` in [0, 1] for a mesh part (float64):
    :func:`~link_core.synth.toyfaces.random_colour` with the meshes' saturation floor."""
    return random_colour(rng, hue, sat, val, dtype=np.float64)
