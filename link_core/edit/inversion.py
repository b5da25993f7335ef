"""GAN inversion: find the w (or w+) and noise maps whose render matches a real image.

The StyleGAN2 projector's recipe (Karras et al. 2020, appendix D), for any generator of the
interface: Adam on w starting from the mean w, learning rate ramped up over the first 5 %
and cosine-ramped down over the last 25 % of steps, Gaussian noise on w of 0.05·σ_w that
fades to zero by 75 % of the steps (explores early, settles late), and the per-layer noise
maps optimized too with a multi-scale autocorrelation penalty that keeps them noise.
The image loss is pixel MSE plus a multi-scale structural term (1 − SSIM over 3 scales);
an optional perceptual function (e.g. LPIPS on local VGG weights) can be added by the
caller. Optional pivotal tuning (Roich et al. 2022) then fine-tunes G's weights around the
found w. Pure optimization: files are the caller's business.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class InversionSettings:
    steps: int = 300
    lr: float = 0.1
    w_plus: bool = False
    """Optimize one w per synthesis layer (w+) instead of a single w."""
    noise_maps: bool = True
    noise_reg: float = 1e5
    w_noise: float = 0.05
    """Initial noise on w as a fraction of σ_w (fades out by 75 % of the steps)."""
    ssim_weight: float = 1.0
    pixel_weight: float = 1.0
    tune_steps: int = 0
    """Pivotal tuning: steps of fine-tuning G's weights on the image after w is found."""
    tune_lr: float = 3e-4
    w_avg_samples: int = 2000
    seed: int = 0


@dataclass
class InversionResult:
    ws: torch.Tensor
    """``[1, num_ws, w_dim]``."""
    image: torch.Tensor
    """The reconstruction ``[1, 3, H, W]`` in [-1, 1]."""
    losses: list[float] = field(default_factory=list)
    """The image loss at every step (w phase, then tuning steps)."""
    generator: torch.nn.Module | None = None
    """The tuned generator (pivotal tuning) or None."""
    noise: dict[str, torch.Tensor] = field(default_factory=dict)
    """The optimized noise maps by buffer name (empty when they were not optimized)."""


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity of ``[B, C, H, W]`` images in [-1, 1] (Wang et al. 2004,
    7×7 Gaussian window, per channel)."""
    c = a.shape[1]
    g = _gaussian_window().to(a)
    k = (g[:, None] * g[None, :]).expand(c, 1, -1, -1)
    size = min(7, a.shape[-1])
    if size < 7:  # tiny images: no window fits, compare global statistics
        k = torch.full((c, 1, a.shape[-2], a.shape[-1]), 1.0 / a[0, 0].numel()).to(a)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, k, groups=c)

    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # data range 2 ([-1, 1])
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return (num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


def multiscale_ssim_loss(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """``1 - mean SSIM`` over ``scales`` halvings (stops at 8 px)."""
    losses = []
    for i in range(scales):
        losses.append(1.0 - ssim(a, b))
        if i + 1 < scales and a.shape[-1] >= 16:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        else:
            break
    return torch.stack(losses).mean()


def noise_regularization(maps: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 projector: squared autocorrelation of each noise map at 1-pixel shifts,
    at every scale down to 8×8, so the maps cannot hide image content."""
    total = torch.zeros(())
    for n in maps:
        x = n[None, None]
        while True:
            total = total + (x * torch.roll(x, 1, dims=3)).mean() ** 2
            total = total + (x * torch.roll(x, 1, dims=2)).mean() ** 2
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


def _lr_at(t: float, base: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / rampup)


def image_loss(
    x: torch.Tensor,
    target: torch.Tensor,
    s: InversionSettings,
    perceptual: PerceptualFn | None = None,
) -> torch.Tensor:
    loss = s.pixel_weight * F.mse_loss(x, target)
    if s.ssim_weight:
        loss = loss + s.ssim_weight * multiscale_ssim_loss(x, target)
    if perceptual is not None:
        loss = loss + perceptual(x, target).mean()
    return loss


