"""``linkgan compare``: LinkGAN's edits against the post-hoc local editors on the same model
(paper §4.3, Table 2 and Fig. 8), in RGB and, on 3-D models, in depth.

For each region (a link of the model) and method, ``num`` samples from the model's default
(frontal) camera are edited and the paper's masked MSE is measured inside (MSE_i) and
outside (MSE_o) the region, images in [0, 1], depth in world units:

- ``linkgan``: the link's axes resampled (taken from another seed's w, as ``link_mse``);
- ``resefa``: ``w ± s·d``, ``d`` ReSeFa's direction for the region
  (:func:`~link_core.edit.posthoc.resefa_direction`, Jacobians of ``jacobian_samples``);
- ``stylespace``: the region's most localized style channel moved by ``± s`` of its std;
- ``sefa``: ``w ± s·d``, ``d`` the one of SeFa's top 8 directions with the highest inside /
  outside change for the region: the best a region-blind direction does;
- ``ganspace``: the same choice among GANSpace's top 8 principal components of W.

The paper compares at comparable MSE_i. Here each baseline's strength ``s`` is set so its
RGB MSE_i matches LinkGAN's (a few secant steps on ``log MSE_i`` against ``log s``; the
achieved MSE_i is in every row), so MSE_o says which method leaks less for the same change.
Signs alternate across samples. StyleCLIP needs CLIP weights that cannot be fetched here
and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from link_core.data.images import to_uint8, write_png
from link_core.edit.posthoc import (
    channel_offsets,
    ganspace_directions,
    region_gram,
    resefa_direction,
    sefa_directions,
    style_offsets,
    stylespace_channels,
)
from link_core.errors import UserError
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Box3DRegion, masked_mse, resize_mask, swap_axes
from link_core.metrics import default_maps
from link_core.weights.checkpoint import write_json

if TYPE_CHECKING:
    from linkgan.model import Model

METHODS = ("linkgan", "resefa", "stylespace", "sefa", "ganspace")


def _image01(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return (out["image"] + 1) / 2


@torch.no_grad()
def _mse(
    edit: Edit, samples: _Samples, mask: torch.Tensor, strength: float
) -> dict[str, dict[str, float]]:
    """``{map: {mse_in, mse_out}}`` of one edit strength over the samples."""
    edited = edit(samples.ws, samples.c, strength)
    result = {}
    for name, fn in default_maps(samples.base).items():
        x, xe = fn(samples.base), fn(edited)
        m = resize_mask(mask, x.shape[-2:])
        result[name] = {
            "mse_in": float(masked_mse(xe, x, m).mean()),
            "mse_out": float(masked_mse(xe, x, 1 - m).mean()),
        }
    return result


def _matched(
    edit: Edit, samples: _Samples, mask: torch.Tensor, target: float, steps: int = 4
) -> tuple[float, dict[str, dict[str, float]]]:
    """The strength whose RGB MSE_i is closest to ``target`` after ``steps`` secant steps in
    log-log (MSE_i ∝ s² for small s), and its measures."""
    s0, m0 = 1.0, _mse(edit, samples, mask, 1.0)
    best = (abs(math.log(max(m0["image"]["mse_in"], 1e-30) / target)), s0, m0)
    s1 = s0 * math.sqrt(target / max(m0["image"]["mse_in"], 1e-30))
    for _ in range(steps):
        m1 = _mse(edit, samples, mask, s1)
        err = abs(math.log(max(m1["image"]["mse_in"], 1e-30) / target))
        if err < best[0]:
            best = (err, s1, m1)
        y0 = math.log(max(m0["image"]["mse_in"], 1e-30))
        y1 = math.log(max(m1["image"]["mse_in"], 1e-30))
        slope = (y1 - y0) / (math.log(s1) - math.log(s0)) if s1 != s0 else 2.0
        slope = slope if slope > 0.1 else 2.0  # flat: fall back to the small-s law
        s0, m0 = s1, m1
        s1 = math.exp(math.log(s1) + (math.log(target) - y1) / slope)
        if err < 0.01:
            break
    return best[1], best[2]


def _signs(n: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(n)], device=device)


@dataclass
class Edit:
    """One method's edit of N samples as a function of its strength ``s``: the moved w
    (``move(ws, s)``) and style offsets (``offsets(n, s)``, StyleSpace; None otherwise)."""

    G: torch.nn.Module
    move: Callable[[torch.Tensor, float], torch.Tensor]
    offsets: Callable[[int, float], dict[str, torch.Tensor]] | None = None

    def _styles(self, n: int, s: float) -> Any:
        return style_offsets(self.G, self.offsets(n, s) if self.offsets else {})

    def __call__(self, ws: torch.Tensor, c: torch.Tensor, s: float) -> dict[str, torch.Tensor]:
        """The edited samples' outputs (fixed noise)."""
        with self._styles(len(ws), s):
            return self.G.synthesis(self.move(ws, s), c, noise_mode="const")

    def mesh(self, ws: torch.Tensor, s: float, grid: int, level: float) -> Any:
        """The marching-cubes mesh of the edited first sample (``ws [1, num_ws, w_dim]``)."""
        from export import extract_mesh

        with self._styles(1, s):
            return extract_mesh(self.G, self.move(ws, s), grid, level, progress=False)


