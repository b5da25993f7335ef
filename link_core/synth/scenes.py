"""Procedural scenes: a ground disc under a sky with one object on it."""

from __future__ import annotations

import math

import numpy as np

from link_core.synth.meshes import (
    EXTENT,
    _colour,
    _Part,
    _place,
    _rot_y,
    _template,
)


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
