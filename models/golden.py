"""The golden model: numpy, bit-exact software definition of the accelerator (docs/numerics.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.models import numerics as nx
from edgellm.models.lowbit import lowbit_linear
from edgellm.models.numerics import F32, NumericsPlan
from edgellm.models.weights import Int8Head, Linear, LowBitLinear, QuantModel, TernaryLinear

Tap = Callable[[str, np.ndarray], None]


@dataclass
class KVCache:
    """K and V per layer: (layers, max_len, kv_heads, head_dim) float32, or float16 when the plan's
    kv_dtype is "f16"; `length` positions filled."""

    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @classmethod
    def empty(cls, n_layers: int, max_len: int, n_kv: int, head_dim: int, dtype: type = F32) -> KVCache:
        """Zeroed cache of element type dtype (np.float32 or np.float16)."""
        shape = (n_layers, max_len, n_kv, head_dim)
        return cls(np.zeros(shape, dtype), np.zeros(shape, dtype))


def ternary_linear(q: np.ndarray, qs: np.ndarray, lin: TernaryLinear) -> np.ndarray:
    """(T, in) int8 with per-token qs -> (T, out) float32."""
    return nx.dequantize(nx.int_matmul(q, lin.dense()), qs, lin.scale)


def linear(q: np.ndarray, qs: np.ndarray, lin: Linear, bias: np.ndarray | None = None) -> np.ndarray:
    """A ternary or W{b}A8 low-bit linear (models/lowbit.lowbit_linear), plus an optional float32 bias
    added after it (Qwen2's q/k/v): y = linear(q) + b, one f32 add."""
    y = lowbit_linear(q, qs, lin.quant) if isinstance(lin, LowBitLinear) else ternary_linear(q, qs, lin)
    return y if bias is None else (y + np.asarray(bias, F32)).astype(F32)


def lm_head(x: np.ndarray, head: Int8Head | LowBitLinear, chunk: int = 8192) -> np.ndarray:
    """(T, hidden) normed fp32 -> (T, vocab) logits = (float(acc) / qs) * row_scale, int8 x int8;
    a low-bit head is the W{b}A8 linear (lowbit_linear) on the same int8 activations.

    Exact: float64 products and sums of int8 values stay below 2^53. Vocab rows go in chunks so the
    widened head never exceeds chunk x hidden float64 values."""
    q, qs = nx.quantize(x)
    if isinstance(head, LowBitLinear):
        return lowbit_linear(q, qs, head.quant)
    qf = q.astype(np.float64)
    out = np.empty((q.shape[0], head.w.shape[0]), F32)
    for r0 in range(0, head.w.shape[0], chunk):
        acc = (qf @ head.w[r0:r0 + chunk].astype(np.float64).T).astype(np.int64)
        out[:, r0:r0 + chunk] = (acc.astype(F32) / qs[:, None]) * head.row_scale[None, r0:r0 + chunk]
    return out


class GoldenModel:
    """Prefill and decode with a KV cache, following the numerics contract exactly."""

    def __init__(self, model: QuantModel, plan: NumericsPlan | None = None) -> None:
        self.model = model
        self.cfg = model.config
        self.plan = plan or NumericsPlan.for_head_dim(self.cfg.head_dim)
        self.cos, self.sin = self.cfg.rope_tables(self.cfg.max_context)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KV cache for up to max_len positions (default: the model's context)."""
        c = self.cfg
        return KVCache.empty(c.n_layers, max_len or c.max_context, c.n_kv_heads, c.head_dim,
                             self.plan.kv_np_dtype)

    def layer(self, i: int, h: np.ndarray, cache: KVCache, pos0: int, tap: Tap | None = None
              ) -> np.ndarray:
        """One decoder layer on hidden states h (T, hidden) at positions pos0.. ; updates cache. tap gets
        L{i}.<stage>: each requantization's float input and int8 codes (attn_in, o_in, ffn_in, down_in:
        _x, _q), q_rope, k_rope, v, attn, h_attn, ffn_act, h_out."""
        c, p, L = self.cfg, self.plan, self.model.layers[i]
        t_len = h.shape[0]
        def emit(name: str, a: np.ndarray) -> None:
            if tap is not None:
                tap(f"L{i}.{name}", a)
        x = nx.rmsnorm(h, L.attn_norm, c.rms_eps, p.norm_lanes)
        q8, qs = nx.quantize(x)
        emit("attn_in_x", x)
        emit("attn_in_q", q8)
        qh = linear(q8, qs, L.q, L.q_bias).reshape(t_len, c.n_heads, c.head_dim)
        kh = linear(q8, qs, L.k, L.k_bias).reshape(t_len, c.n_kv_heads, c.head_dim)
        vh = linear(q8, qs, L.v, L.v_bias).reshape(t_len, c.n_kv_heads, c.head_dim)
        cos, sin = self.cos[pos0:pos0 + t_len], self.sin[pos0:pos0 + t_len]
        qh, kh = nx.rope(qh, cos, sin), nx.rope(kh, cos, sin)
        emit("q_rope", qh)
        emit("k_rope", kh)
        emit("v", vh)
        # the cache stores K, V in the plan's kv_dtype (f16: rounded); attention reads them widened,
        # the new tokens' own K/V included, so prefill and decode see the same values
        cache.k[i, pos0:pos0 + t_len] = nx.kv_store(kh, p.kv_dtype)
        cache.v[i, pos0:pos0 + t_len] = nx.kv_store(vh, p.kv_dtype)
        s_len = pos0 + t_len
        k_all, v_all = nx.kv_load(cache.k[i, :s_len]), nx.kv_load(cache.v[i, :s_len])
        with np.errstate(invalid="ignore"):
            a = nx.attention(qh, k_all, v_all, pos0, p)
        a = a.reshape(t_len, c.q_size)
        emit("attn", a)
        a = self._sub(a, L.attn_sub_norm if c.subln else None)
        q8, qs = nx.quantize(a)
        emit("o_in_x", a)
        emit("o_in_q", q8)
        h = h + linear(q8, qs, L.o)
        emit("h_attn", h)
        x = nx.rmsnorm(h, L.ffn_norm, c.rms_eps, p.norm_lanes)
        q8, qs = nx.quantize(x)
        emit("ffn_in_x", x)
        emit("ffn_in_q", q8)
        g = linear(q8, qs, L.gate)
        u = linear(q8, qs, L.up)
        f = (nx.relu2(g) if c.act == "relu2" else nx.silu(g)) * u
        emit("ffn_act", f)
        f = self._sub(f, L.ffn_sub_norm if c.subln else None)
        q8, qs = nx.quantize(f)
        emit("down_in_x", f)
        emit("down_in_q", q8)
        h = h + linear(q8, qs, L.down)
        emit("h_out", h)
        return h.astype(F32)

    def _sub(self, x: np.ndarray, g: np.ndarray | None) -> np.ndarray:
        """SubLN RMSNorm when the model has it."""
        if g is None:
            return x
        return nx.rmsnorm(x, g, self.cfg.rms_eps, self.plan.norm_lanes)

    def forward(self, tokens: np.ndarray, cache: KVCache, pos0: int | None = None,
                tap: Tap | None = None, all_logits: bool = True) -> np.ndarray:
        """Run tokens (T,) at positions cache.length.. ; returns logits (T or 1, vocab)."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        pos0 = cache.length if pos0 is None else pos0
        if tokens.size == 0:
            raise EdgeLLMError("empty token sequence")
        if pos0 + tokens.size > cache.k.shape[1]:
            raise EdgeLLMError(f"sequence of {pos0 + tokens.size} tokens exceeds the context of "
                               f"{cache.k.shape[1]}")
        if tokens.min() < 0 or tokens.max() >= self.cfg.vocab_size:
            raise EdgeLLMError(f"token id out of range [0, {self.cfg.vocab_size})")
        # float32 overflow (weights far too large for the model's arithmetic) runs on to inf/NaN as on the
        # accelerator; NaN logits are refused in one line by the sampler (runtime/sampling.py), not
        # announced by numpy's RuntimeWarnings first
        with np.errstate(over="ignore", invalid="ignore"):
            h = self.model.embed_rows(tokens)
            if tap is not None:
                tap("embed", h)
            for i in range(self.cfg.n_layers):
                h = self.layer(i, h, cache, pos0, tap)
            cache.length = pos0 + tokens.size
            if not all_logits:
                h = h[-1:]
            x = nx.rmsnorm(h, self.model.final_norm, self.cfg.rms_eps, self.plan.norm_lanes)
            if tap is not None:  # the head's input and its int8 codes (lm_head quantizes it again)
                tap("head_in_x", x)
                tap("head_in_q", nx.quantize(x)[0])
            logits = lm_head(x, self.model.lm_head)
        if tap is not None:
            tap("logits", logits)
        return logits