def _linkgan_edit(samples: _Samples, link: Any) -> Edit:
    """The link's own edit: its axes moved towards (at strength 1: taken from) other
    seeds' w."""
    axis_mask = link.axis_mask(samples.G.w_dim, samples.ws.device)
    sources = samples.sources
    return Edit(samples.G, lambda w, s: swap_axes(w, sources[: len(w)], s * axis_mask))


def _posthoc_edits(
    samples: _Samples, link: Any, global_dirs: dict[str, torch.Tensor], jacobian_samples: int
) -> dict[str, Edit]:
    """ReSeFa's, StyleSpace's and the global methods' (``global_dirs``: SeFa's, GANSpace's
    candidate directions, ``[k, w_dim]`` each) :class:`Edit` of the samples for one link's
    region (described in the module's docstring). Signs alternate across samples."""
    G, ws, c = samples.G, samples.ws, samples.c
    device = ws.device
    jw, jc = ws[:jacobian_samples], c[:jacobian_samples]
    gram = region_gram(G, jw, jc, link.region, _image01)
    d_resefa = resefa_direction(gram).to(device)
    inside, outside = gram.inside.to(device), gram.outside.to(device)

    def most_inside(dirs: torch.Tensor) -> torch.Tensor:
        ratio = [float(d @ inside @ d) / max(float(d @ outside @ d), 1e-30) for d in dirs.double()]
        return dirs[int(np.argmax(ratio))]

    channel = stylespace_channels(G, jw, jc, link.region, _image01, top=1, spread=(ws, c))[0]
    signs = _signs(ws.shape[0], device)
    w_std = float(ws[:, 0].std(0).mean())  # a w direction's unit: a typical axis' spread

    def along(d: torch.Tensor) -> Edit:
        return Edit(G, lambda w, s: w + (s * w_std * signs[: len(w)])[:, None, None] * d)

    return {
        "resefa": along(d_resefa),
        "stylespace": Edit(
            G,
            lambda w, s: w,
            lambda n, s: channel_offsets(G, channel, (s * signs[:n]).tolist()),
        ),
        **{name: along(most_inside(dirs)) for name, dirs in global_dirs.items()},
    }


@dataclass
class _Samples:
    """One model's samples for a comparison: ws, cameras, other seeds' w, the originals."""

    G: torch.nn.Module
    ws: torch.Tensor
    c: torch.Tensor
    sources: torch.Tensor
    base: dict[str, torch.Tensor]
    meshes: dict[tuple[int, int], Any] = field(default_factory=dict)
    """Original meshes by (sample, grid), shared by every method editing these samples."""
    level: float | None = None
    """The meshes' surface level, found once."""

    def original_mesh(self, i: int, grid: int) -> tuple[Any, float]:
        """Sample ``i``'s marching-cubes mesh at ``grid``³ and the level it used
        (:func:`~export.auto_level` of the first sample), computed once."""
        from export import auto_level, extract_mesh

        if self.level is None:
            self.level = auto_level(self.G, self.ws[:1])
        if (i, grid) not in self.meshes:
            w = self.ws[i : i + 1]
            self.meshes[i, grid] = extract_mesh(self.G, w, grid, self.level, progress=False)
        return self.meshes[i, grid], self.level

    @classmethod
    def draw(cls, G: torch.nn.Module, num: int, seed: int) -> _Samples:
        device = next(G.parameters()).device
        c = view_cameras(G, num, device)
        with torch.no_grad():
            ws = G.mapping(seeds_to_z(range(seed, seed + num), G.z_dim).to(device), c)
            other = seeds_to_z(range(seed + num, seed + 2 * num), G.z_dim).to(device)
            sources = G.mapping(other, c)
            base = G.synthesis(ws, c, noise_mode="const")
        return cls(G, ws, c, sources, base)


