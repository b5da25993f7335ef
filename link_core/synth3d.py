"""Procedural 3-D data sets with named parts: the embedded data of the 3-D quickstart.

Two kinds of object, each item a pure function of ``(seed, index)``:

- ``"heads"``: an ellipsoid head (random size, aspect and skin colour), two eyes with pupils,
  a nose (cone or ellipsoid), a flattened-ellipsoid mouth and, on most heads, hair (a cap,
  a cap with a bun) or a hat, on a white background. Parts: :data:`HEAD_PARTS`.
- ``"scenes"``: a chequered ground disc under a sky gradient with one object on it (box,
  ellipsoid, cylinder or cone; random size, colour, place and turn). Parts:
  :data:`SCENE_PARTS`.

Part id 0 is always "nothing was hit" (``background`` for heads, ``sky`` for scenes).
``left_eye`` is the eye at world ``-x``: on the image's left in a frontal view.

World: y up, objects face +z and lie inside ``[-0.46, 0.46]³`` (within the renderer's
``[-0.5, 0.5]³`` box), centred on the origin, seen by cameras of :data:`SYNTH_CAMERA`.
Labels are EG3D's 25 floats (see :mod:`link_core.cameras`).

Every part is its own triangle mesh with one part id per face, so a mask is exact: the
rasterizer's ``pix_to_face`` is looked up in the face part ids. Images are rasterized at
2x and area-downsampled; a mask pixel is the most frequent of its 2x2 sub-pixels (ties go
to the higher id, i.e. the smaller part). Shading is Lambertian with two lights fixed in
the world, so every view of an item shows the same colours (view-independent, as the
tri-plane decoder assumes).

pytorch3d (its CPU rasterizer only) is imported inside
:func:`link_core.raster.rasterize_tiled`, so importing this module, and the training path,
never loads it.
"""

from __future__ import annotations

import colorsys
import math
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from link_core.cameras import (
    POSE_MODES,
    CameraSpec,
    camera_label_yaw_pitch,
    orbit_labels,
    sample_poses,
    split_labels,
)
from link_core.data import LinkDataset, write_dataset_zip
from link_core.errors import DataError
from link_core.link import build_region
from link_core.raster import project_to_ndc, rasterize_tiled

__all__ = [
    "HEAD_PARTS",
    "SCENE_PARTS",
    "KINDS",
    "SYNTH_CAMERA",
    "SynthDataset",
    "synthesize",
    "item_label",
    "render_views",
]

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

SCENE_PARTS: tuple[str, ...] = ("sky", "ground", "object")
"""Part names of ``"scenes"``; ``sky`` (id 0) is every pixel that hits no surface."""

KINDS: dict[str, tuple[str, ...]] = {"heads": HEAD_PARTS, "scenes": SCENE_PARTS}

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
            disc=(_outward(disc), chequer),
        )
    return _TEMPLATES[name]


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


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
    """A random RGB colour ``[3]`` in [0, 1], uniform in the given HSV ranges."""
    h, s, v = rng.uniform(*hue), rng.uniform(*sat), rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


# ---------------------------------------------------------------------------------------
# Heads


