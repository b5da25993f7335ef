"""GAN losses and regularizers as pure functions of tensors (StyleGAN2-ADA's choices).

Each returns a per-batch scalar; the loop scales by intervals and calls backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss ``E[softplus(−D(G(z)))]`` (paper eq. 1 with f = softplus)."""
    return F.softplus(-fake_logits).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic D loss ``E[softplus(D(G(z)))] + E[softplus(−D(x))]`` (paper eq. 2)."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: list[torch.Tensor]) -> torch.Tensor:
    """R1: ``‖∇_x D(x)‖²`` on reals, per sample, averaged; multiply by γ/2 outside.

    real_inputs: the tensors D read (requires_grad set by the caller), e.g. ``[image]``.
    """
    grads = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return sum(g.square().sum(dim=list(range(1, g.dim()))) for g in grads).mean()


def path_length_penalty(
    images: torch.Tensor, ws: torch.Tensor, pl_mean: torch.Tensor, decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regularizer: ``(‖J_wᵀ y‖ − a)²`` with ``a`` a running mean.

    images: ``[B, C, H, W]`` generated from ws ``[B, num_ws, w_dim]`` (ws requires grad).
    Returns (penalty, updated pl_mean).
    """
    noise = torch.randn_like(images) / (images.shape[2] * images.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    return (lengths - new_mean).square().mean(), new_mean
