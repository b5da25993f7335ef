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
