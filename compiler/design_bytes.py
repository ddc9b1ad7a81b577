"""The bytes a design streams and stores (docs/architecture.md): each ternary linear's packed stream and
the model's per decode step, the LM head's, the KV cache's per token, and the deployed model's DDR
footprint against what a board leaves for it. The weight encoding is ours by default (5 trits per byte,
each row padded to lcm(G, 5) trits: 1.6 bits/weight before padding); DesignParams.bits_per_weight
overrides it to model other designs (TeLLMe streams about 2.06 bits/weight).
"""

from __future__ import annotations

import math
from typing import Any

from edgellm.compiler.design import DesignParams
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

SCALE_BYTES = 4  # one fp32 scale per ternary linear (numerics contract)
NORM_BYTES = 4  # fp32 RMSNorm gamma element
HEAD_ROW_SCALE_BYTES = 4  # fp32 row scale per LM-head row (Int8Head)
EMBED_BYTES = 2  # host-side embedding table kept as bf16/fp16 (checkpoints store it so)
ACT_BYTES = 4  # fp32 activation / residual element


def linear_bytes(out: int, n_in: int, p: DesignParams) -> int:
    """Streamed DDR bytes of one ternary linear (out, n_in), including its fp32 scale."""
    if p.bits_per_weight is not None:
        return math.ceil(out * n_in * p.bits_per_weight / 8) + SCALE_BYTES
    from edgellm.compiler.packing import packed_size  # the encoder's exact size (tiles of p.rows rows)

    return packed_size(out, n_in, p.rows) + SCALE_BYTES


def layer_weight_bytes(cfg: ModelConfig, p: DesignParams) -> int:
    """Streamed ternary weight bytes of one decoder layer."""
    return sum(linear_bytes(o, i, p) for o, i in cfg.linear_shapes().values())


def weight_bytes(cfg: ModelConfig, p: DesignParams) -> int:
    """Streamed ternary weight bytes of the whole model (read once per decode step)."""
    return cfg.n_layers * layer_weight_bytes(cfg, p)


def bits_per_weight(cfg: ModelConfig, p: DesignParams) -> float:
    """Effective streamed bits per ternary weight for this model (padding and scales included)."""
    return 8 * weight_bytes(cfg, p) / cfg.n_ternary_params()


def norms_per_layer(cfg: ModelConfig) -> int:
    """RMSNorms per layer: input + post-attention, plus the two SubLN norms when present."""
    return 4 if cfg.subln else 2


def lm_head_bytes(cfg: ModelConfig, bits: int) -> int:
    """Bytes of the LM head (vocab x hidden at `bits`, plus fp32 row scales for int8)."""
    scales = cfg.vocab_size * HEAD_ROW_SCALE_BYTES if bits <= 8 else 0
    return math.ceil(cfg.vocab_size * cfg.hidden_size * bits / 8) + scales


def kv_bytes_per_token(cfg: ModelConfig, p: DesignParams) -> int:
    """KV cache bytes one token occupies across all layers (K and V)."""
    return 2 * cfg.kv_size * p.kv_bytes * cfg.n_layers


def ddr_footprint(cfg: ModelConfig, p: DesignParams) -> dict[str, int]:
    """DDR bytes the deployed model occupies, by part (host embedding table included)."""
    ctx = p.context(cfg)
    small = cfg.n_layers * norms_per_layer(cfg) * cfg.hidden_size * NORM_BYTES + cfg.hidden_size * NORM_BYTES
    rope = 2 * ctx * (cfg.head_dim // 2) * ACT_BYTES  # cos/sin tables computed on the host
    tokens = max(p.prefill_token_block, 1)
    acts = (4 * tokens * max(cfg.hidden_size, cfg.ffn_size) * ACT_BYTES  # residual + scratch
            + cfg.vocab_size * ACT_BYTES)  # logits
    return {
        "weights": weight_bytes(cfg, p) + small + rope,
        "lm_head": lm_head_bytes(cfg, p.lm_head_bits),
        "embeddings": cfg.vocab_size * cfg.hidden_size * EMBED_BYTES,
        "kv_cache": ctx * kv_bytes_per_token(cfg, p),
        "activations": acts,
    }


def check_ddr_fit(cfg: ModelConfig, p: DesignParams, ddr_available: int, where: str) -> int:
    """Total footprint; EdgeLLMError naming the limit if it exceeds the DDR left for the model."""
    fp = ddr_footprint(cfg, p)
    total = sum(fp.values())
    if total > ddr_available:
        parts = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in fp.items())
        raise EdgeLLMError(
            f"{cfg.name} needs {total / 2**20:.0f} MiB of DDR ({parts}) but {where} leaves "
            f"{ddr_available / 2**20:.0f} MiB for the model (DDR minus the OS reservation)")
    return total


def check_board_ddr_fit(cfg: ModelConfig, p: DesignParams, board: Any) -> int:  # board: boards.Board
    """check_ddr_fit against a board: its DDR left for the model, the message naming the board and its DDR."""
    return check_ddr_fit(cfg, p, board.ddr_available_bytes,
                         f"{board.name} ({board.ddr_bytes / 2**20:.0f} MiB DDR)")
