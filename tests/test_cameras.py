"""Cameras: EG3D's label convention, poses, rays and projection, and pytorch3d agreement."""

from __future__ import annotations

import math

import pytest
import torch

from link_core.cameras import (
    CameraSpec,
    camera_label_yaw_pitch,
    focal_to_fov,
    fov_to_focal,
    frontal_labels,
    look_at,
    make_labels,
    orbit_labels,
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
    # FFHQ's labels carry 4.2647; the rule from the rounded 18.837° gives 4.2634 (0.03 %).
    assert abs(fov_to_focal(18.837) - 4.2647) < 2e-3
    for fov in (10.0, 18.837, 49.13, 90.0):
        assert abs(focal_to_fov(fov_to_focal(fov)) - fov) < 1e-9


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
    assert wobble_poses(8, spec).shape == (8, 25)


def test_pose_samplers_are_seeded_and_respect_ranges():
    g = torch.Generator()
    a = sample_poses(64, "orbit", generator=g.manual_seed(1))
    b = sample_poses(64, "orbit", generator=g.manual_seed(1))
    assert torch.equal(a, b)
    yaw, pitch = camera_label_yaw_pitch(a, CameraSpec().pivot)
    assert pitch.abs().max() <= math.radians(30) + 1e-4
    assert yaw.min() < -2.5 and yaw.max() > 2.5  # all round
    yaw_f, pitch_f = camera_label_yaw_pitch(sample_poses(256, "frontal"), CameraSpec().pivot)
    assert yaw_f.abs().max() <= math.radians(3 * 17) + 1e-4 and yaw_f.std() < 0.5
    with pytest.raises(ValueError, match="known: orbit"):
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


def test_pytorch3d_cameras_project_the_same_pixels():
    size = 64
    c = sample_poses(4, "uniform", generator=torch.Generator().manual_seed(3))
    pts = (torch.rand(4, 50, 3) - 0.5) * 0.9
    uv, _ = project(pts, c)
    screen = to_pytorch3d(c, size).transform_points_screen(pts)[..., :2]
    assert (uv * size - screen).abs().max() < 0.05  # a twentieth of a pixel
