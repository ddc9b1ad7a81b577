"""Group-quantized 2-8-bit weights (GGUF Q4_0 .. Q8_0, K-quants, GPTQ) and the W{b}A8 linear.

One weight format covers every low-bit source: unsigned b-bit codes with a float32 scale and a
float32 offset per group of `group` consecutive inputs,

    w[o, i] = scales[o, i // group] * codes[o, i] + mins[o, i // group]     (f32 ops, this order)

(signed formats are offset: Q8_0 stores code = q + 128 and m = -128 d; Q4_0 m = -8 d; GPTQ
m = -s * zero). The hardware computes `lowbit_linear` bit for bit (docs/numerics.md, "W{b}A8"):
exact integer partial sums per group, then a sequential float32 accumulation over the groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.runtime.layout import LB_CODE_BITS, LB_GROUPS

F32 = np.float32
BITS = LB_CODE_BITS  # the engine's code widths, 2 .. 8 (the hardware facts: runtime/layout.py)
GROUPS = LB_GROUPS  # the engine's group sizes (the hardware facts: runtime/layout.py)
QMIN, QMAX_ABS = -128, 128  # int8 activations: |q| <= 128
# |P| = |sum_i codes * q| <= (2^max(BITS) - 1) * 128 * group: below 2^24 for every allowed group, so P (and
# every partial sum of it) is exact in int32 and in float32 (the golden f32 BLAS product is exact).
P_BOUND = ((1 << max(BITS)) - 1) * QMAX_ABS * max(GROUPS)
assert P_BOUND < 1 << 24, P_BOUND


@dataclass(frozen=True)
class GroupQuant:
    """w[o, i] = scales[o, i // group] * codes[o, i] + mins[o, i // group] (float32, in this order)."""

    codes: np.ndarray  # uint8 (out, in), values 0 .. 2**bits - 1
    scales: np.ndarray  # float32 (out, in // group)
    mins: np.ndarray  # float32 (out, in // group)
    bits: int  # one of BITS (2 .. 8)
    group: int  # one of GROUPS (16 .. 256); in % group == 0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in)."""
        return self.codes.shape  # type: ignore[return-value]

    @property
    def n_groups(self) -> int:
        """Groups per row (in // group)."""
        return self.codes.shape[1] // self.group

    def dequantize(self) -> np.ndarray:
        """float32 (out, in): scales * codes + mins, one f32 multiply then one f32 add."""
        s = np.repeat(self.scales, self.group, axis=1)
        m = np.repeat(self.mins, self.group, axis=1)
        return (s * self.codes.astype(F32)) + m


def _validate(w: GroupQuant) -> None:
    """One-line CheckpointError for anything the contract does not allow."""
    if not isinstance(w.bits, (int, np.integer)) or int(w.bits) not in BITS:
        raise CheckpointError(
            f"low-bit weights: bits must be one of {', '.join(map(str, BITS))}, got {w.bits!r}")
    if not isinstance(w.group, (int, np.integer)) or int(w.group) not in GROUPS:
        raise CheckpointError(
            f"low-bit weights: group must be one of {', '.join(map(str, GROUPS))}, got {w.group!r}")
    for name, arr, dt in (("codes", w.codes, np.uint8), ("scales", w.scales, F32), ("mins", w.mins, F32)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            raise CheckpointError(f"low-bit weights: {name} must be a 2-D array")
        if arr.dtype != dt:
            raise CheckpointError(f"low-bit weights: {name} must be {np.dtype(dt).name}, got {arr.dtype}")
    out, n_in = w.codes.shape
    if out == 0 or n_in == 0 or n_in % w.group:
        raise CheckpointError(
            f"low-bit weights: input size {n_in} is not a positive multiple of the group {w.group}")
    want = (out, n_in // w.group)
    for name in ("scales", "mins"):
        arr = getattr(w, name)
        if arr.shape != want:
            raise CheckpointError(f"low-bit weights: {name} shape {arr.shape} != {want} (out, in // group)")
        if not np.isfinite(arr).all():
            raise CheckpointError(f"low-bit weights: {name} has non-finite values")
    top = int(w.codes.max())
    if top >= 1 << w.bits:
        raise CheckpointError(f"low-bit weights: code {top} does not fit {w.bits} bits")


def group_sums(q: np.ndarray, group: int) -> np.ndarray:
    """S[t, g] = sum of the int8 activations of group g (exact int32), (T, in // group)."""
    t, n = q.shape
    return q.reshape(t, n // group, group).astype(np.int32).sum(axis=2, dtype=np.int32)


def group_products(q: np.ndarray, w: GroupQuant, g: int) -> np.ndarray:
    """P[t, o] = sum_i codes[o, i] * q[t, i] over group g, exact int32 (T, out).

    f32 BLAS is exact: every partial sum is an integer below P_BOUND < 2^24, whatever its order."""
    lo = g * w.group
    a = q[:, lo:lo + w.group].astype(F32)
    c = w.codes[:, lo:lo + w.group].astype(F32)
    return (a @ c.T).astype(np.int32)


def lowbit_linear(q: np.ndarray, qs: np.ndarray, w: GroupQuant) -> np.ndarray:
    """The W{b}A8 linear (docs/numerics.md): q int8 (..., in), qs float32 (...) -> float32 (..., out).

    Per token t, output o: acc = 0; for g = 0, 1, ...: acc = (acc + scales[o,g] * P) + mins[o,g] * S;
    y = acc / qs[t]. Every float op is one f32 rounding in that order (no FMA)."""
    q = np.asarray(q)
    if q.dtype != np.int8:
        raise CheckpointError(f"lowbit_linear: activations must be int8, got {q.dtype}")
    out, n_in = w.shape
    if q.shape[-1] != n_in:
        raise CheckpointError(f"lowbit_linear: activation width {q.shape[-1]} != weight input size {n_in}")
    lead = q.shape[:-1]
    q2 = q.reshape(-1, n_in)
    qs2 = np.asarray(qs, F32).reshape(-1)
    if qs2.shape[0] != q2.shape[0]:
        raise CheckpointError(f"lowbit_linear: {qs2.shape[0]} token scales for {q2.shape[0]} tokens")
    s_all = group_sums(q2, w.group).astype(F32)  # exact: |S| <= 128 * 256
    acc = np.zeros((q2.shape[0], out), F32)
    for g in range(w.n_groups):
        p = group_products(q2, w, g).astype(F32)
        sp = w.scales[None, :, g] * p
        ms = w.mins[None, :, g] * s_all[:, g:g + 1]
        acc = (acc + sp) + ms
    y = acc / qs2[:, None]
    return y.astype(F32).reshape(*lead, out)


def quantize_rtn(w: np.ndarray, bits: int, group: int, symmetric: bool = False) -> GroupQuant:
    """Round-to-nearest group quantization of a float (out, in) matrix (for tests and the
    'quantize float weights' option): asymmetric s = (max - min) / (2^b - 1), m = min; symmetric
    s = absmax / 2^(b-1), m = -2^(b-1) s (Q4_0-like)."""
    w = np.asarray(w, F32)
    out, n_in = w.shape
    if n_in % group:
        raise CheckpointError(f"low-bit weights: input size {n_in} is not a multiple of the group {group}")
    wg = w.reshape(out, n_in // group, group)
    top = (1 << bits) - 1
    if symmetric:
        half = F32(1 << (bits - 1))
        s = (np.abs(wg).max(axis=2) / half).astype(F32)
        m = (-half * s).astype(F32)
    else:
        lo, hi = wg.min(axis=2), wg.max(axis=2)
        s = ((hi - lo) / F32(top)).astype(F32)
        m = lo.astype(F32)
    safe = np.where(s == 0, F32(1.0), s)
    codes = np.clip(np.rint((wg - m[..., None]) / safe[..., None]), 0, top).astype(np.uint8)
    return GroupQuant(codes.reshape(out, n_in), s, m, bits, group)
