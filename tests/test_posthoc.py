"""Post-hoc local editors (ReSeFa, StyleSpace, SeFa) on a generator whose answer is known:
its region's styles read w[0:2] only, the rest's styles read w[2:] (plus a known leak)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from link_core.edit.posthoc import (
    channel_offsets,
    ganspace_directions,
    region_gram,
    resefa_direction,
    sefa_directions,
    style_affines,
    style_offsets,
    stylespace_channels,
)
from link_core.interface import GeneratorDefaults
from link_core.link import BoxRegion, resize_mask

W, RES = 8, 16
BOX = (0.25, 0.25, 0.75, 0.75)


class Affine(nn.Module):
    """A w -> style layer as the backbones have them (effective weight = weight · gain)."""

    def __init__(self, weight: torch.Tensor, gain: float = 0.5):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.weight_gain = gain

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w @ (self.weight * self.weight_gain).T


class RegionStyles(GeneratorDefaults, nn.Module):
    """Region colour from ``inner``'s 2 styles (w[0:2]); background from ``outer``'s 3
    styles (w[2:]), plus ``leak`` · w[0] in the background."""

    z_dim, c_dim, w_dim, num_ws, img_resolution = W, 0, W, 2, RES

    def __init__(self, leak: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        inner = torch.zeros(2, W)
        inner[:, :2] = torch.randn(2, 2, generator=g) + 2 * torch.eye(2)
        outer = torch.zeros(3, W)
        outer[:, 2:] = torch.randn(3, W - 2, generator=g)
        outer[0, 0] = leak / 0.5  # the background also reads w[0]
        self.inner = nn.Module()
        self.inner.affine = Affine(inner)
        self.outer = nn.Module()
        self.outer.affine = Affine(outer)
        self.register_buffer("mask", BoxRegion((BOX,)).mask(RES, RES))
        self.colours = torch.randn(3, 3, generator=g)

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        return z[:, None, :].expand(-1, self.num_ws, -1)

    def synthesis(self, ws, c=None, noise_mode="const", **_):
        s_in = self.inner.affine(ws[:, 0])  # [B, 2]
        s_out = self.outer.affine(ws[:, 1])  # [B, 3]
        inside = torch.tanh(torch.stack([s_in[:, 0], s_in[:, 1], s_in.sum(1)], 1))
        outside = torch.tanh(s_out @ self.colours)
        img = inside[:, :, None, None] * self.mask + outside[:, :, None, None] * (1 - self.mask)
        return {"image": img}


def region(outputs, c):
    return BoxRegion((BOX,))(outputs, c)


def image01(out):
    return (out["image"] + 1) / 2


def _ws(n: int, seed: int = 0) -> torch.Tensor:
    z = torch.randn(n, W, generator=torch.Generator().manual_seed(seed))
    return z[:, None, :].expand(-1, 2, -1).contiguous()


@torch.no_grad()
def _change(G, ws, delta_ws=None, offsets=None):
    """Mean squared change inside / outside the box after an edit."""
    x = image01(G.synthesis(ws))
    if offsets is not None:
        with style_offsets(G, offsets):
            xe = image01(G.synthesis(ws))
    else:
        xe = image01(G.synthesis(ws + delta_ws))
    m = resize_mask(G.mask.expand(len(ws), -1, -1, -1), x.shape[-2:])
    sq = (xe - x).square()
    return float((sq * m).sum() / (m.sum() * 3)), float((sq * (1 - m)).sum() / ((1 - m).sum() * 3))


def test_resefa_finds_the_regions_axes_and_avoids_a_leaky_one():
    G = RegionStyles(leak=1.0)  # w[0] also moves the background: ReSeFa must avoid it
    ws = _ws(4)
    c = torch.zeros(4, 0)
    gram = region_gram(G, ws, c, region, image01)
    d = resefa_direction(gram)
    assert d.norm().item() == pytest.approx(1.0, abs=1e-5)
    m_in, m_out = _change(G, ws, delta_ws=2 * d)
    assert m_in > 1e-3 and m_out < 1e-4 * m_in  # local, though w[0] alone leaks
    # Among moves that leave the background alone (w[1] is one), it changes the region most.
    dd = d.double()
    e1 = torch.zeros(W, dtype=torch.float64)
    e1[1] = 1
    assert float(dd @ gram.inside @ dd) >= float(e1 @ gram.inside @ e1) * (1 - 1e-3)
    e0 = torch.zeros(W, dtype=torch.float64)
    e0[0] = 1
    assert float(e0 @ gram.outside @ e0) > 1e3 * float(dd @ gram.outside @ dd)
    # The Gram matrices are the mean squared change per unit move: along w[5] only outside.
    e5 = torch.zeros(W, dtype=torch.float64)
    e5[5] = 1
    assert float(e5 @ gram.inside @ e5) < 1e-8 < float(e5 @ gram.outside @ e5)


def test_stylespace_ranks_the_regions_channels_first_and_edits_them_locally():
    G = RegionStyles()
    ws = _ws(3)
    channels = stylespace_channels(G, ws, torch.zeros(3, 0), region, image01, top=3)
    assert [ch.layer for ch in channels[:2]] == ["inner.affine", "inner.affine"]
    assert {ch.index for ch in channels[:2]} == {0, 1}
    assert channels[0].inside == pytest.approx(1.0, abs=1e-6)
    assert channels[2].layer == "outer.affine" and channels[2].inside < 0.01
    assert channels[0].std > 0
    m_in, m_out = _change(G, _ws(2, 1), offsets=channel_offsets(G, channels[0], [3.0, -3.0]))
    assert m_in > 1e-3 and m_out == 0.0
    with pytest.raises(KeyError, match="no style layer"):
        with style_offsets(G, {"missing.affine": torch.zeros(2)}):
            pass


def test_sefa_takes_the_affines_top_eigenvectors():
    G = RegionStyles()
    dirs = sefa_directions(G, k=3)
    assert dirs.shape == (3, W)
    assert torch.allclose(dirs @ dirs.T, torch.eye(3), atol=1e-5)
    a = torch.cat([m.weight.detach() * m.weight_gain for m in style_affines(G).values()])
    energy = (a @ dirs.T).square().sum(0)  # |A d|² per direction, non-increasing
    assert (energy[:-1] >= energy[1:] - 1e-6).all()
    best = max(float((a @ v).square().sum()) for v in torch.eye(W))  # no axis beats the first
    assert float(energy[0]) >= best - 1e-5
    # Region-blind: with the background's styles stronger, its top direction moves the
    # background (where ReSeFa's stays in the region).
    with torch.no_grad():
        G.outer.affine.weight.mul_(10)
    m_in, m_out = _change(G, _ws(4), delta_ws=2 * sefa_directions(G, k=1)[0])
    assert m_out > m_in and not math.isnan(m_in)
    with pytest.raises(ValueError, match="no style affine"):
        style_affines(nn.Linear(2, 2))


def test_ganspace_takes_the_top_principal_components_of_w():
    """A mapping whose w spreads 3× along one known direction and 2× along another: the
    first two components are those directions (up to sign, fixed), orthonormal."""

    class Stretched(RegionStyles):
        def mapping(self, z, c=None, **_):
            basis = torch.linalg.qr(torch.randn(W, W, generator=torch.Generator().manual_seed(1)))[
                0
            ]
            scale = torch.ones(W)
            scale[:2] = torch.tensor([3.0, 2.0])
            w = (z * scale) @ basis.T + 5.0  # an offset the PCA must remove
            self.basis = basis
            return w[:, None, :].expand(-1, self.num_ws, -1)

    G = Stretched()
    dirs = ganspace_directions(G, torch.zeros(1, 0), k=3, num=4096)
    assert dirs.shape == (3, W)
    assert torch.allclose(dirs @ dirs.T, torch.eye(3), atol=1e-5)
    assert abs(float(dirs[0] @ G.basis[:, 0])) > 0.99
    assert abs(float(dirs[1] @ G.basis[:, 1])) > 0.99
    assert (dirs.gather(1, dirs.abs().argmax(1, keepdim=True)) > 0).all()  # signs fixed


def test_compare_writes_rows_table_and_grids_at_matched_mse_in(tmp_path, tiny_overrides):
    """``linkgan compare`` on a tiny 2-D run: every method per region and map, baselines at
    the linked edit's RGB MSE_i, a grid per region, and a clear error for a wrong region."""
    from linkgan import api
    from linkgan.cli import main

    run = tmp_path / "run"
    api.train(run, None, [*tiny_overrides, "train.kimg=0.008"], progress=False)
    out = tmp_path / "cmp"
    argv = ["compare", "--ckpt", str(run), "--regions", "left_eye", "--num", "6"]
    assert main([*argv, "--jacobian-samples", "2", "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "compare.json").read_text())
    rows = {(r["method"], r["map"]): r for r in result["rows"]}
    assert set(rows) == {
        (m, "image") for m in ("linkgan", "resefa", "stylespace", "sefa", "ganspace")
    }
    target = rows["linkgan", "image"]["mse_in"]
    assert target > 0
    for method in ("resefa", "stylespace", "sefa", "ganspace"):
        r = rows[method, "image"]
        assert r["mse_in"] == pytest.approx(target, rel=0.3), method  # matched
        assert r["mse_out"] >= 0 and r["strength"] > 0
    assert (out / "compare_left_eye.png").is_file()
    assert "| left_eye | image | resefa |" in (out / "compare.md").read_text()
    assert main([*argv[:3], "--regions", "tail", "--out", str(tmp_path / "x")]) == 2
    # The post-hoc editors on another model (the one before linking): linkgan's row stays.
    other = tmp_path / "other"
    api.train(other, None, [*tiny_overrides, "train.kimg=0.004"], progress=False)
    out2 = tmp_path / "cmp2"
    argv2 = [*argv, "--jacobian-samples", "1", "--posthoc-ckpt", str(other), "--out", str(out2)]
    assert main([*argv2, "--no-progress"]) == 0
    again = json.loads((out2 / "compare.json").read_text())
    assert again["settings"]["posthoc_checkpoint"] != again["settings"]["checkpoint"]
    linkgan_rows = [r for r in again["rows"] if r["method"] == "linkgan"]
    assert linkgan_rows[0]["mse_in"] == pytest.approx(target)


def test_compare_on_a_3d_model_adds_depth_and_mesh_rows(tmp_path):
    from conftest import HEADS_3D

    from linkgan import api
    from linkgan.cli import main
    from render.video import read_video

    run = tmp_path / "run"
    seen = "{box3d_seen: [-0.5, 0.0, -0.5, 0.5, 0.5, 0.5]}"  # in view, dense or not
    top = f"link.links=[{{name: top, axes: [0, 4], region: {seen}}}]"
    api.train(run, None, [*HEADS_3D, top, "train.kimg=0.008"], progress=False)
    argv = ["compare", "--ckpt", str(run), "--regions", "top", "--num", "4"]
    argv += ["--jacobian-samples", "1", "--mesh-samples", "1", "--mesh-grid", "24"]
    argv += ["--turntable-frames", "4", "--out", str(tmp_path / "cmp"), "--no-progress"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    maps = {(r["method"], r["map"]) for r in result["rows"]}
    for method in ("linkgan", "resefa", "stylespace", "sefa", "ganspace"):
        assert {(method, m) for m in ("image", "depth", "mesh")} <= maps
    mesh = [r for r in result["rows"] if r["map"] == "mesh"]
    assert all(r["mse_in"] >= 0 and r["mse_out"] >= 0 for r in mesh)
    assert (tmp_path / "cmp" / "compare_top.png").is_file()
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "compare_top.png" in page and "compare_top.mp4" in page
    # The turntable: the figure's four method rows over 4 yaws, frames that differ.
    video = read_video(tmp_path / "cmp" / "compare_top.mp4")
    assert result["turntables"]["top"] == {"path": "compare_top.mp4", "frames": 4}
    assert video.shape[0] == 4 and video.shape[1] > 4 * 96
    assert np.abs(video[0].astype(float) - video[2].astype(float)).mean() > 1.0
