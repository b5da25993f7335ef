"""Meshes of a loaded 3-D model: coloured marching-cubes meshes (world units) of a seed and of
K resamples of a link's axes, heat-map meshes of the change, and a mesh turntable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from link_core.data.outputs import check_out_folder
from link_core.errors import UserError
from link_core.link import Box3DRegion
from link_core.weights import checkpoint as ckpt

if TYPE_CHECKING:
    from linkgan.model import Model

MESH_FORMATS = ("ply", "obj", "glb")


@torch.no_grad()
def export_meshes(
    model: Model,
    seed: int,
    out: str | Path,
    link: str | None = None,
    samples: int = 3,
    grid: int = 256,
    formats: tuple[str, ...] = ("ply", "glb"),
    level: float | str | None = None,
    progress: bool = True,
    w_file: str | Path | None = None,
    turntable: int = 0,
) -> dict[str, Any]:
    """Coloured world-unit meshes of a seed (and of K resamples of a link's axes, with
    heat-map meshes coloured by the distance to the original and the change inside vs
    outside the link's 3-D region). ``turntable > 0`` also renders the meshes themselves
    (pytorch3d) turning side by side into ``out/turntable.mp4``. Writes
    ``out/summary.json``; returns it."""
    from export import extract_mesh, heatmap_mesh, mesh_distance, region_change, write_mesh
    from export.mesh import DEFAULT_LEVEL
    from link_core.metrics import resample_link_axes

    if samples < 1:
        raise UserError("--samples: must be >= 1")
    if not 0 <= turntable <= 10_000:
        raise UserError(f"--turntable: expected 0..10000 frames, got {turntable}")
    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise UserError(f"--format: unknown {bad[0]!r} (known: {', '.join(MESH_FORMATS)})")
    if grid < 16 or grid > 1024:
        raise UserError(f"--grid: expected 16..1024, got {grid}")
    G = model.G
    if not G.is_3d:
        raise UserError(
            f"{model.spec}: a {model.config.model.backbone} model has no 3-D field to export"
        )
    out = check_out_folder(out)
    ws, c, name = model.latent(seed, w_file)
    if level == "auto":
        from export import auto_level

        level = auto_level(G, ws)
    level = DEFAULT_LEVEL if level is None else float(level)
    summary: dict[str, Any] = {"latent": name, "grid": grid, "level": level, "units": "world"}

    def save(mesh, stem: str) -> list[str]:
        return [str(write_mesh(mesh, out / f"{stem}.{fmt}")) for fmt in formats]

    original = extract_mesh(G, ws, grid, level, progress=progress)
    if original.num_vertices == 0:
        from export import density_grid

        peak = float(density_grid(G, ws, min(grid, 64)).max())
        raise UserError(
            f"{name}: the density never reaches --level {level:g} (max σ ≈ {peak:.3g} on a "
            "64³ grid): pass a lower --level or train longer"
        )
    summary["original"] = {"vertices": original.num_vertices, "files": save(original, "original")}
    shown: list[list] = [[original], [original]]
    columns = ["original"]
    if link is not None:
        target = model.link(link)
        ws_edit = resample_link_axes(G, ws, target.axis_mask(G.w_dim), samples, seed, c)
        edits = []
        for k in range(samples):
            w_k = ws_edit[k : k + 1]
            mesh = extract_mesh(G, w_k, grid, level, progress=progress)
            dist = mesh_distance(original, mesh)
            stem = f"{target.name}_{k}"
            heat = heatmap_mesh(mesh, dist)
            entry: dict[str, Any] = {
                "vertices": mesh.num_vertices,
                "files": save(mesh, stem) + save(heat, f"{stem}_heat"),
            }
            shown[0].append(mesh)
            shown[1].append(heat)
            columns.append(f"{target.name} #{k + 1}")
            if isinstance(target.region, Box3DRegion):
                entry["change"] = region_change(original, mesh, target.region)
            edits.append(entry)
        summary["link"] = target.name
        summary["edits"] = edits
    if turntable > 0:
        from render.mesh_view import mesh_turntable

        rows, labels = (shown, ["mesh", "change"]) if link is not None else (shown[:1], ["mesh"])
        summary["turntable"] = mesh_turntable(
            rows,
            columns,
            labels,
            out / "turntable.mp4",
            frames=turntable,
            fps=12,
            tile=160,
            progress=progress,
        )
    ckpt.write_json(out / "summary.json", summary)
    return summary
