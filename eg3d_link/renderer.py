"""Volume rendering of a density/feature field along camera rays (EG3D §4, NeRF §4-5).

Pure functions of tensors: sample depths along each ray (stratified, then importance
sampled from the coarse weights), query a field, and alpha-composite features and depth.

Conventions: rays are ``[B, R, 3]`` origins and unit directions; depths ``t`` are distances
along the ray, so the composited depth is EG3D's ``image_depth`` (world units). Density is
``softplus(σ_raw + density_bias)`` (EG3D: bias −1), zero outside the box ``[-s/2, s/2]³``
when ``clamp_box`` (no floaters outside the object's volume, clean silhouettes early).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FieldFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``field(points [B, P, 3]) -> (sigma_raw [B, P, 1], features [B, P, C])``."""


@dataclass(frozen=True)
class RenderOptions:
    ray_start: float = 2.25
    """Near bound of every ray (world units from the camera)."""
    ray_end: float = 3.3
    """Far bound; also the depth reported where a ray hits nothing."""
    box_size: float = 1.0
    """Edge of the cube ``[-s/2, s/2]³`` the tri-planes span."""
    num_coarse: int = 48
    """Stratified samples per ray."""
    num_fine: int = 48
    """Importance samples per ray drawn from the coarse weights (0: none)."""
    white_background: bool = False
    """Composite onto white (feature value 1) instead of black (0)."""
    clamp_box: bool = True
    """Zero density outside the box."""
    density_bias: float = -1.0

    def __post_init__(self) -> None:
        if not 0 < self.ray_start < self.ray_end:
            raise ValueError(
                f"ray range: need 0 < ray_start < ray_end, got {self.ray_start}, {self.ray_end}"
            )
        if self.num_coarse < 2 or self.num_fine < 0:
            raise ValueError("samples per ray: need num_coarse >= 2 and num_fine >= 0")
        if self.box_size <= 0:
            raise ValueError(f"box_size must be positive, got {self.box_size}")


def stratified_depths(
    shape: tuple[int, int],
    near: float,
    far: float,
    num: int,
    jitter: bool,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[B, R, num]`` depths: one per equal bin of ``[near, far]``, at a uniformly random
    place in the bin when ``jitter``, else at the bin's centre (deterministic renders)."""
    edges = torch.linspace(near, far, num + 1, device=device)
    lo, width = edges[:-1], edges[1:] - edges[:-1]
    if jitter:
        u = torch.rand(*shape, num, device=device, generator=generator)
    else:
        u = torch.full((*shape, num), 0.5, device=device)
    return lo + width * u


def density(sigma_raw: torch.Tensor, points: torch.Tensor, opts: RenderOptions) -> torch.Tensor:
    """Activated density ``[..., 1]`` from the raw field output at ``points [..., 3]``."""
    sigma = F.softplus(sigma_raw + opts.density_bias)
    if opts.clamp_box:
        inside = (points.abs() <= opts.box_size / 2).all(dim=-1, keepdim=True)
        sigma = sigma * inside.to(sigma.dtype)
    return sigma


def composite(
    sigma: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    far: float,
    background: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite samples along each ray (NeRF eq. 3, midpoint rule).

    sigma ``[B, R, S, 1]``, features ``[B, R, S, C]``, depths ``[B, R, S]`` (sorted).
    Each of the S−1 intervals takes the mean density and feature of its two ends.
    Returns (features ``[B, R, C]``, depth ``[B, R, 1]``, weights ``[B, R, S−1]``,
    opacity ``[B, R, 1]``). What the ray does not hit is ``background`` (features) and
    ``far`` (depth): depth = Σ wᵢ tᵢ + (1 − Σ wᵢ)·far, smooth where the surface fades out.
    """
    delta = depths[..., 1:] - depths[..., :-1]
    t_mid = (depths[..., 1:] + depths[..., :-1]) / 2
    sigma_mid = (sigma[..., 1:, 0] + sigma[..., :-1, 0]) / 2
    feat_mid = (features[..., 1:, :] + features[..., :-1, :]) / 2
    alpha = 1 - torch.exp(-sigma_mid * delta)
    # Transmittance before each interval: exclusive cumulative product of (1 − α).
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], -1), -1)
    weights = alpha * trans[..., :-1]
    opacity = weights.sum(-1, keepdim=True)
    feat = (weights[..., None] * feat_mid).sum(-2) + (1 - opacity) * background
    depth = (weights * t_mid).sum(-1, keepdim=True) + (1 - opacity) * far
    return feat, depth, weights, opacity


def importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[B, R, num]`` depths drawn from the piecewise-constant pdf of the coarse weights.

    depths ``[B, R, S]`` (sorted bin edges), weights ``[B, R, S−1]``. Inverse-CDF sampling
    with uniform (``jitter``) or evenly spaced quantiles; a small floor on the weights keeps
    empty rays sampling everywhere. No gradient flows through the sample positions.
    """
    with torch.no_grad():
        w = weights + 1e-5
        pdf = w / w.sum(-1, keepdim=True)
        cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, -1)], -1)
        cdf[..., -1] = 1.0
        shape = (*depths.shape[:-1], num)
        if jitter:
            u = torch.rand(shape, device=depths.device, generator=generator)
        else:
            u = ((torch.arange(num, device=depths.device) + 0.5) / num).expand(shape)
        u = u.contiguous()
        idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
        c0, c1 = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
        t0, t1 = depths.gather(-1, idx - 1), depths.gather(-1, idx)
        frac = ((u - c0) / (c1 - c0).clamp(min=1e-8)).clamp(0, 1)
        return t0 + frac * (t1 - t0)


def render_rays(
    field: FieldFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    opts: RenderOptions,
    deterministic: bool = False,
) -> dict[str, torch.Tensor]:
    """Render ``[B, R]`` rays through ``field``.

    origins, directions: ``[B, R, 3]`` (unit directions). ``deterministic`` places samples
    at bin centres and evenly spaced quantiles, so the same rays and field give the same
    render (the link loss compares renders of nearby latents).
    Returns ``{"features": [B, R, C], "depth": [B, R, 1], "opacity": [B, R, 1]}``.
    """
    B, R, _ = origins.shape
    jitter = not deterministic
    background = 1.0 if opts.white_background else 0.0

    def query(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pts = origins[:, :, None, :] + directions[:, :, None, :] * t[..., None]  # [B, R, S, 3]
        sigma_raw, feat = field(pts.reshape(B, -1, 3))
        S = t.shape[-1]
        sigma = density(sigma_raw.reshape(B, R, S, 1), pts, opts)
        return sigma, feat.reshape(B, R, S, -1)

    t = stratified_depths(
        (B, R), opts.ray_start, opts.ray_end, opts.num_coarse, jitter, origins.device
    )
    sigma, feat = query(t)
    if opts.num_fine > 0:
        _, _, weights, _ = composite(sigma, feat, t, opts.ray_end, background)
        t_fine = importance_depths(t, weights, opts.num_fine, jitter)
        sigma_f, feat_f = query(t_fine)
        t, order = torch.sort(torch.cat([t, t_fine], -1), -1)
        sigma = torch.cat([sigma, sigma_f], -2).gather(-2, order[..., None])
        feat_all = torch.cat([feat, feat_f], -2)
        feat = feat_all.gather(-2, order[..., None].expand(-1, -1, -1, feat_all.shape[-1]))
    out, depth, _, opacity = composite(sigma, feat, t, opts.ray_end, background)
    return {"features": out, "depth": depth, "opacity": opacity}
