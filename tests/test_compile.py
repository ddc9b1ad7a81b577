"""`edgellm compile`: project contents, csim bit-exactness, overwrite/resume, board fit errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgellm.compiler.pipeline import BuildConfig, Step, run_steps
from edgellm.compiler.steps import compile_steps
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
from edgellm.models.random_model import random_model

CFG = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344, vocab_size=300,
                  max_context=256)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgellm.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "rnd"
    save_hf_bitnet(random_model(CFG, seed=3), d, None)
    return d


@pytest.fixture(scope="module")
def project(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proj") / "p"
    r = _cli("compile", str(ckpt), "-o", str(out))
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
    r = _cli("csim", str(project))
    print(r.stdout[-600:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "0 of 17 steps differ" in r.stdout


def test_refuses_overwrite_then_force(ckpt: Path, project: Path) -> None:
    r = _cli("compile", str(ckpt), "-o", str(project))
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    before = (project / "manifest.json").read_text()
    r = _cli("compile", str(ckpt), "-o", str(project), "--force")
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
    r = _cli("compile", str(tmp_path / "big"), "--board", "pynq_z2", "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pynq_z2" in r.stderr and "MiB" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_board(ckpt: Path, tmp_path: Path) -> None:
    r = _cli("compile", str(ckpt), "--board", "zedboard", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "kv260" in r.stderr and "Traceback" not in r.stderr
