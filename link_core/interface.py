"""The generator interface every backbone implements, and the seed -> z convention.

:class:`Generator` is the contract: the loop, the link loss, metrics, render and export
use only what it names and never ask which backbone they hold. A 3-D-aware backbone also
implements :class:`Generator3D` (``G.is_3d`` is True): a field to sample and export, and
cameras to move. :class:`Discriminator` is D's side. :class:`GeneratorDefaults` gives a
2-D generator the optional parts (cameras of zeros, no schedule, no extra maps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

Outputs = dict[str, torch.Tensor]


@runtime_checkable
class Generator(Protocol):
    """What every generator offers.

    - ``mapping(z [B, z_dim], c [B, c_dim], truncation_psi=1, truncation_cutoff=None,
      update_emas=False) -> ws [B, num_ws, w_dim]``;
    - ``synthesis(ws, c, noise_mode="random" | "const" | "none") -> dict`` with ``image``
      ``[B, 3, H, W]`` in [-1, 1]; 3-D backbones add ``image_raw``, ``image_depth`` (distance
      along the ray, world units) and ``image_alpha`` at the neural rendering resolution
      and take ``render_resolution=R`` to render finer than trained;
    - ``sample_cameras(n, generator) -> [n, c_dim]``: its camera distribution (metrics,
      samples); ``default_cameras(n) -> [n, c_dim]``: the view for stills and edits;
    - ``map_scales``: per output map, the factor that brings it to the images' [-1, 1] scale
      for the link loss (EG3D's depth); empty for 2-D;
    - ``update_schedule(kimg) -> dict``: follow kimg-driven schedules; returns the values it
      set by name (logged as ``Schedule/<name>``; empty without any schedule);
    - ``scale_style_inputs(axes, scale)``: scale how strongly w axes drive the styles.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    is_3d: bool
    map_scales: dict[str, float]

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
    ) -> Outputs: ...

    def sample_cameras(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def default_cameras(self, n: int) -> torch.Tensor: ...

    def update_schedule(self, kimg: float) -> dict[str, float]: ...

    def scale_style_inputs(self, axes: Sequence[int], scale: float) -> None: ...


@runtime_checkable
class Generator3D(Generator, Protocol):
    """A 3-D-aware generator (``is_3d``): a density/colour field in a box, seen by cameras.

    - ``sample_mixed(points [B, P, 3], ws) -> {"sigma": [B, P, 1], "rgb": [B, P, 3], ...}``:
      the field (export, the volumetric link term);
    - ``planes(ws, noise_mode) -> [B, 3, C, R, R]`` and ``field(planes, points)``: the same
      field with the tri-planes computed once (dense grids);
    - ``camera``: a :class:`~link_core.data.cameras.CameraSpec` (radius, FOV, pivot);
    - ``box_size``: the field's box ``[-s/2, s/2]³`` (world units);
    - ``ray_chunk``, ``checkpoint_render``: the renderer's memory controls.
    """

    camera: Any
    box_size: float
    ray_chunk: int
    checkpoint_render: bool

    def sample_mixed(self, points: torch.Tensor, ws: torch.Tensor) -> Outputs: ...

    def planes(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor: ...

    def field(self, planes: torch.Tensor, points: torch.Tensor) -> Any: ...


@runtime_checkable
class Discriminator(Protocol):
    """``D(outputs: dict, c [B, c_dim]) -> logits [B, 1]``; ``update_schedule(kimg)``."""

    def __call__(self, outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor: ...

    def update_schedule(self, kimg: float) -> dict[str, float]: ...


class GeneratorDefaults:
    """The optional parts of :class:`Generator` as a 2-D backbone has them (mix in first):
    no 3-D field, unconditional cameras of zeros, no schedules, no extra maps."""

    is_3d: ClassVar[bool] = False
    map_scales: ClassVar[dict[str, float]] = {}
    c_dim: int

    def sample_cameras(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, c_dim]`` zeros: a 2-D generator has no camera distribution of its own."""
        return torch.zeros(n, self.c_dim)

    def default_cameras(self, n: int) -> torch.Tensor:
        """``[n, c_dim]`` zeros."""
        return torch.zeros(n, self.c_dim)

    def update_schedule(self, kimg: float) -> dict[str, float]:
        """No kimg-driven schedule."""
        return {}


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
    G: Generator, num: int, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``[num, c_dim]`` labels for evaluation: the generator's camera distribution, seeded."""
    return G.sample_cameras(num, generator=torch.Generator().manual_seed(seed)).to(device)


def view_cameras(G: Generator, num: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[num, c_dim]`` labels for stills and edits (EG3D: frontal; 2-D: zeros)."""
    return G.default_cameras(num).to(device)
