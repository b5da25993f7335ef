"""Small image helpers shared by the loop and the tools: tensors to uint8, grids, PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from link_core.data.outputs import atomic_write_bytes
from link_core.errors import OutputError


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
    """Write an RGB uint8 image atomically (temp name + rename). Encoded in memory and
    written by Python, so a failed write (a full disk) is an OutputError naming ``path``
    (OpenCV's own writer reports success on a short write) and leaves no temp file."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise OutputError(f"cannot encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())


def save_image_grid(images: torch.Tensor, path: str | Path, cols: int = 4) -> Path:
    """``[B, 3, H, W]`` in [-1, 1] -> a PNG grid."""
    return write_png(grid(to_uint8(images), cols), path)
