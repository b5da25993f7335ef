"""CLI smoke tests (train -> generate -> edit -> metrics) and bad input (one error line, exit 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import pytest

from link_core.data import write_dataset_zip
from link_core.synth import ToyFaces
from link_core.weights import checkpoint as ckpt
from linkgan.cli import main

ROOT = Path(__file__).parent.parent


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY

    run = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(["train", "--out", str(run), "--no-progress", *_sets([*TINY, "train.kimg=0.032"])])
        == 0
    )
    return run


def test_generate_edit_metrics(trained, tmp_path, capsys):
    assert (
        main(["generate", "--ckpt", str(trained), "--seeds", "0-3", "--out", str(tmp_path / "g")])
        == 0
    )
    assert len(list((tmp_path / "g").glob("seed*.png"))) == 4
    assert (
        main(
            [
                "edit",
                "--ckpt",
                str(trained),
                "--seed",
                "2",
                "--link",
                "left_eye",
                "--samples",
                "3",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    (grid,) = (tmp_path / "e").glob("*.png")
    img = cv2.imread(str(grid))
    assert img.shape[1] > 4 * img.shape[0] // 2  # 4 columns (original + 3), 2 rows
    out = tmp_path / "m.json"
    # A weights file works as --ckpt as well as a run directory.
    assert (
        main(
            [
                "metrics",
                "--ckpt",
                str(trained / "model.safetensors"),
                "--metrics",
                "link_mse",
                "--num",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    m = result["link_mse"]["left_eye"]["image"]
    assert set(m) >= {"edit_in", "edit_out", "rest_in", "rest_out"}
    assert all(v >= 0 for v in m.values()) and m["edit_in"] > 0
    assert result["settings"]["num"] == 8


def test_every_subcommand_has_help_with_an_example(capsys):
    from linkgan.cli_options import COMMANDS

    assert {"train", "generate", "edit", "metrics", "render", "export", "demo"} <= set(COMMANDS)
    for argv in [[cmd] for cmd in COMMANDS] + [["config", "show"]]:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and f"linkgan {argv[0]}" in text, argv
    # Shared options are defined once: they read the same in every sub-command.
    helps = set()
    for cmd in ("generate", "edit", "render", "export", "metrics", "invert", "view"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split("options:")[1].split())
        helps.add(re.search(r"--ckpt CKPT (.*?) \(default", text).group(1))
    assert len(helps) == 1, helps


def test_demo_help_states_the_default_budget(capsys):
    from linkgan.cli_options import DEMO_KIMG

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"training budget in thousand images (default {DEMO_KIMG:g})" in text


def test_version(capsys):
    import linkgan

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"linkgan {linkgan.__version__}"


def test_config_show_prints_the_resolved_config(capsys):
    import yaml

    preset = ROOT / "configs" / "quickstart_3d.yaml"
    assert main(["config", "show", str(preset), "--set", "train.kimg=4.5"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["kimg"] == 4.5 and shown["model"]["backbone"] == "eg3d"
    assert set(shown) >= {"data", "model", "link", "train", "metrics"}  # defaults filled in
    assert main(["config", "show"]) == 0  # no preset: the built-in defaults
    assert yaml.safe_load(capsys.readouterr().out)["model"]["backbone"] == "stylegan2"
    assert main(["config", "show", str(preset), "--set", "train.minuts=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "minuts" in err[0], err


def _bad_zip(tmp_path: Path) -> Path:
    good = tmp_path / "good.zip"
    write_dataset_zip(ToyFaces(16, 8), str(good))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("img00000003.png"):
                data = data[:40] + b"\x00garbage" * 8  # header intact, body corrupt
            zout.writestr(item, data)
    return bad


@pytest.mark.parametrize(
    "case",
    [
        "missing_data",
        "corrupt_zip",
        "overlap",
        "box_outside",
        "unknown_key",
        "random_ckpt",
        "bad_link",
        "bad_seeds",
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(case, tmp_path, capsys, tiny_overrides, trained):
    out = ["--out", str(tmp_path / "run"), "--no-progress"]
    train = ["train", *out, *_sets([*tiny_overrides, "train.kimg=0.016"])]
    argv = {
        "missing_data": [*train, "--set", f"data.path={tmp_path / 'nope.zip'}"],
        "corrupt_zip": [
            *train,
            "--set",
            f"data.path={_bad_zip(tmp_path)}",
            "--set",
            "train.kimg=0.064",
            "--set",
            "data.num_images=8",
        ],
        "overlap": [
            *train,
            "--set",
            "link.links=[{name: a, axes: [0, 4], region: {box: [0, 0, "
            "0.5, 0.5]}}, {name: b, axes: [2, 6], region: {box: [0.5, 0.5, 1, 1]}}]",
        ],
        "box_outside": [
            *train,
            "--set",
            "link.links=[{name: a, axes: [0, 4], region: {box: [0, 0, 1.5, 0.5]}}]",
        ],
        "unknown_key": [*train, "--set", "train.minuts=3"],
        "random_ckpt": ["metrics", "--ckpt", str(tmp_path / "random.bin")],
        "bad_link": ["edit", "--ckpt", str(trained), "--link", "nose", "--out", str(tmp_path)],
        "bad_seeds": ["generate", "--ckpt", str(trained), "--seeds", "5-1", "--out", str(tmp_path)],
    }[case]
    (tmp_path / "random.bin").write_bytes(os.urandom(4096))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error: "), err
    assert not [line for line in err if line.startswith("Traceback")]
    if case == "corrupt_zip":
        assert "img00000003.png" in err[-1]


def test_kill_9_then_resume_continues_from_the_last_checkpoint(tmp_path):
    """A real process killed with SIGKILL mid-training; checkpoints stay whole."""
    from conftest import TINY

    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "linkgan",
        "train",
        "--out",
        str(run),
        "--no-progress",
        *_sets([*TINY, "train.kimg=1000", "train.ckpt_every_minutes=0.002"]),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(ckpt.list_checkpoints(run)) < 2:
        time.sleep(0.2)
    time.sleep(0.37)  # land somewhere inside the next interval, maybe inside a write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = ckpt.list_checkpoints(run)
    assert ckpts, "no checkpoint written before the kill"
    for p in ckpts:  # every visible checkpoint is complete and readable
        ckpt.read_file(p)
    _, meta = ckpt.read_file(ckpts[-1])
    seen = meta["counters"]["images_seen"]
    target = (seen + 16) / 1000
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--resume",
                "--no-progress",
                "--set",
                f"train.kimg={target}",
            ]
        )
        == 0
    )
    _, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    assert meta["counters"]["images_seen"] == seen + 16
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["kimg"] == pytest.approx((seen + 16) / 1000)


def test_console_script_reports_errors_in_one_line(tmp_path):
    exe = Path(sys.executable).parent / "linkgan"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "linkgan"]
    proc = subprocess.run(
        [*cmd, "metrics", "--ckpt", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: checkpoint not found: {tmp_path / 'none'}"]
