"""Memory controls (issue #7): chunked rendering gives the same render, checkpointing the
renderer gives the same gradients with fewer saved activations, bf16 autocast trains."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, TINY_EG3D

from link_core.train.config import load_config
from linkgan.api import build_networks
from linkgan.cli import main
from linkgan.memory import _activation_bytes


def _tiny_eg3d(*extra: str):
    torch.manual_seed(0)
    G, _ = build_networks(load_config(None, [*TINY, *TINY_EG3D, *extra]))
    c = G.default_cameras(2)
    ws = G.mapping(torch.randn(2, G.z_dim), c)
    return G, ws.detach(), c


def test_chunked_rendering_is_the_same_render():
    G, ws, c = _tiny_eg3d()
    with torch.no_grad():
        whole = G.synthesis(ws, c, noise_mode="const")
        G.ray_chunk = 7  # 64 rays per image in chunks of 7
        chunked = G.synthesis(ws, c, noise_mode="const")
    for key in ("image", "image_raw", "image_depth", "image_alpha"):
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-5, atol=1e-6)


def test_checkpointed_renderer_same_gradients_fewer_activations():
    G, ws, c = _tiny_eg3d("model.extra.render_resolution=16")  # no SR: the renderer dominates

    def step():
        G.zero_grad(set_to_none=True)
        saved, out = _activation_bytes(lambda: G.synthesis(ws, c, noise_mode="const"))
        (out["image"].square().mean() + out["image_depth"].mean()).backward()
        return saved, {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}

    plain_bytes, plain = step()
    G.checkpoint_render, G.ray_chunk = True, 16
    ckpt_bytes, ckpt = step()
    assert plain.keys() == ckpt.keys() and plain
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)
    assert ckpt_bytes < 0.5 * plain_bytes, (ckpt_bytes, plain_bytes)


def test_bf16_autocast_and_checkpointed_renderer_train(tmp_path):
    run = tmp_path / "run"
    sets = [
        *TINY,
        *TINY_EG3D,
        "data.synthetic=heads",
        "data.num_images=16",
        "train.kimg=0.016",
        "train.mixed_precision=bf16",
        "train.checkpoint_render=true",
        "train.log_every_steps=1",
    ]
    assert (
        main(
            ["train", "--out", str(run), "--no-progress", *[a for s in sets for a in ("--set", s)]]
        )
        == 0
    )
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    losses = [v for r in rows for k, v in r.items() if k.startswith("Loss/")]
    assert losses and all(abs(v) < 1e6 for v in losses)


def test_renderer_options_need_a_renderer(tmp_path, capsys):
    sets = [*TINY, "train.kimg=0.004", "train.checkpoint_render=true"]
    args = ["train", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 2
    assert "this backbone has no volume renderer" in capsys.readouterr().err


def test_gradient_accumulation_matches_the_whole_batch(tmp_path):
    """train.batch_gpu=1 (4 micro-batches per phase) trains what batch 4 at once does."""
    from conftest import TINY as T

    exact = [
        *T,
        "model.use_noise=false",
        "model.mbstd_group=1",
        "loss.style_mixing=0.0",
        "loss.r1_interval=2",
        "link.enabled=false",
        "train.log_every_steps=1",
        "train.kimg=0.016",
    ]
    rows = {}
    for name, extra in (("whole", []), ("micro", ["train.batch_gpu=1"])):
        run = tmp_path / name
        sets = [a for s in [*exact, *extra] for a in ("--set", s)]
        assert main(["train", "--out", str(run), "--no-progress", *sets]) == 0
        rows[name] = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    for i, (a, b) in enumerate(zip(rows["whole"], rows["micro"], strict=True)):
        rel = 1e-5 if i < 2 else 2e-3  # Adam's first steps amplify summation order later
        for key in ("Loss/G/adv", "Loss/D/r1"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=rel), (i, key)


def _train_rows(tmp_path, name: str, extra: list[str]) -> list[dict]:
    """stats.jsonl rows of a 4-step tiny 2-D run that is a deterministic function of its
    settings (no noise inputs, no mixing), one row per step."""
    exact = [
        *TINY,
        "model.use_noise=false",
        "model.mbstd_group=1",
        "loss.style_mixing=0.0",
        "loss.r1_interval=2",
        "train.log_every_steps=1",
        "train.kimg=0.016",
        *extra,
    ]
    run = tmp_path / name
    assert (
        main(
            ["train", "--out", str(run), "--no-progress", *[a for s in exact for a in ("--set", s)]]
        )
        == 0
    )
    return [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]


def test_channels_last_trains_the_same(tmp_path):
    plain = _train_rows(tmp_path, "plain", [])
    last = _train_rows(tmp_path, "last", ["train.channels_last=true"])
    for i, (a, b) in enumerate(zip(plain, last, strict=True)):
        for key in ("Loss/G/adv", "Loss/D/r1", "Loss/link/total"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-6), (i, key)


def test_fp16_clamps_convolutions_only_in_float16():
    from stylegan_link.layers import FP16_CLAMP, SynthesisLayer

    layer = SynthesisLayer(8, 8, 4, 8, use_noise=False)
    with torch.no_grad():
        layer.bias.fill_(1e5)  # beyond float16's range once activated (×√2)
    x, w = torch.randn(2, 8, 8, 8), torch.randn(2, 4)
    assert layer(x, w).max() > 1e5  # fp32: nothing clamped
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x, w).max() > 1e5  # bf16 has fp32's range: nothing clamped
    with torch.autocast("cpu", dtype=torch.float16):
        y = layer(x, w)
    assert torch.isfinite(y).all() and float(y.detach().max()) == FP16_CLAMP


def test_fp16_autocast_trains(tmp_path):
    rows = _train_rows(tmp_path, "fp16", ["train.mixed_precision=fp16"])
    losses = [v for r in rows for k, v in r.items() if k.startswith("Loss/")]
    assert losses and all(abs(v) < 1e6 for v in losses)


def test_speed_options_are_checked(tmp_path, capsys):
    for bad, message in (
        ("train.compile=fast", "train.compile: expected one of off, default"),
        ("train.mixed_precision=fp8", "train.mixed_precision: expected off, bf16 or fp16"),
    ):
        args = ["train", "--out", str(tmp_path / "r"), "--no-progress", "--set", bad]
        assert main(args) == 2
        assert message in capsys.readouterr().err