def _on_ellipsoid(radii: np.ndarray, yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Point on the ellipsoid (centred at 0) in direction (yaw, pitch) and its unit normal."""
    d = np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    p = d / math.sqrt(float(np.sum((d / radii) ** 2)))
    n = p / radii**2
    return p, n / np.linalg.norm(n)


def _head_parts(rng: np.random.Generator) -> list[_Part]:
    """The parts of one head (ids of :data:`HEAD_PARTS`), fitted into ``EXTENT``."""
    P = {name: i for i, name in enumerate(HEAD_PARTS)}
    radii = np.array([rng.uniform(0.27, 0.32), rng.uniform(0.31, 0.37), rng.uniform(0.27, 0.32)])
    skin = (
        _colour(rng, (0.02, 0.11), (0.2, 0.6), (0.45, 0.95))
        if rng.random() < 0.85
        else _colour(rng, sat=(0.2, 0.6), val=(0.5, 0.95))  # some fantasy skins
    )
    parts = [_Part(_place(_template("sphere"), radii, (0, 0, 0)), P["head"], skin)]

    # Eyes: symmetric places, own size and colour each (independent factors per part).
    eye_yaw, eye_pitch = rng.uniform(0.30, 0.45), rng.uniform(0.08, 0.22)
    eye_top = -1.0
    for name, sign in (("left_eye", -1.0), ("right_eye", 1.0)):
        r = rng.uniform(0.035, 0.06)
        p, n = _on_ellipsoid(radii, sign * eye_yaw, eye_pitch)
        centre = p - 0.35 * r * n  # sunk a little so it sits in the head
        iris = _colour(rng, sat=(0.5, 1.0), val=(0.25, 1.0))
        look = n + np.array([0.0, 0.0, 1.0])
        look /= np.linalg.norm(look)
        pupil_r = r * rng.uniform(0.35, 0.55)
        pupil = centre + look * (r - 0.45 * pupil_r)
        parts.append(_Part(_place(_template("small_sphere"), [r] * 3, centre), P[name], iris))
        dark = np.full(3, rng.uniform(0.02, 0.15))
        parts.append(_Part(_place(_template("small_sphere"), [pupil_r] * 3, pupil), P[name], dark))
        eye_top = max(eye_top, centre[1] + r)

    # Nose: a cone or an ellipsoid sticking out along +z, a little below the eyes.
    p, _ = _on_ellipsoid(radii, 0.0, rng.uniform(-0.12, -0.02))
    length, width = rng.uniform(0.06, 0.14), rng.uniform(0.03, 0.055)
    nose_colour = np.clip(skin * rng.uniform(0.75, 1.15, size=3), 0, 1)
    if rng.random() < 0.6:
        tilt = _rot_x(math.pi / 2 + rng.uniform(-0.25, 0.05))  # +y axis -> about +z
        mesh = _place(
            _template("cone"),
            (width, length + 0.03, width * rng.uniform(0.7, 1.2)),
            p - [0, 0, 0.03],
            tilt,
        )
    else:
        mesh = _place(
            _template("small_sphere"),
            (width, rng.uniform(0.04, 0.07), length / 2 + 0.02),
            p + [0.0, 0.0, length / 2 - 0.02],
        )
    parts.append(_Part(mesh, P["nose"], nose_colour))

    # Mouth: a flattened ellipsoid on the lower face.
    p, n = _on_ellipsoid(radii, 0.0, rng.uniform(-0.55, -0.38))
    half = (rng.uniform(0.05, 0.10), rng.uniform(0.012, 0.03), 0.03)
    mouth = _colour(rng, sat=(0.4, 1.0), val=(0.25, 0.9))
    parts.append(_Part(_place(_template("mouth"), half, p - 0.008 * n), P["mouth"], mouth))

    if rng.random() < 0.85:
        parts += _hair(rng, radii, eye_top, P["hair"])

    # Fit into the box: a uniform scale about the origin keeps every normal.
    top = max(float(np.abs(part.mesh.verts).max()) for part in parts)
    if top > EXTENT:
        for part in parts:
            part.mesh.verts *= EXTENT / top
    return parts


def _hair(rng: np.random.Generator, radii: np.ndarray, eye_top: float, pid: int) -> list[_Part]:
    """Hair (a cap, maybe a bun) or a hat, clear of the eyes."""
    colour = (
        _colour(rng, (0.02, 0.13), (0.3, 0.9), (0.08, 0.85))  # black .. brown .. blond
        if rng.random() < 0.6
        else _colour(rng, sat=(0.4, 1.0), val=(0.3, 1.0))
    )
    style = rng.choice(["cap", "bun", "hat", "cone"], p=[0.45, 0.2, 0.2, 0.15])
    out = []
    if style in ("cap", "bun"):
        # A slightly larger ellipsoid whose vertices below a tilted plane (front edge above
        # the eyes, back edge near the nape) sink just inside the head: the surface stays
        # closed and star-shaped, and the hairline is where it dives in.
        template = _template("sphere")
        scale = radii * rng.uniform(1.05, 1.12, size=3)
        mesh = _place(template, scale, (0.0, 0.0, 0.0))
        front = eye_top + rng.uniform(0.03, 0.07)
        back = rng.uniform(-0.18, 0.02)
        z = mesh.verts[:, 2]
        cut = back + (front - back) * (z + scale[2]) / (2 * scale[2])
        low = mesh.verts[:, 1] < cut
        mesh.verts[low] = template.verts[low] * radii * 0.96
        out.append(_Part(mesh, pid, colour))
        if style == "bun":
            r = rng.uniform(0.07, 0.11)
            centre = (0.0, radii[1] * 0.85, -radii[2] * 0.55)
            out.append(_Part(_place(_template("small_sphere"), [r] * 3, centre), pid, colour))
    elif style == "hat":
        y0 = radii[1] * rng.uniform(0.7, 0.8)
        tilt = _rot_x(rng.uniform(-0.15, 0.1))
        crown_r = radii[0] * rng.uniform(0.8, 0.95)
        height = rng.uniform(0.08, 0.12)
        brim = rng.uniform(crown_r + 0.05, 0.42)
        out.append(
            _Part(
                _place(_template("cylinder"), (crown_r, height, crown_r), (0, y0, 0), tilt),
                pid,
                colour,
            )
        )
        brim_colour = np.clip(colour * rng.uniform(0.6, 1.0), 0, 1)
        out.append(
            _Part(
                _place(_template("cylinder"), (brim, 0.015, brim), (0, y0, 0), tilt),
                pid,
                brim_colour,
            )
        )
    else:
        y0 = radii[1] * rng.uniform(0.65, 0.75)
        r = radii[0] * rng.uniform(0.55, 0.85)
        mesh = _place(
            _template("cone"),
            (r, rng.uniform(0.13, 0.18), r),
            (0, y0, 0),
            _rot_x(rng.uniform(-0.3, 0.1)),
        )
        out.append(_Part(mesh, pid, colour))
    return out


# ---------------------------------------------------------------------------------------
# Scenes


def _scene_parts(rng: np.random.Generator) -> tuple[list[_Part], np.ndarray]:
    """The parts of one scene (ids of :data:`SCENE_PARTS`) and its sky colours ``[2, 3]``
    (horizon, zenith)."""
    ground_y = rng.uniform(-0.30, -0.20)
    radius = 0.46
    disc, chequer = _template("disc")
    base = _colour(rng, sat=(0.2, 0.7), val=(0.35, 0.85))
    shade = rng.uniform(0.7, 0.85)
    face_colour = np.where(chequer[:, None] == 1, base * shade, base)
    ground_mesh = _place(disc, (radius, 1.0, radius), (0.0, ground_y, 0.0))
    ground = _Part(ground_mesh, 1, face_colour, closed=False)

    kind = rng.choice(["box", "sphere", "cylinder", "cone"])
    foot = rng.uniform(0.07, 0.18)  # half-width on the ground
    height = rng.uniform(0.12, min(0.42, EXTENT - ground_y - 0.02))
    reach = foot * (math.sqrt(2) if kind == "box" else 1.0)
    rho = (radius - reach - 0.01) * math.sqrt(rng.random())  # uniform over the free disc
    phi = rng.uniform(0.0, 2 * math.pi)
    x, z = rho * math.sin(phi), rho * math.cos(phi)
    turn = _rot_y(rng.uniform(0.0, 2 * math.pi))
    if kind == "box":
        mesh = _place(
            _template("box"),
            (foot, height / 2, foot * rng.uniform(0.6, 1.0)),
            (x, ground_y + height / 2, z),
            turn,
        )
    elif kind == "sphere":
        mesh = _place(_template("sphere"), (foot, height / 2, foot), (x, ground_y + height / 2, z))
    else:
        mesh = _place(_template(str(kind)), (foot, height, foot), (x, ground_y, z), turn)
    obj = _Part(mesh, 2, _colour(rng, sat=(0.45, 1.0), val=(0.35, 1.0)))

    horizon = _colour(rng, (0.5, 0.7), (0.05, 0.3), (0.8, 1.0))
    zenith = _colour(rng, (0.5, 0.7), (0.3, 0.8), (0.5, 0.95))
    return [ground, obj], np.stack([horizon, zenith])


# ---------------------------------------------------------------------------------------
# Items and rendering


@dataclass
class _Item:
    verts: np.ndarray  # [V, 3] world
    face_normals: np.ndarray  # [F, 3, 3] vertex normals per face corner
    faces: np.ndarray  # [F, 3]
    face_part: np.ndarray  # [F]
    face_colour: np.ndarray  # [F, 3]
    face_cull: np.ndarray  # [F] bool: may be culled when facing away
    sky: np.ndarray | None  # [2, 3] or None (white background)


def item_mesh(kind: str, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices ``[V, 3]`` world, faces ``[F, 3]``) of item ``index`` of a synthetic set:
    its parts together (overlapping closed pieces, so not one watertight surface)."""
    item = _build_item(kind, seed, index)
    return item.verts, item.faces


def _build_item(kind: str, seed: int, index: int) -> _Item:
    rng = np.random.default_rng([seed, index])
    sky = None
    if kind == "heads":
        parts = _head_parts(rng)
    else:
        parts, sky = _scene_parts(rng)
    verts, normals, faces, part, colour, cull = [], [], [], [], [], []
    offset = 0
    for p in parts:
        m = p.mesh
        verts.append(m.verts)
        normals.append(m.normals[m.faces])
        faces.append(m.faces + offset)
        part.append(np.full(len(m.faces), p.part, np.int64))
        colour.append(np.broadcast_to(p.colour, (len(m.faces), 3)))
        cull.append(np.full(len(m.faces), p.closed))
        offset += len(m.verts)
    return _Item(
        np.concatenate(verts).astype(np.float32),
        np.concatenate(normals).astype(np.float32),
        np.concatenate(faces),
        np.concatenate(part),
        np.concatenate(colour).astype(np.float32),
        np.concatenate(cull),
        sky,
    )


def item_label(
    index: int,
    seed: int = 0,
    cameras: str = "orbit",
    pitch_range_deg: float = 30.0,
    kind: str = "heads",
) -> torch.Tensor:
    """The camera label of item ``index``: float32 ``[25]``, a function of ``(seed, index)``.

    ``cameras`` is a :func:`~link_core.cameras.sample_poses` mode (``orbit``: all round,
    pitch within ±``pitch_range_deg``; ``frontal``: a cone around the front; ``uniform``).
    Scenes are seen from above: their pitch is folded to >= 0.
    """
    state = np.random.SeedSequence([seed, index, 1]).generate_state(1, np.uint64)[0]
    g = torch.Generator().manual_seed(int(state >> np.uint64(1)))
    c = sample_poses(1, cameras, SYNTH_CAMERA, generator=g, pitch_range_deg=pitch_range_deg)
    if kind == "scenes":
        # A scene is a ground under a sky: look from above (fold the pitch up).
        yaw, pitch = camera_label_yaw_pitch(c, SYNTH_CAMERA.pivot)
        c = orbit_labels(yaw, pitch.abs(), SYNTH_CAMERA)
    return c[0].to(torch.float32)


def _rays(c: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel world ray directions ``[B, S, S, 3]`` (unit) and ``|d_cam|`` ``[B, S, S]``
    with ``d_cam = ((u-cx)/fx, (v-cy)/fy, 1)``, at pixel centres ``(j + 0.5) / S``.

    Written as explicit products and sums so that each view's numbers do not depend on
    how many views share the batch (a matmul may pick kernels by shape).
    """
    cam2world, k = split_labels(c.to(torch.float64))
    t = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    v, u = torch.meshgrid(t, t, indexing="ij")
    fx, fy = k[:, 0, 0, None, None], k[:, 1, 1, None, None]
    x = (u - k[:, 0, 2, None, None]) / fx
    y = (v - k[:, 1, 2, None, None]) / fy
    norm = torch.sqrt(x * x + y * y + 1.0)
    r = cam2world[:, :3, :3, None, None]
    d = [(r[:, i, 0] * x + r[:, i, 1] * y + r[:, i, 2]) / norm for i in range(3)]
    return torch.stack(d, -1).to(torch.float32), norm.to(torch.float32)


def _pool_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of each 2x2 block over the last two dims (elementwise adds: batch-independent)."""
    return x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]


def render_views(
    kind: str, seed: int, indices: Sequence[int], labels: torch.Tensor, resolution: int
) -> dict[str, torch.Tensor]:
    """Render items ``indices`` of ``(kind, seed)`` from cameras ``labels`` ``[B, 25]``.

    Any camera works (a test can look at the back of a head). Returns
    ``image`` uint8 ``[B, 3, R, R]``, ``mask`` uint8 ``[B, 1, R, R]`` (part ids),
    ``depth`` float32 ``[B, 1, R, R]``: distance along the ray to the surface of the
    mask's part, ``inf`` where nothing was hit. It is the mean over that part's sub-pixels:
    exact (up to tessellation) inside a part, slightly off the pixel-centre ray where a
    part border crosses the pixel.
    One rasterizer call for the whole batch; each view's result does not depend on the batch.
    """
    _check_kind(kind)
    _check_resolution(resolution)
    labels = torch.as_tensor(labels, dtype=torch.float32).reshape(-1, 25)
    if len(indices) != len(labels):
        raise ValueError(f"{len(indices)} indices but {len(labels)} cameras")
    items = [_build_item(kind, int(seed), int(i)) for i in indices]
    size = resolution * SUPERSAMPLE
    face_ndc, kept = [], []
    first = 0
    for it, c in zip(items, labels, strict=True):
        fv = project_to_ndc(it.verts, c)[it.faces]  # [F, 3, 3]
        # Back-face culling (closed parts only): front faces are clockwise in NDC, whose
        # x and y both point against the image's u and v.
        e1, e2 = fv[:, 1, :2] - fv[:, 0, :2], fv[:, 2, :2] - fv[:, 0, :2]
        front = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
        keep = np.nonzero(front | ~it.face_cull)[0]
        face_ndc.append(fv[keep])
        kept.append(keep + first)
        first += len(it.faces)
    p2f, zbuf, bary = rasterize_tiled(face_ndc, size)
    hit = p2f >= 0
    offset = torch.from_numpy(np.cumsum([0] + [len(k) for k in kept[:-1]])).view(-1, 1, 1)
    f = torch.from_numpy(np.concatenate(kept))[(p2f + offset).where(hit, 0)]
    f = f.where(hit, 0)  # index into the joined faces of all views
    face_part = torch.from_numpy(np.concatenate([it.face_part for it in items]))
    face_colour = torch.from_numpy(np.concatenate([it.face_colour for it in items]))
    face_normals = torch.from_numpy(np.concatenate([it.face_normals for it in items]))

    part = torch.where(hit, face_part[f], 0)  # [B, S, S]
    fn = face_normals[f]  # [B, S, S, 3 corners, 3]
    b = bary
    n = [
        b[..., 0] * fn[..., 0, i] + b[..., 1] * fn[..., 1, i] + b[..., 2] * fn[..., 2, i]
        for i in range(3)
    ]
    dirs, ray_norm = _rays(labels, size)
    facing = n[0] * dirs[..., 0] + n[1] * dirs[..., 1] + n[2] * dirs[..., 2]
    sign = torch.where(facing > 0, -1.0, 1.0)  # light the side the camera sees
    length = torch.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).clamp(min=1e-8)
    light = torch.full_like(length, _AMBIENT)
    for direction, strength in _LIGHTS:
        lam = sign * (n[0] * direction[0] + n[1] * direction[1] + n[2] * direction[2]) / length
        light = light + strength * lam.clamp(min=0.0)
    rgb = face_colour[f] * light[..., None]  # [B, S, S, 3]

    if kind == "heads":
        background = torch.tensor(_HEAD_BACKGROUND).expand_as(rgb)
    else:
        sky = torch.from_numpy(np.stack([it.sky for it in items]).astype(np.float32))
        up = dirs[..., 1].clamp(min=0.0).sqrt()[..., None]  # [B, S, S, 1]
        background = sky[:, None, None, 0] * (1.0 - up) + sky[:, None, None, 1] * up
    rgb = torch.where(hit[..., None], rgb, background).permute(0, 3, 1, 2)
    image = (_pool_sum(rgb) * (255.0 / SUPERSAMPLE**2)).round().clamp(0, 255).to(torch.uint8)

    # Mask: the most frequent sub-pixel part, ties to the higher id (the smaller part).
    num_parts = len(KINDS[kind])
    votes = torch.stack([_pool_sum((part == p).to(torch.int64)) for p in range(num_parts)])
    score = votes * num_parts + torch.arange(num_parts).view(-1, 1, 1, 1)
    mask = score.argmax(0).to(torch.uint8)  # [B, R, R]

    dist = zbuf * ray_norm  # camera z -> distance along the ray
    same = (part == mask.repeat_interleave(2, 1).repeat_interleave(2, 2)) & hit
    depth = _pool_sum(torch.where(same, dist, 0.0)) / _pool_sum(same.float()).clamp(min=1)
    depth = torch.where(_pool_sum(same.float()) > 0, depth, math.inf)
    return {"image": image, "mask": mask[:, None], "depth": depth[:, None]}


