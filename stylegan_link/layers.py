"""StyleGAN2 building blocks: equalized-lr layers, modulated convolution, noise, ToRGB, mbstd.

Re-implemented from Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN" (StyleGAN2) and Karras et al. 2018 (ProGAN: equalized learning rate, minibatch
standard deviation). Pure PyTorch, device- and dtype-agnostic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stylegan_link.resample import downsample2d, filter2d

ACTIVATIONS = ("linear", "lrelu")
NOISE_MODES = ("random", "const", "none")
# Leaky ReLU slope 0.2; the sqrt(2) gain keeps the signal's second moment (He et al. 2015).
_LRELU_SLOPE = 0.2
_LRELU_GAIN = math.sqrt(2.0)
FP16_CLAMP = 256.0
"""Under float16 autocast every convolution layer's output is clamped to ±this (StyleGAN2-
ADA's ``conv_clamp``): float16 overflows at 65504, and the next layer's input is cast to
float16. A clamp that acts only then leaves fp32 and bf16 results untouched."""


def clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """``x`` clamped to ±:data:`FP16_CLAMP` when it is float16 or float16 autocast is on."""
    dev = x.device.type
    fp16 = x.dtype == torch.float16 or (
        torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.float16
    )
    return x.clamp(-FP16_CLAMP, FP16_CLAMP) if fp16 else x


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """Apply ``linear`` (identity) or gain-corrected ``lrelu``."""
    if activation == "lrelu":
        return F.leaky_relu(x, _LRELU_SLOPE) * _LRELU_GAIN
    return x


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    return activation


class FullyConnected(nn.Module):
    """Equalized-lr linear layer: ``[B, in_features] -> [B, out_features]``.

    Weights are stored as N(0, 1) / lr_multiplier and scaled by ``lr_multiplier / sqrt(fan_in)``
    at run time (ProGAN §4.1), so Adam's per-parameter step is the same for every layer and
    ``lr_multiplier`` slows a whole layer down (StyleGAN's mapping network uses 0.01).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.activation = _check_activation(activation)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        # Stored so that ``bias * lr_multiplier`` starts at ``bias_init``.
        self.bias = (
            nn.Parameter(torch.full([out_features], bias_init / lr_multiplier)) if bias else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias * self.bias_gain
        return activate(F.linear(x, self.weight * self.weight_gain, b), self.activation)


class Conv2dLayer(nn.Module):
    """Equalized-lr convolution, optionally followed by a 2x FIR downsample (discriminator).

    ``[B, in_channels, H, W] -> [B, out_channels, H/down, W/down]``. With ``down=2`` the input
    is blurred with the [1,3,3,1] filter, then convolved with stride 2 (the kernel sees the
    blurred full-resolution image), which is StyleGAN2's anti-aliased strided convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "lrelu",
        down: int = 1,
    ) -> None:
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down: expected 1 or 2, got {down}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size: expected an odd size, got {kernel_size}")
        self.activation = _check_activation(activation)
        self.down = down
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        k = self.kernel_size
        if self.down == 1:
            x = F.conv2d(x, w, self.bias, padding=k // 2)
        elif k == 1:
            x = F.conv2d(downsample2d(x), w, self.bias)
        else:
            # Pad (k+1)/2 per side: the 4-tap blur then the k-tap stride-2 conv give H/2.
            x = F.conv2d(filter2d(x, pad=(k + 1) // 2), w, self.bias, stride=2)
        return clamp_fp16(activate(x, self.activation))


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: int = 1,
    fused: bool = False,
) -> torch.Tensor:
    """Weight modulation/demodulation, StyleGAN2 §2.2 (eqs. 1-3).

    ``x``: ``[B, Cin, H, W]``; ``weight``: ``[Cout, Cin, k, k]`` (already gain-scaled);
    ``styles``: ``[B, Cin]``. Returns ``[B, Cout, H*up, W*up]``.

    ``fused=True`` builds per-sample weights ``w'_ijk = s_i * w_ijk`` (eq. 1), demodulates them
    (eq. 3) and runs one grouped convolution over the batch. ``fused=False`` computes the same
    thing as scale-input / shared conv / scale-output, which is faster on CPU for batches
    (the demodulation factor does not depend on x). Both are tested equal.

    ``up=2`` upsamples like ``conv3x3(upsample2d(x))``, done cheaply as a stride-2 transposed
    convolution followed by the FIR filter (weights act as a transposed kernel there).
    """
    b, cin, h, w_ = x.shape
    cout, _, k, _ = weight.shape
    dcoefs = None
    if demodulate:
        # Eq. 3: sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2) = sqrt(s^2 . sum_k w_ijk^2).
        dcoefs = torch.rsqrt(styles.square() @ weight.square().sum([2, 3]).t() + 1e-8)

    if fused:
        wb = weight[None] * styles[:, None, :, None, None]  # [B, Cout, Cin, k, k]
        if dcoefs is not None:
            wb = wb * dcoefs[:, :, None, None, None]
        x = x.reshape(1, b * cin, h, w_)
        if up == 1:
            x = F.conv2d(x, wb.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
        else:
            wt = wb.transpose(1, 2).reshape(b * cin, cout, k, k)
            x = F.conv_transpose2d(x, wt, stride=2, groups=b)
        x = x.reshape(b, cout, *x.shape[2:])
    else:
        x = x * styles[:, :, None, None]
        if up == 1:
            x = F.conv2d(x, weight, padding=k // 2)
        else:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        if dcoefs is not None:
            x = x * dcoefs[:, :, None, None]

    if up == 2:
        # Transposed conv gives (H-1)*2 + k pixels; for k=3 the blur with pad (k-1)//2 lands
        # on exactly 2H, centred like upsample2d. Gain 4 restores the zero-stuffed mean.
        x = filter2d(x, pad=(k - 1) // 2, gain=4.0)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu (one "style block" of StyleGAN2 Fig. 2c).

    ``forward(x [B, Cin, R/up, R/up], w [B, w_dim]) -> [B, Cout, R, R]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"up: expected 1 or 2, got {up}")
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        # Styles start at 1 (bias_init=1) so the untrained network behaves like a plain conv.
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        if use_noise:
            # A fixed per-layer noise image: with noise_mode='const' synthesis is a
            # deterministic function of ws (the link loss and the edit tools rely on it).
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=True, up=self.up)
        if self.use_noise and noise_mode != "none":
            # Per-pixel noise, one learned strength per layer (StyleGAN §3.2, StyleGAN2 Fig. 2c).
            if noise_mode == "random":
                r = self.resolution
                noise = torch.randn(x.shape[0], 1, r, r, device=x.device, dtype=x.dtype)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + noise * self.noise_strength
        return clamp_fp16(activate(x + self.bias[None, :, None, None], "lrelu"))


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation: ``[B, Cin, H, W] -> [B, img_channels, H, W]``.

    No demodulation: the output's scale must stay free to match the image range (StyleGAN2
    §2.2 applies demodulation only to the 3x3 style blocks).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=False)
        return clamp_fp16(x + self.bias[None, :, None, None])


def mbstd_group(batch: int, group_size: int) -> int:
    """Largest group size <= ``group_size`` that divides ``batch`` (1 at worst)."""
    g = max(1, min(group_size, batch))
    while batch % g:
        g -= 1
    return g


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (ProGAN §3; StyleGAN2 D epilogue).

    ``[B, C, H, W] -> [B, C + num_channels, H, W]``: per group of samples, the std over the
    group of each feature, averaged over features (split into ``num_channels`` slices) and
    pixels, appended as constant maps. Lets D see the variety of a batch (anti mode collapse).
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = mbstd_group(b, self.group_size)
        f = self.num_channels
        # Sample i belongs to group i % (B/G); repeat() below tiles the same way.
        # In fp32 whatever the autocast dtype: in fp16 the 1e-8 under the square root is 0,
        # and sqrt's gradient at 0 (a group of one, or equal samples) is infinite.
        y = x.float().reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0)
        y = (y + 1e-8).sqrt().mean([2, 3, 4])  # [B/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)
