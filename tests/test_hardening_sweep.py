"""A sweep of the CLI against bad input (issue H2): each case here once ended in a traceback, an internal
error, or more than one line on stderr; now it is one `error:` line and exit 2 (or, for a server, an
answer instead of a traceback in its log)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
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


def _one_error(res, *needles: str) -> str:  # noqa: ANN001
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "internal error" not in errors[0], res.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


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
    _one_error(runner.invoke(app, ["generate", str(d), "-p", "hi", "-n", "2"]), file, "nested too deeply")


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
