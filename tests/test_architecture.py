"""Imports point down only (docs/architecture.md), checked on the source, not by convention:
between the top-level packages, and between the rooms (subpackages) of link_core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("link_core", "stylegan_link", "eg3d_link", "render", "export", "linkgan")
ALLOWED = {
    "link_core": set(),
    "stylegan_link": {"link_core"},
    "eg3d_link": {"link_core", "stylegan_link"},
    "render": {"link_core"},
    "export": {"link_core"},
    "linkgan": set(PACKAGES) - {"linkgan"},
}


ROOMS = ("data", "weights", "link", "synth", "metrics", "edit", "train")
"""link_core's rooms, lower first: a room imports only rooms before it (and itself)."""
GROUND = {"errors", "interface"}
"""link_core's ground modules: every room may import them; they import no room."""


def _modules(path: Path) -> set[str]:
    """Every module a file imports, as dotted names (function bodies too: lazy imports
    count; relative imports are refused by the lint below)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _imports(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _modules(path)} & set(PACKAGES)


def _room(module: str) -> str | None:
    """``link_core.link.loss`` -> ``link``; ``link_core.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "link_core" and len(parts) > 1 else None


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for f in files:
        bad = _imports(f) - ALLOWED[package] - {package}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)} against docs/architecture.md"


def test_link_core_is_in_rooms():
    """Every module of link_core is a ground module or lives in a known room, and none is
    over 450 lines (one job per module)."""
    for f in sorted((ROOT / "link_core").rglob("*.py")):
        rel = f.relative_to(ROOT / "link_core")
        if len(rel.parts) == 1:
            assert rel.stem in GROUND | {"__init__"}, f"{rel}: a module outside the rooms"
        else:
            assert rel.parts[0] in ROOMS, f"{rel}: {rel.parts[0]} is not a known room"
        lines = len(f.read_text(encoding="utf-8").splitlines())
        assert lines <= 450, f"link_core/{rel} has {lines} lines (split it by job)"


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_lower_rooms_only(room):
    allowed = set(ROOMS[: ROOMS.index(room) + 1]) | GROUND
    files = sorted((ROOT / "link_core" / room).rglob("*.py"))
    assert files, f"room {room} has no modules"
    for f in files:
        rooms = {_room(m) for m in _modules(f)} - {None}
        bad = {r for r in rooms if r in ROOMS or r in GROUND} - allowed
        assert not bad, f"{f.relative_to(ROOT)} imports room(s) {sorted(bad)} above it"


def test_ground_modules_import_no_room():
    for name in GROUND:
        rooms = {_room(m) for m in _modules(ROOT / "link_core" / f"{name}.py")} - {None}
        assert not rooms & set(ROOMS), f"link_core/{name}.py imports {sorted(rooms)}"


def test_training_path_does_not_import_pytorch3d():
    """A broken pytorch3d binary must never stop training (its compiled ops may not load):
    building and training either backbone imports no pytorch3d (cameras and synthetic data
    import it lazily)."""
    code = (
        "import sys, linkgan.api, linkgan.cli, link_core.train.loop, link_core.data, "
        "link_core.data.cameras, link_core.link, stylegan_link, eg3d_link\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'pytorch3d')\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    for package in ("link_core", "stylegan_link", "eg3d_link"):
        for f in (ROOT / package).rglob("*.py"):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in tree.body:  # module level only: lazy imports inside functions are fine
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                assert not any(n.split(".")[0] == "pytorch3d" for n in names), f
