"""Imports point down only (ARCHITECTURE.md), checked on the source, not by convention."""

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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for f in files:
        bad = _imports(f) - ALLOWED[package] - {package}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)} against ARCHITECTURE.md"


def test_training_path_does_not_import_pytorch3d():
    """A broken pytorch3d binary must never stop training (FACTS.md): building and training
    either backbone imports no pytorch3d (cameras and synthetic data import it lazily)."""
    code = (
        "import sys, linkgan.api, linkgan.cli, link_core.loop, link_core.data, "
        "link_core.cameras, link_core.link, stylegan_link, eg3d_link\n"
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
