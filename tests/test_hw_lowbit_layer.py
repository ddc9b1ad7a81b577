"""A decoder layer whose seven linears run on the low-bit engine (lowbit_policy.h lowbit_mm_policy,
hw/tb/lowbit_layer_tb.cpp) in C simulation, bit for bit against models/golden.py's layer on every tap, the
output and the K/V cache: Llama shape (SiLU, no SubLN, GQA) and Qwen2-style q/k/v biases; weights a
GGUF-like mix (Q4_K-like q/k/v/o at G 32, Q6_K-like gate/up at G 16, 5-bit down at G 256); the weights
through FIFOs that the policy's fetch filled in the schedule's order (and through pointers); T = 1 and
prefill T > 1 at pos0 > 0, more tokens than one engine pass; one and two weight ports."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest
from shared_lowbit import mixed_model, pack_linears

from edgellm.compiler import interface as itf
from edgellm.compiler import packing_lowbit as pl
from edgellm.hw import csim
from edgellm.models.golden import GoldenModel, KVCache
from edgellm.models.numerics import F32

TAPS = ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lowbit_layer_tb.cpp"], "lowbit_layer_tb")


def _sizes(lib: ctypes.CDLL) -> np.ndarray:
    out = np.zeros(9, np.int64)
    lib.tb_lb_layer_sizes(csim.ptr(out))
    return out


@dataclasses.dataclass
class LbLayer:
    """Layer 0 of a golden model packed for the testbench entry tb_lb_layer_<suffix>."""

    lib: ctypes.CDLL
    suffix: str  # "p1" or "p2"
    golden: GoldenModel

    def __post_init__(self) -> None:
        sz = _sizes(self.lib)
        self.scratch, self.tap_floats, self.max_t = int(sz[0]), int(sz[1]), int(sz[2])
        rows, bw, self.engine_t = (int(v) for v in (sz[3:6] if self.suffix == "p1" else sz[6:9]))
        layer = self.golden.model.layers[0]
        c = self.golden.cfg
        # params: attention norm, FFN norm (the sub-norm words point at the first: no SubLN), then biases
        params = [np.asarray(layer.attn_norm, F32), np.asarray(layer.ffn_norm, F32)]
        p_off = [0, c.hidden_size, 0, 0]
        bias_off = {}
        for name in ("q", "k", "v"):
            b = getattr(layer, f"{name}_bias")
            if b is not None:
                bias_off[name] = sum(p.size for p in params)
                params.append(np.asarray(b, F32))
        self.params = np.concatenate(params)
        self.params_at = -(-self.scratch // 16) * 16
        self.w, w_off, self.lbt = pack_linears(layer, rows, bw, bias_off)
        self.ld = np.zeros(itf.LD_WORDS, np.uint32)
        self.ld[itf.LD_W_OFF:itf.LD_W_OFF + 7] = w_off
        self.ld[itf.LD_W_SCALE:itf.LD_W_SCALE + 7] = itf.f32_bits(1.0)
        self.ld[itf.LD_P_OFF:itf.LD_P_OFF + 4] = p_off

    def run(self, h: np.ndarray, pos0: int, cache: KVCache, fifo: bool = True) -> dict[str, np.ndarray]:
        """h (T, hidden) at pos0 through the C layer; updates cache (layer 0) in place; the taps and h_out."""
        c = self.golden.cfg
        t_len = h.shape[0]
        h = np.ascontiguousarray(h, F32).copy()
        mem = np.full(self.params_at + self.params.size, np.nan, F32)
        mem[self.params_at:] = self.params
        kc, vc = np.ascontiguousarray(cache.k[0]), np.ascontiguousarray(cache.v[0])
        taps = np.full(self.tap_floats, np.nan, F32)
        fn = getattr(self.lib, f"tb_lb_layer_{self.suffix}")
        fn.restype = ctypes.c_long
        scale = F32(1.0 / np.sqrt(c.head_dim))
        left = fn(csim.ptr(h), ctypes.c_int(t_len), ctypes.c_int(pos0), csim.ptr(self.w),
                  ctypes.c_long(self.w.size), csim.ptr(self.ld), csim.ptr(self.lbt), csim.ptr(mem),
                  ctypes.c_long(self.params_at), csim.ptr(self.golden.cos), csim.ptr(self.golden.sin),
                  csim.ptr(kc), csim.ptr(vc), ctypes.c_float(F32(c.rms_eps)), ctypes.c_float(scale),
                  csim.ptr(taps), ctypes.c_int(int(fifo)))
        assert left == 0, f"{left} weight FIFO words left over (or a refused call)"
        cache.k[0], cache.v[0] = kc, vc
        offs = np.zeros(6, np.int64)
        self.lib.tb_lb_layer_taps(csim.ptr(offs))
        widths = {"q_rope": c.q_size, "k_rope": c.kv_size, "v": c.kv_size, "attn": c.q_size,
                  "h_attn": c.hidden_size, "ffn_act": c.ffn_size}
        out = {n: taps[offs[i]:offs[i] + t_len * widths[n]].reshape(t_len, widths[n])
               for i, n in enumerate(TAPS)}
        out["h_out"] = h
        return out


def _mismatches(a: np.ndarray, b: np.ndarray) -> int:
    a, b = np.ascontiguousarray(a, F32).reshape(-1), np.ascontiguousarray(b, F32).reshape(-1)
    return int((a.view(np.uint32) != b.view(np.uint32)).sum())


def compare(layer: LbLayer, t_len: int, pos0: int, seed: int, fifo: bool = True) -> dict[str, int]:
    """Golden and C-sim on the same h and cache (random positions < pos0): mismatches per tap."""
    gm, c = layer.golden, layer.golden.cfg
    rng = np.random.default_rng(seed)
    h = gm.model.embed_rows(rng.integers(0, c.vocab_size, t_len))
    cg = gm.new_cache(c.max_context)
    cg.k[0, :pos0] = rng.standard_normal((pos0, c.n_kv_heads, c.head_dim)).astype(F32)
    cg.v[0, :pos0] = rng.standard_normal((pos0, c.n_kv_heads, c.head_dim)).astype(F32)
    cc = KVCache(cg.k.copy(), cg.v.copy())
    ref: dict[str, np.ndarray] = {}
    gm.layer(0, h.copy(), cg, pos0, tap=lambda n, a: ref.__setitem__(n.split(".", 1)[1], np.array(a)))
    got = layer.run(h, pos0, cc, fifo)
    counts = {n: _mismatches(got[n], ref[n].reshape(t_len, -1)) for n in (*TAPS, "h_out")}
    s = pos0 + t_len
    counts["kv"] = _mismatches(cc.k[0, :s], cg.k[0, :s]) + _mismatches(cc.v[0, :s], cg.v[0, :s])
    assert np.isfinite(ref["h_out"]).all()
    return counts


CASES = [("p1", False, 1, 9), ("p1", False, 12, 3), ("p1", True, 1, 20), ("p1", True, 11, 5),
         ("p2", False, 1, 7), ("p2", False, 7, 4), ("p2", True, 6, 2)]


@pytest.mark.parametrize("suffix,bias,t_len,pos0", CASES,
                         ids=[f"{s}-{'qwen' if b else 'llama'}-T{t}-pos{p}" for s, b, t, p in CASES])
def test_layer_bit_exact_through_fifos(lib: ctypes.CDLL, suffix: str, bias: bool, t_len: int,
                                       pos0: int) -> None:
    layer = LbLayer(lib, suffix, mixed_model(bias, seed=3 + bias))
    counts = compare(layer, t_len, pos0, seed=t_len * 100 + pos0)
    assert sum(counts.values()) == 0, counts


def test_pointer_path_bit_exact(lib: ctypes.CDLL) -> None:
    """The same layer with the engine reading the port images through pointers (the testbench path)."""
    layer = LbLayer(lib, "p2", mixed_model(True, seed=5))
    counts = compare(layer, 5, 3, seed=1, fifo=False)
    assert sum(counts.values()) == 0, counts


def test_mix_is_what_the_brief_asks() -> None:
    """The layer's codecs really differ per linear (K-quant G 32, Q6_K-like G 16, f32 per group G 256)."""
    layer = mixed_model(False, seed=3).model.layers[0]
    codecs = {n: pl.pack_lowbit(lin.quant).codec for n, lin in layer.linears().items()}
    assert (codecs["q"].sb, codecs["q"].db, codecs["q"].scb) == (8, 16, 6)
    assert (codecs["gate"].sb, codecs["gate"].mmode) == (16, 1)
    assert codecs["down"].db == 32 and layer.down.quant.group == 256


def test_comparison_detects_a_changed_bias_and_code(lib: ctypes.CDLL) -> None:
    """The check can fail: a changed q bias word in the params, or one flipped code byte of o_proj."""
    layer = LbLayer(lib, "p1", mixed_model(True, seed=4))
    i = int(layer.lbt[0, itf.LB["LB_BIAS_OFF"]])
    layer.params[i] = np.float32(layer.params[i] + 1.0)
    assert compare(layer, 2, 3, seed=8)["q_rope"] > 0
    layer = LbLayer(lib, "p1", mixed_model(False, seed=4))
    o = int(layer.ld[itf.LD_W_OFF + 3])
    layer.w[o + 200] ^= 0x10
    assert compare(layer, 2, 3, seed=8)["h_attn"] > 0
