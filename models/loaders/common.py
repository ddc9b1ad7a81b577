"""Shared pieces of the Hugging Face-style loaders: config.json -> ModelConfig, embeddings, LM head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ConfigError, ModelConfig, llama3_freq_factors
from edgellm.models.loaders.safetensors_io import Checkpoint, bf16_bits_if_exact, to_f32
from edgellm.models.weights import Int8Head, check_finite
from edgellm.runtime import jsonfile

__all__ = ["check_finite"]  # re-exported for the loaders

HEAD_CHUNK = 4096  # rows quantized at a time (bounds float32 temporaries for 128k vocabularies)
ACT_NAMES = {"relu2": "relu2", "silu": "silu", "swish": "silu"}


def checkpoint_name(d: Path) -> str:
    """A checkpoint folder's model name: the hub id for a snapshot in huggingface_hub's cache
    (.../models--owner--name/snapshots/<commit>), else the folder's name."""
    d = Path(d)
    repo = d.parent.parent.name
    if d.parent.name == "snapshots" and repo.startswith("models--") and len(repo) > len("models--"):
        return repo[len("models--"):].replace("--", "/")
    return d.name


def read_config(directory: str | Path) -> dict[str, Any]:
    """Parse <dir>/config.json; CheckpointError if missing or malformed."""
    path = Path(directory) / "config.json"
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        cfg = jsonfile.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: malformed JSON: {e.msg} at line {e.lineno}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: malformed config (expected a JSON object)")
    return cfg


