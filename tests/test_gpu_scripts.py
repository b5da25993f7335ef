"""The GPU session scripts, run on the CPU with tiny models: what a lent GPU will run must
work before a session spends its minutes on it (issue #33's base trained across sessions)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from link_core.weights import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import hd_session  # noqa: E402

TINY_HD = (
    "data.resolution=32 data.num_images=32 model.resolution=32 model.extra.render_resolution=16 "
    "model.extra.plane_resolution=16 model.extra.plane_channels=8 model.extra.feature_channels=8 "
    "model.extra.sr_channels=8 model.extra.num_coarse=4 model.extra.num_fine=4 "
    "model.extra.density_reg_points=64 model.channel_base=128 model.channel_max=8 "
    "model.z_dim=16 model.w_dim=16 model.mapping_layers=1 train.batch=4 train.num_threads=1 "
    "train.ckpt_every_minutes=0.02 train.sample_every_kimg=0.008 metrics.num=8"
)


def _session(out: Path, parts: Path, run: Path, minutes: float) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "PY": sys.executable,
        "PARTS": str(parts),
        "RUN": str(run),
        "MINUTES": str(minutes),
        "FID_NUM": "0",
        "SETS": TINY_HD,
    }
    return subprocess.run(
        ["bash", "bench/gpu_train_hd.sh", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_hd_sessions_start_then_resume_from_the_parts_they_leave(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    first = _session(tmp_path / "out1", parts, tmp_path / "machine1", 0.05)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    out1 = tmp_path / "out1"
    assert {"log.txt", "stats.jsonl", "run.tar.part-00"} <= {p.name for p in out1.iterdir()}
    assert all(p.stat().st_size <= hd_session.PART_BYTES for p in out1.glob("run.tar.part-*"))
    step1 = _counters(tmp_path / "machine1")["step"]

    # The next session: a bare machine with the parts carried in.
    for p in out1.glob("run.tar.part-*"):
        shutil.copy(p, parts)
    second = _session(tmp_path / "out2", parts, tmp_path / "machine2", 0.05)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    log = (tmp_path / "out2" / "log.txt").read_text()
    assert '"parts": 1' in log and "training to" in log
    counters = _counters(tmp_path / "machine2")
    assert counters["step"] > step1  # resumed and went on, not restarted
    assert counters["elapsed"] / 60 >= 0.1 - 1e-6  # both sessions' minutes
    rows = (tmp_path / "out2" / "stats.jsonl").read_text().splitlines()
    assert len(rows) > len((out1 / "stats.jsonl").read_text().splitlines())


def _counters(run: Path) -> dict:
    _, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1], prefixes=())
    return meta["counters"]


def test_hd_parts_refuse_members_outside_the_run(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"x"
        info = tarfile.TarInfo("../escape.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "run.tar.part-00").write_bytes(buf.getvalue())
    with pytest.raises(SystemExit, match="unexpected tar member"):
        hd_session.unpack(parts, tmp_path / "run")
    assert not (tmp_path / "escape.txt").exists()
    assert json.loads(json.dumps({"parts": hd_session.unpack(tmp_path, tmp_path / "r")})) == {
        "parts": 0
    }
