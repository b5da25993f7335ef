"""Cameras: EG3D's label convention, poses, rays and projection, and pytorch3d agreement."""

from __future__ import annotations

import math

import pytest
import torch

from link_core.data.cameras import (
    CAMERA_LABEL_DIM,
    CameraSpec,
    camera_label_yaw_pitch,
    focal_to_fov,
    fov_to_focal,
    frontal_labels,
    intrinsics,
    look_at,
    make_labels,
    orbit_eye,
    orbit_labels,
    pixel_centres,
    project,
    ray_bundle,
    sample_poses,
    split_labels,
    to_pytorch3d,
    turntable_poses,
    unproject_depth,
    wobble_poses,
)


def test_focal_rule_matches_eg3d_ffhq():
    # FFHQ's labels carry 4.2647; the rule from the rounded 18.837° gives 4.2634 (0.03 %),
    # so 1e-3 is too tight for the exact rule; 4.2647 itself is 18.8313°.
    assert abs(fov_to_focal(18.837) - 4.2647) < 2e-3
    assert abs(CameraSpec().focal - fov_to_focal(18.837)) < 1e-12
    for fov in (10.0, 18.837, 49.13, 90.0):
        assert abs(focal_to_fov(fov_to_focal(fov)) - fov) < 1e-9
    assert abs(fov_to_focal(focal_to_fov(4.2647)) - 4.2647) < 1e-9
    assert CAMERA_LABEL_DIM == 25


def test_camera_spec_and_intrinsics():
    K = intrinsics(4.0, n=3)
    assert K.shape == (3, 3, 3) and K.dtype == torch.float32
    assert torch.equal(K[1], torch.tensor([[4.0, 0, 0.5], [0, 4.0, 0.5], [0, 0, 1]]))
    assert torch.equal(split_labels(frontal_labels(3))[1], intrinsics(CameraSpec().focal, 3))
    for bad in ({"radius": 0.0}, {"fov_deg": 180.0}, {"pivot": (0.0, 0.0)}):
        with pytest.raises(ValueError, match="CameraSpec"):
            CameraSpec(**bad)


def test_frontal_camera_convention():
    spec = CameraSpec()
    c = frontal_labels(1, spec)
    cam2world, K = split_labels(c)
    assert torch.allclose(cam2world[0, :3, 3], torch.tensor([0.0, 0.0, 2.9]))
    assert torch.allclose(cam2world[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]))  # looks at -z
    assert torch.allclose(
        K[0], torch.tensor([[spec.focal, 0, 0.5], [0, spec.focal, 0.5], [0, 0, 1.0]])
    )
    pts = torch.tensor([[[0.0, 0.0, 0.2], [0.0, 0.1, 0.2], [0.1, 0.0, 0.2]]])
    uv, z = project(pts, c)
    assert torch.allclose(uv[0, 0], torch.tensor([0.5, 0.5]))
    assert uv[0, 1, 1] < 0.5  # world up appears up in the image
    assert uv[0, 2, 0] > 0.5  # world +x appears on the right from the front
    assert torch.allclose(z, torch.full_like(z, 2.7))


def test_look_at_is_a_rotation_and_labels_round_trip():
    eye = torch.randn(6, 3) * 3
    m = look_at(eye, torch.zeros(3))
    R = m[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(6, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(6), atol=1e-5)
    c = make_labels(m, 3.0)
    m2, K = split_labels(c)
    assert torch.equal(m2, m) and torch.all(K[:, 0, 0] == 3.0)
    with pytest.raises(ValueError, match="25"):
        split_labels(torch.zeros(2, 24))
    # Yaw/pitch convention: +yaw moves the camera toward +x, +pitch raises it.
    eye = orbit_eye(
        torch.tensor([math.pi / 2, 0.0]), torch.tensor([0.0, math.pi / 2]), 2.0, (0, 0, 0)
    )
    assert torch.allclose(eye, torch.tensor([[2.0, 0, 0], [0, 2.0, 0]]), atol=1e-6)


def test_look_at_straight_down_is_still_a_rotation():
    m = look_at(torch.tensor([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0]]), torch.zeros(3))
    R = m[:, :3, :3]
    assert torch.isfinite(m).all()
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(R[:, :, 2], torch.tensor([[0.0, -1, 0], [0, 1, 0]]))


