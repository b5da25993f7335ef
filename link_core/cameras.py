"""Cameras in EG3D's label convention, pose samplers, rays, projection, and pytorch3d.

A camera label ``c`` is 25 floats: the flattened 4×4 cam2world matrix in OpenCV's
convention (camera x right, y down, z forward), then the flattened 3×3 intrinsics
normalized by the image size, ``K = [[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]]``. A camera-space
point (x, y, z) lands at ``u = f·x/z + 0.5``, ``v = f·y/z + 0.5``, both in [0, 1] across
the image (u right, v down); pixel i of R has its centre at ``(i + 0.5) / R``.

World: y up, objects face +z. Our angles are (yaw, pitch) in radians with (0, 0) frontal:
the camera at ``pivot + radius·(cos p·sin y, sin p, cos p·cos y)`` looking at the pivot.
EG3D's sampler writes the same frontal view as (h, v) = (π/2, π/2).

The FFHQ defaults (radius 2.7, pivot (0, 0, 0.2), FOV 18.837°) and EG3D's focal rule
``f = 1 / (tan(fov/2) · 1.414)`` come from FACTS.md. pytorch3d is imported only inside
:func:`to_pytorch3d`, so training never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

CAMERA_LABEL_DIM = 25
_FOCAL_RULE = 1.414  # EG3D: the FOV is measured so that f = 1 / (tan(fov/2) · 1.414)


def fov_to_focal(fov_deg: float) -> float:
    """Normalized focal length for a field of view in degrees (EG3D's rule)."""
    return 1.0 / (math.tan(math.radians(fov_deg) / 2) * _FOCAL_RULE)


def focal_to_fov(focal: float) -> float:
    """Inverse of :func:`fov_to_focal` (degrees)."""
    return math.degrees(2 * math.atan(1.0 / (focal * _FOCAL_RULE)))


@dataclass(frozen=True)
class CameraSpec:
    """Where cameras sit: distance to the look-at pivot, field of view, pivot."""

    radius: float = 2.7
    fov_deg: float = 18.837
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.2)

    @property
    def focal(self) -> float:
        return fov_to_focal(self.fov_deg)


def _device(device: Any) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def intrinsics(focal: float, n: int = 1, device: Any = None) -> torch.Tensor:
    """``[N, 3, 3]`` normalized intrinsics with the principal point at the centre."""
    K = torch.tensor(
        [[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], device=_device(device)
    )
    return K.expand(n, 3, 3).clone()


def look_at(
    eye: torch.Tensor, target: torch.Tensor | Sequence[float], up: Sequence[float] = (0.0, 1.0, 0.0)
) -> torch.Tensor:
    """``[N, 4, 4]`` OpenCV cam2world for cameras at ``eye [N, 3]`` looking at ``target``
    (``[N, 3]`` or ``[3]``); world ``up`` appears up in the image (camera −y)."""
    eye = eye.float()
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device).expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    up_t = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(z)
    # x = z × (−up) ... written as up × z flipped: right-handed with y = z × x pointing down.
    x = torch.linalg.cross(z, up_t)
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    m = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    m[:, :3, 0], m[:, :3, 1], m[:, :3, 2], m[:, :3, 3] = x, y, z, eye
    m[:, 3, 3] = 1.0
    return m


def orbit_eye(
    yaw: torch.Tensor, pitch: torch.Tensor, radius: float, pivot: Sequence[float]
) -> torch.Tensor:
    """``[N, 3]`` camera positions on a sphere around ``pivot`` (our yaw/pitch convention)."""
    yaw, pitch = torch.as_tensor(yaw).float(), torch.as_tensor(pitch).float()
    d = torch.stack([pitch.cos() * yaw.sin(), pitch.sin(), pitch.cos() * yaw.cos()], -1)
    return torch.as_tensor(pivot, dtype=d.dtype, device=d.device) + radius * d


def make_labels(cam2world: torch.Tensor, focal: float | torch.Tensor) -> torch.Tensor:
    """``[N, 4, 4]`` cam2world and a focal (scalar or ``[N]``) -> labels ``[N, 25]``."""
    n = cam2world.shape[0]
    f = torch.as_tensor(focal, dtype=cam2world.dtype, device=cam2world.device).expand(n)
    K = torch.zeros(n, 3, 3, dtype=cam2world.dtype, device=cam2world.device)
    K[:, 0, 0], K[:, 1, 1] = f, f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = 0.5, 0.5, 1.0
    return torch.cat([cam2world.reshape(n, 16), K.reshape(n, 9)], 1)


