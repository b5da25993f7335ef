"""Videos of what a link changes: turntables, partition grids and continuous control.

One engine, :func:`render_video`, turns a *frame source* (frame index -> the w rows and the
camera of that frame) into a labelled grid per frame: one column per w row (the original,
then edits), one row per map kind (RGB, raw, depth, shaded geometry, change heat maps).
Depth uses ONE range for the whole video, and heat maps one scale, both found by a quick
pre-pass over a few frames, so nothing flickers (EG3D normalizes depth per frame).

Sees only the generator interface; 3-D maps need ``image_depth`` in the outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from link_core.data.images import to_uint8
from link_core.errors import UserError
from link_core.link import Link
from link_core.metrics import resample_link_axes
from render.frames import labelled_grid
from render.heatmap import colorize, depth_to_rgb, difference_map, outline
from render.shading import shade
from render.video import FrameSink

MAP_KINDS = {
    "image": "RGB",
    "raw": "raw render",
    "depth": "depth",
    "geometry": "geometry",
    "change": "RGB change",
    "depth_change": "depth change",
}
NEEDS_DEPTH = ("depth", "geometry", "depth_change")

FrameSource = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
"""frame index -> (ws ``[N, num_ws, w_dim]``, cameras ``[N, c_dim]``) for the N columns."""


def parse_maps(text: str | Sequence[str]) -> list[str]:
    """``"image,depth,geometry"`` -> validated list of map kinds."""
    maps = [m.strip() for m in text.split(",")] if isinstance(text, str) else list(text)
    maps = [m for m in maps if m]
    bad = [m for m in maps if m not in MAP_KINDS]
    if bad or not maps:
        raise UserError(
            f"--maps: unknown {bad[0] if bad else '(none)'!r} (known: {', '.join(MAP_KINDS)})"
        )
    return maps


def fit_tile(image: np.ndarray, size: int) -> np.ndarray:
    """Scale an ``[h, w, 3]`` tile to ``size²``: nearest up (crisp pixels), area down."""
    if image.shape[0] == size:
        return image
    mode = cv2.INTER_NEAREST if image.shape[0] < size else cv2.INTER_AREA
    return cv2.resize(image, (size, size), interpolation=mode)


@dataclass
class VideoRanges:
    """Shared scales of one video: depth range of the surfaces, largest changes."""

    depth_lo: float = 0.0
    depth_hi: float = 1.0
    change_max: float = 1.0
    depth_change_max: float = 1.0


def _hit(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Pixels where a ray hit a surface ``[B, 1, h, w]`` (all, without an alpha map)."""
    alpha = out.get("image_alpha")
    return alpha > 0.5 if alpha is not None else torch.ones_like(out["image_depth"], dtype=bool)


def _ranges(outputs: list[dict[str, torch.Tensor]]) -> VideoRanges:
    r = VideoRanges()
    changes = [difference_map(o["image"], o["image"][:1].expand_as(o["image"])) for o in outputs]
    r.change_max = max(float(torch.stack([c.max() for c in changes]).max()), 1e-3)
    if "image_depth" in outputs[0]:
        hits = torch.cat([o["image_depth"][_hit(o)] for o in outputs])
        if hits.numel() == 0:
            hits = torch.cat([o["image_depth"].flatten() for o in outputs])
        lo, hi = float(hits.min()), float(hits.max())
        margin = 0.05 * max(hi - lo, 1e-3)
        r.depth_lo, r.depth_hi = lo - margin, hi + margin
        dchange = [(o["image_depth"] - o["image_depth"][:1]).abs() for o in outputs]
        r.depth_change_max = max(float(torch.stack([d.max() for d in dchange]).max()), 1e-3)
    return r


