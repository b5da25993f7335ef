"""Config loading: presets parse and compose (``extends``), overrides are YAML, unknown keys are
named, old keys migrate, and docs/configs.md matches the field docs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from link_core.errors import ConfigError
from link_core.link import build_links, overlapping_regions
from link_core.train import config_io
from link_core.train.config import (
    Moved,
    Removed,
    config_from_dict,
    config_to_dict,
    load_config,
    show_config,
)

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
EXTENDED = {
    (p.parent / yaml.safe_load(p.read_text())["extends"]).resolve()
    for p in CONFIGS
    if "extends" in (yaml.safe_load(p.read_text()) or {})
}
"""Presets other presets extend (``finetune_stylegan2.yaml``, ``finetune_eg3d.yaml``)."""
SCRATCH = {"stylegan2_256.yaml", "eg3d_ffhq512.yaml"}
"""Paper-scale configs that train the unlinked generator from scratch (no links)."""
NVIDIA_W_DIM = 512
"""w width of NVIDIA's snapshots, which the paper-scale fine-tune presets start from."""


def _fine_tunes_a_file(cfg) -> bool:
    """A preset whose model comes from weights outside the repository (an imported snapshot)."""
    return bool(cfg.train.init) and not cfg.train.init.startswith("base:")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_preset_loads_and_its_links_are_valid(path):
    cfg = load_config(path)
    w_dim = NVIDIA_W_DIM if _fine_tunes_a_file(cfg) else cfg.model.w_dim
    links = build_links(cfg.link.links, w_dim)
    assert overlapping_regions(links) == []  # overlapping links hold each other still
    if path.stem.startswith("base_"):  # base generators train without links (issue #8)
        assert not cfg.link.enabled and not links
    elif path.resolve() in EXTENDED or path.name in SCRATCH:  # shared settings / unlinked
        assert not links
    else:
        assert links, f"{path.name} defines no link"


def test_fine_tune_presets_name_no_architecture():
    """A preset that fine-tunes imported weights names only what it changes: its model
    section holds only keys free on a fine-tune (the rest comes from the weights)."""
    from eg3d_link.options import FINETUNE_FREE
    from link_core.train.config_io import read_preset
    from link_core.train.init_config import FREE_MODEL_KEYS

    tuned = [p for p in CONFIGS if _fine_tunes_a_file(load_config(p))]
    assert {p.stem for p in tuned} >= {"ffhq256_eyes", "eg3d_ffhq512_eyes", "eg3d_ffhq512_nose"}
    for path in tuned:
        model = read_preset(path).get("model", {})
        extra = set(model.pop("extra", {}))
        assert set(model) <= {*FREE_MODEL_KEYS, "backbone"}, path.name
        assert extra <= FINETUNE_FREE, path.name


def test_shared_bases_are_extended():
    assert {p.name for p in EXTENDED} >= {"finetune_stylegan2.yaml", "finetune_eg3d.yaml"}
    for part in ("eyes", "nose", "mouth"):
        text = (ROOT / "configs" / f"eg3d_ffhq512_{part}.yaml").read_text()
        assert "extends: finetune_eg3d.yaml" in text and len(text.splitlines()) <= 10


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    _write(
        tmp_path / "bases/root.yaml",
        "model: {w_dim: 32, z_dim: 32}\n"
        "link:\n  links: [{name: a, axes: [0, 4], region: {box: [0, 0, 0.5, 0.5]}}]\n"
        "  maps: {image: 1.0, image_depth: 2.0}\n  alpha: 0.5\n",
    )
    _write(tmp_path / "bases/mid.yaml", "extends: root.yaml\nmodel: {z_dim: 16}\n")
    child = _write(
        tmp_path / "child.yaml",
        "extends: bases/mid.yaml\n"
        "link:\n  links: [{name: b, axes: [4, 8], region: {box: [0.5, 0.5, 1, 1]}}]\n"
        "  maps: {image: 3.0}\n",
    )
    cfg = load_config(child, ["link.alpha=2"])
    assert (cfg.model.w_dim, cfg.model.z_dim) == (32, 16)  # the chain, key by key
    assert [link["name"] for link in cfg.link.links] == ["b"]  # lists replace
    assert cfg.link.maps == {"image": 3.0, "image_depth": 2.0}  # mappings merge
    assert cfg.link.alpha == 2.0  # --set applies last


