"""Helpers that several test modules share: test modules import from here, never from each other.
The same rule holds for the other shared_*.py modules: shared_project (compiled projects),
shared_gguf (GGUF files and vocabularies), shared_tcl (Tcl recorders), shared_serve and shared_chat.

- run_cli: the CLI as a subprocess; read_line: a bounded read of a process's output line (the board
  emulator's port).
- Attention's C-simulation helpers: K/V caches, per-port views, the attention layer's call, bit
  mismatches (test_hw_attention, test_csim_threads).
- The LM head's reference top-k and per-port head copies (test_hw_lm_head, test_hw_lm_head_rows).
- Low-bit weights in GGUF / GPTQ parameterisations and the low-bit engine's C-simulation call
  (test_hw_lowbit*, test_lowbit_cost, test_lowbit_numerics).
"""

from __future__ import annotations

import ctypes
import os
import select
import subprocess
import sys
import time

import numpy as np

from edgellm.compiler import packing_lowbit as pl
from edgellm.compiler.packing import head_block_rows
from edgellm.hw import csim
from edgellm.models import lowbit as lb
from edgellm.models import numerics as nx
from edgellm.models.lowbit import GroupQuant

F32 = np.float32


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """`python -m edgellm.cli ARGS` with text output captured (env: variables added to this one's)."""
    return subprocess.run([sys.executable, "-m", "edgellm.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env} if env else None, timeout=timeout)


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """One line of proc's (binary) stdout within timeout_s; AssertionError if none comes or proc exits
    (the board emulator's first line names its port)."""
    assert proc.stdout is not None
    end = time.monotonic() + timeout_s
    buf = b""
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise AssertionError(f"no line from the board emulator within {timeout_s} s: {buf!r}")
        c = os.read(proc.stdout.fileno(), 1)
        if not c:
            err = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"the board emulator exited: {buf!r} {err!r}")
        buf += c
    return buf.decode()


# --- attention in C simulation (hw/tb/attention_tb.cpp, hw/tb/dataflow_tb.cpp) ----------------------

def mismatches(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose float32 bit patterns differ."""
    return int((np.ascontiguousarray(a, F32).view(np.uint32) != b.view(np.uint32)).sum())


def attn_scale(d: int) -> ctypes.c_float:
    """The score scale 1/sqrt(d) as the kernels take it."""
    return ctypes.c_float(F32(1.0 / np.sqrt(d)))


def kv_cache(rng: np.random.Generator, n_valid: int, n_kv: int, d: int, extra: int = 5, kv: str = "f32"):
    """K, V (n_valid + extra, n_kv, d) stored as kv (f32 or f16) with NaN beyond n_valid (must never
    be read)."""
    k = rng.standard_normal((n_valid + extra, n_kv, d)).astype(F32)
    v = rng.standard_normal((n_valid + extra, n_kv, d)).astype(F32)
    k[n_valid:] = np.nan
    v[n_valid:] = np.nan
    return nx.kv_store(k, kv), nx.kv_store(v, kv)


def nan_like(x: np.ndarray) -> np.ndarray:
    return np.full_like(x, np.nan)


def run_attention_layer(lib, suffix: str, q: np.ndarray, t_len: int, pos0: int, k, v, ports,
                        kv_old: int = -1, split: int = 0, lm_row: int = 4) -> np.ndarray:
    """tb_layer<suffix>: q (t_len, H, D); k, v the data-port cache; ports = [(k0, v0), .. (k3, v3)];
    kv_old: cached-style calls read positions < kv_old over the ports (-1: every one). split > 0: the call
    in two parts (attention_layer.h), keys 0 .. split - 1 with the rows' state saved, then the rest from
    it; the (l, m) state (lm_row floats a row) after the output rows in the same buffer. Between the
    parts a whole call on other queries runs, so no state the core kept on chip (a C simulation's stack
    reused by the next call) can stand in for the saved one."""
    n_h, d = q.shape[-2:]
    fn = getattr(lib, f"tb_layer{suffix}")

    def call(qq: np.ndarray, buf: np.ndarray, key0: int, key_end: int) -> None:
        fn(csim.ptr(qq), csim.ptr(k), csim.ptr(v), *(csim.ptr(kp) for kp, _ in ports),
           *(csim.ptr(vp) for _, vp in ports), csim.ptr(buf), ctypes.c_int(t_len), ctypes.c_int(pos0),
           ctypes.c_int(n_h), ctypes.c_int(k.shape[1]), ctypes.c_int(d), attn_scale(d), ctypes.c_int(kv_old),
           ctypes.c_int(key0), ctypes.c_int(key_end), ctypes.c_long(q.size))

    buf = np.full(q.size + t_len * n_h * lm_row, np.nan, F32)
    if not split:
        call(q, buf, 0, -1)
    else:
        call(q, buf, 0, split)
        call(np.ascontiguousarray(-q[::-1]), np.full_like(buf, np.nan), 0, -1)
        call(q, buf, split, -1)
    return buf[:q.size].reshape(q.shape)


def head_ports(k: np.ndarray, v: np.ndarray, n_ports: int, shift: int = 0) -> list:
    """Four (k, v) port views: port p holds only the positions pp with pp % n_ports == (p + shift) %
    n_ports (every KV head; the rest NaN); ports >= n_ports all NaN."""
    bufs = []
    for p in range(4):
        kp, vp = nan_like(k), nan_like(v)
        if p < n_ports:
            own = (p + shift) % n_ports
            kp[own::n_ports], vp[own::n_ports] = k[own::n_ports], v[own::n_ports]
        bufs.append((kp, vp))
    return bufs


# --- the LM head in C simulation (hw/tb/lm_head_tb.cpp, hw/tb/lm_head_rows_tb.cpp) ------------------

def head_topk(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits per row, descending, ties by lower index (the sampler's top-k
    order: runtime/sampling.py takes the LM head's top-k as given)."""
    v = logits.shape[-1]
    return np.stack([np.lexsort((np.arange(v), -row)) for row in logits])[:, :k]


def head_outputs(t: int, vocab: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The head's outputs for t rows, poisoned (NaN / -7) so an unwritten element shows: logits (t, vocab),
    argmax (t,), top-k indices and values (t, k)."""
    return (np.full((t, vocab), np.nan, F32), np.full(t, -7, np.int32), np.full((t, k), -7, np.int32),
            np.full((t, k), np.nan, F32))


# The LM-head testbenches' configurations (hw/tb/lm_head_tb.cpp with_cfg, lm_head_rows_tb.cpp dispatch):
# id -> the ports' shares of each cycle of rows (1, 2, 4: equal shares over that many ports).
HEAD_SHARES = {1: (1,), 2: (1, 1), 4: (1, 1, 1, 1), 49: (9, 7, 7, 9), 31: (3, 1), 213: (2, 1, 3)}


def head_port_rows(vocab: int, cfg: int) -> list[np.ndarray]:
    """The rows each port of head configuration `cfg` (HEAD_SHARES) reads (packing.head_block_rows)."""
    rows = head_block_rows(vocab, HEAD_SHARES[cfg])
    return [r[r >= 0] for r in rows.T]


def head_port_copies(w: np.ndarray, cfg: int, seed: int) -> list[np.ndarray]:
    """Four head copies (one per pointer): copy p holds only the rows port p of configuration `cfg` reads
    (HEAD_SHARES; equal shares: v % nports == p), every other byte is random garbage; pointers beyond the
    configuration's ports get all-garbage copies."""
    rng = np.random.default_rng(seed)
    rows = head_port_rows(w.shape[0], cfg)
    out = []
    for p in range(4):
        c = rng.integers(-128, 128, w.shape).astype(np.int8)
        if p < len(rows):
            c[rows[p]] = w[rows[p]]
        out.append(np.ascontiguousarray(c))
    return out


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
                  "tb_lowbit_w4": (128, 512), "tb_lowbit_w2": (64, 256), "tb_lowbit_sl1": (32, 128),
                  "tb_lowbit_sl4": (64, 256), "tb_lowbit_fu1": (32, 128), "tb_lowbit_fu4": (128, 512),
                  "tb_lowbit_fu8": (64, 256), "tb_lowbit_sb4": (64, 256), "tb_lowbit_mg32": (32, 128),
                  "tb_lowbit_g32": (128, 512), "tb_lowbit_g16_32": (128, 512)}


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
