"""Procedural "toy faces": the built-in data set of the quickstart and the tests.

Each image is drawn from ``(seed, index)`` alone, so any process draws the same image:

- a random background colour;
- a face ellipse (skin-ish colour, jittered centre and radii) that always contains the patches;
- two eye patches, exact squares that fill ``TOYFACE_BOXES["left_eye"]`` / ``["right_eye"]``,
  each with its own vivid fill colour and an eye disk wholly inside the patch;
- a mouth patch filling ``TOYFACE_BOXES["mouth"]`` with a bar of random size inside.

Why patches: a link region is a box (or the part mask, which here equals the box), and the
link loss can only separate what does not straddle the region's border (a part across it
leaks its colour to the other side). Patch edges lie on multiples of 1/16, so at every
resolution >= 16 they fall on pixel edges and no pixel outside a box carries any of the
part's colour.

Every colour and size is drawn independently, so a generator can give each part its own
latent axes. Images are drawn at 4x supersampling and area-downsampled (antialiasing); the
part label map is drawn at the target resolution from pixel centres.
"""

from __future__ import annotations

import colorsys

import numpy as np

from link_core.data.dataset import LinkDataset, _is_int, _is_pow2
from link_core.errors import DataError

TOYFACE_PARTS: tuple[str, ...] = ("background", "face", "left_eye", "right_eye", "mouth")
"""Part names; a part's id in the label map is its index here."""

TOYFACE_BOXES: dict[str, tuple[float, float, float, float]] = {
    "left_eye": (3 / 16, 5 / 16, 7 / 16, 9 / 16),
    "right_eye": (9 / 16, 5 / 16, 13 / 16, 9 / 16),
    "mouth": (5 / 16, 11 / 16, 11 / 16, 13 / 16),
}
"""Patch boxes as normalized ``(x0, y0, x1, y1)``; x to the right, y down, image = [0, 1]²."""

SUPERSAMPLE = 4
_MARGIN = 1 / 64  # gap between a drawn shape and its patch border (normalized)


def random_colour(
    rng: np.random.Generator,
    hue: tuple[float, float] = (0.0, 1.0),
    sat: tuple[float, float] = (0.25, 1.0),
    val: tuple[float, float] = (0.3, 1.0),
    dtype: type = np.float32,
) -> np.ndarray:
    """A random RGB colour in [0, 1], shape ``[3]``, uniform in the given HSV ranges (the
    draws of every synthetic set: toy faces, heads, scenes)."""
    h, s, v = rng.uniform(*hue), rng.uniform(*sat), rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=dtype)


