"""Value checks on a config a user hands in (:func:`validate_config`): every choice one of
its values, every float finite (a NaN budget never ends a run), and sizes that allocate
memory below limits far past any real model, so a hostile or mistyped value
(``train.batch: 10**12``) is a one-line error naming the key instead of an allocation that
fails or takes the machine down. Nothing here needs a data set or a network."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from link_core.errors import ConfigError

# = link_core.link.LOSS_FORMS (a torch-free copy)
LOSS_FORMS = ("absolute", "relative", "share", "share_fixed", "share_pooled", "share_mixed")
"""How the link loss measures eqs. 3 and 4 (``link.form``; ``link_core.link.link_loss``)."""
SHARE_FORMS = tuple(form for form in LOSS_FORMS if form.startswith("share"))
"""The forms whose eq. 4 is a share of summed change, which ``link.extra_views`` pools."""
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
"""``train.compile``'s modes."""

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


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def validate_config(cfg: Any) -> None:
    """Every check of a :class:`~link_core.train.config.Config` (links are checked by
    ``link_core.link``)."""
    check_limits(cfg)
    if not _power_of_two(cfg.model.resolution) or not 16 <= cfg.model.resolution <= 1024:
        raise ConfigError(
            f"model.resolution: {cfg.model.resolution} is not a power of two in 16..1024"
        )
    if cfg.data.resolution != cfg.model.resolution:
        raise ConfigError(
            f"data.resolution ({cfg.data.resolution}) differs from model.resolution "
            f"({cfg.model.resolution})"
        )
    positive = {
        "train.batch": cfg.train.batch,
        "link.interval": cfg.link.interval,
        "link.batch_shrink": cfg.link.batch_shrink,
        "loss.r1_interval": cfg.loss.r1_interval,
        "loss.pl_interval": cfg.loss.pl_interval,
        "model.w_dim": cfg.model.w_dim,
        "model.z_dim": cfg.model.z_dim,
        "metrics.num": cfg.metrics.num,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key}: must be positive, got {value}")
    for key, value in {"train.kimg": cfg.train.kimg, "train.minutes": cfg.train.minutes}.items():
        if value < 0:
            raise ConfigError(f"{key}: must be >= 0, got {value}")
    if not 0.0 <= cfg.train.lr_cooldown <= 1.0:
        raise ConfigError(
            f"train.lr_cooldown: expected a share from 0 to 1, got {cfg.train.lr_cooldown}"
        )
    if cfg.data.synthetic not in ("toyfaces", "heads", "heads_hd", "scenes"):
        raise ConfigError(
            "data.synthetic: expected toyfaces, heads, heads_hd or scenes, "
            f"got {cfg.data.synthetic!r}"
        )
    if cfg.data.cameras not in ("orbit", "frontal"):
        raise ConfigError(f"data.cameras: expected orbit or frontal, got {cfg.data.cameras!r}")
    if cfg.metrics.mode not in ("resample", "perturb"):
        raise ConfigError(
            f"metrics.mode: expected 'resample' or 'perturb', got {cfg.metrics.mode!r}"
        )
    if not 0.0 <= cfg.link.view_yaw_deg <= 180.0:
        raise ConfigError(f"link.view_yaw_deg: expected 0-180 degrees, got {cfg.link.view_yaw_deg}")
    if not 0.0 < cfg.link.until <= 1.0:
        raise ConfigError(
            f"link.until: expected a share of the budget in (0, 1], got {cfg.link.until}"
        )
    if not 0 <= cfg.link.extra_views <= 8:
        raise ConfigError(f"link.extra_views: expected 0-8 views, got {cfg.link.extra_views}")
    if cfg.link.extra_views > 0 and cfg.link.form not in SHARE_FORMS:
        raise ConfigError(
            f"link.extra_views: pools eq. 4 over a sample's views, which needs a share form "
            f"(link.form: {', '.join(SHARE_FORMS)}), got {cfg.link.form!r}"
        )
    if cfg.link.perturb not in ("gaussian", "resample"):
        raise ConfigError(
            f"link.perturb: expected 'gaussian' or 'resample', got {cfg.link.perturb!r}"
        )
    if cfg.link.adam not in ("shared", "own", "precond"):
        raise ConfigError(
            f"link.adam: expected 'shared', 'own' or 'precond', got {cfg.link.adam!r}"
        )
    if not cfg.link.precond_clip > 0:
        raise ConfigError(
            f"link.precond_clip: expected a number > 0, got {cfg.link.precond_clip!r}"
        )
    if not cfg.link.precond_clip_end >= 0:
        raise ConfigError(
            f"link.precond_clip_end: expected a number >= 0 (0: constant), "
            f"got {cfg.link.precond_clip_end!r}"
        )
    if not cfg.link.lr_gain > 0:
        raise ConfigError(f"link.lr_gain: expected a number > 0, got {cfg.link.lr_gain!r}")
    if not cfg.link.lr_gain_end >= 0:
        raise ConfigError(
            f"link.lr_gain_end: expected a number >= 0 (0: constant), got {cfg.link.lr_gain_end!r}"
        )
    if not 0.0 <= cfg.link.margin < 1.0:
        raise ConfigError(f"link.margin: expected a share in [0, 1), got {cfg.link.margin!r}")
    if cfg.link.margin > 0 and cfg.link.form == "absolute":
        raise ConfigError("link.margin: needs a share form (link.form: relative or share)")
    if not 0.0 <= cfg.link.mix <= 1.0:
        raise ConfigError(f"link.mix: expected a weight in [0, 1], got {cfg.link.mix!r}")
    if cfg.link.adv_adam not in ("link", "g"):
        raise ConfigError(f"link.adv_adam: expected 'link' or 'g', got {cfg.link.adv_adam!r}")
    _check_mode_options(cfg.link)
    if cfg.link.volume_around < 0 or cfg.link.volume_points < 2:
        raise ConfigError(
            "link.volume_around / volume_points: expected a distance >= 0 and at least 2 points,"
            f" got {cfg.link.volume_around!r} / {cfg.link.volume_points!r}"
        )
    if cfg.link.form not in LOSS_FORMS:
        raise ConfigError(f"link.form: expected one of {LOSS_FORMS}, got {cfg.link.form!r}")
    if cfg.train.mixed_precision not in ("off", "bf16", "fp16"):
        raise ConfigError(
            f"train.mixed_precision: expected off, bf16 or fp16, got {cfg.train.mixed_precision!r}"
        )
    if cfg.train.compile not in COMPILE_MODES:
        raise ConfigError(
            f"train.compile: expected one of {', '.join(COMPILE_MODES)}, got {cfg.train.compile!r}"
        )
    if cfg.train.schedule_start not in ("checkpoint", "zero"):
        raise ConfigError(
            f"train.schedule_start: expected checkpoint or zero, got {cfg.train.schedule_start!r}"
        )
    if cfg.train.batch_gpu < 0:
        raise ConfigError(f"train.batch_gpu: must be >= 0, got {cfg.train.batch_gpu}")
    if cfg.train.ray_chunk < 0:
        raise ConfigError(f"train.ray_chunk: must be >= 0, got {cfg.train.ray_chunk}")
    if cfg.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device: expected auto, cpu or cuda, got {cfg.train.device!r}")
    for name, weight in cfg.link.maps.items():
        if weight < 0:
            raise ConfigError(f"link.maps.{name}: weight must be >= 0, got {weight}")


