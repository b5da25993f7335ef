"""The Python API (``linkgan.Model``): the script in docs/python-api.md runs as written on a
tiny trained model, the doc's table names every public method, a model is read once, and a
w file's noise maps do not leak into later jobs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import HEADS_3D

import linkgan
from link_core.errors import UserError
from link_core.weights import checkpoint as ckpt
from linkgan.build import train

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "python-api.md"


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    run = tmp_path_factory.mktemp("api3d") / "run"
    train(run, None, [*HEADS_3D, "train.kimg=0.016"], progress=False)
    return run


def _doc_script() -> str:
    (script,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return script


def test_the_documented_script_runs(run_3d, tmp_path, monkeypatch, capsys):
    script = _doc_script()
    assert "runs/q3d" in script and len(script.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(compile(script.replace("runs/q3d", str(run_3d)), str(DOC), "exec"), {})
    out = tmp_path / "out"
    assert (
        len(list((out / "images").glob("seed*.png"))) == 4 and (out / "images/grid.png").is_file()
    )
    assert (out / "edits" / "edit_seed0003_top.png").is_file()
    assert (out / "top.mp4").stat().st_size > 0
    summary = json.loads((out / "meshes" / "summary.json").read_text())
    assert summary["link"] == "top" and (out / "meshes" / "top_0.glb").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(ckpt.resolve_checkpoint(run_3d))
    assert capsys.readouterr().out.startswith("Model(")


def test_the_doc_table_names_every_public_method():
    rows = re.findall(r"^\| `(?:Model\.)?(\w+)", DOC.read_text(encoding="utf-8"), re.M)
    public = {n for n in dir(linkgan.Model) if not n.startswith("_")}
    assert set(rows) - {"Model"} == public


def test_a_model_is_read_once_and_its_links_built_once(run_3d, tmp_path, monkeypatch):
    reads = []
    read_file = ckpt.read_file
    monkeypatch.setattr(ckpt, "read_file", lambda *a, **k: reads.append(a[0]) or read_file(*a, **k))
    model = linkgan.Model.load(run_3d)
    assert model.is_3d and model.name == "run" and model.source == ckpt.list_checkpoints(run_3d)[-1]
    assert not model.G.training and not any(p.requires_grad for p in model.G.parameters())
    model.edit(1, "top", 2, tmp_path / "e")
    model.edit(1, 0, 2, tmp_path / "e0")  # by index
    model.measure("link_mse", num=4)
    assert len(reads) == 1 and model.links is model.links
    assert model.link("0") is model.link("top")
    with pytest.raises(UserError, match=r"--link: no link 'nose' in this model \(links: 0:top\)"):
        model.link("nose")
    with pytest.raises(UserError, match="--samples: must be >= 1"):
        model.edit(1, "top", 0, tmp_path / "bad")


def test_a_w_file_does_not_change_later_jobs(tmp_path):
    """A w file from inversion brings noise maps; a seed afterwards renders as on a fresh load."""
    from link_core.edit.latents import save_w

    model = linkgan.Model.load("base:toyfaces_2d")
    ws, c, _ = model.latent(4)
    before = model.G.synthesis(ws, c, noise_mode="const")["image"]
    noise = {n: torch.randn_like(b) for n, b in model.G.named_buffers() if "noise_const" in n}
    assert noise, "the 2-D generator has constant noise maps"
    wfile = save_w(tmp_path / "w.safetensors", ws, c, noise)
    model.latent(0, wfile)
    changed = model.G.synthesis(ws, c, noise_mode="const")["image"]
    assert not torch.equal(before, changed)
    ws2, c2, name = model.latent(4)
    assert name == "seed0004" and torch.equal(ws2, ws)
    assert torch.equal(model.G.synthesis(ws2, c2, noise_mode="const")["image"], before)


def test_the_version_lives_in_one_place():
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert re.fullmatch(r"\d+\.\d+\.\d+", linkgan.__version__)
    assert "version=VERSION" in setup and linkgan.__version__ not in setup
