"""FID / KID: the formulas against direct computations, the bundled Inception, the CLI, the
paper's protocol (the whole data set's statistics, cached; ``--num`` fakes with data-set
labels) and the protocol stated in the output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from conftest import TINY

from link_core.metrics import fid as fid_module
from link_core.metrics.fid import (
    StatsAccumulator,
    fid_from_features,
    fid_from_stats,
    inception_features,
    inception_path,
    kid_from_features,
)
from link_core.train.config import load_config
from linkgan import api
from linkgan.cli import main
from linkgan.measuring import inception_metrics


def test_fid_matches_the_textbook_formula_with_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0, abs=1e-8)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = kid_from_features(a, b, subsets=20, subset_size=200)
    shifted = kid_from_features(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.01 < shifted


def test_bundled_inception_gives_2048_features_offline():
    assert inception_path().name == "default_1.pt"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    f = inception_features(iter([x]))
    assert f.shape == (2, 2048) and np.isfinite(f).all()
    assert not np.allclose(f[0], f[1])


def test_kid_is_stylegan2_ada_compute_kid():
    """The same subsets through NVIDIA's own formula (metrics/kernel_inception_distance.py)."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 6)), rng.normal(size=(40, 6)) + 0.2
    draws = np.random.default_rng(7)
    n, m, t = a.shape[1], 30, 0.0
    for _ in range(5):
        x = a[draws.choice(len(a), m, replace=False)]
        y = b[draws.choice(len(b), m, replace=False)]
        k = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        t += (k.sum() - np.diag(k).sum()) / (m - 1) - ((x @ y.T / n + 1) ** 3).sum() * 2 / m
    expected = t / 5 / m
    assert kid_from_features(a, b, subsets=5, subset_size=30, seed=7) == pytest.approx(expected)


def test_streamed_statistics_equal_the_direct_ones():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(23, 5)) * [1, 2, 3, 4, 5] + 1
    acc = StatsAccumulator(len(feats), keep=7, seed=0)
    for s in range(0, 23, 4):  # uneven batches
        acc.add(torch.from_numpy(feats[s : s + 4]))
    stats = acc.result()
    assert stats.num == 23 and stats.features.shape == (7, 5)
    np.testing.assert_allclose(stats.mean, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)
    kept = {tuple(np.round(r, 4)) for r in feats.astype(np.float32)}
    assert all(tuple(np.round(r, 4)) in kept for r in stats.features)  # real rows, not made up
    b = rng.normal(size=(30, 5))
    direct = fid_from_features(feats, b)
    assert fid_from_stats(stats.mean, stats.cov, b.mean(0), np.cov(b, rowvar=False)) == (
        pytest.approx(direct, rel=1e-9)
    )


@pytest.fixture
def cheap_features(monkeypatch):
    """A stand-in feature network (pooled colours, 48-d) that counts the images it sees, so
    the protocol tests run in seconds; the real Inception has its own tests above."""
    seen = {"images": 0}

    def net(x: torch.Tensor) -> torch.Tensor:
        seen["images"] += len(x)
        return F.adaptive_avg_pool2d(x, 4).flatten(1)

    monkeypatch.setattr(fid_module, "load_inception", lambda device="cpu": net)
    return seen


