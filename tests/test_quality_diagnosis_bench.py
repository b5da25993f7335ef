"""bench/quality_diagnosis.py's tables: what docs/results.md's quality rows are printed with."""

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import pytest  # noqa: E402
from quality_diagnosis import (  # noqa: E402
    escapes_table,
    tradeoff_plot,
    views_table,
    weakest_locality,
)


def _maps(front: float | None, back: float, pooled: float) -> dict:
    view = {"edit_share_by_view": {"front": front, "side": 0.5, "back": back}}
    return {m: {**view, "edit_share_pooled": pooled} for m in ("image", "depth")}


def test_views_table_has_a_row_per_3d_variant_and_skips_the_rest():
    result = {
        "variants": {
            "linked": {"link_mse": {"eyes": _maps(0.95, 0.25, 0.9), "mouth": _maps(None, 0.5, 1)}},
            "older": {"link_mse": {"eyes": {"image": {"edit_share": 0.8}}}},  # no by-view data
            "unlinked": {"fid": 40.0},
        }
    }
    lines = views_table(result).splitlines()
    assert lines[0] == "| variant (front, side, back, pooled; RGB / depth) | eyes | mouth |"
    assert len(lines) == 3  # header, rule, one row
    assert lines[2] == (
        "| linked | 0.95 / 0.95, 0.50 / 0.50, 0.25 / 0.25, 0.90 / 0.90"
        " | – / –, 0.50 / 0.50, 0.50 / 0.50, 1.00 / 1.00 |"
    )
    assert views_table({"variants": {"unlinked": {"fid": 40.0}}}) == ""


def test_escapes_table_lists_the_share_of_edits_mostly_outside_per_part():
    views = {"front": 0.05, "side": 0.1, "back": None}
    esc = {m: {"edit_escapes": 0.05, "edit_escapes_by_view": views} for m in ("image", "depth")}
    flat = {"eyes": {"image": {"edit_escapes": 0.5}}}  # 2-D: no views
    result = {
        "variants": {
            "clip": {"link_mse": {"eyes": esc}},
            "flat": {"link_mse": flat},
            "older": {"link_mse": {"eyes": {}}},
        }
    }
    assert escapes_table(result).splitlines() == [
        "| variant (edits mostly outside: front, side, back, all; RGB / depth) | eyes |",
        "|---|---|",
        "| clip | 5% / 5%, 10% / 10%, – / –, 5% / 5% |",
        "| flat | 50% |",
    ]
    only_2d = {"variants": {"flat": {"link_mse": flat}}}
    assert escapes_table(only_2d).splitlines()[0] == "| variant (edits mostly outside) | eyes |"


def _row(fid: float, local: dict[str, float]) -> dict:
    more = {part: {"image": v, "depth": 2 * v} for part, v in local.items()}
    return {"fid_mean": fid, "fid": fid, "summary": {"more_local": more}}


def test_tradeoff_plot_puts_each_row_at_its_fid_and_weakest_locality():
    result = {
        "variants": {
            "unlinked": {"fid_mean": 40.0, "fid": 40.0},
            "linked_s0": _row(44.0, {"eyes": 300.0, "mouth": 1000.0}),
            "clipped_s0": _row(41.0, {"eyes": 5.0, "mouth": 900.0}),
        }
    }
    assert weakest_locality(result["variants"]["clipped_s0"]) == 5.0
    img = tradeoff_plot(result, ["linked_s0", "clipped_s0"], ["unlinked"], size=(900, 560))
    assert img.shape == (560, 900, 3)
    # x: 70 + 810 * log10(local) / 4; y: 40 + 470 * (hi - fid) / (hi - lo), lo = 38, hi = 48
    for local, fid in ((300.0, 44.0), (5.0, 41.0)):
        x = round(70 + 810 * math.log10(local) / 4)
        y = round(40 + 470 * (48.0 - fid) / 10.0)
        assert img[y, x].tolist() != [255, 255, 255]  # a dot, not the background
    assert (img == 255).all(axis=2).mean() > 0.8  # mostly background
    with pytest.raises(SystemExit, match="no row 'missing'"):
        tradeoff_plot(result, ["missing"], ["unlinked"])
