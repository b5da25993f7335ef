"""docs/results.md's quality tables say what the JSON they cite holds.

Each table whose second column is FID takes its rows from the quality-diagnosis JSON named
last in the prose above it; a row's key (in brackets, ``[`key`]``) must be in that JSON and
its FID (mean ± std) and KID ×10³ must be the stored ones as the bench prints them, so a
rerun merged into the JSON without its row redone (or a row typed by hand) fails here."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSON_NAME = re.compile(r"quality_diagnosis_(2d|3d)\.json")
HEAD = re.compile(r"\| (variant|run) \| FID")
ROW = re.compile(r"\[`([\w.]+)`\] \| ([^|]+) \| ([^|]+) \|")


def _quality_rows() -> list[tuple[str, str, str, str]]:
    """``(json suffix, key, FID cell, KID cell)`` for every keyed row of a FID table."""
    rows, cited, table = [], None, None
    for line in (ROOT / "docs" / "results.md").read_text().splitlines():
        if not line.startswith("|"):
            table = None
            names = JSON_NAME.findall(line)
            cited = names[-1] if names else cited
        elif HEAD.match(line):
            table = cited
        elif table is not None and (m := ROW.search(line)):
            rows.append((table, m.group(1), m.group(2), m.group(3)))
    return rows


def test_quality_tables_print_the_stored_figures():
    rows = _quality_rows()
    stored = {
        s: json.loads((ROOT / f"bench/results/quality_diagnosis_{s}.json").read_text())["variants"]
        for s in ("2d", "3d")
    }
    assert {s for s, *_ in rows} == {"2d", "3d"} and len(rows) > 40
    for suffix, key, fid, kid in rows:
        assert key in stored[suffix], f"docs/results.md row [{key}]: not in the {suffix} JSON"
        r = stored[suffix][key]
        want = f"{r['fid_mean']:.1f} ± {r['fid_std']:.1f}"
        assert fid.replace("*", "").strip() == want, f"[{key}] FID {fid.strip()} != {want}"
        assert kid.replace("*", "").split()[0] == f"{1e3 * r['kid_mean']:.1f}", f"[{key}] KID"
