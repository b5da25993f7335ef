"""3-D CLI paths on tiny configs: synth -> train -> resume -> edit (RGB + depth) -> metrics
(RGB and depth per link), a hand-made EG3D zip, and bad 3-D data (one error line, exit 2)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import HEADS_3D, TINY, TINY_EG3D

from link_core.data import ImageFolderDataset
from link_core.data.cameras import CameraSpec, sample_poses
from link_core.weights import checkpoint as ckpt
from linkgan.cli import main
from render.video import read_video

SYNTH = CameraSpec(radius=2.7, fov_deg=30.0, pivot=(0.0, 0.0, 0.0))


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_synth_writes_an_eg3d_zip_with_masks(tmp_path, capsys):
    out = tmp_path / "heads.zip"
    args = ["synth", "--kind", "heads", "--num", "6", "--res", "16", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    ds = ImageFolderDataset(str(out), resolution=16)
    assert len(ds) == 6 and ds.label_dim == 25 and ds.has_masks
    assert "hair" in ds.part_names and "left_eye" in ds.part_names
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*args, "--no-progress"]) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.fixture(scope="module")
def trained_3d(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli3d") / "run"
    assert (
        main(["train", "--out", str(run), "--no-progress", *_sets([*HEADS_3D, "train.kimg=0.016"])])
        == 0
    )
    return run


def test_train_resume_edit_metrics_3d(trained_3d, tmp_path, capsys):
    run = trained_3d
    first = ckpt.list_checkpoints(run)[-1]
    assert (
        main(["train", "--out", str(run), "--resume", "--no-progress", "--set", "train.kimg=0.032"])
        == 0
    )
    assert ckpt.list_checkpoints(run)[-1] != first
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    keys = set().union(*stats)
    assert {
        "Loss/link/top/image_depth/in",
        "Loss/link/top/volume/out",
        "Loss/density/density",
    } <= keys

    out = tmp_path / "e"
    assert (
        main(
            [
                "edit",
                "--ckpt",
                str(run),
                "--seed",
                "1",
                "--link",
                "top",
                "--samples",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    (png,) = out.glob("edit_seed0001_top.png")
    img = cv2.imread(str(png))
    # Four rows (RGB, depth, RGB change, depth change) of 4 tiles (original + 3 edits).
    assert img.shape[0] > 3.5 * img.shape[1] / 4
    # Rendered finer than trained (8² -> 16²): the same grid, twice the detail in each tile.
    fine = tmp_path / "e16"
    argv = ["edit", "--ckpt", str(run), "--seed", "1", "--link", "top", "--samples", "3"]
    assert main([*argv, "--render-res", "16", "--out", str(fine)]) == 0
    sharp = cv2.imread(str(fine / "edit_seed0001_top.png"))
    assert sharp.shape == img.shape  # tiles are upscaled to one size either way
    assert not np.array_equal(sharp, img)
    from link_core.interface import seeds_to_z, view_cameras
    from linkgan.api import find_link, load_generator, model_links
    from render.grids import link_resamples

    G, cfg = load_generator(run)
    c = view_cameras(G, 1)
    ws = G.mapping(seeds_to_z([1], G.z_dim), c)
    base, edited, mask = link_resamples(G, ws, find_link(model_links(cfg), "top"), 3, 1, c, 16)
    assert base["image"].shape[-1] == edited["image"].shape[-1] == mask.shape[-1] == 16
    capsys.readouterr()
    assert main([*argv, "--render-res", "4", "--out", str(tmp_path / "bad")]) == 2
    assert "--render-res: expected 8..1024" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

    capsys.readouterr()
    mpath = tmp_path / "m.json"
    assert main(["metrics", "--ckpt", str(run), "--num", "4", "--out", str(mpath)]) == 0
    result = json.loads(mpath.read_text())
    per_map = result["link_mse"]["top"]
    assert set(per_map) == {"image", "depth"}
    for m in ("image", "depth"):
        assert {"edit_in", "edit_out", "rest_in", "rest_out", "out_over_in"} <= set(per_map[m])
        numbers = [v for v in per_map[m].values() if not isinstance(v, dict)]
        assert numbers and all(np.isfinite(v) for v in numbers)
        assert set(per_map[m]["edit_share_by_view"]) == {"front", "side", "back"}
    assert result["settings"]["depth"] == "world units"

    assert (
        main(["generate", "--ckpt", str(run), "--seeds", "0-1", "--out", str(tmp_path / "g")]) == 0
    )
    assert len(list((tmp_path / "g").glob("seed*.png"))) == 2


def _eg3d_zip(path: Path, n: int, label_len: int = 25, drop: int | None = None) -> Path:
    """A hand-made EG3D-format zip: PNGs and dataset.json with camera labels, no masks."""
    c = sample_poses(n, "orbit", SYNTH).tolist()
    rng = np.random.default_rng(0)
    labels = []
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            name = f"img{i:03d}.png"
            if i != drop:
                img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                z.writestr(name, cv2.imencode(".png", img)[1].tobytes())
            labels.append([name, c[i][:label_len]])
        z.writestr("dataset.json", json.dumps({"labels": labels}))
    return path


def test_hand_made_eg3d_zip_is_accepted(tmp_path):
    data = _eg3d_zip(tmp_path / "cams.zip", 8)
    run = tmp_path / "run"
    overrides = [*TINY, *TINY_EG3D, f"data.path={data}", "train.kimg=0.008"]
    assert main(["train", "--out", str(run), "--no-progress", *_sets(overrides)]) == 0
    assert ckpt.list_checkpoints(run)


@pytest.mark.parametrize(
    ("kind", "message"),
    [("short_labels", "labels have 24 values"), ("missing_file", "img002.png")],
)
def test_bad_eg3d_data_is_one_clear_error(tmp_path, capsys, kind, message):
    if kind == "short_labels":
        data = _eg3d_zip(tmp_path / "bad.zip", 4, label_len=24)
    else:
        data = _eg3d_zip(tmp_path / "bad.zip", 4, drop=2)
    run = tmp_path / "run"
    overrides = [*TINY, *TINY_EG3D, f"data.path={data}", "train.kimg=0.008"]
    assert main(["train", "--out", str(run), "--no-progress", *_sets(overrides)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not ckpt.list_checkpoints(run)


def test_box3d_on_a_2d_backbone_is_refused(tmp_path, capsys):
    overrides = [
        *TINY,
        "link.links=[{axes: [0, 4], region: {box3d: [0, 0, 0, 1, 1, 1]}}]",
        "train.kimg=0.008",
    ]
    assert main(["train", "--out", str(tmp_path / "r"), "--no-progress", *_sets(overrides)]) == 2
    assert "model.backbone: eg3d" in capsys.readouterr().err


def test_export_meshes_of_a_seed_and_its_link_edits(trained_3d, tmp_path, capsys):
    from export import density_grid
    from link_core.interface import seeds_to_z, view_cameras
    from linkgan.api import load_generator

    # A minutes-old model's density is low: export at half its peak (a real model uses 10).
    G, _ = load_generator(trained_3d)
    ws = G.mapping(seeds_to_z([2], G.z_dim), view_cameras(G, 1))
    level = 0.5 * float(density_grid(G, ws, 32).max())
    assert (
        main(
            [
                "export",
                "--ckpt",
                str(trained_3d),
                "--seed",
                "2",
                "--grid",
                "32",
                "--level",
                f"{10 * level + 100}",
                "--out",
                str(tmp_path / "none"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "never reaches --level" in capsys.readouterr().err
    out = tmp_path / "meshes"
    args = [
        "export",
        "--ckpt",
        str(trained_3d),
        "--seed",
        "2",
        "--link",
        "top",
        "--samples",
        "1",
        "--grid",
        "32",
        "--format",
        "ply,glb",
        "--level",
        str(level),
        "--turntable",
        "4",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["link"] == "top" and summary["units"] == "world"
    names = {p.name for p in out.iterdir()}
    assert {"original.ply", "original.glb", "top_0.ply", "top_0_heat.glb"} <= names
    assert read_video(out / "turntable.mp4").shape[0] == 4  # the meshes themselves turning
    capsys.readouterr()
    bad = [*args[:-3], "--format", "stl", "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    assert "unknown 'stl'" in capsys.readouterr().err


def test_render_turntable_partition_and_interpolation_videos(trained_3d, tmp_path, capsys):
    out = tmp_path / "top.mp4"
    base = ["render", "--ckpt", str(trained_3d), "--seed", "1", "--tile", "32", "--no-progress"]
    assert (
        main([*base, "--link", "top", "--samples", "2", "--frames", "48", "--out", str(out)]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    frames = read_video(out)
    assert frames.shape[0] == 48 and summary["columns"] == ["original", "top #1", "top #2"]
    assert summary["maps"] == ["image", "depth", "geometry", "change"]
    assert frames[0].std() > 5 and not np.array_equal(frames[0], frames[12])  # it turns
    # Continuous control from a w file (what inversion writes), on the wobble path, as GIF.
    from link_core.edit.latents import save_w
    from linkgan.api import latent, load_generator

    G, _ = load_generator(trained_3d)
    ws, c, _ = latent(G, 5)
    wfile = save_w(tmp_path / "face.safetensors", ws, c)
    gif = tmp_path / "interp.gif"
    args = [*base, "--w", str(wfile), "--link", "top", "--interp", "--path", "wobble"]
    assert main([*args, "--frames", "6", "--maps", "image,raw,change", "--out", str(gif)]) == 0
    assert read_video(gif).shape[0] == 6
    capsys.readouterr()
    # Bad input: one line, exit 2, nothing written.
    for bad, message in [
        (["--path", "spiral"], "--path: expected turntable"),
        (["--interp"], "--interp: needs --link"),
        (["--maps", "image,normals"], "--maps: unknown 'normals'"),
        (["--w", str(tmp_path / "none.npy")], "does not exist"),
        (["--out", str(tmp_path / "v.avi")], "expected .mp4, .gif or a folder"),
        (["--frames", "0"], "--frames"),
    ]:
        argv = [*base, "--frames", "4", "--out", str(tmp_path / "bad.mp4"), *bad]
        assert main(argv) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad.mp4").exists()


def test_link_phase_views_can_face_the_front(tmp_path):
    """``link.view_yaw_deg``: the link phase redraws the data set's cameras that look at the
    back of the head (where a face's parts are out of view and add no loss)."""
    import math

    import torch

    from link_core.data.cameras import camera_label_yaw_pitch
    from link_core.errors import ConfigError
    from linkgan import api

    overrides = [*HEADS_3D, "data.num_images=32", "link.view_yaw_deg=45", "train.kimg=0.01"]
    trainer = api.build_trainer(tmp_path / "run", None, overrides, progress=False)
    torch.manual_seed(0)
    c = trainer._sample_labels(64)
    yaw = camera_label_yaw_pitch(c, pivot=(0.0, 0.0, 0.0))[0].abs()
    front = yaw <= math.radians(45)
    assert (~front).any() and front.any()  # the orbit data set looks from all round
    moved = trainer.link.cameras(c, trainer._sample_labels)
    assert (camera_label_yaw_pitch(moved, pivot=(0.0, 0.0, 0.0))[0].abs() <= math.radians(45)).all()
    assert torch.equal(moved[front], c[front])  # views of the face are kept as drawn
    trainer.link.cfg.view_yaw_deg = 0.0
    assert trainer.link.cameras(c, trainer._sample_labels) is c
    with pytest.raises(ConfigError, match="view_yaw_deg"):
        api.build_trainer(tmp_path / "bad", None, [*overrides, "link.view_yaw_deg=200"])


def test_link_phase_extra_views_see_what_the_front_cone_leaves_out(tmp_path):
    """``link.extra_views``: each link sample is also rendered from cameras beyond
    ``view_yaw_deg`` (same w, same edits) and eq. 4 pools its views; a form without shares
    is refused."""
    import math

    import torch

    from link_core.data.cameras import camera_label_yaw_pitch
    from link_core.errors import ConfigError
    from linkgan import api

    overrides = [
        *HEADS_3D, "data.num_images=32", "link.view_yaw_deg=45", "link.extra_views=2",
        "link.form=share", "link.volume_weight=0", "train.kimg=0.01",
    ]  # fmt: skip
    trainer = api.build_trainer(tmp_path / "run", None, overrides, progress=False)
    torch.manual_seed(0)
    c = trainer.link.cameras(trainer._sample_labels(4), trainer._sample_labels)
    extra = trainer.link.extra_cameras(c, trainer._sample_labels)
    assert extra.shape == (4, 2, c.shape[-1])
    yaw = camera_label_yaw_pitch(extra.flatten(0, 1), pivot=(0.0, 0.0, 0.0))[0].abs()
    assert (yaw > math.radians(45)).all()
    G = trainer.G
    ws = G.mapping(torch.randn(4, G.z_dim), c)
    src = G.mapping(torch.randn(4, G.z_dim), c)
    step = trainer.link.step(G, trainer.synthesis, trainer.disc, ws, c, src, extra)
    assert torch.isfinite(step.loss) and step.loss.requires_grad
    imgs, cams = step.fakes
    assert imgs["image"].shape[0] == 2 * 4 * 3  # x₁, x₂ of one link, 4 samples x 3 views
    assert torch.equal(cams[1:3], extra[0].to(cams))  # sample 0's views follow its front view
    trainer.link.cfg.extra_views = 0
    assert trainer.link.extra_cameras(c, trainer._sample_labels) is None
    with pytest.raises(ConfigError, match="extra_views"):
        api.build_trainer(tmp_path / "bad", None, [*overrides, "link.form=relative"])
