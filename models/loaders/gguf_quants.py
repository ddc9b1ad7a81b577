"""GGUF block-quantized tensor types -> GroupQuant (models/lowbit.py).

Block layouts are llama.cpp's (ggml-common.h), decoded as gguf-py's gguf/quants.py dequantizes them.
Every block's values are rewritten as w = s * code + m with unsigned codes, per sub-block s and m in
float32, so that GroupQuant.dequantize() equals gguf.quants.dequantize value for value (the products
are exact in float32: at most 11 bits of fp16 scale x 7 bits of sub-block scale x 6 bits of code; the
only difference is the sign of a zero: d * 0 with d < 0 is -0.0 in gguf-py, +0.0 here):

  type  bits group bytes  codes           s                        m
  Q4_0  4    32    18     q (w = d(q-8))  d                        -8 d
  Q4_1  4    32    20     q               d                        m
  Q5_0  5    32    22     q (w = d(q-16)) d                        -16 d
  Q5_1  5    32    24     q               d                        m
  Q8_0  8    32    34     q + 128         d                        -128 d
  Q2_K  2    16    84     q               d * (sc & 15)            -(dmin * (sc >> 4))
  Q3_K  3    16    110    q + 4           d * (sc6 - 32)           -4 s
  Q4_K  4    32    144    q               d * sc6                  -(dmin * m6)
  Q5_K  5    32    176    q               d * sc6                  -(dmin * m6)
  Q6_K  6    16    210    q (w = s(q-32)) d * sc8                  -32 s
"""

from __future__ import annotations

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.lowbit import GroupQuant

F32 = np.float32
QK_K = 256
# type -> (bits, group, elements per block, bytes per block)
FORMATS: dict[str, tuple[int, int, int, int]] = {
    "Q4_0": (4, 32, 32, 18), "Q4_1": (4, 32, 32, 20), "Q5_0": (5, 32, 32, 22), "Q5_1": (5, 32, 32, 24),
    "Q8_0": (8, 32, 32, 34),
    "Q2_K": (2, 16, QK_K, 84), "Q3_K": (3, 16, QK_K, 110), "Q4_K": (4, 32, QK_K, 144),
    "Q5_K": (5, 32, QK_K, 176), "Q6_K": (6, 16, QK_K, 210),
}
FLOAT_TYPES = ("F32", "F16", "BF16")
SUPPORTED = tuple(FORMATS) + FLOAT_TYPES


def _f16(b: np.ndarray) -> np.ndarray:
    """(..., 2) uint8 -> (...,) float32 from little-endian binary16."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(F32)


def _nibbles(qs: np.ndarray, span: int) -> np.ndarray:
    """(n, k, span) bytes -> (n, k, 2, span): low nibbles first, then the high nibbles."""
    return (qs[..., None, :] >> np.array([0, 4], np.uint8).reshape(2, 1)) & np.uint8(15)


def _q4_0(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(b[:, 0:2])
    codes = _nibbles(b[:, None, 2:18], 16).reshape(-1, 32)
    return codes, d[:, None], (F32(-8.0) * d)[:, None]


def _q4_1(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    codes = _nibbles(b[:, None, 4:20], 16).reshape(-1, 32)
    return codes, d[:, None], m[:, None]


def _q5_0(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(b[:, 0:2])
    qh = np.ascontiguousarray(b[:, 2:6]).view(np.uint32)  # (n, 1)
    hi = ((qh >> np.arange(32, dtype=np.uint32)) & np.uint32(1)).astype(np.uint8)
    codes = _nibbles(b[:, None, 6:22], 16).reshape(-1, 32) | (hi << np.uint8(4))
    return codes, d[:, None], (F32(-16.0) * d)[:, None]


def _q5_1(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    qh = np.ascontiguousarray(b[:, 4:8]).view(np.uint32)  # (n, 1)
    hi = ((qh >> np.arange(32, dtype=np.uint32)) & np.uint32(1)).astype(np.uint8)
    codes = _nibbles(b[:, None, 8:24], 16).reshape(-1, 32) | (hi << np.uint8(4))
    return codes, d[:, None], m[:, None]


def _q8_0(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(b[:, 0:2])
    codes = (b[:, 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return codes, d[:, None], (F32(-128.0) * d)[:, None]


def _q2_k(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = b.shape[0]
    sc, qs = b[:, 0:16], b[:, 16:80]
    d, dmin = _f16(b[:, 80:82])[:, None], _f16(b[:, 82:84])[:, None]
    s = d * (sc & np.uint8(15)).astype(F32)
    m = -(dmin * (sc >> np.uint8(4)).astype(F32))
    shift = np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    codes = ((qs.reshape(n, 2, 1, 32) >> shift) & np.uint8(3)).reshape(n, QK_K)
    return codes, s, m


def _k_scales6(sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 scale bytes -> 8 six-bit scales and 8 six-bit mins (gguf-py get_scale_min)."""
    n = sc.shape[0]
    s3 = sc.reshape(n, 3, 4)
    d, m, md = s3[:, 0], s3[:, 1], s3[:, 2]
    scales = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mins = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return scales, mins


