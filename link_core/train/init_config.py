"""The config of a fine-tune (``train.init``): the model section comes from the weights.

A converged generator fixes its architecture; a fine-tuning preset names only what it
changes (links, losses, budgets) and may set the model keys that are free on a fine-tune
(run-time schedules and sampling, e.g. EG3D's rendering resolution and D blur). Every other
model key it names must equal the weights' own, else the run stops with one line naming
the key and both values. The backbone says which of its ``model.extra`` keys are free and
what their defaults are (the stored ``extra`` holds only what its run set).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from link_core.errors import ConfigError
from link_core.train.config import (
    Config,
    config_from_dict,
    config_to_dict,
    migrate_config_dict,
)

FREE_MODEL_KEYS = frozenset({"style_init", "mbstd_group"})
"""Top-level model keys a fine-tune may change: ``style_init`` only shapes a fresh
initialization (the weights replace it); ``mbstd_group`` is D's batch statistic (no weights)."""


def _flat(model: Mapping[str, Any]) -> dict[str, Any]:
    """``{"resolution": 64, "extra": {"plane_axes": ...}}`` -> ``{"resolution": 64,
    "extra.plane_axes": ...}`` (``extra`` is the only nested model section)."""
    out: dict[str, Any] = {}
    for key, value in model.items():
        if key == "extra" and isinstance(value, Mapping):
            out.update({f"extra.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def same_value(a: Any, b: Any) -> bool:
    """Config equality as YAML means it: ``10 == 10.0``, lists and tuples alike."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def init_model_config(
    given: dict[str, Any],
    from_set: dict[str, Any],
    weights_model: dict[str, Any],
    free_extra: Collection[str],
    extra_defaults: Mapping[str, Any],
    where: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The model section of a fine-tune and where each named key came from.

    ``given``: the preset's ``model`` mapping with ``--set`` applied (only what they name);
    ``from_set``: the ``--set`` part alone; ``weights_model``: the model section stored with
    the weights; ``free_extra``/``extra_defaults``: the backbone's free ``extra`` keys and its
    defaults for the keys a stored ``extra`` leaves out. Returns ``(model, origin)`` with
    ``origin[key]`` in ``{"checkpoint", "preset", "--set", "default"}`` for every flattened
    key (``default``: a key newer than the weights' config, at its default).
    """
    model = copy.deepcopy(weights_model)
    model.setdefault("extra", {})
    # Keys an older file predates take their defaults (as when that file is loaded).
    stored = {**config_to_dict(Config())["model"], **_flat(weights_model)}
    stored.pop("extra", None)
    set_keys = set(_flat(from_set))
    origin = {key: "default" for key in stored}  # keys the weights' config predates
    origin.update({key: "checkpoint" for key in _flat(model)})
    for key, value in _flat(given).items():
        source = "--set" if key in set_keys else "preset"
        name = key.removeprefix("extra.")
        is_extra = key.startswith("extra.")
        if (is_extra and name in free_extra) or (not is_extra and key in FREE_MODEL_KEYS):
            (model["extra"] if is_extra else model)[name] = value
            origin[key] = source
            continue
        theirs = stored.get(key, extra_defaults.get(name) if is_extra else None)
        if key not in stored and not (is_extra and name in extra_defaults):
            raise ConfigError(f"model.{key}: unknown for this backbone ({source}: {value!r})")
        if not same_value(value, theirs):
            raise ConfigError(
                f"model.{key}: the {source} says {value!r}, but the weights in {where} were "
                f"trained with {theirs!r} (a fine-tune takes its model from train.init)"
            )
    return model, origin


def fine_tune_config(
    given: dict[str, Any],
    from_set: dict[str, Any],
    weights_config: dict[str, Any],
    free_extra: Collection[str],
    extra_defaults: Mapping[str, Any],
    where: str,
) -> tuple[Config, dict[str, str]]:
    """The full :class:`Config` of a fine-tune: ``given`` (the preset with ``--set`` applied)
    for everything but the model, the model from ``weights_config`` (see
    :func:`init_model_config`; ``from_set`` is the ``--set`` part alone); ``data.resolution``
    follows the model's unless named. Returns ``(config, origin of each model key)``."""
    weights_model = migrate_config_dict(weights_config).get("model") or {}
    model, origin = init_model_config(
        given.get("model") or {},
        from_set.get("model") or {},
        weights_model,
        free_extra,
        extra_defaults,
        where,
    )
    data = {**given, "model": model}
    data.setdefault("data", {})
    data["data"] = {"resolution": model.get("resolution", 32), **data["data"]}
    return config_from_dict(data), origin
