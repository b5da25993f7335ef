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
camera view, for 3-D rows measured with it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

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


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"  # None: no sample of that view saw it


def views_table(result: dict[str, Any]) -> str:
    """The share of each edit's change inside its part by camera view (front / side / back
    of ``link_mse``'s ``edit_share_by_view``) and pooled over views, one row per variant
    that has them (RGB / depth per entry); empty when none has."""
    lines = []
    for name, row in result["variants"].items():
        per = row.get("link_mse", {})
        if not per or not all(
            "edit_share_by_view" in m for maps in per.values() for m in maps.values()
        ):
            continue
        if not lines:
            lines += [
                "| variant (front, side, back, pooled; RGB / depth) | " + " | ".join(per) + " |",
                "|---|" + "---|" * len(per),
            ]
        cells = []
        for maps in per.values():  # one part: {map: link_mse figures}
            views = next(iter(maps.values()))["edit_share_by_view"]
            entries = [[m["edit_share_by_view"][v] for m in maps.values()] for v in views]
            entries.append([m["edit_share_pooled"] for m in maps.values()])
            cells.append(", ".join(" / ".join(map(_share, e)) for e in entries))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _print_tables(result: dict[str, Any]) -> None:
    print(table(result))
    views = views_table(result)
    if views:
        print("\nChange inside by view:\n" + views)


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
    parser.add_argument(
        "--remeasure", action="store_true", help="measure variants the JSON already holds again"
    )
    args = parser.parse_args()
    if args.table:
        _print_tables(json.loads(Path(args.table).read_text(encoding="utf-8")))
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
