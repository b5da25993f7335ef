"""render/: camera paths, frame sinks (mp4 / GIF / PNG), depth shading, videos with one
depth range, continuous control, and mesh turntables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fields import AXES, CENTRE, ellipsoid_eg3d

from export import Mesh, mesh_silhouette
from link_core.data.cameras import frontal_labels, orbit_labels, unproject_depth
from link_core.errors import UserError
from link_core.link import Box3DRegion, Link
from render.frames import labelled_grid
from render.mesh_view import fit_camera, mesh_turntable, render_mesh
from render.paths import camera_path, load_path_file
from render.shading import depth_normals, shade
from render.video import FrameSink, read_video
from render.videos import (
    interpolation_source,
    orbit_source,
    parse_maps,
    partition_rows,
    render_video,
)


@pytest.fixture(scope="module")
def G():
    return ellipsoid_eg3d()


# -- paths ---------------------------------------------------------------------------------


def test_turntable_goes_once_round_and_wobble_stays_in_front(G):
    cams = camera_path(G, "turntable", 8, pitch_deg=0.0)
    eyes = cams[:, :16].reshape(-1, 4, 4)[:, :3, 3] - torch.tensor(G.camera.pivot)
    yaw = torch.atan2(eyes[:, 0], eyes[:, 2])
    steps = torch.remainder(yaw.roll(-1) - yaw, 2 * math.pi)
    assert torch.allclose(steps, torch.full((8,), 2 * math.pi / 8), atol=1e-5)  # loops
    assert torch.allclose(eyes.norm(dim=1), torch.full((8,), G.camera.radius), atol=1e-5)
    wob = camera_path(G, "wobble", 16)[:, :16].reshape(-1, 4, 4)[:, :3, 3]
    assert (wob[:, 2] - G.camera.pivot[2] > 0.8 * G.camera.radius).all()  # never far off front
    still = camera_path(G, "still", 3)
    assert torch.equal(still, frontal_labels(3, G.camera))


def test_json_path_of_labels_and_angles(G, tmp_path):
    label = orbit_labels(torch.tensor([0.3]), torch.tensor([0.1]), G.camera)[0].tolist()
    f = tmp_path / "path.json"
    f.write_text(json.dumps({"poses": [label, {"yaw": math.degrees(0.3), "pitch": 5.73}]}))
    cams = camera_path(G, str(f), 99)  # a file's length wins over --frames
    assert cams.shape == (2, 25)
    assert torch.allclose(cams[0], cams[1], atol=1e-3)
    assert torch.allclose(load_path_file(f, G.camera), cams)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[]", "non-empty list"),
        ("{oops", "not a readable JSON"),
        ("[[1, 2, 3]]", "[0]: a label is 25 numbers"),
        ('[{"yaw": 10}, {"yaw": "left"}]', "[1].yaw: expected a number"),
        ('[{"pitch": 95}]', "pitch: must lie in (-90, 90)"),
        ('[{"roll": 3}]', "unknown key 'roll'"),
        ('[{"radius": -1}]', "radius must be > 0"),
    ],
)
def test_bad_json_paths_are_one_clear_error(G, tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(UserError, match="bad.json") as e:
        camera_path(G, str(f), 10)
    assert message in str(e.value)


def test_unknown_path_and_2d_models(G):
    with pytest.raises(UserError, match="turntable, wobble, still"):
        camera_path(G, "spiral", 10)

    class Flat(torch.nn.Module):
        c_dim, is_3d = 0, False

    assert camera_path(Flat(), "still", 4).shape == (4, 0)
    with pytest.raises(UserError, match="no camera"):
        camera_path(Flat(), "turntable", 4)


# -- frame sinks ---------------------------------------------------------------------------


def ramp_frames(n: int, h: int = 31, w: int = 45) -> list[np.ndarray]:
    """Frames whose brightness encodes the frame index (survives lossy coding)."""
    return [np.full((h, w, 3), 20 + 9 * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_videos_round_trip_frame_count_size_and_content(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    with FrameSink(path, fps=12) as sink:
        for frame in ramp_frames(24):
            sink.write(frame)
    frames = read_video(path)
    assert frames.shape == (24, 32, 46, 3)  # odd sizes padded to even (yuv420p)
    means = frames[:, :31, :45].reshape(24, -1).mean(1)
    assert np.abs(means - (20 + 9 * np.arange(24))).max() < 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_png_frames_go_to_a_new_folder(tmp_path):
    with FrameSink(tmp_path / "frames", fps=10) as sink:
        for frame in ramp_frames(3):
            sink.write(frame)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame_00000.png",
        "frame_00001.png",
        "frame_00002.png",
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"), FrameSink(tmp_path / "full") as sink:
        sink.write(ramp_frames(1)[0])
    with pytest.raises(UserError, match=".mp4, .gif or a folder"):
        FrameSink(tmp_path / "v.avi")


def test_an_interrupted_render_keeps_the_old_video(tmp_path):
    path = tmp_path / "v.mp4"
    with FrameSink(path) as sink:
        for frame in ramp_frames(4):
            sink.write(frame)
    before = path.read_bytes()
    with pytest.raises(RuntimeError), FrameSink(path) as sink:
        sink.write(ramp_frames(1)[0])
        raise RuntimeError("killed mid-video")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    with pytest.raises(ValueError, match="frame 1"), FrameSink(tmp_path / "w.gif") as sink:
        sink.write(ramp_frames(1)[0])
        sink.write(ramp_frames(1, h=10)[0])


# -- shading -------------------------------------------------------------------------------


def test_normals_from_depth_match_the_ellipsoids_analytic_normals(G):
    c = orbit_labels(torch.tensor([0.0, 0.8]), torch.tensor([0.0, 0.3]), G.camera)
    ws = torch.zeros(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        out = G.synthesis(ws, c, noise_mode="const", render_resolution=64)
    n = depth_normals(out["image_depth"], c)
    pts = unproject_depth(c, out["image_depth"])
    grad = (pts - torch.tensor(CENTRE)) / torch.tensor(AXES) ** 2  # ∇ of ρ²: outward normal
    truth = torch.nn.functional.normalize(grad, dim=-1)
    # Well inside the silhouette (3 pixels in), where central differences see one surface.
    solid = (out["image_alpha"][:, 0] > 0.99).float()[:, None]
    inner = -torch.nn.functional.max_pool2d(-solid, 7, 1, 3)[:, 0] > 0.5
    cos = (n * truth).sum(-1)[inner]
    assert inner.sum() > 300
    assert cos.median() > 0.99 and cos.quantile(0.05) > 0.9
    img = shade(out["image_depth"], c, out["image_alpha"])
    assert img.shape == (2, 64, 64, 3) and img.dtype == np.uint8
    assert (img[0, 0, 0] == 255).all()  # background stays white
    # The light comes from the upper left: that side of the object is brighter.
    m = inner[0]
    rows, cols = torch.nonzero(m, as_tuple=True)
    r0, c0 = rows.float().mean(), cols.float().mean()
    grey = torch.from_numpy(img[0, ..., 0]).float()
    upper_left = grey[m & (torch.arange(64)[:, None] < r0) & (torch.arange(64)[None] < c0)]
    lower_right = grey[m & (torch.arange(64)[:, None] > r0) & (torch.arange(64)[None] > c0)]
    assert upper_left.mean() > lower_right.mean() + 20


# -- videos --------------------------------------------------------------------------------


def test_depth_video_uses_one_range_for_the_whole_video(G, tmp_path):
    f = tmp_path / "dolly.json"
    f.write_text(json.dumps([{"radius": 2.3}, {"radius": 2.6}, {"radius": 2.9}]))
    cams = camera_path(G, str(f), 3)
    ws = torch.zeros(1, G.num_ws, G.w_dim)
    out = tmp_path / "frames"
    summary = render_video(
        G, orbit_source(ws, cams), 3, out, columns=["x"], maps=["depth"], tile=64, progress=False
    )
    lo, hi = summary["depth_range"]
    front = CENTRE[2] + AXES[2]  # the ellipsoid's nearest point on the camera axis
    near = [G.camera.pivot[2] + r - front for r in (2.3, 2.9)]
    assert near[0] - 0.1 < lo < near[0] and near[1] < hi < near[1] + 0.4  # spans all frames
    frames = read_pngs(out)
    # Per-frame normalization would paint all three alike; one range shows the dolly: the
    # object's centre gets darker (farther) frame by frame.
    centre = frames[:, -40:-24, 64 + 24 : 64 + 40].reshape(3, -1, 3).astype(float).mean(1)
    luminance = centre @ np.array([0.3, 0.6, 0.1])
    assert luminance[0] > luminance[1] + 10 > luminance[2] + 20


def read_pngs(folder) -> np.ndarray:
    import cv2

    files = sorted(folder.iterdir())
    return np.stack([cv2.imread(str(p))[..., ::-1] for p in files])


def test_partition_video_with_a_link_has_a_column_per_resample(G, tmp_path):
    link = Link(
        name="top", axes=tuple(range(4)), region=Box3DRegion(((-0.5, 0.0, -0.5, 0.5, 0.5, 0.5),))
    )
    c = frontal_labels(1, G.camera)
    ws = torch.zeros(1, G.num_ws, G.w_dim)
    rows, labels = partition_rows(G, ws, link, 2, seed=3, c=c)
    assert rows.shape == (3, G.num_ws, G.w_dim) and labels == ["original", "top #1", "top #2"]
    assert torch.equal(rows[0], ws[0])
    assert torch.equal(rows[1:, :, 4:], ws.expand(2, -1, -1)[:, :, 4:])  # only linked axes move
    assert not torch.equal(rows[1:, :, :4], ws.expand(2, -1, -1)[:, :, :4])
    cams = camera_path(G, "turntable", 4)
    summary = render_video(
        G,
        orbit_source(rows, cams),
        4,
        tmp_path / "p.gif",
        columns=labels,
        maps=parse_maps("image,raw,depth,geometry,change,depth_change"),
        link=link,
        tile=32,
        progress=False,
    )
    frames = read_video(tmp_path / "p.gif")
    assert frames.shape[0] == 4 and summary["frames"] == 4
    assert list(frames.shape[1:3][::-1]) == summary["size"]
    # 6 map rows of 32 px + header rows: taller than wide for 3 columns.
    assert summary["size"][1] > 6 * 32 and summary["size"][0] > 3 * 32


def test_interpolation_moves_from_the_original_to_the_target_and_back():
    ws = torch.zeros(1, 2, 3)
    targets = torch.ones(2, 2, 3)
    cams = torch.zeros(5, 25)
    source, t_of = interpolation_source(ws, targets, cams, 8)
    assert t_of(0) == 0 and t_of(4) == pytest.approx(1) and t_of(2) == pytest.approx(0.5)
    rows, c = source(4)
    assert rows.shape == (3, 2, 3) and c.shape == (3, 25)
    assert torch.equal(rows[0], ws[0]) and torch.allclose(rows[1:], targets)
    assert torch.allclose(source(2)[0][1:], torch.full((2, 2, 3), 0.5))


def test_bad_maps_are_refused(G, tmp_path):
    with pytest.raises(UserError, match="unknown 'normals'"):
        parse_maps("image,normals")

    from conftest import TINY

    from link_core.train.config import load_config
    from stylegan_link import build

    flat, _ = build(load_config(None, TINY).model)
    ws = torch.zeros(1, flat.num_ws, flat.w_dim)
    with pytest.raises(UserError, match="'depth' needs a 3-D model"):
        render_video(
            flat.eval(),
            orbit_source(ws, torch.zeros(2, 0)),
            2,
            tmp_path / "x.mp4",
            columns=["x"],
            maps=["image", "depth"],
            progress=False,
        )
    assert not (tmp_path / "x.mp4").exists()


def test_labelled_grid_places_tiles_under_their_labels():
    tiles = [[np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 100, np.uint8)]]
    img = labelled_grid(tiles, ["a", "b"], ["row"], pad=2, label_height=10, row_label_width=20)
    assert img.shape == (10 + 8 + 2, 20 + 2 * (8 + 2), 3)
    assert (img[10:18, 20:28] == 0).all() and (img[10:18, 30:38] == 100).all()


# -- meshes --------------------------------------------------------------------------------


def red_ball(radius: float = 0.3) -> Mesh:
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    colors = np.tile(np.array([[220, 30, 30]], np.uint8), (len(ball.vertices), 1))
    return Mesh(ball.vertices, ball.faces, colors)


def test_mesh_render_covers_its_silhouette_with_its_colours(G):
    mesh = red_ball()
    c = orbit_labels(torch.tensor([0.0, 1.2]), torch.tensor([0.0, 0.4]), G.camera)
    img = render_mesh(mesh, c, 48)
    covered = torch.from_numpy((img != 255).any(-1))
    sil = mesh_silhouette(mesh, c, 48)
    assert float((covered & sil).sum() / (covered | sil).sum()) > 0.97
    inside = img[sil.numpy()]
    assert (inside[:, 0] > inside[:, 1] + 40).mean() > 0.95  # lit, but still red


def test_mesh_turntable_frames_the_meshes_and_writes_a_video(tmp_path):
    meshes = [red_ball(0.3), red_ball(0.15)]
    spec = fit_camera(meshes)
    assert spec.pivot == pytest.approx((0, 0, 0), abs=1e-3)
    summary = mesh_turntable(
        [meshes], ["big", "small"], ["mesh"], tmp_path / "m.mp4", frames=6, tile=48, progress=False
    )
    frames = read_video(tmp_path / "m.mp4")
    assert frames.shape[0] == 6 and summary["frames"] == 6
    red = (frames[0, ..., 0].astype(int) - frames[0, ..., 1] > 80).sum()
    assert red > 48 * 48 * 0.3  # both balls are in view
