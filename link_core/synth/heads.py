"""Procedural heads: an ellipsoid head, eyes, nose, mouth and hair or a hat; for
``heads_hd`` also eye whites, ears and, on some heads, glasses.

Besides the meshes, each head's discrete draws are its *attributes* (:data:`HEAD_ATTRIBUTES`):
what a fine-tune can drop (a hat) shows up as a frequency, read without changing the random
stream (recording a draw draws nothing).
"""

from __future__ import annotations

import math

import numpy as np

from link_core.synth.meshes import (
    EXTENT,
    HEAD_HD_PARTS,
    _colour,
    _Part,
    _place,
    _rot_x,
    _rot_y_to,
    _template,
)


def _on_ellipsoid(radii: np.ndarray, yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Point on the ellipsoid (centred at 0) in direction (yaw, pitch) and its unit normal."""
    d = np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    p = d / math.sqrt(float(np.sum((d / radii) ** 2)))
    n = p / radii**2
    return p, n / np.linalg.norm(n)


HEAD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair": ("none", "cap", "bun", "hat", "cone"),
    "nose": ("cone", "round"),
    "skin": ("natural", "fantasy"),
}
"""The discrete draws of a head and their values: ``hair`` (15 % none; of the rest 45 % a
cap, 20 % a cap with a bun, 20 % a hat, 15 % a cone), ``nose`` (60 % cone) and ``skin``
(85 % natural tones)."""

HEAD_HD_ATTRIBUTES: dict[str, tuple[str, ...]] = {**HEAD_ATTRIBUTES, "glasses": ("none", "round")}
"""``heads_hd``'s draws: the heads' and ``glasses`` (30 % round rims)."""


def _head_parts(
    rng: np.random.Generator,
    attributes: dict[str, str] | None = None,
    detail: np.random.Generator | None = None,
) -> list[_Part]:
    """The parts of one head (ids of :data:`~link_core.synth.meshes.HEAD_HD_PARTS`, whose
    first ids are the heads'), fitted into ``EXTENT``; with ``attributes``, also its
    :data:`HEAD_ATTRIBUTES` values, written into that dict. ``detail``: a second random
    stream for ``heads_hd``'s eye whites, ears and glasses (and the ``glasses`` attribute);
    ``rng`` is drawn exactly as without it, so a ``heads_hd`` item is the ``heads`` item of
    the same index with the detail added."""
    record = attributes if attributes is not None else {}
    P = {name: i for i, name in enumerate(HEAD_HD_PARTS)}
    radii = np.array([rng.uniform(0.27, 0.32), rng.uniform(0.31, 0.37), rng.uniform(0.27, 0.32)])
    natural = rng.random() < 0.85
    record["skin"] = "natural" if natural else "fantasy"
    skin = (
        _colour(rng, (0.02, 0.11), (0.2, 0.6), (0.45, 0.95))
        if natural
        else _colour(rng, sat=(0.2, 0.6), val=(0.5, 0.95))  # some fantasy skins
    )
    parts = [_Part(_place(_template("sphere"), radii, (0, 0, 0)), P["head"], skin)]

    # Eyes: symmetric places, own size and colour each (independent factors per part).
    eye_yaw, eye_pitch = rng.uniform(0.30, 0.45), rng.uniform(0.08, 0.22)
    eye_top = -1.0
    eyes = []  # (centre, radius) per eye, for the glasses
    for name, sign in (("left_eye", -1.0), ("right_eye", 1.0)):
        r = rng.uniform(0.035, 0.06)
        p, n = _on_ellipsoid(radii, sign * eye_yaw, eye_pitch)
        centre = p - 0.35 * r * n  # sunk a little so it sits in the head
        iris = _colour(rng, sat=(0.5, 1.0), val=(0.25, 1.0))
        look = n + np.array([0.0, 0.0, 1.0])
        look /= np.linalg.norm(look)
        pupil_r = r * rng.uniform(0.35, 0.55)
        pupil = centre + look * (r - 0.45 * pupil_r)
        dark = np.full(3, rng.uniform(0.02, 0.15))
        if detail is None:
            parts.append(_Part(_place(_template("small_sphere"), [r] * 3, centre), P[name], iris))
        else:
            # A white eyeball with the iris as a cap that stands a little proud of it, and
            # the pupil on the iris: at 128² an eye reads as an eye, not a coloured bead.
            white = np.clip(1.0 - detail.uniform(0.0, 0.08, size=3), 0, 1)
            parts.append(_Part(_place(_template("small_sphere"), [r] * 3, centre), P[name], white))
            iris_r = r * detail.uniform(0.5, 0.62)
            iris_c = centre + look * (r - 0.75 * iris_r)
            parts.append(
                _Part(_place(_template("small_sphere"), [iris_r] * 3, iris_c), P[name], iris)
            )
            pupil_r = iris_r * (pupil_r / r + 0.1)
            pupil = iris_c + look * (iris_r - 0.6 * pupil_r)
        parts.append(_Part(_place(_template("small_sphere"), [pupil_r] * 3, pupil), P[name], dark))
        eye_top = max(eye_top, centre[1] + r)
        eyes.append((centre, r))

    # Nose: a cone or an ellipsoid sticking out along +z, a little below the eyes.
    p, _ = _on_ellipsoid(radii, 0.0, rng.uniform(-0.12, -0.02))
    length, width = rng.uniform(0.06, 0.14), rng.uniform(0.03, 0.055)
    nose_colour = np.clip(skin * rng.uniform(0.75, 1.15, size=3), 0, 1)
    record["nose"] = "cone" if rng.random() < 0.6 else "round"
    if record["nose"] == "cone":
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

    record["hair"] = "none"
    if rng.random() < 0.85:
        parts += _hair(rng, radii, eye_top, P["hair"], record)
    if detail is not None:
        parts += _ears(detail, radii, eye_pitch, skin, P["ears"])
        record["glasses"] = "none"
        if detail.random() < 0.3:
            record["glasses"] = "round"
            parts += _glasses(detail, radii, eyes, P["glasses"])

    # Fit into the box: a uniform scale about the origin keeps every normal.
    top = max(float(np.abs(part.mesh.verts).max()) for part in parts)
    if top > EXTENT:
        for part in parts:
            part.mesh.verts *= EXTENT / top
    return parts


def _hair(
    rng: np.random.Generator, radii: np.ndarray, eye_top: float, pid: int, record: dict[str, str]
) -> list[_Part]:
    """Hair (a cap, maybe a bun) or a hat, clear of the eyes; its style into ``record``."""
    colour = (
        _colour(rng, (0.02, 0.13), (0.3, 0.9), (0.08, 0.85))  # black .. brown .. blond
        if rng.random() < 0.6
        else _colour(rng, sat=(0.4, 1.0), val=(0.3, 1.0))
    )
    style = str(rng.choice(["cap", "bun", "hat", "cone"], p=[0.45, 0.2, 0.2, 0.15]))
    record["hair"] = style
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


def _ears(
    rng: np.random.Generator, radii: np.ndarray, eye_pitch: float, skin: np.ndarray, pid: int
) -> list[_Part]:
    """Two flattened ellipsoids on the sides, a little below eye level, tilted back."""
    pitch = eye_pitch - rng.uniform(0.2, 0.35)
    size = (0.022, rng.uniform(0.055, 0.075), rng.uniform(0.035, 0.05))
    colour = np.clip(skin * rng.uniform(0.85, 0.95), 0, 1)
    tilt = _rot_x(rng.uniform(-0.35, -0.1))
    out = []
    for sign in (-1.0, 1.0):
        p, n = _on_ellipsoid(radii, sign * math.pi / 2 * 0.93, pitch)
        mesh = _place(_template("small_sphere"), size, p + 0.01 * n, tilt)
        out.append(_Part(mesh, pid, colour))
    return out


def _glasses(
    rng: np.random.Generator, radii: np.ndarray, eyes: list[tuple[np.ndarray, float]], pid: int
) -> list[_Part]:
    """Round rims in front of the eyes, a bridge between them and temples back to the ears."""
    colour = (
        np.full(3, rng.uniform(0.04, 0.25))
        if rng.random() < 0.6
        else _colour(rng, sat=(0.5, 1.0), val=(0.3, 0.9))
    )
    rim = max(r for _, r in eyes) * rng.uniform(1.5, 1.8)
    z = max(c[2] + r for c, r in eyes) + 0.015
    y = float(np.mean([c[1] for c, _ in eyes]))
    out = []
    fronts = []
    for centre, _ in eyes:
        front = np.array([centre[0], y, z])
        fronts.append(front)
        out.append(_Part(_place(_template("rim"), [rim] * 3, front), pid, colour))
    thick = 0.12 * rim  # the rim template's tube radius
    (left, right) = sorted(fronts, key=lambda f: f[0])
    gap = (right[0] - rim) - (left[0] + rim)
    if gap > 0:
        start = left + [rim, 0.0, 0.0]
        out.append(_bar(start, start + [gap, 0.0, 0.0], thick, pid, colour))
    for front, sign in ((left, -1.0), (right, 1.0)):
        start = front + [sign * rim, 0.0, 0.0]
        end = np.array([sign * radii[0] * 1.06, y - 0.01, -0.02])
        out.append(_bar(start, end, thick, pid, colour))
    return out


def _bar(start: np.ndarray, end: np.ndarray, thick: float, pid: int, colour: np.ndarray) -> _Part:
    """A thin cylinder from ``start`` to ``end``."""
    d = np.asarray(end, dtype=np.float64) - start
    mesh = _place(
        _template("cylinder"), (thick, float(np.linalg.norm(d)), thick), start, _rot_y_to(d)
    )
    return _Part(mesh, pid, colour)
