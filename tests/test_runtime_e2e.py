"""End to end on a compiled project: `edgellm compile`'s build steps, then `edgellm run` / `verify` /
`deploy` on the emulator (C simulation of the project's own HLS sources) against the golden model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from shared_project import E2E_PROMPT as PROMPT
from shared_project import compile_e2e_project
from typer.testing import CliRunner

from edgellm.cli import app

MISSING = [m for m in ("edgellm.compiler.steps", "edgellm.compiler.codegen_hls", "edgellm.commands.compile")
           if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    bool(MISSING), reason=f"edgellm compile is not available: {MISSING} missing")]
if importlib.util.find_spec("hls4ml") is None:
    pytestmark.append(pytest.mark.skip(reason="C simulation needs hls4ml's ap_types headers"))

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(checkpoint dir, project dir) of shared_project.compile_e2e_project."""
    return compile_e2e_project(tmp_path_factory.mktemp("e2e"))


def test_manifest_is_what_the_runtime_reads(built) -> None:
    from edgellm.runtime.project import Project

    _, proj = built
    p = Project.open(proj)
    assert p.iface.max_t == 8 and p.iface.max_ctx == 64 and p.tokenizer_path is not None
    assert {"w0", "data", "hdr_off", "prog_off", "n_desc"} <= set(p.iface.registers)


def test_run_equals_golden_generate(built) -> None:
    ckpt, proj = built
    args = ["--prompt", PROMPT, "-n", "16", "--ignore-eos"]
    gen = runner.invoke(app, ["generate", str(ckpt), *args])
    run = runner.invoke(app, ["run", str(proj), *args, "--device", "emu"])
    assert gen.exit_code == 0 and run.exit_code == 0, (gen.output, run.output)
    text_gen = gen.stdout
    assert run.stdout == text_gen and len(set(text_gen.strip())) > 3
    assert "[device] emulator (C simulation)" in run.stderr
    assert "generated 16" in run.stderr and "accelerator runs" in run.stderr


def test_chat_mode(built) -> None:
    _, proj = built
    res = runner.invoke(app, ["run", str(proj), "--chat", "--device", "emu", "-n", "3", "--ignore-eos"],
                        input="Once upon a time\n\nthe quick brown fox\n")
    assert res.exit_code == 0, res.output
    assert res.stderr.count("generated 3") == 2 and len(res.stdout.splitlines()) == 2


@pytest.mark.parametrize("threads", [False, True], ids=["sequential", "threads"])
def test_session_logits_bit_exact_vs_golden(built, threads: bool) -> None:
    """The runtime's session on the emulator, bit for bit against the golden model; threads: the
    emulator runs the threaded C simulation (DATAFLOW processes concurrent over bounded FIFOs, every
    call checked for a deadlock)."""
    from edgellm.models.golden import GoldenModel
    from edgellm.models.loaders import load_model
    from edgellm.runtime.emulator import EmulatorDevice
    from edgellm.runtime.project import Project
    from edgellm.runtime.session import Session, open_device

    ckpt, proj = built
    p = Project.open(proj)
    dev = open_device(p, "emu-threads" if threads else "emu")
    assert isinstance(dev, EmulatorDevice) and dev.deadlocks is not None and dev.fifo_leftovers is not None
    s = Session(p, dev)
    qm, _ = load_model(ckpt)
    gm = GoldenModel(qm, p.numerics)
    cache = gm.new_cache(64)
    toks = np.arange(3, 3 + 21) * 7 % p.config.vocab_size  # 21 tokens: blocks of 8, 8, 5
    got, want = s.forward(toks), gm.forward(toks, cache, all_logits=False)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    for _ in range(6):
        t = np.array([int(np.argmax(want))])
        got, want = s.forward(t), gm.forward(t, cache, all_logits=False)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert s.driver.starts == 3 + 6