def test_metrics_cli_fid_kid_and_the_cached_data_statistics(tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    sets = [*tiny_overrides, "data.num_images=5", "train.kimg=0.008"]
    api.train(run, None, sets, progress=False)
    out = tmp_path / "m.json"
    args = ["metrics", "--ckpt", str(run), "--metrics", "fid,kid", "--num", "6", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    result = json.loads(out.read_text())
    # All 5 images of the data set are the reals, however many fakes there are.
    assert result["fid"] > 0 and "kid" in result
    assert result["inception"] == {"num_real": 5, "num_fake": 6}
    assert result["protocol"]["real_full"] and not result["protocol"]["real_stats_cached"]
    stats = list((tmp_path / "cache" / "inception-stats").glob("inception-*-n5.npz"))
    assert [str(p) for p in stats] == [result["protocol"]["real_stats"]]
    before = stats[0].stat().st_mtime_ns
    assert main([*args, "--no-progress"]) == 0  # the data statistics come from the cache
    assert stats[0].stat().st_mtime_ns == before
    again = json.loads(out.read_text())
    assert again["protocol"]["real_stats_cached"] and again["fid"] == pytest.approx(result["fid"])
    assert main([*args[:4], "fid,lpips"]) == 2
    assert main([*args, "--real-num", "1"]) == 2
    assert main([*args[:6], "1"]) == 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fid") / "run"
    api.train(run, None, [*TINY, "data.num_images=6", "train.kimg=0.008"], progress=False)
    return run


def test_fakes_are_num_and_reals_the_whole_data_set_cached(
    tiny_run, tmp_path, monkeypatch, cheap_features, capsys
):
    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m.json"
    args = ["metrics", "--ckpt", str(tiny_run), "--metrics", "fid,kid", "--num", "12"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert printed == result  # the protocol is printed, not only written
    assert result["inception"] == {"num_real": 6, "num_fake": 12}  # N reals, 2N fakes
    assert cheap_features["images"] == 6 + 12
    protocol = result["protocol"]
    assert protocol["real_images"] == protocol["data_set_images"] == 6
    assert protocol["fake"] == 12 and protocol["real"].startswith("full data set, 6 images")
    assert (
        protocol["name"] == "fid12_full / kid12_full" and "Inception-v3" in protocol["feature_net"]
    )
    assert "100 subsets of 6" in protocol["kid"]
    # The second run reads the statistics back: only the 12 fakes meet the network.
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert cheap_features["images"] == 6 + 12 + 12
    assert json.loads(out.read_text())["fid"] == result["fid"]
    # --real-num caps the reals (a random subset, its own cache file) and says so.
    assert main([*args, "--real-num", "4", "--out", str(out), "--no-progress"]) == 0
    capped = json.loads(out.read_text())
    assert capped["inception"] == {"num_real": 4, "num_fake": 12}
    assert not capped["protocol"]["real_full"] and "--real-num" in capped["protocol"]["real"]
    assert capped["protocol"]["real_stats"] != protocol["real_stats"]
    assert capped["fid"] != result["fid"]


def test_a_mirrored_data_set_counts_its_mirrored_half(
    tiny_run, tmp_path, monkeypatch, cheap_features
):
    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path / "cache"))
    model = api.Model.load(tiny_run)
    model.config.data.xflip = True
    result = model.measure(["fid"], num=3, progress=False)
    assert result["inception"] == {"num_real": 12, "num_fake": 3}
    assert result["protocol"]["xflip"] and "x-flips included" in result["protocol"]["real"]


class LabelledG(torch.nn.Module):
    """A conditional stand-in generator that records the labels it is given."""

    is_3d, z_dim, c_dim, w_dim = False, 4, 3, 4

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.labels: list[torch.Tensor] = []

    def mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.labels.append(c.clone())
        return torch.cat([z, c], 1)

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, noise_mode: str = "const") -> dict:
        return {"image": torch.tanh(ws[:, :3, None, None]).expand(-1, -1, 16, 16)}


def test_conditional_fakes_take_random_data_set_labels_seeded(tmp_path, cheap_features):
    folder = tmp_path / "labelled"
    folder.mkdir()
    labels = []
    for i in range(5):
        name = f"img{i}.png"
        cv2.imwrite(str(folder / name), np.full((16, 16, 3), 40 * i, np.uint8))
        labels.append([name, [float(i), 1.0, -float(i)]])
    (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
    cfg = load_config(None, [*TINY, f"data.path={folder}", "model.c_dim=3"])

    def fake_labels(seed: int) -> torch.Tensor:
        G = LabelledG()
        out = inception_metrics(G, cfg, ["fid"], 40, False, seed=seed)
        assert out["inception"] == {"num_real": 5, "num_fake": 40}
        assert "random data-set labels" in out["protocol"]["fake_labels"]
        return torch.cat(G.labels)

    first = fake_labels(0)
    allowed = {(float(i), 1.0, -float(i)) for i in range(5)}
    assert len(first) == 40 and {tuple(r.tolist()) for r in first} == allowed  # all 5 drawn
    assert torch.equal(first, fake_labels(0))  # deterministic
    assert not torch.equal(first, fake_labels(1))  # and the seed matters
    assert (tmp_path / "labelled.linkgan-stats").is_dir()  # cached beside the data set
