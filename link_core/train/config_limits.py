"""Bounds on config values a user hands in: every float finite (a NaN budget never ends a
run), and sizes that allocate memory below limits far past any real model, so a hostile or
mistyped value (``train.batch: 10**12``) is a one-line error naming the key instead of an
allocation that fails or takes the machine down."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from link_core.errors import ConfigError

LIMITS: dict[str, int] = {
    "train.batch": 1 << 16,
    "train.batch_gpu": 1 << 16,
    "model.z_dim": 1 << 13,
    "model.w_dim": 1 << 13,
    "model.c_dim": 1 << 12,
    "model.mapping_layers": 64,
    "model.d_mapping_layers": 64,
    "model.channel_base": 1 << 20,
    "model.channel_max": 1 << 13,
    "model.d_channel_base": 1 << 20,
    "model.d_channel_max": 1 << 13,
    "model.mbstd_group": 1 << 16,
    "data.num_images": 1 << 24,
    "metrics.num": 1 << 20,
    "metrics.train_num": 1 << 16,
    "link.volume_points": 1 << 20,
    "train.ray_chunk": 1 << 30,
}
"""Upper bounds of sizes that allocate memory: a value past one (``train.batch: 10**12``) is
a one-line error naming the key, not an allocation that fails or takes the machine down.
Every preset, NVIDIA's largest models included, lies far inside them."""


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """``(key path, value)`` of the first NaN or infinity in a config value (nested mappings
    and lists too), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if isinstance(value, dict):
        found = (_non_finite(v, f"{where}.{k}") for k, v in value.items())
    elif isinstance(value, list | tuple):
        found = (_non_finite(v, f"{where}[{i}]") for i, v in enumerate(value))
    else:
        return None
    return next((f for f in found if f is not None), None)


def check_limits(cfg: Any) -> None:
    """Every field of every section of a :class:`~link_core.train.config.Config`: finite
    floats (nested mappings and lists too) and the :data:`LIMITS`."""
    for section in dataclasses.fields(cfg):
        part = getattr(cfg, section.name)
        for f in dataclasses.fields(part):
            key = f"{section.name}.{f.name}"
            value = getattr(part, f.name)
            bad = _non_finite(value, key)
            if bad is not None:
                raise ConfigError(f"{bad[0]}: expected a finite number, got {bad[1]}")
            if key in LIMITS and value > LIMITS[key]:
                raise ConfigError(f"{key}: {value} is more than the limit {LIMITS[key]}")