# ---------------------------------------------------------------------------------------
# Data set


def _check_kind(kind: Any) -> None:
    if kind not in KINDS:
        raise DataError(f"synthetic data: kind must be one of {sorted(KINDS)}, got {kind!r}")


def _check_resolution(resolution: Any) -> None:
    ok = isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool)
    if not ok or resolution < 8 or resolution & (resolution - 1):
        raise DataError(
            f"synthetic data: resolution must be a power of two >= 8, got {resolution!r}"
        )


class SynthDataset(LinkDataset):
    """Rendered views of procedural heads or scenes, with cameras and part masks.

    Item ``i`` (dict of ``image`` uint8 ``[3, R, R]``, ``label`` float32 ``[25]``, ``mask``
    uint8 ``[1, R, R]``) depends only on ``(kind, seed, i)`` and the camera options.
    Views are rendered lazily ``BATCH`` at a time (the batch holding the asked item) and
    kept: all of them when the set is small (<= 256 MiB), else the last few batches.
    """

    _CACHE_LIMIT_BYTES = 256 * 2**20
    _RECENT_BATCHES = 4

    def __init__(
        self,
        kind: str = "heads",
        num: int = 1024,
        resolution: int = 64,
        seed: int = 0,
        cameras: str = "orbit",
        pitch_range_deg: float = 30.0,
    ) -> None:
        _check_kind(kind)
        _check_resolution(resolution)
        if not isinstance(num, (int, np.integer)) or isinstance(num, bool) or num < 1:
            raise DataError(f"synthetic data: num must be a positive integer, got {num!r}")
        if cameras not in CAMERA_MODES:
            raise DataError(
                f"synthetic data: cameras must be one of {list(CAMERA_MODES)}, got {cameras!r}"
            )
        if not (isinstance(pitch_range_deg, (int, float)) and 0 <= pitch_range_deg <= 90):
            raise DataError(
                f"synthetic data: pitch_range_deg must be in [0, 90], got {pitch_range_deg!r}"
            )
        super().__init__(int(num), int(resolution), 25, KINDS[kind], True, False)
        self.kind = kind
        self.seed = int(seed)
        self.cameras = cameras
        self.pitch_range_deg = float(pitch_range_deg)
        per_item = int(resolution) ** 2 * 4 + 25 * 4
        self.cache_all = int(num) * per_item <= self._CACHE_LIMIT_BYTES
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def label(self, index: int) -> torch.Tensor:
        """Camera of item ``index`` (float32 ``[25]``) without rendering it."""
        return item_label(index, self.seed, self.cameras, self.pitch_range_deg, self.kind)

    def _spec(self, b: int) -> tuple[str, int, str, float, int, int, int]:
        """Arguments of :func:`_render_batch` for batch ``b`` (picklable, for workers)."""
        stop = min(self.num_raw, (b + 1) * BATCH)
        return (
            self.kind,
            self.seed,
            self.cameras,
            self.pitch_range_deg,
            self.resolution,
            b * BATCH,
            stop,
        )

    def _store(self, b: int, entry: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self._cache[b] = entry
        if not self.cache_all and len(self._cache) > self._RECENT_BATCHES:
            self._cache.popitem(last=False)

    def _batch(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if b in self._cache:
            self._cache.move_to_end(b)
            return self._cache[b]
        entry = _render_batch(*self._spec(b))
        self._store(b, entry)
        return entry

    def _load(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        images, masks, labels = self._batch(raw_index // BATCH)
        k = raw_index % BATCH
        return images[k], masks[k], labels[k]


def _render_batch(
    kind: str, seed: int, cameras: str, pitch: float, resolution: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items ``start..stop-1``: images uint8 ``[B, R, R, 3]``, masks uint8 ``[B, R, R]``,
    labels float32 ``[B, 25]``."""
    indices = list(range(start, stop))
    labels = torch.stack([item_label(i, seed, cameras, pitch, kind) for i in indices])
    out = render_views(kind, seed, indices, labels, resolution)
    return (
        out["image"].permute(0, 2, 3, 1).numpy(),
        out["mask"][:, 0].numpy(),
        labels.numpy(),
    )


def _worker_init() -> None:
    # The rasterizer is single-threaded; one torch thread per worker process avoids
    # oversubscribing the cores the other workers use.
    torch.set_num_threads(1)


class _Progress(Dataset):
    """Passes items through and ticks a tqdm bar (for :func:`write_dataset_zip`)."""

    def __init__(self, dataset: SynthDataset, bar: Any, pool: Any = None, ahead: int = 0) -> None:
        self.dataset = dataset
        self.bar = bar
        self.pool = pool
        self.ahead = ahead  # batches kept in flight
        self.pending: OrderedDict[int, Any] = OrderedDict()  # batch -> future
        self.next_batch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # label_dim, part_names, ...
        return getattr(self.__dict__["dataset"], name)

    def _prefetch(self, b: int) -> None:
        """Keep a few batches from ``b`` on in flight; move batch ``b`` into the cache."""
        num_batches = -(-self.dataset.num_raw // BATCH)
        while self.next_batch < min(num_batches, b + self.ahead):
            spec = self.dataset._spec(self.next_batch)
            self.pending[self.next_batch] = self.pool.submit(_render_batch, *spec)
            self.next_batch += 1
        if b in self.pending:
            self.dataset._store(b, self.pending.pop(b).result())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.pool is not None and index % BATCH == 0:
            self._prefetch(index // BATCH)
        item = self.dataset[index]
        self.bar.update(1)
        return item


def synthesize(
    kind: str,
    num: int,
    resolution: int,
    out_path: str,
    seed: int = 0,
    cameras: str = "orbit",
    progress: bool = True,
    pitch_range_deg: float = 30.0,
    workers: int | None = None,
) -> str:
    """Render ``num`` views and write them as an EG3D-layout data set (zip or folder).

    Images, part masks (``masks/``) and ``dataset.json`` (25-float camera labels and the
    part names) go through :func:`link_core.data.write_dataset_zip` (atomic). ``workers``
    processes render batches (default: one per core, up to 4, for sets of 4+ batches on a
    multi-core machine; 0 renders here); the output does not depend on it. Workers are
    spawned, so a script that calls this needs the usual ``if __name__ == "__main__":``
    guard. Returns ``out_path``.
    Bad arguments raise :class:`~link_core.errors.DataError`.
    """
    from tqdm import tqdm

    dataset = SynthDataset(kind, num, resolution, seed, cameras, pitch_range_deg)
    dataset.cache_all = False  # streamed once: keep memory flat for large sets
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = min(4, cores) if cores > 1 and num >= 4 * BATCH else 0
    desc = f"synth {kind} {resolution}²"
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress) as bar:
        if workers <= 0:
            return write_dataset_zip(_Progress(dataset, bar), out_path)
        # spawn: a forked child would inherit torch's thread pool in an unknown state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer=_worker_init) as pool:
            wrapped = _Progress(dataset, bar, pool, ahead=2 * workers)
            try:
                return write_dataset_zip(wrapped, out_path)
            finally:
                for future in wrapped.pending.values():
                    future.cancel()


PART_GROUPS: dict[str, tuple[str, ...]] = {"eyes": ("left_eye", "right_eye")}
"""Names a link may use for several parts together."""


def parts_named(name: str, kind: str = "heads") -> tuple[str, ...] | None:
    """The parts a link name stands for (a part's own name or a :data:`PART_GROUPS` name);
    None when it names none."""
    if name in PART_GROUPS and kind == "heads":
        return PART_GROUPS[name]
    return (name,) if name in KINDS[kind] else None


def box_part_stats(
    box: Sequence[float] | Sequence[Sequence[float]],
    parts: Sequence[str],
    kind: str = "heads",
    num: int = 128,
    resolution: int = 32,
    seed: int = 0,
    yaw_std_deg: float = 25.0,
    seen: bool = False,
) -> dict[str, Any]:
    """How well a ``box3d`` region ``(x0, y0, z0, x1, y1, z1)`` (or a list of them: their
    union; ``seen``: a ``box3d_seen`` region, whose mask is where the camera sees the box;
    only its pixels on a surface are counted) fits named parts of the
    synthetic objects, measured the way the link sees it: ``num`` views from a frontal cone
    (yaw σ ``yaw_std_deg``), the surface point of each pixel from the true depth, the mask
    where it lies in the box.

    Returns ``coverage`` (share of the parts' pixels inside the mask), ``foreign`` (share of
    the mask's pixels on another named part, i.e. not the parts and not the base surface:
    ``head`` for heads, ``ground`` for scenes), ``pixels`` (mask pixels per view) and
    ``composition`` (share of the mask per part).
    """
    _check_kind(kind)
    names = HEAD_PARTS if kind == "heads" else SCENE_PARTS
    unknown = [p for p in parts if p not in names]
    if unknown:
        raise ValueError(f"unknown {kind} part {unknown[0]!r} (known: {', '.join(names)})")
    g = torch.Generator().manual_seed(seed)
    c = sample_poses(num, "frontal", SYNTH_CAMERA, generator=g, yaw_std_deg=yaw_std_deg)
    views = render_views(kind, seed, list(range(num)), c, resolution)
    hit = torch.isfinite(views["depth"][:, 0])
    depth = torch.where(hit[:, None], views["depth"], torch.full_like(views["depth"], 1e3))
    region = build_region({"box3d_seen" if seen else "box3d": list(box)}, "box")  # as in a config
    inside = region({"image": views["image"], "image_depth": depth}, c)[:, 0] > 0.5
    inside = inside & hit
    part_id = views["mask"][:, 0].long()
    ids = [names.index(p) for p in parts]
    own = torch.isin(part_id, torch.tensor(ids))
    base = names.index("head" if kind == "heads" else "ground")
    mass = max(int(inside.sum()), 1)
    return {
        "coverage": float((inside & own).sum()) / max(int(own.sum()), 1),
        "foreign": float((inside & ~own & (part_id != base)).sum()) / mass,
        "pixels": float(inside.sum()) / num,
        "composition": {
            n: float((inside & (part_id == i)).sum()) / mass for i, n in enumerate(names)
        },
    }
