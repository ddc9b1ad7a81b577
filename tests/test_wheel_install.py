"""The README's quickstart from a non-editable install: the wheel built from the tracked files, installed
on its own (pip --target, no editable tree on the path), compiles the shipped tiny model and runs it on
the emulator with a fresh C-simulation cache. The rest of the suite runs from the editable install, which
reads the source tree itself, so only this test sees a file the wheel leaves out (test_packaging.py
checks the package-data patterns without building)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the board's 3.10 runs no tests)
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # each step (a fresh C-simulation build of the tiny top takes about 10 s here)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _isolation() -> list[str]:
    """pip's build-isolation flag: off (offline) when this environment has what [build-system] requires,
    else pip's isolated build (which fetches it from the package index)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        req = Requirement(spec)
        try:
            if not req.specifier.contains(version(req.name), prereleases=True):
                return []
        except PackageNotFoundError:
            return []
    return ["--no-build-isolation"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("git") is None
                    or not (ROOT / ".git").exists(), reason="needs g++ and a git checkout")
def test_wheel_alone_compiles_and_runs_the_tiny_model(tmp_path: Path) -> None:
    src = tmp_path / "src"  # the tracked files only: no build/ or egg-info of the checkout in the wheel
    files = _run(["git", "-C", str(ROOT), "ls-files", "-z"], ROOT).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    r = _run([*pip, "wheel", "--no-deps", *_isolation(), "-w", str(tmp_path / "dist"), str(src)], tmp_path)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("edgellm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("edgellm/hw/include/edgellm/top.h", "edgellm/models/tiny/model.safetensors",
              "edgellm/boards/kv260.toml"):
        assert f in names, f
    assert not any(n.startswith("tests/") or "/tests/" in n for n in names)
    site = tmp_path / "site"
    r = _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], tmp_path)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "EDGELLM_CACHE": str(tmp_path / "cache")}
    where = _run([sys.executable, "-c", "import edgellm; print(edgellm.__file__)"], tmp_path, env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    cli = [sys.executable, "-m", "edgellm.cli"]
    r = _run([*cli, "compile", "-o", str(tmp_path / "proj")], tmp_path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run([*cli, "run", str(tmp_path / "proj"), "--prompt", "Emma was", "-n", "4", "--ignore-eos"],
             tmp_path, env)
    assert r.returncode == 0 and "generated 4" in r.stderr + r.stdout, r.stdout + r.stderr
