"""The generator interface of ARCHITECTURE.md, checked on every backbone that is built."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_EG3D

from link_core.interface import view_cameras
from link_core.link import build_links, link_loss
from link_core.train.config import load_config
from linkgan.api import build_networks

BACKBONES = {
    "stylegan2": ["model.backbone=stylegan2"],
    "eg3d": TINY_EG3D,
}


@pytest.fixture(params=sorted(BACKBONES))
def nets(request, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, *BACKBONES[request.param]])
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    return cfg, G, D


def test_mapping_synthesis_and_d_speak_the_interface(nets):
    cfg, G, D = nets
    assert (G.z_dim, G.w_dim, G.img_resolution) == (16, 16, 16)
    z, c = torch.randn(3, G.z_dim), view_cameras(G, 3)
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, G.w_dim)
    out = G.synthesis(ws, c)
    assert isinstance(out, dict) and out["image"].shape == (3, 3, 16, 16)
    assert D(out, c).shape == (3, 1)
    # Fixed noise: synthesis is a function of ws alone (the link loss relies on it).
    a = G.synthesis(ws, c, noise_mode="const")["image"]
    b = G.synthesis(ws, c, noise_mode="const")["image"]
    assert torch.equal(a, b)
    # Truncation toward the average w.
    assert torch.allclose(G.mapping(z, c, truncation_psi=0.0)[0, 0], G.mapping_net.w_avg)


def test_link_loss_gradients_reach_the_generator(nets):
    cfg, G, _ = nets
    links = build_links(cfg.link.links, G.w_dim)
    c = view_cameras(G, 2)
    ws = G.mapping(torch.randn(2, G.z_dim), c)
    maps = {k: 1.0 for k in ("image", "image_raw", "image_depth") if k in G.synthesis(ws, c)}
    res = link_loss(
        lambda w, cc: G.synthesis(w, cc, noise_mode="const"),
        ws,
        links,
        c=c,
        maps=maps,
        map_scales=getattr(G, "map_scales", None),
    )
    assert res.total.item() > 0
    assert set(res.terms) == {f"link/left_eye/{m}/{k}" for m in maps for k in ("in", "out")}
    res.total.backward()
    grads = [p.grad for n, p in G.named_parameters() if p.grad is not None and "mapping" not in n]
    assert grads and sum(g.abs().sum() for g in grads) > 0
