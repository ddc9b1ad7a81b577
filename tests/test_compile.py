"""`edgellm compile`: project contents, csim bit-exactness, overwrite/resume (keyed on the model's
content, finished steps' outputs re-checked, a malformed state ignored), board fit errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_fixtures import run_cli

from edgellm.compiler import build_state as bs
from edgellm.compiler.pipeline import BuildConfig, Step, run_steps
from edgellm.compiler.steps import compile_steps
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir
from edgellm.runtime.project import Project

CFG = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344, vocab_size=300,
                  max_context=256)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "rnd"
    save_hf_bitnet(random_model(CFG, seed=3), d, None)
    return d


@pytest.fixture(scope="module")
def project(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proj") / "p"
    r = run_cli("compile", str(ckpt), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_project_contents(project: Path) -> None:
    for f in ("manifest.json", "weights.bin", "embed.bin", "hls/top.cpp", "hls/edgellm_config.h",
              "hls/run_hls.tcl", "hls/tb_top.cpp", "hls/csim_entry.cpp", "vivado/build.tcl",
              "reference/model.onnx", "reference/logits.f32", "reference/ref.json",
              "report/estimate.json"):
        assert (project / f).is_file(), f
    m = json.loads((project / "manifest.json").read_text())
    assert m["schema"] == "edgellm.manifest/1"
    assert m["model"]["hidden_size"] == 128 and m["board"]["name"] == "kv260"
    assert m["weights"]["ternary_bits_per_weight"] <= 1.7
    print("ternary bits/weight:", m["weights"]["ternary_bits_per_weight"])
    assert m["weights"]["bytes"] == (project / "weights.bin").stat().st_size
    assert set(m["files"]) >= {"weights.bin", "hls/top.cpp", "vivado/build.tcl"}
    assert not list(project.parent.glob(".p.partial"))


def test_csim_bit_exact(project: Path) -> None:
    r = run_cli("csim", str(project))
    print(r.stdout[-600:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "0 of 17 steps differ" in r.stdout


def test_refuses_overwrite_then_force(ckpt: Path, project: Path) -> None:
    r = run_cli("compile", str(ckpt), "-o", str(project))
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    before = (project / "manifest.json").read_text()
    r = run_cli("compile", str(ckpt), "-o", str(project), "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads((project / "manifest.json").read_text())["files"] == json.loads(before)["files"]


def test_failed_build_leaves_no_project_and_resumes(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    cfg = BuildConfig(model=str(ckpt), board="kv260", out_dir=str(out))
    steps = compile_steps()
    at = [s.name for s in steps].index("reference")

    def boom(ctx: object) -> None:
        raise EdgeLLMError("interrupted")

    broken = steps[:at] + [Step("reference", boom, writes=True)] + steps[at + 1:]
    with pytest.raises(EdgeLLMError, match="interrupted"):
        run_steps(cfg, broken)
    assert not out.exists() and (tmp_path / ".q.partial" / "hls" / "top.cpp").is_file()
    seen: list[tuple[str, str]] = []
    run_steps(cfg, steps, lambda s, w: seen.append((s, w)))
    assert ("codegen_hls", "resumed") in seen and ("weights", "resumed") in seen
    assert ("reference", "start") in seen
    assert (out / "manifest.json").is_file() and not (tmp_path / ".q.partial").exists()


@pytest.mark.parametrize("board", ["zcu104", "ultra96v2", "pynq_z2"])
def test_other_boards(ckpt: Path, tmp_path: Path, board: str) -> None:
    ctx = run_steps(BuildConfig(model=str(ckpt), board=board, out_dir=str(tmp_path / board)),
                    compile_steps())
    assert ctx.state["dse"].estimate.fits
    tcl = (tmp_path / board / "vivado" / "build.tcl").read_text()
    assert ctx.state["board"].part in tcl


def test_model_too_big_for_board(tmp_path: Path) -> None:
    big = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=4, ffn_size=344, vocab_size=300,
                      max_context=600000)
    save_hf_bitnet(random_model(big), tmp_path / "big", None)
    r = run_cli("compile", str(tmp_path / "big"), "--board", "pynq_z2", "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pynq_z2" in r.stderr and "MiB" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_board(ckpt: Path, tmp_path: Path) -> None:
    r = run_cli("compile", str(ckpt), "--board", "zedboard", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "kv260" in r.stderr and "Traceback" not in r.stderr


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _cfg(ckpt: Path, out: Path, **kw: object) -> BuildConfig:
    return BuildConfig(model=str(ckpt), board="kv260", out_dir=str(out), reference_onnx=False, **kw)


def _interrupted(cfg: BuildConfig, at: str = "report") -> None:
    """Run the build with step `at` failing, leaving the .partial of the steps before it."""
    steps = compile_steps()

    def boom(ctx: object) -> None:
        raise EdgeLLMError("interrupted")

    broken = [Step(at, boom, writes=True) if s.name == at else s for s in steps]
    with pytest.raises(EdgeLLMError, match="interrupted"):
        run_steps(cfg, broken)


def _resume(cfg: BuildConfig) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    run_steps(cfg, compile_steps(), lambda s, w: seen.append((s, w)))
    return seen


# ---- 3. resume keyed on the model's content, finished steps' outputs re-checked ----

def test_model_replaced_at_the_same_path_does_not_resume(tmp_path: Path) -> None:
    model = tmp_path / "m"
    save_hf_bitnet(random_model(CFG, seed=3), model, None)
    out = tmp_path / "q"
    _interrupted(_cfg(model, out))
    save_hf_bitnet(random_model(CFG, seed=4), model, None, overwrite=True)  # other weights, same path
    seen = _resume(_cfg(model, out))
    assert not [s for s, w in seen if w == "resumed"]
    fresh = tmp_path / "fresh"
    run_steps(_cfg(model, fresh), compile_steps())
    assert (out / "weights.bin").read_bytes() == (fresh / "weights.bin").read_bytes()


def test_resumed_manifest_is_the_fresh_builds(ckpt: Path, tmp_path: Path) -> None:
    """The register map codegen_hls computes is kept across a resume that skips codegen_hls."""
    out = tmp_path / "q"
    _interrupted(_cfg(ckpt, out))
    seen = _resume(_cfg(ckpt, out))
    assert ("codegen_hls", "resumed") in seen and ("reference", "resumed") in seen
    fresh = tmp_path / "fresh"
    run_steps(_cfg(ckpt, fresh), compile_steps())
    got, want = (json.loads((d / "manifest.json").read_text()) for d in (out, fresh))
    assert got["interface"] == want["interface"] and got["interface"]["registers"]
    assert got["files"] == want["files"]
    Project.open(out)


@pytest.mark.parametrize("damage,rerun", [("truncate weights.bin", "weights"),
                                          ("delete hls/top.cpp", "codegen_hls"),
                                          ("edit reference/ref.json", "reference")])
def test_damaged_partial_reruns_the_step(ckpt: Path, project: Path, tmp_path: Path, damage: str,
                                         rerun: str) -> None:
    out = tmp_path / "q"
    cfg = _cfg(ckpt, out)
    _interrupted(cfg)
    how, rel = damage.split()
    f = tmp_path / ".q.partial" / rel
    if how == "truncate":
        f.write_bytes(f.read_bytes()[:1000])
    elif how == "delete":
        f.unlink()
    else:
        f.write_text(f.read_text().replace("1", "2"))
    seen = _resume(cfg)
    names = [s.name for s in compile_steps() if s.writes]
    for s in names:
        want = "start" if names.index(s) >= names.index(rerun) else "resumed"
        assert (s, want) in seen, (s, seen)
    assert any(s == rerun and w.startswith("stale") and rel in w for s, w in seen), seen
    Project.open(out)
    assert _tree(out)[rel] == _tree(project)[rel]


def test_foreign_file_in_partial_is_not_shipped(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    cfg = _cfg(ckpt, out)
    _interrupted(cfg)
    (tmp_path / ".q.partial" / "hls" / "hls_stream.h").write_text("#error foreign\n")
    seen = _resume(cfg)
    assert ("weights", "resumed") in seen
    assert not (out / "hls" / "hls_stream.h").exists()
    assert "hls/hls_stream.h" not in json.loads((out / "manifest.json").read_text())["files"]


def test_model_hash_is_the_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        save_hf_bitnet(random_model(CFG, seed=3), d, None)
    assert bs.model_content_hash(a) == bs.model_content_hash(b)
    before = BuildConfig(str(b)).digest()
    (b / "config.json").write_text((b / "config.json").read_text() + " ")
    assert bs.model_content_hash(a) != bs.model_content_hash(b)
    assert BuildConfig(str(b)).digest() != before
    before = BuildConfig(str(b)).digest()
    (b / "extra").mkdir()
    (b / "extra" / "notes.txt").write_text("x")  # every file of a checkpoint directory counts
    assert BuildConfig(str(b)).digest() != before
    tiny = BuildConfig(None)
    tiny.digest()
    assert tiny.model_sha256 == bs.model_content_hash(tiny_model_dir())


def test_model_hashed_once_per_run(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = bs.model_content_hash

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr("edgellm.compiler.pipeline.model_content_hash", counting)
    run_steps(_cfg(ckpt, tmp_path / "q"), compile_steps())
    assert len(calls) == 1


# ---- 4. a malformed build_state.json is no state ----

@pytest.mark.parametrize("state", [
    "[1, 2]", "null", '"done"', "{bad json",
    '{"digest": 5, "done": []}',
    '{"digest": "%s", "done": "codegen_hls codegen_vivado weights tokenizer reference report"}',
    '{"digest": "%s", "done": [1, 2]}',
    '{"digest": "%s", "done": ["codegen_hls"], "outputs": {"codegen_hls": []}}',
    '{"digest": "%s", "done": ["codegen_hls"], '
    '"outputs": {"codegen_hls": {"../x": {"sha256": "a", "size": 1}}}}',
])
def test_malformed_build_state_starts_afresh(ckpt: Path, tmp_path: Path, state: str) -> None:
    out = tmp_path / "q"
    cfg = _cfg(ckpt, out)
    _interrupted(cfg)
    text = state % cfg.digest() if "%s" in state else state
    (tmp_path / ".q.partial" / bs.STATE_FILE).write_text(text)
    seen = _resume(cfg)
    assert not [s for s, w in seen if w == "resumed"], seen
    Project.open(out)