def compare(
    model: Model,
    regions: Sequence[str],
    out: str | Path,
    num: int = 16,
    seed: int = 0,
    jacobian_samples: int = 4,
    progress: bool = True,
    posthoc: Model | None = None,
    mesh_samples: int = 2,
    mesh_grid: int = 64,
    turntable_frames: int = 24,
) -> dict[str, Any]:
    """Write ``out/compare.json`` (rows ``{method, region, map, mse_in, mse_out,
    strength}``), ``out/compare.md`` and ``out/compare_<region>.png`` (rows: methods; columns:
    the original, the edit, the change) and return the JSON's content. ``regions``: link
    names (empty: every link; a link whose edit changes nothing inside its region from the
    default camera is then listed under ``skipped`` instead of stopping the comparison).

    ``posthoc``: the model the post-hoc editors run on (default: ``model``). A user who asks
    "link, or edit my model post hoc?" compares the linked model with the editors on the
    model before linking (its base or unlinked fine-tune); on the linked model itself
    ReSeFa can find the link's own axes.

    3-D models with ``box3d`` regions also get ``map: "mesh"`` rows: the mean squared
    distance (world units²) between the marching-cubes meshes (``mesh_grid``³, the level
    :func:`~export.auto_level` picks) of the original and the edited first ``mesh_samples``
    samples, inside / outside the region's boxes (:func:`~export.region_change`), and
    ``out/compare_<region>.mp4``: the figure's rows over one turn (``turntable_frames``; 0:
    none).
    """
    from tqdm.auto import tqdm

    if num < 2:
        raise UserError(f"--num: need at least 2 samples, got {num}")
    if turntable_frames < 0:
        raise UserError(f"--turntable-frames: must be >= 0, got {turntable_frames}")
    if jacobian_samples < 1:
        raise UserError(f"--jacobian-samples: must be >= 1, got {jacobian_samples}")
    links = {lk.name: lk for lk in model.links}
    asked = bool(regions)
    if not regions:
        regions = list(links)
    unknown = [r for r in regions if r not in links]
    if unknown:
        raise UserError(
            f"--regions: {unknown[0]!r} is not a link of {model.spec} (links: {', '.join(links)})"
        )
    other = posthoc if posthoc is not None else model
    if other.G.w_dim != model.G.w_dim or other.G.is_3d != model.G.is_3d:
        raise UserError(
            f"--posthoc-ckpt: {other.spec} is not the same kind of model as {model.spec}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    linked = _Samples.draw(model.G, num, seed)
    post = linked if posthoc is None else _Samples.draw(other.G, num, seed)
    global_dirs = {
        "sefa": sefa_directions(post.G, k=8).to(post.ws.device),
        "ganspace": ganspace_directions(post.G, post.c[:1], k=8),
    }
    rows: list[dict[str, Any]] = []
    videos: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []  # regions (not asked for by name) whose link changes nothing
    for region_name in tqdm(regions, "compare", disable=not progress):
        link = links[region_name]
        runs = {m: (linked if m == "linkgan" else post) for m in METHODS}
        masks = {m: link.region(r.base, r.c) for m, r in runs.items()}
        edits = {"linkgan": _linkgan_edit(linked, link)}  # on the linked model
        edits.update(_posthoc_edits(post, link, global_dirs, jacobian_samples))
        measured = {"linkgan": (1.0, _mse(edits["linkgan"], linked, masks["linkgan"], 1.0))}
        target = measured["linkgan"][1]["image"]["mse_in"]
        if not target > 0 and not asked:  # every link: compare those that show a change
            skipped.append(region_name)
            continue
        if not target > 0:
            raise UserError(
                f"--regions: {region_name}: the link's edit changes nothing inside its region "
                "(is the region in view from the default camera?)"
            )
        for m in METHODS[1:]:
            measured[m] = _matched(edits[m], runs[m], masks[m], target)
        if mesh_samples > 0 and model.G.is_3d and isinstance(link.region, Box3DRegion):
            for m, (strength, per_map) in measured.items():
                per_map["mesh"] = _mesh_change(
                    edits[m], runs[m], strength, link.region, mesh_samples, mesh_grid
                )
        for method, (strength, per_map) in measured.items():
            for map_name, m in per_map.items():
                row = {"method": method, "region": region_name, "map": map_name, **m}
                rows.append({**row, "strength": round(strength, 4)})
        image = _figure(edits, measured, runs, masks, region_name)
        write_png(image, out / f"compare_{region_name}.png")
        if turntable_frames > 0 and model.G.is_3d:
            videos[region_name] = _turntable(
                edits,
                measured,
                runs,
                region_name,
                out / f"compare_{region_name}.mp4",
                turntable_frames,
            )
    result = {
        "rows": rows,
        "turntables": videos,
        "skipped": skipped,
        "settings": {
            "checkpoint": str(model.source),
            "posthoc_checkpoint": str(other.source),
            "num": num,
            "seed": seed,
            "camera": "the model's default (frontal) camera",
            "jacobian_samples": jacobian_samples,
            "matching": "each baseline's strength set so its RGB mse_in matches linkgan's",
            "images": "[0, 1]",
            "depth": "world units",
            "left_out": "StyleCLIP (needs CLIP weights)",
        },
    }
    write_json(out / "compare.json", result)
    (out / "compare.md").write_text(compare_table(result), encoding="utf-8")
    shown = [r for r in regions if r not in skipped]
    _write_html(out / "index.html", result, [f"compare_{r}.png" for r in shown])
    return result


def _write_html(path: Path, result: dict[str, Any], grids: list[str]) -> None:
    """``index.html``: the table (×10³) and the grids, beside the files it shows."""
    import html

    esc = html.escape
    head = "<tr><th>region</th><th>map</th><th>method</th><th>MSE_i ×10³</th>"
    head += "<th>MSE_o ×10³</th><th>strength</th></tr>"
    rows = "".join(
        f"<tr><td>{esc(r['region'])}</td><td>{esc(r['map'])}</td><td>{esc(r['method'])}</td>"
        f"<td>{1e3 * r['mse_in']:.3f}</td><td>{1e3 * r['mse_out']:.3f}</td>"
        f"<td>{r['strength']:g}</td></tr>"
        for r in result["rows"]
    )
    settings = result["settings"]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>linkgan compare</title>"
        "<style>body{font:14px system-ui;margin:24px}td,th{padding:2px 8px;text-align:right}"
        "img{image-rendering:pixelated;margin:8px 0}</style></head><body>"
        f"<h1>LinkGAN vs post-hoc local editors</h1><p>linked: {esc(settings['checkpoint'])}; "
        f"post-hoc editors on: {esc(settings['posthoc_checkpoint'])}; {settings['num']} samples, "
        f"{esc(settings['matching'])}.</p><table>{head}{rows}</table>"
        + "".join(f"<div><img src='{esc(g)}' alt='{esc(g)}'></div>" for g in grids)
        + "".join(
            f"<div><video src='{esc(v['path'])}' controls loop muted autoplay></video></div>"
            for v in result.get("turntables", {}).values()
        )
        + "</body></html>"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)


