"""`edgellm compile` under hostile or careless use (issue 14): --force replaces only edgellm's own
projects, a build lock, cheap options checked before anything is written, OS errors as one line.
Resume (model content hash, re-checked outputs, malformed state) is tested in test_compile.py."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgellm.compiler import build_state as bs
from edgellm.compiler import outdir
from edgellm.compiler.pipeline import BuildConfig, Step, run_steps
from edgellm.compiler.steps import check_reference_fits, compile_steps
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.runtime.project import Project

CFG = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344, vocab_size=300,
                  max_context=256)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgellm.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _one_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """r failed with exactly one `error:` line (no traceback) holding every needle; returns it."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _cfg(ckpt: Path, out: Path, **kw: object) -> BuildConfig:
    return BuildConfig(model=str(ckpt), board="kv260", out_dir=str(out), reference_onnx=False, **kw)


def _resume(cfg: BuildConfig) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    run_steps(cfg, compile_steps(), lambda s, w: seen.append((s, w)))
    return seen


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "rnd"
    save_hf_bitnet(random_model(CFG, seed=3), d, None)
    return d


@pytest.fixture(scope="module")
def project(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proj") / "p"
    run_steps(_cfg(ckpt, out), compile_steps())
    return out


# ---- 1. --force replaces only what edgellm wrote ----

def _foreign_dirs(root: Path) -> dict[str, Path]:
    """The issue's reproduction and its variants: directories --force must not touch."""
    made = {}
    d = root / "ext"  # a manifest.json that is not edgellm's, a README.md and src/
    (d / "src").mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"name": "ext"}))
    (d / "README.md").write_text("mine\n")
    (d / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    made["manifest.json"] = d
    d = root / "garbled"
    d.mkdir()
    (d / "manifest.json").write_text("{not json")
    made["not valid JSON"] = d
    d = root / "schema_no_files"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"schema": "edgellm.manifest/1"}))
    made["files"] = d
    return made


def test_force_refuses_directories_edgellm_did_not_write(ckpt: Path, tmp_path: Path) -> None:
    for needle, d in _foreign_dirs(tmp_path).items():
        before = _tree(d)
        r = _cli("compile", str(ckpt), "-o", str(d), "--force", "--no-onnx-reference")
        _one_error(r, str(d), needle, "refusing")
        assert _tree(d) == before, d
        assert not (tmp_path / f".{d.name}.partial").exists() and not (tmp_path / f".{d.name}.lock").exists()


