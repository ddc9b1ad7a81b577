"""C simulation of hw/include/edgellm/elementwise.h against the golden model's ops, bit for bit, for
VEC = 1, 4 and 16 elements per cycle (row lengths mostly not multiples of VEC). Outputs written to
DDR are checked for writes past their end (the i < n guards of the VEC-wide loops). The C simulation's
loop trace (numerics_lanes.h ew_trace) holds against the compiler's model (cost_elementwise.stage_counts)."""

import ctypes

import numpy as np
import pytest

from edgellm.compiler.cost import elementwise as pe
from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32
CI, F, P = ctypes.c_int, ctypes.c_float, csim.ptr
EPS = F32(1e-5)
VECS = (1, 4, 16)
PAD = 64  # sentinel elements after each output array


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "elementwise_tb.cpp"], "elementwise_tb")


def _mism(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (float) or values differ (int)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype == F32:
        return int((a.view(np.uint32) != b.view(np.uint32)).sum())
    return int((a != b).sum())


class Padded:
    """An output array followed by PAD sentinel elements; .a is the (shape) view the kernel fills."""

    def __init__(self, shape: tuple[int, ...], dtype: type, fill: float | None = None) -> None:
        size = int(np.prod(shape))
        self.sentinel = np.array(-77 if dtype == np.int8 else np.nan, dtype)
        self.buf = np.full(size + PAD, self.sentinel, dtype)
        self.a = self.buf[:size].reshape(shape)
        if fill is not None:
            self.a[...] = fill

    def overrun(self) -> int:
        """Sentinels overwritten past the end."""
        tail = self.buf[self.a.size:]
        return int((tail.view(np.uint8) != np.full(PAD, self.sentinel).view(np.uint8)).any())


def _acc(rng: np.random.Generator, t: int, n: int, k: int) -> np.ndarray:
    """Plausible exact accumulators of a k-long ternary dot product (T, n) int32."""
    return rng.integers(-40 * int(np.sqrt(k)), 40 * int(np.sqrt(k)), (t, n)).astype(np.int32)


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("n,t,norm", [(2560, 1, True), (100, 16, True), (6912, 3, True), (300, 5, False),
                                      (344, 4, True), (7, 3, True), (1, 2, True), (7, 2, False)])
def test_norm_quantize(lib: ctypes.CDLL, vec: int, n: int, t: int, norm: bool) -> None:
    rng = np.random.default_rng(n + t)
    x = (rng.standard_normal((t, n)) * rng.uniform(0.01, 50, (t, 1))).astype(F32)
    x[0, :7] = 0.0  # zeros inside a row
    if n > 8:
        x[-1, -1] = 1000.0  # the absmax in the last (partial) chunk
    g = rng.uniform(0.2, 2.0, n).astype(F32)
    q = Padded((t, n), np.int8)
    qs = Padded((t,), F32)
    assert lib.tb_norm_quantize(CI(vec), P(x), P(g), CI(norm), F(EPS), CI(t), CI(n), P(q.buf), P(qs.buf)) == 0
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, 16) if norm else x)
    m = _mism(q.a, q_ref) + _mism(qs.a, qs_ref)
    print(f"norm_quantize vec={vec} n={n} t={t} norm={norm}: {m} mismatches")
    assert m == 0 and q.overrun() + qs.overrun() == 0


@pytest.mark.parametrize("vec", VECS)
def test_norm_quantize_all_zero_row(lib: ctypes.CDLL, vec: int) -> None:
    x = np.zeros((2, 64), F32)
    g = np.ones(64, F32)
    q = np.full((2, 64), 7, np.int8)
    qs = np.empty(2, F32)
    assert lib.tb_norm_quantize(CI(vec), P(x), P(g), CI(1), F(EPS), CI(2), CI(64), P(q), P(qs)) == 0
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, 16))
    assert _mism(q, q_ref) == 0 and _mism(qs, qs_ref) == 0


