"""Issue 14, user inputs: every hostile argument to generate/run/verify/eval/estimate is one `error:` line
and exit 2 (never a traceback, a hang or a stray file); bad text lines in `run --chat` are reported
and the session goes on. Projects are written like the compiler does and run on the Python model of
the top (tests/test_runtime_support.py), so no C simulation is built here."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import TINY, PythonTop, write_project
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir

runner = CliRunner()
TOKENIZER = tiny_model_dir() / "tokenizer.json"  # byte-level BPE, 4096 ids
VOCAB = 4096
BAD = "a\udcffb"  # what Python makes of the argv bytes b"a\xffb" (surrogate escape)


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> Path:
    """A tiny Hugging Face BitNet checkpoint with the shipped tokenizer; context 64."""
    cfg = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=VOCAB,
                      max_context=64, name="t")
    return save_hf_bitnet(random_model(cfg, seed=0), tmp_path_factory.mktemp("ck") / "m",
                          tokenizer_json=str(TOKENIZER))


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    """A project with a tokenizer, KV cache of 32 positions."""
    cfg = ModelConfig(**{**TINY.to_dict(), "vocab_size": VOCAB, "name": "tokproj"})
    return write_project(tmp_path_factory.mktemp("p") / "p", random_model(cfg, seed=2), max_t=4, max_ctx=32,
                         tokenizer=TOKENIZER)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """A project without a tokenizer (vocabulary 96)."""
    return write_project(tmp_path_factory.mktemp("b") / "b", random_model(TINY, seed=1), max_t=4, max_ctx=32)


@pytest.fixture
def python_top(monkeypatch):
    """Devices are the Python model of the top (what the emulator computes, without a C-sim build)."""
    import edgellm.runtime.session as session_mod
    from edgellm.runtime.emulator import EmulatorDevice

    monkeypatch.setattr(session_mod, "open_device", lambda p, kind="auto": EmulatorDevice(
        PythonTop(p.config, p.numerics), p.iface.registers, name="python-top"))


@pytest.fixture
def no_device(monkeypatch):
    """Fails the test if a device is opened (the error must come before any work)."""
    import edgellm.runtime.session as session_mod

    def boom(p, kind="auto"):
        raise AssertionError("a device was opened")
    monkeypatch.setattr(session_mod, "open_device", boom)


def _one_error(res, *needles: str) -> str:
    """The result is exit 2 with exactly one `error:` line (no traceback) holding every needle."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _ids(n: int) -> str:
    return " ".join(str(5 + i) for i in range(n))


# ---- 1. prompts that are not UTF-8 ----

def test_generate_prompt_not_utf8(ck):
    _one_error(runner.invoke(app, ["generate", str(ck), "--prompt", BAD, "-n", "2"]),
               "--prompt is not valid UTF-8", "0xff")


def test_generate_prompt_not_utf8_from_argv(ck):
    """The real path: raw bytes in argv, decoded by Python with surrogateescape."""
    res = subprocess.run([sys.executable, "-m", "edgellm.cli", "generate", str(ck), "--prompt", b"a\xffb",
                          "-n", "2"], capture_output=True, timeout=300)
    err = res.stderr.decode()
    assert res.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --prompt is not valid UTF-8"), err


def test_run_and_verify_prompt_not_utf8(proj, no_device):
    _one_error(runner.invoke(app, ["run", str(proj), "--prompt", BAD]), "--prompt is not valid UTF-8")
    _one_error(runner.invoke(app, ["verify", str(proj), "--prompt", BAD, "--no-onnx"]),
               "--prompt is not valid UTF-8")


def test_chat_bad_lines_are_reported_and_the_session_goes_on(proj, python_top):
    stdin = b"Emma was\n\xff\xfe not utf-8\n" + b"word " * 40 + b"\n\nhere\n"
    res = runner.invoke(app, ["run", str(proj), "--chat", "-n", "2", "--ignore-eos"], input=stdin)
    assert res.exit_code == 0 and res.exception is None, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, res.stderr
    assert "stdin line 2 is not valid UTF-8 text (byte 0xff" in errors[0]
    assert "longer than the model's context of 32 tokens" in errors[1]
    assert res.stderr.count("generated 2") == 2  # lines 1 and 5 ran


def test_chat_refuses_a_prompt_option_and_a_project_without_tokenizer(proj, bare, no_device):
    _one_error(runner.invoke(app, ["run", str(proj), "--chat", "--prompt", "x"], input=b"y\n"), "--chat")
    _one_error(runner.invoke(app, ["run", str(bare), "--chat"], input=b"y\n"), "no tokenizer")


