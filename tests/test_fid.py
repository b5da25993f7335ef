"""FID / KID: the formulas against direct computations, the bundled Inception, the CLI and
the data-statistics cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

from link_core.metrics.fid import (
    fid_from_features,
    inception_features,
    inception_path,
    kid_from_features,
)
from linkgan import api
from linkgan.cli import main


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


def test_metrics_cli_fid_kid_and_the_cached_data_statistics(tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    api.train(run, None, [*tiny_overrides, "train.kimg=0.008"], progress=False)
    out = tmp_path / "m.json"
    args = ["metrics", "--ckpt", str(run), "--metrics", "fid,kid", "--num", "6", "--out", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["fid"] > 0 and "kid" in result and result["inception"]["num_real"] == 6
    stats = list((tmp_path / "cache" / "inception-stats").glob("inception-*-6.npy"))
    assert len(stats) == 1
    before = stats[0].stat().st_mtime_ns
    assert main(args) == 0  # the data statistics come from the cache this time
    assert stats[0].stat().st_mtime_ns == before
    assert json.loads(out.read_text())["fid"] == pytest.approx(result["fid"])
    assert main([*args[:4], "fid,lpips"]) == 2
