"""Base models: publish a run (fp16 EMA G + D with a card), load it as base:NAME, and
fine-tune from it with train.init (the paper's §4.2 recipe); the SWD quality figure."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import HEADS_3D

from link_core.metrics import sliced_wasserstein
from link_core.weights import checkpoint as ckpt
from linkgan import api, build
from linkgan.cli import main


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("base") / "run"
    api.train(run, None, [*HEADS_3D, "link.enabled=false", "train.kimg=0.016"], progress=False)
    return run


@pytest.fixture(scope="module")
def published(base_run, tmp_path_factory):
    assets = tmp_path_factory.mktemp("assets")
    card = api.publish(base_run, "tiny_heads", assets, command="linkgan train …", fid_num=4)
    return assets, card


def test_publish_writes_fp16_weights_and_a_card(published, base_run):
    assets, card = published
    tensors, meta = ckpt.read_file(assets / "tiny_heads.safetensors")
    assert {k.split(".")[0] for k in tensors} == {"G_ema", "D"}
    floats = [t for t in tensors.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    on_disk = json.loads((assets / "tiny_heads.json").read_text())
    assert on_disk == card and meta["card"]["kimg"] == card["kimg"] == 0.016
    assert card["command"] == "linkgan train …" and card["machine"]["cores"] >= 1
    q = card["quality"]
    assert q["images"]["swd_x1e3"] > 0 and q["images"]["swd_real_vs_real"] >= 0
    assert q["inception"]["fid"] > 0 and q["inception"]["inception"]["num_fake"] == 4
    shapes = q["shapes"]
    assert len(shapes["extent_xyz"]) == 3 and len(shapes["data_extent_xyz"]) == 3
    # The published generator renders what the run's own EMA generator renders (to fp16).
    G_run, _ = api.load_generator(base_run)
    G_pub, _ = api.load_generator(assets / "tiny_heads.safetensors")
    ws, c, _ = api.latent(G_run, 3)
    a = G_run.synthesis(ws, c, noise_mode="const")["image"]
    b = G_pub.synthesis(ws, c, noise_mode="const")["image"]
    assert (a - b).abs().max() < 0.02


def test_fine_tuning_starts_from_the_base_weights(published, tmp_path, monkeypatch):
    assets, _ = published
    monkeypatch.setattr(build, "ASSETS", assets)
    run = tmp_path / "ft"
    sets = [*HEADS_3D, "train.init=base:tiny_heads", "train.kimg=0.004"]
    result = api.train(run, None, sets, progress=False)
    assert result.images_seen == 4  # a fresh run: counters start at zero
    tensors, meta = ckpt.read_file(ckpt.list_checkpoints(run)[0])
    assert meta["config"]["train"]["init"] == "base:tiny_heads"
    base, _ = ckpt.read_file(assets / "tiny_heads.safetensors")
    # One step moved G a little from the base; far less than from a fresh initialization.
    key = next(k for k in base if k.startswith("G_ema.backbone") and k.endswith("weight"))
    fresh, _ = api.build_networks(api.load_config(None, [*HEADS_3D]))
    moved = (tensors["G" + key[5:]] - base[key].float()).abs().mean()
    far = (dict(fresh.named_parameters())[key[6:]] - base[key].float()).abs().mean()
    assert moved < 0.1 * far
    assert api.load_generator("base:tiny_heads")[0].z_dim > 0
    # Published in turn, the continued run's card adds the base's training to its own.
    card = api.publish(run, "tiny_heads_more", tmp_path / "assets", quality=False)
    assert card["init"]["from"] == "base:tiny_heads" and card["init"]["kimg"] == 0.016
    assert card["kimg"] == 0.004 and card["kimg_total"] == 0.02
    # A base no longer published leaves only its name (publishing still works).
    monkeypatch.setattr(build, "ASSETS", tmp_path / "gone")
    card = api.publish(run, "tiny_heads_more", tmp_path / "assets", quality=False)
    assert card["init"] == {"from": "base:tiny_heads"} and "kimg_total" not in card


def test_bad_init_and_publish_input_is_one_clear_error(published, base_run, tmp_path, capsys):
    assets, _ = published
    for sets, message in [
        (["train.init=base:nope"], "base:nope: no such base model"),
        ([f"train.init={assets / 'tiny_heads.safetensors'}", "model.w_dim=32"], "model.w_dim"),
        ([f"train.init={base_run / 'model.safetensors'}"], "no discriminator weights"),
    ]:
        argv = ["train", "--out", str(tmp_path / "r"), "--no-progress"]
        argv += [a for o in [*HEADS_3D, "train.kimg=0.004", *sets] for a in ("--set", o)]
        assert main(argv) == 2, sets
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    assert main(["publish", "--ckpt", str(base_run), "--name", "Bad Name"]) == 2
    assert "--name" in capsys.readouterr().err
    model_only = base_run / "model.safetensors"
    assert main(["publish", "--ckpt", str(model_only), "--name", "x", "--out", str(tmp_path)]) == 2
    assert "not a training checkpoint" in capsys.readouterr().err


def test_sliced_wasserstein_is_zero_for_one_set_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(32, 3, 32, 32, generator=g) * 2 - 1
    b = torch.rand(32, 3, 32, 32, generator=g) * 2 - 1
    assert sliced_wasserstein(a, a)["mean"] == 0
    same_kind = sliced_wasserstein(a, b)["mean"]
    shifted = sliced_wasserstein(a, (b + 0.5).clamp(-1, 1))["mean"]
    dimmer = sliced_wasserstein(a, b * 0.3)["mean"]
    assert 0 < same_kind < 0.5 * shifted and same_kind < 0.5 * dimmer
    assert set(sliced_wasserstein(a, b)) == {"32", "16", "mean"}


def test_init_axes_scale_quiets_only_the_linked_axes(published, tmp_path, monkeypatch):
    assets, _ = published
    monkeypatch.setattr(build, "ASSETS", assets)
    run = tmp_path / "ft"
    sets = [
        *HEADS_3D,  # link `top` on w[0:4]
        "train.init=base:tiny_heads",
        "train.kimg=0.004",
        "train.lr_g=0",  # G keeps its starting weights: compare them exactly
        "train.ema_kimg=0.000001",
        "link.init_axes_scale=0.1",
    ]
    api.train(run, None, sets, progress=False)
    tensors, _ = ckpt.read_file(ckpt.list_checkpoints(run)[0])
    base, _ = ckpt.read_file(assets / "tiny_heads.safetensors")
    keys = [k for k in base if k.startswith("G_ema.") and k.endswith("affine.weight")]
    assert keys
    for key in keys:
        start, now = base[key].float(), tensors["G" + key[5:]]
        assert torch.allclose(now[:, :4], 0.1 * start[:, :4], atol=1e-6)
        assert torch.equal(now[:, 4:], start[:, 4:])


def test_metrics_shapes_gives_the_cards_mesh_figures_and_refuses_2d(tmp_path, capsys):
    out = tmp_path / "shapes.json"
    args = ["metrics", "--ckpt", "base:heads_3d", "--metrics", "shapes", "--num", "2"]
    assert main([*args, "--no-progress", "--out", str(out)]) == 0
    shapes = json.loads(out.read_text())["shapes"]
    assert shapes["meshes"] == 2 and shapes["grid"] == 96
    assert shapes["pieces"] >= 1 and 0 <= shapes["watertight"] <= 1
    # a head is about 0.6-0.75 wide, tall and deep in world units, as the synthetic data's
    assert all(0.4 < e < 1.0 for e in shapes["extent_xyz"])
    assert len(shapes["data_extent_xyz"]) == 3
    capsys.readouterr()
    flat = ["metrics", "--ckpt", "base:toyfaces_2d", "--metrics", "shapes", "--out", str(out)]
    assert main(flat) == 2
    assert "--metrics shapes: base:toyfaces_2d is a 2-D model" in capsys.readouterr().err
    assert json.loads(out.read_text())["shapes"]["meshes"] == 2  # the earlier output is kept
