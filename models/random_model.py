"""Random QuantModels of any shape, for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from edgellm.models.config import ModelConfig
from edgellm.models.lowbit import GroupQuant
from edgellm.models.weights import (
    FloatWeights,
    Int8Head,
    Layer,
    LowBitLinear,
    QuantModel,
    TernaryLinear,
    pack2,
)

LowBitSpec = tuple[int, int]  # (bits, group)


def _ternary(rng: np.random.Generator, out: int, k: int, density: float) -> TernaryLinear:
    """Random ternary linear with scale ~ 1/mean|W| of a unit-variance latent weight."""
    rows = []
    for r0 in range(0, out, 1024):  # bounded temporaries for big shapes
        n = min(1024, out - r0)
        u = rng.random((n, k), dtype=np.float32)
        t = np.where(u < density / 2, -1, np.where(u < density, 1, 0)).astype(np.int8)
        rows.append(pack2(t))
    scale = np.float32(np.sqrt(k) * rng.uniform(0.8, 1.25))
    return TernaryLinear(np.concatenate(rows), k, scale)


def random_lowbit(rng: np.random.Generator, out: int, k: int, bits: int, group: int) -> LowBitLinear:
    """Random b-bit codes with per-group scales ~ 1 / (2^b sqrt(k)) of both signs and offsets
    m = -s * zero, zero a random code (GPTQ/K-quant-like), so outputs have a unit-ish scale."""
    top = (1 << bits) - 1
    codes = rng.integers(0, top + 1, (out, k), dtype=np.uint8)
    g = k // group
    s = (rng.uniform(0.5, 1.5, (out, g)) * 3.4 / (top * np.sqrt(k))).astype(np.float32)
    s *= np.where(rng.random((out, g)) < 0.2, -1, 1).astype(np.float32)
    zero = rng.integers(0, top + 1, (out, g)).astype(np.float32)
    m = (-s * zero).astype(np.float32)
    return LowBitLinear(GroupQuant(codes, s, m, bits, group), "random")


def random_model(cfg: ModelConfig, seed: int = 0, density: float = 0.6,
                 lowbit: LowBitSpec | dict[str, LowBitSpec] | None = None,
                 lowbit_head: LowBitSpec | None = None) -> QuantModel:
    """A QuantModel with random ternary weights, bf16-representable embeddings and norms ~ 1.

    lowbit: (bits, group) for every linear, or {linear name: (bits, group)} for some of them (the
    others stay ternary): random group-quantized LowBitLinears. lowbit_head: a low-bit LM head instead
    of the int8 one. cfg.qkv_bias: random q/k/v biases."""
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden_size, cfg.ffn_size
    shapes = cfg.linear_shapes()
    spec = ({n: lowbit for n in shapes} if isinstance(lowbit, tuple) else dict(lowbit or {}))

    def norm(n: int) -> np.ndarray:
        return rng.uniform(0.5, 1.5, n).astype(np.float32)

    def bias(n: int) -> np.ndarray | None:
        return rng.normal(0.0, 0.5, n).astype(np.float32) if cfg.qkv_bias else None

    layers = []
    for _ in range(cfg.n_layers):
        lin = {n: random_lowbit(rng, o, i, *spec[n]) if n in spec else _ternary(rng, o, i, density)
               for n, (o, i) in shapes.items()}
        layers.append(Layer(attn_norm=norm(h), ffn_norm=norm(h),
                            attn_sub_norm=norm(cfg.q_size) if cfg.subln else None,
                            ffn_sub_norm=norm(f) if cfg.subln else None, q_bias=bias(cfg.q_size),
                            k_bias=bias(cfg.kv_size), v_bias=bias(cfg.kv_size), **lin))
    emb = np.empty((cfg.vocab_size, h), np.uint16)  # bf16 bit patterns
    for r0 in range(0, cfg.vocab_size, 4096):
        n = min(4096, cfg.vocab_size - r0)
        e = rng.standard_normal((n, h), dtype=np.float32)
        emb[r0:r0 + n] = (e.view(np.uint32) >> 16).astype(np.uint16)
    head_rows = []
    for r0 in range(0, cfg.vocab_size, 4096):
        e = (emb[r0:r0 + 4096].astype(np.uint32) << 16).view(np.float32)
        head_rows.append(Int8Head.quantize(e))
    head: Int8Head | LowBitLinear = Int8Head(np.concatenate([x.w for x in head_rows]),
                                             np.concatenate([x.row_scale for x in head_rows]))
    if lowbit_head is not None:
        head = random_lowbit(rng, cfg.vocab_size, h, *lowbit_head)
    qm = QuantModel(cfg, emb, layers, norm(h), head, meta={"source": f"random(seed={seed})"})
    qm.validate()
    return qm


def random_float_weights(cfg: ModelConfig, seed: int = 0) -> FloatWeights:
    """A float Llama/Qwen2 model (HF row order) with 1/sqrt(in)-scaled Gaussian linears, norms ~ 1,
    q/k/v biases when cfg.qkv_bias; for writing GGUF/GPTQ fixtures."""
    rng = np.random.default_rng(seed)

    def m(o: int, i: int) -> np.ndarray:
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    layers = []
    for _ in range(cfg.n_layers):
        L = {n: m(o, i) for n, (o, i) in cfg.linear_shapes().items()}
        L.update(attn_norm=rng.uniform(0.5, 1.5, cfg.hidden_size).astype(np.float32),
                 ffn_norm=rng.uniform(0.5, 1.5, cfg.hidden_size).astype(np.float32))
        if cfg.qkv_bias:
            L.update(q_bias=rng.normal(0, 0.3, cfg.q_size).astype(np.float32),
                     k_bias=rng.normal(0, 0.3, cfg.kv_size).astype(np.float32),
                     v_bias=rng.normal(0, 0.3, cfg.kv_size).astype(np.float32))
        layers.append(L)
    head = None if cfg.tied_embeddings else m(cfg.vocab_size, cfg.hidden_size)
    return FloatWeights(cfg, m(cfg.vocab_size, cfg.hidden_size) * 8, np.ones(cfg.hidden_size, np.float32),
                        layers, head)