def _mesh_change(
    edit: Edit, samples: _Samples, strength: float, region: Box3DRegion, num: int, grid: int
) -> dict[str, float]:
    """Mean squared mesh distance inside / outside ``region`` over the first ``num``
    samples (each edited with the + sign)."""
    from export import region_change

    sums = {"mse_in": 0.0, "mse_out": 0.0}
    with torch.no_grad():
        for i in range(num):
            original, level = samples.original_mesh(i, grid)
            edited = edit.mesh(samples.ws[i : i + 1], strength, grid, level)
            change = region_change(original, edited, region)
            for k in sums:
                sums[k] += 0.0 if math.isnan(change[k]) else change[k] / num
    return sums


def _figure(
    edits: dict[str, Edit],
    measured: dict[str, tuple[float, Any]],
    runs: dict[str, _Samples],
    masks: dict[str, torch.Tensor],
    region_name: str,
) -> np.ndarray:
    """Fig. 8: rows methods; columns the original, the edit of sample 0, its change (one
    heat-map scale for all rows), the region outlined."""
    from render.frames import labelled_grid
    from render.heatmap import colorize, difference_map, outline, upscale

    shown, originals, regions = {}, {}, {}
    with torch.no_grad():
        for k in METHODS:
            s = runs[k]
            shown[k] = edits[k](s.ws[:1], s.c[:1], measured[k][0])["image"]
            originals[k] = s.base["image"][:1]
            m = resize_mask(masks[k][:1], s.base["image"].shape[-2:])
            regions[k] = m[0, 0].cpu().numpy()
    diffs = {k: difference_map(shown[k], originals[k])[0].cpu().numpy() for k in METHODS}
    vmax = max(float(d.max()) for d in diffs.values()) or 1.0
    tiles = []
    for k in METHODS:
        m = regions[k]
        tiles.append(
            [
                outline(upscale(to_uint8(originals[k])[0], 96), m),
                outline(upscale(to_uint8(shown[k])[0], 96), m),
                outline(upscale(colorize(diffs[k], vmax), 96), m),
            ]
        )
    labels = ["original", "edited", "change"]
    return labelled_grid(tiles, labels, list(METHODS), title=f"region {region_name}")


