"""FIR resampling by 2x in pure PyTorch (depthwise conv2d / conv_transpose2d).

StyleGAN2 (Karras et al. 2020, §4 and appendix B) resamples with the separable binomial
filter [1, 3, 3, 1] instead of nearest/bilinear, which limits aliasing. The filter is
normalized to sum 1 per axis; upsampling multiplies it by 2 per axis (gain 4 in 2-D) because
three quarters of the zero-stuffed grid are zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Taps of the 1-D binomial filter used throughout StyleGAN2.
_TAPS = (1.0, 3.0, 3.0, 1.0)


def fir_kernel(
    gain: float = 1.0, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The 2-D separable filter ``outer(f, f) * gain`` with ``sum(f) == 1``: ``[4, 4]``."""
    f = torch.tensor(_TAPS, device=device, dtype=dtype)
    f = f / f.sum()
    return torch.outer(f, f) * gain


def _depthwise(k: torch.Tensor, channels: int) -> torch.Tensor:
    return k[None, None].expand(channels, 1, *k.shape)


def filter2d(x: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Blur each channel with the FIR filter after zero-padding ``pad`` pixels per side.

    ``x``: ``[B, C, H, W]`` -> ``[B, C, H + 2*pad - 3, W + 2*pad - 3]``.
    """
    c = x.shape[1]
    k = _depthwise(fir_kernel(gain, x.device, x.dtype), c)
    return F.conv2d(F.pad(x, [pad] * 4), k, groups=c)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """Upsample 2x: zero-stuff + FIR filter in one transposed conv. ``[B,C,H,W] -> [B,C,2H,2W]``.

    With stride 2, padding 1 and a 4-tap kernel, output ``2i`` / ``2i+1`` sits at source
    coordinate ``i - 1/4`` / ``i + 1/4``, so the grid stays centred (no half-pixel shift).
    """
    c = x.shape[1]
    k = _depthwise(fir_kernel(4.0, x.device, x.dtype), c)
    return F.conv_transpose2d(x, k, stride=2, padding=1, groups=c)


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """FIR-filter then keep every other pixel. ``[B, C, H, W] -> [B, C, H/2, W/2]``.

    Output ``j`` averages inputs ``2j-1 .. 2j+2``, centred between pixels ``2j`` and ``2j+1``.
    """
    c = x.shape[1]
    k = _depthwise(fir_kernel(1.0, x.device, x.dtype), c)
    return F.conv2d(x, k, stride=2, padding=1, groups=c)
