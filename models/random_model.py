"""Random QuantModels of any shape, for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from edgellm.models.config import ModelConfig
from edgellm.models.weights import Int8Head, Layer, QuantModel, TernaryLinear, pack2


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


def random_model(cfg: ModelConfig, seed: int = 0, density: float = 0.6) -> QuantModel:
    """A QuantModel with random ternary weights, bf16-representable embeddings and norms ~ 1."""
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden_size, cfg.ffn_size

    def norm(n: int) -> np.ndarray:
        return rng.uniform(0.5, 1.5, n).astype(np.float32)

    layers = []
    for _ in range(cfg.n_layers):
        lin = {n: _ternary(rng, o, i, density) for n, (o, i) in cfg.linear_shapes().items()}
        layers.append(Layer(attn_norm=norm(h), ffn_norm=norm(h),
                            attn_sub_norm=norm(cfg.q_size) if cfg.subln else None,
                            ffn_sub_norm=norm(f) if cfg.subln else None, **lin))
    emb = np.empty((cfg.vocab_size, h), np.uint16)  # bf16 bit patterns
    for r0 in range(0, cfg.vocab_size, 4096):
        n = min(4096, cfg.vocab_size - r0)
        e = rng.standard_normal((n, h), dtype=np.float32)
        emb[r0:r0 + n] = (e.view(np.uint32) >> 16).astype(np.uint16)
    head_rows = []
    for r0 in range(0, cfg.vocab_size, 4096):
        e = (emb[r0:r0 + 4096].astype(np.uint32) << 16).view(np.float32)
        head_rows.append(Int8Head.quantize(e))
    head = Int8Head(np.concatenate([x.w for x in head_rows]),
                    np.concatenate([x.row_scale for x in head_rows]))
    qm = QuantModel(cfg, emb, layers, norm(h), head, meta={"source": f"random(seed={seed})"})
    qm.validate()
    return qm