def test_unsupported_vec_is_refused(lib: ctypes.CDLL) -> None:
    x = np.zeros((1, 8), F32)
    q, qs = np.zeros((1, 8), np.int8), np.zeros(1, F32)
    assert lib.tb_norm_quantize(CI(8), P(x), P(x), CI(1), F(EPS), CI(1), CI(8), P(q), P(qs)) == -1


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("t,heads,pos0", [(1, 20, 37), (9, 5, 0), (4, 8, 1000), (2, 1, 3)])
def test_dequant_rope(lib: ctypes.CDLL, vec: int, t: int, heads: int, pos0: int) -> None:
    rng = np.random.default_rng(heads)
    d = 64
    acc = _acc(rng, t, heads * d, 2560)
    qs = rng.uniform(0.5, 40, t).astype(F32)
    ws = F32(1.7)
    cos, sin = nx.rope_tables(d, 2048, 500000.0)
    out = Padded((t, heads * d), F32)
    assert lib.tb_dequant_rope64(CI(vec), P(acc), P(qs), F(ws), CI(t), CI(heads), CI(pos0), P(cos), P(sin),
                                 P(out.buf)) == 0
    y = nx.dequantize(acc, qs, ws).reshape(t, heads, d)
    ref = nx.rope(y, cos[pos0:pos0 + t], sin[pos0:pos0 + t]).reshape(t, -1)
    m = _mism(out.a, ref)
    print(f"dequant_rope vec={vec} t={t} heads={heads} pos0={pos0}: {m} mismatches")
    assert m == 0 and out.overrun() == 0


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("d,heads", [(128, 4), (8, 3), (8, 1)])
def test_rope_from_f32(lib: ctypes.CDLL, vec: int, d: int, heads: int) -> None:
    """d = 8: a chunk of 16 spans two heads; 3 heads of 8 = 24 elements, not a multiple of 16."""
    rng = np.random.default_rng(3)
    t, pos0 = 3, 5
    y = rng.standard_normal((t, heads * d)).astype(F32) * 3
    cos, sin = nx.rope_tables(d, 64, 10000.0)
    out = Padded((t, heads * d), F32)
    assert lib.tb_rope_f32(CI(vec), CI(d), P(y), CI(t), CI(heads), CI(pos0), P(cos), P(sin), P(out.buf)) == 0
    ref = nx.rope(y.reshape(t, heads, d), cos[pos0:pos0 + t], sin[pos0:pos0 + t]).reshape(t, -1)
    assert _mism(out.a, ref) == 0 and out.overrun() == 0


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("act", ["relu2", "silu"])
@pytest.mark.parametrize("subln", [True, False])
@pytest.mark.parametrize("n,t", [(6912, 2), (688, 16), (344, 3), (7, 2)])
def test_glu_subln_quantize(lib: ctypes.CDLL, vec: int, act: str, subln: bool, n: int, t: int) -> None:
    rng = np.random.default_rng(n + t + subln)
    ga, ua = _acc(rng, t, n, 2560), _acc(rng, t, n, 2560)
    ga[0, :50] = 0
    qs = rng.uniform(0.5, 40, t).astype(F32)
    sg_, su_ = F32(0.9), F32(2.3)
    sub = rng.uniform(0.5, 1.5, n).astype(F32)
    q = Padded((t, n), np.int8)
    qso = Padded((t,), F32)
    tap = Padded((t, n), F32)
    assert lib.tb_glu(CI(vec), CI(0 if act == "relu2" else 1), P(ga), P(ua), P(qs), F(sg_), F(su_), CI(subln),
                      P(sub), F(EPS), CI(t), CI(n), P(q.buf), P(qso.buf), P(tap.buf)) == 0
    g = nx.dequantize(ga, qs, sg_)
    u = nx.dequantize(ua, qs, su_)
    f = (nx.relu2(g) if act == "relu2" else nx.silu(g)) * u
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(f, sub, EPS, 16) if subln else f)
    m = _mism(tap.a, f.astype(F32)) + _mism(q.a, q_ref) + _mism(qso.a, qs_ref)
    print(f"glu vec={vec} {act} subln={subln} n={n} t={t}: {m} mismatches")
    assert m == 0 and q.overrun() + qso.overrun() + tap.overrun() == 0


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("next_norm", [True, False])
@pytest.mark.parametrize("n,t", [(2560, 7), (100, 3), (1, 2)])
def test_residual_norm_quantize(lib: ctypes.CDLL, vec: int, next_norm: bool, n: int, t: int) -> None:
    rng = np.random.default_rng(11 + n)
    acc = _acc(rng, t, n, 6912)
    qs = rng.uniform(0.5, 40, t).astype(F32)
    ws = F32(1.3)
    h = Padded((t, n), F32, 0.0)
    h.a[...] = rng.standard_normal((t, n)).astype(F32) * 4
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    h_ref = (h.a + nx.dequantize(acc, qs, ws)).astype(F32)
    q = Padded((t, n), np.int8, 0)
    qso = Padded((t,), F32, 0.0)
    assert lib.tb_residual(CI(vec), P(acc), P(qs), F(ws), P(h.buf), CI(next_norm), P(g), F(EPS), CI(t), CI(n),
                           P(q.buf), P(qso.buf)) == 0
    m = _mism(h.a, h_ref)
    if next_norm:
        q_ref, qs_ref = nx.quantize(nx.rmsnorm(h_ref, g, EPS, 16))
        m += _mism(q.a, q_ref) + _mism(qso.a, qs_ref)
    else:
        assert not q.a.any()
    print(f"residual vec={vec} next_norm={next_norm} n={n} t={t}: {m} mismatches")
    assert m == 0 and h.overrun() + q.overrun() + qso.overrun() == 0


