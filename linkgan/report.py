"""The demo's ``index.html``: metrics, edit grids, videos inline, meshes in a WebGL viewer.

Everything it needs sits next to it (the viewer script is copied from ``linkgan/static``;
meshes become small script files), so it opens from disk with nothing fetched.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATIC = Path(__file__).resolve().parent / "static"


def write_web_mesh(mesh: Any, path: str | Path, name: str) -> Path:
    """A mesh (``vertices``, ``faces``, ``colors``) as a script that hands base64 float32
    positions, uint8 colours and uint32 triangles to ``linkganMesh(name, …)``."""
    path = Path(path)
    colors = mesh.colors if mesh.colors is not None else np.full(mesh.vertices.shape, 200)

    def b64(a: np.ndarray, dtype) -> str:
        return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")

    body = (
        f"linkganMesh({name!r}, {{positions: '{b64(mesh.vertices, '<f4')}', "
        f"colors: '{b64(colors, np.uint8)}', indices: '{b64(mesh.faces, '<u4')}'}});\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(body, encoding="ascii")
    os.replace(tmp, path)
    return path


@dataclass
class LinkSection:
    """What the demo made for one link (paths relative to the report's folder)."""

    name: str
    axes: str
    region: str
    video: str | None = None
    interp_video: str | None = None
    grids: list[str] = field(default_factory=list)
    mesh_video: str | None = None
    viewers: list[tuple[str, str]] = field(default_factory=list)  # (label, mesh script name)
    downloads: list[str] = field(default_factory=list)
    mesh_change: list[dict[str, float]] = field(default_factory=list)


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
video, img { max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
.viewers { display: flex; gap: 12px; flex-wrap: wrap; }
.viewers figure { margin: 0; } canvas { border: 1px solid #ddd; cursor: grab; }
figcaption, .note { color: #666; font-size: 12px; } #errors { color: #b00; }
code { background: #f5f5f5; padding: 1px 4px; }
"""


def views_text(m: dict[str, Any]) -> str:
    """``edit_share_by_view`` as "front / side / back" (– where no view saw the part)."""
    views = m.get("edit_share_by_view")
    if not views:
        return "–"
    return " / ".join("–" if v is None else f"{v:.3f}" for v in views.values())


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = []
    for link, maps in metrics.get("link_mse", {}).items():
        for map_name, m in maps.items():
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (
                        link,
                        map_name,
                        f"{m['edit_in']:.4f}",
                        f"{m['edit_out']:.4f}",
                        f"{m['out_over_in']:.3f}",
                        f"{m['rest_in']:.4f}",
                        f"{m['rest_out']:.4f}",
                        f"{m['edit_share']:.3f}" if "edit_share" in m else "–",
                        f"{m['edit_share_pooled']:.3f}" if "edit_share_pooled" in m else "–",
                        f"{m['edit_escapes']:.1%}" if "edit_escapes" in m else "–",
                        views_text(m),
                    )
                )
                + "</tr>"
            )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "link",
            "map",
            "edit_in",
            "edit_out",
            "out / in",
            "rest_in",
            "rest_out",
            "edit's change inside",
            "inside, pooled",
            "edits mostly outside",
            "inside: front / side / back",
        )
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _vs_unlinked_table(vs: dict[str, Any], kimg: float) -> str:
    """The demo's ``--baseline`` comparison: per link and map, how many times more local
    the linked edit is than the unlinked one's, and how much of the part's change it kept."""
    ratio, kept = vs["out_over_in_ratio_off_vs_on"], vs["edit_in_on_over_off"]
    rows = "".join(
        f"<tr><td>{html.escape(link)}</td><td>{html.escape(m)}</td>"
        f"<td>{r:.2f}×</td><td>{kept[link][m]:.2f}</td></tr>"
        for link, maps in ratio.items()
        for m, r in maps.items()
    )
    head = "<tr><th>link</th><th>map</th><th>more local (out / in, unlinked ÷ linked)</th>"
    head += "<th>edit_in kept (linked ÷ unlinked)</th></tr>"
    return (
        f"<h2>Linked vs the same fine-tuning without the link ({kimg:.3g} kimg)</h2>"
        f"<table>{head}{rows}</table>"
    )


def _fid_text(m: dict[str, Any], name: str, scale: float = 1.0) -> str:
    if name not in m:
        return "–"
    if f"{name}_std" in m:
        return f"{scale * m[f'{name}_mean']:.2f} ± {scale * m[f'{name}_std']:.2f}"
    return f"{scale * m[name]:.2f}"


def _quality_section(metrics: dict[str, Any]) -> str:
    """Quality per part: FID / KID (± std over repeats), each link's diversity (model,
    unlinked, data) and the attribute frequencies, for what ``metrics`` holds."""
    esc = html.escape
    runs = {"linked": metrics, "unlinked": metrics.get("unlinked") or {}}
    runs = {
        k: v for k, v in runs.items() if any(x in v for x in ("fid", "diversity", "attributes"))
    }
    if not runs:
        return ""
    parts = ["<h2>Quality, overall and per part</h2>"]
    if any("fid" in m or "kid" in m for m in runs.values()):
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{_fid_text(m, 'fid')}</td>"
            f"<td>{_fid_text(m, 'kid', 1e3)}</td></tr>"
            for k, m in runs.items()
        )
        protocol = next((m["protocol"]["summary"] for m in runs.values() if "protocol" in m), "")
        parts.append(
            f"<table><tr><th>model</th><th>FID</th><th>KID ×10³</th></tr>{rows}</table>"
            f"<p class='note'>{esc(protocol)}; ± is the std over disjoint sets of fakes.</p>"
        )
    divs = {k: m["diversity"] for k, m in runs.items() if "diversity" in m}
    if divs:
        first = next(iter(divs.values()))
        cols = [*divs, *(["data"] if first.get("data") else [])]
        rows = ""
        for link, maps in first["model"].items():
            for map_name in maps:
                vals = [d["model"][link][map_name] for d in divs.values()]
                if first.get("data"):
                    vals.append(first["data"][link][map_name])
                cells = "".join(f"<td>{v:.4f}</td>" for v in vals)
                rows += f"<tr><td>{esc(link)}</td><td>{esc(map_name)}</td>{cells}</tr>"
        head = "".join(f"<th>{esc(c)}</th>" for c in cols)
        parts.append(
            "<h3>Diversity of each part (variance across samples, frontal view)</h3>"
            f"<table><tr><th>link</th><th>map</th>{head}</tr>{rows}</table>"
            "<p class='note'>A part a fine-tune made dull varies less than in the data.</p>"
        )
    attrs = {k: m["attributes"] for k, m in runs.items() if "attributes" in m}
    if attrs:
        first = next(iter(attrs.values()))
        rows = ""
        for name, per in first["data"].items():
            for value, share in per.items():
                cells = "".join(
                    f"<td>{a['model'][name][value]:.3f} ({a['ratio'][name][value]:.2f}×)</td>"
                    for a in attrs.values()
                )
                rows += f"<tr><td>{esc(name)}: {esc(value)}</td><td>{share:.3f}</td>{cells}</tr>"
        head = "".join(f"<th>{esc(k)} (÷ data)</th>" for k in attrs)
        acc = ", ".join(f"{k} {v:.2f}" for k, v in first["classifier"]["held_out_accuracy"].items())
        parts.append(
            "<h3>How often each attribute is drawn</h3>"
            f"<table><tr><th>attribute</th><th>data</th>{head}</tr>{rows}</table>"
            f"<p class='note'>Read by a classifier trained on rendered heads (held-out accuracy "
            f"{esc(acc)}); data: its frequencies on held-out real heads.</p>"
        )
    return "".join(parts)


def _compare_section(result: dict[str, Any], folder: str) -> str:
    """LinkGAN's edits against the post-hoc editors (``linkgan compare``'s JSON): MSE inside
    and outside each region per map and method, the figures and turntables in ``folder``."""
    esc = html.escape
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "<tr><th>region</th><th>map</th>" + "".join(
        f"<th>{esc(m)} in / out</th>" for m in methods
    )
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["region"], r["map"]), {})[r["method"]] = r
    body = ""
    for (region, map_name), per in cells.items():
        best = min(per.values(), key=lambda r: r["mse_out"])["method"]
        body += f"<tr><td>{esc(region)}</td><td>{esc(map_name)}</td>"
        for m in methods:
            r = per.get(m)
            text = "–" if r is None else f"{1e3 * r['mse_in']:.3g} / {1e3 * r['mse_out']:.3g}"
            body += f"<td>{'<b>' + text + '</b>' if m == best else text}</td>"
        body += "</tr>"
    settings = result["settings"]
    parts = [
        "<h2>LinkGAN against post-hoc local editors</h2>",
        f"<p class='note'>The links on {esc(settings['checkpoint'])}; ReSeFa, StyleSpace, SeFa "
        f"and GANSpace on {esc(settings['posthoc_checkpoint'])}, each at the strength whose RGB "
        f"change inside the region matches the link's ({settings['num']} samples). MSE ×10³ "
        "inside / outside (images in [0, 1], depth and mesh in world units); bold: the least "
        "change outside.</p>",
        f"<table>{head}</tr>{body}</table>",
    ]
    regions = list(dict.fromkeys(r["region"] for r in rows))
    for region in regions:
        parts.append(f"<img src='{esc(folder)}/compare_{esc(region)}.png' alt='compare'>")
    for video in result.get("turntables", {}).values():
        parts.append(
            f"<video src='{esc(folder)}/{esc(video['path'])}' controls autoplay loop muted "
            "playsinline></video>"
        )
    return "".join(parts)


def write_report(
    out: str | Path,
    title: str,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    sections: Sequence[LinkSection],
    samples: str | None = None,
    compare: dict[str, Any] | None = None,
    compare_dir: str | None = None,
) -> Path:
    """Write ``out/index.html`` (atomically) and copy the viewer script beside it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STATIC / "meshview.js", out / "meshview.js")
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1><ul id='errors'></ul>",
        "<table>"
        + "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in summary.items())
        + "</table>",
        "<h2>How local are the edits? (link_mse, images in [0, 1], depth in world units)</h2>",
        _metrics_table(metrics),
        "<p class='note'>edit_in / edit_out: mean squared change inside / outside the link's "
        "region after resampling the link's axes (paper Table 2). rest_in: change inside the "
        "region after resampling all other axes (Table 3). Lower out / in is a tighter link.</p>",
    ]
    if "vs_unlinked" in metrics:
        parts.append(_vs_unlinked_table(metrics["vs_unlinked"], metrics["unlinked"]["kimg"]))
    parts.append(_quality_section(metrics))
    if compare is not None and compare_dir:
        parts.append(_compare_section(compare, compare_dir))
    if samples:
        parts.append(f"<h2>Training samples</h2><img src='{esc(samples)}' alt='samples'>")
    scripts = []
    for s in sections:
        parts.append(f"<h2>Link <code>{esc(s.name)}</code>: w axes {esc(s.axes)}</h2>")
        parts.append(f"<p class='note'>region: {esc(s.region)}</p>")
        for label, video in (
            ("Turntable: the original, then resamples of the link's axes", s.video),
            (
                "Continuous control: the link's axes moving to each resample and back",
                s.interp_video,
            ),
            ("The exported meshes turning (edits above their heat maps)", s.mesh_video),
        ):
            if video:
                parts.append(
                    f"<h3>{esc(label)}</h3><video src='{esc(video)}' controls autoplay loop "
                    "muted playsinline></video>"
                )
        if s.grids:
            parts.append("<h3>Edit grids (rows: RGB, depth, RGB change, depth change)</h3>")
            parts += [f"<img src='{esc(g)}' alt='edit grid'>" for g in s.grids]
        if s.viewers:
            parts.append("<h3>Meshes (drag to turn, wheel to zoom)</h3><div class='viewers'>")
            for label, script in s.viewers:
                name = Path(script).stem.removesuffix(".mesh")
                parts.append(
                    f"<figure><canvas width='280' height='280' data-mesh='{esc(name)}'></canvas>"
                    f"<figcaption>{esc(label)}</figcaption></figure>"
                )
                scripts.append(script)
            parts.append("</div>")
        if s.mesh_change:
            parts.append(
                "<p class='note'>mesh change (mean distance to the original, world units): "
                + "; ".join(
                    f"#{i + 1}: inside {c.get('mean_in', float('nan')):.4f}, "
                    f"outside {c.get('mean_out', float('nan')):.4f}"
                    for i, c in enumerate(s.mesh_change)
                )
                + "</p>"
            )
        if s.downloads:
            parts.append(
                "<p>Files: "
                + ", ".join(f"<a href='{esc(d)}'>{esc(Path(d).name)}</a>" for d in s.downloads)
                + "</p>"
            )
    parts.append("<script src='meshview.js'></script>")
    parts += [f"<script src='{esc(s)}'></script>" for s in scripts]
    parts.append("</body></html>")
    path = out / "index.html"
    tmp = out / f".index.html.tmp-{os.getpid()}"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path
