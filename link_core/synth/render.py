"""Rendering synthetic items: views, part masks and depth from any camera."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from link_core.data.cameras import (
    camera_label_yaw_pitch,
    orbit_labels,
    sample_poses,
    split_labels,
)
from link_core.errors import DataError
from link_core.synth.heads import _head_parts
from link_core.synth.meshes import (
    _AMBIENT,
    _HEAD_BACKGROUND,
    _LIGHTS,
    HEAD_KINDS,
    KINDS,
    SUPERSAMPLE,
    SYNTH_CAMERA,
)
from link_core.synth.raster import project_to_ndc, rasterize_tiled
from link_core.synth.scenes import _scene_parts


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


def item_attributes(kind: str, seed: int, index: int) -> dict[str, str]:
    """The discrete draws of item ``index`` (heads: :data:`~link_core.synth.heads.HEAD_ATTRIBUTES`),
    built exactly as the item is, without rendering it."""
    _check_kind(kind)
    if kind not in HEAD_KINDS:
        raise DataError(f"synthetic data: only heads have attributes, not {kind!r}")
    attributes: dict[str, str] = {}
    _head_parts(np.random.default_rng([seed, index]), attributes, _detail_rng(kind, seed, index))
    return attributes


def _detail_rng(kind: str, seed: int, index: int) -> np.random.Generator | None:
    """``heads_hd``'s second stream (eye whites, ears, glasses); None for other kinds."""
    return np.random.default_rng([seed, index, 2]) if kind == "heads_hd" else None


def _build_item(kind: str, seed: int, index: int) -> _Item:
    rng = np.random.default_rng([seed, index])
    sky = None
    if kind in HEAD_KINDS:
        parts = _head_parts(rng, detail=_detail_rng(kind, seed, index))
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

    ``cameras`` is a :func:`~link_core.data.cameras.sample_poses` mode (``orbit``: all round,
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

    if kind in HEAD_KINDS:
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


def _check_kind(kind: Any) -> None:
    if kind not in KINDS:
        raise DataError(f"synthetic data: kind must be one of {sorted(KINDS)}, got {kind!r}")


def _check_resolution(resolution: Any) -> None:
    ok = isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool)
    if not ok or resolution < 8 or resolution & (resolution - 1):
        raise DataError(
            f"synthetic data: resolution must be a power of two >= 8, got {resolution!r}"
        )


def contact_sheet(
    kind: str,
    indices: Sequence[int],
    resolution: int,
    seed: int = 0,
    yaws_deg: Sequence[float] = (0.0, 50.0, 90.0, 180.0),
    pitch_deg: float = 5.0,
    masks: bool = True,
) -> np.ndarray:
    """One row per item: its views at ``yaws_deg`` (0: the front) and ``pitch_deg``, and with
    ``masks`` the frontal part mask in :func:`part_colours`. uint8 ``[H, W, 3]``, 2-pixel
    white gaps: what a person checks a synthetic set's parts on."""
    from link_core.data.images import grid

    _check_kind(kind)
    _check_resolution(resolution)
    yaws = torch.tensor([math.radians(y) for y in yaws_deg] * len(indices))
    pitch = torch.full_like(yaws, math.radians(pitch_deg))
    items = [i for i in indices for _ in yaws_deg]
    out = render_views(kind, seed, items, orbit_labels(yaws, pitch, SYNTH_CAMERA), resolution)
    cols = len(yaws_deg)
    tiles = out["image"].permute(0, 2, 3, 1).numpy()
    tiles = tiles.reshape(len(indices), cols, resolution, resolution, 3)
    if masks:
        front = out["mask"][:: len(yaws_deg), 0].long().numpy()  # [N, R, R]
        tiles = np.concatenate([tiles, part_colours(len(KINDS[kind]))[front][:, None]], 1)
        cols += 1
    return grid(tiles.reshape(-1, resolution, resolution, 3), cols, pad=2)


def part_colours(num: int) -> np.ndarray:
    """A distinct uint8 colour ``[num, 3]`` per part id (id 0, nothing hit: white)."""
    hues = (np.arange(num) * 0.61803) % 1.0
    rgb = np.stack([np.abs((hues * 6 + k) % 6 - 3) - 1 for k in (0, 4, 2)], -1).clip(0, 1)
    colours = (60 + 170 * rgb).astype(np.uint8)
    colours[0] = 255
    return colours
