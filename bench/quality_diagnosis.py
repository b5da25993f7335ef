"""Which choice carries linking's quality cost? Fine-tune variants of a preset on the same
base and budget, one change each, and measure every one the same way: FID and KID with their
noise (repeats on disjoint fakes), per-part locality against the unlinked fine-tune, the share
of each edit's change inside its part, each part's diversity, and attribute frequencies.

    python bench/quality_diagnosis.py --config configs/quickstart_3d.yaml --kimg 9 \
        --runs DIR --variant unlinked:link.enabled=false --variant preset: \
        --variant axes1:link.init_axes_scale=1.0 --out bench/results/quality_diagnosis.json

A variant is ``NAME:KEY=VALUE,KEY=VALUE`` (empty after the colon: the preset as it is);
``NAME=PATH`` measures an existing run or checkpoint instead of training (e.g.
``shipped=base:heads_3d_links``). Runs go to ``DIR/NAME`` and are kept; a finished run is
measured, not retrained, and a variant the JSON already holds is kept (``--remeasure``).
The variant named ``unlinked`` (required) is the reference for locality and diversity.
``--table`` prints the Markdown tables of an existing JSON (the second: the share inside by
camera view, for 3-D rows measured with it); with ``--plot F.png --plot-rows A,B,…
--plot-ref U1,U2,…`` it also draws those rows' FID against their weakest part's locality,
with the unlinked rows' mean FID and the targets (1.05×, 1.15×, 100×) as lines.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from link_core.metrics import compare_to_unlinked
from linkgan import api
from linkgan.model import Model
from linkgan.part_quality import ATTRIBUTE_KINDS


def _parse_variant(text: str) -> tuple[str, list[str] | str]:
    if "=" in text.split(":", 1)[0]:  # NAME=PATH: an existing model
        name, path = text.split("=", 1)
        return name, path
    name, _, sets = text.partition(":")
    return name, [s for s in sets.split(",") if s]


def _measure(model: Model, num_fid: int, repeats: int, num_link: int) -> dict[str, Any]:
    quality = model.measure(["fid", "kid"], num=num_fid, progress=False, repeats=repeats)
    keep = ("fid", "kid", "fid_mean", "fid_std", "kid_mean", "kid_std", "fid_runs", "kid_runs")
    row: dict[str, Any] = {k: quality[k] for k in keep if k in quality}
    row["protocol"] = quality["protocol"]["summary"]
    row["link_mse"] = model.measure(["link_mse"], num=num_link, progress=False)["link_mse"]
    row["diversity"] = model.measure(["diversity"], num=256, progress=False)["diversity"]
    if not model.config.data.path and model.config.data.synthetic in ATTRIBUTE_KINDS:
        row["attributes"] = model.measure(["attributes"], num=1024, progress=False)["attributes"]
    return row


def _summary(row: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Locality (more local: unlinked out/in ÷ linked out/in), change inside and diversity
    kept (linked ÷ unlinked), per part and map."""
    vs = compare_to_unlinked(row["link_mse"], ref["link_mse"])
    div, ref_div = row["diversity"]["model"], ref["diversity"]["model"]
    return {
        "more_local": vs["out_over_in_ratio_off_vs_on"],
        "change_inside": {
            k: {m: v["edit_share"] for m, v in per.items()} for k, per in row["link_mse"].items()
        },
        "diversity_kept": {
            k: {m: div[k][m] / max(ref_div[k][m], 1e-12) for m in per} for k, per in div.items()
        },
    }


def _fmt_parts(per: dict[str, dict[str, float]], fmt: str) -> str:
    return ", ".join(" / ".join(format(v, fmt) for v in maps.values()) for maps in per.values())


