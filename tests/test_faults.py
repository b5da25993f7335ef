"""Faults (issue #7): kill -9 at random moments (some during a checkpoint write) ten times,
then resume to a bit-identical result; a full disk keeps the last good checkpoint; a NaN
loss stops training naming its term; determinism of images, depth and meshes on CPU."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

from link_core.weights import checkpoint as ckpt
from linkgan.cli import main

ROOT = Path(__file__).resolve().parents[1]
INTERVAL_KIMG = 0.008  # a checkpoint every 2 steps of 4 images
FAULT_RUN = [
    *TINY,
    "train.kimg=0.3",
    f"train.ckpt_every_kimg={INTERVAL_KIMG}",
    "train.ckpt_every_minutes=1000",
    "train.keep_ckpts=4",
]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def _train_cmd(run: Path, overrides=FAULT_RUN) -> list[str]:
    return [sys.executable, "-m", "linkgan", "train", "--out", str(run), "--resume"] + [
        "--no-progress",
        *_sets(overrides),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = ckpt.read_file(path)
    return tensors


def _temps(run: Path) -> list[Path]:
    return [*run.glob(".*.tmp-*"), *(run / "checkpoints").glob(".*.tmp-*")]


def _kimg(path: Path) -> float:
    return int(path.name.split("-")[1].split(".")[0]) / 1000


def _logged_kimg(run: Path) -> float:
    stats = run / "stats.jsonl"
    rows = stats.read_text().splitlines() if stats.exists() else []
    return max([json.loads(r)["kimg"] for r in rows if r.strip()], default=0.0)


def test_ten_kill9s_then_resume_is_bit_identical(tmp_path):
    rng = random.Random(7)
    run = tmp_path / "killed"
    mid_write = 0
    for kill in range(10):
        before = ckpt.list_checkpoints(run)
        proc = subprocess.Popen(_train_cmd(run), env=_env(), stderr=subprocess.PIPE)
        # Wait until this process has written a checkpoint of its own (so every cycle makes
        # progress), then kill it: at a random moment, or (odd cycles) the instant a
        # checkpoint's temp file appears, i.e. in the middle of a write.
        deadline = time.time() + 120
        while ckpt.list_checkpoints(run)[-1:] == before[-1:]:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        if kill % 2:
            deadline = time.time() + 30
            while not _temps(run) and time.time() < deadline and proc.poll() is None:
                pass
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_write += bool(_temps(run))
        kept = ckpt.list_checkpoints(run)
        assert kept, "no checkpoint survived"
        for path in kept:  # every checkpoint left behind is whole
            assert _tensors(path)
        # Nothing lost beyond one checkpoint interval (stats are logged every 4 steps).
        assert _kimg(kept[-1]) >= _logged_kimg(run) - INTERVAL_KIMG - 1e-9
        assert _kimg(kept[-1]) < 0.3, "the run finished before it was killed"
    print(f"kills that landed during a checkpoint write: {mid_write} of 10")
    assert mid_write >= 1, "no kill landed during a checkpoint write"

    result = subprocess.run(_train_cmd(run), env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not _temps(run)
    clean = tmp_path / "clean"
    result = subprocess.run(_train_cmd(clean), env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]

    a = _tensors(ckpt.list_checkpoints(run)[-1])
    b = _tensors(ckpt.list_checkpoints(clean)[-1])
    assert _kimg(ckpt.list_checkpoints(run)[-1]) == pytest.approx(0.3, abs=0.004)
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    first = [*TINY, "train.kimg=0.016"]
    assert main(["train", "--out", str(run), "--no-progress", *_sets(first)]) == 0
    (good,) = ckpt.list_checkpoints(run)
    digests = {p.name: _digest(p) for p in [good, run / "model.safetensors"]}
    # The disk "fills up": no file may grow past a third of a checkpoint any more.
    more = [*TINY, "train.kimg=0.032", "train.ckpt_every_kimg=0.008"]
    result = subprocess.run(
        _train_cmd(run, more),
        env=_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(good.stat().st_size // 3),
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "cannot write the checkpoint (File too large)" in lines[0]
    assert f"the last good checkpoint is {good}" in lines[0]
    assert ckpt.list_checkpoints(run) == [good] and not _temps(run)
    assert {p.name: _digest(p) for p in [good, run / "model.safetensors"]} == digests
    # Space again: the run resumes from the kept checkpoint.
    result = subprocess.run(_train_cmd(run, more), env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _kimg(ckpt.list_checkpoints(run)[-1]) == pytest.approx(0.032)


def test_nan_loss_stops_naming_the_term_and_keeps_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    first = [*TINY, "train.kimg=0.016"]
    assert main(["train", "--out", str(run), "--no-progress", *_sets(first)]) == 0
    (good,) = ckpt.list_checkpoints(run)
    digest = _digest(good)
    capsys.readouterr()
    # A learning rate no network survives: D's weights overflow on its first step.
    boom = [*TINY, "train.kimg=0.1", "train.lr_d=1e38", "train.ckpt_every_kimg=0.004"]
    assert main(["train", "--out", str(run), "--resume", "--no-progress", *_sets(boom)]) == 2
    err = capsys.readouterr().err.strip()
    # Named: the loss term that went NaN / Inf, or the overflowed weights (never saved).
    assert re.match(r"error: (Loss/\S+ is (nan|inf)|[GD]\.\S+ has NaN / Inf values) at step", err)
    kept = ckpt.list_checkpoints(run)
    assert f"the last good checkpoint is {kept[-1]}" in err and _digest(good) == digest
    step = int(re.search(r"at step (\d+)", err).group(1))
    assert _kimg(kept[-1]) <= step * 4 / 1000  # nothing written at or after the failure
    assert all(torch.isfinite(t).all() for t in _tensors(kept[-1]).values())


def test_same_seed_same_images_depth_and_meshes(tmp_path, tiny_eg3d_overrides):
    """Two fresh runs with one seed give bit-identical weights, renders and meshes."""
    from export import auto_level, extract_mesh
    from linkgan import api

    overrides = [*tiny_eg3d_overrides, "data.synthetic=heads", "data.num_images=16"]
    runs = []
    for name in ("a", "b"):
        run = tmp_path / name
        overrides_k = [*overrides, "train.kimg=0.008"]
        assert main(["train", "--out", str(run), "--no-progress", *_sets(overrides_k)]) == 0
        runs.append(run)
    outs, meshes = [], []
    for run in runs:
        G, _ = api.load_generator(run)
        ws, c, _ = api.latent(G, 5)
        with torch.no_grad():
            outs.append(G.synthesis(ws, c, noise_mode="const"))
            meshes.append(extract_mesh(G, ws, 32, auto_level(G, ws, 32)))
    for key in ("image", "image_depth"):
        assert torch.equal(outs[0][key], outs[1][key]), key
    assert meshes[0].num_vertices > 0
    assert np.array_equal(meshes[0].vertices, meshes[1].vertices)
    assert np.array_equal(meshes[0].faces, meshes[1].faces)
    assert np.array_equal(meshes[0].colors, meshes[1].colors)
