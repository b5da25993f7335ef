"""link_mse on analytic generators: a perfect link measures zero leak, a coupled one does not."""

from __future__ import annotations

import math

import pytest
import torch

from link_core.data.cameras import CameraSpec, camera_label_yaw_pitch, sample_poses
from link_core.interface import GeneratorDefaults
from link_core.link import BoxRegion, build_links, swap_axes
from link_core.metrics import compare_to_unlinked, cross_leak, link_mse

W, RES = 8, 16
BOX = [0.25, 0.25, 0.75, 0.75]


class AnalyticG(GeneratorDefaults, torch.nn.Module):
    """Region colour from w[0:2], background from w[2:], plus ``leak``·w[0] outside."""

    z_dim, c_dim, w_dim, num_ws, img_resolution = W, 0, W, 3, RES

    def __init__(self, leak: float):
        super().__init__()
        self.leak = leak
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.mask = BoxRegion((tuple(BOX),)).mask(RES, RES)

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        return z[:, None, :].expand(-1, self.num_ws, -1)

    def synthesis(self, ws, c=None, noise_mode="const"):
        w = ws[:, 0]
        inside = torch.tanh(w[:, :2].sum(1))[:, None, None, None]
        outside = torch.tanh(w[:, 2:].sum(1) + self.leak * w[:, 0])[:, None, None, None]
        img = inside * self.mask + outside * (1 - self.mask)
        return {"image": img.expand(-1, 3, -1, -1)}


LINKS = build_links([{"name": "box", "axes": [0, 2], "region": {"box": BOX}}], W)


@pytest.mark.parametrize("mode", ["resample", "perturb"])
def test_perfect_link_has_no_leak(mode):
    m = link_mse(AnalyticG(0.0), LINKS, num=16, batch=5, mode=mode)["link_mse"]["box"]["image"]
    assert m["edit_out"] == pytest.approx(0.0, abs=1e-12)
    assert m["rest_in"] == pytest.approx(0.0, abs=1e-12)
    assert m["edit_in"] > 0.01 and m["rest_out"] > 0.01
    assert m["region_var"] > 0.01  # the region is diverse across seeds
    assert m["edit_share"] == pytest.approx(1.0, abs=1e-6)  # all of the edit's change inside
    assert m["edit_share_pooled"] == pytest.approx(1.0, abs=1e-6)
    assert m["edit_escapes"] == 0.0  # no edit changes mostly something else
    assert m["region_area"] == pytest.approx(0.25)  # the box is a quarter of the image


def test_region_var_is_zero_for_a_constant_region():
    G = AnalyticG(0.0)
    G.synthesis = lambda ws, c=None, noise_mode="const": {
        "image": (G.mask * 0.3 + (1 - G.mask) * ws[:, 0, 2:].sum(1)[:, None, None, None]).expand(
            -1, 3, -1, -1
        )
    }
    m = link_mse(G, LINKS, num=8)["link_mse"]["box"]["image"]
    assert m["region_var"] == pytest.approx(0.0, abs=1e-10) and m["edit_in"] == 0


def test_edits_that_escape_their_region_are_counted():
    """With w₀ steering the outside 100× as hard (a saturated tanh), an edit that flips w₀'s
    sign changes the outside wholesale and one that does not barely touches it: about half
    the edits escape, each almost wholly outside, which the mean share only dilutes."""
    leaky = link_mse(AnalyticG(100.0), LINKS, num=32)["link_mse"]["box"]["image"]
    mild = link_mse(AnalyticG(0.2), LINKS, num=32)["link_mse"]["box"]["image"]
    assert 0.25 < leaky["edit_escapes"] < 0.75
    assert mild["edit_escapes"] < leaky["edit_escapes"]