def _turntable(
    edits: dict[str, Edit],
    measured: dict[str, tuple[float, Any]],
    runs: dict[str, _Samples],
    region_name: str,
    out: Path,
    frames: int,
) -> dict[str, Any]:
    """The figure's rows turning: per method, sample 0 original, edited (at its matched
    strength) and the change, one turn at 10° pitch; one heat-map scale for the video (the
    largest change of the frontal frame, so the colours read as in the PNG)."""
    from render.frames import labelled_grid
    from render.heatmap import colorize, difference_map, upscale
    from render.paths import camera_path
    from render.video import FrameSink

    cams = camera_path(runs["linkgan"].G, "turntable", frames)
    vmax = None
    with torch.no_grad(), FrameSink(out, fps=12) as sink:
        for i in range(frames):
            rows = []
            originals: dict[int, torch.Tensor] = {}  # the post-hoc methods share one model's
            for k in METHODS:
                s = runs[k]
                c = cams[i : i + 1].to(s.ws.device)
                if id(s) not in originals:
                    originals[id(s)] = s.G.synthesis(s.ws[:1], c, noise_mode="const")["image"]
                original = originals[id(s)]
                edited = edits[k](s.ws[:1], c, measured[k][0])["image"]
                diff = difference_map(edited, original)[0].cpu().numpy()
                rows.append((original, edited, diff))
            if vmax is None:
                vmax = max(float(r[2].max()) for r in rows) or 1.0
            tiles = [
                [
                    upscale(to_uint8(o)[0], 96),
                    upscale(to_uint8(e)[0], 96),
                    upscale(colorize(d, vmax), 96),
                ]
                for o, e, d in rows
            ]
            title = f"region {region_name}, yaw {360 * i / frames:.0f}°"
            sink.write(labelled_grid(tiles, ["original", "edited", "change"], list(METHODS), title))
    return {"path": out.name, "frames": frames}


def compare_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table (×10³, as the paper's Table 2)."""
    lines = [
        "| region | map | method | MSE_i ×10³ | MSE_o ×10³ | strength |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['region']} | {r['map']} | {r['method']} | {1e3 * r['mse_in']:.3f} | "
            f"{1e3 * r['mse_out']:.3f} | {r['strength']:g} |"
        )
    return "\n".join(lines) + "\n"