def split_labels(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``[N, 25]`` -> (cam2world ``[N, 4, 4]``, intrinsics ``[N, 3, 3]``)."""
    if c.dim() != 2 or c.shape[-1] != CAMERA_LABEL_DIM:
        raise ValueError(
            f"camera labels must be [N, {CAMERA_LABEL_DIM}] (4x4 cam2world + 3x3 intrinsics), "
            f"got {list(c.shape)}"
        )
    return c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3)


def orbit_labels(
    yaw: torch.Tensor, pitch: torch.Tensor, spec: CameraSpec = CameraSpec()
) -> torch.Tensor:
    """``[N, 25]`` labels of look-at cameras at (yaw, pitch) radians around the pivot."""
    eye = orbit_eye(yaw, pitch, spec.radius, spec.pivot)
    return make_labels(look_at(eye, spec.pivot), spec.focal)


def frontal_labels(n: int, spec: CameraSpec = CameraSpec(), device: Any = None) -> torch.Tensor:
    """``[n, 25]`` frontal cameras (yaw = pitch = 0)."""
    zeros = torch.zeros(n)
    return orbit_labels(zeros, zeros, spec).to(_device(device))


POSE_MODES = ("orbit", "frontal", "uniform")


def sample_poses(
    n: int,
    mode: str = "orbit",
    spec: CameraSpec = CameraSpec(),
    *,
    generator: torch.Generator | None = None,
    pitch_range_deg: float = 30.0,
    yaw_std_deg: float = 17.0,
    pitch_std_deg: float = 9.0,
    device: Any = None,
) -> torch.Tensor:
    """``[n, 25]`` random cameras.

    - ``orbit``: yaw uniform all round, pitch in ±``pitch_range_deg`` uniform in sin(pitch),
      i.e. area-uniform over the sphere's band (a 360° turntable needs 360° data);
    - ``frontal``: an FFHQ-like Gaussian cone around the front (clipped at 3 std);
    - ``uniform``: area-uniform over the whole sphere except the poles (±89°).
    """
    if mode not in POSE_MODES:
        raise ValueError(f"camera pose mode {mode!r} is unknown (known: {', '.join(POSE_MODES)})")
    u = torch.rand(n, 2, generator=generator)
    if mode == "frontal":
        g = torch.randn(n, 2, generator=generator).clamp(-3, 3)
        yaw = g[:, 0] * math.radians(yaw_std_deg)
        pitch = g[:, 1] * math.radians(pitch_std_deg)
    else:
        limit = math.radians(pitch_range_deg if mode == "orbit" else 89.0)
        yaw = (u[:, 0] * 2 - 1) * math.pi
        pitch = torch.asin((u[:, 1] * 2 - 1) * math.sin(limit))
    return orbit_labels(yaw, pitch, spec).to(_device(device))


def turntable_poses(
    num_frames: int,
    spec: CameraSpec = CameraSpec(),
    pitch_deg: float = 0.0,
    start_yaw_deg: float = 0.0,
) -> torch.Tensor:
    """``[F, 25]``: one full turn in equal yaw steps (the last frame stops one step short of
    the first, so the video loops)."""
    yaw = math.radians(start_yaw_deg) + torch.arange(num_frames) * (2 * math.pi / num_frames)
    return orbit_labels(yaw, torch.full((num_frames,), math.radians(pitch_deg)), spec)


def wobble_poses(
    num_frames: int,
    spec: CameraSpec = CameraSpec(),
    yaw_amp_deg: float = 25.0,
    pitch_amp_deg: float = 10.0,
) -> torch.Tensor:
    """``[F, 25]``: a smooth closed loop around the front (a Lissajous figure)."""
    t = torch.arange(num_frames) * (2 * math.pi / num_frames)
    return orbit_labels(
        math.radians(yaw_amp_deg) * t.sin(), math.radians(pitch_amp_deg) * (2 * t).sin() / 2, spec
    )


def ray_bundle(c: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of ``resolution²`` images: (origins ``[N, R², 3]``,
    unit directions ``[N, R², 3]``), row-major (rows v, columns u)."""
    cam2world, K = split_labels(c)
    n = c.shape[0]
    centres = (torch.arange(resolution, device=c.device, dtype=c.dtype) + 0.5) / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    uv = torch.stack([u.reshape(-1), v.reshape(-1)], -1)  # [R², 2]
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    x = (uv[None, :, 0] - cx) / fx
    y = (uv[None, :, 1] - cy) / fy
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # [N, R², 3]
    dirs = torch.nn.functional.normalize(d_cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand(n, resolution * resolution, 3)
    return origins, dirs


def unproject_depth(c: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """World points ``[N, h, w, 3]`` of a depth map ``[N, 1, h, w]`` (distance along the unit
    ray, EG3D's ``image_depth``); square maps."""
    n, _, h, w = depth.shape
    if h != w:
        raise ValueError(f"unproject_depth: square depth maps only, got {h}x{w}")
    origins, dirs = ray_bundle(c, h)
    pts = origins + dirs * depth.reshape(n, h * w, 1)
    return pts.reshape(n, h, w, 3)


def project(points: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World ``points [N, P, 3]`` -> (normalized image coords ``[N, P, 2]`` (u, v) in [0, 1]
    across the image, camera-space depth z ``[N, P]``)."""
    cam2world, K = split_labels(c)
    R, t = cam2world[:, :3, :3], cam2world[:, :3, 3]
    p_cam = (points - t[:, None]) @ R  # R orthonormal: world -> camera is Rᵀ(p − t)
    z = p_cam[..., 2]
    uv = torch.stack(
        [
            K[:, None, 0, 0] * p_cam[..., 0] / z + K[:, None, 0, 2],
            K[:, None, 1, 1] * p_cam[..., 1] / z + K[:, None, 1, 2],
        ],
        -1,
    )
    return uv, z


def camera_label_yaw_pitch(
    c: torch.Tensor, pivot: Sequence[float] = CameraSpec().pivot
) -> tuple[torch.Tensor, torch.Tensor]:
    """(yaw ``[N]``, pitch ``[N]``) of the camera positions around ``pivot``."""
    cam2world, _ = split_labels(c)
    d = cam2world[:, :3, 3] - torch.as_tensor(pivot, dtype=c.dtype, device=c.device)
    d = torch.nn.functional.normalize(d, dim=-1)
    return torch.atan2(d[:, 0], d[:, 2]), torch.asin(d[:, 1].clamp(-1, 1))


def to_pytorch3d(c: torch.Tensor, image_size: int) -> Any:
    """pytorch3d ``PerspectiveCameras`` equal to labels ``c [N, 25]`` for square images.

    pytorch3d's view space is +X left, +Y up, +Z forward with row vectors
    (``X_view = X_world @ R + T``); OpenCV's is +X right, +Y down, +Z forward, so the
    world->view rotation is OpenCV's with x and y negated. Intrinsics are given in pixels
    (``in_ndc=False``), so ``transform_points_screen`` gives ``project(...) · image_size``.
    """
    from pytorch3d.renderer import PerspectiveCameras

    cam2world, K = split_labels(c.float())
    R_cv = cam2world[:, :3, :3].transpose(1, 2)  # world -> camera (OpenCV), column vectors
    t_cv = -(R_cv @ cam2world[:, :3, 3:])[..., 0]
    flip = torch.tensor([-1.0, -1.0, 1.0], device=c.device)
    R_p3d = (R_cv * flip[:, None]).transpose(1, 2)  # row-vector convention
    T_p3d = t_cv * flip
    s = float(image_size)
    focal = torch.stack([K[:, 0, 0] * s, K[:, 1, 1] * s], -1)
    principal = torch.stack([K[:, 0, 2] * s, K[:, 1, 2] * s], -1)
    return PerspectiveCameras(
        focal_length=focal,
        principal_point=principal,
        R=R_p3d,
        T=T_p3d,
        in_ndc=False,
        image_size=torch.tensor([[s, s]]).expand(c.shape[0], 2),
        device=c.device,
    )
