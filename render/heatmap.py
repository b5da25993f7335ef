"""Difference heat maps with the link's region outlined (OpenCV colour maps)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def difference_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute change per pixel, ``[B, C, H, W]`` in [-1, 1] -> ``[B, H, W]`` in [0, 1]."""
    return ((a - b).abs().mean(dim=1) / 2).clamp(0, 1)


def colorize(diff: np.ndarray, vmax: float, colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """``[H, W]`` float -> ``[H, W, 3]`` uint8 RGB, 0 black … ``vmax`` bright."""
    scaled = np.clip(diff / max(vmax, 1e-8), 0, 1)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8), colormap)
    return bgr[..., ::-1].copy()


def outline(image: np.ndarray, mask: np.ndarray, color=(0, 255, 0), thickness: int = 1):
    """Draw the border of ``mask > 0.5`` (``[h, w]``, any size) on an ``[H, W, 3]`` image."""
    h, w = image.shape[:2]
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST) > 0.5
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.ascontiguousarray(image.copy())
    cv2.drawContours(out, contours, -1, color, thickness)
    return out


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscale so tiny renders stay crisp in grids (``[H, W, 3]``)."""
    if image.shape[0] >= size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