def table(result: dict[str, Any]) -> str:
    """One Markdown row per variant (parts in link order, RGB / depth)."""
    head = (
        "| variant | FID (± std) | KID ×10³ (± std) | more local | change inside |"
        " diversity kept | attributes: worst, hat |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, row in result["variants"].items():
        fid = f"{row.get('fid_mean', row['fid']):.1f} ± {row.get('fid_std', math.nan):.1f}"
        kid_mean, kid_std = row.get("kid_mean", row["kid"]), row.get("kid_std", math.nan)
        kid = f"{1e3 * kid_mean:.1f} ± {1e3 * kid_std:.1f}"
        s = row.get("summary")
        local = _fmt_parts(s["more_local"], ".0f") + "×" if s else "–"
        inside = _fmt_parts(s["change_inside"], ".2f") if s else "–"
        kept = _fmt_parts(s["diversity_kept"], ".2f") if s else "–"
        attrs = row.get("attributes")
        worst = "–"
        if attrs:
            w = attrs["worst"]
            worst = f"{w['attribute']} {w['value']} {w['ratio']:.2f}"
            if "hair" in attrs["ratio"]:
                worst += f", hat {attrs['ratio']['hair']['hat']:.2f}"
        lines.append(f"| {name} | {fid} | {kid} | {local} | {inside} | {kept} | {worst} |")
    return "\n".join(lines)


def _share(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)  # None: no sample of that view saw it


def _parts_table(
    result: dict[str, Any], head: str, key: str, cell: Callable[[dict[str, Any]], str]
) -> str:
    """One row per variant whose ``link_mse`` has ``key`` for every part and map, one column
    per part (``cell`` of its ``{map: figures}``); empty when no variant has it."""
    lines = []
    for name, row in result["variants"].items():
        per = row.get("link_mse", {})
        if not per or not all(
            maps and all(key in m for m in maps.values()) for maps in per.values()
        ):
            continue
        if not lines:
            lines += [f"| {head} | " + " | ".join(per) + " |", "|---|" + "---|" * len(per)]
        lines.append(f"| {name} | " + " | ".join(cell(maps) for maps in per.values()) + " |")
    return "\n".join(lines)


def _views_cell(maps: dict[str, Any]) -> str:
    views = next(iter(maps.values()))["edit_share_by_view"]
    entries = [[m["edit_share_by_view"][v] for m in maps.values()] for v in views]
    entries.append([m["edit_share_pooled"] for m in maps.values()])
    return ", ".join(" / ".join(map(_share, e)) for e in entries)


def views_table(result: dict[str, Any]) -> str:
    """The share of each edit's change inside its part by camera view (front / side / back
    of ``link_mse``'s ``edit_share_by_view``) and pooled over views, one row per variant
    that has them (RGB / depth per entry); empty when none has."""
    head = "variant (front, side, back, pooled; RGB / depth)"
    return _parts_table(result, head, "edit_share_by_view", _views_cell)


def _escapes_cell(maps: dict[str, Any]) -> str:
    views = next(iter(maps.values())).get("edit_escapes_by_view", {})
    entries = [[m["edit_escapes_by_view"][v] for m in maps.values()] for v in views]
    entries.append([m["edit_escapes"] for m in maps.values()])
    return ", ".join(" / ".join(_share(v, ".0%") for v in e) for e in entries)


def escapes_table(result: dict[str, Any]) -> str:
    """The share of each part's edits that change mostly something else (``link_mse``'s
    ``edit_escapes``) by camera view where measured, then over all views (RGB / depth),
    one row per variant that has it; empty when none has. The head names views and depth
    only when some row has them (a 2-D result has one figure per part)."""
    by_view = any(
        "edit_escapes_by_view" in m
        for row in result["variants"].values()
        for maps in row.get("link_mse", {}).values()
        for m in maps.values()
    )
    head = "variant (edits mostly outside" + (
        ": front, side, back, all; RGB / depth)" if by_view else ")"
    )
    return _parts_table(result, head, "edit_escapes", _escapes_cell)


def weakest_locality(row: dict[str, Any]) -> float:
    """The least ``more local`` factor of a row over its parts and maps (RGB, depth)."""
    return min(v for per in row["summary"]["more_local"].values() for v in per.values())


def _group(name: str) -> str:
    """A row's setting without its seed or run suffix (``cool5_s2`` → ``cool5``)."""
    return re.sub(r"_(s\d+\w*|demo)$", "", name)


def tradeoff_plot(
    result: dict[str, Any], rows: list[str], ref: list[str], size: tuple[int, int] = (900, 560)
) -> np.ndarray:
    """``[H, W, 3]`` uint8 BGR: each of ``rows`` as a dot at (its weakest part's locality, log
    scale; its mean FID), coloured by setting, with the mean FID of the ``ref`` (unlinked)
    rows and 1.05× / 1.15× of it as horizontal lines and 100× as a vertical one."""
    import cv2

    variants = result["variants"]
    missing = [n for n in [*rows, *ref] if n not in variants]
    if missing:
        raise SystemExit(f"error: --plot: no row {missing[0]!r} in the JSON")
    fid = {n: variants[n].get("fid_mean", variants[n]["fid"]) for n in [*rows, *ref]}
    base = sum(fid[n] for n in ref) / len(ref)
    w, h = size
    left, right, top, bottom = 70, 20, 40, 50
    lo, hi = min([*map(fid.get, rows), base]) - 2, max([*map(fid.get, rows), 1.15 * base]) + 2

    def xy(local: float, value: float) -> tuple[int, int]:
        x = left + (w - left - right) * min(max(math.log10(max(local, 1.0)), 0.0), 4.0) / 4.0
        y = top + (h - top - bottom) * (hi - value) / (hi - lo)
        return int(round(x)), int(round(y))

    img = np.full((h, w, 3), 255, np.uint8)
    font, grey = cv2.FONT_HERSHEY_SIMPLEX, (120, 120, 120)
    for decade in range(5):
        x, _ = xy(10.0**decade, lo)
        cv2.line(img, (x, top), (x, h - bottom), (225, 225, 225), 1)
        label = f"{10**decade}x"
        shift = 12 if decade < 4 else 50  # the last label ends at the right edge
        cv2.putText(img, label, (x - shift, h - bottom + 18), font, 0.45, grey, 1)
    for value in range(math.ceil(lo), math.floor(hi) + 1, 2):
        _, y = xy(1.0, value)
        cv2.putText(img, f"{value}", (left - 30, y + 4), font, 0.45, grey, 1)
    for factor, colour, label in (
        (1.0, grey, "unlinked"),
        (1.05, (60, 160, 60), "1.05x"),
        (1.15, (0, 140, 255), "1.15x"),
    ):
        _, y = xy(1.0, factor * base)
        cv2.line(img, (left, y), (w - right, y), colour, 1)
        cv2.putText(
            img, f"{label} {factor * base:.1f}", (w - right - 130, y - 4), font, 0.45, colour, 1
        )
    x100, _ = xy(100.0, lo)
    cv2.line(img, (x100, top), (x100, h - bottom), (0, 140, 255), 1)
    groups = list(dict.fromkeys(_group(n) for n in rows))
    levels = np.linspace(0, 255, len(groups)).astype(np.uint8)[None]  # one colour per setting
    palette = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)[0].tolist()
    for n in rows:
        colour = tuple(palette[groups.index(_group(n))])
        x, y = xy(weakest_locality(variants[n]), fid[n])
        cv2.circle(img, (x, y), 6, colour, -1)
        cv2.putText(img, n, (x + 8, y + 4), font, 0.4, colour, 1)
    cv2.putText(
        img,
        "FID (500 fakes, mean of 3) vs the weakest part's locality (x more local than unlinked)",
        (left, 24),
        font,
        0.5,
        (40, 40, 40),
        1,
    )
    return img