def _q3_k(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = b.shape[0]
    hmask, qs, sc, d = b[:, 0:32], b[:, 32:96], b[:, 96:108], _f16(b[:, 108:110])[:, None]
    lo = (sc[:, None, 0:8] >> np.array([0, 4], np.uint8).reshape(1, 2, 1)).reshape(n, 16)
    hi = (sc[:, None, 8:12] >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 4, 1)).reshape(n, 16)
    sc6 = (lo & np.uint8(15)) | ((hi & np.uint8(3)) << np.uint8(4))
    s = d * (sc6.astype(np.int16) - 32).astype(F32)
    ql = (qs.reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & np.uint8(3)
    qh = (hmask.reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & np.uint8(1)
    # gguf-py: q = ql - 4 * (1 - h) in -4..3; code = q + 4 = ql + 4 h
    codes = ql.reshape(n, QK_K) | (qh.reshape(n, QK_K) << np.uint8(2))
    return codes, s, F32(-4.0) * s


def _q4_k(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = b.shape[0]
    d, dmin = _f16(b[:, 0:2])[:, None], _f16(b[:, 2:4])[:, None]
    sc, mn = _k_scales6(b[:, 4:16])
    codes = _nibbles(b[:, 16:144].reshape(n, 4, 32), 32).reshape(n, QK_K)
    return codes, d * sc.astype(F32), -(dmin * mn.astype(F32))


def _q5_k(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = b.shape[0]
    d, dmin = _f16(b[:, 0:2])[:, None], _f16(b[:, 2:4])[:, None]
    sc, mn = _k_scales6(b[:, 4:16])
    qh = (b[:, None, 16:48] >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & np.uint8(1)
    ql = _nibbles(b[:, 48:176].reshape(n, 4, 32), 32).reshape(n, QK_K)
    codes = ql | (qh.reshape(n, QK_K) << np.uint8(4))
    return codes, d * sc.astype(F32), -(dmin * mn.astype(F32))


def _q6_k(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = b.shape[0]
    ql = _nibbles(b[:, 0:128].reshape(n, 2, 64), 64).reshape(n, 8, 32)
    qh = (b[:, 128:192].reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1))
    qh = (qh & np.uint8(3)).reshape(n, 8, 32)
    sc = b[:, 192:208].view(np.int8).astype(F32)
    s = _f16(b[:, 208:210])[:, None] * sc
    codes = (ql | (qh << np.uint8(4))).reshape(n, QK_K)
    return codes, s, F32(-32.0) * s


_DECODERS = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0, "Q2_K": _q2_k,
             "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}
ROWS_PER_CHUNK = 1024  # rows decoded at a time (bounded temporaries)


def unsupported(kind: str, what: str) -> CheckpointError:
    """The one-line error for a tensor type outside SUPPORTED."""
    return CheckpointError(f"{what}: unsupported GGUF tensor type {kind} (supported: {', '.join(SUPPORTED)})")


def decode(kind: str, data: np.ndarray, out: int, k: int, what: str) -> GroupQuant:
    """Raw GGUF bytes of an (out, k) tensor of block type `kind` -> GroupQuant (`what` names the tensor
    in errors: truncated or inconsistent data, non-finite block scales)."""
    if kind not in FORMATS:
        raise unsupported(kind, what)
    bits, group, per_block, nbytes = FORMATS[kind]
    if k % per_block:
        raise CheckpointError(f"{what}: {kind} needs a row length divisible by {per_block}, got {k}")
    nb = k // per_block
    raw = np.asarray(data)
    if raw.dtype != np.uint8 or raw.size != out * nb * nbytes:
        raise CheckpointError(f"{what}: {kind} data is {raw.size * raw.itemsize} bytes, expected "
                              f"{out * nb * nbytes} for shape [{out}, {k}] (truncated or inconsistent)")
    raw = raw.reshape(out, nb * nbytes)
    codes = np.empty((out, k), np.uint8)
    scales = np.empty((out, k // group), F32)
    mins = np.empty((out, k // group), F32)
    for r0 in range(0, out, ROWS_PER_CHUNK):
        r1 = min(out, r0 + ROWS_PER_CHUNK)
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN/inf block scale is refused just below
            c, s, m = _DECODERS[kind](raw[r0:r1].reshape(-1, nbytes))
        codes[r0:r1] = c.reshape(r1 - r0, k)
        scales[r0:r1] = s.reshape(r1 - r0, -1)
        mins[r0:r1] = m.reshape(r1 - r0, -1)
        ok = np.isfinite(scales[r0:r1]).all(1) & np.isfinite(mins[r0:r1]).all(1)
        if not ok.all():
            bad = r0 + int(np.flatnonzero(~ok)[0])
            raise CheckpointError(f"{what}: {kind} block scale is NaN or inf (row {bad})")
    return GroupQuant(codes, scales, mins, bits, group)


def floats(kind: str, data: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A F32/F16/BF16 tensor's data as float32 of `shape` (size checked)."""
    raw = np.asarray(data)
    n = int(np.prod(shape))
    if kind not in FLOAT_TYPES:
        raise unsupported(kind, what)
    size = {"F32": 4, "F16": 2, "BF16": 2}[kind]
    if raw.dtype == np.uint8 or kind == "BF16":
        flat = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
        if flat.size % size:
            raise CheckpointError(f"{what}: {kind} data is {flat.size} bytes, expected {n * size} for shape "
                                  f"{list(shape)} (truncated or inconsistent)")
        raw = flat.view({"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[kind])
    if kind == "BF16":
        wide = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        wide = np.asarray(raw).astype(np.float32).reshape(-1)
    if wide.size != n:
        raise CheckpointError(f"{what}: {kind} data holds {wide.size} values, expected {n} for shape "
                              f"{list(shape)} (truncated or inconsistent)")
    return wide.reshape(shape)

