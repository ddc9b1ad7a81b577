"""C simulation of the HLS decoder layer (hw/include/edgellm/decoder_layer.h) vs GoldenModel.layer,
bit for bit on every tap, for prefill and decode, ReLU^2 + SubLN and SiLU variants, with the ternary
linears on the TLMM engine (5-trits/byte image) and on the pack2 reference matmul; the TLMM variants
also with an f16 KV cache (NumericsPlan kv_dtype "f16"), the cache compared as binary16 bits; and
with the element-wise stages 4 and 16 elements per cycle (layer_config_base ew_vec; ffn 344 is not a
multiple of 16). The stages' shared rows (EwRows) are poisoned (NaN) before every call, so a stage
reading a row element left over from another stage or token would fail; one variant goes through
the decoder_layer wrapper that declares the rows itself."""

import ctypes
import re
from dataclasses import dataclass

import numpy as np
import pytest

from edgellm.compiler.packing import pack_ternary
from edgellm.hw import csim
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel, KVCache
from edgellm.models.numerics import F32, NumericsPlan
from edgellm.models.random_model import random_model

LINEARS = ("q", "k", "v", "o", "gate", "up", "down")
TLMM_ROWS = 16  # tlmm_fields R in hw/tb/layer_tb.cpp
TAPS = ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")
VARIANTS = {
    "relu2_subln": dict(act="relu2", subln=True, rope_theta=500000.0),
    "silu": dict(act="silu", subln=False, rope_theta=10000.0),
}


def small_config(variant: str) -> ModelConfig:
    """The shape compiled into hw/tb/layer_tb.cpp."""
    return ModelConfig(name=f"tiny-{variant}", hidden_size=128, n_layers=1, n_heads=4, n_kv_heads=2,
                       ffn_size=344, vocab_size=96, max_context=512, **VARIANTS[variant])


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "layer_tb.cpp"], "layer_tb")


@dataclass
class CLayer:
    """Layer 0 of a random model, packed for the C-sim layer."""

    lib: ctypes.CDLL
    variant: str
    mm: str  # "tlmm" or "pack2"
    golden: GoldenModel
    kv: str = "f32"  # KV cache element type ("f16": the _f16 entry points)
    vec: int = 1  # element-wise elements per cycle (EW_VEC; > 1: the _v<vec> entry points)
    wrap: bool = False  # through decoder_layer (rows declared there): the _wrap entry points

    def __post_init__(self) -> None:
        layer = self.golden.model.layers[0]
        lins = layer.linears()
        blobs, offs = [], []
        for n in LINEARS:
            offs.append(sum(b.size for b in blobs))
            if self.mm == "tlmm":
                blobs.append(pack_ternary(lins[n].dense(), TLMM_ROWS))
            else:
                blobs.append(np.ascontiguousarray(lins[n].packed).reshape(-1))
        self.w = np.concatenate(blobs)
        self.w_off = np.array(offs, np.int64)
        self.w_scale = np.array([lins[n].scale for n in LINEARS], F32)
        norms = [layer.attn_norm, layer.ffn_norm, layer.attn_sub_norm, layer.ffn_sub_norm]
        norms = [np.zeros(1, F32) if g is None else np.asarray(g, F32) for g in norms]
        self.p_off = np.cumsum([0] + [g.size for g in norms[:-1]]).astype(np.int64)
        self.params = np.concatenate(norms)
        offs8 = np.zeros(8, np.int64)
        self.lib.tb_layer_tap_offsets(csim.ptr(offs8))
        self.tap_off, self.max_t = offs8[:7], int(offs8[7])

    def run(self, h: np.ndarray, pos0: int, cache: KVCache) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """h (T, hidden) at pos0; updates cache (layer 0) in place; returns (h_out, taps)."""
        c = self.golden.cfg
        t_len = h.shape[0]
        assert t_len <= self.max_t
        h = np.ascontiguousarray(h, F32).copy()
        kc, vc = np.ascontiguousarray(cache.k[0]), np.ascontiguousarray(cache.v[0])
        taps = np.full(int(self.tap_off[6]), np.nan, F32)
        scale = F32(1.0 / np.sqrt(c.head_dim))
        suffix = (("_f16" if self.kv == "f16" else "") + (f"_v{self.vec}" if self.vec > 1 else "")
                  + ("_wrap" if self.wrap else ""))
        getattr(self.lib, f"tb_layer_{self.variant}_{self.mm}{suffix}")(
            csim.ptr(h), ctypes.c_int(t_len), ctypes.c_int(pos0), csim.ptr(self.w), csim.ptr(self.w_off),
            csim.ptr(self.w_scale), csim.ptr(self.params), csim.ptr(self.p_off), csim.ptr(self.golden.cos),
            csim.ptr(self.golden.sin), csim.ptr(kc), csim.ptr(vc), ctypes.c_float(F32(c.rms_eps)),
            ctypes.c_float(scale), csim.ptr(taps))
        cache.k[0], cache.v[0] = kc, vc
        m = self.max_t
        shapes = {"q_rope": (c.n_heads, c.head_dim), "k_rope": (c.n_kv_heads, c.head_dim),
                  "v": (c.n_kv_heads, c.head_dim), "attn": (c.q_size,), "h_attn": (c.hidden_size,),
                  "ffn_act": (c.ffn_size,)}
        out = {}
        for i, name in enumerate(TAPS):
            width = int(np.prod(shapes[name]))
            region = taps[self.tap_off[i]:self.tap_off[i] + m * width].reshape(m, *shapes[name])
            out[name] = region[:t_len]
        out["h_out"] = h
        return h, out


