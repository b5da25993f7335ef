"""StyleGAN2 generator (mapping + skip synthesis) and ResNet discriminator.

Re-implemented from Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN": skip-connection generator and residual discriminator (§4, Fig. 7, config E/F),
weight demodulation (§2.2), truncation toward the mean w (StyleGAN §5 / appendix B).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
from torch import nn

from link_core.interface import GeneratorDefaults
from stylegan_link.layers import (
    Conv2dLayer,
    FullyConnected,
    MinibatchStd,
    SynthesisLayer,
    ToRGBLayer,
)
from stylegan_link.resample import upsample2d


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (the "pixel norm" applied to z in StyleGAN)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def check_resolution(resolution: int, low: int = 4, high: int = 1024) -> int:
    """Return ``resolution`` if it is a power of two in ``low..high``, else raise ValueError."""
    try:
        r = operator.index(resolution)
    except TypeError:
        r = 0
    if r < low or r > high or r & (r - 1):
        raise ValueError(f"resolution {resolution!r} is not a power of two in {low}..{high}")
    return r


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN2's channel schedule: ``min(channel_base // resolution, channel_max)``, >= 1."""
    return max(1, min(channel_base // resolution, channel_max))


# ----------------------------------------------------------------------------------------
# Generator


class MappingNetwork(nn.Module):
    """z (and optional label c) -> ws ``[B, num_ws, w_dim]`` through an lrelu MLP.

    Keeps ``w_avg``, a running mean of w (updated when ``update_emas=True``), the centre that
    truncation pulls toward.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ) -> None:
        super().__init__()
        if z_dim <= 0:
            raise ValueError(f"z_dim: must be positive, got {z_dim}")
        if num_layers < 1:
            raise ValueError(f"num_layers: must be >= 1, got {num_layers}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnected(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in zip(features[:-1], features[1:], strict=True)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, ``c [B, c_dim]`` or None -> ``ws [B, num_ws, w_dim]``.

        Truncation ``w_avg + psi * (w - w_avg)`` applies to the first ``truncation_cutoff``
        rows of ws (all rows when None).
        """
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if c is None:
                raise ValueError(f"mapping: c_dim is {self.c_dim} but no label c was given")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(x.dtype)))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        # A real copy per row (not an expand view), so callers may edit ws in place.
        ws = x[:, None, :].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            n = self.num_ws if truncation_cutoff is None else truncation_cutoff
            head = self.w_avg.lerp(ws[:, :n], truncation_psi)
            ws = torch.cat([head, ws[:, n:]], dim=1)
        return ws


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator (StyleGAN2 Fig. 7b).

    ``in_channels == 0`` starts from a learned constant ``[out_channels, R, R]`` and has one
    conv; otherwise the first conv upsamples ``x`` by ``up`` (2, or 1 for a block that keeps
    the size, e.g. in a super-resolution module) and a second conv follows. A ToRGB output is
    added to the (upsampled) incoming ``img``.

    ``forward(x, img, ws, noise_mode) -> (x, img)``:
      - ``x``: ``[B, in_channels, R/up, R/up]`` (ignored, may be None, when in_channels == 0)
      - ``img``: ``[B, img_channels, R/up, R/up]`` or None (the first block)
      - ``ws``: ``[B, num_conv + num_torgb, w_dim]``; rows are used in order conv0, conv1,
        torgb. Callers advance by ``num_conv`` per block, so a block's ToRGB shares its w
        with the next block's first conv (as in StyleGAN2).
      - returns ``x [B, out_channels, R, R]`` and ``img [B, img_channels, R, R]``.
    ``is_last`` is recorded only: in the skip architecture every block has a ToRGB.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool = False,
        use_noise: bool = True,
        up: int = 2,
    ) -> None:
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"up: expected 1 or 2, got {up}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.img_channels, self.is_last = resolution, img_channels, is_last
        self.up = up
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=up, use_noise=use_noise
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, use_noise=use_noise
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if self.conv0 is None else 2
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.conv0 is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None and self.up == 2:
            img = upsample2d(img)
        y = self.torgb(x, next(w_iter))
        img = y if img is None else img + y
        return x, img


def scale_style_affines(module: nn.Module, scale: float, axes: Sequence[int] | None = None) -> None:
    """Multiply the w -> style affine weights by ``scale`` (biases stay), for all w axes or
    only the columns of ``axes``.

    StyleGAN2 starts every style dependent on every w axis (``scale = 1``). A link needs the
    opposite: a region's styles must depend on the link's axes only. Starting near
    independence (e.g. 0.1) lets the link loss decide which axes each style grows to use,
    instead of having to tear 3/4 of the dependencies down while the adversarial loss
    fights back; see the quickstart numbers in the README. With ``axes`` it is the
    fine-tuning analogue: a converged generator's linked axes start nearly without
    influence and grow into their regions (``link.init_axes_scale``).
    """
    if scale == 1.0:
        return
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("affine.weight"):
                if axes is None:
                    param.mul_(scale)
                else:
                    param[:, list(axes)] *= scale


