"""Videos of a loaded model: a seed on a camera path, with K resamples of a link's axes
turning beside it (or moving continuously to each resample and back)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from link_core.errors import UserError

if TYPE_CHECKING:
    from linkgan.model import Model


@torch.no_grad()
def render(
    model: Model,
    seed: int,
    out: str | Path,
    link: str | None = None,
    samples: int = 3,
    path: str | None = None,
    frames: int = 60,
    interp: bool = False,
    maps: str | None = None,
    fps: float = 24.0,
    tile: int = 128,
    pitch: float = 10.0,
    render_resolution: int | None = None,
    w_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """A video (mp4 / GIF / PNG folder, by ``out``'s suffix) of a seed turning on a camera
    path; with ``link``, K resamples of its axes turn beside the original (or, with
    ``interp``, move continuously from the original to each resample and back)."""
    from render.paths import camera_path
    from render.videos import interpolation_source, orbit_source, partition_rows, render_video

    if frames < 1 or frames > 10_000:
        raise UserError(f"--frames: expected 1..10000, got {frames}")
    if not 16 <= tile <= 1024:
        raise UserError(f"--tile: expected 16..1024, got {tile}")
    if samples < 1:
        raise UserError("--samples: must be >= 1")
    if interp and link is None:
        raise UserError("--interp: needs --link (which axes to move)")
    G = model.G
    is_3d = G.is_3d
    if maps is None:
        maps = "image,depth,geometry" if is_3d else "image"
        if link is not None:
            maps += ",change"
    if path is None:
        path = "turntable" if is_3d else "still"  # a 2-D model cannot turn
    cams = camera_path(G, path, frames, pitch_deg=pitch)
    ws, c, name = model.latent(seed, w_file)
    title = f"{model.name} | {name}"
    target = None
    if link is None:
        rows, columns = ws, ["original"]
        source = orbit_source(rows, cams)
    else:
        target = model.link(link)
        rows, columns = partition_rows(G, ws, target, samples, seed, c)
        title += f" | link {target.name} (w axes {axes_text(target.axes)})"
        if interp:
            source, t_of = interpolation_source(ws, rows[1:], cams, frames)
            columns = ["original"] + [f"-> {target.name} #{k + 1}" for k in range(samples)]
            base_title = title
            title = lambda i: f"{base_title} | t = {t_of(i):.2f}"  # noqa: E731
        else:
            source = orbit_source(rows, cams)
    summary = render_video(
        G,
        source,
        frames,
        out,
        columns=columns,
        maps=maps,
        link=target,
        tile=tile,
        fps=fps,
        title=title,
        render_resolution=render_resolution,
        progress=progress,
    )
    summary["path_kind"] = path
    return summary


def axes_text(axes: tuple[int, ...]) -> str:
    """``(0, 1, …, 15)`` -> ``"0-15"``; other sets as a short list."""
    if axes and list(axes) == list(range(axes[0], axes[-1] + 1)):
        return f"{axes[0]}-{axes[-1]}"
    return ",".join(map(str, axes[:6])) + ("…" if len(axes) > 6 else "")