def test_text_helpers_for_the_board():
    """runtime/text.py: what the deployed board script uses for --prompt, --prompt-ids and stdin."""
    from edgellm.runtime.bpe import load_tokenizer
    from edgellm.runtime.text import check_utf8, decode_utf8, parse_token_ids

    assert check_utf8("héllo ✓", "--prompt") == "héllo ✓"
    with pytest.raises(EdgeLLMError, match=r"--prompt is not valid UTF-8 text \(byte 0xff at character 1\)"):
        check_utf8(BAD, "--prompt")
    with pytest.raises(EdgeLLMError, match=r"line 3 is not valid UTF-8 text \(byte 0xc3 at offset 1\)"):
        decode_utf8(b"a\xc3(", "line 3")
    assert parse_token_ids("1, 2 +3", "--prompt-ids", 10) == [1, 2, 3]
    for text, needle in (("1.5", "'1.5' is not an integer"), ("nan", "not an integer"),
                         ("-1", "token id -1 is outside the vocabulary [0, 10)"),
                         ("1" * 5000, "is outside the vocabulary"), ("١", "not an integer"),
                         (BAD, "not valid UTF-8")):
        with pytest.raises(EdgeLLMError, match=needle.replace("[", r"\[").replace("(", r"\(")
                           .replace(")", r"\)").replace(".", r"\.").replace("+", r"\+")):
            parse_token_ids(text, "--prompt-ids", 10)
    with pytest.raises(EdgeLLMError, match=r"outside \[0, 2147483648\)"):
        parse_token_ids("2147483648", "--prompt-ids")
    with pytest.raises(EdgeLLMError, match="not valid UTF-8"):
        load_tokenizer(TOKENIZER).encode(BAD)


# ---- 2. model numbers (the loaders' own tests: tests/test_loaders_errors.py) ----

@pytest.mark.parametrize("key,value", [("rope_theta", float("nan")), ("rope_theta", -1.0),
                                       ("rms_norm_eps", float("inf")), ("rms_norm_eps", -1e-5),
                                       ("max_position_embeddings", 2**40)])
def test_generate_and_estimate_refuse_bad_model_numbers(ck, tmp_path, key, value):
    import shutil
    d = Path(shutil.copytree(ck, tmp_path / "m"))
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, key: value}))
    _one_error(runner.invoke(app, ["generate", str(d), "--prompt-ids", "1", "-n", "2"]), key)
    _one_error(runner.invoke(app, ["estimate", str(d)]), key)


# ---- 4. output files and reference/golden.json ----

@pytest.mark.parametrize("kind", ["missing folder", "directory", "fifo", "under a file"])
def test_verify_output_paths_refused_before_running(proj, tmp_path, no_device, kind):
    out = {"missing folder": tmp_path / "nope" / "r.json", "directory": tmp_path,
           "fifo": tmp_path / "r.fifo", "under a file": tmp_path / "f.txt" / "r.json"}[kind]
    if kind == "fifo":
        os.mkfifo(out)
    (tmp_path / "f.txt").write_text("keep")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for opt in ("--json", "--html"):
        res = runner.invoke(app, ["verify", str(proj), "--prompt-ids", "1,2", "--no-onnx", opt, str(out)])
        _one_error(res, opt, str(out))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no temp file
    assert (tmp_path / "f.txt").read_text() == "keep"


def test_write_atomic_failure_leaves_no_temp_file(tmp_path):
    from edgellm.commands.verify import write_atomic

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    with pytest.raises(EdgeLLMError, match="cannot write"):
        write_atomic(tmp_path / "d", "text")  # the rename onto a non-empty directory fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    write_atomic(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").read_text() == "{}" and len(list(tmp_path.iterdir())) == 2