def _print_tables(result: dict[str, Any]) -> None:
    print(table(result))
    views = views_table(result)
    if views:
        print("\nChange inside by view:\n" + views)
    escapes = escapes_table(result)
    if escapes:
        print("\nEdits that escape their part:\n" + escapes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart_3d.yaml")
    parser.add_argument("--kimg", type=float, default=9.0)
    parser.add_argument("--runs", default="runs/quality_diagnosis")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--fid-num", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num", type=int, default=128, help="link_mse seeds")
    parser.add_argument("--out", default="bench/results/quality_diagnosis.json")
    parser.add_argument("--table", default="", help="print the table of this JSON and stop")
    parser.add_argument("--plot", default="", help="with --table: draw FID vs locality here")
    parser.add_argument("--plot-rows", default="", help="rows to plot, comma-separated")
    parser.add_argument("--plot-ref", default="", help="unlinked rows whose mean FID is 1x")
    parser.add_argument(
        "--remeasure", action="store_true", help="measure variants the JSON already holds again"
    )
    args = parser.parse_args()
    if args.plot and not args.table:
        parser.error("--plot draws the rows of a measured JSON: give it with --table")
    if args.table:
        result = json.loads(Path(args.table).read_text(encoding="utf-8"))
        _print_tables(result)
        if args.plot:
            import cv2

            rows, ref = args.plot_rows.split(","), args.plot_ref.split(",")
            cv2.imwrite(args.plot, tradeoff_plot(result, rows, ref))
        return
    variants = dict(_parse_variant(v) for v in args.variant)
    if "unlinked" not in variants:
        parser.error("--variant unlinked:link.enabled=false (or unlinked=PATH) is required")
    out = Path(args.out)
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    result.update(config=args.config, kimg=args.kimg, overrides=args.overrides)
    result.setdefault("variants", {})
    for name, spec in variants.items():
        if name in result["variants"] and not args.remeasure:
            continue  # measured before (same --out): kept
        started = time.monotonic()
        if isinstance(spec, str):
            model = Model.load(spec)
        else:
            run = Path(args.runs) / name
            sets = [*args.overrides, *spec, f"train.kimg={args.kimg}", "train.minutes=0"]
            if not (run / "model.safetensors").exists():
                api.train(run, args.config, sets, progress=True)
            model = Model.load(run)
        row = {"source": str(spec), **_measure(model, args.fid_num, args.repeats, args.num)}
        row["measure_minutes"] = round((time.monotonic() - started) / 60, 1)
        result["variants"][name] = row
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")  # after every variant
        print(f"[diagnosis] {name}: FID {row.get('fid_mean', row['fid']):.2f}", flush=True)
    ref = result["variants"]["unlinked"]
    for row in result["variants"].values():
        if row is not ref:
            row["summary"] = _summary(row, ref)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    _print_tables(result)


if __name__ == "__main__":
    main()
