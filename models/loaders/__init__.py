"""Checkpoint loaders: Hugging Face BitNet (packed), GPTQ (2-8-bit Llama/Qwen2), latent-weight (absmean
at load), GGUF (bitnet; llama/qwen2 with Q4_0..Q6_K tensors); tokenizer.

`load_model(path)` detects the format: a directory whose config.json has a bitnet
quantization_config (packed HF BitNet), one with a gptq quantization_config (GPTQ), a directory with
a llama/bitnet config.json and float weights (latent), or a .gguf file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgellm.errors import CheckpointError
from edgellm.models.loaders.chat_template import dir_chat_template
from edgellm.models.loaders.common import read_config
from edgellm.models.loaders.gguf_loader import load_gguf
from edgellm.models.loaders.gptq import is_gptq, load_gptq
from edgellm.models.loaders.hf_bitnet import is_hf_bitnet, load_hf_bitnet, save_hf_bitnet
from edgellm.models.loaders.latent import is_latent, load_latent
from edgellm.models.loaders.tokenizer import Tokenizer
from edgellm.models.weights import QuantModel

__all__ = ["load_model", "detect_format", "load_hf_bitnet", "save_hf_bitnet", "load_latent",
           "load_gguf", "load_gptq", "Tokenizer"]


def detect_format(path: str | os.PathLike) -> str:
    """'hf_bitnet', 'gptq', 'latent' or 'gguf'; CheckpointError if missing or unrecognized."""
    p = Path(path)
    if p.is_file():
        try:
            with open(p, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise CheckpointError(f"{p}: cannot read: {e.strerror or e}") from None
        if magic == b"GGUF":
            return "gguf"
        raise CheckpointError(f"{p}: not a GGUF file (bad magic) and not a checkpoint directory")
    if not p.is_dir():
        if p.exists():
            raise CheckpointError(f"{p}: not a regular file or a directory (a checkpoint is a .gguf file "
                                  "or a directory)")
        raise CheckpointError(f"{p}: no such file or directory")
    cfg = read_config(p)
    if is_hf_bitnet(cfg):
        return "hf_bitnet"
    if is_gptq(p, cfg):
        return "gptq"
    if is_latent(cfg):
        return "latent"
    raise CheckpointError(f"{p / 'config.json'}: unsupported model_type {cfg.get('model_type')!r} "
                          "(expected bitnet or llama; GPTQ: llama or qwen2)")


def load_model(path: str | os.PathLike) -> tuple[QuantModel, Any]:
    """Load any supported checkpoint; the tokenizer comes from tokenizer.json when present (a GGUF: from
    its metadata). qm.meta["chat_template"]: the model's chat template or None."""
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "gguf":
        return load_gguf(p)  # the tokenizer from the file's metadata (models/loaders/gguf_tokenizer.py)
    loader = {"hf_bitnet": load_hf_bitnet, "gptq": load_gptq, "latent": load_latent}[fmt]
    qm = loader(p)
    qm.meta["chat_template"] = dir_chat_template(p)
    tj = p / "tokenizer.json"
    tok = Tokenizer.from_file(tj, qm.config.bos_id, qm.config.eos_id) if tj.is_file() else None
    return qm, tok
