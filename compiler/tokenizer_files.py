"""The compiled project's tokenizer.json and chat_template.jinja (the `tokenizer` step of compile).

tokenizer.json is the tokenizer the model was loaded with: for a GGUF, the text the loader built from
its metadata (or its embedded tokenizer.huggingface.json), which runtime/bpe.py reads on the host and
the board; for a checkpoint directory, its tokenizer.json. chat_template.jinja is the model's chat
template (GGUF tokenizer.chat_template, or the directory's chat_template.jinja / tokenizer_config.json),
named by manifest["chat_template"] for the chat and server work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgellm.models.loaders.chat_template import CHAT_TEMPLATE_FILE
from edgellm.models.weights import QuantModel

TOKENIZER_FILE = "tokenizer.json"


def write_tokenizer_files(work: Path, qm: QuantModel, model_path: Path) -> None:
    """Write tokenizer.json and chat_template.jinja into work when the model has them."""
    text = qm.meta.get("tokenizer_json")
    if isinstance(text, str):
        (work / TOKENIZER_FILE).write_text(text, encoding="utf-8")
    elif model_path.is_dir() and (model_path / TOKENIZER_FILE).is_file():
        shutil.copyfile(model_path / TOKENIZER_FILE, work / TOKENIZER_FILE)
    template = qm.meta.get("chat_template")
    if isinstance(template, str):
        (work / CHAT_TEMPLATE_FILE).write_text(template, encoding="utf-8")


def chat_template_entry(work: Path) -> str | None:
    """manifest["chat_template"]: the file's name when the project has one."""
    return CHAT_TEMPLATE_FILE if (work / CHAT_TEMPLATE_FILE).is_file() else None
