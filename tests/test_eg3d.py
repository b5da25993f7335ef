"""The EG3D backbone: shapes, determinism, SR factors, pose conditioning, dual D, schedules,
density regularizer, the paper's FFHQ-512 preset, and box3d regions / 3-D link losses."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY, TINY_EG3D

from eg3d_link import build, g_regularizers
from eg3d_link.networks import gaussian_blur, sample_triplanes
from link_core.data.cameras import CameraSpec, frontal_labels, orbit_labels
from link_core.errors import ConfigError
from link_core.link import (
    Box3DRegion,
    Link,
    build_links,
    link_loss,
    volume_link_loss,
    volume_points,
)
from link_core.train.config import load_config


def tiny(*extra: str):
    cfg = load_config(None, [*TINY, *TINY_EG3D, *extra])
    torch.manual_seed(0)
    return cfg, *build(cfg.model)


def test_outputs_shapes_ranges_and_determinism():
    cfg, G, D = tiny()
    c = frontal_labels(2, G.camera)
    ws = G.mapping(torch.randn(2, G.z_dim), c)
    out = G.synthesis(ws, c, noise_mode="const")
    assert out["image"].shape == (2, 3, 16, 16)
    assert out["image_raw"].shape == (2, 3, 8, 8)
    assert out["image_depth"].shape == (2, 1, 8, 8)
    depth = out["image_depth"]
    assert torch.all(
        (
            depth >= cfg.model.extra["ray_start"]
            if "ray_start" in cfg.model.extra
            else depth >= 2.25 - 1e-4
        )
        & (depth <= 3.3 + 1e-4)
    )
    assert torch.all(out["image_raw"].abs() <= 1.0 + 1e-3)
    again = G.synthesis(ws, c, noise_mode="const")
    for k in out:
        assert torch.equal(out[k], again[k]), k
    assert D(out, c).shape == (2, 1)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_super_resolution_factors_and_backward(factor):
    res = 32
    _, G, _ = tiny(
        f"model.resolution={res}",
        f"data.resolution={res}",
        f"model.extra.render_resolution={res // factor}",
        f"model.extra.sr_factor={factor}",
    )
    c = frontal_labels(1, G.camera)
    out = G.synthesis(G.mapping(torch.randn(1, G.z_dim), c), c)
    assert out["image"].shape == (1, 3, res, res)
    assert out["image_raw"].shape == (1, 3, res // factor, res // factor)
    raw_before = out["image_raw"].detach().clone()
    (out["image"].square().mean() + out["image_raw"].mean()).backward()  # both paths
    assert torch.equal(out["image_raw"].detach(), raw_before)  # SR never writes into it


def test_sample_mixed_matches_render_field_and_reuses_planes():
    _, G, _ = tiny()
    ws = G.mapping(torch.randn(2, G.z_dim), frontal_labels(2, G.camera))
    pts = (torch.rand(2, 50, 3) - 0.5) * 1.2
    a = G.sample_mixed(pts, ws)
    b = G.sample_mixed(pts, ws, planes=G.planes(ws, "const"))
    assert a["sigma"].shape == (2, 50, 1) and a["rgb"].shape == (2, 50, 3)
    assert torch.equal(a["sigma"], b["sigma"])
    outside = (pts.abs() > 0.5).any(-1)
    assert torch.all(a["sigma"][outside] == 0)  # density clamped to the box
    assert torch.all((a["rgb"] >= -0.01) & (a["rgb"] <= 1.01))


def test_triplane_sampling_reads_each_plane():
    planes = torch.zeros(1, 3, 1, 4, 4)
    planes[0, 0, 0] = 3.0  # xy plane constant 3, others 0 -> average 1
    f = sample_triplanes(planes, torch.zeros(1, 5, 3), box_size=1.0)
    assert torch.allclose(f, torch.ones(1, 5, 1))
    # Outside the box every plane reads zero (padding).
    assert torch.allclose(
        sample_triplanes(planes, torch.full((1, 1, 3), 2.0), 1.0), torch.zeros(1, 1, 1)
    )


def test_pose_conditioning_swaps_only_in_training():
    _, G, _ = tiny("model.extra.swap_prob=1.0")
    z = torch.randn(3, G.z_dim)
    c = orbit_labels(torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3), G.camera)
    G.train()
    swapped = G.mapping(z, c)
    assert torch.allclose(swapped, G.mapping_net(z, c.roll(1, 0)))
    G.eval()
    assert torch.allclose(G.mapping(z, c), G.mapping_net(z, c))


def test_dual_discriminator_reals_fakes_and_r1():
    _, G, D = tiny()
    c = frontal_labels(2, G.camera)
    fake = G.synthesis(G.mapping(torch.randn(2, G.z_dim), c), c)
    assert D(fake, c).shape == (2, 1)
    real = torch.rand(2, 3, 16, 16, requires_grad=True)
    logits = D({"image": real}, c)
    (grad,) = torch.autograd.grad(logits.sum(), real)
    assert grad.abs().sum() > 0


def test_schedules_fade_render_resolution_and_blur():
    _, G, D = tiny(
        "model.extra.render_resolution_final=16",
        "model.extra.render_resolution_fade_kimg=10",
        "model.extra.blur_sigma=2.0",
        "model.extra.blur_fade_kimg=4",
    )
    G.update_schedule(0.0)
    D.update_schedule(0.0)
    assert int(G.render_resolution) == 8 and float(D.blur_sigma) == 2.0
    G.update_schedule(5.0)
    D.update_schedule(5.0)
    assert int(G.render_resolution) == 12 and float(D.blur_sigma) == 0.0
    c = frontal_labels(1, G.camera)
    out = G.synthesis(G.mapping(torch.randn(1, G.z_dim), c), c)
    assert out["image_raw"].shape[-1] == 12 and out["image"].shape[-1] == 16
    state = G.state_dict()
    assert int(state["render_resolution"]) == 12  # checkpoints carry the schedule
    # Loaded into fresh networks (at the schedules' start), forward follows the loaded values.
    D.update_schedule(1.0)  # blur 1.5
    _, G2, D2 = tiny(
        "model.extra.render_resolution_final=16",
        "model.extra.render_resolution_fade_kimg=10",
        "model.extra.blur_sigma=2.0",
        "model.extra.blur_fade_kimg=4",
    )
    G2.load_state_dict(state)
    D2.load_state_dict(D.state_dict())
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim), c)
        out = G2.synthesis(ws, c, noise_mode="const")
        assert out["image_raw"].shape[-1] == 12
        assert torch.equal(D2(out, c), D(out, c)) and D2._blur_sigma == 1.5


def test_gaussian_blur_preserves_mean_and_smooths():
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1.0
    y = gaussian_blur(x, 1.0)
    assert y.shape == x.shape
    assert abs(y.sum().item() - 1.0) < 1e-3 and y.max() < 0.2


def test_density_regularizer_gives_gradients():
    cfg, G, _ = tiny()
    (reg,) = g_regularizers(cfg.model)
    assert reg.name == "density" and reg.interval == 4
    c = frontal_labels(2, G.camera)
    terms = reg.fn(G, G.mapping(torch.randn(2, G.z_dim), c), c)
    terms["density"].backward()
    assert terms["density"].item() >= 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.backbone.parameters())


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match="model.extra.plane_chanels"):
        tiny("model.extra.plane_chanels=4")
    with pytest.raises(ConfigError, match="sr_factor"):
        tiny("model.extra.sr_factor=3")
    with pytest.raises(ConfigError, match="c_dim"):
        tiny("model.c_dim=0")


def test_ffhq512_preset_builds_and_renders_one_image():
    """The paper's EG3D set-up (256² planes × 32 ch, 64² rendering, SR to 512) at batch 1;
    samples per ray reduced so the test stays fast on CPU."""
    cfg = load_config(
        "configs/eg3d_ffhq512.yaml", ["model.extra.num_coarse=4", "model.extra.num_fine=4"]
    )
    torch.manual_seed(0)
    G, D = build(cfg.model)
    n_params = sum(p.numel() for p in G.parameters())
    assert 20e6 < n_params < 40e6  # NVlabs: 30.7 M
    assert G.num_ws == 14
    c = frontal_labels(1, G.camera)
    with torch.no_grad():
        out = G.synthesis(G.mapping(torch.randn(1, G.z_dim), c), c, noise_mode="const")
        logits = D(out, c)
    assert out["image"].shape == (1, 3, 512, 512)
    assert out["image_raw"].shape == (1, 3, 64, 64)
    assert torch.isfinite(logits).all()


# -- 3-D regions and 3-D link losses ---------------------------------------------------


def sphere_depth(c: torch.Tensor, res: int, radius: float = 0.3, far: float = 3.3):
    """Analytic depth of a sphere at the origin seen from cameras ``c``: ``[B, 1, res, res]``."""
    from link_core.data.cameras import ray_bundle

    o, d = ray_bundle(c, res)
    b = (o * d).sum(-1)
    disc = b.square() - (o.square().sum(-1) - radius**2)
    t = torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.full_like(b, far))
    return t.reshape(-1, 1, res, res)


def test_box3d_mask_follows_the_part_from_every_angle():
    spec = CameraSpec(radius=2.7, fov_deg=18.837, pivot=(0.0, 0.0, 0.0))
    yaws = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 2])
    c = orbit_labels(yaws, torch.zeros(4), spec)
    res = 32
    depth = sphere_depth(c, res)
    top = Box3DRegion(((-0.5, 0.0, -0.5, 0.5, 0.5, 0.5),))  # upper half of the sphere
    mask = top({"image": torch.zeros(4, 3, res, res), "image_depth": depth}, c)
    hit = depth < 3.3
    assert mask.shape == (4, 1, res, res)
    assert torch.all(mask[~hit] == 0)  # background is never inside
    for k in range(4):  # from every side: the upper half of the disc, not the lower
        m, h = mask[k, 0], hit[k, 0]
        assert m[: res // 2][h[: res // 2]].mean() > 0.95
        assert m[res // 2 :].sum() <= res  # at most the equator row
    # A box on the +x side shows on the image's right from the front, not from the back.
    side = Box3DRegion(((0.05, -0.5, -0.5, 0.5, 0.5, 0.5),))
    ms = side({"image": torch.zeros(4, 3, res, res), "image_depth": depth}, c)
    assert ms[0, 0, :, res // 2 + 2 :].sum() > 0 and ms[0, 0, :, : res // 2 - 2].sum() == 0
    assert ms[2, 0, :, : res // 2 - 2].sum() > 0 and ms[2, 0, :, res // 2 + 2 :].sum() == 0


TOP = Box3DRegion(((-0.5, 0.0, -0.5, 0.5, 0.5, 0.5),))


class AnalyticField3D(torch.nn.Module):
    """A 'generator' whose part inside ``TOP`` depends only on w[0:4], the rest on w[4:]."""

    def __init__(self):
        super().__init__()
        self.w_dim, self.num_ws = 8, 1
        self.weight = torch.nn.Parameter(torch.ones(()))

    def colour(self, ws):
        top = ws[:, 0, :4].mean(-1)
        bottom = ws[:, 0, 4:].mean(-1)
        return top, bottom

    def synthesis(self, ws, c, noise_mode="const"):
        res = 16
        depth = sphere_depth(c, res)
        from link_core.data.cameras import unproject_depth

        pts = unproject_depth(c, depth)
        top, bottom = self.colour(ws)
        upper = TOP.contains(pts).float()[:, None]
        val = upper * top[:, None, None, None] + (1 - upper) * bottom[:, None, None, None]
        return {"image": (val * self.weight).expand(-1, 3, -1, -1), "image_depth": depth}

    def sample_mixed(self, points, ws):
        top, bottom = self.colour(ws)
        upper = TOP.contains(points)[..., None].float()
        rgb = (upper * top[:, None, None] + (1 - upper) * bottom[:, None, None]).sigmoid()
        sigma = (points.norm(dim=-1, keepdim=True) < 0.3).float() * 50
        return {"sigma": sigma, "rgb": rgb.expand(-1, -1, 3)}


def test_link_losses_vanish_for_a_generator_linked_by_construction():
    G = AnalyticField3D()
    link = Link("top", tuple(range(4)), TOP)
    spec = CameraSpec(pivot=(0.0, 0.0, 0.0))
    c = orbit_labels(torch.tensor([0.3, 2.0]), torch.tensor([0.2, -0.1]), spec)
    ws = torch.randn(2, 1, 8)
    res = link_loss(
        lambda w, cc: G.synthesis(w, cc), ws, [link], c=c, maps={"image": 1.0, "image_depth": 1.0}
    )
    assert res.total.item() < 1e-10
    total, terms = volume_link_loss(G.sample_mixed, ws, [link], box_size=1.0, num_points=256)
    assert total.item() < 1e-10 and set(terms) == {"link/top/volume/in", "link/top/volume/out"}
    # Linking the wrong half is penalized.
    wrong = Link("top", tuple(range(4, 8)), link.region)
    assert link_loss(lambda w, cc: G.synthesis(w, cc), ws, [wrong], c=c).total.item() > 1e-4
    assert volume_link_loss(G.sample_mixed, ws, [wrong], box_size=1.0)[0].item() > 1e-4


@pytest.mark.parametrize("form", ["relative", "share"])
def test_relative_volume_term_is_a_share_of_the_change(form):
    G = AnalyticField3D()
    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(4, 1, 8, generator=gen)
    sources = ws + 2.0  # every resample changes both halves' colours a lot
    right = Link("top", tuple(range(4)), TOP)
    wrong = Link("top", tuple(range(4, 8)), TOP)
    for kw in ({"generator": gen, "alpha": 3.0}, {"sources": sources}):
        total, terms = volume_link_loss(
            G.sample_mixed, ws, [right], box_size=1.0, num_points=256, form=form, **kw
        )
        assert total.item() < 1e-6 and set(terms) == {"link/top/volume/in", "link/top/volume/out"}
        # Linked to the wrong half, every change lands on the wrong side: shares near 1.
        _, terms = volume_link_loss(
            G.sample_mixed, ws, [wrong], box_size=1.0, num_points=256, form=form, **kw
        )
        assert min(v.item() for v in terms.values()) > 0.9


def test_volume_points_cover_every_links_boxes():
    eyes = Link(
        "eyes", (0,), Box3DRegion(((-0.2, 0, 0.1, -0.1, 0.1, 0.2), (0.1, 0, 0.1, 0.2, 0.1, 0.2)))
    )
    nose = Link("nose", (1,), Box3DRegion(((-0.05, -0.1, 0.2, 0.05, 0.0, 0.3),)))
    gen = torch.Generator().manual_seed(0)
    pts = volume_points([eyes, nose], 3, 1000, 1.0, generator=gen)
    assert pts.shape == (3, 1000, 3) and pts.abs().max() <= 0.5
    # 250 points per link inside its boxes (the two eyes alike, by volume), 500 uniform
    assert (eyes.region.contains(pts).sum(1) >= 250).all()
    assert (nose.region.contains(pts).sum(1) >= 250).all()
    left = (pts[:, 500:750, 0] < 0).float().mean()
    assert 0.4 < left.item() < 0.6
    # around: the other half near the boxes (x within 0.1 of [-0.2, 0.2], z of [0.1, 0.3])
    near = volume_points([eyes, nose], 3, 1000, 1.0, around=0.1, generator=gen)
    assert near[..., 0].abs().max() <= 0.3 and near[..., 2].min() >= 0.0
    assert near[..., 2].max() <= 0.4 and near[:, :500, 2].max() > 0.35
    with pytest.raises(ValueError, match="form"):
        volume_link_loss(lambda p, w: {}, torch.zeros(1, 1, 2), [nose], box_size=1.0, form="x")


def test_box3d_config_parsing():
    (link,) = build_links(
        [{"name": "hair", "axes": [0, 8], "region": {"box3d": [-0.5, 0.1, -0.5, 0.5, 0.5, 0.5]}}],
        16,
    )
    assert isinstance(link.region, Box3DRegion) and link.region.boxes[0][1] == 0.1
    with pytest.raises(ConfigError, match="box3d"):
        build_links([{"axes": [0, 8], "region": {"box3d": [0, 0, 0, 1, 1]}}], 16)
    with pytest.raises(ConfigError, match="empty"):
        build_links([{"axes": [0, 8], "region": {"box3d": [0, 0, 0, 1, -1, 1]}}], 16)
    with pytest.raises(ConfigError, match=r"region\.box3d\[1\]: box .* is empty"):
        build_links([{"axes": [0, 8], "region": {"box3d": [[0, 0, 0, 1, 1, 1], [0] * 6]}}], 16)


def test_box3d_union_holds_points_in_any_of_its_boxes():
    left, right = [-0.3, -0.1, 0.0, -0.1, 0.1, 0.5], [0.1, -0.1, 0.0, 0.3, 0.1, 0.5]
    (link,) = build_links([{"axes": [0, 8], "region": {"box3d": [left, right]}}], 16)
    assert link.region.boxes == (tuple(left), tuple(right))
    points = torch.tensor([[-0.2, 0.0, 0.2], [0.2, 0.0, 0.2], [0.0, 0.0, 0.2], [0.2, 0.5, 0.2]])
    assert link.region.contains(points).tolist() == [True, True, False, False]
    assert link.region.contains(points[None]).shape == (1, 4)


def test_box3d_seen_masks_the_box_where_the_camera_sees_it():
    """``box3d_seen``: every pixel whose ray enters a box before meeting the surface. A box
    floating in front of the sphere is seen from its side and hidden behind the sphere from
    the other; a part whose surface retreats out of its box keeps its mask (``box3d`` loses
    it, which a fine-tune can exploit to empty the region)."""
    spec = CameraSpec(radius=2.7, fov_deg=18.837, pivot=(0.0, 0.0, 0.0))
    c = orbit_labels(torch.tensor([0.0, math.pi]), torch.zeros(2), spec)
    res = 32
    front = 0 if c[0, 11] > 0 else 1  # the camera on the +z side
    (link,) = build_links(
        [{"axes": [0, 8], "region": {"box3d_seen": [-0.1, -0.1, 0.35, 0.1, 0.1, 0.45]}}], 16
    )
    assert link.region.seen
    outputs = {"image": torch.zeros(2, 3, res, res), "image_depth": sphere_depth(c, res)}
    mask = link.region(outputs, c)
    assert mask[front].sum() >= 9  # about a 0.2 x 0.2 square at 2.3 from the camera
    assert mask[1 - front].sum() == 0  # the sphere stands in front of it
    assert Box3DRegion(link.region.boxes)(outputs, c).sum() == 0  # no surface inside it

    cap = [-0.2, -0.2, 0.2, 0.2, 0.2, 0.5]  # holds the front of a 0.3 sphere
    inside, seen = Box3DRegion((tuple(cap),)), Box3DRegion((tuple(cap),), seen=True)
    before = {"image": outputs["image"], "image_depth": sphere_depth(c, res, radius=0.3)}
    after = {"image": outputs["image"], "image_depth": sphere_depth(c, res, radius=0.15)}
    assert inside(before, c)[front].sum() > 0 and inside(after, c)[front].sum() == 0
    assert torch.equal(seen(before, c)[front], seen(after, c)[front])
    assert seen(before, c)[front].sum() >= inside(before, c)[front].sum()
    with pytest.raises(ConfigError, match=r"box3d_seen: box .* is empty"):
        build_links([{"axes": [0, 8], "region": {"box3d_seen": [0, 0, 0, 1, -1, 1]}}], 16)
