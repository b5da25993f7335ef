"""A link: a name, the axes of w it owns and the region they control; built from config specs."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from link_core.errors import ConfigError
from link_core.link.regions import (
    Box3DRegion,
    BoxRegion,
    MaskProvider,
    Region,
    build_region,
)


@dataclass(frozen=True)
class Link:
    """A link: a name, the indices of w it owns, and the region they control.

    ``weight`` multiplies this link's terms in the loss (1: the paper's equal weights; a
    small region such as a nose gets little gradient from a mean over its few pixels).
    """

    name: str
    axes: tuple[int, ...]
    region: Region
    weight: float = 1.0

    def axis_mask(self, w_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[w_dim]`` with 1 on the link's axes and 0 elsewhere."""
        m = torch.zeros(w_dim, device=device)
        m[list(self.axes)] = 1.0
        return m


# ----------------------------------------------------------------------------------------
# Building links from config specs.


def parse_axes(spec: Any, where: str) -> tuple[int, ...]:
    """Axes from config: ``[start, stop]`` (a half-open range), ``"a:b"``, a list of indices
    (any length other than two), or ``{indices: [...]}`` (any length, including two)."""
    if isinstance(spec, dict):
        if set(spec) != {"indices"}:
            raise ConfigError(f"{where}.axes: expected {{indices: [...]}}, got {spec!r}")
        spec = spec["indices"]
        values = list(spec) if isinstance(spec, list | tuple) else [spec]
    elif isinstance(spec, str) and ":" in spec:
        try:
            a, b = (int(s) for s in spec.split(":"))
        except ValueError:
            raise ConfigError(f"{where}.axes: cannot parse range {spec!r}") from None
        values = list(range(a, b))
    elif isinstance(spec, list | tuple) and len(spec) == 2:
        a, b = spec
        if not (isinstance(a, int) and isinstance(b, int)) or b <= a:
            raise ConfigError(f"{where}.axes: range [start, stop] needs integers start < stop")
        values = list(range(a, b))
    elif isinstance(spec, list | tuple):
        values = list(spec)
    else:
        raise ConfigError(f"{where}.axes: expected [start, stop] or a list of indices")
    if not values:
        raise ConfigError(f"{where}.axes: no axes")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}.axes: indices must be integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.axes: repeated indices")
    return tuple(sorted(values))


def build_links(
    specs: Sequence[Mapping[str, Any]],
    w_dim: int,
    providers: Mapping[str, MaskProvider] | None = None,
) -> list[Link]:
    """Validate link specs from the config and build :class:`Link` objects.

    Refuses axes outside ``[0, w_dim)``, axes shared by two links, a link owning every axis
    (its complement would be empty), duplicate names, and invalid or empty regions.
    """
    links: list[Link] = []
    owner: dict[int, str] = {}
    for i, spec in enumerate(specs):
        where = f"link.links[{i}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected {{name, axes, region}}, got {spec!r}")
        unknown = set(spec) - {"name", "axes", "region", "weight"}
        if unknown:
            raise ConfigError(f"{where}: unknown key '{sorted(unknown)[0]}'")
        for key in ("axes", "region"):
            if key not in spec:
                raise ConfigError(f"{where}: missing '{key}'")
        name = str(spec.get("name", f"link{i}"))
        where = f"link.links[{i}] ({name})"
        if any(link.name == name for link in links):
            raise ConfigError(f"{where}: duplicate link name '{name}'")
        axes = parse_axes(spec["axes"], where)
        bad = [a for a in axes if not 0 <= a < w_dim]
        if bad:
            raise ConfigError(f"{where}.axes: index {bad[0]} outside [0, {w_dim}) (model.w_dim)")
        if len(axes) == w_dim:
            raise ConfigError(f"{where}.axes: a link cannot own all {w_dim} axes")
        for a in axes:
            if a in owner:
                raise ConfigError(f"{where}.axes: axis {a} is already linked to '{owner[a]}'")
            owner[a] = name
        region = build_region(spec["region"], f"{where}.region", providers)
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(f"{where}.weight: expected a number > 0, got {weight!r}")
        links.append(Link(name=name, axes=axes, region=region, weight=float(weight)))
    for a, b, box in overlapping_regions(links):
        warnings.warn(
            f"link.links: the regions of '{a}' and '{b}' overlap ({box}): there each link's "
            "L_in (eq. 3) forbids the other's edits",
            stacklevel=2,
        )
    return links


def overlapping_regions(links: Sequence[Link]) -> list[tuple[str, str, tuple[float, ...]]]:
    """Pairs of links whose fixed boxes (2-D ``box`` or 3-D ``box3d``/``box3d_seen``) share
    an area or a volume, with the shared box: ``[(name_a, name_b, box), ...]``.

    Where two links own the same pixels, each one's eq. 3 holds them still while the other's
    axes move, so neither can edit there (an eyes box across the bridge of the nose starved
    the nose link: docs/results.md). Boxes that only touch do not overlap; masks from providers are
    per instance and not checked.
    """
    found = []
    for i, first in enumerate(links):
        for second in links[i + 1 :]:
            ra, rb = first.region, second.region
            if type(ra) is not type(rb) or not isinstance(ra, BoxRegion | Box3DRegion):
                continue
            for p in ra.boxes:
                for q in rb.boxes:
                    half = len(p) // 2
                    lo = [max(p[k], q[k]) for k in range(half)]
                    hi = [min(p[k + half], q[k + half]) for k in range(half)]
                    if all(low < high for low, high in zip(lo, hi, strict=True)):
                        found.append((first.name, second.name, tuple(lo + hi)))
    return found
