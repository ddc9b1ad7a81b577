"""QuantModel: the quantized model every backend and the compiler consume.

Ternary weights are held 2-bit packed (4 per byte, codes 0/1/2 = -1/0/+1 along the input
dimension) so a 2B-parameter model fits in about 0.5 GB; `TernaryLinear.dense()` unpacks one
linear at a time. Group-quantized 2-8-bit weights (GGUF Q4_0 .. Q6_K, GPTQ) are `LowBitLinear`s
around a models/lowbit.GroupQuant; a model may mix both kinds per tensor, and its LM head is an
int8 per-row `Int8Head` or, as an option, a `LowBitLinear`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.lowbit import GroupQuant

# byte -> its 4 two-bit codes (low bits first) as ternary values
_UNPACK = np.array([[((b >> (2 * i)) & 3) - 1 for i in range(4)] for b in range(256)],
                   dtype=np.int8)


CHECK_ROWS = 4096  # rows checked for NaN/inf at a time (bounded temporaries)


def check_finite(arr: np.ndarray, what: str, row0: int = 0) -> np.ndarray:
    """arr unchanged; CheckpointError naming `what` (and the first bad row of a 2-D tensor) if a float
    tensor, or bf16 bit patterns held as uint16, holds NaN or inf."""
    a = np.asarray(arr)
    a2 = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    for r in range(0, a2.shape[0], CHECK_ROWS):
        chunk = a2[r:r + CHECK_ROWS]
        ok = (chunk & 0x7F80) != 0x7F80 if chunk.dtype == np.uint16 else np.isfinite(chunk)
        if not ok.all():
            row = "" if a.ndim <= 1 else f" (row {row0 + r + int(np.flatnonzero(~ok.all(axis=1))[0])})"
            raise CheckpointError(f"{what}: contains NaN or inf{row}")
    return arr


def pack2(t: np.ndarray) -> np.ndarray:
    """(out, in) ternary int8 -> (out, ceil(in/4)) uint8, code = t + 1, low bits first."""
    out, k = t.shape
    kp = -(-k // 4) * 4
    codes = np.ones((out, kp), dtype=np.uint8)
    codes[:, :k] = (t + 1).astype(np.uint8)
    c = codes.reshape(out, kp // 4, 4)
    return (c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)).astype(np.uint8)


def unpack2(p: np.ndarray, k: int) -> np.ndarray:
    """Inverse of pack2: (out, ceil(k/4)) uint8 -> (out, k) int8 in {-1, 0, 1}."""
    return _UNPACK[p].reshape(p.shape[0], -1)[:, :k]


@dataclass
class TernaryLinear:
    """y = (x_q @ W^T) / (qs * scale): W ternary (out, in), scale as Hugging Face BitNet stores it."""

    packed: np.ndarray  # uint8 (out, ceil(in/4))
    in_features: int
    scale: np.float32  # weight_scale: dequantized weight = W / scale

    @classmethod
    def from_ternary(cls, w: np.ndarray, scale: float) -> TernaryLinear:
        """Build from a dense ternary matrix (out, in)."""
        w = np.asarray(w)
        if w.ndim != 2:
            raise CheckpointError(f"ternary weight must be 2-D, got shape {w.shape}")
        if w.size and (w.min() < -1 or w.max() > 1):
            raise CheckpointError("ternary weight has values outside {-1, 0, 1}")
        s = np.float32(scale)
        if not np.isfinite(s) or s <= 0:
            raise CheckpointError(f"weight scale must be finite and positive, got {scale}")
        return cls(pack2(w.astype(np.int8)), w.shape[1], s)

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in)."""
        return (self.packed.shape[0], self.in_features)

    def dense(self) -> np.ndarray:
        """(out, in) int8 ternary."""
        return unpack2(self.packed, self.in_features)


@dataclass
class LowBitLinear:
    """y = lowbit_linear(x_q, qs, quant) (W{b}A8, docs/numerics.md): b-bit codes with a float32 scale and
    offset per group of inputs. `source` names the format it came from (e.g. "Q4_K", "gptq")."""

    quant: GroupQuant
    source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in)."""
        return self.quant.shape

    @property
    def in_features(self) -> int:
        """Inputs per row."""
        return self.quant.shape[1]

    @property
    def bits(self) -> int:
        """Bits per code (2..8)."""
        return self.quant.bits

    @property
    def group(self) -> int:
        """Inputs per scale/offset group."""
        return self.quant.group

    def dequantize(self) -> np.ndarray:
        """(out, in) float32 weights, scales * codes + mins."""
        return self.quant.dequantize()

    def rows(self, idx: np.ndarray) -> LowBitLinear:
        """The linear restricted to (or reordered by) output rows idx."""
        q, c = self.quant, np.ascontiguousarray
        return LowBitLinear(GroupQuant(c(q.codes[idx]), c(q.scales[idx]), c(q.mins[idx]), q.bits, q.group),
                            self.source)


Linear = TernaryLinear | LowBitLinear


@dataclass
class Int8Head:
    """LM head quantized per output row: logits = (acc / qs) * row_scale."""

    w: np.ndarray  # int8 (vocab, hidden)
    row_scale: np.ndarray  # float32 (vocab,)

    @classmethod
    def quantize(cls, e: np.ndarray) -> Int8Head:
        """Per-row absmax int8 (rs = max|row| / 127; q = clamp(rint(row / rs)))."""
        e = check_finite(np.asarray(e, dtype=np.float32), "LM head weights")
        amax = np.abs(e).max(axis=1)
        rs = (np.maximum(amax, np.float32(1e-8)) / np.float32(127.0)).astype(np.float32)
        q = np.clip(np.rint(e / rs[:, None]), -127, 127).astype(np.int8)
        return cls(q, rs)


@dataclass
class Layer:
    """One decoder layer's parameters."""

    attn_norm: np.ndarray  # f32 (hidden,)
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    ffn_norm: np.ndarray  # f32 (hidden,)
    gate: Linear
    up: Linear
    down: Linear
    attn_sub_norm: np.ndarray | None = None  # f32 (q_size,) when subln
    ffn_sub_norm: np.ndarray | None = None  # f32 (ffn,) when subln
    q_bias: np.ndarray | None = None  # f32 (q_size,) when qkv_bias (Qwen2)
    k_bias: np.ndarray | None = None  # f32 (kv_size,) when qkv_bias
    v_bias: np.ndarray | None = None  # f32 (kv_size,) when qkv_bias

    def linears(self) -> dict[str, Linear]:
        """The seven linears (ternary or low-bit) by name."""
        return {"q": self.q, "k": self.k, "v": self.v, "o": self.o,
                "gate": self.gate, "up": self.up, "down": self.down}


