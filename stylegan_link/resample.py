"""FIR resampling by 2x in pure PyTorch (per-channel conv2d / conv_transpose2d).

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


def conv_per_channel(
    x: torch.Tensor, k: torch.Tensor, transpose: bool = False, **kwargs
) -> torch.Tensor:
    """The same 2-D filter ``k [kh, kw]`` on every channel of ``x [B, C, H, W]``.

    On a GPU, channels are folded into the batch for one single-channel convolution
    (:func:`conv_folded`): R1's double backward of a grouped convolution runs one kernel per
    group there (11.6 s vs 0.07 s for FFHQ-512's discriminator at batch 8 on an H100,
    bench/eg3d_step.py). On a CPU, a depthwise convolution (:func:`conv_depthwise`) computes
    the same numbers 1.5–15× faster forward and backward (the folded form is one
    single-channel convolution over a huge batch, which CPU kernels handle badly;
    ``python bench/fir_resample.py``).
    """
    fn = conv_folded if x.device.type == "cuda" else conv_depthwise
    return fn(x, k, transpose, **kwargs)


def conv_folded(
    x: torch.Tensor, k: torch.Tensor, transpose: bool = False, **kwargs
) -> torch.Tensor:
    """:func:`conv_per_channel` as one convolution of ``[B·C, 1, H, W]``."""
    b, c, h, w = x.shape
    conv = F.conv_transpose2d if transpose else F.conv2d
    y = conv(x.reshape(b * c, 1, h, w), k[None, None], **kwargs)
    return y.reshape(b, c, *y.shape[-2:])


def conv_depthwise(
    x: torch.Tensor, k: torch.Tensor, transpose: bool = False, **kwargs
) -> torch.Tensor:
    """:func:`conv_per_channel` as one depthwise convolution (``groups=C``)."""
    c = x.shape[1]
    conv = F.conv_transpose2d if transpose else F.conv2d
    return conv(x, k[None, None].expand(c, 1, *k.shape).contiguous(), groups=c, **kwargs)


def filter2d(x: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Blur each channel with the FIR filter after zero-padding ``pad`` pixels per side.

    ``x``: ``[B, C, H, W]`` -> ``[B, C, H + 2*pad - 3, W + 2*pad - 3]``.
    """
    return conv_per_channel(F.pad(x, [pad] * 4), fir_kernel(gain, x.device, x.dtype))


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """Upsample 2x: zero-stuff + FIR filter in one transposed conv. ``[B,C,H,W] -> [B,C,2H,2W]``.

    With stride 2, padding 1 and a 4-tap kernel, output ``2i`` / ``2i+1`` sits at source
    coordinate ``i - 1/4`` / ``i + 1/4``, so the grid stays centred (no half-pixel shift).
    """
    k = fir_kernel(4.0, x.device, x.dtype)
    return conv_per_channel(x, k, transpose=True, stride=2, padding=1)


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """FIR-filter then keep every other pixel. ``[B, C, H, W] -> [B, C, H/2, W/2]``.

    Output ``j`` averages inputs ``2j-1 .. 2j+2``, centred between pixels ``2j`` and ``2j+1``.
    """
    return conv_per_channel(x, fir_kernel(1.0, x.device, x.dtype), stride=2, padding=1)
