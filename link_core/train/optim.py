"""Adam for lazy regularization: the one place the lr and betas are rescaled (StyleGAN2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def lazy_ratio(intervals: Sequence[int]) -> float:
    """Adam rescale for lazy regularization: optimizer steps per main step, inverted.

    With one regularizer every I steps, a network takes I+1 optimizer steps per I main steps,
    so StyleGAN2 scales lr by r = I/(I+1) and betas by **r. Several regularizers that share
    one reg phase generalize to r = 1 / (1 + fraction of steps with a reg phase).
    """
    intervals = [i for i in intervals if i > 0]
    if not intervals:
        return 1.0
    period = math.lcm(*intervals)
    due = sum(any(s % i == 0 for i in intervals) for s in range(period))
    return 1.0 / (1.0 + due / period)


def cooldown_scale(fraction: float, cooldown: float) -> float:
    """The learning rates' factor at ``fraction`` (0-1) of the budget with ``train.lr_cooldown``:
    1 until the last ``cooldown`` share, then linearly down to 0 at the end (1 when 0)."""
    if cooldown <= 0:
        return 1.0
    return min(max((1.0 - fraction) / cooldown, 0.0), 1.0)


def make_adam(
    params, lr: float, betas: tuple[float, float], ratio: float, fused: bool = False
) -> torch.optim.Adam:
    """Adam with the lazy-regularization rescale applied once, here. ``fused``: one kernel
    for all parameters (CUDA; the CPU keeps the default multi-tensor step)."""
    return torch.optim.Adam(
        params,
        lr=lr * ratio,
        betas=(betas[0] ** ratio, betas[1] ** ratio),
        eps=1e-8,
        fused=fused or None,
    )


class PreconditionedSGD(torch.optim.Optimizer):
    """Plain gradient steps preconditioned by another Adam's running second moment.

    ``p -= lr · clamp(g / (√v̂_ref + eps), ±clip)`` with ``v̂_ref`` the bias-corrected
    ``exp_avg_sq`` of ``reference`` (G's Adam, whose moments see only the adversarial and
    other G gradients). Used by ``link.adam: precond``: the link gradient is measured in
    units of the adversarial gradient's typical size per parameter, so a parameter the link
    barely touches barely moves, and the step shrinks as the link gradient does (an Adam of
    its own would move every parameter by about its lr whatever the gradient's size).
    Parameters the reference has not stepped yet are left alone. ``last_rms``: the RMS of
    the last step's ratio ``g / √v̂`` (before clipping), ``last_clipped``: its clipped
    fraction, both as tensors (no host sync here).
    """

    def __init__(self, params, reference: torch.optim.Adam, lr: float, clip: float = 4.0):
        super().__init__(params, {"lr": lr})
        self.reference = reference
        self.clip = clip
        self.last_rms = torch.zeros(())
        self.last_clipped = torch.zeros(())

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch.optim.Optimizer.step)
        sq_sum, clipped, count = None, None, 0
        for group in self.param_groups:
            beta2 = self.reference.defaults["betas"][1]
            eps = self.reference.defaults["eps"]
            for p in group["params"]:
                state = self.reference.state.get(p)
                if p.grad is None or not state or "exp_avg_sq" not in state:
                    continue
                bc2 = 1.0 - beta2 ** float(state["step"])
                ratio = p.grad / ((state["exp_avg_sq"] / bc2).sqrt() + eps)
                s, c = ratio.square().sum(), (ratio.abs() > self.clip).sum()
                sq_sum = s if sq_sum is None else sq_sum + s
                clipped = c if clipped is None else clipped + c
                count += ratio.numel()
                p.add_(ratio.clamp_(-self.clip, self.clip), alpha=-group["lr"])
        if count:
            self.last_rms = (sq_sum / count).sqrt()
            self.last_clipped = clipped.float() / count
        return None
