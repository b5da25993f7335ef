"""The wheel outside the checkout (`make wheel-check`; CI runs it after `make test`): build it,
install it with the hash-locked requirements into a fresh venv in a temporary folder, and run
the command line from another temporary folder, so that nothing can come from the checkout.
Minutes (a fresh venv installs torch), hence ``slow``: a plain `make test` leaves it out."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
TOP_FILES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md")
SHIPPED = {"configs": ("*.yaml",), "assets": ("*.safetensors", "*.json")}


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: float = 1800) -> str:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result.stdout


def source_copy(dest: Path) -> Path:
    """The files a build reads (packaging files, the packages, configs/ and assets/), copied
    out of the checkout so that building leaves no build/ folder in it."""
    dest.mkdir()
    for name in TOP_FILES:
        shutil.copy2(ROOT / name, dest / name)
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]
    for name in (*packages, *SHIPPED):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of the project, built with the venv's (locked) setuptools."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = source_copy(tmp / "src")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run([*pip, "-w", tmp / "dist", src], cwd=tmp)
    (built,) = (tmp / "dist").glob("linkgan-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(venv, environment, working folder): a fresh venv outside the checkout holding the
    lock (hash-checked, as `make install` does) and the wheel; removed afterwards (~6 GB)."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp)
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--require-hashes", "-r", LOCK], cwd=tmp)
    run([py, "-m", "pip", "install", "-q", "--no-deps", wheel], cwd=tmp)
    run([py, "-m", "pip", "check"], cwd=tmp)  # the wheel's requirements hold in the lock
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp / "work"  # not the checkout: nothing imports or reads from it
    work.mkdir()
    yield venv, env, work
    shutil.rmtree(venv, ignore_errors=True)


def test_wheel_carries_packages_configs_base_models_and_static_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, patterns in SHIPPED.items():
        files = sorted(p.name for pat in patterns for p in (ROOT / folder).glob(pat))
        assert files, folder
        missing = [f for f in files if f"linkgan/{folder}/{f}" not in names]
        assert not missing, f"{folder}/ files missing from {wheel.name}: {missing}"
    static = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "linkgan" / "static").rglob("*")
    )
    assert [s for s in static if Path(s).suffix and s not in names] == []
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for top in ("link_core", "stylegan_link", "eg3d_link", "render", "export", "linkgan")
        for p in (ROOT / top).rglob("*.py")
    )
    assert [m for m in modules if m not in names] == []  # subpackages too (link_core.train)


def test_installed_wheel_runs_outside_the_checkout(installed):
    venv, env, work = installed
    exe = venv / "bin" / "linkgan"

    from linkgan import __version__

    assert run([exe, "--version"], work, env).strip() == f"linkgan {__version__}"

    # everything comes from the venv: the modules, the presets, the base models, the pages
    probe = (
        "import json, linkgan, linkgan.build as b, linkgan.demo as d, linkgan.viewer as v, "
        "linkgan.report as r\n"
        "from linkgan.model import Model\n"
        "m = Model.load('base:heads_3d')\n"
        "print(json.dumps({'module': linkgan.__file__, 'assets': str(b.ASSETS), "
        "'config': str(d.DEFAULT_CONFIG), 'viewer': str(v.STATIC_DIR / 'index.html'), "
        "'meshview': str(r.STATIC / 'meshview.js'), 'weights': str(b.resolve_weights("
        "'base:heads_3d')), 'is_3d': m.is_3d}))\n"
    )
    found = json.loads(run([venv / "bin" / "python", "-c", probe], work, env).splitlines()[-1])
    assert found.pop("is_3d") is True
    for what, path in found.items():
        path = Path(path)
        assert path.exists(), (what, path)
        assert venv in path.parents and ROOT not in path.parents, (what, path)

    gen = work / "gen"
    run([exe, "generate", "--ckpt", "base:heads_3d", "--seeds", "0-1", "--out", gen], work, env)
    assert (gen / "seed0000.png").is_file() and (gen / "seed0001.png").is_file()

    # an unknown base names the shipped ones, as in a checkout
    bad = subprocess.run(
        [str(exe), "generate", "--ckpt", "base:nope", "--out", str(work / "nope")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert "heads_3d" in bad.stderr and "toyfaces_2d" in bad.stderr, bad.stderr[-2000:]


def test_installed_wheel_runs_the_demo(installed):
    venv, env, work = installed
    out = work / "demo"
    # the shipped preset and base (configs/quickstart_3d.yaml, base:heads_3d) and the report's
    # static files, end to end, made small where nothing shipped is read: 256 data heads
    # instead of 4096 and small renders (as is, --kimg 0.1 takes 13 minutes on 2 busy cores).
    # Most of what is left (minutes) is the attribute classifier, trained once per cache.
    small = ["--frames", "4", "--grid", "32", "--render-res", "32", "--compare-num", "0"]
    small += ["--set", "data.num_images=256", "--quiet"]
    cmd = [venv / "bin" / "linkgan", "demo", "--kimg", "0.1", *small, "--out", out]
    log = run(cmd, work, env)
    assert "quickstart_3d.yaml" in log
    assert (out / "index.html").is_file() and (out / "meshview.js").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics, "empty metrics.json"
    assert re.search(r"heads_3d", (out / "run" / "config.yaml").read_text())
