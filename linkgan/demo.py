"""``make demo``: the main job end to end on the built-in data.

Train the quickstart (3-D by default: the tiny EG3D on synthetic heads), then show and
measure what each link's axes change: edit grids, turntable and continuous-control videos
(RGB | depth | geometry | change), coloured meshes of the original and the edits with
heat-map meshes and a mesh turntable, link_mse JSON, and ``index.html`` tying it together.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from link_core.errors import UserError
from link_core.weights.checkpoint import write_json
from linkgan.build import shipped_dir, train
from linkgan.model import Model
from linkgan.rendering import axes_text

CONFIGS = shipped_dir("configs")  # the repository's configs/, or the wheel's linkgan/configs
DEFAULT_CONFIG = CONFIGS / "quickstart_3d.yaml"


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(
    out: Path,
    minutes: float = 0.0,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    frames: int = 48,
    mesh_grid: int = 128,
    progress: bool = True,
    render_res: int | None = 64,
    kimg: float = 0.0,
    baseline: bool = False,
    fid_num: int = 500,
    fid_repeats: int = 3,
    compare_num: int = 6,
) -> dict[str, Any]:
    """Train for ``kimg`` thousand images or ``minutes`` (whichever ends first; 0: no such
    budget) into ``out/run``, then write everything the report shows.

    Quality per part is measured on every run: each link's ``diversity`` and, on the
    synthetic heads, the ``attributes`` frequencies (:mod:`linkgan.part_quality`).

    baseline: also fine-tune the same budget with ``link.enabled=false`` from the same start
    into ``out/run_unlinked`` and measure both: ``metrics.json`` gets ``unlinked`` and
    ``vs_unlinked`` (:func:`~link_core.metrics.compare_to_unlinked`), the report a table;
    both also get FID / KID on ``fid_num`` fakes, ``fid_repeats`` times (mean ± std;
    ``fid_num`` 0: none).

    compare_num: also edit that many samples with the post-hoc local editors (ReSeFa,
    StyleSpace, SeFa) at matched change inside each link's region, on the model the run
    started from (``train.init``; else the run itself): ``out/compare`` and a report
    section (:func:`linkgan.comparing.compare`; 0: none).
    """
    from link_core.link import Box3DRegion
    from link_core.metrics import compare_to_unlinked
    from linkgan.report import LinkSection, views_text, write_report, write_web_mesh

    out = Path(out)
    for old in (out / "run", out / "run_unlinked"):
        if old.exists() and any(old.iterdir()):
            raise UserError(f"--out: {out} already holds a demo run (choose another --out)")
    config = Path(config) if config else DEFAULT_CONFIG
    if minutes < 0 or kimg < 0 or minutes == kimg == 0:
        raise UserError(f"--minutes / --kimg: need a budget > 0, got {minutes:g} / {kimg:g}")
    if frames < 1:
        raise UserError(f"--frames: must be >= 1, got {frames}")
    if compare_num < 0 or compare_num == 1:
        raise UserError(f"--compare-num: need 0 (none) or >= 2 samples, got {compare_num}")
    if fid_num < 0 or fid_num == 1 or fid_repeats < 1:
        raise UserError(
            f"--fid-num / --fid-repeats: need 0 or >= 2 fakes and >= 1 repeat, got {fid_num} / "
            f"{fid_repeats}"
        )
    run_dir = out / "run"
    started = time.monotonic()
    budget = [f"train.minutes={minutes}", f"train.kimg={kimg}"]
    said = " or ".join(t for t in (kimg and f"{kimg:g} kimg", minutes and f"{minutes:g} min") if t)
    _log(f"training {config.name} for {said} -> {run_dir}")
    result = train(run_dir, config, [*budget, *overrides], progress=progress)
    model = Model.load(run_dir)  # read once: every link's grids, videos, meshes and metrics
    cfg, is_3d = model.config, model.is_3d
    grid_res = render_res if is_3d else None  # the turntables' resolution: parts, not pixels
    sections: list[LinkSection] = []
    for link in model.links:
        s = LinkSection(name=link.name, axes=axes_text(link.axes), region=_region_text(link.region))
        _log(f"link {link.name}: edit grids")
        for seed in range(3):
            grid = model.edit(seed, link.name, 4, out / "edits", render_resolution=grid_res)
            s.grids.append(_rel(grid, out))
        videos = out / "videos"
        _log(f"link {link.name}: videos ({frames} frames each)")
        v = model.render(
            0,
            videos / f"{link.name}_turntable.mp4",
            link=link.name,
            samples=3,
            frames=frames,
            render_resolution=grid_res,  # finer than trained: sharper
            progress=progress,
        )
        s.video = _rel(v["path"], out)
        v = model.render(
            0,
            videos / f"{link.name}_control.mp4",
            link=link.name,
            samples=3,
            frames=frames,
            interp=True,
            path="wobble" if is_3d else None,
            progress=progress,
        )
        s.interp_video = _rel(v["path"], out)
        if is_3d:
            _log(f"link {link.name}: meshes ({mesh_grid}³) and a mesh turntable")
            mesh_dir = out / "meshes" / link.name
            summary = model.export(
                0,
                mesh_dir,
                link=link.name,
                samples=2,
                grid=mesh_grid,
                formats=("ply", "glb"),
                level="auto",
                progress=progress,
                turntable=max(1, frames // 3),
            )
            s.mesh_video = _rel(summary["turntable"]["path"], out)
            from export import read_mesh

            shown = [("original", "original.ply"), ("edit #1", f"{link.name}_0.ply")]
            shown.append(("edit #1: distance to the original", f"{link.name}_0_heat.ply"))
            for label, file in shown:
                name = f"{link.name}__{Path(file).stem}"
                script = write_web_mesh(
                    read_mesh(mesh_dir / file), out / "web" / f"{name}.mesh.js", name
                )
                s.viewers.append((label, _rel(script, out)))
            s.downloads = sorted(
                _rel(p, out) for p in mesh_dir.iterdir() if p.suffix in (".ply", ".glb")
            )
            if isinstance(link.region, Box3DRegion):
                s.mesh_change = [e["change"] for e in summary["edits"]]
        sections.append(s)
    _log("measuring link_mse and quality per part")
    metrics = model.measure(["link_mse"])
    quality = _quality_metrics(cfg, baseline and fid_num > 0)
    metrics.update(_measure_quality(model, quality, fid_num, fid_repeats))
    if baseline:
        _log(f"baseline: the same budget with link.enabled=false -> {out / 'run_unlinked'}")
        off = train(
            out / "run_unlinked",
            config,
            [*budget, *overrides, "link.enabled=false"],
            progress=progress,
        )
        unlinked_model = Model.load(off.run_dir)
        unlinked = unlinked_model.measure(["link_mse"])
        metrics["unlinked"] = {
            "kimg": off.images_seen / 1000,
            "checkpoint": unlinked["checkpoint"],
            "link_mse": unlinked["link_mse"],
            **_measure_quality(unlinked_model, quality, fid_num, fid_repeats),
        }
        metrics["vs_unlinked"] = compare_to_unlinked(metrics["link_mse"], unlinked["link_mse"])
    write_json(out / "metrics.json", metrics)
    compared = None
    if compare_num:
        start = cfg.train.init or None
        _log(f"comparing with post-hoc editors on {start or 'the run itself'} -> {out / 'compare'}")
        compared = model.compare(
            [],
            out / "compare",
            posthoc=start,
            num=compare_num,
            mesh_samples=1,
            mesh_grid=min(mesh_grid, 48),  # a few minutes on 2 cores, as in docs/results.md
            turntable_frames=max(1, frames // 4) if is_3d else 0,
            progress=progress,
        )
    samples = sorted((run_dir / "samples").glob("*.png"))
    overview = {
        "config": str(config),
        "backbone": cfg.model.backbone,
        "trained": f"{result.images_seen / 1000:.1f} kimg in {result.steps} steps "
        f"({result.seconds / 60:.1f} min)",
        "links": ", ".join(s.name for s in sections),
        "made in": f"{(time.monotonic() - started) / 60:.1f} min",
    }
    report = write_report(
        out,
        f"linkgan demo: {config.stem}",
        overview,
        metrics,
        sections,
        samples=_rel(samples[-1], out) if samples else None,
        compare=compared,
        compare_dir="compare" if compared else None,
    )
    _log("link_mse (images in [0, 1]; depth in world units):")
    for name, maps in metrics["link_mse"].items():
        for map_name, m in maps.items():
            _log(
                f"  {name} {map_name}: edit_in {m['edit_in']:.4f}  edit_out {m['edit_out']:.4f}"
                f"  out/in {m['out_over_in']:.3f}  rest_in {m['rest_in']:.4f}"
                f"  change inside {m['edit_share']:.1%} (pooled {m['edit_share_pooled']:.1%},"
                f" {m['edit_escapes']:.0%} of edits mostly outside)"
                + (f" (front / side / back {views_text(m)})" if "edit_share_by_view" in m else "")
            )
    if baseline:
        _log("against the unlinked baseline (out/in unlinked ÷ linked; edit_in linked ÷ unlinked):")
        vs = metrics["vs_unlinked"]
        for name, maps in vs["out_over_in_ratio_off_vs_on"].items():
            for map_name, r in maps.items():
                kept = vs["edit_in_on_over_off"][name][map_name]
                _log(f"  {name} {map_name}: {r:.2f}x more local, edit_in kept {kept:.2f}")
    written = {"report": str(report), "metrics": str(out / "metrics.json"), "run": str(run_dir)}
    (out / "demo.json").write_text(json.dumps(written, indent=2), encoding="utf-8")
    _log(f"open {report}")
    return written


def _quality_metrics(cfg: Any, fid: bool) -> list[str]:
    """Per-part quality for every demo; attributes on the built-in synthetic sets; FID / KID
    (the data set's Inception statistics take minutes the first time) with ``--baseline``."""
    from linkgan.part_quality import ATTRIBUTE_KINDS

    names = ["diversity"]
    if not cfg.data.path and cfg.data.synthetic in ATTRIBUTE_KINDS:
        names.append("attributes")
    return [*names, "fid", "kid"] if fid else names


def _measure_quality(model: Model, names: list[str], num: int, repeats: int) -> dict[str, Any]:
    _log(f"{model.spec}: {', '.join(names)}")
    result: dict[str, Any] = {}
    rest = [n for n in names if n not in ("fid", "kid")]
    if rest:
        result.update(model.measure(rest, progress=False))
    if "fid" in names:
        result.update(model.measure(["fid", "kid"], num, progress=False, repeats=repeats))
    result.pop("checkpoint", None)
    return result


def _rel(path: str | Path, root: Path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def _region_text(region: Any) -> str:
    """How a region reads in the report."""
    from link_core.link import Box3DRegion

    if isinstance(region, Box3DRegion):
        boxes = " + ".join(str(list(b)) for b in region.boxes)
        where = "where the camera sees the box" if region.seen else "the same part from every view"
        return f"3-D box {boxes} in object space ({where})"
    if hasattr(region, "boxes"):
        return f"image box(es) {[list(b) for b in region.boxes]} (normalized x0, y0, x1, y1)"
    return f"per-instance mask from '{getattr(region, 'name', '?')}'"
