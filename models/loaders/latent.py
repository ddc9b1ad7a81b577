"""Latent-weight checkpoints (fp32/fp16/bf16 Llama-style tensors, e.g. 1bitLLM/bitnet_b1_58-large),
ternarized at load with BitNet's absmean rule.

absmean: m = max(mean|W| (accumulated in float64, rounded to fp32), 1e-5); scale = 1/m (fp32);
W_t = clip(rint(W * scale), -1, 1). TernaryLinear.scale = scale (the HF weight_scale convention).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.common import (
    check_finite,
    checkpoint_name,
    head_from_checkpoint,
    head_from_rows,
    load_embedding,
    model_config_from_hf,
    read_config,
)
from edgellm.models.loaders.hf_bitnet import LINEAR_NAMES, is_hf_bitnet
from edgellm.models.loaders.safetensors_io import Checkpoint
from edgellm.models.weights import Layer, QuantModel, TernaryLinear, pack2

# sub-norm tensor names: BitNet-2B-4T style first, then 1bitLLM's (as llama.cpp maps them)
SUB_NORMS = {"attn_sub_norm": ("self_attn.attn_sub_norm", "self_attn.inner_attn_ln"),
             "ffn_sub_norm": ("mlp.ffn_sub_norm", "mlp.ffn_layernorm")}
LATENT_TYPES = ("llama", "bitnet")
ABSMEAN_FLOOR = np.float32(1e-5)


def is_latent(cfg: dict) -> bool:
    """A Llama/BitNet config.json without a bitnet quantization_config."""
    return cfg.get("model_type") in LATENT_TYPES and not is_hf_bitnet(cfg)


def absmean_ternarize(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """(out, in) float latent weight -> (ternary int8 (out, in), fp32 scale = 1 / mean|W|)."""
    w = np.asarray(w, np.float32)
    m = np.float32(np.mean(np.abs(w), dtype=np.float64))
    scale = np.float32(1.0) / max(m, ABSMEAN_FLOOR)
    t = np.clip(np.rint(w * scale), np.float32(-1.0), np.float32(1.0)).astype(np.int8)
    return t, np.float32(scale)


def _linear(ck: Checkpoint, name: str, out: int, k: int) -> TernaryLinear:
    w = check_finite(ck.f32(name, (out, k)), f"{ck.dir}: {name}")
    t, scale = absmean_ternarize(w)
    return TernaryLinear(pack2(t), k, scale)


def _sub_norm_name(ck: Checkpoint, prefix: str, key: str) -> str | None:
    for n in SUB_NORMS[key]:
        if ck.has(prefix + n + ".weight"):
            return prefix + n + ".weight"
    return None


def latent_config(d: Path) -> ModelConfig:
    """The ModelConfig of a latent-weight checkpoint directory from its config.json, checked, and its tensor
    index (SubLN present or not). No tensor is read (compiler/early_fit.py checks the board's DDR with it
    before loading)."""
    raw = read_config(d)
    if not is_latent(raw):
        raise CheckpointError(f"{d / 'config.json'}: model_type {raw.get('model_type')!r} is not a "
                              "latent llama/bitnet checkpoint")
    subln = _sub_norm_name(Checkpoint(d), "model.layers.0.", "attn_sub_norm") is not None
    is_bitnet = raw.get("model_type") == "bitnet"
    return model_config_from_hf(raw, str(d / "config.json"), subln=subln, name=checkpoint_name(d),
                                default_theta=500000.0 if is_bitnet else 10000.0)


def load_latent(path: str | os.PathLike) -> QuantModel:
    """Load a latent-weight checkpoint directory, ternarizing every linear with absmean."""
    d = Path(path)
    cfg = latent_config(d)
    ck = Checkpoint(d)
    subln = cfg.subln
    shapes = cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        lin = {n: _linear(ck, p + hf + ".weight", *shapes[n]) for n, hf in LINEAR_NAMES.items()}
        norms = {"attn_norm": ck.f32(p + "input_layernorm.weight", (cfg.hidden_size,)),
                 "ffn_norm": ck.f32(p + "post_attention_layernorm.weight", (cfg.hidden_size,))}
        if subln:
            for key, size in (("attn_sub_norm", cfg.q_size), ("ffn_sub_norm", cfg.ffn_size)):
                name = _sub_norm_name(ck, p, key)
                if name is None:
                    raise CheckpointError(f"{ck.dir}: missing tensor {p}{SUB_NORMS[key][0]}.weight")
                norms[key] = ck.f32(name, (size,))
        for n, g in norms.items():
            check_finite(g, f"{ck.dir}: layer {i} {n}")
        layers.append(Layer(**norms, **lin))
    embed = load_embedding(ck, "model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size)
    final = check_finite(ck.f32("model.norm.weight", (cfg.hidden_size,)), f"{ck.dir}: model.norm.weight")
    if cfg.tied_embeddings:
        head = head_from_rows(embed)
    else:
        head = head_from_checkpoint(ck, "lm_head.weight", cfg.vocab_size, cfg.hidden_size)
    qm = QuantModel(cfg, embed, layers, final, head, meta={"source": str(d), "format": "latent"})
    qm.validate()
    return qm
