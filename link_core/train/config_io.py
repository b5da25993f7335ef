"""Config I/O that knows no particular section: strict dict -> dataclass, YAML presets with
``extends``, ``--set`` overrides, and the migration of old keys in stored config dicts.

``link_core.train.config`` builds :class:`~link_core.train.config.Config` from these and
re-exports them; import them from there.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from link_core.errors import ConfigError

# ----------------------------------------------------------------------------------------
# Dict -> dataclass, strictly.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, varg = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, varg, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown config key '{path}' (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Strictly build any config dataclass (e.g. a backbone's options from ``model.extra``):
    unknown keys and wrong types raise :class:`ConfigError` naming ``where.key``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    return _from_dict(cls, data, where)


# ----------------------------------------------------------------------------------------
# YAML presets: ``extends`` and deep merge.


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, lists and scalars replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MAX_YAML_BYTES = 1 << 20
"""A preset (or one ``--set`` value) may hold at most this much text (presets are ~2 KB)."""
MAX_YAML_VALUES = 100_000
"""A preset may stand for at most this many values once its aliases are expanded (a
"billion laughs" of nested aliases is refused before anything walks it)."""


def _expanded_size(data: Any, where: str) -> int:
    """How many values ``data`` (from ``yaml.safe_load``) holds with every alias expanded,
    counted without expanding (shared nodes are counted once per use, from a memo); a
    ConfigError for an alias that contains itself or a total over :data:`MAX_YAML_VALUES`."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise ConfigError(f"{where}: a YAML alias contains itself")
        active.add(key)
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{where}: expands to more than {MAX_YAML_VALUES} values (YAML aliases "
                    "nested into a bomb?)"
                )
        active.discard(key)
        memo[key] = total
        return total

    return size(data)


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` for text a user hands in: no tags that build objects (safe
    loading), at most :data:`MAX_YAML_BYTES`, nesting a parser can take, and aliases that
    expand to at most :data:`MAX_YAML_VALUES` values; every problem a ConfigError naming
    ``where``."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{where}: {len(text) / (1 << 20):.1f} MiB of YAML (limit {MAX_YAML_BYTES >> 20} MiB)"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    try:
        _expanded_size(data, where)
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    return data


def _read_yaml(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(
            f"{p}: {p.stat().st_size / (1 << 20):.1f} MiB of YAML (limit "
            f"{MAX_YAML_BYTES >> 20} MiB)"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    data = safe_yaml(text, str(p)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return data


def read_preset(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A preset's mapping with its ``extends: parent.yaml`` chain resolved (the parent's path
    is relative to the preset's folder; the child deep-merges over it, :func:`deep_merge`)."""
    p = Path(path)
    if p.resolve() in _chain:
        names = " -> ".join(str(c) for c in (*_chain, p.resolve()))
        raise ConfigError(f"{p}: 'extends' makes a cycle ({names})")
    data = _read_yaml(p)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{p}: extends: expected a file name, got {parent!r}")
    parent_path = p.parent / parent
    if not parent_path.is_file():
        raise ConfigError(f"{p}: extends: file not found: {parent_path}")
    return deep_merge(read_preset(parent_path, (*_chain, p.resolve())), data)


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``a.b=value`` items on a copy of ``data``; values are parsed as YAML."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = safe_yaml(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError as e:
            if "not valid YAML" not in str(e):
                raise
            raise ConfigError(f"--set {key}: value {raw!r:.200} is not valid YAML") from None
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = value
    return data


# ----------------------------------------------------------------------------------------
# Migration of old keys in stored configs (checkpoints, assets/*.safetensors, old presets).


@dataclass(frozen=True)
class Moved:
    """A key that now lives elsewhere: its value is carried from ``old`` to ``new``."""

    old: str
    new: str


@dataclass(frozen=True)
class Removed:
    """A key that is gone. Its ``default`` (what every run had unless set) drops silently;
    any other value is an error that says ``why`` and where its result is documented."""

    path: str
    default: Any
    why: str
    doc: str = "docs/results.md"


MIGRATIONS: tuple[Moved | Removed, ...] = ()
"""Applied in order by :func:`migrate_config_dict` (so a chain of moves works)."""


def _pop(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    """Take ``path`` out of ``data``: ``(found, value)``; sections it leaves empty go too."""
    *parents, last = path.split(".")
    nodes: list[dict[str, Any]] = [data]
    for part in parents:
        node = nodes[-1].get(part)
        if not isinstance(node, dict):
            return False, None
        nodes.append(node)
    if last not in nodes[-1]:
        return False, None
    value = nodes[-1].pop(last)
    for parent, part, node in zip(nodes[-2::-1], parents[::-1], nodes[:0:-1], strict=True):
        if not node:
            del parent[part]
    return True, value


def migrate_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored config mapping with :data:`MIGRATIONS` applied."""
    if not isinstance(data, dict) or not MIGRATIONS:
        return data
    data = copy.deepcopy(data)
    for entry in MIGRATIONS:
        if isinstance(entry, Moved):
            found, value = _pop(data, entry.old)
            if not found:
                continue
            *parents, last = entry.new.split(".")
            target = data
            for part in parents:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{entry.old} moved to {entry.new}: '{part}' is no section")
            if last in target and target[last] != value:
                raise ConfigError(
                    f"config key '{entry.old}' moved to '{entry.new}', and both are set "
                    f"({value!r} vs {target[last]!r})"
                )
            target[last] = value
        else:
            found, value = _pop(data, entry.path)
            if not found:
                continue
            if value != entry.default:
                raise ConfigError(
                    f"config key '{entry.path}' was removed ({entry.why}); it was {value!r}, "
                    f"not its default {entry.default!r}: the measured result is in {entry.doc}"
                )
    return data