def test_orbit_angles_round_trip_and_turntable():
    spec = CameraSpec(pivot=(0.1, -0.2, 0.3))
    yaw = torch.tensor([0.0, 1.0, -2.5, 3.0])
    pitch = torch.tensor([0.0, 0.4, -0.3, 0.1])
    y2, p2 = camera_label_yaw_pitch(orbit_labels(yaw, pitch, spec), spec.pivot)
    assert torch.allclose(y2, yaw, atol=1e-5) and torch.allclose(p2, pitch, atol=1e-5)
    tt = turntable_poses(12, spec)
    y, p = camera_label_yaw_pitch(tt, spec.pivot)
    steps = torch.remainder(y.roll(-1) - y, 2 * math.pi)
    assert torch.allclose(steps, torch.full_like(steps, 2 * math.pi / 12), atol=1e-5)
    dist = (split_labels(tt)[0][:, :3, 3] - torch.tensor(spec.pivot)).norm(dim=-1)
    assert torch.allclose(dist, torch.full_like(dist, spec.radius), atol=1e-5)
    wy, wp = camera_label_yaw_pitch(wobble_poses(64, spec, 25.0, 10.0), spec.pivot)
    assert abs(wy.abs().max() - math.radians(25)) < 1e-3  # peaks reach the amplitudes
    assert abs(wp.abs().max() - math.radians(10)) < 1e-3
    assert abs(wy[0]) < 1e-6 and abs(wp[0]) < 1e-6  # starts frontal
    # Closed and smooth: the step from the last frame back to the first is as long as the
    # first step (the path is symmetric about frame 0), not a jump.
    steps = torch.stack([wy.roll(-1) - wy, wp.roll(-1) - wp], -1).norm(dim=-1)
    assert abs(steps[-1] - steps[0]) < 1e-5 and steps.max() < 0.1


def test_pose_samplers_are_seeded_and_respect_ranges():
    g = torch.Generator()
    a = sample_poses(64, "orbit", generator=g.manual_seed(1))
    b = sample_poses(64, "orbit", generator=g.manual_seed(1))
    assert torch.equal(a, b)
    yaw, pitch = camera_label_yaw_pitch(a, CameraSpec().pivot)
    assert pitch.abs().max() <= math.radians(30) + 1e-4
    assert yaw.min() < -2.5 and yaw.max() > 2.5  # all round
    assert pitch.min() < -math.radians(20) and pitch.max() > math.radians(20)
    c_f = sample_poses(256, "frontal", generator=g.manual_seed(4))
    assert torch.equal(c_f, sample_poses(256, "frontal", generator=g.manual_seed(4)))
    yaw_f, pitch_f = camera_label_yaw_pitch(c_f, CameraSpec().pivot)
    assert yaw_f.abs().max() <= math.radians(3 * 17) + 1e-4
    assert pitch_f.abs().max() <= math.radians(3 * 9) + 1e-4
    assert abs(yaw_f.std() - math.radians(17)) < 0.05 and abs(yaw_f.mean()) < 0.05
    c_u = sample_poses(512, "uniform", generator=g.manual_seed(2))
    _, pitch_u = camera_label_yaw_pitch(c_u, CameraSpec().pivot)
    assert pitch_u.abs().max() <= math.radians(89) + 1e-4 and pitch_u.abs().max() > 1.0
    # Area-uniform: sin(pitch) is uniform, so about half the cameras have |sin(pitch)| < 0.5.
    assert abs((pitch_u.sin().abs() < 0.5).float().mean() - 0.5) < 0.08
    dist = (split_labels(c_u)[0][:, :3, 3] - torch.tensor(CameraSpec().pivot)).norm(dim=-1)
    assert torch.allclose(dist, torch.full_like(dist, 2.7), atol=1e-5)
    assert sample_poses(0).shape == (0, 25)
    with pytest.raises(ValueError, match="'sideways'.*known: orbit, frontal, uniform"):
        sample_poses(2, "sideways")


