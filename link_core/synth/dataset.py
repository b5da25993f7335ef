"""The synthetic 3-D data set (lazily rendered views) and how boxes fit its parts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from link_core.data import LinkDataset
from link_core.data.cameras import (
    sample_poses,
)
from link_core.errors import DataError
from link_core.link import build_region
from link_core.synth.meshes import (
    BATCH,
    CAMERA_MODES,
    HEAD_KINDS,
    KINDS,
    SYNTH_CAMERA,
)
from link_core.synth.render import _check_kind, _check_resolution, item_label, render_views


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

    def _raw_label(self, raw_index: int) -> np.ndarray:
        """Camera of item ``raw_index`` (float32 ``[25]``) without rendering it."""
        label = item_label(raw_index, self.seed, self.cameras, self.pitch_range_deg, self.kind)
        return label.numpy()

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


"""Names a link may use for several parts together."""


PART_GROUPS: dict[str, tuple[str, ...]] = {"eyes": ("left_eye", "right_eye")}
"""Names a link may use for several parts together."""


def parts_named(name: str, kind: str = "heads") -> tuple[str, ...] | None:
    """The parts a link name stands for (a part's own name or a :data:`PART_GROUPS` name);
    None when it names none."""
    if name in PART_GROUPS and kind in HEAD_KINDS:
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
    names = KINDS[kind]
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
    base = names.index("head" if kind in HEAD_KINDS else "ground")
    mass = max(int(inside.sum()), 1)
    return {
        "coverage": float((inside & own).sum()) / max(int(own.sum()), 1),
        "foreign": float((inside & ~own & (part_id != base)).sum()) / mass,
        "pixels": float(inside.sum()) / num,
        "composition": {
            n: float((inside & (part_id == i)).sum()) / mass for i, n in enumerate(names)
        },
    }
