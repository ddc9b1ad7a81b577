"""GGUF files with their tokenizer as metadata, end to end: `edgellm compile FILE.gguf` then `edgellm run`
on the emulator prints what `edgellm generate FILE.gguf` prints, with no tokenizer file beside the GGUF
(a gpt2-type vocabulary with I2_S linears, a llama-type one with TQ1_0 linears)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from shared_gguf import I2S, TEXTS, Q, gpt2_vocab, model_file, spm_vocab
from typer.testing import CliRunner

from edgellm.cli import app

pytest.importorskip("tokenizers")  # shared_gguf trains the vocabularies with it
pytestmark = [pytest.mark.slow]
if importlib.util.find_spec("hls4ml") is None:
    pytestmark.append(pytest.mark.skip(reason="C simulation needs hls4ml's ap_types headers"))

runner = CliRunner()
PROMPT = "Once upon a time, 🙂 def f(x):"


@pytest.fixture(scope="module", params=["gpt2-i2s", "llama-tq1"])
def built(request, tmp_path_factory) -> tuple[Path, Path]:
    """(GGUF file, compiled project) alone in their folders."""
    d = tmp_path_factory.mktemp(request.param)
    v, qtype = (gpt2_vocab("llama-bpe"), I2S) if request.param == "gpt2-i2s" else (spm_vocab(), Q.TQ1_0)
    f = model_file(d, v, "model.gguf", qtype=qtype, seed=2)
    assert sorted(p.name for p in d.iterdir()) == ["model.gguf"]
    res = runner.invoke(app, ["compile", str(f), "-o", str(d / "proj"), "--no-onnx-reference"])
    assert res.exit_code == 0, res.output
    return f, d / "proj"


def test_run_equals_generate(built) -> None:
    f, proj = built
    args = ["--prompt", PROMPT, "-n", "8", "--ignore-eos"]
    gen = runner.invoke(app, ["generate", str(f), *args])
    run = runner.invoke(app, ["run", str(proj), *args, "--device", "emu"])
    assert gen.exit_code == 0 and run.exit_code == 0, (gen.output, run.output)
    assert run.stdout == gen.stdout and gen.stdout.strip()
    assert "generated 8" in run.stderr


def test_project_tokenizer_and_chat_template(built) -> None:
    from edgellm.commands.deploy import board_files
    from edgellm.models.loaders import load_model
    from edgellm.runtime.bpe import load_tokenizer
    from edgellm.runtime.project import Project

    f, proj = built
    p = Project.open(proj)
    m = json.loads((proj / "manifest.json").read_text())
    assert m["tokenizer"] == "tokenizer.json" and m["chat_template"] == "chat_template.jinja"
    assert {"tokenizer.json", "chat_template.jinja"} <= set(m["files"])
    assert {"tokenizer.json", "chat_template.jinja"} <= set(board_files(p))  # deploy packs both
    qm, tok = load_model(f)
    assert p.chat_template_path.read_text() == qm.meta["chat_template"]
    ours = load_tokenizer(p.tokenizer_path, p.config.bos_id, p.config.eos_id)
    assert (ours.bos_id, ours.eos_id) == (tok.bos_id, tok.eos_id)
    for t in TEXTS:
        assert ours.encode(t) == tok.encode(t)
