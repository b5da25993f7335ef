"""Every preset in configs/ trains one step through the real API, shrunk to a tiny CPU model
on the built-in data sets: catches a preset that no longer matches its model, its links or
the loop (its link-loss settings — form, maps, volume term, Adam, shrink — are kept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY, TINY_EG3D

from link_core.train.config import load_config, show_config
from linkgan.api import train

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))

EXTRA_KEPT = (
    "pose_cond",
    "swap_prob",
    "dual_d",
    "sr_noise",
    "plane_axes",
    "clamp_box",
    "density_reg",
    "density_reg_interval",
    "blur_sigma",
    "blur_fade_kimg",
)
"""EG3D options that do not depend on the model's size or the data's cameras: kept from the
preset; sizes come from TINY_EG3D, the camera and rays from the synthetic heads'."""

HEADS_CAMERA = {
    "camera_radius": 2.7,
    "camera_fov_deg": 30.0,
    "camera_pivot": [0.0, 0.0, 0.0],
    "ray_start": 1.9,
    "ray_end": 3.5,
    "box_size": 1.0,
    "pose_mode": "orbit",
}


def _flow(value) -> str:
    return json.dumps(value)  # JSON is YAML: one --set value


def tiny_overrides(path: Path) -> list[str]:
    """``--set`` items that shrink ``path``'s preset to a 16² model trained for one step."""
    cfg = load_config(path)
    sets = [*TINY, "data.path=", "train.init=", "train.kimg=0.004", "train.device=cpu"]
    sets += ["metrics.train_num=4", "link.volume_points=64"]
    if cfg.model.backbone == "eg3d":
        tiny = load_config(None, [*TINY, *TINY_EG3D]).model.extra
        kept = {k: v for k, v in cfg.model.extra.items() if k in EXTRA_KEPT}
        sets += [*TINY_EG3D, "data.synthetic=heads", "data.num_images=16"]
        sets.append(f"model.extra={_flow({**tiny, **HEADS_CAMERA, **kept})}")
    else:
        sets.append("data.synthetic=toyfaces")
    # The preset's links, regions as they are (normalized boxes, object-space 3-D boxes), on
    # two axes each of w's 16.
    links = [{**link, "axes": [2 * i, 2 * i + 2]} for i, link in enumerate(cfg.link.links)]
    sets.append(f"link.links={_flow(links)}")
    return sets


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_preset_trains_one_tiny_step(path, tmp_path):
    sets = tiny_overrides(path)
    cfg = load_config(path, sets)
    preset = load_config(path)
    assert (cfg.link.form, cfg.link.maps, cfg.link.adam) == (
        preset.link.form,
        preset.link.maps,
        preset.link.adam,
    )
    out = tmp_path / "run"
    result = train(out, config=path, overrides=sets, progress=False)
    assert result is not None
    assert (out / "config.yaml").read_text(encoding="utf-8") == show_config(path, sets)
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    keys = set().union(*stats)
    if cfg.link.enabled:
        for link in cfg.link.links:
            for name in cfg.link.maps:
                assert any(k.startswith(f"Loss/link/{link['name']}/{name}/") for k in keys), (
                    link["name"],
                    name,
                    sorted(keys),
                )
            if cfg.link.volume_weight > 0:
                assert f"Loss/link/{link['name']}/volume/out" in keys
