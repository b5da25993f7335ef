"""w files: a latent (from a seed, or from inversion of a real image) that every tool can edit.

Format: safetensors with ``w`` ``[1, num_ws, w_dim]`` (or ``[1, w_dim]``, broadcast to all
layers) and optionally ``c`` ``[1, c_dim]`` (the camera it was fitted with). NumPy ``.npy``
(the w array) and ``.npz`` (key ``w``, EG3D's projector layout) are read with
``allow_pickle=False``: nothing in a file is ever executed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from link_core.errors import UserError


def save_w(
    path: str | Path,
    ws: torch.Tensor,
    c: torch.Tensor | None = None,
    noise: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``ws [1, num_ws, w_dim]`` (and camera ``c [1, c_dim]``, and the generator's
    noise maps by buffer name, as inversion optimizes them) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"w": ws.detach().float().cpu().contiguous()}
    if c is not None:
        tensors["c"] = c.detach().float().cpu().contiguous()
    for name, value in (noise or {}).items():
        tensors[f"noise.{name}"] = value.detach().float().cpu().contiguous()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"format": "linkgan-w-1"})
    os.replace(tmp, path)
    return path


def load_w(
    path: str | Path, num_ws: int, w_dim: int, c_dim: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(``ws [1, num_ws, w_dim]``, ``c [1, c_dim]`` or None) from a w file, checked against
    the generator's shape; every problem is one :class:`UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--w: {path} does not exist")
    suffix = path.suffix.lower()
    c = None
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "w" not in tensors:
                raise UserError(f"--w: {path} holds no tensor named 'w'")
            w, c = tensors["w"], tensors.get("c")
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "w" not in data:
                    raise UserError(f"--w: {path} holds no array named 'w'")
                w = torch.from_numpy(np.array(data["w"]))
        elif suffix == ".npy":
            w = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            raise UserError(f"--w: {path.name}: expected .safetensors, .npz or .npy")
    except UserError:
        raise
    except Exception as e:  # malformed files of any kind
        raise UserError(f"--w: {path} is not a readable w file ({type(e).__name__})") from None
    w = w.float()
    if w.dim() == 2 and w.shape == (1, w_dim):
        w = w[:, None].expand(1, num_ws, w_dim).clone()
    if tuple(w.shape) != (1, num_ws, w_dim):
        raise UserError(
            f"--w: {path}: w has shape {list(w.shape)}, this model needs [1, {num_ws}, {w_dim}]"
        )
    if not torch.isfinite(w).all():
        raise UserError(f"--w: {path}: w holds NaN or infinity")
    if c is not None:
        c = c.float().reshape(1, -1)
        if c.shape[1] != c_dim:
            raise UserError(f"--w: {path}: camera c has {c.shape[1]} values, model needs {c_dim}")
    return w, c


def apply_noise_maps(G: torch.nn.Module, path: str | Path) -> int:
    """Copy the noise maps a w file carries (``noise.<buffer>``) into G; returns how many.

    Only buffers G has, of the same shape, are accepted; anything else is a UserError."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return 0
    from safetensors.torch import load_file

    noise = {k[6:]: v for k, v in load_file(str(path)).items() if k.startswith("noise.")}
    buffers = dict(G.named_buffers())
    for name, value in noise.items():
        if name not in buffers or tuple(buffers[name].shape) != tuple(value.shape):
            raise UserError(f"--w: {path}: noise map {name} does not fit this model")
        if not torch.isfinite(value).all():
            raise UserError(f"--w: {path}: noise map {name} holds NaN or infinity")
        buffers[name].copy_(value)
    return len(noise)