def _int(cfg: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    v = cfg.get(key)
    v = default if v is None else v
    if v is None:
        raise CheckpointError(f"{where}: config lacks {key}")
    if isinstance(v, bool) or not isinstance(v, int):
        raise CheckpointError(f"{where}: config {key} must be an integer, got {v!r}")
    return v


def _first_id(v: Any, default: int) -> int:
    if isinstance(v, list):
        v = v[0] if v else None
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else default


# ModelConfig field -> the config.json key it comes from (for error messages)
HF_KEYS = {"hidden_size": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
           "n_kv_heads": "num_key_value_heads", "ffn_size": "intermediate_size", "vocab_size": "vocab_size",
           "head_dim": "head_dim", "max_context": "max_position_embeddings", "rope_theta": "rope_theta",
           "rms_eps": "rms_norm_eps", "tied_embeddings": "tie_word_embeddings", "bos_id": "bos_token_id",
           "eos_id": "eos_token_id", "act": "hidden_act"}


def _number(v: Any, key: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CheckpointError(f"{where}: config {key} must be a number, got {v!r}")
    return float(v)


def build_config(where: str, keys: dict[str, str], **fields: Any) -> ModelConfig:
    """ModelConfig(**fields); a field out of range is reported as `where: <the file's key> ...`."""
    try:
        return ModelConfig(**fields)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {keys.get(e.field, e.field)} {e.problem}") from None


def _rope_factors(rope: dict[str, Any], where: str, head_dim: int, theta: float) -> tuple[float, ...]:
    """Llama 3 rope_scaling -> ModelConfig.rope_freq_factors; () for default RoPE; others refused."""
    rtype = rope.get("rope_type", rope.get("type", "default"))
    if rtype in (None, "default"):
        return ()
    if rtype != "llama3":
        raise CheckpointError(f"{where}: unsupported rope_type {rtype!r} (supported: default, llama3)")
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    vals = [_number(rope.get(k), f"rope_scaling.{k}", where) for k in keys]
    try:
        return llama3_freq_factors(head_dim, theta, vals[0], vals[1], vals[2], int(vals[3]))
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e.problem}") from None


def model_config_from_hf(cfg: dict[str, Any], where: str, *, subln: bool, name: str,
                         default_theta: float, qkv_bias: bool = False) -> ModelConfig:
    """Map a transformers LlamaConfig/BitNetConfig/Qwen2Config dict onto ModelConfig (validated, see
    LIMITS); rope_scaling of type llama3 becomes rope_freq_factors."""
    act = cfg.get("hidden_act", "silu")
    if not isinstance(act, str) or act not in ACT_NAMES:
        raise CheckpointError(f"{where}: unsupported hidden_act {act!r} (relu2 or silu)")
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise CheckpointError(f"{where}: malformed rope parameters {rope!r}")
    theta = _number(cfg.get("rope_theta", rope.get("rope_theta", default_theta)), "rope_theta", where)
    eps = _number(cfg.get("rms_norm_eps", 1e-5), "rms_norm_eps", where)
    tied = cfg.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise CheckpointError(f"{where}: config tie_word_embeddings must be true or false, got {tied!r}")
    heads = _int(cfg, "num_attention_heads", where)
    head_dim = _int(cfg, "head_dim", where, 0) or _int(cfg, "hidden_size", where) // max(heads, 1)
    factors = _rope_factors(rope, where, head_dim, theta)
    return build_config(
        where, HF_KEYS,
        hidden_size=_int(cfg, "hidden_size", where), n_layers=_int(cfg, "num_hidden_layers", where),
        n_heads=heads, n_kv_heads=_int(cfg, "num_key_value_heads", where, heads) or heads,
        ffn_size=_int(cfg, "intermediate_size", where), vocab_size=_int(cfg, "vocab_size", where),
        head_dim=_int(cfg, "head_dim", where, 0), act=ACT_NAMES[act], subln=subln,
        rope_theta=theta, rms_eps=eps, tied_embeddings=tied,
        max_context=_int(cfg, "max_position_embeddings", where, 4096),
        bos_id=_first_id(cfg.get("bos_token_id"), 1), eos_id=_first_id(cfg.get("eos_token_id"), 2),
        name=name, qkv_bias=qkv_bias, rope_freq_factors=factors)


def load_embedding(ck: Checkpoint, name: str, vocab: int, hidden: int) -> np.ndarray:
    """(vocab, hidden) embeddings: bf16 kept as uint16 bit patterns; f32 narrowed when exact."""
    t = ck.info(name)
    if tuple(t.shape) != (vocab, hidden):
        raise CheckpointError(f"{ck.dir}: tensor {name}: shape {list(t.shape)}, "
                              f"expected {[vocab, hidden]}")
    if t.dtype == "BF16":
        return check_finite(ck.raw(name), f"{ck.dir}: tensor {name}")
    e = check_finite(ck.f32(name), f"{ck.dir}: tensor {name}")
    bits = bf16_bits_if_exact(e) if t.dtype == "F32" else None
    return bits if bits is not None else e


def head_from_rows(rows: np.ndarray) -> Int8Head:
    """Int8Head.quantize of (vocab, hidden) rows (float32 or bf16 bits), HEAD_CHUNK rows at a time."""
    n = rows.shape[0]
    w = np.empty(rows.shape, np.int8)
    rs = np.empty(n, np.float32)
    for r0 in range(0, n, HEAD_CHUNK):
        e = rows[r0:r0 + HEAD_CHUNK]
        e = (e.astype(np.uint32) << 16).view(np.float32) if e.dtype == np.uint16 else e
        h = Int8Head.quantize(e)
        w[r0:r0 + len(h.w)], rs[r0:r0 + len(h.w)] = h.w, h.row_scale
    return Int8Head(w, rs)


def head_from_checkpoint(ck: Checkpoint, name: str, vocab: int, hidden: int) -> Int8Head:
    """Quantize an untied float LM head tensor chunk by chunk, straight from the file."""
    t = ck.info(name)
    if tuple(t.shape) != (vocab, hidden):
        raise CheckpointError(f"{ck.dir}: tensor {name}: shape {list(t.shape)}, "
                              f"expected {[vocab, hidden]}")
    w = np.empty((vocab, hidden), np.int8)
    rs = np.empty(vocab, np.float32)
    sf = ck.where[name]
    for r0 in range(0, vocab, HEAD_CHUNK):
        r1 = min(vocab, r0 + HEAD_CHUNK)
        rows = check_finite(to_f32(sf.read_rows(name, r0, r1), t.dtype), f"{ck.dir}: tensor {name}", r0)
        h = Int8Head.quantize(rows)
        w[r0:r1], rs[r0:r1] = h.w, h.row_scale
    return Int8Head(w, rs)
