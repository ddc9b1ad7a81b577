"""The chat template a Hugging Face checkpoint directory ships (kept in the compiled project for chat work).

transformers saves it as chat_template.jinja (newer) or as tokenizer_config.json's "chat_template": a
string, or a list of {"name", "template"} of which "default" is the one used. GGUF files carry it as
tokenizer.chat_template (models/loaders/gguf_tokenizer.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgellm.errors import CheckpointError
from edgellm.runtime import jsonfile

CHAT_TEMPLATE_FILE = "chat_template.jinja"  # the name in a checkpoint directory and in a compiled project


def dir_chat_template(directory: str | Path) -> str | None:
    """The directory's chat template, or None; CheckpointError naming the file when unreadable."""
    d = Path(directory)
    jinja, cfg = d / CHAT_TEMPLATE_FILE, d / "tokenizer_config.json"
    if jinja.is_file():
        return _read(jinja)
    if not cfg.is_file():
        return None
    try:
        raw = jsonfile.loads(_read(cfg))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg}: malformed JSON ({e})") from None
    return _template_of(raw.get("chat_template") if isinstance(raw, dict) else None, cfg)


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p}: cannot read: {e}") from None


def _template_of(v: Any, where: Path) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(t, dict) and isinstance(t.get("template"), str) for t in v):
        return next((t["template"] for t in v if t.get("name") == "default"), None)
    raise CheckpointError(f"{where}: chat_template must be a string or a list of {{name, template}}")
