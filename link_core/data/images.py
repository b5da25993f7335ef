"""Small image helpers shared by the loop and the tools: tensors to uint8, grids, PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[B, C, H, W]`` in [-1, 1] -> ``[B, H, W, C]`` uint8 RGB (C = 1 is repeated to 3)."""
    x = images.detach().float().cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = ((x[:, :3] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(tiles: np.ndarray, cols: int, pad: int = 0, fill: int = 255) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 tiles -> one ``[rows·H, cols·W, 3]`` image, row by row."""
    n, h, w, ch = tiles.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, ch), fill, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tile
    return out


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image atomically (temp name + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)
    return path


def save_image_grid(images: torch.Tensor, path: str | Path, cols: int = 4) -> Path:
    """``[B, 3, H, W]`` in [-1, 1] -> a PNG grid."""
    return write_png(grid(to_uint8(images), cols), path)
