"""``heads_hd``: the synthetic heads with eye whites, ears and glasses (issue #33, part 1).

Real pytorch3d renders at small sizes: the detail must be where the masks say, the plain
``heads`` must not change (the shipped bases were trained on them), and ``linkgan synth
--sheet`` writes the contact sheet a person checks the parts on.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from link_core.data.cameras import orbit_labels
from link_core.synth import HEAD_PARTS, KINDS, SYNTH_CAMERA, render_views
from link_core.synth.heads import HEAD_HD_ATTRIBUTES
from link_core.synth.render import contact_sheet, item_attributes, item_mesh
from linkgan.cli import main

HD = KINDS["heads_hd"]


def _front(n: int) -> torch.Tensor:
    return orbit_labels(torch.zeros(n), torch.full((n,), math.radians(5.0)), SYNTH_CAMERA)


def test_hd_heads_are_the_heads_with_detail_added():
    assert HD[: len(HEAD_PARTS)] == HEAD_PARTS and set(HD) - set(HEAD_PARTS) == {"ears", "glasses"}
    glasses = 0
    for i in range(200):
        hd = item_attributes("heads_hd", 0, i)
        glasses += hd.pop("glasses") == "round"
        assert hd == item_attributes("heads", 0, i)  # same draws of the shared stream
    assert 0.2 < glasses / 200 < 0.4  # 30 % wear glasses
    assert set(HEAD_HD_ATTRIBUTES) == {*item_attributes("heads_hd", 0, 0)}
    for i in range(4):  # more geometry: white, iris and pupil per eye, ears, maybe glasses
        assert len(item_mesh("heads_hd", 0, i)[1]) > len(item_mesh("heads", 0, i)[1])


def test_hd_renders_show_eye_whites_ears_and_glasses_where_the_masks_say():
    items = list(range(12))
    hd = render_views("heads_hd", 0, items, _front(12), 64)
    plain = render_views("heads", 0, items, _front(12), 64)
    assert int(plain["mask"].max()) < len(HEAD_PARTS)  # the heads keep their ids
    ears, glasses = HD.index("ears"), HD.index("glasses")
    wearing = [i for i in items if item_attributes("heads_hd", 0, i)["glasses"] == "round"]
    assert wearing, "seed 0's first 12 heads include glasses"
    whites = 0
    for k, i in enumerate(items):
        mask = hd["mask"][k, 0]
        assert int((mask == ears).sum()) > 0, f"item {i}: no ear seen from the front"
        assert (int((mask == glasses).sum()) > 0) == (i in wearing), f"item {i}: glasses"
        eye = (mask == HD.index("left_eye")) | (mask == HD.index("right_eye"))
        rgb = hd["image"][k].permute(1, 2, 0)[eye].float()
        whites += bool((rgb.min(dim=1).values > 200).any())  # an eyeball's white pixel
    assert whites >= 10  # nearly every eye shows its white (a few are hidden by rims)


def test_contact_sheet_and_synth_sheet_option(tmp_path, capsys):
    sheet = contact_sheet("heads_hd", range(2), 32, yaws_deg=(0.0, 90.0))
    assert sheet.shape == (2 * 32 + 2, 3 * 32 + 2 * 2, 3) and sheet.dtype == np.uint8
    mask_tile = sheet[:32, 2 * 34 :]
    assert len(np.unique(mask_tile.reshape(-1, 3), axis=0)) >= 5  # background, head, parts
    out, png = tmp_path / "h.zip", tmp_path / "h.png"
    args = ["synth", "--kind", "heads_hd", "--num", "3", "--res", "32", "--out", str(out)]
    assert main([*args, "--sheet", str(png), "--no-progress"]) == 0
    image = cv2.imread(str(png))
    assert image.shape == (3 * 32 + 2 * 2, 5 * 32 + 4 * 2, 3)
    before = png.read_bytes()
    out.unlink()
    capsys.readouterr()
    assert main([*args, "--sheet", str(png), "--no-progress"]) == 2  # never overwrites
    assert "--sheet" in capsys.readouterr().err and png.read_bytes() == before
    assert not out.exists()  # refused before writing anything
    capsys.readouterr()
    jpg = tmp_path / "sheet.jpg"
    assert main([*args, "--sheet", str(jpg), "--no-progress"]) == 2  # a PNG only
    assert "--sheet" in capsys.readouterr().err and not jpg.exists() and not out.exists()
