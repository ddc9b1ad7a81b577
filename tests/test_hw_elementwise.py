"""C simulation of hw/include/edgellm/elementwise.h against the golden model's ops, bit for bit, for
VEC = 1, 4 and 16 elements per cycle (row lengths mostly not multiples of VEC). Outputs written to
DDR are checked for writes past their end (the i < n guards of the VEC-wide loops)."""

import ctypes

import numpy as np
import pytest

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