def invert(
    G: torch.nn.Module,
    target: torch.Tensor,
    c: torch.Tensor,
    settings: InversionSettings | None = None,
    perceptual: PerceptualFn | None = None,
    snapshot: Callable[[int, torch.Tensor], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> InversionResult:
    """Project ``target [1, 3, H, W]`` (in [-1, 1], G's resolution) seen from camera/label
    ``c [1, c_dim]`` into G's W space. ``snapshot(step, image)`` is called now and then with
    the current reconstruction (for a progress video); ``progress(step, loss)`` every step.
    G is not modified (pivotal tuning works on a copy, returned in the result)."""
    s = settings or InversionSettings()
    G = copy.deepcopy(G).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(s.seed)
    with torch.no_grad():
        z = torch.randn(s.w_avg_samples, G.z_dim, generator=gen)
        w = G.mapping(z, c.expand(s.w_avg_samples, -1))[:, :1]  # [N, 1, w_dim]
        w_avg = w.mean(0, keepdim=True)
        w_std = float(((w - w_avg) ** 2).sum() / s.w_avg_samples) ** 0.5
    num_ws = G.num_ws
    w_opt = (w_avg.repeat(1, num_ws, 1) if s.w_plus else w_avg).clone().requires_grad_(True)
    noise = [b for n, b in G.named_buffers() if n.endswith("noise_const")] if s.noise_maps else []
    for b in noise:
        b.copy_(torch.randn(b.shape, generator=gen))
        b.requires_grad_(True)
    opt = torch.optim.Adam([w_opt, *noise], lr=s.lr, betas=(0.9, 0.999))
    losses: list[float] = []
    snap_every = max(1, s.steps // 30)

    def ws_of(w: torch.Tensor) -> torch.Tensor:
        return w if s.w_plus else w.expand(-1, num_ws, -1)

    for step in range(s.steps):
        t = step / max(1, s.steps)
        for group in opt.param_groups:
            group["lr"] = _lr_at(t, s.lr)
        w_noise_scale = w_std * s.w_noise * max(0.0, 1.0 - t / 0.75) ** 2
        w_in = w_opt + torch.randn(w_opt.shape, generator=gen) * w_noise_scale
        x = G.synthesis(ws_of(w_in), c, noise_mode="const")["image"]
        loss = image_loss(x, target, s, perceptual)
        total = loss + s.noise_reg * noise_regularization(noise) if noise else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():  # keep the noise maps unit Gaussians
            for b in noise:
                b.sub_(b.mean()).div_(b.std().clamp(min=1e-8))
        losses.append(loss.item())
        if progress:
            progress(step, losses[-1])
        if snapshot and (step % snap_every == 0 or step == s.steps - 1):
            snapshot(step, x.detach())
    for b in noise:
        b.requires_grad_(False)
    ws = ws_of(w_opt.detach())
    tuned = None
    if s.tune_steps:
        tuned = G.requires_grad_(True)
        for b in noise:
            b.requires_grad_(False)
        opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=s.tune_lr)
        for step in range(s.tune_steps):
            x = tuned.synthesis(ws, c, noise_mode="const")["image"]
            loss = image_loss(x, target, s, perceptual)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress:
                progress(s.steps + step, losses[-1])
            if snapshot and (step % snap_every == 0 or step == s.tune_steps - 1):
                snapshot(s.steps + step, x.detach())
        tuned = tuned.eval().requires_grad_(False)
    with torch.no_grad():
        final = (tuned or G).synthesis(ws, c, noise_mode="const")["image"]
    maps = {n: b.detach().clone() for n, b in G.named_buffers() if n.endswith("noise_const")}
    return InversionResult(
        ws=ws, image=final, losses=losses, generator=tuned, noise=maps if noise else {}
    )


__all__ = ["InversionResult", "InversionSettings", "invert", "ssim"]
