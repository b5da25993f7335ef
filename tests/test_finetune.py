"""Fine-tuning (``train.init``): the model comes from the weights, a preset may change only the
keys free on a fine-tune, and the kimg schedules continue where the weights left them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import HEADS_3D

from link_core.data.write import write_dataset_zip
from link_core.errors import ConfigError
from link_core.synth import SynthDataset, ToyFaces
from link_core.train.config import load_config
from link_core.train.init_config import init_model_config
from link_core.weights import checkpoint as ckpt
from linkgan import api
from linkgan.build import resolve_config
from linkgan.cli import main

WEIGHTS_MODEL = {
    "backbone": "eg3d",
    "resolution": 64,
    "w_dim": 32,
    "style_init": 1.0,
    "extra": {"plane_axes": "xy-xz-zx", "render_resolution": 32},
}
EXTRA_DEFAULTS = {"plane_axes": "xy-xz-zy", "render_resolution": 32, "clamp_box": True}
FREE = {"render_resolution"}
ROOT = Path(__file__).resolve().parent.parent
NVIDIA_W = 512  # the w width the paper presets' axes are written for


def _resolve(given: dict, from_set: dict | None = None):
    return init_model_config(
        given, from_set or {}, WEIGHTS_MODEL, FREE, EXTRA_DEFAULTS, "nv.safetensors"
    )


def test_the_model_comes_from_the_weights_and_free_keys_from_the_preset():
    model, origin = _resolve(
        {"style_init": 0.1, "extra": {"render_resolution": 64}},
        {"extra": {"render_resolution": 64}},
    )
    assert model["w_dim"] == 32 and model["extra"]["plane_axes"] == "xy-xz-zx"
    assert model["style_init"] == 0.1 and model["extra"]["render_resolution"] == 64
    assert origin["w_dim"] == "checkpoint" and origin["style_init"] == "preset"
    assert origin["extra.render_resolution"] == "--set"
    assert origin["d_mapping_layers"] == "default"  # newer than the weights' config
    # An architecture key the preset repeats with the weights' value (10 == 10.0) is fine,
    # also when the weights' stored extra leaves it at its default.
    model, _ = _resolve({"resolution": 64.0, "extra": {"clamp_box": True}})
    assert model["resolution"] == 64.0 and "clamp_box" not in model["extra"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"w_dim": 64},
            "model.w_dim: the preset says 64, but the weights in nv.safetensors "
            "were trained with 32",
        ),
        ({"extra": {"plane_axes": "xy-xz-zy"}}, "model.extra.plane_axes: the preset says"),
        ({"extra": {"clamp_box": False}}, "with True"),  # the default the weights kept
        ({"extra": {"no_such": 1}}, "model.extra.no_such: unknown for this backbone"),
    ],
)
def test_a_contradicting_architecture_key_is_one_line_naming_both_values(given, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as e:
        _resolve(given)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def scheduled_base(tmp_path_factory):
    """A tiny EG3D trained 8 images into a rendering-resolution fade (8 -> 16 over 16
    images) and a D blur fade (σ 4 -> 0 over 16 images)."""
    run = tmp_path_factory.mktemp("sched") / "base"
    sets = [
        *HEADS_3D,
        "model.extra.render_resolution_final=16",
        "model.extra.render_resolution_fade_kimg=0.016",
        "model.extra.blur_sigma=4.0",
        "model.extra.blur_fade_kimg=0.016",
        "train.kimg=0.008",
        "link.enabled=false",
    ]
    api.train(run, None, sets, progress=False)
    return run, sets


def _first_row(run) -> dict:
    return json.loads((run / "stats.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize(
    ("start", "kimg", "res", "blur"), [("checkpoint", 0.008, 12, 2.0), ("zero", 0.0, 8, 4.0)]
)
def test_a_fine_tune_continues_the_schedules_of_its_weights(
    scheduled_base, tmp_path, start, kimg, res, blur
):
    base, sets = scheduled_base
    run = tmp_path / "ft"
    ft = [*sets, f"train.init={base}", "train.kimg=0.004", f"train.schedule_start={start}"]
    api.train(run, None, ft, progress=False)
    row = _first_row(run)  # what the first step followed
    assert row["kimg"] == 0 and row["Schedule/kimg"] == pytest.approx(kimg)
    assert row["Schedule/render_resolution"] == res and row["Schedule/blur_sigma"] == blur
    # The offset is a counter: a resume keeps it, and images seen count this run only.
    _, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1], prefixes=())
    assert meta["counters"]["kimg_offset"] == pytest.approx(kimg)
    assert meta["counters"]["images_seen"] == 4
    assert ckpt.weights_kimg(meta) == pytest.approx(kimg + 0.004)


def test_dry_run_shows_where_each_model_key_came_from(scheduled_base, tmp_path, capsys):
    base, sets = scheduled_base
    # The fine-tune names no model key: all come from the weights (HEADS_3D's are dropped).
    ft = [s for s in sets if not s.startswith("model.")]
    ft += [f"train.init={base}", "model.extra.num_fine=4"]
    cfg, init = resolve_config(None, ft)
    assert cfg.model.extra["plane_resolution"] == 16 and cfg.data.resolution == 16
    assert init is not None and init.schedule_kimg == pytest.approx(0.008)
    argv = ["train", "--out", str(tmp_path / "r"), "--dry-run"]
    assert main([*argv, *(a for s in ft for a in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "extra.num_fine: 4  [--set]" in out and "extra.plane_resolution: 16  [checkpoint]" in out
    assert "schedules start at kimg 0.008, render_resolution 12, blur_sigma 2" in out
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


# -- the paper presets, fine-tuning weights written by NVIDIA's own code ----------------------


class _Labelled(torch.utils.data.Dataset):
    """Toy faces with a random ``dim``-float label each (NVIDIA's conditional fixture)."""

    def __init__(self, resolution: int, dim: int, n: int = 8):
        self.faces = ToyFaces(resolution, num_images=n)
        self.labels = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        self.label_dim = dim

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> dict:
        return {**self.faces[i], "label": self.labels[i]}


@pytest.fixture(scope="module")
def nvidia_weights(tmp_path_factory):
    """NVIDIA's StyleGAN2-ADA (64², conditional) and EG3D (128²) fixtures, pickled in their
    layout and imported, with a small data set each at their resolution."""
    from test_import import _import_nv_fixture

    out = {}
    for name, kind in (("sg2-64", "stylegan2"), ("eg3d-tiny", "eg3d")):
        folder = tmp_path_factory.mktemp(name)
        card, weights, layout, _, _ = _import_nv_fixture(folder, name)
        _, cfg = api.load_generator(weights)
        if kind == "eg3d":
            data = SynthDataset("heads", num=4, resolution=cfg.model.resolution)
        else:
            data = _Labelled(cfg.model.resolution, cfg.model.c_dim)
        zipped = write_dataset_zip(data, folder / "data.zip")
        out[kind] = (weights, zipped, card["kimg"], cfg.model.w_dim)
    return out


PAPER_PRESETS = sorted(
    p for p in (ROOT / "configs").glob("*.yaml") if "extends: finetune_" in p.read_text()
)


def test_every_paper_preset_fine_tunes_from_an_imported_snapshot(nvidia_weights, tmp_path):
    """Each paper-scale preset, as written, takes one step from NVIDIA-written weights: only
    its data, its budget, and sizes that keep the step short on a CPU are set."""
    assert len(PAPER_PRESETS) >= 10
    for path in PAPER_PRESETS:
        kind = "eg3d" if "finetune_eg3d" in path.read_text() else "stylegan2"
        weights, data, kimg, w_dim = nvidia_weights[kind]
        sets = [
            f"train.init={weights}",
            f"data.path={data}",
            "train.batch=4",
            "train.kimg=0.004",
            "train.device=cpu",
            "train.ckpt_every_minutes=100",
            "data.xflip=false",
        ]
        if kind == "eg3d":  # free on a fine-tune: fewer samples per ray
            sets += ["model.extra.num_coarse=6", "model.extra.num_fine=6"]
            if path.stem != "eg3d_ffhq512_eyes":  # and coarser renders but for one preset
                sets += ["model.extra.render_resolution=16"]
        # The fixture's w is narrower than NVIDIA's 512: each link keeps its region and its
        # share of w's axes.
        links = [
            {**link, "axes": [a * w_dim // NVIDIA_W for a in link["axes"]]}
            for link in load_config(path).link.links
        ]
        sets.append(f"link.links={json.dumps(links)}")
        run = tmp_path / path.stem
        result = api.train(run, path, sets, progress=False)
        assert result.images_seen == 4, path.name
        first = _first_row(run)
        assert first["Schedule/kimg"] == kimg  # the snapshot's, from its file name
        if kind == "eg3d":  # the snapshot's rendering resolution and NVIDIA's blur at its kimg
            res = 32 if path.stem == "eg3d_ffhq512_eyes" else 16
            assert first["Schedule/render_resolution"] == res
            assert first["Schedule/blur_sigma"] == pytest.approx(10 * (1 - kimg / 200))