def map_tiles(
    kind: str,
    out: dict[str, torch.Tensor],
    c: torch.Tensor,
    ranges: VideoRanges,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """``[N, h, w, 3]`` uint8 tiles of one map kind for the N columns of one frame; change
    maps compare each column with column 0 and outline ``region`` (``[h, w]``) if given."""
    if kind == "image":
        return to_uint8(shown_image(out))
    if kind == "raw":
        return to_uint8(out.get("image_raw", out["image"]))
    alpha = out.get("image_alpha")
    if kind == "depth":
        tiles = depth_to_rgb(out["image_depth"], ranges.depth_lo, ranges.depth_hi)
        if alpha is not None:  # where rays hit nothing: white, as in the RGB
            a = alpha[:, 0, :, :, None].clamp(0, 1).cpu().numpy()
            tiles = (tiles * a + 255 * (1 - a)).round().astype(np.uint8)
        return tiles
    if kind == "geometry":
        return shade(out["image_depth"], c, alpha)
    if kind == "change":
        diff = difference_map(out["image"], out["image"][:1].expand_as(out["image"]))
        vmax = ranges.change_max
    else:  # depth_change
        diff = (out["image_depth"] - out["image_depth"][:1]).abs()[:, 0]
        vmax = ranges.depth_change_max
    tiles = np.stack([colorize(d, vmax) for d in diff.cpu().numpy()])
    if region is not None:
        tiles = np.stack([outline(t, region) for t in tiles])
    return tiles


def shown_image(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The RGB to show: ``image_raw`` when it was rendered finer than ``image`` (a 3-D model
    without super-resolution at ``--render-res``: ``image`` is then resized back to the
    trained size), else ``image``. ``[B, 3, H, W]`` in [-1, 1]."""
    raw = out.get("image_raw")
    if raw is not None and raw.shape[-1] > out["image"].shape[-1]:
        return raw
    return out["image"]


def resolution_kwargs(G: torch.nn.Module, render_resolution: int | None) -> dict[str, int]:
    """``G.synthesis`` keyword arguments that render a 3-D model's neural rendering at
    ``render_resolution`` (None: as trained). A tri-plane field can be rendered finer than
    it was trained: the same model, sharper."""
    if render_resolution is None:
        return {}
    if not 8 <= render_resolution <= 1024:
        raise UserError(f"--render-res: expected 8..1024, got {render_resolution}")
    if not G.is_3d:
        raise UserError("--render-res: only 3-D (neural-rendering) models render finer")
    return {"render_resolution": render_resolution}


def _synthesize(
    G: torch.nn.Module,
    ws: torch.Tensor,
    c: torch.Tensor,
    render_resolution: int | None,
    chunk: int,
) -> dict[str, torch.Tensor]:
    kwargs = resolution_kwargs(G, render_resolution)
    parts = [
        G.synthesis(ws[i : i + chunk], c[i : i + chunk], noise_mode="const", **kwargs)
        for i in range(0, ws.shape[0], chunk)
    ]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def render_video(
    G: torch.nn.Module,
    source: FrameSource,
    num_frames: int,
    out: str | Path,
    *,
    columns: Sequence[str],
    maps: Sequence[str] = ("image", "depth", "geometry"),
    link: Link | None = None,
    tile: int = 128,
    fps: float = 24.0,
    title: str | Callable[[int], str] = "",
    render_resolution: int | None = None,
    chunk: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Render ``num_frames`` labelled grid frames to ``out`` (.mp4, .gif or a PNG folder).

    Returns what was written: path, frames, fps, frame size, the shared ranges, seconds and
    rendered frames per second."""
    maps = parse_maps(maps)
    resolution_kwargs(G, render_resolution)  # a bad --render-res fails before any work
    k = min(8, num_frames)  # the pre-pass: k frames spread over the video
    probe = sorted({round(i * (num_frames - 1) / max(k - 1, 1)) for i in range(k)})
    pre = [_synthesize(G, *source(i), render_resolution, chunk) for i in probe]
    if "image_depth" not in pre[0]:
        flat = [m for m in maps if m in NEEDS_DEPTH]
        if flat:
            raise UserError(f"--maps: {flat[0]!r} needs a 3-D model (this one renders no depth)")
    ranges = _ranges(pre)
    row_labels = [MAP_KINDS[m] for m in maps]
    started = time.perf_counter()
    size = None
    with FrameSink(out, fps=fps) as sink:
        for i in tqdm(range(num_frames), desc="render", unit="frame", disable=not progress):
            ws, c = source(i)
            o = _synthesize(G, ws, c, render_resolution, chunk)
            region = None
            if link is not None and any(m in ("change", "depth_change") for m in maps):
                region = link.region({k: v[:1] for k, v in o.items()}, c[:1])[0, 0]
                region = region.float().cpu().numpy()
            rows = [[fit_tile(t, tile) for t in map_tiles(m, o, c, ranges, region)] for m in maps]
            text = title(i) if callable(title) else title
            frame = labelled_grid(rows, list(columns), row_labels, title=text)
            size = frame.shape[1], frame.shape[0]
            sink.write(frame)
    seconds = time.perf_counter() - started
    return {
        "path": str(out),
        "frames": num_frames,
        "fps": fps,
        "size": list(size),
        "maps": maps,
        "columns": list(columns),
        "depth_range": [ranges.depth_lo, ranges.depth_hi],
        "seconds": round(seconds, 3),
        "frames_per_second": round(num_frames / max(seconds, 1e-9), 3),
    }


# -- frame sources --------------------------------------------------------------------------


def orbit_source(ws: torch.Tensor, cams: torch.Tensor) -> FrameSource:
    """All rows of ``ws [N, …]`` seen from camera ``cams[i]`` in frame i (they turn together)."""
    n = ws.shape[0]
    return lambda i: (ws, cams[i % len(cams)][None].expand(n, -1).to(ws.device))


def partition_rows(
    G: torch.nn.Module,
    ws: torch.Tensor,
    link: Link,
    samples: int,
    seed: int,
    c: torch.Tensor,
) -> tuple[torch.Tensor, list[str]]:
    """(``[1 + K, num_ws, w_dim]``: the original then K resamples of the link's axes, column
    labels)."""
    edits = resample_link_axes(G, ws, link.axis_mask(G.w_dim, ws.device), samples, seed, c)
    labels = ["original"] + [f"{link.name} #{k + 1}" for k in range(samples)]
    return torch.cat([ws, edits]), labels


def interpolation_source(
    ws: torch.Tensor, targets: torch.Tensor, cams: torch.Tensor, num_frames: int
) -> tuple[FrameSource, Callable[[int], float]]:
    """Continuous control (the paper's supplementary video): column 0 is the original; column
    k+1 moves from ``ws`` to ``targets[k]`` and back along a smooth loop
    (t = ½ − ½·cos(2πi/F)), seen from ``cams[i]``. Returns (source, t of frame i)."""
    k = targets.shape[0]

    def t_of(i: int) -> float:
        return 0.5 - 0.5 * math.cos(2 * math.pi * i / num_frames)

    def source(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        moved = torch.lerp(ws.expand(k, -1, -1), targets, t_of(i))
        rows = torch.cat([ws, moved])
        return rows, cams[i % len(cams)][None].expand(k + 1, -1).to(ws.device)

    return source, t_of