def test_extends_errors_name_the_file(tmp_path):
    a = _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="a.yaml: 'extends' makes a cycle"):
        load_config(a)
    lost = _write(tmp_path / "lost.yaml", "extends: nowhere/base.yaml\n")
    with pytest.raises(ConfigError, match=r"lost.yaml: extends: file not found: .*nowhere"):
        load_config(lost)
    bad = _write(tmp_path / "bad.yaml", "extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="bad.yaml: extends: expected a file name"):
        load_config(bad)
    # unknown keys are still named with their path, from the child and from the parent
    _write(tmp_path / "base.yaml", "train: {batchh: 3}\n")
    child = _write(tmp_path / "child.yaml", "extends: base.yaml\nlink: {lamda_in: 1}\n")
    with pytest.raises(ConfigError, match="unknown config key 'train.batchh'"):
        load_config(child)
    with pytest.raises(ConfigError, match="unknown config key 'link.lamda_in'"):
        load_config(child, ["train={}"])


@pytest.mark.parametrize("path", [None, *CONFIGS[:3]], ids=str)
def test_show_config_is_the_runs_config_yaml(path):
    text = show_config(path, ["train.kimg=3"])
    cfg = load_config(path, ["train.kimg=3"])
    assert text == yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    assert config_from_dict(yaml.safe_load(text)) == cfg


@pytest.fixture
def migrations(monkeypatch):
    table = (
        Moved("link.old_alpha", "link.alpha"),
        Moved("old_section.interval", "link.interval"),
        Removed("link.gone", 3, "its variant was measured and dropped"),
    )
    monkeypatch.setattr(config_io, "MIGRATIONS", table)
    return table


def test_migration_moves_keys_and_drops_removed_defaults(migrations):
    stored = {"link": {"old_alpha": 0.25, "gone": 3}, "old_section": {"interval": 4}}
    cfg = config_from_dict(stored)
    assert (cfg.link.alpha, cfg.link.interval) == (0.25, 4)
    assert stored == {"link": {"old_alpha": 0.25, "gone": 3}, "old_section": {"interval": 4}}
    assert load_config(None, ["link.old_alpha=0.5", "link.gone=3"]).link.alpha == 0.5
    assert config_from_dict({"link": {"old_alpha": 0.5, "alpha": 0.5}}).link.alpha == 0.5


def test_migration_refuses_removed_values_and_clashing_moves(migrations):
    with pytest.raises(ConfigError, match=r"'link.gone' was removed \(its variant.*docs/results"):
        config_from_dict({"link": {"gone": 5}})
    with pytest.raises(ConfigError, match="'link.old_alpha' moved to 'link.alpha', and both"):
        config_from_dict({"link": {"old_alpha": 0.5, "alpha": 2.0}})


def _assets():
    from link_core.weights import checkpoint as ckpt

    files = sorted((ROOT / "assets").glob("*.safetensors"))
    assert files
    return [(f, ckpt.read_file(f, prefixes=())[1]["config"]) for f in files]


def test_shipped_models_load_with_or_without_link_perturb():
    """Models published while ``link.perturb`` was a removed key stored it as its default
    ``gaussian`` or not at all: both load to the same model (as do those that store
    ``resample``), and a value that is neither mode is refused."""
    for f, stored in _assets():
        old = {**stored, "link": {**stored["link"], "perturb": "gaussian"}}
        for data in (stored, old):
            cfg = config_from_dict(data)
            assert cfg.model == config_from_dict({"model": stored["model"]}).model, f
            assert cfg.link.perturb == data["link"].get("perturb", "gaussian"), f
    assert config_from_dict({"link": {"perturb": "resample"}}).link.perturb == "resample"
    with pytest.raises(ConfigError, match="link.perturb: expected 'gaussian' or 'resample'"):
        config_from_dict({"link": {"perturb": "swap"}})


def test_docs_configs_md_is_generated_from_the_field_docs():
    from link_core.train.config_docs import config_markdown, config_sections

    for key, cls in config_sections():
        if not key.startswith("model.extra"):  # eg3d_link/options.py is documented there
            assert cls.doc, f"section {key} has no docstring"
            missing = [f.name for f in cls.fields if not f.doc]
            assert not missing, f"link_core/train/config.py: {key}.{missing} have no docstring"
    docs = ROOT / "docs" / "configs.md"
    assert docs.is_file() and docs.read_text(encoding="utf-8") == config_markdown(), (
        "docs/configs.md is out of date with the config field docs: run `make docs`"
    )


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
        (["link.perturb=swap"], "link.perturb: expected 'gaussian' or 'resample'"),
        (["link.adam=separate"], "link.adam: expected 'shared', 'own' or 'precond'"),
        (["link.lr_gain=0"], "link.lr_gain: expected a number > 0"),
        (["link.precond_clip=0"], "link.precond_clip: expected a number > 0"),
        (["link.precond_clip_end=-1"], "link.precond_clip_end: expected a number >= 0"),
        (["link.lr_gain_end=-1"], "link.lr_gain_end: expected a number >= 0"),
        (["link.until=0"], "link.until: expected a share of the budget"),
        (["link.adv_adam=d"], "link.adv_adam: expected 'link' or 'g'"),
        (["link.precond_clip=2"], r"link.precond_clip: only read with link.adam: precond \(got"),
        (["link.adam=own", "link.precond_clip_end=2"], "link.precond_clip_end: only read with"),
        (["link.lr_gain=2"], "link.lr_gain: only read with link.adam: own or precond"),
        (["link.lr_gain_end=0.5"], "link.lr_gain_end: only read with"),
        (["link.adv_adam=g"], "link.adv_adam: only read with"),
        (["link.margin=1"], "link.margin: expected a share in"),
        (["link.margin=0.1", "link.form=absolute"], "link.margin: needs a share form"),
        (["link.mix=1.5", "link.form=share_mixed"], r"link.mix: expected a weight in \[0, 1\]"),
        (["link.mix=0.75", "link.form=share"], "link.mix: only read with link.form: share_mixed"),
        (["link.volume_around=-0.1"], "link.volume_around / volume_points: expected"),
        (["link.volume_points=1"], "link.volume_around / volume_points: expected"),
        (["novalue"], "expected key=value"),
    ],
)
def test_bad_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_link_optimizer_options_load_under_the_modes_that_read_them():
    """The own-optimizer options are refused only where ``link.adam`` ignores them."""
    sets = ["link.precond_clip=2", "link.precond_clip_end=1", "link.lr_gain_end=0.5"]
    cfg = load_config(None, ["link.adam=precond", *sets, "link.adv_adam=g"])
    assert (cfg.link.precond_clip, cfg.link.precond_clip_end, cfg.link.adv_adam) == (2, 1, "g")
    assert load_config(None, ["link.adam=own", "link.lr_gain=3"]).link.lr_gain == 3
    assert load_config(None, ["link.form=share_mixed", "link.mix=0.75"]).link.mix == 0.75


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_presets_that_fine_tune_a_shipped_base_match_it(path):
    """`train.init: base:NAME` presets (the demo's) need assets/NAME.safetensors, whose model
    the preset agrees with (a fine-tune takes its model from the weights), and its card."""
    import json

    from link_core.train.config import config_from_dict
    from link_core.weights import checkpoint as ckpt
    from linkgan.build import resolve_config

    if not load_config(path).train.init.startswith("base:"):
        return
    cfg, init = resolve_config(path)
    name = cfg.train.init[5:]
    assets = Path(__file__).parent.parent / "assets"
    _, meta = ckpt.read_file(assets / f"{name}.safetensors", prefixes=())
    assert init is not None and init.weights == assets / f"{name}.safetensors"
    weights_model = config_to_dict(config_from_dict(meta["config"]))["model"]
    assert weights_model == config_to_dict(cfg)["model"]
    card = json.loads((assets / f"{name}.json").read_text())
    assert card["name"] == name and card["kimg"] > 0 and card["command"]


def test_exponent_floats_without_a_dot_are_numbers():
    """YAML 1.1 reads ``1e-3`` as a string; numeric fields take it as the number it is."""
    cfg = load_config(None, ["train.lr_g=1e-3", "train.lr_d=2E+2", "link.alpha=.5e1"])
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.link.alpha) == (1e-3, 200.0, 5.0)
    with pytest.raises(ConfigError, match="train.lr_g: expected a number, got '1e'"):
        load_config(None, ["train.lr_g=1e"])
