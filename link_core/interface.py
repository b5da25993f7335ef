"""The generator interface every backbone implements, and the seed -> z convention.

- ``G.mapping(z [B, z_dim], c [B, c_dim], truncation_psi=1, truncation_cutoff=None,
  update_emas=False) -> ws [B, num_ws, w_dim]``
- ``G.synthesis(ws, c, noise_mode="random" | "const" | "none") -> dict`` with ``image``
  ``[B, 3, H, W]`` in [-1, 1]; EG3D adds ``image_raw`` and ``image_depth``.
- ``D(outputs: dict, c) -> logits [B, 1]``.

Render, export, metrics and the loop speak only this; none asks which backbone it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class GeneratorLike(Protocol):
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor: ...

    def synthesis(
        self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "random"
    ) -> dict[str, torch.Tensor]: ...


def seeds_to_z(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """``[N, z_dim]``: one generator per seed, so seed 7 is the same latent in every tool."""
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.zeros(0, z_dim)


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"`` or ``"0-3,10"`` -> list of ints (ValueError on bad input)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0 in {text!r}")
    return seeds
