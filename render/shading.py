"""Geometry you can see: normals from a depth map and a simple lit (Lambert) shading.

EG3D shows geometry as normalized depth; a shaded surface shows bumps, dents and the
difference between a painted and a real nose much better. Normals come from the surface
points that :func:`link_core.data.cameras.unproject_depth` gives, so they live in world units
and turn correctly with the camera.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from link_core.data.cameras import split_labels, unproject_depth

# A light above-left of the camera, in OpenCV camera space (x right, y down, z forward):
# the direction from the surface towards the light.
_LIGHT_CAM = (-0.4, -0.6, -1.0)


def depth_normals(depth: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Unit world-space normals ``[B, H, W, 3]`` of depth maps ``[B, 1, H, W]`` seen from
    cameras ``c [B, 25]``, by central differences of the surface points, turned to face the
    camera."""
    pts = unproject_depth(c, depth).float()  # [B, H, W, 3]
    p = F.pad(pts.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate").permute(0, 2, 3, 1)
    du = p[:, 1:-1, 2:] - p[:, 1:-1, :-2]  # along image columns
    dv = p[:, 2:, 1:-1] - p[:, :-2, 1:-1]  # along image rows
    n = F.normalize(torch.cross(dv, du, dim=-1), dim=-1, eps=1e-12)
    cam2world, _ = split_labels(c.float())
    to_camera = cam2world[:, None, None, :3, 3] - pts
    flip = (n * to_camera).sum(-1, keepdim=True) < 0
    return torch.where(flip, -n, n)


def shade(
    depth: torch.Tensor,
    c: torch.Tensor,
    alpha: torch.Tensor | None = None,
    ambient: float = 0.25,
    albedo: float = 0.85,
) -> np.ndarray:
    """Lambert-shaded grey surfaces ``[B, H, W, 3]`` uint8 on white, from depth
    ``[B, 1, H, W]``, cameras ``c [B, 25]`` and optional opacity ``alpha [B, 1, H, W]`` (where
    the rays hit nothing the result blends to the white background)."""
    n = depth_normals(depth, c)
    cam2world, _ = split_labels(c.float())
    light = torch.tensor(_LIGHT_CAM, device=n.device)
    light = F.normalize(light @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)  # [B, 3] world
    lit = (n * light[:, None, None, :]).sum(-1).clamp(min=0)
    value = (ambient + (1 - ambient) * lit) * albedo
    if alpha is not None:
        a = alpha[:, 0].float().clamp(0, 1)
        value = value * a + (1 - a)
    grey = (value.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return np.repeat(grey[..., None], 3, axis=-1)
