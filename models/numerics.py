"""The numerics contract (docs/numerics.md) as numpy primitives.

Every float operation here is a single IEEE-754 binary32 operation in a written order, so the HLS
kernels (hw/include/edgellm/numerics.h) reproduce each result bit for bit. Constants are
np.float32 so no value is ever widened to float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

F32 = np.float32
RINT_MAGIC = F32(12582912.0)  # 1.5 * 2^23: (x + M) - M rounds half-to-even for |x| < 2^22
LOG2E = F32(1.44269504088896341)
LN2_HI = F32(0.693359375)  # Cody-Waite split of ln 2: k * LN2_HI is exact for |k| < 2^11
LN2_LO = F32(-2.12194440e-4)
EXP_LO = F32(-87.0)  # below: 0
EXP_HI = F32(88.0)  # above: +inf
# Taylor coefficients 1/n! for n = 6 .. 2, Horner order (then * r + 1, * r + 1).
EXP_POLY = tuple(F32(c) for c in (1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5))
QMAX = F32(127.0)
ABSMAX_FLOOR = F32(1e-5)
KV_DTYPES = {"f32": 4, "f16": 2}  # KV cache storage type -> bytes per element


@dataclass(frozen=True)
class NumericsPlan:
    """Design parameters that fix float reduction order (chosen by the compiler, in the manifest)."""

    norm_lanes: int = 16  # RMSNorm sum of squares: lanes accumulate sequentially, then a tree
    dot_lanes: int = 128  # attention q.k: a pure tree when >= head_dim
    kv_block: int = 16  # online softmax: keys per block (aligned to absolute position 0)
    kv_dtype: str = "f32"  # KV cache storage: "f32", or "f16" (binary16, RNE on write, exact widening)

    def __post_init__(self) -> None:
        for n in ("norm_lanes", "dot_lanes"):
            v = getattr(self, n)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{n} must be a power of two, got {v}")
        if self.kv_block < 1:
            raise ValueError("kv_block must be positive")
        if self.kv_dtype not in KV_DTYPES:
            raise ValueError(f"kv_dtype must be one of {', '.join(KV_DTYPES)}, got {self.kv_dtype!r}")

    @classmethod
    def for_head_dim(cls, head_dim: int, **kw: int | str) -> NumericsPlan:
        """Default plan with dot_lanes = next power of two >= head_dim."""
        return cls(dot_lanes=1 << (head_dim - 1).bit_length(), **kw)  # type: ignore[arg-type]

    @property
    def kv_elem_bytes(self) -> int:
        """Bytes of one stored KV cache element (4 for f32, 2 for f16)."""
        return KV_DTYPES[self.kv_dtype]

    @property
    def kv_np_dtype(self) -> type:
        """The numpy storage type of the KV cache (np.float32 or np.float16)."""
        return np.float16 if self.kv_dtype == "f16" else np.float32

    def to_dict(self) -> dict[str, int | str]:
        """Plain dict for the manifest."""
        return asdict(self)


def rint(x: np.ndarray) -> np.ndarray:
    """Round half to even, as (x + 1.5*2^23) - 1.5*2^23 in fp32 (valid for |x| < 2^22)."""
    x = np.asarray(x, dtype=F32)
    return (x + RINT_MAGIC) - RINT_MAGIC


def exp(x: np.ndarray) -> np.ndarray:
    """The contract's exp: Cody-Waite reduction, degree-6 Horner polynomial, exponent insert."""
    x = np.asarray(x, dtype=F32)
    xc = np.clip(x, EXP_LO, EXP_HI)
    k = rint(xc * LOG2E)
    r = xc - k * LN2_HI
    r = r - k * LN2_LO
    p = np.full_like(r, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = p * r + c
    p = p * r + F32(1.0)
    p = p * r + F32(1.0)
    scale = ((k.astype(np.int32) + 127) << 23).astype(np.int32).view(F32)
    y = p * scale
    y = np.where(x < EXP_LO, F32(0.0), y)
    y = np.where(x > EXP_HI, F32(np.inf), y)
    return y.astype(F32)


def reduce_sum(x: np.ndarray, lanes: int) -> np.ndarray:
    """Sum over the last axis: zero-pad to a multiple of `lanes`; lane j accumulates elements
    j, j+lanes, ... in order starting from 0.0; then halve the lanes pairwise (j + j+half)."""
    x = np.asarray(x, dtype=F32)
    n = x.shape[-1]
    chunks = max(-(-n // lanes), 1)
    pad = chunks * lanes - n
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), F32)], axis=-1)
    xs = x.reshape(x.shape[:-1] + (chunks, lanes))
    acc = np.zeros(x.shape[:-1] + (lanes,), F32)
    for c in range(chunks):
        acc = acc + xs[..., c, :]
    h = lanes
    while h > 1:
        h //= 2
        acc = acc[..., :h] + acc[..., h:2 * h]
    return acc[..., 0]


