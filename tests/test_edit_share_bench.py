"""bench/edit_share.py's grids from another yaw: what docs/results.md's behind-the-head maps use."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from edit_share import change_maps_image, grid_shares  # noqa: E402

from link_core.train.config import load_config  # noqa: E402
from linkgan import api  # noqa: E402


def test_grids_from_behind_see_less_of_the_part_and_report_the_opacity():
    G, _ = api.load_generator("base:heads_3d")
    links = api.model_links(load_config(ROOT / "configs" / "quickstart_3d.yaml"))[:1]
    name = links[0].name
    front, _ = grid_shares(G, links, range(1), 2)
    behind, maps = grid_shares(G, links, range(1), 2, yaw_deg=180)
    row_f, row_b = front[name]["0"], behind[name]["0"]
    assert "alpha" not in row_f  # the default camera: no opacity asked for
    assert 0.5 < row_b["alpha"] <= 1.0
    # the eyes' boxes face +z: from behind at most a sliver at the silhouette shows
    assert row_b["region_area"] < 0.25 * row_f["region_area"]
    assert row_b["image_change"] >= 0 and row_f["image_change"] > 0
    picture = change_maps_image({"base": maps}, tile=32, view="180° yaw")
    assert picture.ndim == 3 and picture.shape[-1] == 3
