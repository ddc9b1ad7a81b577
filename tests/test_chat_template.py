"""The model's chat template (HF tokenizer_config.json / chat_template.jinja, GGUF tokenizer.chat_template)
kept in the compiled project, and the project's tokenizer taking the model's BOS/EOS ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY, sha, write_project

from edgellm.compiler.tokenizer_files import chat_template_entry, write_tokenizer_files
from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import load_model, save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.runtime.project import Project, ProjectError

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return Path(save_hf_bitnet(random_model(TINY, seed=3), tmp_path / "ckpt"))


def test_hf_directory_templates(ckpt: Path) -> None:
    assert load_model(ckpt)[0].meta["chat_template"] is None
    cfg = ckpt / "tokenizer_config.json"
    cfg.write_text(json.dumps({"chat_template": TEMPLATE, "add_bos_token": True}))
    assert load_model(ckpt)[0].meta["chat_template"] == TEMPLATE
    cfg.write_text(json.dumps({"chat_template": [{"name": "tool_use", "template": "x"},
                                                 {"name": "default", "template": TEMPLATE}]}))
    assert load_model(ckpt)[0].meta["chat_template"] == TEMPLATE
    (ckpt / "chat_template.jinja").write_text("jinja " + TEMPLATE)
    assert load_model(ckpt)[0].meta["chat_template"] == "jinja " + TEMPLATE


@pytest.mark.parametrize("text,msg", [("{not json", "malformed JSON"),
                                      ('{"chat_template": 3}', "must be a string or a list")])
def test_bad_tokenizer_config(ckpt: Path, text: str, msg: str) -> None:
    (ckpt / "tokenizer_config.json").write_text(text)
    with pytest.raises(CheckpointError, match=msg) as ei:
        load_model(ckpt)
    assert "tokenizer_config.json" in str(ei.value) and "\n" not in str(ei.value)


def test_project_lists_the_template(tmp_path: Path) -> None:
    qm = random_model(TINY, seed=1)
    qm.meta["chat_template"] = TEMPLATE
    d = write_project(tmp_path / "p", qm)
    write_tokenizer_files(d, qm, tmp_path / "model.gguf")
    assert chat_template_entry(d) == "chat_template.jinja" and not (d / "tokenizer.json").exists()
    m = json.loads((d / "manifest.json").read_text())
    m["chat_template"] = "chat_template.jinja"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ProjectError, match="chat_template 'chat_template.jinja' is not listed in files"):
        Project.open(d)
    m["files"]["chat_template.jinja"] = sha(d / "chat_template.jinja")
    (d / "manifest.json").write_text(json.dumps(m))
    assert Project.open(d).chat_template_path.read_text() == TEMPLATE
    m["chat_template"] = "../x.jinja"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ProjectError, match="chat_template"):
        Project.open(d)


def test_run_takes_the_models_eos(tmp_path: Path) -> None:
    """The project's tokenizer stops at the model's EOS id (a GGUF's tokenizer.ggml.eos_token_id, e.g.
    <|eot_id|>), not at the first EOS-like name in its vocabulary."""
    from tokenizers import Tokenizer, models

    from edgellm.commands.run import codec_for

    vocab = {"<s>": 0, "</s>": 1, "<|eot_id|>": 2, **{chr(97 + i): 3 + i for i in range(26)}}
    tok = tmp_path / "tokenizer.json"
    tok.write_text(Tokenizer(models.BPE(vocab, [])).to_str())
    cfg = ModelConfig(**(TINY.to_dict() | {"bos_id": 0, "eos_id": 2}))
    codec = codec_for(Project.open(write_project(tmp_path / "p", random_model(cfg, seed=2), tokenizer=tok)))
    assert (codec.bos_id, codec.eos_id) == (0, 2)