def rmsnorm(x: np.ndarray, g: np.ndarray, eps: float, lanes: int) -> np.ndarray:
    """y = (x * (1 / sqrt(sum(x*x)/n + eps))) * g over the last axis."""
    x = np.asarray(x, dtype=F32)
    ss = reduce_sum(x * x, lanes)
    ms = ss / F32(x.shape[-1])
    r = F32(1.0) / np.sqrt(ms + F32(eps))
    return ((x * r[..., None]) * np.asarray(g, F32)).astype(F32)


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token absmax int8: qs = 127 / max(absmax, 1e-5); q = clamp(rint(x * qs), -128, 127).
    Returns (q int8 (..., n), qs float32 (...,))."""
    x = np.asarray(x, dtype=F32)
    amax = np.abs(x).max(axis=-1)
    qs = (QMAX / np.maximum(amax, ABSMAX_FLOOR)).astype(F32)
    q = np.clip(rint(x * qs[..., None]), F32(-128.0), F32(127.0)).astype(np.int8)
    return q, qs


def int_matmul(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact int32 (T, K) int8 x (N, K) ternary^T. fp32 BLAS is exact here: every partial sum is
    an integer below 127 * K < 2^24 for K < 132104 (checked)."""
    k = q.shape[-1]
    if 127 * k >= 1 << 24:
        return (q.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    return (q.astype(F32) @ w.astype(F32).T).astype(np.int32)


def dequantize(acc: np.ndarray, qs: np.ndarray, wscale: np.float32) -> np.ndarray:
    """y = float(acc) / (qs * wscale)."""
    return (acc.astype(F32) / (np.asarray(qs, F32)[..., None] * F32(wscale))).astype(F32)


def relu2(x: np.ndarray) -> np.ndarray:
    """max(x, 0)^2."""
    r = np.maximum(np.asarray(x, F32), F32(0.0))
    return r * r


def silu(x: np.ndarray) -> np.ndarray:
    """x / (1 + exp(-x)) with the contract's exp."""
    x = np.asarray(x, F32)
    return x / (F32(1.0) + exp(-x))


def rope_tables(head_dim: int, max_pos: int, theta: float, freq_factors: tuple[float, ...] = ()
                ) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin tables (max_pos, head_dim/2) float32, computed in float64 on the host. freq_factors
    (head_dim/2 values, e.g. Llama 3's rope scaling, ModelConfig.rope_freq_factors) divide the
    frequencies, as llama.cpp's rope_freqs tensor does; empty: plain RoPE."""
    half = head_dim // 2
    inv = 1.0 / (float(theta) ** (np.arange(half, dtype=np.float64) * 2.0 / head_dim))
    if len(freq_factors):
        inv = inv / np.asarray(freq_factors, np.float64)
    ang = np.arange(max_pos, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(F32), np.sin(ang).astype(F32)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate-half RoPE on (T, heads, head_dim) with per-token tables (T, head_dim/2)."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1).astype(F32)


def kv_store(x: np.ndarray, kv_dtype: str) -> np.ndarray:
    """K/V values as the cache stores them: f32 unchanged; f16 = IEEE binary16, round to nearest
    even, overflow to +/-inf, subnormals kept, NaN payload truncated (numpy's astype(float16);
    HLS twin: numerics_scalar.h f32_to_f16)."""
    x = np.asarray(x, F32)
    if kv_dtype != "f16":
        return x
    with np.errstate(over="ignore"):  # |x| >= 65520 rounds to +/-inf, as defined
        return x.astype(np.float16)


def kv_load(x: np.ndarray) -> np.ndarray:
    """Cache elements as attention reads them: exact widening to f32 (HLS twin: f16_to_f32)."""
    return np.asarray(x, dtype=F32)  # no copy for an f32 cache


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, pos0: int, plan: NumericsPlan
              ) -> np.ndarray:
    """Causal GQA attention with the contract's online softmax.

    q: (T, H, D) queries at absolute positions pos0 .. pos0+T-1; k, v: (S, Hkv, D) keys and values
    at positions 0 .. S-1 (S >= pos0+T). Query t sees keys 0..pos0+t. Keys are taken in blocks of
    plan.kv_block aligned to position 0; per block: m' = max(m, max s); c = exp(m - m') (0 for the
    first block); l = l*c; o = o*c; then keys in ascending order: p = exp(s - m'); l += p;
    o += p * v. Output o / l. Returns (T, H, D) float32."""
    t_len, n_h, d = q.shape
    n_kv = k.shape[1]
    grp = n_h // n_kv
    scale = F32(1.0 / np.sqrt(d))
    kx = np.repeat(k, grp, axis=1)  # (S, H, D)
    vx = np.repeat(v, grp, axis=1)
    last = pos0 + np.arange(t_len)  # last visible key per query
    m = np.full((t_len, n_h), -np.inf, F32)
    started = np.zeros((t_len, 1), bool)
    l_acc = np.zeros((t_len, n_h), F32)
    o = np.zeros((t_len, n_h, d), F32)
    n_keys = int(last.max()) + 1
    for b0 in range(0, n_keys, plan.kv_block):
        b1 = min(b0 + plan.kv_block, n_keys)
        s = reduce_sum(q[:, None] * kx[None, b0:b1], plan.dot_lanes) * scale  # (T, B, H)
        valid = (np.arange(b0, b1)[None, :] <= last[:, None])  # (T, B)
        active = valid[:, :1]  # block has a visible key iff its first key is visible
        smax = np.where(valid[..., None], s, -np.inf).max(axis=1)  # (T, H)
        mb = np.where(active, np.maximum(m, smax), m)
        c = np.where(started, exp(m - mb), F32(0.0))
        l_acc = np.where(active, l_acc * c, l_acc)
        o = np.where(active[..., None], o * c[..., None], o)
        for j in range(b1 - b0):
            vj = valid[:, j:j + 1]
            p = exp(s[:, j] - mb)
            l_acc = np.where(vj, l_acc + p, l_acc)
            o = np.where(vj[..., None], o + p[..., None] * vx[b0 + j][None], o)
        m = mb
        started = started | active
    return (o / l_acc[..., None]).astype(F32)