OWN_OPTIMIZER_MODES = ("own", "precond")
"""The ``link.adam`` modes in which the link phase steps an optimizer of its own."""
_MODE_OPTIONS = {
    "lr_gain": ("adam", OWN_OPTIMIZER_MODES),
    "lr_gain_end": ("adam", OWN_OPTIMIZER_MODES),
    "precond_clip": ("adam", ("precond",)),
    "precond_clip_end": ("adam", ("precond",)),
    "adv_adam": ("adam", OWN_OPTIMIZER_MODES),
    "mix": ("form", ("share_mixed",)),
}
"""Link options read under some modes only: the ``link`` key that picks the mode (the link
phase's optimizer, ``adam``, or the loss form, ``form``) and the modes that read them."""


def _check_mode_options(link: Any) -> None:
    """A link option moved from its default under a mode that never reads it (``link.adam``
    or ``link.form``) is an error, not a setting silently ignored."""
    defaults = {f.name: f.default for f in dataclasses.fields(link)}
    for name, (key, modes) in _MODE_OPTIONS.items():
        mode = getattr(link, key)
        if getattr(link, name) != defaults[name] and mode not in modes:
            raise ConfigError(
                f"link.{name}: only read with link.{key}: {' or '.join(modes)} "
                f"(got link.{key}: {mode!r}, which ignores it)"
            )
