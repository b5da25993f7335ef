"""Edit grids: the original and K resamples of one link's axes, with difference heat maps.

Sees only the generator interface (``mapping`` / ``synthesis``) and ``link_core``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from link_core.data.images import grid, to_uint8, write_png
from link_core.interface import view_cameras
from link_core.link import Link
from link_core.metrics import resample_link_axes
from render.heatmap import colorize, depth_range, depth_to_rgb, difference_map, outline, upscale
from render.videos import resolution_kwargs, shown_image


@torch.no_grad()
def link_resamples(
    G: torch.nn.Module,
    ws: torch.Tensor,
    link: Link,
    samples: int,
    seed: int,
    c: torch.Tensor | None = None,
    render_resolution: int | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Render the original w and ``samples`` versions with the link's axes resampled.

    ws: ``[1, num_ws, w_dim]``. The new axes come from the mapped w of
    :func:`~link_core.metrics.edit_seeds` (reproducible per seed). ``render_resolution``:
    3-D models' neural rendering size (None: as trained).
    Returns (original outputs ``[1, …]``, edited outputs ``[K, …]``, mask ``[1, 1, H, W]``).
    """
    device = ws.device
    kwargs = resolution_kwargs(G, render_resolution)
    c = view_cameras(G, 1, device) if c is None else c.to(device)
    base = G.synthesis(ws, c, noise_mode="const", **kwargs)
    ws_edit = resample_link_axes(G, ws, link.axis_mask(G.w_dim, device), samples, seed, c)
    edited = G.synthesis(ws_edit, c.expand(samples, -1), noise_mode="const", **kwargs)
    base, edited = ({**o, "image": shown_image(o)} for o in (base, edited))
    return base, edited, link.region(base, c)


def edit_grid_image(
    original: torch.Tensor,
    edited: torch.Tensor,
    mask: torch.Tensor,
    tile: int = 128,
    depth: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """Rows: the original then the K edits; the region, then |edit − original|.

    original ``[1, 3, H, W]``, edited ``[K, 3, H, W]`` in [-1, 1], mask ``[1, 1, H, W]``.
    ``depth`` = (original ``[1, 1, h, w]``, edited ``[K, 1, h, w]``) in world units adds two
    rows: the depth maps (one shared range) and |Δdepth| heat maps. Heat maps share one
    scale per kind (the largest change in the grid) so rows compare honestly.
    """
    m = mask[0, 0].float().cpu().numpy()
    region = upscale((np.repeat(m[..., None], 3, axis=2) * 255).astype(np.uint8), tile)

    def heat_row(diffs: np.ndarray) -> list[np.ndarray]:
        vmax = float(diffs.max()) if diffs.size else 1.0
        return [outline(region, m)] + [outline(upscale(colorize(d, vmax), tile), m) for d in diffs]

    rows = [[outline(upscale(t, tile), m) for t in to_uint8(torch.cat([original, edited]))]]
    if depth is not None:
        d0, d1 = depth
        lo, hi = depth_range(d0, d1, far=float(max(d0.max(), d1.max())))
        rows.append([upscale(t, tile) for t in depth_to_rgb(torch.cat([d0, d1]), lo, hi)])
    rows.append(heat_row(difference_map(edited, original.expand_as(edited)).cpu().numpy()))
    if depth is not None:
        rows.append(heat_row((d1 - d0).abs()[:, 0].cpu().numpy()))
    tiles = [t for row in rows for t in row]
    return grid(np.stack(tiles), cols=len(rows[0]), pad=2)


def save_edit_grid(
    G: torch.nn.Module,
    ws: torch.Tensor,
    link: Link,
    samples: int,
    seed: int,
    path: str | Path,
    c: torch.Tensor | None = None,
    render_resolution: int | None = None,
) -> Path:
    """Render and write one link's edit grid as a PNG."""
    base, edited, mask = link_resamples(G, ws, link, samples, seed, c, render_resolution)
    depth = None
    if "image_depth" in base:
        depth = (base["image_depth"], edited["image_depth"])
    return write_png(edit_grid_image(base["image"], edited["image"], mask, depth=depth), path)