@pytest.fixture(scope="module",
                params=[(v, mm, "f32", 1, False) for mm in ("tlmm", "pack2") for v in VARIANTS]
                + [(v, "tlmm", "f16", 1, False) for v in VARIANTS]
                + [("relu2_subln", "tlmm", "f32", 4, False), ("relu2_subln", "pack2", "f32", 4, False),
                   ("silu", "tlmm", "f16", 16, False), ("relu2_subln", "tlmm", "f32", 4, True)],
                ids=lambda p: f"{p[0]}-{p[1]}" + ("-f16kv" if p[2] == "f16" else "")
                + (f"-vec{p[3]}" if p[3] > 1 else "") + ("-wrap" if p[4] else ""))
def layer(request: pytest.FixtureRequest, lib: ctypes.CDLL) -> CLayer:
    variant, mm, kv, vec, wrap = request.param
    cfg = small_config(variant)
    plan = NumericsPlan.for_head_dim(cfg.head_dim, kv_dtype=kv)
    return CLayer(lib, variant, mm, GoldenModel(random_model(cfg, seed=11), plan), kv, vec, wrap)


def _mismatches(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (f32, or f16 for KV caches)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.dtype == np.float16 or b.dtype == np.float16:
        assert a.dtype == b.dtype == np.float16
        return int((a.view(np.uint16) != b.view(np.uint16)).sum())
    return int((a.astype(F32, copy=False).view(np.uint32) != b.astype(F32, copy=False).view(np.uint32))
               .sum())


def _compare(layer: CLayer, h: np.ndarray, pos0: int, cache_g: KVCache, cache_c: KVCache, what: str) -> int:
    """Run golden and C-sim on the same inputs; print per-tap mismatch counts; return the total."""
    ref: dict[str, np.ndarray] = {}
    layer.golden.layer(0, h.copy(), cache_g, pos0, tap=lambda n, a: ref.__setitem__(n.split(".", 1)[1],
                                                                                    np.array(a)))
    _, got = layer.run(h, pos0, cache_c)
    counts = {n: _mismatches(got[n], ref[n]) for n in (*TAPS, "h_out")}
    s = pos0 + h.shape[0]
    counts["kv_cache"] = _mismatches(cache_c.k[0, :s], cache_g.k[0, :s]) + _mismatches(
        cache_c.v[0, :s], cache_g.v[0, :s])
    print(f"layer {layer.variant}/{layer.mm}/{layer.kv}/vec{layer.vec}{'/wrap' * layer.wrap} KV {what}: "
          + ", ".join(f"{n} {m}" for n, m in counts.items()))
    for n in ("attn", "h_out"):
        assert np.isfinite(ref[n]).all(), n
    return sum(counts.values())


def _hidden(layer: CLayer, t_len: int, seed: int) -> np.ndarray:
    """(T, hidden) embeddings of random tokens."""
    rng = np.random.default_rng(seed)
    return layer.golden.model.embed_rows(rng.integers(0, layer.golden.cfg.vocab_size, t_len))


def test_prefill_every_tap_bit_exact(layer: CLayer) -> None:
    total = 0
    for t_len in (1, 16, 128):
        cg, cc = layer.golden.new_cache(), layer.golden.new_cache()
        total += _compare(layer, _hidden(layer, t_len, t_len), 0, cg, cc, f"prefill T={t_len} pos0=0")
        if t_len == 128:  # continue the same caches: a second prefill at pos0 = 128, then decode
            total += _compare(layer, _hidden(layer, 16, 5), 128, cg, cc, "prefill T=16 pos0=128")
            total += _compare(layer, _hidden(layer, 1, 6), 144, cg, cc, "decode pos=144 after prefill")
    assert total == 0


def test_decode_every_tap_bit_exact(layer: CLayer) -> None:
    c = layer.golden.cfg
    rng = np.random.default_rng(2)
    total = 0
    for pos in (0, 255, c.max_context - 1):
        cg = layer.golden.new_cache()
        cg.k[0, :pos] = rng.standard_normal((pos, c.n_kv_heads, c.head_dim)).astype(cg.k.dtype)
        cg.v[0, :pos] = rng.standard_normal((pos, c.n_kv_heads, c.head_dim)).astype(cg.v.dtype)
        cc = KVCache(cg.k.copy(), cg.v.copy())
        total += _compare(layer, _hidden(layer, 1, pos), pos, cg, cc, f"decode pos={pos}")
    assert total == 0


def test_comparison_detects_a_changed_weight(layer: CLayer) -> None:
    """The check can fail: change the first weight of o_proj in the C-sim image only."""
    h = _hidden(layer, 16, 99)
    cg, cc = layer.golden.new_cache(), layer.golden.new_cache()
    saved = layer.w.copy()
    i = int(layer.w_off[LINEARS.index("o")])
    # both encodings hold weight (0, 0) in the low digit of byte 0: -1/+1 -> 0, 0 -> +1
    base = 3 if layer.mm == "tlmm" else 4
    code = int(layer.w[i]) % base
    layer.w[i] = int(layer.w[i]) - code + (2 if code == 1 else 1)
    try:
        total = _compare(layer, h, 0, cg, cc, "with one o_proj weight changed")
    finally:
        layer.w[:] = saved
    assert total > 0


# --- one element-wise engine: the layer and the top reach it through one call site ---
STAGES = ("norm_quantize_tokens", "dequant_rope_tokens", "glu_norm_quantize_tokens",
          "residual_norm_quantize_tokens")


def _code(header: str) -> str:
    """A header of hw/include/edgellm without its comments."""
    text = (csim.INCLUDE_DIR / "edgellm" / header).read_text()
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def _body(code: str, name: str) -> str:
    """The brace-balanced body of the first definition of function `name` in code."""
    m = re.search(rf"\b{name}\s*\([^;{{]*\)\s*{{", code)
    assert m, name
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        i += 1
    return code[m.end():i - 1]


def test_one_engine_call_site() -> None:
    """decoder_layer.h (with the headers it splits into: layer_config.h, layer_matmul.h, layer_schedule.h)
    calls ew_engine exactly once (inside vector_job, for all its jobs) and no stage function, and the
    matmul policy once (inside linear_job); each slot is one DATAFLOW region of those two processes;
    top.h (with top_engine.h, top_fetch.h, top_program.h) reaches element-wise hardware only through its one
    decoder_layer_ports call (the final norm is its norm_only job); the stages are one-job wrappers of
    the engine, which is a non-inlined function limiting its fp32 operators."""
    layer = "".join(_code(h) for h in (
        "decoder_layer.h", "layer_config.h", "layer_matmul.h", "layer_schedule.h"))
    top = "".join(_code(h) for h in ("top.h", "top_engine.h", "top_fetch.h", "top_program.h"))
    ew = _code("elementwise.h")
    calls = re.findall(r"\bew_engine\s*<", layer)
    assert len(calls) == 1, calls
    assert re.search(r"\bew_engine\s*<", _body(layer, "vector_job"))
    # the policy's two call forms (mm_linear: ternary, low-bit), reached from linear_job's one call
    assert len(re.findall(r"\bMM::run\s*\(", layer)) == 2
    assert len(re.findall(r"\bmm_linear<MM>::run\s*\(", layer)) == 1
    assert re.search(r"\bmm_linear<MM>::run\s*\(", _body(layer, "linear_job"))
    slot = _body(layer, "layer_slot_run")
    assert "#pragma HLS DATAFLOW" in slot
    assert re.findall(r"EDGELLM_PROCESS\((\w+)<", slot) == ["linear_job", "vector_job"]
    assert len(re.findall(r"\blayer_slot_run\s*<", _body(layer, "decoder_layer_ports"))) == 1
    assert len(re.findall(r"\bdecoder_layer_ports\s*<", top)) == 1
    assert not re.search(r"\bew_engine\b", top)
    for name in STAGES:
        assert not re.search(rf"\b{name}\b", layer + top), name
        assert len(re.findall(r"\bew_engine\s*<", _body(ew, name))) == 1, name
    # the engine instance the layer uses does not depend on the job: one module per layer_config
    assert "ew_engine<E, C::act, C::head_dim, f32>" in re.sub(r"\s+", " ", layer)
    engine = _body(ew, "ew_engine")
    assert "#pragma HLS INLINE off" in engine
    for op in ("fmul", "fadd", "fsub", "fdiv", "fsqrt"):
        assert re.search(rf"#pragma HLS ALLOCATION operation instances = {op} limit = k\w+", engine), op
    # one shared tail in the engine: the scale pass and the round + store pass appear once each
    assert len(re.findall(r"\bnorm_quantize_tail\s*<", engine)) == 1
    tail = _body(ew, "norm_quantize_tail")
    for fn in ("rmsnorm_scale", "quantize_store"):
        assert len(re.findall(rf"\b{fn}\s*<", tail)) == 1, fn


def test_prefill_schedule_halves_are_ordered_and_disjoint(lib: ctypes.CDLL) -> None:
    """decoder_layer.h's slot schedule: sequential (1 half) runs V0 L0 V1 L1 .. V4, one job per slot but
    L0's k and v beside V1's first part (RoPE q, attention over the earlier K/V blocks), after L0's q;
    pipelined (2 halves) runs each half's stages in that order in increasing slots, never both jobs of a
    slot on one half, and never a stage before the previous stage of its half ended (an earlier slot).
    The fetchers' linear-job order follows the slots (stage-major, half A before B), and the first half
    is cost_model.first_half (ceil(t / 2) up to a multiple of the token lanes, < t)."""
    from edgellm.compiler.cost import model as cost_model

    out = (ctypes.c_int * 7)()
    for halves in (1, 2):
        n = lib.tb_layer_slot(0, halves, out)
        slots = []
        for i in range(n):
            lib.tb_layer_slot(i, halves, out)
            slots.append(tuple(out))
        assert n == 10
        done: dict[int, list[tuple[str, int, int]]] = {0: [], 1: []}  # half -> [(kind, stage, slot)]
        for i, (ls, lh, vs, vh, *_) in enumerate(slots):
            if ls >= 0 and vs >= 0 and halves == 2:
                assert lh != vh, f"slot {i}: both jobs on half {lh}"
            for kind, st, h in (("L", ls, lh), ("V", vs, vh)):
                if st >= 0:
                    done[h].append((kind, st, i))
        want = [("V", 0), ("L", 0), ("V", 1), ("L", 1), ("V", 2), ("L", 2), ("V", 3), ("L", 3), ("V", 4)]
        for h in range(halves):
            jobs = done[h]
            assert list(dict.fromkeys((k, st) for k, st, _ in jobs)) == want
            assert all(a[2] <= b[2] for a, b in zip(jobs, jobs[1:], strict=False)), jobs
        if halves == 2:
            lins = {-1: 0, 0: 3, 1: 1, 2: 2, 3: 1}  # the stage's linears (q, k, v | o | gate, up | down)
            assert all(s[4:] == (0, lins[s[0]], 0) for s in slots)
        else:  # L0 q | V1.1 + L0 k, v | V1.2; every other slot one job, whole
            assert [(s[0], s[4], s[5]) for s in slots[1:3]] == [(0, 0, 1), (0, 1, 3)]
            assert [(s[2], s[6]) for s in slots[2:4]] == [(1, 1), (1, 2)]
            assert all(not (s[0] >= 0 and s[2] >= 0) for i, s in enumerate(slots) if i != 2)
            assert all(s[6] == 0 for i, s in enumerate(slots) if i not in (2, 3))
    jobs = (ctypes.c_int * 42)()
    q, k, v, o, g, u, d = range(7)
    for t_len in (2, 5, 16):
        a = cost_model.first_half(t_len, 1)
        assert lib.tb_first_half(1, t_len, 2) == a and lib.tb_first_half(1, t_len, 1) == t_len
        n = lib.tb_layer_linear_jobs(t_len, 2, jobs)
        got = [tuple(jobs[3 * j:3 * j + 3]) for j in range(n)]
        ha, hb = (0, a), (a, t_len - a)
        assert got == [(q, *ha), (k, *ha), (v, *ha), (q, *hb), (k, *hb), (v, *hb), (o, *ha), (o, *hb),
                       (g, *ha), (u, *ha), (g, *hb), (u, *hb), (d, *ha), (d, *hb)]
        n = lib.tb_layer_linear_jobs(t_len, 1, jobs)
        assert [tuple(jobs[3 * j:3 * j + 3]) for j in range(n)] == [(m, 0, t_len) for m in range(7)]
    for lanes in (1, 2, 4):
        for t_len in range(2, 41):
            a = lib.tb_first_half(lanes, t_len, 2)
            assert a == cost_model.first_half(t_len, lanes) and 1 <= a < t_len
            assert a % lanes == 0 or a == t_len - 1
