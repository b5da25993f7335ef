"""GAN inversion on real photos that install offline (scikit-image's astronaut and chelsea):
the loss falls, the files are written, and the w file drives edit / export."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import cv2
import pytest
import torch

from link_core.edit.inversion import InversionSettings, invert, multiscale_ssim_loss, ssim
from link_core.edit.latents import save_w
from linkgan import api
from linkgan.cli import main
from render.video import read_video

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a test dependency")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("astronaut", "chelsea"):
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), getattr(skimage_data, name)()[:, :, ::-1])
        out[name] = path
    return out


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    assert ssim(a, noisy).item() < 0.9
    assert multiscale_ssim_loss(a, noisy) > multiscale_ssim_loss(a, (a + noisy) / 2)


def test_invert_astronaut_lowers_the_loss_and_writes_everything(tmp_path, photos):
    out = tmp_path / "inv"
    code = main(
        ["invert", "--ckpt", "base:toyfaces_2d", "--image", str(photos["astronaut"])]
        + ["--out", str(out), "--steps", "60", "--no-progress"]
    )
    assert code == 0
    summary = json.loads((out / "losses.json").read_text())
    losses = summary["losses"]
    assert len(losses) == 60
    windows = [statistics.mean(losses[i : i + 12]) for i in range(0, 60, 12)]
    # Falls on average, window after window (Adam with w noise jitters step to step).
    assert all(b <= a * 1.02 for a, b in zip(windows, windows[1:], strict=False)), windows
    assert windows[-1] < 0.9 * windows[0]
    frames = read_video(out / "progress.mp4")
    assert frames.shape[0] >= 20 and frames.shape[-1] == 3
    assert cv2.imread(str(out / "reconstruction.png")) is not None
    # Nothing is overwritten: a second run into the same folder is refused.
    again = ["invert", "--ckpt", "base:toyfaces_2d", "--image", str(photos["astronaut"])]
    assert main([*again, "--out", str(out), "--steps", "2", "--no-progress"]) == 2
    assert json.loads((out / "losses.json").read_text())["losses"] == losses


def test_w_file_reproduces_the_reconstruction_with_its_noise_maps(tmp_path, photos):
    G, _ = api.load_generator("base:toyfaces_2d")
    target = api.read_target_image(photos["astronaut"], G.img_resolution)
    c = torch.zeros(1, 0)
    before = {n: b.clone() for n, b in G.named_buffers()}
    res = invert(G, target, c, InversionSettings(steps=15, w_avg_samples=200))
    assert all(torch.equal(b, before[n]) for n, b in G.named_buffers())  # G left alone
    assert res.noise and set(res.noise) <= set(before)
    path = save_w(tmp_path / "w.safetensors", res.ws, c, res.noise)
    G2, _ = api.load_generator("base:toyfaces_2d")
    ws, c2, name = api.latent(G2, 0, path)  # what edit / render / export --w do
    with torch.no_grad():
        again = G2.synthesis(ws, c2, noise_mode="const")["image"]
    assert name == "w" and torch.allclose(again, res.image, atol=1e-5)


def test_edit_with_an_inverted_w_on_a_linked_model(tmp_path, photos, tiny_overrides):
    run = tmp_path / "run"
    sets = [x for o in [*tiny_overrides, "train.kimg=0.05"] for x in ("--set", o)]
    assert main(["train", "--out", str(run), "--no-progress", *sets]) == 0
    inv = tmp_path / "inv"
    args = ["invert", "--ckpt", str(run), "--image", str(photos["astronaut"])]
    assert main([*args, "--out", str(inv), "--steps", "10", "--no-progress"]) == 0
    edits = tmp_path / "edits"
    w = str(inv / "w.safetensors")
    assert main(["edit", "--ckpt", str(run), "--w", w, "--out", str(edits)]) == 0
    assert any(p.suffix == ".png" and p.name.startswith("edit_w_") for p in edits.iterdir())


def test_invert_chelsea_on_the_3d_base_then_export_its_mesh(tmp_path, photos):
    inv = tmp_path / "inv"
    args = ["invert", "--ckpt", "base:heads_3d", "--image", str(photos["chelsea"])]
    assert main([*args, "--out", str(inv), "--steps", "12", "--no-progress"]) == 0
    summary = json.loads((inv / "losses.json").read_text())
    assert summary["loss_last"] < summary["loss_first"]
    meshes = tmp_path / "meshes"
    cmd = ["export", "--ckpt", "base:heads_3d", "--w", str(inv / "w.safetensors")]
    cmd += ["--grid", "48", "--format", "ply", "--out", str(meshes), "--no-progress"]
    assert main(cmd) == 0
    plys = list(meshes.glob("*.ply"))
    assert plys and plys[0].stat().st_size > 1000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image", "nope.png"], "is not a readable image"),
        (["--camera", "cam.json"], "--camera"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_invert_bad_input_is_one_line_and_exit_2(tmp_path, photos, capsys, extra, message):
    (tmp_path / "cam.json").write_text("[1, 2, 3]")
    args = ["invert", "--ckpt", "base:heads_3d", "--image", str(photos["chelsea"])]
    args += ["--out", str(tmp_path / "o"), "--no-progress"]
    extra = [str(tmp_path / e) if e.endswith((".png", ".json")) else e for e in extra]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory) -> dict[str, Path]:
    """VGG16 weights in torchvision's key layout (random: none can be downloaded here), as
    safetensors and as a torch file, plus LPIPS channel weights."""
    from safetensors.torch import save_file

    from link_core.metrics.lpips import LPIPS, TAP_CHANNELS

    folder = tmp_path_factory.mktemp("vgg")
    torch.manual_seed(0)
    state = {f"features.{k}": v.clone() for k, v in LPIPS().features.state_dict().items()}
    for k, v in state.items():
        state[k] = torch.randn_like(v) * (0.1 if k.endswith("weight") else 0.01)
    save_file(state, str(folder / "vgg16.safetensors"))
    torch.save(state, folder / "vgg16.pth")
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(TAP_CHANNELS)}
    torch.save(lin, folder / "lin.pth")
    return {
        "st": folder / "vgg16.safetensors",
        "pth": folder / "vgg16.pth",
        "lin": folder / "lin.pth",
    }


def test_lpips_is_zero_for_equal_images_and_grows_with_noise(vgg_files):
    from link_core.metrics.lpips import load_lpips

    a = torch.rand(2, 3, 32, 32) * 2 - 1
    for model in (load_lpips(vgg_files["st"]), load_lpips(vgg_files["pth"], vgg_files["lin"])):
        near, far = a + 0.05 * torch.randn_like(a), a + 0.5 * torch.randn_like(a)
        assert torch.allclose(model(a, a), torch.zeros(2), atol=1e-6)
        assert torch.allclose(model(a, far), model(far, a), atol=1e-6)
        assert (model(a, near) < model(a, far)).all()
    # The two files hold the same VGG: the same distance without the learned weights.
    p, q = load_lpips(vgg_files["st"]), load_lpips(vgg_files["pth"])
    assert torch.allclose(p(a, far), q(a, far))


def test_invert_with_lpips_and_bad_weight_files(tmp_path, photos, vgg_files, capsys):
    args = ["invert", "--ckpt", "base:toyfaces_2d", "--image", str(photos["chelsea"])]
    out = tmp_path / "inv"
    lp = ["--lpips-vgg", str(vgg_files["st"]), "--lpips-lin", str(vgg_files["lin"])]
    assert main([*args, "--out", str(out), "--steps", "8", "--no-progress", *lp]) == 0
    assert len(json.loads((out / "losses.json").read_text())["losses"]) == 8
    broken = tmp_path / "half.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, broken)
    hostile = tmp_path / "hostile.pth"
    torch.save({"x": statistics.mean}, hostile)  # not a tensor: weights_only refuses it
    for bad, message in (
        (["--lpips-vgg", str(broken)], "has no tensor features.0.bias"),
        (["--lpips-vgg", str(hostile)], "is not a tensor file"),
        (["--lpips-vgg", str(tmp_path / "none.pth")], "not found"),
        (["--lpips-lin", str(vgg_files["lin"])], "needs --lpips-vgg"),
    ):
        assert (
            main([*args, "--out", str(tmp_path / "x"), "--steps", "2", "--no-progress", *bad]) == 2
        )
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()