def test_verify_passes(built, tmp_path: Path) -> None:
    _, proj = built
    j = tmp_path / "v.json"
    res = runner.invoke(app, ["verify", str(proj), "--device", "emu", "--json", str(j), "--html",
                              str(tmp_path / "v.html"), "--prompt", PROMPT, "-n", "6"])
    assert res.exit_code == 0, res.output
    rep = json.loads(j.read_text())
    assert rep["ok"] and len(rep["prompt_ids"]) > 8
    dev = [r for r in rep["rows"] if r["pair"] == "device vs golden"]
    assert len(dev) == 2 * 7 + 3 and all(r["exact"] for r in dev)
    pairs = {r["pair"] for r in rep["rows"]}
    assert {"image vs source", "onnx vs golden"} <= pairs
    assert rep["tokens"]["device"] == rep["tokens"]["golden"] == rep["tokens"]["onnx"]


def test_deploy_and_board_script(built, tmp_path: Path) -> None:
    ckpt, proj = built
    res = runner.invoke(app, ["deploy", str(proj), "-o", str(tmp_path / "a.tar.gz")])
    assert res.exit_code == 2 and "run `edgellm build" in res.output and not (tmp_path / "a.tar.gz").exists()
    res = runner.invoke(app, ["deploy", str(proj), "-o", str(tmp_path / "a.tar.gz"),
                              "--allow-missing-bitstream"])
    assert res.exit_code == 0, res.output
    with tarfile.open(tmp_path / "a.tar.gz") as t:
        names = t.getnames()
        t.extractall(tmp_path / "x")
    root = tmp_path / "x" / "a"
    for f in ("README.md", "run_on_board.py", "project/manifest.json", "project/weights.bin",
              "project/embed.bin", "project/tokenizer.json", "python/edgellm/runtime/session.py"):
        assert f"a/{f}" in names
    assert "No bitstream in this archive" in (root / "README.md").read_text()
    # the extracted runtime imports from the archive, without torch / onnx / onnxruntime / tokenizers
    code = ("import sys; sys.path.insert(0, 'python'); import edgellm.runtime.session, edgellm.runtime.bpe, "
            "edgellm.runtime.verify, edgellm; print(edgellm.__file__); "
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'tokenizers', 'typer') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(root / "python" / "edgellm" / "__init__.py"), "[]"]
    gen = runner.invoke(app, ["generate", str(ckpt), "--prompt", PROMPT, "-n", "12", "--ignore-eos"])
    board = subprocess.run([sys.executable, "run_on_board.py", "run", "project", "--prompt", PROMPT,
                            "-n", "12", "--device", "emu"], cwd=root, capture_output=True, text=True,
                           timeout=600)
    assert board.returncode == 0, board.stderr
    assert board.stdout.strip() == gen.stdout.strip()
    # the board script's bad inputs: one line each, never a traceback
    for args in (["run", "project", "--prompt-ids", "1,x"], ["run", "project", "--prompt-ids", "99999999"],
                 ["run", "project", b"--prompt", b"caf\xe9 \xff"]):
        bad = subprocess.run([sys.executable, "run_on_board.py", *args, "--device", "emu"], cwd=root,
                             capture_output=True, text=True, timeout=600)
        assert bad.returncode == 2 and bad.stderr.startswith("error: "), (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    (proj / "edgellm_top.bit").write_bytes(b"bit")
    (proj / "edgellm_top.hwh").write_text("<hwh/>")
    try:
        res = runner.invoke(app, ["deploy", str(proj), "-o", str(tmp_path / "b.tar.gz")])
        assert res.exit_code == 0, res.output
        with tarfile.open(tmp_path / "b.tar.gz") as t:
            assert {"b/project/edgellm_top.bit", "b/project/edgellm_top.hwh"} <= set(t.getnames())
    finally:
        (proj / "edgellm_top.bit").unlink()
        (proj / "edgellm_top.hwh").unlink()


def test_errors_and_sliding_context(built, tmp_path: Path) -> None:
    import shutil

    _, proj = built
    long_ids = ",".join(str(3 + i % 50) for i in range(70))
    res = runner.invoke(app, ["run", str(proj), "--prompt-ids", long_ids, "--device", "emu"])
    assert res.exit_code == 2 and "longer than the model's context of 64" in res.output
    res = runner.invoke(app, ["run", str(proj), "--prompt-ids", long_ids, "--device", "emu", "-n", "40",
                              "--ignore-eos", "--context-policy", "sliding", "--sink", "4", "--window", "24"])
    assert res.exit_code == 0, res.output
    assert "generated 40" in res.stderr and "refills 0" not in res.stderr
    bad = tmp_path / "bad"
    shutil.copytree(proj, bad)
    w = bytearray((bad / "weights.bin").read_bytes())
    w[len(w) // 2] ^= 0x10
    (bad / "weights.bin").write_bytes(bytes(w))
    res = runner.invoke(app, ["run", str(bad), "--prompt", "hi", "--device", "emu"])
    assert res.exit_code == 2 and "weights.bin: sha256" in res.output and "refusing" in res.output


def test_greedy_decode_reads_the_heads_argmax_not_the_logits(built, monkeypatch) -> None:
    """Greedy decode without a repetition penalty takes the LM head's argmax (Session.forward_argmax: the
    argmax region, no logits read): the same tokens as sampling greedily from the logits, also across a
    sliding-context refill; sampling with a top-k filter within the head's k takes its top-k
    (Session.forward_top), the same picks with the same seed; a non-finite top logit is a one-line error."""
    from edgellm.errors import EdgeLLMError
    from edgellm.runtime.generation import generate
    from edgellm.runtime.project import Project
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.runtime.session import Session, open_device

    _, proj = built
    p = Project.open(proj)
    prompt = list(range(3, 40, 3))
    params = SamplingParams(max_new_tokens=60, stop_at_eos=False)  # 13 + 60 > the 64-position cache

    class LogitsOnly:  # the session without forward_argmax: generate samples from the logits
        def __init__(self, s: Session) -> None:
            self.s, self.config, self.name = s, s.config, s.name

        def reset(self) -> None:
            self.s.reset()

        @property
        def length(self) -> int:
            return self.s.length

        def forward(self, tokens, all_logits=False):
            return self.s.forward(tokens, all_logits)

    ref_s = Session(p, open_device(p, "emu"), context_policy="sliding")
    ref = generate(LogitsOnly(ref_s), prompt, params).tokens
    fast_s = Session(p, open_device(p, "emu"), context_policy="sliding")

    def no_logits() -> None:
        raise AssertionError("greedy decode read the logits")

    monkeypatch.setattr(fast_s.driver, "read_logits", no_logits)
    fast = generate(fast_s, prompt, params).tokens
    assert fast == ref and len(ref) == 60 and fast_s.refills >= 1 and ref_s.refills == fast_s.refills
    # sampling with a top-k filter within the head's k: the head's top-k, the same picks as the logits path
    k = min(5, fast_s.head_top_k)
    sampled = SamplingParams(max_new_tokens=12, stop_at_eos=False, temperature=6.0, top_k=k, top_p=0.95,
                             seed=7)
    ref_sampled = generate(LogitsOnly(ref_s), prompt, sampled).tokens
    assert generate(fast_s, prompt, sampled).tokens == ref_sampled and len(set(ref_sampled)) > 1
    # a repetition penalty needs the logits: the session's logits path (read_logits) is taken
    with pytest.raises(AssertionError, match="read the logits"):
        generate(fast_s, prompt, SamplingParams(max_new_tokens=2, repetition_penalty=1.3))
    # the head's top logit not finite: one line
    from edgellm.runtime import driver as drv

    monkeypatch.setattr(fast_s.driver, "read_topk",
                        lambda row=0, synced=False: drv.TopK(5, np.array([5], np.int32),
                                                             np.array([np.nan], np.float32)))
    with pytest.raises(EdgeLLMError, match="not a finite logit"):
        generate(fast_s, prompt, SamplingParams(max_new_tokens=2))
