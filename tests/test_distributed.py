"""Data-parallel training with torchrun (issue #7): 2 CPU processes over gloo hold identical
weights through every phase (main, lazy link, R1), log the same losses as one process with
the same global batch, and a 2-process run resumes in 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY

from link_core.weights import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
# No per-sample randomness inside the networks and no cross-sample statistics, so the
# global batch split over 2 ranks computes what one process computes.
EXACT = [
    *TINY,
    "model.use_noise=false",
    "model.mbstd_group=1",
    "loss.style_mixing=0.0",
    "loss.r1_interval=2",
    "train.log_every_steps=1",
    "train.kimg=0.024",
]


def _train(run: Path, overrides: list[str], procs: int, resume: bool = False):
    launcher = [sys.executable, "-m", "linkgan"]
    if procs > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={procs}",
            "-m",
            "linkgan",
        ]
    cmd = [*launcher, "train", "--out", str(run), "--no-progress"]
    cmd += ["--resume"] if resume else []
    cmd += [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _rows(run: Path) -> list[dict]:
    return [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines() if r.strip()]


def test_two_gloo_ranks_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _train(one, [*EXACT, "link.enabled=false"], 1)
    out = _train(two, [*EXACT, "link.enabled=false"], 2)
    assert out.stdout.count("trained ") == 1  # rank 0 alone reports (and writes)

    a, b = _rows(one), _rows(two)
    assert len(a) == len(b) == 7  # the schedules' row, then 6 ticks
    assert a[0] == b[0] == {"kimg": 0.0, "Schedule/kimg": 0.0}
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:], strict=True)):
        assert ra["kimg"] == rb["kimg"]
        # The first steps agree to float precision; later, Adam's first updates (g / |g|
        # on tiny gradients) amplify summation-order differences to ~1e-4: still far below
        # what different samples would give (~10 %).
        rel = 1e-6 if i < 2 else 2e-3
        for key in ("Loss/G/adv", "Loss/D/loss", "Loss/D/r1"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=rel), (ra["kimg"], key)
    wa, _ = ckpt.read_file(ckpt.list_checkpoints(one)[-1])
    wb, meta = ckpt.read_file(ckpt.list_checkpoints(two)[-1])
    assert meta["counters"]["ranks"]["world"] == 2
    for net in ("G.", "D.", "G_ema."):
        keys = [k for k in wa if k.startswith(net)]
        va = torch.cat([wa[k].flatten().double() for k in keys])
        vb = torch.cat([wb[k].flatten().double() for k in keys])
        assert float((va - vb).norm() / va.norm()) < 1e-3, net


def test_ranks_stay_identical_through_link_and_r1_phases_and_resume_in_one(tmp_path):
    run = tmp_path / "run"
    linked = [*TINY, "loss.r1_interval=2", "link.interval=2", "train.kimg=0.024"]
    _train(run, linked, 2)
    rows = _rows(run)
    assert any("Loss/link/left_eye/image/out" in r for r in rows)
    assert any("Loss/D/r1" in r for r in rows)
    _, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    sums = meta["counters"]["ranks"]["sums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # every tensor of G, D, G_ema equal
    # A different number of processes carries on from the same checkpoint.
    _train(run, [*linked, "train.kimg=0.036"], 1, resume=True)
    latest = ckpt.list_checkpoints(run)[-1]
    assert int(latest.name.split("-")[1].split(".")[0]) == 36


def test_dry_run_counts_parameters_and_estimates_memory_per_process(capsys):
    from conftest import TINY_EG3D

    from link_core.train.config import load_config
    from linkgan.api import build_networks
    from linkgan.cli import main

    sets = [a for o in [*TINY, *TINY_EG3D] for a in ("--set", o)]
    assert main(["train", "--out", "unused", "--dry-run", *sets]) == 0
    one = capsys.readouterr().out
    G, D = build_networks(load_config(None, [*TINY, *TINY_EG3D]))
    n_g = sum(p.numel() for p in G.parameters())
    assert f"parameters: G {n_g:,}" in one and "estimate per process:" in one
    assert not Path("unused").exists()  # nothing trained, nothing written

    assert main(["train", "--out", "unused", "--dry-run", "--nproc", "2", *sets]) == 0
    two = capsys.readouterr().out

    def estimate(text: str) -> float:
        return float(text.split("estimate per process: ")[1].split(" MiB")[0])

    assert "batch per process: 2" in two and estimate(two) < estimate(one)
    assert main(["train", "--out", "unused", "--dry-run", "--nproc", "3", *sets]) == 2
    assert "does not split over 3" in capsys.readouterr().err
