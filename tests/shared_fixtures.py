"""Helpers that several test modules share (test modules import from here, never from each other).

Low-bit weights and the low-bit engine's C-simulation call (test_hw_lowbit*, test_lowbit_cost,
test_lowbit_numerics)."""

from __future__ import annotations

import ctypes

import numpy as np

from edgellm.compiler import packing_lowbit as pl
from edgellm.hw import csim
from edgellm.models import lowbit as lb
from edgellm.models import numerics as nx
from edgellm.models.lowbit import GroupQuant

F32 = np.float32


# --- low-bit weights in the parameterisations of GGUF / GPTQ files ---------------------------------

def f16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(F32)


def q4_0(rng: np.random.Generator, out: int, k: int, bits: int = 4) -> GroupQuant:
    d = f16(rng.random((out, k // 32)) * 0.01)
    d[0, 0] = 0.0  # an all-zero block: m = -0.0
    return GroupQuant(rng.integers(0, 1 << bits, (out, k), dtype=np.uint8), d,
                      (d * F32(-(1 << (bits - 1)))).astype(F32), bits, 32)


def kquant(rng: np.random.Generator, out: int, k: int, bits: int, group: int, scb: int) -> GroupQuant:
    """Q4_K / Q2_K-style: f16 d, dmin per 256 inputs, unsigned scb-bit sub-scales and mins."""
    nsb, sb = out * k // 256, 256 // group
    d, dmin = f16(rng.random(nsb) * 1e-3), f16(rng.random(nsb) * 1e-3)
    sc, mn = rng.integers(0, 1 << scb, (nsb, sb)), rng.integers(0, 1 << scb, (nsb, sb))
    s = (d[:, None] * sc.astype(F32)).astype(F32).reshape(out, k // group)
    m = (-(dmin[:, None] * mn.astype(F32))).astype(F32).reshape(out, k // group)
    return GroupQuant(rng.integers(0, 1 << bits, (out, k), dtype=np.uint8), s, m, bits, group)


def q6_k(rng: np.random.Generator, out: int, k: int) -> GroupQuant:
    nsb = out * k // 256
    d = f16((rng.random(nsb) - 0.5) * 1e-3)  # negative d occurs in Q6_K
    s = (d[:, None] * rng.integers(-128, 128, (nsb, 16)).astype(F32)).astype(F32).reshape(out, k // 16)
    return GroupQuant(rng.integers(0, 64, (out, k), dtype=np.uint8), s, (s * F32(-32)).astype(F32), 6, 16)


def gptq(rng: np.random.Generator, out: int, k: int, bits: int) -> GroupQuant:
    s = f16(rng.random((out, k // 128)) * 0.01)
    z = rng.integers(0, 1 << bits, (out, k // 128)).astype(F32)
    codes = rng.integers(0, 1 << bits, (out, k), dtype=np.uint8)
    return GroupQuant(codes, s, (-s * z).astype(F32), bits, 128)  # z = 0 gives m = -0.0


def lowbit_acts(rng: np.random.Generator, t: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """t rows of int8 activations and their scales, with an outlier so some q hit -128 / 127."""
    x = rng.standard_normal((t, k)).astype(F32)
    x[0, :7] *= 40.0
    return nx.quantize(x)


def scale_terms_first(q: np.ndarray, qs: np.ndarray, w: GroupQuant) -> np.ndarray:
    """lowbit_linear's sum in another association (all scale terms, then all offset terms): the
    group-order tests assert the contract's order differs from it."""
    s_all = lb.group_sums(q, w.group).astype(F32)
    sp = np.zeros((q.shape[0], w.shape[0]), F32)
    ms = np.zeros_like(sp)
    for g in range(w.n_groups):
        sp = sp + w.scales[None, :, g] * lb.group_products(q, w, g).astype(F32)
        ms = ms + w.mins[None, :, g] * s_all[:, g:g + 1]
    return (sp + ms) / qs[:, None]


# --- the low-bit engine in C simulation (hw/tb/lowbit_tb.cpp) ---------------------------------------

LOWBIT_GUARD = 32  # NaN floats either side of y: a write outside it shows
# testbench entry -> (rows, beat bits) of its LowbitConfig (hw/tb/lowbit_tb.cpp)
LOWBIT_CONFIGS = {"tb_lowbit_r32": (32, 128), "tb_lowbit_r64": (64, 128), "tb_lowbit_tp3": (32, 128),
                  "tb_lowbit_w4": (128, 512), "tb_lowbit_w2": (64, 256)}


def lowbit_fields(img: pl.LowbitImage) -> np.ndarray:
    return np.array([img.bits, img.group, img.n_out, img.n_in, *img.codec.as_words()], np.int32)


def run_lowbit(lib: ctypes.CDLL, w: GroupQuant, q: np.ndarray, qs: np.ndarray, rows: int = 32,
               lead_beats: int = 0, fn: str = "") -> np.ndarray:
    """y = the testbench entry `fn` (default tb_lowbit_r{rows}) on w packed for its config, after
    lead_beats beats of junk; asserts it returned 0 and wrote nothing outside y."""
    fn = fn or f"tb_lowbit_r{rows}"
    rows, bw = LOWBIT_CONFIGS[fn]
    img = pl.pack_lowbit(w, rows=rows, beat_bits=bw)
    data = np.concatenate([np.full(bw // 8 * lead_beats, 0xA5, np.uint8), img.data])
    t, out = q.shape[0], w.shape[0]
    buf = np.full(t * out + 2 * LOWBIT_GUARD, np.nan, F32)
    y = buf[LOWBIT_GUARD:LOWBIT_GUARD + t * out]
    call = getattr(lib, fn)
    rc = call(csim.ptr(lowbit_fields(img)), csim.ptr(data), ctypes.c_long(data.size),
              ctypes.c_long(lead_beats), csim.ptr(np.ascontiguousarray(q)), csim.ptr(qs), ctypes.c_int(t),
              csim.ptr(y))
    assert rc == 0
    assert np.isnan(buf[:LOWBIT_GUARD]).all() and np.isnan(buf[-LOWBIT_GUARD:]).all(), "write outside y"
    return y.reshape(t, out)


def assert_bits(y: np.ndarray, ref: np.ndarray) -> None:
    """y equals ref bit for bit (both float32)."""
    assert y.dtype == ref.dtype == F32
    assert int((y.view(np.uint32) != ref.view(np.uint32)).sum()) == 0
