"""How much a region varies across samples: a part a fine-tune has dulled (every sample's
mouth the same) is local to edit and useless, and FID on the whole image hides it.

The diversity of a region over N samples ``x_n`` with masks ``m_n`` is the per-pixel
variance across samples, averaged over the pixels weighted by the mean mask:

    var_p = E_n[x_n(p)²] − E_n[x_n(p)]²   (mean over channels),
    diversity = Σ_p m̄(p) var_p / Σ_p m̄(p),   m̄ = E_n[m_n].

Streamed with :class:`RegionMoments`, so N need not fit in memory.
"""

from __future__ import annotations

import torch


class RegionMoments:
    """Running per-pixel ``Σx``, ``Σx²`` and ``Σm`` of one map over batches of samples."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: torch.Tensor | float = 0.0
        self.sum_sq: torch.Tensor | float = 0.0
        self.mass: torch.Tensor | float = 0.0

    def add(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """``x [B, C, H, W]`` and ``mask [B, 1, H, W]`` (in [0, 1]) of B more samples."""
        x = x.double()
        self.sum = self.sum + x.sum(0)
        self.sum_sq = self.sum_sq + x.square().sum(0)
        self.mass = self.mass + mask.double().sum(0)
        self.count += x.shape[0]

    def diversity(self) -> float:
        """The region's mean per-pixel variance across the samples added so far."""
        if self.count < 2:
            raise ValueError("diversity needs at least 2 samples")
        n = self.count
        var = (self.sum_sq / n - (self.sum / n).square()).clamp(min=0).mean(0)  # [H, W]
        region = self.mass[0] / n
        return float((var * region).sum() / region.sum().clamp(min=1e-8))


def region_diversity(x: torch.Tensor, mask: torch.Tensor) -> float:
    """:class:`RegionMoments` of one batch: ``x [N, C, H, W]``, ``mask [N, 1, H, W]``."""
    moments = RegionMoments()
    moments.add(x, mask)
    return moments.diversity()
