"""bench/quality_diagnosis.py's tables: what docs/results.md's quality rows are printed with."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from quality_diagnosis import views_table  # noqa: E402


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
