"""A sweep of the CLI against bad input (issue H2): each case here once ended in a traceback, an internal
error, or more than one line on stderr; now it is one `error:` line and exit 2 (or, for a server, an
answer instead of a traceback in its log)."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from shared_cli import one_error
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir

runner = CliRunner()
DEEP = "[" * 100_000 + "]" * 100_000  # 200 kB of JSON nested past Python's recursion limit


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=4096,
                      max_context=64, name="t")
    return save_hf_bitnet(random_model(cfg, seed=0), tmp_path_factory.mktemp("ck") / "m",
                          tokenizer_json=str(tiny_model_dir() / "tokenizer.json"))


# ---- JSON nested too deeply: json.loads raises RecursionError, which no `except ValueError` caught ----

def _deep_config(d: Path) -> None:
    (d / "config.json").write_text(DEEP)


def _deep_tokenizer_config(d: Path) -> None:
    (d / "tokenizer_config.json").write_text(DEEP)


def _deep_header(d: Path) -> None:
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(DEEP)) + DEEP.encode())


def _deep_index(d: Path) -> None:
    (d / "model.safetensors").rename(d / "model-00001-of-00001.safetensors")
    (d / "model.safetensors.index.json").write_text(DEEP)


@pytest.mark.parametrize("spoil, file", [(_deep_config, "config.json"),
                                         (_deep_tokenizer_config, "tokenizer_config.json"),
                                         (_deep_header, "model.safetensors"),
                                         (_deep_index, "model.safetensors.index.json")])
def test_deeply_nested_json_in_a_checkpoint(ck: Path, tmp_path: Path, spoil, file: str) -> None:  # noqa: ANN001
    d = tmp_path / "m"
    shutil.copytree(ck, d)
    spoil(d)
    one_error(runner.invoke(app, ["generate", str(d), "-p", "hi", "-n", "2"]), file, "nested too deeply")


def test_deeply_nested_json_in_project_files(tmp_path: Path) -> None:
    """A project's tokenizer.json (read by the board's own BPE), reference/golden.json, and the
    manifest.json of a directory `compile --force` is asked to replace."""
    from edgellm.compiler.outdir import check_replaceable
    from edgellm.runtime.bpe import ByteLevelBPE
    from edgellm.runtime.verify import reference_prompt

    (tmp_path / "tokenizer.json").write_text(DEEP)
    with pytest.raises(EdgeLLMError, match="nested too deeply"):
        ByteLevelBPE.from_file(tmp_path / "tokenizer.json")
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "golden.json").write_text(DEEP)
    with pytest.raises(EdgeLLMError, match="nested too deeply"):
        reference_prompt(tmp_path, 100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(DEEP)
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(EdgeLLMError, match="manifest.json is not valid JSON; refusing to overwrite"):
        check_replaceable(out, force=True)
    assert (out / "mine.txt").read_text() == "the user's"


def test_jsonfile_loads_is_json_loads_with_one_error_type() -> None:
    import json

    from edgellm.runtime import jsonfile

    assert jsonfile.loads('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert jsonfile.loads(b"[1]") == [1]
    for bad in (DEEP, DEEP.encode(), "{", b"\xff"):
        with pytest.raises(ValueError):
            jsonfile.loads(bad)
    with pytest.raises(json.JSONDecodeError) as ei:
        jsonfile.loads('{"a":' * 50_000)
    assert str(ei.value) == "JSON nested too deeply (more levels than the parser can follow)"


# ---- serve: a client that leaves before sending its whole body ----

def test_serve_client_leaving_mid_body_is_logged_not_a_traceback() -> None:
    """starlette's ClientDisconnect escaped the body read: uvicorn logged "Exception in ASGI application"
    with a traceback for every client that hung up early."""
    import logging
    import socket

    from shared_serve import wait_until

    from edgellm.serve.app import ServeConfig, create_app
    from edgellm.serve.server import BackgroundServer
    from edgellm.serve.target import open_target
    from edgellm.serve.worker import Worker

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("uvicorn.error")
    lines: list[str] = []
    target = open_target(None)
    worker = Worker(target, 4, 30.0)
    worker.start()
    try:
        with BackgroundServer(create_app(target, worker, ServeConfig(None, 30.0, 5.0, lines.append))) as srv:
            log.addHandler(handler)
            with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
                sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            wait_until(lambda: any(": 499 " in ln for ln in lines), "the early hang-up to be logged", 10)
    finally:
        log.removeHandler(handler)
        assert worker.close(10)
    assert [ln for ln in lines if "499" in ln] == ["[serve] /v1/completions: 499 the client closed the "
                                                   "connection before sending the whole body"]
    assert not records, [r.getMessage() for r in records]


# ---- serve: a model id that is not UTF-8 made every answer a 500 ----

@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """serve_forever returns at once; the ids the app would have served."""
    import edgellm.serve.app as app_mod
    import edgellm.serve.server as server_mod

    names: list[str] = []
    real = app_mod.create_app
    monkeypatch.setattr(app_mod, "create_app", lambda t, w, c: (names.append(t.name), real(t, w, c))[1])
    monkeypatch.setattr(server_mod, "serve_forever", lambda *a, **k: None)
    return names


def test_serve_model_id_must_be_utf8(ck: Path, tmp_path: Path, served: list[str]) -> None:
    one_error(runner.invoke(app, ["serve", str(ck), "--port", "0", "--model-name", "a\udcffb"]),
               "--model-name is not valid UTF-8 text (byte 0xff at character 1)")
    odd = tmp_path / "m\udcff"  # a directory named b"m\xff", as argv gives it to Python
    shutil.copytree(ck, odd)
    one_error(runner.invoke(app, ["serve", str(odd), "--port", "0"]), "not valid UTF-8", "--model-name")
    assert served == []
    res = runner.invoke(app, ["serve", str(odd), "--port", "0", "--model-name", "m"])
    assert res.exit_code == 0 and served == ["m"], res.output


# ---- board-emulator: an address it cannot listen on ----

@pytest.mark.usefixtures("pynq_client_lock")  # one test at a time drives pynq's client (conftest.py)
@pytest.mark.skipif(importlib.util.find_spec("pynq") is None or importlib.util.find_spec("grpc") is None,
                    reason="the board emulator needs pynq and grpcio (pip install edgellm[board])")
def test_board_emulator_bind_failures_are_one_line(tmp_path: Path) -> None:
    """gRPC's failed bind printed a line of its C core's log on stderr ("E1206 ... chttp2_server.cc ...
    Address already in use") before edgellm's error, which said only "Failed to bind"; now the address is
    tried first, in one line that says why, and the project is left as it was."""
    import socket

    from shared_project import make_project

    proj = make_project(tmp_path / "p")
    before = sorted(f.name for f in proj.iterdir())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = [(["--port", str(port)], f"cannot listen on 127.0.0.1:{port}: Address already in use"),
                 (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:7967: Cannot assign requested"),
                 (["--host", "no.such.host.invalid"], "cannot resolve --host 'no.such.host.invalid'")]
        for args, why in cases:
            res = subprocess.run([sys.executable, "-m", "edgellm.cli", "board-emulator", str(proj), *args,
                                  "--seconds", "1"], capture_output=True, text=True, timeout=120)
            assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
            assert res.stderr.startswith(f"error: {why}"), res.stderr
    assert sorted(f.name for f in proj.iterdir()) == before  # no emulation bitstream left behind


# ---- run --device pynq without a board: pynq's warning printed two lines before the error ----

def test_pynq_warning_before_a_failed_overlay_is_told_in_the_error(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """pynq (without XRT) warns "No devices found, is the XRT environment sourced?" and then raises "No
    Devices Found": Python printed the warning as two lines (file:line and `warnings.warn(`) before
    edgellm's error line."""
    import types
    import warnings

    from edgellm.runtime.pynq_device import PynqDevice

    class Overlay:
        def __init__(self, *args: object, **kw: object) -> None:
            warnings.warn("No devices found, is the XRT environment\nsourced?", UserWarning, stacklevel=2)
            raise RuntimeError("No Devices Found")

    fake = types.ModuleType("pynq")
    fake.Overlay = Overlay  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynq", fake)
    monkeypatch.delenv("PYNQ_REMOTE_DEVICES", raising=False)
    bit = tmp_path / "edgellm_top.bit"
    bit.write_bytes(bytes(64))
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with pytest.raises(EdgeLLMError) as ei:
            PynqDevice(bit)
    assert str(ei.value) == ("pynq: loading the overlay failed: No Devices Found (No devices found, is the "
                             "XRT environment sourced?)")
    assert [str(w.message) for w in leaked] == []


# ---- numpy's RuntimeWarnings before the error line ----

def test_gguf_nonfinite_block_scale_is_refused_without_warnings() -> None:
    """A GGUF block whose fp16 scale is inf (a bit flip, a wrong data offset) made numpy warn "invalid
    value encountered in multiply" (two lines on stderr) before the loader's one-line refusal."""
    import warnings

    import numpy as np

    from edgellm.errors import CheckpointError
    from edgellm.models.loaders.gguf_quants import decode

    block = np.zeros(144, np.uint8)  # Q4_K: fp16 d and dmin, 12 bytes of 6-bit scales (0 here), codes
    block[0:2] = np.frombuffer(np.float16(np.inf).tobytes(), np.uint8)  # d * 0 = NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match="Q4_K block scale is NaN or inf"):
            decode("Q4_K", block, 1, 256, "tensor t")


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose final norm (3e38, finite) overflows float32 at the first token: NaN logits."""
    import numpy as np

    cfg = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=4096,
                      max_context=64, name="t")
    qm = random_model(cfg, seed=0)
    qm.final_norm = np.full(cfg.hidden_size, 3e38, np.float32)
    return save_hf_bitnet(qm, tmp_path_factory.mktemp("ovf") / "m",
                          tokenizer_json=str(tiny_model_dir() / "tokenizer.json"))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_overflowing_model_is_one_line_in_generate_and_eval(overflowing: Path, tmp_path: Path) -> None:
    """generate printed numpy's overflow/invalid-value warnings (eight lines) before `error: logits contain
    NaN`; eval printed the same warnings and then a perplexity of nan with exit 0."""
    one_error(runner.invoke(app, ["generate", str(overflowing), "-p", "hi", "-n", "2"]),
               "logits contain NaN")
    text = tmp_path / "t.txt"
    text.write_text("hello world, once upon a time\n")
    one_error(runner.invoke(app, ["eval", str(overflowing), "--text", str(text)]),
               "backend golden: the logits of token 0 are NaN or infinite")


@pytest.mark.slow
def test_compile_refuses_a_model_whose_reference_run_overflows(overflowing: Path, tmp_path: Path) -> None:
    """compile wrote a project whose reference logits were NaN (and greedy ids argmax(NaN) = 0): every
    `run` of it then failed with `logits contain NaN`."""
    out = tmp_path / "p"
    one_error(runner.invoke(app, ["compile", str(overflowing), "-o", str(out), "--no-onnx-reference"]),
               "reference run gives NaN or infinite logits after 16 tokens", "refusing to compile")
    assert not out.exists()


# ---- stdout closed (`edgellm generate ... >&-`) ----

def test_generate_with_stdout_closed(ck: Path) -> None:
    """Python makes sys.stdout None when fd 1 is closed: the streamed text's sys.stdout.write was an
    AttributeError (exit 3, an internal error); now the text goes nowhere, as print() would send it."""
    import os

    res = subprocess.run([sys.executable, "-m", "edgellm.cli", "generate", str(ck), "-p", "hi", "-n", "3"],
                         capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120,
                         preexec_fn=lambda: os.close(1))
    assert res.returncode == 0 and "error" not in res.stderr, res.stderr
    assert res.stderr.splitlines()[-1].startswith("[golden] prompt "), res.stderr