# --- fused sums of squares: the contract's lane order for (lanes, vec) in {16, 64} x {1, 2, 4, 8} ---
LV = [(lanes, vec) for lanes in (16, 64) for vec in (1, 2, 4, 8)]
ORDER_N = (1000, 3001)  # not multiples of 16 or 64: the last chunk is partial
KINDS = {0: "load", 1: "glu", 2: "residual"}


def _order_rows(n: int, rows: int = 16, seed: int = 7) -> np.ndarray:
    """(rows, n) values spread over 2^-10 .. 2^10: their squares span 2^40, so adding them in another
    order (other lanes, another rotation, another tree, wider accumulators) changes the float sum."""
    rng = np.random.default_rng(seed + n)
    return (rng.standard_normal((rows, n)) * np.exp2(rng.uniform(-10, 10, (rows, n)))).astype(F32)


def _lane_map_sum(sq: np.ndarray, lane: np.ndarray, lanes: int, pair_tree: bool = False,
                  reverse: bool = False) -> np.ndarray:
    """Sum over the last axis: element i into accumulator lane[i] (fp32, index order or reversed),
    then a halving tree (j + j+h, or adjacent pairs when pair_tree). (rows,) float32."""
    acc = np.zeros(sq.shape[:-1] + (lanes,), F32)
    for i in (range(sq.shape[-1] - 1, -1, -1) if reverse else range(sq.shape[-1])):
        acc[..., lane[i]] = acc[..., lane[i]] + sq[..., i]
    while acc.shape[-1] > 1:
        h = acc.shape[-1] // 2
        acc = (acc[..., 0::2] + acc[..., 1::2]) if pair_tree else (acc[..., :h] + acc[..., h:])
    return acc[..., 0]


