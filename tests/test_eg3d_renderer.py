"""The volume renderer on analytic fields (no network involved)."""

from __future__ import annotations

import pytest
import torch

from eg3d_link.renderer import (
    RenderOptions,
    composite,
    importance_depths,
    render_rays,
    stratified_depths,
)


def sphere_field(radius: float = 0.3, value: float = 1000.0):
    """Raw σ = ``value`` inside a sphere at the origin, very negative outside; red.
    (Rendered depth sits 1/σ behind a surface: a dense sphere keeps that bias tiny.)"""

    def field(points: torch.Tensor):
        inside = points.norm(dim=-1, keepdim=True) <= radius
        sigma = torch.where(inside, torch.full_like(inside, value, dtype=points.dtype), -30.0)
        # Colour is smooth (red everywhere): a colour step at the surface would be averaged
        # over the interval that crosses it (midpoint rule), which is not what we test here.
        feats = torch.cat([torch.ones_like(points[..., :1]), torch.zeros_like(points[..., :2])], -1)
        return sigma, feats

    return field


def centre_ray(n: int = 1):
    origins = torch.tensor([0.0, 0.0, 2.7]).expand(1, n, 3).clone()
    dirs = torch.tensor([0.0, 0.0, -1.0]).expand(1, n, 3).clone()
    return origins, dirs


@pytest.mark.parametrize("deterministic", [True, False])
def test_sphere_depth_at_centre(deterministic):
    opts = RenderOptions(num_coarse=48, num_fine=48)
    out = render_rays(sphere_field(0.3), *centre_ray(4), opts, deterministic=deterministic)
    # The surface is 0.3 in front of the origin: depth 2.7 - 0.3 = 2.4.
    assert out["depth"].shape == (1, 4, 1)
    assert torch.allclose(out["depth"], torch.full_like(out["depth"], 2.4), atol=0.02)
    assert torch.all(out["opacity"] > 0.99)
    assert torch.allclose(out["features"][..., 0], torch.ones(1, 4), atol=1e-3)


def test_importance_sampling_sharpens_depth():
    coarse = RenderOptions(num_coarse=12, num_fine=0)
    fine = RenderOptions(num_coarse=12, num_fine=24)
    field = sphere_field(0.27)
    err_c = (render_rays(field, *centre_ray(), coarse, True)["depth"] - 2.43).abs().item()
    err_f = (render_rays(field, *centre_ray(), fine, True)["depth"] - 2.43).abs().item()
    assert err_f < err_c
    assert err_f < 0.01


@pytest.mark.parametrize("white", [True, False])
def test_empty_field_renders_background(white):
    opts = RenderOptions(num_coarse=16, num_fine=16, white_background=white)

    def empty(points):
        return torch.full_like(points[..., :1], -40.0), torch.rand_like(points)

    out = render_rays(empty, *centre_ray(3), opts, deterministic=True)
    assert torch.allclose(
        out["features"], torch.full_like(out["features"], 1.0 if white else 0.0), atol=1e-4
    )
    assert torch.allclose(out["depth"], torch.full_like(out["depth"], opts.ray_end), atol=1e-3)
    assert torch.all(out["opacity"] < 1e-4)


def test_clamp_box_removes_density_outside():
    opts = RenderOptions(num_coarse=32, num_fine=0, box_size=0.4)

    def solid(points):  # dense everywhere; only the box [-0.2, 0.2]^3 may keep it
        return torch.full_like(points[..., :1], 50.0), torch.ones_like(points)

    out = render_rays(solid, *centre_ray(), opts, deterministic=True)
    assert abs(out["depth"].item() - 2.5) < 0.05  # enters the box at z = 0.2
    free = RenderOptions(num_coarse=32, num_fine=0, clamp_box=False)
    assert render_rays(solid, *centre_ray(), free, True)["depth"].item() < 2.3


def test_composite_weights_sum_to_opacity():
    t = stratified_depths(
        (2, 5), 1.0, 2.0, 16, jitter=True, generator=torch.Generator().manual_seed(0)
    )
    sigma = torch.rand(2, 5, 16, 1) * 5
    feats = torch.rand(2, 5, 16, 3)
    feat, depth, w, opacity = composite(sigma, feats, t, far=2.0)
    assert torch.allclose(w.sum(-1, keepdim=True), opacity)
    assert torch.all((depth >= 1.0) & (depth <= 2.0))
    assert torch.all(feat <= 1.0 + 1e-5)


def test_importance_depths_inside_range_and_follow_weights():
    t = torch.linspace(2.0, 3.0, 11).expand(1, 1, 11)
    w = torch.zeros(1, 1, 10)
    w[..., 4] = 1.0  # all mass in [2.4, 2.5]
    s = importance_depths(t, w, 64, jitter=False)
    assert torch.all((s >= 2.0) & (s <= 3.0))
    assert ((s >= 2.4) & (s <= 2.5)).float().mean() > 0.95


def test_deterministic_render_is_repeatable():
    opts = RenderOptions(num_coarse=8, num_fine=8)
    a = render_rays(sphere_field(), *centre_ray(2), opts, deterministic=True)["depth"]
    b = render_rays(sphere_field(), *centre_ray(2), opts, deterministic=True)["depth"]
    assert torch.equal(a, b)


def test_bad_options():
    with pytest.raises(ValueError):
        RenderOptions(ray_start=3.0, ray_end=2.0)
    with pytest.raises(ValueError):
        RenderOptions(num_coarse=1)
