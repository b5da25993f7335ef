"""Tests of the StyleGAN2 backbone (stylegan_link): shapes, determinism, truncation, FIR
resampling, modulated convolution, gradients, build(config). Tiny networks, CPU only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from stylegan_link import (
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisNetwork,
    build,
)
from stylegan_link.layers import MinibatchStd, mbstd_group, modulated_conv2d
from stylegan_link.resample import downsample2d, filter2d, upsample2d

TINY = dict(channel_base=1024, channel_max=32)


def tiny_g(res: int = 32, c_dim: int = 0, **kw) -> Generator:
    return Generator(
        z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=res, mapping_layers=2, **TINY, **kw
    )


def tiny_d(res: int = 32, c_dim: int = 0) -> Discriminator:
    return Discriminator(c_dim=c_dim, img_resolution=res, **TINY)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("res", [16, 32, 64])
def test_generator_shapes(res: int) -> None:
    G = tiny_g(res)
    z = torch.randn(2, G.z_dim)
    ws = G.mapping(z)
    # StyleGAN2: two ws per resolution from 8 up, one for the 4x4 conv, one for the last ToRGB.
    assert G.num_ws == 2 * (res.bit_length() - 1) - 2
    assert ws.shape == (2, G.num_ws, G.w_dim)
    out = G.synthesis(ws)
    assert set(out) == {"image"}
    assert out["image"].shape == (2, 3, res, res)
    assert torch.isfinite(out["image"]).all()
    assert G(z)["image"].shape == (2, 3, res, res)


def test_many_image_channels() -> None:
    net = SynthesisNetwork(w_dim=16, img_resolution=16, img_channels=96, **TINY)
    assert net(torch.randn(2, net.num_ws, 16)).shape == (2, 96, 16, 16)


def test_const_noise_is_deterministic_random_is_not() -> None:
    G = tiny_g()
    with torch.no_grad():
        for layer in G.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)  # make noise visible (it starts at 0)
        ws = G.mapping(torch.randn(2, G.z_dim))
        a = G.synthesis(ws, noise_mode="const")["image"]
        b = G.synthesis(ws, noise_mode="const")["image"]
        r1 = G.synthesis(ws, noise_mode="random")["image"]
        r2 = G.synthesis(ws, noise_mode="random")["image"]
        n = G.synthesis(ws, noise_mode="none")["image"]
        # A link-style perturbation of some w axes on all rows changes the output.
        ws2 = ws.clone()
        ws2[:, :, :8] += 1.0
        p = G.synthesis(ws2, noise_mode="const")["image"]
    assert torch.equal(a, b)
    assert not torch.allclose(r1, r2)
    assert not torch.allclose(a, n)
    assert not torch.allclose(a, p)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


def test_truncation() -> None:
    m = MappingNetwork(z_dim=16, c_dim=0, w_dim=16, num_ws=6, num_layers=2)
    z = torch.randn(8, 16)
    m(z, update_emas=True)
    assert m.w_avg.abs().sum() > 0  # the running mean moved
    ws = m(z, truncation_psi=0.0)
    assert torch.allclose(ws, m.w_avg.expand_as(ws))
    ws1 = m(z)
    cut = m(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], m.w_avg.expand(8, 2, 16))
    assert torch.equal(cut[:, 2:], ws1[:, 2:])
    # psi=0.5 lands half-way between w and w_avg.
    half = m(z, truncation_psi=0.5)
    assert torch.allclose(half, (ws1 + m.w_avg) / 2, atol=1e-6)


def test_mapping_with_label() -> None:
    m = MappingNetwork(z_dim=8, c_dim=5, w_dim=16, num_ws=3, num_layers=2)
    z = torch.randn(4, 8)
    c1, c2 = torch.randn(4, 5), torch.randn(4, 5)
    assert m(z, c1).shape == (4, 3, 16)
    assert not torch.allclose(m(z, c1), m(z, c2))
    with pytest.raises(ValueError, match="c_dim"):
        m(z)


@pytest.mark.parametrize("c_dim", [0, 25])
def test_discriminator_shape(c_dim: int) -> None:
    D = tiny_d(32, c_dim)
    img = torch.randn(6, 3, 32, 32)  # 6 is not divisible by the mbstd group of 4
    c = torch.randn(6, c_dim) if c_dim else None
    logits = D({"image": img}, c)
    assert logits.shape == (6, 1)
    if c_dim:
        # Projection conditioning: the label changes the logit.
        assert not torch.allclose(logits, D({"image": img}, torch.randn(6, c_dim)))
        with pytest.raises(ValueError, match="c_dim"):
            D({"image": img})


def test_gradients_reach_every_generator_parameter() -> None:
    G, D = tiny_g(c_dim=3), tiny_d(c_dim=3)
    c = torch.randn(4, 3)
    logits = D(G(torch.randn(4, G.z_dim), c), c)
    F.softplus(-logits).mean().backward()  # non-saturating G loss
    missing = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert all(p.grad is not None for p in D.parameters())


def test_fir_constant_stays_constant() -> None:
    x = torch.full((1, 2, 8, 8), 3.0)
    up, down = upsample2d(x), downsample2d(x)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # Interior only: borders see the zero padding.
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.tensor(3.0))
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.tensor(3.0))
    assert filter2d(x, pad=2).shape == (1, 2, 9, 9)


def test_fir_upsample_is_centred() -> None:
    # A linear ramp stays a ramp at half the step, with no half-pixel shift: pixel 2i sits at
    # source coordinate i - 1/4.
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)
    up = upsample2d(ramp)[0, 0, 4, 2:-2]
    expected = (torch.arange(2, 14) - 0.5) / 2
    assert torch.allclose(up, expected)


def test_modulated_conv_fused_matches_unfused() -> None:
    x, wgt, s = torch.randn(3, 4, 8, 8), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    for up in (1, 2):
        for demod in (True, False):
            a = modulated_conv2d(x, wgt, s, demodulate=demod, up=up, fused=True)
            b = modulated_conv2d(x, wgt, s, demodulate=demod, up=up, fused=False)
            assert a.shape == (3, 5, 8 * up, 8 * up)
            assert torch.allclose(a, b, atol=1e-4)
    # Demodulation (eq. 3) restores unit output std for unit-variance inputs, whatever the style.
    x = torch.randn(2, 64, 16, 16)
    y = modulated_conv2d(x, torch.randn(32, 64, 3, 3), torch.rand(2, 64) * 10)
    assert 0.8 < y[..., 1:-1, 1:-1].std().item() < 1.2


def test_minibatch_std() -> None:
    assert [mbstd_group(b, 4) for b in (1, 2, 3, 4, 6, 8)] == [1, 2, 3, 4, 3, 4]
    x = torch.randn(6, 8, 4, 4)
    y = MinibatchStd(group_size=4, num_channels=2)(x)
    assert y.shape == (6, 10, 4, 4)
    assert torch.equal(y[:, :8], x)
    # Identical samples have zero spread.
    same = MinibatchStd()(x[:1].expand(4, -1, -1, -1).contiguous())
    assert same[:, 8].abs().max() < 1e-3


def test_synthesis_block_reusable() -> None:
    # As a super-resolution module would use it: existing x and img, arbitrary channels.
    blk = SynthesisBlock(in_channels=12, out_channels=20, w_dim=8, resolution=16, img_channels=3)
    ws = torch.randn(2, blk.num_conv + blk.num_torgb, 8)
    x, img = blk(torch.randn(2, 12, 8, 8), torch.randn(2, 3, 8, 8), ws, noise_mode="const")
    assert (blk.num_conv, blk.num_torgb) == (2, 1)
    assert x.shape == (2, 20, 16, 16) and img.shape == (2, 3, 16, 16)
    same = SynthesisBlock(12, 20, 8, 16, 3, up=1)
    x, img = same(torch.randn(2, 12, 16, 16), torch.randn(2, 3, 16, 16), ws)
    assert x.shape == (2, 20, 16, 16) and img.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("res", [24, 2, 2048, 0])
def test_bad_resolution_raises(res: int) -> None:
    with pytest.raises(ValueError, match=str(res)):
        SynthesisNetwork(w_dim=8, img_resolution=res)
    with pytest.raises(ValueError, match=str(res)):
        Discriminator(c_dim=0, img_resolution=res)


def test_wrong_ws_shape_raises() -> None:
    G = tiny_g(16)
    with pytest.raises(ValueError, match="ws"):
        G.synthesis(torch.randn(2, G.num_ws + 1, G.w_dim))


def test_tiny_generator_is_small() -> None:
    G = tiny_g(32)
    assert sum(p.numel() for p in G.parameters()) < 1_000_000


def test_build_from_config() -> None:
    cfg = SimpleNamespace(
        resolution=16,
        z_dim=16,
        w_dim=24,
        c_dim=0,
        mapping_layers=2,
        mapping_lr_mult=0.01,
        channel_base=512,
        channel_max=16,
        style_init=1.0,
        use_noise=False,
        mbstd_group=2,
        d_channel_base=0,
        d_channel_max=None,
    )
    G, D = build(cfg)
    assert (G.z_dim, G.w_dim, G.img_resolution, G.img_channels) == (16, 24, 16, 3)
    assert not any("noise" in n for n, _ in G.named_parameters())
    assert D.from_rgb.weight.shape[0] == 16  # d_channel_* fall back to the G's values
    assert D(G(torch.randn(3, 16))).shape == (3, 1)
    cfg.d_channel_max = 8
    assert build(cfg)[1].from_rgb.weight.shape[0] == 8


def test_style_init_scales_only_the_style_affines():
    torch.manual_seed(0)
    a = Generator(16, 0, 16, 16, channel_base=256, channel_max=16)
    torch.manual_seed(0)
    b = Generator(16, 0, 16, 16, channel_base=256, channel_max=16, style_init=0.1)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    affines = [n for n in pa if n.endswith("affine.weight")]
    assert affines
    for name in pa:
        factor = 0.1 if name in affines else 1.0
        assert torch.allclose(pb[name], pa[name] * factor), name


@pytest.mark.parametrize("transpose", [False, True])
def test_depthwise_and_folded_fir_give_the_same_values_and_gradients(transpose):
    """The CPU's depthwise FIR and the GPU's folded one: same outputs, gradients and R1's
    second-order gradients (conv_per_channel picks one by device)."""
    from stylegan_link.resample import conv_depthwise, conv_folded, fir_kernel

    torch.manual_seed(0)
    x = torch.randn(2, 5, 12, 12, dtype=torch.float64, requires_grad=True)
    k = fir_kernel(4.0 if transpose else 1.0, dtype=torch.float64)
    results = []
    for conv in (conv_folded, conv_depthwise):
        y = conv(x, k, transpose, stride=2, padding=1)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        results.append((y, g, gg))
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_compiled_synthesis_computes_what_the_eager_one_does(tiny_overrides):
    """``train.compile`` (torch.compile, also worth it on CPUs) changes speed, not values."""
    from link_core.train.config import load_config
    from linkgan.build import build_networks

    torch.manual_seed(0)
    G, _ = build_networks(load_config(None, tiny_overrides))
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    compiled = torch.compile(G.synthesis)
    with torch.no_grad():
        a = compiled(ws, None, noise_mode="const")["image"]
        b = G.synthesis(ws, None, noise_mode="const")["image"]
    assert torch.allclose(a, b, atol=1e-5)
