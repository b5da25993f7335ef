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
``f = 1 / (tan(fov/2) · 1.414)`` are EG3D's published conventions. pytorch3d is imported only inside
:func:`to_pytorch3d`, so training never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

CAMERA_LABEL_DIM = 25  # EG3D: flattened 4x4 cam2world + flattened 3x3 normalized intrinsics
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

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"CameraSpec.radius must be > 0, got {self.radius}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"CameraSpec.fov_deg must be in (0, 180), got {self.fov_deg}")
        if len(self.pivot) != 3:
            raise ValueError(f"CameraSpec.pivot must be 3 floats, got {self.pivot!r}")

    @property
    def focal(self) -> float:
        """Normalized focal length (``f`` of the label's intrinsics)."""
        return fov_to_focal(self.fov_deg)


def _device(device: Any) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def intrinsics(focal: float, n: int = 1, device: Any = None) -> torch.Tensor:
    """``[N, 3, 3]`` normalized intrinsics with the principal point at the centre."""
    K = torch.tensor(
        [[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]],
        dtype=torch.float32,
        device=_device(device),
    )
    return K.expand(n, 3, 3).clone()


def look_at(
    eye: torch.Tensor, target: torch.Tensor | Sequence[float], up: Sequence[float] = (0.0, 1.0, 0.0)
) -> torch.Tensor:
    """``[N, 4, 4]`` OpenCV cam2world for cameras at ``eye [N, 3]`` looking at ``target``
    (``[N, 3]`` or ``[3]``); world ``up`` appears up in the image (camera −y).

    Columns of the rotation are the camera's x (right), y (down), z (toward the target) in
    world coordinates; ``det = +1``. A camera looking straight along ``up`` has no defined
    roll: it then takes world +z (or +x, if it looks along z) as its image-up instead."""
    eye = eye.float()
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device).expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    up_t = torch.as_tensor(up, dtype=eye.dtype, device=eye.device)
    up_t = torch.nn.functional.normalize(up_t, dim=-1).expand_as(z)
    # z × up points right when up is image-up (e.g. (0,0,-1) × (0,1,0) = +x); y = z × x then
    # points down, so (x, y, z) is right-handed like OpenCV's camera frame.
    x = torch.linalg.cross(z, up_t)
    degenerate = x.norm(dim=-1, keepdim=True) < 1e-6
    if degenerate.any():  # looking along up: any roll is as good, pick a fixed one
        ez = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
        ex = torch.tensor([1.0, 0.0, 0.0], dtype=eye.dtype, device=eye.device)
        alt = torch.where(z[:, 2:].abs() < 0.9, ez, ex)
        x = torch.where(degenerate, torch.linalg.cross(z, alt), x)
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
    """``[N, 4, 4]`` cam2world and a normalized focal (scalar or ``[N]``) -> labels
    ``[N, 25]``, with the principal point at the image centre (0.5, 0.5)."""
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
    # Draw on the generator's device (a CUDA generator cannot fill CPU tensors); the draw
    # order (uniforms first, then normals) is kept stable so seeded poses do not change.
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, 2, generator=generator, device=gdev)
    if mode == "frontal":
        g = torch.randn(n, 2, generator=generator, device=gdev).clamp(-3, 3)
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
    """``[F, 25]``: a smooth closed loop around the front, a figure eight (Lissajous 1:2)
    that starts frontal; yaw and pitch peak at ``±yaw_amp_deg`` and ``±pitch_amp_deg``."""
    t = torch.arange(num_frames) * (2 * math.pi / num_frames)
    return orbit_labels(
        math.radians(yaw_amp_deg) * t.sin(), math.radians(pitch_amp_deg) * (2 * t).sin(), spec
    )


def pixel_centres(height: int, width: int, device: Any = None) -> torch.Tensor:
    """``[height·width, 2]`` normalized (u, v) of pixel centres, row-major (rows v, cols u).

    Pixel j of ``width`` has u = (j + 0.5) / width, as in the label's normalized intrinsics.
    """
    v = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
    u = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu.reshape(-1), vv.reshape(-1)], -1)


def ray_bundle_hw(c: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of ``height × width`` images: (origins, unit
    directions), each ``[N, height·width, 3]``, row-major."""
    cam2world, K = split_labels(c)
    uv = pixel_centres(height, width, c.device).to(c.dtype)
    # Invert u = f·x/z + cx at z = 1; the label's K is normalized per axis, so this also
    # holds for non-square images.
    x = (uv[None, :, 0] - K[:, 0, 2, None]) / K[:, 0, 0, None]
    y = (uv[None, :, 1] - K[:, 1, 2, None]) / K[:, 1, 1, None]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # [N, P, 3]
    dirs = torch.nn.functional.normalize(d_cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand(-1, height * width, 3)
    return origins, dirs


def ray_bundle(c: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of ``resolution²`` images: (origins ``[N, R, 3]``,
    unit directions ``[N, R, 3]``) with ``R = resolution²``, row-major (rows v, columns u)."""
    return ray_bundle_hw(c, resolution, resolution)


def unproject_depth(c: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """World points ``[N, h, w, 3]`` of a depth map ``[N, 1, h, w]``.

    Depth is the distance along the unit ray through each pixel centre (EG3D's
    ``image_depth``), not camera-space z: ``point = origin + depth · direction``."""
    if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[0] != c.shape[0]:
        raise ValueError(
            f"unproject_depth: depth must be [N, 1, h, w] with N = {c.shape[0]} cameras, "
            f"got {list(depth.shape)}"
        )
    n, _, h, w = depth.shape
    origins, dirs = ray_bundle_hw(c, h, w)
    pts = origins + dirs * depth.reshape(n, h * w, 1).to(dirs.dtype)
    return pts.reshape(n, h, w, 3)


def project(points: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World ``points [N, P, 3]`` -> (normalized image coords ``[N, P, 2]`` (u, v) in [0, 1]
    across the image, camera-space depth z ``[N, P]``).

    Points behind the camera (z <= 0) get meaningless (u, v): mask them with z."""
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
    (``in_ndc=False``), so ``transform_points_screen`` (+X right, +Y down, origin at the
    top-left corner) gives ``project(...) · image_size``, and pytorch3d's rasterizers fill
    images whose row i, column j is the pixel centred at (u, v) = ((j+0.5)/S, (i+0.5)/S),
    like the generator's images.
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
        image_size=torch.tensor([[s, s]], device=c.device).expand(c.shape[0], 2),  # (H, W)
        device=c.device,
    )
