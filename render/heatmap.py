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


def depth_to_rgb(
    depth: torch.Tensor, lo: float, hi: float, colormap: int = cv2.COLORMAP_VIRIDIS
) -> np.ndarray:
    """``[B, 1, H, W]`` depth -> ``[B, H, W, 3]`` uint8 with ONE fixed range ``[lo, hi]``
    (near bright, far dark) for every frame, so depth images compare across edits and views
    instead of flickering like per-frame normalization."""
    d = ((hi - depth[:, 0]) / max(hi - lo, 1e-8)).clamp(0, 1).cpu().numpy()
    return np.stack([colorize(x, 1.0, colormap) for x in d])


def depth_range(*depths: torch.Tensor, far: float | None = None) -> tuple[float, float]:
    """A shared (lo, hi) over depth maps, ignoring the background: pixels within 5 % of the
    depth span from ``far`` (rays that hit nothing report about ``far``)."""
    values = torch.cat([d.flatten() for d in depths])
    if far is not None:
        hit = values[values < far - 0.05 * (far - float(values.min()))]
        values = hit if hit.numel() else values
    lo, hi = float(values.min()), float(values.max())
    return lo, max(hi, lo + 1e-3)
