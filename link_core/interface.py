"""The generator interface every backbone implements, and the seed -> z convention.

- ``G.mapping(z [B, z_dim], c [B, c_dim], truncation_psi=1, truncation_cutoff=None,
  update_emas=False) -> ws [B, num_ws, w_dim]``
- ``G.synthesis(ws, c, noise_mode="random" | "const" | "none") -> dict`` with ``image``
  ``[B, 3, H, W]`` in [-1, 1]; EG3D adds ``image_raw``, ``image_depth`` (distance along
  the ray, world units) and ``image_alpha`` (accumulated opacity in [0, 1]), at the neural
  rendering resolution; it also takes ``render_resolution=R`` to render finer than trained.
- ``D(outputs: dict, c) -> logits [B, 1]``.

Optional parts a backbone may offer (tools test with ``getattr``):

- ``G.sample_mixed(points [B, P, 3], ws) -> {"sigma", "rgb", ...}``: the 3-D field (EG3D);
- ``G.sample_cameras(n, generator) -> [n, c_dim]``: its camera distribution (metrics);
- ``G.default_cameras(n) -> [n, c_dim]``: the view for edits and stills (frontal);
- ``G.camera``: a :class:`~link_core.data.cameras.CameraSpec` (radius, FOV, pivot) for camera paths;
- ``G.map_scales``: per-map factors to the images' [-1, 1] scale for the link loss (depth);
- ``G.update_schedule(kimg)`` / ``D.update_schedule(kimg)``: kimg-driven schedules.

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


def eval_cameras(
    G: torch.nn.Module, num: int, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``[num, c_dim]`` labels for evaluation: the generator's own camera distribution when
    it has one (``G.sample_cameras``), else zeros (unconditional models)."""
    sampler = getattr(G, "sample_cameras", None)
    if sampler is None:
        return torch.zeros(num, G.c_dim, device=device)
    return sampler(num, generator=torch.Generator().manual_seed(seed)).to(device)


def view_cameras(G: torch.nn.Module, num: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[num, c_dim]`` labels for stills and edits: ``G.default_cameras`` (EG3D: frontal)
    when the generator has them, else zeros."""
    views = getattr(G, "default_cameras", None)
    if views is None:
        return torch.zeros(num, G.c_dim, device=device)
    return views(num).to(device)