class SynthesisNetwork(nn.Module):
    """ws ``[B, num_ws, w_dim]`` -> image ``[B, img_channels, R, R]`` (raw, no tanh).

    Blocks at 4, 8, ..., ``img_resolution``; ``num_ws = 2*log2(R) - 2``.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        style_init: float = 1.0,
    ) -> None:
        super().__init__()
        check_resolution(img_resolution)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self.blocks = nn.ModuleList()
        in_ch = 0
        for r in resolutions:
            out_ch = channels_at(r, channel_base, channel_max)
            self.blocks.append(
                SynthesisBlock(
                    in_ch, out_ch, w_dim, r, img_channels, r == img_resolution, use_noise
                )
            )
            in_ch = out_ch
        self.num_ws = sum(b.num_conv for b in self.blocks) + self.blocks[-1].num_torgb
        scale_style_affines(self, style_init)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws: expected [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        x = img = None
        i = 0
        for block in self.blocks:
            n = block.num_conv + block.num_torgb
            x, img = block(x, img, ws[:, i : i + n], noise_mode=noise_mode)
            i += block.num_conv
        return img


class Generator(GeneratorDefaults, nn.Module):
    """StyleGAN2 generator with the project's generator interface
    (:class:`link_core.interface.Generator`; 2-D: no field, cameras of zeros).

    ``mapping(z, c) -> ws [B, num_ws, w_dim]``; ``synthesis(ws) -> {"image": [B, C, H, W]}``
    (nominally in [-1, 1], unclamped); ``forward`` chains the two.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        mapping_layers: int = 8,
        mapping_lr_mult: float = 0.01,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        style_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis_net = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base, channel_max, use_noise, style_init
        )
        self.num_ws = self.synthesis_net.num_ws
        self.mapping_net = MappingNetwork(
            z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mult
        )

    def scale_style_inputs(self, axes: Sequence[int], scale: float) -> None:
        """Scale how strongly w axes ``axes`` drive every style (w -> style affine columns);
        see :func:`stylegan_link.networks.scale_style_affines`."""
        scale_style_affines(self, scale, axes)

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, ``c [B, c_dim]`` or None -> ``ws [B, num_ws, w_dim]``."""
        return self.mapping_net(z, c, truncation_psi, truncation_cutoff, update_emas)

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``ws [B, num_ws, w_dim]`` -> ``{"image": [B, img_channels, H, W]}``.

        ``c`` and ``update_emas`` are accepted for the interface and unused by the 2-D
        backbone. With ``noise_mode='const'`` the output is a deterministic function of ws.
        """
        return {"image": self.synthesis_net(ws, noise_mode=noise_mode)}

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> dict[str, torch.Tensor]:
        """``z [B, z_dim]`` -> ``{"image": [B, img_channels, H, W]}``."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, c, noise_mode=noise_mode)


# ----------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(nn.Module):
    """Residual block (StyleGAN2 Fig. 7c): ``[B, Cin, R, R] -> [B, Cout, R/2, R/2]``.

    Main path: 3x3 conv, 3x3 conv with 2x downsample; skip path: downsample + 1x1 conv. The
    sum is scaled by sqrt(1/2) to keep the variance (StyleGAN2 §4.1).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=2)
        self.skip = Conv2dLayer(
            in_channels, out_channels, 1, bias=False, activation="linear", down=2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """StyleGAN2 ResNet discriminator, with projection conditioning when ``c_dim > 0``.

    ``forward(outputs, c) -> logits [B, 1]`` reads ``outputs["image"]``
    ``[B, img_channels, H, W]``. Conditioning follows the projection discriminator
    (Miyato & Koyama 2018) as in StyleGAN2-ADA: the last layer emits a ``cmap_dim`` vector
    that is dotted with an embedding of c and divided by sqrt(cmap_dim). ``cmap_layers``
    counts the layers of that embedding MLP, the linear label embedding included (NVIDIA's
    StyleGAN2-ADA and EG3D: 1 + 8).
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        cmap_layers: int = 2,
    ) -> None:
        super().__init__()
        check_resolution(img_resolution)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels

        def ch(r: int) -> int:
            return channels_at(r, channel_base, channel_max)

        self.from_rgb = Conv2dLayer(img_channels, ch(img_resolution), 1)
        self.blocks = nn.ModuleList()
        r = img_resolution
        while r > 4:
            self.blocks.append(DiscriminatorBlock(ch(r), ch(r // 2)))
            r //= 2

        c4 = ch(4)
        if c4 % mbstd_num_channels:
            raise ValueError(
                f"mbstd_num_channels ({mbstd_num_channels}) must divide the 4x4 channels ({c4})"
            )
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(c4 + mbstd_num_channels, c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.cmap_dim = c4 if c_dim > 0 else 0
        self.out = FullyConnected(c4, self.cmap_dim if c_dim > 0 else 1)
        if c_dim > 0:
            dims = [c_dim] + [self.cmap_dim] * cmap_layers
            self.cmap = nn.ModuleList(
                FullyConnected(a, b, activation="lrelu" if i > 0 else "linear")
                for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
            )
        else:
            self.cmap = None

    def update_schedule(self, kimg: float) -> dict[str, float]:
        """No kimg-driven schedule (the interface's :class:`~link_core.interface.Discriminator`)."""
        return {}

    def forward(
        self, outputs: dict[str, torch.Tensor], c: torch.Tensor | None = None
    ) -> torch.Tensor:
        img = outputs["image"]
        x = self.from_rgb(img)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self.mbstd(x))
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap is None:
            return x
        if c is None:
            raise ValueError(f"discriminator: c_dim is {self.c_dim} but no label c was given")
        # Embed c, normalize (like z in the mapping network), then a small lrelu MLP.
        cmap = normalize_2nd_moment(self.cmap[0](c.to(x.dtype)))
        for layer in self.cmap[1:]:
            cmap = layer(cmap)
        return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