@pytest.mark.parametrize("extra", ["README.md", "hls/src/mine.cpp", "link"])
def test_force_refuses_a_project_holding_foreign_files(ckpt: Path, project: Path, tmp_path: Path,
                                                       extra: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for rel, data in _tree(project).items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_bytes(data)
    if extra == "link":
        (proj / "hls" / "notes").symlink_to(tmp_path)
    else:
        (proj / extra).parent.mkdir(parents=True, exist_ok=True)
        (proj / extra).write_text("my work\n")
    before = _tree(proj)
    with pytest.raises(EdgeLLMError, match="refusing|symbolic link") as e:
        run_steps(_cfg(ckpt, proj, force=True), compile_steps())
    assert (extra if extra != "link" else "hls/notes") in str(e.value)
    assert _tree(proj) == before


def test_force_replaces_an_edgellm_project(ckpt: Path, project: Path, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for rel, data in _tree(project).items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_bytes(data)
    (proj / "edgellm_top.bit").write_bytes(b"bitstream")  # an output of `edgellm build`
    run_steps(_cfg(ckpt, proj, force=True), compile_steps())
    Project.open(proj)
    assert not (proj / "edgellm_top.bit").exists()


# ---- 2. the build lock ----

def test_a_held_lock_refuses_a_second_compile_at_once(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    with outdir.BuildLock(out):
        t0 = time.monotonic()
        r = _cli("compile", str(ckpt), "-o", str(out), "--no-onnx-reference")
        _one_error(r, f"another edgellm compile is writing {out}", f"lock {tmp_path / '.d.lock'}")
        assert time.monotonic() - t0 < 60
        assert not out.exists() and not (tmp_path / ".d.partial").exists()
    assert not (tmp_path / ".d.lock").exists()  # released and removed


def test_two_compiles_at_once_give_one_whole_project(ckpt: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    save_hf_bitnet(random_model(CFG, seed=11), other, None)
    out = tmp_path / "d"
    args = ["-o", str(out), "--no-onnx-reference", "--reference-decode", "2"]
    cmd = [sys.executable, "-m", "edgellm.cli", "compile"]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen([*cmd, str(m), *args], stdout=pipe, stderr=pipe, text=True)
             for m in (ckpt, other)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    res = [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]
    assert sorted(rc for rc, _ in res) == [0, 2], res
    loser = next(err for rc, err in res if rc == 2)
    assert "Traceback" not in loser
    assert "another edgellm compile is writing" in loser or "exists; pass --force" in loser
    Project.open(out)  # whole: every file matches the manifest
    assert not (tmp_path / ".d.partial").exists() and not (tmp_path / ".d.lock").exists()


def test_lock_retries_when_its_file_was_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A taker that locked a lock file its holder removed meanwhile takes the file now at the path."""
    out = tmp_path / "d"
    path = tmp_path / ".d.lock"
    real, calls = fcntl.flock, []

    def racing(fd: int, op: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            os.unlink(path)  # the holder releases between our open and our flock
        real(fd, op)

    monkeypatch.setattr(fcntl, "flock", racing)
    with outdir.BuildLock(out) as lock:
        assert len(calls) == 2
        assert lock.fd is not None and os.fstat(lock.fd).st_ino == os.stat(path).st_ino
        monkeypatch.undo()
        with pytest.raises(EdgeLLMError, match="another edgellm compile is writing"), outdir.BuildLock(out):
            pass
    assert not path.exists()


def test_interrupt_releases_the_lock(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    steps = compile_steps()

    def interrupt(ctx: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_steps(_cfg(ckpt, out), [Step("weights", interrupt, writes=True) if s.name == "weights" else s
                                    for s in steps])
    assert not (tmp_path / ".q.lock").exists() and not out.exists()
    seen = _resume(_cfg(ckpt, out))
    assert ("codegen_hls", "resumed") in seen and ("weights", "start") in seen
    Project.open(out)


# ---- 3. cheap options checked before anything is written ----

@pytest.mark.parametrize("args,needle", [
    (["--board", "foo"], "unknown board 'foo'"),
    (["--reference-decode", "241"], "at most 240 decode steps"),
    (["--reference-decode", "600"], "the KV cache holds 256"),
])
def test_bad_options_leave_nothing(ckpt: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "sub" / "x"
    r = _cli("compile", str(ckpt), "-o", str(out), *args, env={"EDGELLM_PROGRESS": "1"})  # step lines
    _one_error(r, needle)
    assert "step codegen_hls" not in r.stderr  # rejected before the slow steps
    assert not (tmp_path / "sub").exists() or not any((tmp_path / "sub").iterdir())


def test_missing_model_leaves_nothing(tmp_path: Path) -> None:
    r = _cli("compile", str(tmp_path / "nope"), "-o", str(tmp_path / "x"))
    _one_error(r, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_reference_decode_limit_is_the_kv_cache() -> None:
    check_reference_fits(240, 256)
    with pytest.raises(EdgeLLMError, match="at most 240"):
        check_reference_fits(241, 256)


def test_longest_reference_decode_builds(ckpt: Path, tmp_path: Path) -> None:
    small = ModelConfig(hidden_size=64, n_layers=1, n_heads=2, n_kv_heads=1, ffn_size=128, vocab_size=64,
                        max_context=32)
    save_hf_bitnet(random_model(small, seed=1), tmp_path / "m", None)
    ctx = run_steps(BuildConfig(str(tmp_path / "m"), out_dir=str(tmp_path / "o"), reference_onnx=False,
                                reference_new_tokens=16), compile_steps())
    assert len(json.loads((ctx.work / "reference" / "ref.json").read_text())["decode_ids"]) == 16
    with pytest.raises(EdgeLLMError, match="at most 16"):
        run_steps(BuildConfig(str(tmp_path / "m"), out_dir=str(tmp_path / "o2"), reference_onnx=False,
                              reference_new_tokens=17), compile_steps())


# ---- 4. OS errors: one line naming the path, never a project that looks complete ----

def test_out_under_a_regular_file(ckpt: Path, tmp_path: Path) -> None:
    f = tmp_path / "somefile"
    f.write_text("keep me\n")
    r = _cli("compile", str(ckpt), "-o", str(f / "x"))
    _one_error(r, str(f), "not a directory")
    r = _cli("compile", str(ckpt), "-o", str(f), "--force")
    _one_error(r, str(f), "not a directory")
    assert f.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


def test_unwritable_parent(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def denied(path: object, *a: object, **k: object) -> int:
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(EdgeLLMError, match=f"{tmp_path}.*Permission denied"):
        run_steps(_cfg(ckpt, tmp_path / "x"), compile_steps())
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_unwritable_parent_for_real(ckpt: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        _one_error(_cli("compile", str(ckpt), "-o", str(ro / "x")), str(ro), "Permission denied")
    finally:
        ro.chmod(0o755)


def test_disk_full_then_resume(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "q"
    real = Path.write_text

    def full(self: Path, *a: object, **k: object) -> int:
        if self.name == "ref.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(EdgeLLMError, match="step reference .*q.partial: No space left on device"):
        run_steps(_cfg(ckpt, out), compile_steps())
    monkeypatch.undo()
    assert not out.exists() and not (tmp_path / ".q.lock").exists()
    seen = _resume(_cfg(ckpt, out))
    assert ("weights", "resumed") in seen and ("reference", "start") in seen
    Project.open(out)


def test_disk_full_writing_the_state(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_text

    def full(self: Path, *a: object, **k: object) -> int:
        if self.name.startswith(bs.STATE_FILE):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(EdgeLLMError, match=f"{bs.STATE_FILE}.tmp: No space left on device"):
        run_steps(_cfg(ckpt, tmp_path / "q"), compile_steps())
    assert not (tmp_path / "q").exists()


def test_failed_final_rename_keeps_the_old_project(ckpt: Path, project: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for rel, data in _tree(project).items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_bytes(data)
    before = _tree(proj)
    real = Path.rename

    def failing(self: Path, target: Path) -> Path:
        if self.name == ".proj.partial":
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(EdgeLLMError, match="proj.partial: Input/output error"):
        run_steps(_cfg(ckpt, proj, force=True, reference_new_tokens=3), compile_steps())
    monkeypatch.undo()
    assert _tree(proj) == before


def test_cache_variable_pointing_at_a_file(ckpt: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """compile never uses EDGELLM_CACHE (C simulation does): a file there changes nothing."""
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cache"))
    run_steps(_cfg(ckpt, tmp_path / "q"), compile_steps())
    Project.open(tmp_path / "q")