def _with_golden(proj: Path, tmp_path: Path, text: str) -> Path:
    """A copy of the project whose reference/golden.json holds text (listed in the manifest)."""
    import shutil
    d = Path(shutil.copytree(proj, tmp_path / "p"))
    (d / "reference").mkdir()
    (d / "reference" / "golden.json").write_text(text)
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["reference/golden.json"] = hashlib.sha256(text.encode()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    return d


@pytest.mark.parametrize("text,needle", [("{not json", "cannot read the reference prompt"),
                                         ("[1, 2]", "not a JSON object"),
                                         ('{"prompt_ids": "1 2"}', "prompt_ids must be"),
                                         ('{"prompt_ids": [1.5, 2]}', "prompt_ids must be"),
                                         ('{"prompt_ids": [-1]}', "prompt_ids must be"),
                                         ('{"prompt_ids": [100000000000000000000000]}', "prompt_ids must be"),
                                         ('{"prompt_ids": []}', "prompt_ids must be")])
def test_verify_bad_reference_prompt(proj, tmp_path, no_device, text, needle):
    d = _with_golden(proj, tmp_path, text)
    _one_error(runner.invoke(app, ["verify", str(d), "--no-onnx"]), "golden.json", needle)


def test_verify_uses_a_good_reference_prompt(proj, tmp_path, python_top):
    d = _with_golden(proj, tmp_path, '{"prompt_ids": [1, 7, 9]}')
    res = runner.invoke(app, ["verify", str(d), "--no-onnx", "-n", "2"])
    assert res.exit_code == 0, res.output
    assert "3-token prompt" in res.output


# ---- 5. messages and ranges ----

@pytest.mark.parametrize("args,needles", [
    (["--temperature", "inf"], ("temperature must be a finite number", "inf")),
    (["--temperature", "nan"], ("temperature must be a finite number",)),
    (["--temperature", "-1"], ("temperature must be >= 0",)),
    (["--repetition-penalty", "inf"], ("repetition_penalty must be a finite number",)),
    (["--top-p", "nan"], ("top_p must be a finite number",)),
    (["--top-p", "1.5"], ("top_p must be in (0, 1]",)),
    (["--top-p", "0"], ("top_p must be in (0, 1]",)),
    (["--top-k", "-1"], ("top_k must be in [0, 4194304]",)),
    (["--top-k", "100000000000000000000"], ("top_k must be in [0, 4194304]",)),
    (["-n", "-1"], ("max_new_tokens (-n) must be >= 1",)),
    (["--seed", "-3"], ("seed",)),
])
def test_sampling_messages(ck, args, needles):
    _one_error(runner.invoke(app, ["generate", str(ck), "--prompt-ids", "1", *args]), *needles)


@pytest.mark.parametrize("ids,needle", [("99999999999999999999999", "is outside"),
                                        ("-5", "token id -5 is outside"),
                                        ("4096", "token id 4096 is outside the vocabulary [0, 4096)"),
                                        ("1.5", "'1.5' is not an integer token id"),
                                        (BAD, "--prompt-ids is not valid UTF-8")])
def test_bad_prompt_ids(ck, proj, no_device, ids, needle):
    _one_error(runner.invoke(app, ["generate", str(ck), "--prompt-ids", ids]), needle)
    _one_error(runner.invoke(app, ["run", str(proj), "--prompt-ids", ids]), needle)
    _one_error(runner.invoke(app, ["verify", str(proj), "--prompt-ids", ids, "--no-onnx"]), needle)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_timeout_must_be_finite_and_positive(proj, no_device, value):
    for cmd in ("run", "verify"):
        _one_error(runner.invoke(app, [cmd, str(proj), "--prompt-ids", "1", "--timeout", value]),
                   "--timeout must be a finite number of seconds > 0")


def test_paths_of_the_wrong_kind(ck, proj, tmp_path, no_device):
    fifo = tmp_path / "x.fifo"
    os.mkfifo(fifo)
    msg = _one_error(runner.invoke(app, ["generate", str(fifo), "--prompt", "x"]), "not a regular file")
    assert "no such file" not in msg
    for cmd in ("run", "verify"):
        _one_error(runner.invoke(app, [cmd, str(fifo), "--prompt-ids", "1"]), "not a directory")
        _one_error(runner.invoke(app, [cmd, str(ck / "config.json"), "--prompt-ids", "1"]), "not a directory")


def test_eval_text_fifo_is_refused_not_waited_on(ck, tmp_path):
    """A FIFO (or device) as --text would block in open() until a writer comes: refused up front.
    A writer thread feeds the FIFO after a while, so the old behaviour fails instead of hanging."""
    fifo = tmp_path / "t.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def writer() -> None:
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < 60:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.2)
                continue
            os.write(fd, b"hello there, hello again\n")
            os.close(fd)
            return
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        _one_error(runner.invoke(app, ["eval", str(ck), "--text", str(fifo)]), "not a regular file")
    finally:
        stop.set()
        th.join(5)


# ---- 6. prompts longer than the context ----

def test_prompt_over_the_context(ck, proj, python_top):
    _one_error(runner.invoke(app, ["generate", str(ck), "--prompt-ids", _ids(65)]),
               "prompt of 65 tokens is longer than the model's context of 64 tokens")
    _one_error(runner.invoke(app, ["generate", str(ck), "--prompt", "word " * 80]),
               "is longer than the model's context of 64 tokens")
    _one_error(runner.invoke(app, ["run", str(proj), "--prompt-ids", _ids(33)]),
               "prompt of 33 tokens is longer than the model's context of 32 tokens")
    _one_error(runner.invoke(app, ["run", str(proj), "--prompt", "word " * 40]), "context of 32 tokens")
    _one_error(runner.invoke(app, ["verify", str(proj), "--prompt-ids", _ids(31), "-n", "2", "--no-onnx"]),
               "must fit the KV cache of 32")