def _face_ellipse(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Centre and radii ``(cx, cy, rx, ry)`` of a face that contains every patch box."""
    cx = 0.5 + rng.uniform(-0.02, 0.02)
    cy = 0.52 + rng.uniform(-0.02, 0.02)
    rx = rng.uniform(0.41, 0.47)
    ry = rng.uniform(0.44, 0.49)
    # The ellipse is convex: containing every box corner means containing every box.
    # Grow it (keeping its shape) until all corners lie inside with a margin.
    worst = max(
        ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
        for x0, y0, x1, y1 in TOYFACE_BOXES.values()
        for x in (x0, x1)
        for y in (y0, y1)
    )
    grow = max(1.0, float(np.sqrt(worst / 0.9)))
    return cx, cy, rx * grow, ry * grow


TOYFACE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "background": ("dark", "light"),
    "left_pupil": ("dark", "light"),
    "mouth": ("narrow", "wide"),
}
"""Two-way splits of a toy face's continuous draws, for attribute frequencies: the
background's and the left eye disk's HSV value below / at or above 0.6, the mouth bar's
width below / at or above 0.22 of the image."""


def draw_toyface(
    seed: int, index: int, resolution: int, attributes: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw toy face ``index`` of the set ``seed``.

    Returns ``(image, mask)``: image uint8 ``[H, W, 3]`` RGB, mask uint8 ``[H, W]`` part ids
    (indices into :data:`TOYFACE_PARTS`), ``H = W = resolution`` (a power of two >= 16).
    ``attributes``: also its :data:`TOYFACE_ATTRIBUTES` values, written into that dict.
    """
    record = attributes if attributes is not None else {}
    r = int(resolution)
    if r < 16 or r & (r - 1):
        raise ValueError(f"toy faces: resolution must be a power of two >= 16, got {resolution}")
    rng = np.random.default_rng([int(seed), int(index)])
    n = r * SUPERSAMPLE
    u = (np.arange(n, dtype=np.float32) + 0.5) / n  # supersample pixel centres
    canvas = np.empty((n, n, 3), dtype=np.float32)

    # Everything is drawn from rng in one fixed order, so an image depends on (seed, index) only.
    canvas[:] = random_colour(rng, sat=(0.15, 1.0), val=(0.2, 1.0))
    record["background"] = "light" if canvas[0, 0].max() >= 0.6 else "dark"  # max(RGB) = HSV v
    cx, cy, rx, ry = _face_ellipse(rng)
    face = ((u[None, :] - cx) / rx) ** 2 + ((u[:, None] - cy) / ry) ** 2 <= 1.0
    canvas[face] = random_colour(rng, hue=(-0.02, 0.12), sat=(0.2, 0.7), val=(0.45, 1.0))

    for part in ("left_eye", "right_eye"):
        x0, y0, x1, y1 = TOYFACE_BOXES[part]
        sl = np.s_[round(y0 * n) : round(y1 * n), round(x0 * n) : round(x1 * n)]
        patch = canvas[sl]  # a view: drawing into it draws into the canvas
        # Vivid fills and a large disk: the part must be salient at 32² so that D notices
        # when G dulls it (a grey patch would be a realistic mode otherwise).
        patch[:] = random_colour(rng, sat=(0.55, 1.0), val=(0.55, 1.0))
        px, py = u[sl[1]], u[sl[0]]
        rad = rng.uniform(0.06, 0.1)
        ex = rng.uniform(x0 + rad + _MARGIN, x1 - rad - _MARGIN)
        ey = rng.uniform(y0 + rad + _MARGIN, y1 - rad - _MARGIN)
        eye = (px[None, :] - ex) ** 2 + (py[:, None] - ey) ** 2 <= rad**2
        patch[eye] = pupil = random_colour(rng, sat=(0.5, 1.0), val=(0.1, 1.0))
        if part == "left_eye":
            record["left_pupil"] = "light" if pupil.max() >= 0.6 else "dark"

    x0, y0, x1, y1 = TOYFACE_BOXES["mouth"]
    sl = np.s_[round(y0 * n) : round(y1 * n), round(x0 * n) : round(x1 * n)]
    patch = canvas[sl]
    patch[:] = random_colour(rng, sat=(0.1, 0.9), val=(0.35, 1.0))
    px, py = u[sl[1]], u[sl[0]]
    bw = rng.uniform(0.12, 0.32)
    record["mouth"] = "wide" if bw >= 0.22 else "narrow"
    bh = rng.uniform(0.025, 0.07)
    bx = rng.uniform(x0 + bw / 2 + _MARGIN, x1 - bw / 2 - _MARGIN)
    by = rng.uniform(y0 + bh / 2 + _MARGIN, y1 - bh / 2 - _MARGIN)
    bar = (np.abs(px[None, :] - bx) <= bw / 2) & (np.abs(py[:, None] - by) <= bh / 2)
    patch[bar] = random_colour(rng, sat=(0.3, 1.0), val=(0.15, 0.9))

    # Area-downsample (box filter over each SUPERSAMPLE² block) for antialiased edges.
    small = canvas.reshape(r, SUPERSAMPLE, r, SUPERSAMPLE, 3).mean(axis=(1, 3))
    image = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)

    # Label map at the target resolution from pixel centres: patches are pixel-aligned, so
    # each patch id covers exactly its box; the face is the ellipse minus the patches.
    c = (np.arange(r, dtype=np.float32) + 0.5) / r
    mask = np.zeros((r, r), dtype=np.uint8)
    mask[((c[None, :] - cx) / rx) ** 2 + ((c[:, None] - cy) / ry) ** 2 <= 1.0] = 1
    for pid, part in enumerate(TOYFACE_PARTS[2:], start=2):
        x0, y0, x1, y1 = TOYFACE_BOXES[part]
        mask[round(y0 * r) : round(y1 * r), round(x0 * r) : round(x1 * r)] = pid
    return image, mask


class ToyFaces(LinkDataset):
    """The built-in procedural data set (see :mod:`link_core.synth.toyfaces`).

    Image ``i`` is a pure function of ``(seed, i)``. Masks have the ids of
    :data:`TOYFACE_PARTS`; the eye and mouth ids cover exactly :data:`TOYFACE_BOXES`.
    Images are drawn on first use and cached in memory (uint8) when the whole set is small.
    """

    _CACHE_LIMIT_BYTES = 256 * 2**20

    def __init__(
        self, resolution: int = 32, num_images: int = 4096, seed: int = 0, xflip: bool = False
    ) -> None:
        if not _is_int(resolution) or resolution < 16 or not _is_pow2(int(resolution)):
            raise DataError(
                f"toy faces: resolution must be a power of two >= 16, got {resolution!r}"
            )
        if not _is_int(num_images) or num_images < 1:
            raise DataError(f"toy faces: num_images must be a positive integer, got {num_images!r}")
        super().__init__(int(num_images), int(resolution), 0, TOYFACE_PARTS, True, xflip)
        self.seed = int(seed)
        per_image = int(resolution) ** 2 * 4  # 3 image bytes + 1 mask byte per pixel
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = (
            {} if num_images * per_image <= self._CACHE_LIMIT_BYTES else None
        )

    def _load(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if self._cache is not None and raw_index in self._cache:
            image, mask = self._cache[raw_index]
        else:
            image, mask = draw_toyface(self.seed, raw_index, self.resolution)
            if self._cache is not None:
                self._cache[raw_index] = (image, mask)
        return image, mask, np.zeros(0, dtype=np.float32)
