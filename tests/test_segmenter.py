"""Semantic mask providers (issue #6): train a segmenter on synthetic scenes with the CLI,
use it for a semantic link in a tiny EG3D run, and read the link back from `metrics`; the
colour rule; bad provider specs are one-line config errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, TINY_EG3D

from link_core.data import ImageFolderDataset
from link_core.edit.segmenter import (
    build_mask_providers,
    color_provider,
    load_segmenter,
    segmenter_provider,
)
from link_core.errors import ConfigError
from linkgan.cli import main

SCENES_3D = [
    "model.extra.camera_fov_deg=30.0",
    "model.extra.camera_pivot=[0.0, 0.0, 0.0]",
    "model.extra.ray_start=1.9",
    "model.extra.ray_end=3.5",
    "model.extra.pose_mode=orbit",
]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """64 synthetic scenes at 16² with part masks, and a segmenter trained on them."""
    root = tmp_path_factory.mktemp("seg")
    data = root / "scenes.zip"
    args = ["synth", "--kind", "scenes", "--num", "64", "--res", "16", "--out", str(data)]
    assert main([*args, "--no-progress"]) == 0
    seg = root / "seg.pt"
    args = ["train-segmenter", "--data", str(data), "--out", str(seg), "--steps", "150"]
    assert main([*args, "--no-progress"]) == 0
    return data, seg


def test_train_segmenter_learns_the_scene_parts(scenes, capsys):
    data, seg = scenes
    model, classes, res = load_segmenter(seg)
    assert classes == ["sky", "ground", "object"] and res == 16
    ds = ImageFolderDataset(str(data), resolution=16)
    items = [ds[i] for i in range(32)]
    img = torch.stack([it["image"].float() / 127.5 - 1 for it in items])
    truth = torch.stack([it["mask"][0].long() for it in items])
    with torch.no_grad():
        pred = model(img).argmax(1)
    accuracy = float((pred == truth).float().mean())
    assert accuracy > 0.85, accuracy
    # The object provider's mask is high on object pixels and low elsewhere.
    mask = segmenter_provider(model, [2], res)({"image": img})
    obj = truth[:, None] == 2
    assert mask[obj].mean() > 0.6 and mask[~obj].mean() < 0.2

    before = seg.read_bytes()
    capsys.readouterr()
    again = ["train-segmenter", "--data", str(data), "--out", str(seg), "--no-progress"]
    assert main(again) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err and seg.read_bytes() == before


def test_segmenter_drives_a_semantic_link_and_metrics_report_it(scenes, tmp_path):
    data, seg = scenes
    run = tmp_path / "run"
    overrides = [
        *TINY,
        *TINY_EG3D,
        *SCENES_3D,
        f"data.path={data}",
        "train.kimg=0.016",
        "link.links=[{name: obj, axes: [0, 4], region: {mask: obj}}]",
        f"link.masks={{obj: {{segmenter: {seg}, classes: [object]}}}}",
    ]
    assert main(["train", "--out", str(run), "--no-progress", *_sets(overrides)]) == 0
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert any("Loss/link/obj/image/in" in s for s in stats)

    out = tmp_path / "m.json"
    args = ["metrics", "--ckpt", str(run), "--metrics", "link_mse", "--num", "4", "--out"]
    assert main([*args, str(out)]) == 0
    per_map = json.loads(out.read_text())["link_mse"]["obj"]
    assert {"edit_in", "edit_out", "rest_in", "rest_out"} <= set(per_map["image"])


def test_color_provider_is_soft_around_its_colour():
    img = torch.full((1, 3, 4, 4), -1.0)  # black
    img[..., :2] = 1.0  # left half white
    mask = color_provider([1.0, 1.0, 1.0], 0.2)({"image": img})
    assert mask.shape == (1, 1, 4, 4)
    assert torch.all(mask[..., :2] == 1) and torch.all(mask[..., 2:] == 0)
    near = torch.full((1, 3, 1, 1), 1.0 - 2 * 0.25)  # distance 0.25*sqrt(3) in [0, 1] units
    m = color_provider([1.0, 1.0, 1.0], 0.3)({"image": near})
    assert 0 < float(m) < 1


def test_bad_provider_specs_are_config_errors(scenes, tmp_path):
    _, seg = scenes
    with pytest.raises(ConfigError, match=r"link.masks.obj.classes: unknown class 'tree'"):
        build_mask_providers({"obj": {"segmenter": str(seg), "classes": ["tree"]}})
    with pytest.raises(ConfigError, match=r"link.masks.obj.segmenter: .* does not exist"):
        build_mask_providers({"obj": {"segmenter": str(tmp_path / "no.pt"), "classes": [1]}})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="is not a TorchScript model"):
        build_mask_providers({"obj": {"segmenter": str(bad), "classes": [1]}})
    with pytest.raises(ConfigError, match=r"link.masks.sky: expected 'segmenter' or 'color'"):
        build_mask_providers({"sky": {"colour": [0, 0, 1]}})