def test_rays_unprojection_and_projection_agree():
    c = sample_poses(3, "orbit", generator=torch.Generator().manual_seed(0))
    origins, dirs = ray_bundle(c, 7)
    assert origins.shape == dirs.shape == (3, 49, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(3, 49), atol=1e-5)
    # The centre pixel of an odd resolution looks straight at the pivot.
    to_pivot = torch.nn.functional.normalize(
        torch.tensor(CameraSpec().pivot) - origins[:, 24], dim=-1
    )
    assert torch.allclose(dirs[:, 24], to_pivot, atol=1e-5)
    depth = torch.rand(3, 1, 7, 7) + 2.2
    pts = unproject_depth(c, depth)
    uv, _ = project(pts.reshape(3, -1, 3), c)
    centres = (torch.arange(7) + 0.5) / 7
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    expected = torch.stack([u.reshape(-1), v.reshape(-1)], -1).expand(3, -1, -1)
    assert torch.allclose(uv, expected, atol=1e-4)
    assert torch.equal(pixel_centres(7, 7), expected[0])
    # Depth is along the ray, not camera z: z = depth · cos(angle to the optical axis).
    _, z = project(pts.reshape(3, -1, 3), c)
    axis = split_labels(c)[0][:, None, :3, 2]
    assert torch.allclose(z, depth.reshape(3, -1) * (dirs * axis).sum(-1), atol=1e-4)
    # Non-square depth maps: pixel centres per axis.
    depth2 = torch.full((3, 1, 4, 6), 2.5)
    uv2, _ = project(unproject_depth(c, depth2).reshape(3, -1, 3), c)
    assert torch.allclose(uv2, pixel_centres(4, 6).expand(3, -1, -1), atol=1e-4)
    with pytest.raises(ValueError, match="depth"):
        unproject_depth(c, torch.ones(3, 7, 7))


def test_pytorch3d_cameras_project_the_same_pixels():
    pytest.importorskip("pytorch3d")
    size = 64
    c = sample_poses(4, "uniform", generator=torch.Generator().manual_seed(3))
    pts = (torch.rand(4, 50, 3) - 0.5) * 0.9
    uv, _ = project(pts, c)
    screen = to_pytorch3d(c, size).transform_points_screen(pts)[..., :2]
    assert (uv * size - screen).abs().max() < 0.05  # a twentieth of a pixel
    # An off-centre principal point and unequal focals must carry over too (labels built
    # elsewhere, e.g. from a calibration, need not have cx = cy = 0.5).
    K = split_labels(c)[1].clone()
    K[:, 0, 2], K[:, 1, 2], K[:, 1, 1] = 0.4, 0.62, K[:, 1, 1] * 1.1
    c2 = torch.cat([c[:, :16], K.reshape(-1, 9)], 1)
    uv2, _ = project(pts, c2)
    screen2 = to_pytorch3d(c2, size).transform_points_screen(pts)[..., :2]
    assert (uv2 * size - screen2).abs().max() < 0.05


def test_pytorch3d_rasterizer_puts_pixels_where_project_does():
    """A small triangle off-centre (up and right from the front) lands in the pixels that
    project() names: pytorch3d's image rows go down, columns right, like ours."""
    pytest.importorskip("pytorch3d")
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    size = 32
    c = orbit_labels(torch.tensor([0.3]), torch.tensor([0.2]))
    centre = torch.tensor([0.25, 0.2, 0.2])
    verts = centre + torch.tensor([[-0.04, -0.03, 0.0], [0.04, -0.03, 0.0], [0.0, 0.05, 0.0]])
    mesh = Meshes(verts=[verts], faces=[torch.tensor([[0, 1, 2]])])
    settings = RasterizationSettings(image_size=size, blur_radius=0.0, faces_per_pixel=1)
    frags = MeshRasterizer(cameras=to_pytorch3d(c, size), raster_settings=settings)(mesh)
    covered = frags.pix_to_face[0, :, :, 0] >= 0  # [H, W], row 0 at the top
    assert covered.sum() > 3
    uv, _ = project(centre[None, None], c)
    col, row = (uv[0, 0] * size).floor().long().tolist()
    assert col > size // 2 and row < size // 2  # up and to the right, as seen
    assert covered[row, col]
    rows, cols = covered.nonzero(as_tuple=True)
    uv_v, _ = project(verts[None], c)
    px = uv_v[0] * size  # the triangle's pixel-space bounding box holds every covered centre
    assert cols.min() + 0.5 >= px[:, 0].min() and cols.max() + 0.5 <= px[:, 0].max()
    assert rows.min() + 0.5 >= px[:, 1].min() and rows.max() + 0.5 <= px[:, 1].max()