def test_leaky_generator_is_measured():
    result = link_mse(AnalyticG(1.0), LINKS, num=16)
    m = result["link_mse"]["box"]["image"]
    assert m["edit_out"] > 0.01 and m["rest_in"] == pytest.approx(0.0, abs=1e-12)
    # The box is a quarter of the image: the edit's change summed inside vs everywhere.
    assert 0.05 < m["edit_share"] < 0.95
    less_leaky = link_mse(AnalyticG(0.2), LINKS, num=16)["link_mse"]["box"]["image"]
    assert m["edit_share"] < less_leaky["edit_share"]
    assert 0.05 < m["edit_share_pooled"] < less_leaky["edit_share_pooled"] < 1
    assert result["settings"] == {
        "num": 16,
        "seed": 1000,
        "mode": "resample",
        "alpha": 1.0,
        "images": "[0, 1]",
    }


def test_results_do_not_depend_on_the_batch_size():
    a = link_mse(AnalyticG(0.5), LINKS, num=12, batch=12)["link_mse"]["box"]["image"]
    b = link_mse(AnalyticG(0.5), LINKS, num=12, batch=5)["link_mse"]["box"]["image"]
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5)


def test_swap_axes_takes_only_the_masked_axes():
    ws, src = torch.zeros(2, 3, W), torch.ones(2, 3, W)
    mask = torch.zeros(W)
    mask[[1, 4]] = 1
    out = swap_axes(ws, src, mask)
    assert out[..., [1, 4]].eq(1).all() and out.sum() == 2 * 3 * 2


class TwoPartG(AnalyticG):
    """Part a from w[0:2], part b from w[2:4] plus ``leak``·w[0], background from w[4:]."""

    A, B = [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]

    def synthesis(self, ws, c=None, noise_mode="const"):
        w = ws[:, 0]
        ma, mb = (BoxRegion((tuple(b),)).mask(RES, RES) for b in (self.A, self.B))
        col = lambda v: torch.tanh(v)[:, None, None, None]  # noqa: E731
        a, b = col(w[:, :2].sum(1)), col(w[:, 2:4].sum(1) + self.leak * w[:, 0])
        img = a * ma + b * mb + col(w[:, 4:].sum(1)) * (1 - ma - mb)
        return {"image": img.expand(-1, 3, -1, -1)}


@pytest.mark.parametrize("leak", [0.0, 1.0])
def test_cross_leak_sees_one_link_changing_anothers_part(leak):
    links = build_links(
        [
            {"name": "a", "axes": [0, 2], "region": {"box": TwoPartG.A}},
            {"name": "b", "axes": [2, 4], "region": {"box": TwoPartG.B}},
        ],
        W,
    )
    m = cross_leak(TwoPartG(leak), links, num=16, batch=5)["image"]
    assert m["a"]["a"] > 0.01 and m["b"]["b"] > 0.01  # each link changes its own part
    assert m["b"]["a"] == pytest.approx(0.0, abs=1e-12)  # b never touches a
    assert m["a"]["outside_all"] == pytest.approx(0.0, abs=1e-12)
    if leak:
        assert m["a"]["b"] > 0.01
    else:
        assert m["a"]["b"] == pytest.approx(0.0, abs=1e-12)


def test_compare_to_unlinked_divides_out_over_in_and_edit_in():
    def m(edit_in, out_over_in):
        return {"edit_in": edit_in, "out_over_in": out_over_in}

    on = {"eyes": {"image": m(0.02, 0.1), "depth": m(0.01, 0.5)}}
    off = {"eyes": {"image": m(0.04, 0.6), "depth": m(0.01, 0.5)}}
    vs = compare_to_unlinked(on, off)
    assert vs["out_over_in_ratio_off_vs_on"]["eyes"] == pytest.approx({"image": 6.0, "depth": 1.0})
    assert vs["edit_in_on_over_off"]["eyes"] == pytest.approx({"image": 0.5, "depth": 1.0})
    assert "edit_share_on_over_off" not in vs  # results from before edit_share existed
    for res, share in ((on, 0.3), (off, 0.05)):
        for per_map in res["eyes"].values():
            per_map["edit_share"] = share
    vs = compare_to_unlinked(on, off)
    assert vs["edit_share_on_over_off"]["eyes"] == pytest.approx({"image": 6.0, "depth": 6.0})
    with pytest.raises(ValueError, match="links/maps differ"):
        compare_to_unlinked(on, {"eyes": {"image": m(0.04, 0.6)}})


