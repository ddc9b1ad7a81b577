"""`pip install .` (the README's quickstart, a non-editable install) ships every file the package reads:
each non-Python file under a package folder matches a [tool.setuptools.package-data] pattern of the
package that owns it. The test suite runs from an editable install, which reads the tree itself, so a
file left out of the wheel (hw/tb/port_model.h, compiler/cost/speculative_acceptance.json) failed only
on a fresh machine: `edgellm compile` stopped in codegen_hls."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the board's 3.10 runs no tests)
ROOT = Path(__file__).resolve().parents[1]


def _packages() -> dict[str, Path]:
    """package name -> its folder, as setuptools maps them (package-dir, else the parent's folder)."""
    st = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = st.get("package-dir", {})
    out: dict[str, Path] = {}
    for pkg in st["packages"]:
        if pkg in dirs:
            out[pkg] = ROOT / dirs[pkg]
        else:
            parent, _, leaf = pkg.rpartition(".")
            out[pkg] = (out[parent] if parent in out else ROOT / dirs.get(parent, parent)) / leaf
    return out


def test_every_data_file_is_in_the_wheel() -> None:
    st = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = st.get("package-data", {})
    pkgs = _packages()
    missing = []
    for pkg, folder in pkgs.items():
        for f in folder.rglob("*"):
            if not f.is_file() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            # the package that owns f: the deepest package folder above it
            owner = max((p for p, d in pkgs.items() if d in f.parents), key=lambda p: len(pkgs[p].parts))
            if owner != pkg:
                continue
            rel = f.relative_to(folder).as_posix()
            if not any(fnmatch.fnmatch(rel, pat) for pat in data.get(owner, [])):
                missing.append(f.relative_to(ROOT).as_posix())
    assert not missing, f"not in the wheel (pyproject.toml package-data): {missing}"
