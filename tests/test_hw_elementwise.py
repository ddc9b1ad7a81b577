"""C simulation of hw/include/edgellm/elementwise.h against the golden model's ops, bit for bit."""

import ctypes

import numpy as np
import pytest

from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32
CI, F, P = ctypes.c_int, ctypes.c_float, csim.ptr
EPS = F32(1e-5)


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "elementwise_tb.cpp"], "elementwise_tb")


def _mism(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (float) or values differ (int)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype == F32:
        return int((a.view(np.uint32) != b.view(np.uint32)).sum())
    return int((a != b).sum())


def _acc(rng: np.random.Generator, t: int, n: int, k: int) -> np.ndarray:
    """Plausible exact accumulators of a k-long ternary dot product (T, n) int32."""
    return rng.integers(-40 * int(np.sqrt(k)), 40 * int(np.sqrt(k)), (t, n)).astype(np.int32)


@pytest.mark.parametrize("n,t,norm", [(2560, 1, True), (100, 16, True), (6912, 3, True), (300, 5, False)])
def test_norm_quantize(lib: ctypes.CDLL, n: int, t: int, norm: bool) -> None:
    rng = np.random.default_rng(n + t)
    x = (rng.standard_normal((t, n)) * rng.uniform(0.01, 50, (t, 1))).astype(F32)
    x[0, :7] = 0.0  # zeros inside a row
    g = rng.uniform(0.2, 2.0, n).astype(F32)
    q = np.empty((t, n), np.int8)
    qs = np.empty(t, F32)
    lib.tb_norm_quantize(P(x), P(g), CI(norm), F(EPS), CI(t), CI(n), P(q), P(qs))
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, 16) if norm else x)
    m = _mism(q, q_ref) + _mism(qs, qs_ref)
    print(f"norm_quantize n={n} t={t} norm={norm}: {m} mismatches")
    assert m == 0


def test_norm_quantize_all_zero_row(lib: ctypes.CDLL) -> None:
    x = np.zeros((2, 64), F32)
    g = np.ones(64, F32)
    q = np.full((2, 64), 7, np.int8)
    qs = np.empty(2, F32)
    lib.tb_norm_quantize(P(x), P(g), CI(1), F(EPS), CI(2), CI(64), P(q), P(qs))
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(x, g, EPS, 16))
    assert _mism(q, q_ref) == 0 and _mism(qs, qs_ref) == 0


@pytest.mark.parametrize("t,heads,pos0", [(1, 20, 37), (9, 5, 0), (4, 8, 1000)])
def test_dequant_rope(lib: ctypes.CDLL, t: int, heads: int, pos0: int) -> None:
    rng = np.random.default_rng(heads)
    d = 64
    acc = _acc(rng, t, heads * d, 2560)
    qs = rng.uniform(0.5, 40, t).astype(F32)
    ws = F32(1.7)
    cos, sin = nx.rope_tables(d, 2048, 500000.0)
    out = np.empty((t, heads * d), F32)
    lib.tb_dequant_rope64(P(acc), P(qs), F(ws), CI(t), CI(heads), CI(pos0), P(cos), P(sin), P(out))
    y = nx.dequantize(acc, qs, ws).reshape(t, heads, d)
    ref = nx.rope(y, cos[pos0:pos0 + t], sin[pos0:pos0 + t]).reshape(t, -1)
    m = _mism(out, ref)
    print(f"dequant_rope t={t} heads={heads} pos0={pos0}: {m} mismatches")
    assert m == 0


def test_rope_from_f32(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(3)
    t, heads, d, pos0 = 3, 4, 128, 5
    y = rng.standard_normal((t, heads * d)).astype(F32) * 3
    cos, sin = nx.rope_tables(d, 64, 10000.0)
    out = np.empty_like(y)
    lib.tb_rope128_f32(P(y), CI(t), CI(heads), CI(pos0), P(cos), P(sin), P(out))
    ref = nx.rope(y.reshape(t, heads, d), cos[pos0:pos0 + t], sin[pos0:pos0 + t]).reshape(t, -1)
    assert _mism(out, ref) == 0


@pytest.mark.parametrize("act", ["relu2", "silu"])
@pytest.mark.parametrize("subln", [True, False])
@pytest.mark.parametrize("n,t", [(6912, 2), (688, 16)])
def test_glu_subln_quantize(lib: ctypes.CDLL, act: str, subln: bool, n: int, t: int) -> None:
    rng = np.random.default_rng(n + t + subln)
    ga, ua = _acc(rng, t, n, 2560), _acc(rng, t, n, 2560)
    ga[0, :50] = 0
    qs = rng.uniform(0.5, 40, t).astype(F32)
    sg_, su_ = F32(0.9), F32(2.3)
    sub = rng.uniform(0.5, 1.5, n).astype(F32)
    q = np.empty((t, n), np.int8)
    qso = np.empty(t, F32)
    tap = np.empty((t, n), F32)
    lib.tb_glu(CI(0 if act == "relu2" else 1), P(ga), P(ua), P(qs), F(sg_), F(su_), CI(subln), P(sub), F(EPS),
               CI(t), CI(n), P(q), P(qso), P(tap))
    g = nx.dequantize(ga, qs, sg_)
    u = nx.dequantize(ua, qs, su_)
    f = (nx.relu2(g) if act == "relu2" else nx.silu(g)) * u
    q_ref, qs_ref = nx.quantize(nx.rmsnorm(f, sub, EPS, 16) if subln else f)
    m = _mism(tap, f.astype(F32)) + _mism(q, q_ref) + _mism(qso, qs_ref)
    print(f"glu {act} subln={subln} n={n} t={t}: {m} mismatches")
    assert m == 0


@pytest.mark.parametrize("next_norm", [True, False])
def test_residual_norm_quantize(lib: ctypes.CDLL, next_norm: bool) -> None:
    rng = np.random.default_rng(11)
    t, n = 7, 2560
    acc = _acc(rng, t, n, 6912)
    qs = rng.uniform(0.5, 40, t).astype(F32)
    ws = F32(1.3)
    h = rng.standard_normal((t, n)).astype(F32) * 4
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    h_ref = (h + nx.dequantize(acc, qs, ws)).astype(F32)
    q = np.zeros((t, n), np.int8)
    qso = np.zeros(t, F32)
    lib.tb_residual(P(acc), P(qs), F(ws), P(h), CI(next_norm), P(g), F(EPS), CI(t), CI(n), P(q), P(qso))
    m = _mism(h, h_ref)
    if next_norm:
        q_ref, qs_ref = nx.quantize(nx.rmsnorm(h_ref, g, EPS, 16))
        m += _mism(q, q_ref) + _mism(qso, qs_ref)
    else:
        assert not q.any()
    print(f"residual next_norm={next_norm}: {m} mismatches")
    assert m == 0
