"""Config loading: presets parse, overrides are YAML, unknown keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from link_core.errors import ConfigError
from link_core.link import build_links, overlapping_regions
from link_core.train.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_preset_loads_and_its_links_are_valid(path):
    cfg = load_config(path)
    links = build_links(cfg.link.links, cfg.model.w_dim)
    assert overlapping_regions(links) == []  # overlapping links hold each other still
    if path.stem.startswith("base_"):  # base generators train without links (issue #8)
        assert not cfg.link.enabled and not links
    else:
        assert links, f"{path.name} defines no link"


def test_contract_keys_exist_and_overrides_parse_as_yaml():
    cfg = load_config(
        None,
        [
            "data.path=",
            "train.minutes=6",
            "train.kimg=2",
            "link.enabled=false",
            "link.alpha=0.5",
            "link.lambda_in=2",
            "link.lambda_out=4",
            "link.interval=4",
            "link.feed_d=false",
            "link.links=[{name: eyes, axes: [0, 64], region: {box: [0.25, 0.3, 0.75, 0.5]}}]",
        ],
    )
    assert cfg.train.minutes == 6.0 and cfg.link.enabled is False and cfg.link.interval == 4
    assert cfg.link.lambda_out == 4.0 and cfg.link.links[0]["region"]["box"][3] == 0.5


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["link.lamda_in=2"], "unknown config key 'link.lamda_in'"),
        (["nonsense.x=1"], "unknown config key 'nonsense'"),
        (["train.batch=abc"], "train.batch: expected an integer"),
        (["link.enabled=3"], "link.enabled: expected true/false"),
        (["model.resolution=48", "data.resolution=48"], "not a power of two"),
        (["data.resolution=64"], "differs from model.resolution"),
        (["train.kimg=-1"], "train.kimg: must be >= 0"),
        (["link.perturb=swap"], "link.perturb: expected gaussian or resample"),
        (["link.adam=separate"], "link.adam: expected 'shared' or 'own'"),
        (["link.lr_gain=0"], "link.lr_gain: expected a number > 0"),
        (["link.volume_around=-0.1"], "link.volume_around / volume_points: expected"),
        (["link.volume_points=1"], "link.volume_around / volume_points: expected"),
        (["novalue"], "expected key=value"),
    ],
)
def test_bad_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_presets_that_fine_tune_a_shipped_base_match_it(path):
    """`train.init: base:NAME` presets (the demo's) need assets/NAME.safetensors with the
    same model section, and its card."""
    import json

    from link_core.train.config import config_to_dict
    from link_core.weights import checkpoint as ckpt

    cfg = load_config(path)
    if not cfg.train.init.startswith("base:"):
        return
    name = cfg.train.init[5:]
    assets = Path(__file__).parent.parent / "assets"
    _, meta = ckpt.read_file(assets / f"{name}.safetensors", prefixes=())
    assert meta["config"]["model"] == config_to_dict(cfg)["model"]
    card = json.loads((assets / f"{name}.json").read_text())
    assert card["name"] == name and card["kimg"] > 0 and card["command"]


def test_exponent_floats_without_a_dot_are_numbers():
    """YAML 1.1 reads ``1e-3`` as a string; numeric fields take it as the number it is."""
    cfg = load_config(None, ["train.lr_g=1e-3", "train.lr_d=2E+2", "link.alpha=.5e1"])
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.link.alpha) == (1e-3, 200.0, 5.0)
    with pytest.raises(ConfigError, match="train.lr_g: expected a number, got '1e'"):
        load_config(None, ["train.lr_g=1e"])
