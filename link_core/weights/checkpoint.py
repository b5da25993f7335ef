"""Checkpoints as safetensors files: tensors plus JSON metadata, never pickled code.

One file holds everything a resume needs: ``G.*``, ``D.*``, ``G_ema.*`` weights, optimizer
states (``opt_G.*``, ``opt_D.*``), extra tensors (``extra.*``: running means, RNG state) and
JSON metadata (the config, counters, optimizer hyper-parameters). Inference files
(``model.safetensors``) hold ``G_ema.*`` and the config only. Files are written to a temp
name and renamed, so a reader never sees half a file, whatever kills the writer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from link_core.data.outputs import atomic_write_bytes
from link_core.errors import CheckpointError

FORMAT = "linkgan-1"
CKPT_PATTERN = re.compile(r"^ckpt-(\d{9})\.safetensors$")


def _flatten_optimizer(prefix: str, state: Mapping[str, Any], tensors: dict, meta: dict) -> None:
    groups = []
    for group in state["param_groups"]:
        g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
        groups.append(g)
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    meta[prefix] = {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: Mapping[str, torch.Tensor], meta: dict) -> dict:
    info = meta[prefix]
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + ".state."):
            idx, key = name[len(prefix) + 7 :].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for idx, scalars in info["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = []
    for group in info["param_groups"]:
        g = dict(group)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (temp name + rename): a reader never sees a part; a
    failed write is an OutputError naming ``path`` and leaves no temp file."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode("utf-8"))


def atomic_save(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: str | Path) -> Path:
    """Write a safetensors file via temp file + fsync + rename (+ fsync of the folder), so a
    reader finds the old file or the new one, never a part. Write errors (a full disk) are
    ``OSError`` and leave no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    metadata = {"format": FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_file(path: str | Path, prefixes: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Read tensors (optionally only those under ``prefixes``) and decoded metadata.

    Raises :class:`CheckpointError` for a missing, foreign or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
            if raw_meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not a linkgan checkpoint (no '{FORMAT}' metadata)")
            keys = [k for k in f.keys() if prefixes is None or k.split(".", 1)[0] in prefixes]
            tensors = {k: f.get_tensor(k) for k in keys}
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises several types for foreign bytes
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items() if k != "format"}
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: corrupt metadata") from None
    except RecursionError:
        raise CheckpointError(f"{path}: corrupt metadata (JSON nested too deeply)") from None
    if "config" not in meta:
        raise CheckpointError(f"{path}: checkpoint has no config")
    return tensors, meta


def split_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{"G.a.b": t}`` -> ``{"a.b": t}`` for ``prefix="G"``."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_training_state(
    path: str | Path,
    *,
    config: dict[str, Any],
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    counters: dict[str, Any],
    extra: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Everything a resume needs, in one atomic safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"config": config, "counters": counters}
    for name, module in modules.items():
        tensors.update(_module_tensors(name, module))
    for name, opt in optimizers.items():
        _flatten_optimizer(f"opt_{name}", opt.state_dict(), tensors, meta)
    for name, value in (extra or {}).items():
        tensors[f"extra.{name}"] = value.detach().cpu().clone()
    return atomic_save(tensors, meta, path)


def load_module(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load a state dict strictly; a mismatch is a :class:`CheckpointError` naming ``where``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{where}: weights do not match the network ({detail})")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{where}: '{k}' has shape {tuple(v.shape)}, network expects {tuple(own[k].shape)}"
            )
        # Floats load as any float type (published bases are fp16); integers, booleans and
        # complex numbers in their place are another model's (or nobody's) tensors.
        if v.dtype != own[k].dtype and not (v.is_floating_point() and own[k].is_floating_point()):
            raise CheckpointError(
                f"{where}: '{k}' is {str(v.dtype).replace('torch.', '')}, network expects "
                f"{str(own[k].dtype).replace('torch.', '')}"
            )
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{where}: '{k}' holds NaN or infinity")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load_optimizer(opt: torch.optim.Optimizer, name: str, tensors: dict, meta: dict) -> None:
    prefix = f"opt_{name}"
    if prefix not in meta:
        raise CheckpointError(f"checkpoint has no optimizer state for {name}")
    opt.load_state_dict(_unflatten_optimizer(prefix, tensors, meta))


def save_inference_weights(path: str | Path, generator: torch.nn.Module, config: dict) -> Path:
    """``model.safetensors``: the (EMA) generator and the config that rebuilds it."""
    return atomic_save(_module_tensors("G_ema", generator), {"config": config}, path)


def save_base_weights(
    path: str | Path,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    config: dict,
    card: dict,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """A published base model: the EMA generator and the discriminator (fine-tuning needs
    both) in ``dtype`` (fp16 halves the size), the config and the card, atomically. Integer
    buffers keep their type; loading casts back to the networks' dtypes."""

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() else t

    tensors = {k: cast(v) for k, v in _module_tensors("G_ema", generator).items()}
    tensors.update({k: cast(v) for k, v in _module_tensors("D", discriminator).items()})
    return atomic_save(tensors, {"config": config, "card": card}, path)


def weights_kimg(meta: dict[str, Any]) -> float | None:
    """How far training had come when these weights were saved, in kimg (None: unknown): a
    checkpoint's images seen plus the kimg its run started at, or a published or imported
    card's ``kimg_total`` / ``kimg``."""
    counters = meta.get("counters")
    if isinstance(counters, dict) and "images_seen" in counters:
        return float(counters.get("kimg_offset", 0.0)) + counters["images_seen"] / 1000
    card = meta.get("card")
    if isinstance(card, dict):
        for key in ("kimg_total", "kimg"):
            value = card.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
    return None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run, oldest first (names sort by images seen)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_PATTERN.match(p.name))


def remove_stale_temps(run_dir: str | Path) -> int:
    """Delete temp files a killed writer left behind (never a finished checkpoint)."""
    removed = 0
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        for p in folder.glob(".*.tmp-*") if folder.is_dir() else ():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def checkpoint_path(run_dir: str | Path, images_seen: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt-{images_seen:09d}.safetensors"


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """``--ckpt`` accepts a run directory (its latest checkpoint, else ``model.safetensors``)
    or a file."""
    p = Path(path)
    if p.is_dir():
        ckpts = list_checkpoints(p)
        if ckpts:
            return ckpts[-1]
        if (p / "model.safetensors").is_file():
            return p / "model.safetensors"
        raise CheckpointError(f"{p}: no checkpoints/ckpt-*.safetensors or model.safetensors")
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    return p