def _other_orders(x: np.ndarray, lanes: int) -> dict[str, np.ndarray]:
    """Sums of squares of x in orders other than the contract's lane order with `lanes` lanes."""
    sq = x * x
    i = np.arange(x.shape[-1])
    return {"half lanes": nx.reduce_sum(sq, lanes // 2), "double lanes": nx.reduce_sum(sq, 2 * lanes),
            **{f"{u} lanes (no rotation)": nx.reduce_sum(sq, u) for u in (1, 2, 4, 8)},
            "reversed in lanes": _lane_map_sum(sq, i % lanes, lanes, reverse=True),
            "adjacent-pair tree": _lane_map_sum(sq, i % lanes, lanes, pair_tree=True),
            "float64": sq.astype(np.float64).sum(-1).astype(F32),
            "2 per cycle rotated by 8": _lane_map_sum(sq, ((i // 2) % (lanes // 8)) * 8 + i % 2, lanes)}


@pytest.mark.parametrize("lanes", (16, 64))
@pytest.mark.parametrize("n", ORDER_N)
def test_order_rows_separate_the_orders(lanes: int, n: int) -> None:
    """The rows below can fail a wrong order: every other order changes some row's sum of squares."""
    x = _order_rows(n)
    ref = nx.reduce_sum(x * x, lanes)
    i = np.arange(n)
    assert _mism(_lane_map_sum(x * x, i % lanes, lanes), ref) == 0  # the model of the contract
    for name, s in _other_orders(x, lanes).items():
        assert _mism(s, ref) > 0, f"{name}: same sums as the contract"


@pytest.mark.parametrize("lanes,vec", LV)
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("n", ORDER_N)
def test_fused_sumsq_lane_order(lib: ctypes.CDLL, lanes: int, vec: int, kind: int, n: int) -> None:
    """The sum of squares each fused producing pass carries (load, GLU act * u, residual add) equals
    the contract's reduce_sum(x*x, lanes) bit for bit; the load pass's absmax equals max |x|."""
    x = _order_rows(n)
    ss, amax = np.full(16, np.nan, F32), np.full(16, np.nan, F32)
    h = np.zeros(n, F32)
    assert lib.tb_lv_fused_sumsq(CI(lanes), CI(vec), CI(kind), P(x), CI(16), CI(n), P(ss), P(amax), P(h)) == 0
    m = _mism(ss, nx.reduce_sum(x * x, lanes))
    print(f"fused sumsq {KINDS[kind]} lanes={lanes} vec={vec} n={n}: {m} mismatches of 16")
    assert m == 0
    if kind == 0:
        assert _mism(amax, np.abs(x).max(-1)) == 0


def _quantize_with_ss(x: np.ndarray, g: np.ndarray, ss: np.ndarray) -> np.ndarray:
    """qs of quantize(rmsnorm(x, g)) with the sum of squares ss (the contract's ops after the sum)."""
    r = F32(1.0) / np.sqrt(ss / F32(x.shape[-1]) + EPS)
    return nx.quantize(((x * r[:, None]) * g).astype(F32))[1]


@pytest.mark.parametrize("lanes,vec", LV)
@pytest.mark.parametrize("norm", [True, False])
def test_stages_lanes_vec(lib: ctypes.CDLL, lanes: int, vec: int, norm: bool) -> None:
    """norm_quantize, GLU (SiLU) + SubLN and residual + norm for every (lanes, vec): q, qs, tap and h
    bit for bit against the contract with NORM_LANES = lanes, on rows where the order matters (for x,
    checked: each other order of the sum of squares above changes some qs of norm_quantize)."""
    n, t = 1000, 16
    x = _order_rows(n, t, seed=8)
    g = np.random.default_rng(4).uniform(0.5, 1.5, n).astype(F32)
    if norm:  # with x's sum of squares in any of the other orders, some qs of norm_quantize differ
        qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, lanes))[1]
        same = [k for k, s in _other_orders(x, lanes).items()
                if _mism(_quantize_with_ss(x, g, s), qs_ref) == 0]
        assert not same, same
    # norm_quantize
    q, qs = Padded((t, n), np.int8), Padded((t,), F32)
    assert lib.tb_lv_norm_quantize(CI(lanes), CI(vec), P(x), P(g), CI(norm), F(EPS), CI(t), CI(n), P(q.buf),
                                   P(qs.buf)) == 0
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, lanes) if norm else x)
    m = _mism(q.a, q_ref) + _mism(qs.a, qs_ref)
    # GLU: f = silu(gate) * up, gate and up fp32 rows
    gate = (np.random.default_rng(5).standard_normal((t, n)) * 4).astype(F32)
    q2, qs2, tap = Padded((t, n), np.int8), Padded((t,), F32), Padded((t, n), F32)
    assert lib.tb_lv_glu(CI(lanes), CI(vec), P(gate), P(x), CI(norm), P(g), F(EPS), CI(t), CI(n), P(q2.buf),
                         P(qs2.buf), P(tap.buf)) == 0
    f = (nx.silu(gate) * x).astype(F32)
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(f, g, EPS, lanes) if norm else f)
    m += _mism(tap.a, f) + _mism(q2.a, q_ref) + _mism(qs2.a, qs_ref)
    # residual: h += y, then (next_norm) the norm + quantize of the new h
    y = _order_rows(n, t, seed=9)
    h = Padded((t, n), F32, 0.0)
    h.a[...] = x
    q3, qs3 = Padded((t, n), np.int8, 0), Padded((t,), F32, 0.0)
    assert lib.tb_lv_residual(CI(lanes), CI(vec), P(y), P(h.buf), CI(norm), P(g), F(EPS), CI(t), CI(n),
                              P(q3.buf), P(qs3.buf)) == 0
    h_ref = (x + y).astype(F32)
    m += _mism(h.a, h_ref)
    if norm:
        q_ref, qs_ref = nx.quantize(nx.rmsnorm(h_ref, g, EPS, lanes))
        m += _mism(q3.a, q_ref) + _mism(qs3.a, qs_ref)
    else:
        assert not q3.a.any()
    print(f"stages lanes={lanes} vec={vec} norm={norm}: {m} mismatches")
    assert m == 0
    assert q.overrun() + qs.overrun() + q2.overrun() + qs2.overrun() + tap.overrun() == 0
    assert h.overrun() + q3.overrun() + qs3.overrun() == 0