def test_measure_gives_link_mse_fid_and_the_protocol_in_one_result(tmp_path, monkeypatch):
    """``Model.measure``: ``num`` seeds for link_mse and ``num`` fakes for FID, against every
    image of the data set (not ``num`` of them), with the protocol in the result."""
    from link_core.metrics import fid
    from link_core.train.config import load_config
    from linkgan.model import Model

    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path))
    # Pooled colours stand in for Inception: this test is about what is measured, not how.
    net = lambda x: torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # noqa: E731
    monkeypatch.setattr(fid, "load_inception", lambda device="cpu": net)
    region = "{box: [0.25, 0.25, 0.75, 0.75]}"
    sets = ["data.resolution=16", "model.resolution=16", "data.num_images=7"]
    sets += [f"model.z_dim={W}", f"model.w_dim={W}", "metrics.num=99"]
    sets += [f"link.links=[{{name: box, axes: [0, 2], region: {region}}}]"]
    model = Model(AnalyticG(0.0), load_config(None, sets), tmp_path / "analytic")
    result = model.measure("link_mse,fid", num=9, progress=False)
    assert result["link_mse"]["box"]["image"]["edit_out"] == pytest.approx(0.0, abs=1e-12)
    assert result["settings"]["num"] == 9
    assert result["inception"] == {"num_real": 7, "num_fake": 9} and result["fid"] > 0
    assert result["protocol"]["real"] == "full data set, 7 images"
    assert result["protocol"]["fake_latents"] == "seeds 0..8, truncation 1, noise const"
    shifted = model.measure(["fid"], num=9, progress=False, fake_seed=100)
    assert shifted["protocol"]["fake_latents"] == "seeds 100..108, truncation 1, noise const"
    assert shifted["fid"] != result["fid"]


class ViewLeakG(AnalyticG):
    """A "3-D" AnalyticG on orbit cameras that leaks w[0] outside only when seen from behind
    (|yaw| > 120°): the edit's share inside is 1 from the front and the side, < 1 behind."""

    is_3d, c_dim = True, 25
    camera = CameraSpec()

    def sample_cameras(self, n, generator=None):
        return sample_poses(n, "orbit", self.camera, generator=generator)

    def synthesis(self, ws, c=None, noise_mode="const"):
        yaw, _ = camera_label_yaw_pitch(c, self.camera.pivot)
        behind = (yaw.abs() > math.radians(120)).float()
        w = ws[:, 0]
        inside = torch.tanh(w[:, :2].sum(1))[:, None, None, None]
        outside = torch.tanh(w[:, 2:].sum(1) + self.leak * behind * w[:, 0])
        img = inside * self.mask + outside[:, None, None, None] * (1 - self.mask)
        return {"image": img.expand(-1, 3, -1, -1)}


def test_edit_share_by_view_finds_a_leak_seen_only_from_behind():
    m = link_mse(ViewLeakG(1.0), LINKS, num=48, batch=7)["link_mse"]["box"]["image"]
    views, seen = m["edit_share_by_view"], m["seen_by_view"]
    assert views["front"] == pytest.approx(1.0, abs=1e-6)
    assert views["side"] == pytest.approx(1.0, abs=1e-6)
    assert views["back"] < 0.95
    change = m["change_by_view"]  # the leak adds change outside only from behind
    assert change["back"] > change["front"] > 0 and set(change) == set(views)
    assert sum(seen.values()) == 48 and min(seen.values()) > 0  # every camera in one view
    overall = sum(views[v] * seen[v] for v in views) / 48
    assert m["edit_share"] == pytest.approx(overall, rel=1e-6)  # the views split the mean
    flat = link_mse(AnalyticG(1.0), LINKS, num=8)["link_mse"]["box"]["image"]
    assert "edit_share_by_view" not in flat  # a 2-D generator's labels are not cameras