@dataclass
class QuantModel:
    """Everything the accelerator computes with."""

    config: ModelConfig
    embed: np.ndarray  # (vocab, hidden) float32 or bfloat16-as-uint16 (see embed_rows)
    layers: list[Layer]
    final_norm: np.ndarray  # f32 (hidden,)
    lm_head: Int8Head | LowBitLinear
    meta: dict = field(default_factory=dict)

    def embed_rows(self, tokens: np.ndarray) -> np.ndarray:
        """(T,) token ids -> (T, hidden) float32 embeddings."""
        rows = self.embed[np.asarray(tokens)]
        if rows.dtype == np.uint16:  # bf16 bit patterns, widened exactly
            return (rows.astype(np.uint32) << 16).view(np.float32)
        return rows.astype(np.float32)

    def validate(self) -> None:
        """Check every tensor's shape against the config; raise CheckpointError naming it."""
        c = self.config
        def want(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
            if tuple(arr.shape) != shape:
                raise CheckpointError(f"tensor {name}: shape {tuple(arr.shape)}, expected {shape}")
        want("embed", self.embed, (c.vocab_size, c.hidden_size))
        if self.embed.dtype not in (np.float32, np.uint16):
            raise CheckpointError(f"tensor embed: dtype {self.embed.dtype}, expected float32 or bf16 bits")
        want("final_norm", self.final_norm, (c.hidden_size,))
        head_shape = self.lm_head.shape if isinstance(self.lm_head, LowBitLinear) else self.lm_head.w.shape
        want("lm_head", np.empty(head_shape, np.uint8), (c.vocab_size, c.hidden_size))
        if len(self.layers) != c.n_layers:
            raise CheckpointError(f"model has {len(self.layers)} layers, config says {c.n_layers}")
        for i, layer in enumerate(self.layers):
            want(f"layers.{i}.attn_norm", layer.attn_norm, (c.hidden_size,))
            want(f"layers.{i}.ffn_norm", layer.ffn_norm, (c.hidden_size,))
            for n, lin in layer.linears().items():
                if lin.shape != c.linear_shapes()[n]:
                    raise CheckpointError(f"tensor layers.{i}.{n}: shape {lin.shape}, "
                                          f"expected {c.linear_shapes()[n]}")
            if c.subln:
                if layer.attn_sub_norm is None or layer.ffn_sub_norm is None:
                    raise CheckpointError(f"layers.{i}: subln model without sub-norm weights")
                want(f"layers.{i}.attn_sub_norm", layer.attn_sub_norm, (c.q_size,))
                want(f"layers.{i}.ffn_sub_norm", layer.ffn_sub_norm, (c.ffn_size,))
            for n, size in (("q_bias", c.q_size), ("k_bias", c.kv_size), ("v_bias", c.kv_size)):
                b = getattr(layer, n)
                if c.qkv_bias and b is None:
                    raise CheckpointError(f"layers.{i}: qkv_bias model without {n}")
                if not c.qkv_bias and b is not None:
                    raise CheckpointError(f"layers.{i}: {n} given but the config has no qkv_bias")
                if b is not None:
                    want(f"layers.{i}.{n}", b, (size,))
        self.check_numbers()

    def check_numbers(self) -> None:
        """Every float the accelerator computes with is finite (weight scales also positive)."""
        check_finite(self.embed, "tensor embed")
        check_finite(self.final_norm, "tensor final_norm")
        if isinstance(self.lm_head, Int8Head):
            check_finite(self.lm_head.row_scale, "tensor lm_head row scales")
        for i, layer in enumerate(self.layers):
            for n in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm", "q_bias", "k_bias", "v_bias"):
                g = getattr(layer, n)
                if g is not None:
                    check_finite(g, f"tensor layers.{i}.{n}")
            for n, lin in layer.linears().items():
                if isinstance(lin, LowBitLinear):
                    continue  # GroupQuant checked its scales and offsets when it was built
                if not (np.isfinite(lin.scale) and lin.scale > 0):
                    raise CheckpointError(f"tensor layers.{i}.{n}: weight scale {lin.scale} must be "
                                          "finite and positive")


@dataclass
class FloatWeights:
    """A float Llama/Qwen2 model in Hugging Face row order (linears (out, in))."""

    config: ModelConfig
    embed: np.ndarray
    final_norm: np.ndarray
    layers: list[dict[str, np.ndarray]]  # attn_norm, ffn_norm, q..down, [q_bias, k_bias, v_bias]
    head: np.ndarray | None = None  # untied LM head
    meta: dict = field(default_factory=dict)