# --- the element-wise engine's operator budget (elementwise.h EwBudget) ---
# fp32 operators per element of each pass (fmul, fadd, fsub, fdiv) at its width ("V" or "U"); d = 1 when the
# linear outputs are int32 accumulators (dequantize: one fmul, one fdiv per loaded element), a_* the gate
# activation's (ReLU^2: r * r; SiLU: exp_f's 10 fmul, 8 fadd, 3 fsub, and x / (1 + e)).
ACT_OPS = {0: (1, 0, 0, 0), 1: (10, 8, 3, 1)}


def _passes(act: int, d: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    am, aa, asub, ad = ACT_OPS[act]
    return [("V", (d, 0, 0, d)), ("U", (d + 1, 1, 0, d)),                  # load, load + sum of squares
            ("G", (am + 1 + d, aa, asub, ad + d)), ("GU", (am + 2 + d, aa + 1, asub, ad + d)),  # act * u
            ("V", (0, 1, 0, 0)), ("U", (1, 2, 0, 0)),                      # residual add (+ sum of squares)
            ("V", (2, 0, 0, 0)), ("V", (1, 1, 1, 0)), ("V", (2, 1, 1, 0)),  # scale, round, rope
            ("1", (0, 1, 0, 1))]                                           # lane tree, r and qs divisions


@pytest.mark.parametrize("lanes,vec", LV)
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("in_int", [0, 1])
def test_engine_budget(lib: ctypes.CDLL, lanes: int, vec: int, act: int, in_int: int) -> None:
    """EwBudget = per operator type, the most one pass needs at II = 1; and the closed forms the
    header gives for fp32 linear outputs (the layer)."""
    u = min(vec, max(1, lanes // 8))  # LaneUnits
    width = {"V": vec, "U": u, "G": vec, "GU": u, "1": 1}  # GLU_VEC = VEC
    want = [max(width[w] * ops[k] for w, ops in _passes(act, in_int)) for k in range(4)] + [1]
    got = np.zeros(5, np.int32)
    assert lib.tb_ew_budget(CI(lanes), CI(vec), CI(act), CI(in_int), P(got)) == 0
    print(f"budget lanes={lanes} vec={vec} act={act} int={in_int}: fmul/fadd/fsub/fdiv/fsqrt {got.tolist()}")
    assert got.tolist() == want
    if not in_int:
        v = vec
        closed = ([max(2 * v, 3 * u), max(v, 2 * u), v, 1, 1] if act == 0
                  else [max(11 * v, 12 * u), max(8 * v, 9 * u), 3 * v, v, 1])
        assert got.tolist() == closed


# --- C-simulation loop trace (numerics_lanes.h ew_trace) against the compiler's model (cost_elementwise) ---
# (VEC, NORM_LANES) of the tb's trace configs: LaneUnits U = VEC, then U = 2 < VEC
TRACE_VL = [(vec, max(16, 8 * vec)) for vec in (1, 2, 4, 8)] + [(4, 16), (8, 16)]
TRACE_CASES = [("norm", True), ("norm", False), ("glu", True), ("glu", False), ("residual", True),
               ("residual", False)]
TRACE_N = (7, 100, 1001)  # not multiples of 2, 4 or 8
ROPE_DH = [(6, 5), (64, 3)]  # (head_dim, heads): 30 and 192 elements; head_dim / 2 = 3 is not a multiple
STAGE_ID = {s: i for i, s in enumerate(pe.STAGES)}


def _ew_trace(lib: ctypes.CDLL, reset: bool = True) -> tuple[int, int, int]:
    """(iterations, loop entries, lane-tree iterations) since the last reset."""
    t = np.zeros(3, np.int64)
    lib.tb_ew_trace(P(t), CI(int(reset)))
    return int(t[0]), int(t[1]), int(t[2])


def _run_stage(lib: ctypes.CDLL, vec: int, lanes: int, stage: str, norm: bool, n: int, t: int,
               d: int = 6) -> None:
    """One stage call on t tokens of n (fp32 inputs); checks rope wrote out and nothing was written past the
    outputs."""
    rng = np.random.default_rng(n + vec)
    a, b = (rng.standard_normal((t, n)) * 2).astype(F32), rng.standard_normal((t, n)).astype(F32)
    h = rng.standard_normal((t, n)).astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    cos, sin = nx.rope_tables(d, 16, 10000.0)
    q, qs, out, tap = Padded((t, n), np.int8), Padded((t,), F32), Padded((t, n), F32), Padded((t, n), F32)
    args = (CI(lanes), CI(vec), CI(d), CI(STAGE_ID[stage]), CI(norm), P(a), P(b), P(h), P(g), P(cos), P(sin),
            CI(t), CI(n), P(q.buf), P(qs.buf), P(out.buf), P(tap.buf))
    assert lib.tb_trace_stage(*args) == 0
    if stage == "rope":
        assert not np.isnan(out.a).any()
    assert q.overrun() + qs.overrun() + out.overrun() + tap.overrun() == 0


@pytest.mark.parametrize("vec,lanes", TRACE_VL)
@pytest.mark.parametrize("stage,norm", TRACE_CASES)
def test_trace_matches_stage_counts(lib: ctypes.CDLL, vec: int, lanes: int, stage: str, norm: bool) -> None:
    """Each stage's pipelined-loop iterations, entries and lane-tree iterations in C simulation equal
    cost_elementwise.stage_counts per token (n not a multiple of VEC; 3 tokens per call)."""
    t = 3
    _ew_trace(lib)
    for n in TRACE_N:
        _run_stage(lib, vec, lanes, stage, norm, n, t)
        got = _ew_trace(lib)
        want = tuple(t * k for k in pe.stage_counts(stage, n, norm, vec, lanes))
        print(f"trace {stage} norm={norm} vec={vec} lanes={lanes} n={n}: C sim {got}, model {want}")
        assert got == want
        assert got[0] == t * pe.stage_iterations(stage, n, norm, vec, lanes)


@pytest.mark.parametrize("vec,lanes", TRACE_VL)
@pytest.mark.parametrize("d,heads", ROPE_DH)
def test_trace_rope_matches_stage_counts(lib: ctypes.CDLL, vec: int, lanes: int, d: int, heads: int) -> None:
    """dequant_rope: load + the table loop (head_dim / 2 of each table) + rope_row, per token."""
    t, n = 4, heads * d
    _ew_trace(lib)
    _run_stage(lib, vec, lanes, "rope", False, n, t, d)
    got = _ew_trace(lib)
    want = tuple(t * k for k in pe.stage_counts("rope", n, False, vec, lanes, head_dim=d))
    print(f"trace rope d={d} heads={heads} vec={vec} lanes={lanes}: C sim {got}, model {want}")
    assert got == want


def test_trace_cases_separate_simpler_models() -> None:
    """The cases above can fail a wrong model: a lane tree after every producing pass (also when no sum
    of squares is carried), or every pass ceil(n / VEC) each disagree with stage_counts on some case."""
    def dead_trees(stage: str, n: int, norm: bool, vec: int, lanes: int) -> int:
        c = pe.stage_counts(stage, n, norm, vec, lanes)
        producing = 1 if stage == "norm" else 2 if stage in ("glu", "residual") else 1
        return c.iters - c.tree + producing * (lanes - 1)

    def all_vec(stage: str, n: int, norm: bool, vec: int, lanes: int) -> int:
        passes = {"norm": 2 + norm, "glu": 3 + norm, "residual": 2 + 2 * norm}[stage]
        return passes * -(-n // vec) + int(norm) * (lanes - 1)

    grid = [(s, n, nm, v, ln) for s, nm in TRACE_CASES for n in TRACE_N for v, ln in TRACE_VL]
    for alt in (dead_trees, all_vec):
        diff = sum(alt(*c) != pe.stage_iterations(*c) for c in grid)
        print(f"{alt.__name__}: differs on {diff} of {len(grid)} cases")
        assert diff > 0


# --- GLU_VEC < VEC: the GLU act(g) * u pass narrower than the others (ew_traits GLU_VEC) ---
GLU_CFGS = [(16, 4, 1), (16, 4, 2), (32, 4, 2), (64, 8, 2), (64, 8, 4)]  # (lanes, vec, glu) of the tb


@pytest.mark.parametrize("lanes,vec,glu", GLU_CFGS)
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("subln", [True, False])
def test_glu_vec_exact_and_counted(lib: ctypes.CDLL, lanes: int, vec: int, glu: int, act: int,
                                   subln: bool) -> None:
    """A narrower GLU pass changes no bit (f, q and qs equal the golden model's; the SubLN sum of squares
    keeps the contract's lane order, the rows separating it from other orders) and runs exactly the loops
    cost_elementwise.stage_counts(..., glu_vec) counts."""
    t = 3
    for n in (7, 1000, 1001):
        rng = np.random.default_rng(n + glu)
        up = _order_rows(n, t, seed=8 + n)
        gate = (rng.standard_normal((t, n)) * 4).astype(F32)
        sub = rng.uniform(0.5, 1.5, n).astype(F32)
        q, qs, tap = Padded((t, n), np.int8), Padded((t,), F32), Padded((t, n), F32)
        _ew_trace(lib)
        assert lib.tb_g_glu(CI(lanes), CI(vec), CI(glu), CI(act), P(gate), P(up), CI(subln), P(sub), F(EPS),
                            CI(t), CI(n), P(q.buf), P(qs.buf), P(tap.buf)) == 0
        got = _ew_trace(lib)
        f = ((nx.relu2(gate) if act == 0 else nx.silu(gate)) * up).astype(F32)
        q_ref, qs_ref = nx.quantize(nx.rmsnorm(f, sub, EPS, lanes) if subln else f)
        m = _mism(tap.a, f) + _mism(q.a, q_ref) + _mism(qs.a, qs_ref)
        want = tuple(t * k for k in pe.stage_counts("glu", n, subln, vec, lanes, glu_vec=glu))
        print(f"glu lanes={lanes} vec={vec} glu={glu} act={act} subln={subln} n={n}: {m} mismatches; "
              f"trace {got}, model {want}")
        assert m == 0 and q.overrun() + qs.overrun() + tap.overrun() == 0
        assert got == want
        # the narrower pass is visible in the counts unless both widths reach the data beat (4 floats: a
        # pass moves at most one beat per cycle)
        u = max(1, lanes // 8)
        if (min(glu, u, 4) < min(vec, u, 4)) if subln else min(glu, 4) < min(vec, 4):
            assert got != tuple(t * k for k in pe.stage_counts("glu", n, subln, vec, lanes))


@pytest.mark.parametrize("lanes,vec,glu", GLU_CFGS)
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("in_int", [0, 1])
def test_glu_vec_budget(lib: ctypes.CDLL, lanes: int, vec: int, glu: int, act: int, in_int: int) -> None:
    """EwBudget with GLU_VEC: the act * u rows at GLU_VEC (GU with the sum of squares), every other pass
    as before; for the layer (fp32 outputs) the resource model's closed form."""
    u = min(vec, max(1, lanes // 8))
    gu = min(glu, u)
    width = {"V": vec, "U": u, "G": glu, "GU": gu, "1": 1}
    want = [max(width[w] * ops[k] for w, ops in _passes(act, in_int)) for k in range(4)] + [1]
    got = np.zeros(5, np.int32)
    assert lib.tb_g_budget(CI(lanes), CI(vec), CI(glu), CI(act), CI(in_int), P(got)) == 0
    print(f"budget lanes={lanes} vec={vec} glu={glu} act={act} int={in_int}: {got.tolist()}")
    assert got.tolist() == want
    if not in_int:
        closed = ([max(2 * vec, 3 * gu, u), max(vec, 2 * u), vec, 1, 1] if act == 0
                  else [max(11 * glu, 12 * gu, 2 * vec, u), max(8 * glu, 9 * gu, vec, 2 * u),
                        max(3 * glu, vec), glu, 1])
        assert got.tolist() == closed
