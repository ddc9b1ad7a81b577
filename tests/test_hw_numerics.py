"""C simulation of hw/include/edgellm/numerics.h against models/numerics.py, bit for bit."""

import ctypes

import numpy as np
import pytest

from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32
VECS = (1, 4, 16, 64)  # elements per cycle of the rmsnorm / quantize element passes


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "numerics_tb.cpp"], "numerics_tb")


def _bits_equal(a: np.ndarray, b: np.ndarray) -> int:
    """Number of elements whose bit patterns differ."""
    return int((a.view(np.uint32) != b.view(np.uint32)).sum())


def test_exp_bit_exact(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-100, 100, 200001, dtype=F32),
                        rng.standard_normal(100000).astype(F32) * 10,
                        np.array([0.0, -0.0, -87.0, 88.0, -87.0001, 88.0001], F32)])
    y = np.empty_like(x)
    lib.tb_exp(csim.ptr(x), csim.ptr(y), ctypes.c_int(x.size))
    mism = _bits_equal(y, nx.exp(x))
    print(f"exp: {mism} mismatches of {x.size}")
    assert mism == 0
    assert nx.exp(np.array([0.0], F32))[0] == 1.0


def test_silu_bit_exact(lib: ctypes.CDLL) -> None:
    x = np.linspace(-120, 120, 50001, dtype=F32)
    y = np.empty_like(x)
    lib.tb_silu(csim.ptr(x), csim.ptr(y), ctypes.c_int(x.size))
    assert _bits_equal(y, nx.silu(x)) == 0


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 2560])
def test_reduce_and_rmsnorm_bit_exact(lib: ctypes.CDLL, n: int, vec: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((8, n)) * rng.uniform(0.01, 100, (8, 1))).astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    s = np.empty(8, F32)
    lib.tb_reduce_sum16(csim.ptr(x), ctypes.c_int(8), ctypes.c_int(n), csim.ptr(s))
    assert _bits_equal(s, nx.reduce_sum(x, 16)) == 0
    y = np.empty_like(x)
    eps = F32(1e-5)
    assert lib.tb_rmsnorm16(ctypes.c_int(vec), csim.ptr(x), csim.ptr(g), ctypes.c_float(eps), ctypes.c_int(8),
                            ctypes.c_int(n), csim.ptr(y)) == 0
    mism = _bits_equal(y, nx.rmsnorm(x, g, 1e-5, 16))
    print(f"rmsnorm vec={vec} n={n}: {mism} mismatches")
    assert mism == 0


@pytest.mark.parametrize("lanes", (16, 64))
@pytest.mark.parametrize("vec", (1, 2, 4, 8))
def test_reduce_sumsq_lanes_vec(lib: ctypes.CDLL, lanes: int, vec: int) -> None:
    """Standalone reduce_sumsq<lanes, vec> (LaneUnits adders; U < VEC for lanes 16, vec 4 and 8) is the
    contract's reduce_sum(x*x, lanes), on rows whose squares span 2^40 (the order shows in the sum)."""
    rng = np.random.default_rng(lanes + vec)
    x = (rng.standard_normal((16, 1001)) * np.exp2(rng.uniform(-10, 10, (16, 1001)))).astype(F32)
    y = np.full(16, np.nan, F32)
    assert lib.tb_reduce_sumsq_lv(ctypes.c_int(lanes), ctypes.c_int(vec), csim.ptr(x), ctypes.c_int(16),
                                  ctypes.c_int(1001), csim.ptr(y)) == 0
    ref = nx.reduce_sum(x * x, lanes)
    assert _bits_equal(y, ref) == 0
    assert _bits_equal(nx.reduce_sum(x * x, 2 * lanes), ref) > 0  # another lane count differs here


@pytest.mark.parametrize("vec", VECS)
@pytest.mark.parametrize("n", [300, 7, 1])
def test_quantize_exact(lib: ctypes.CDLL, vec: int, n: int) -> None:
    """Rows whose absmax sits in every lane position, negative maxima, ties, -0 and an all-zero row;
    n = 300, 7, 1 are not multiples of 4, 16 or 64 (the last chunk is partial)."""
    rng = np.random.default_rng(1)
    rows = [rng.standard_normal(n) * 3, np.zeros(n), np.full(n, 1e-7), np.full(n, -5.0),
            np.r_[np.full(n - 1, 0.5), 1.0], (np.arange(n) - n // 2) / 300.0, np.full(n, -0.0)]
    for k in sorted({0, 1, 3, 5, 15, 17, 63, 64, 65, n - 2, n - 1} & set(range(n))):
        r = rng.uniform(-1, 1, n)
        r[k] = -2.5 if k % 2 else 2.5  # the absmax at index k (lane k % vec)
        rows.append(r)
    x = np.stack(rows).astype(F32)
    q = np.empty(x.shape, np.int8)
    qs = np.empty(x.shape[0], F32)
    assert lib.tb_quantize(ctypes.c_int(vec), csim.ptr(x), ctypes.c_int(x.shape[0]), ctypes.c_int(n),
                           csim.ptr(q), csim.ptr(qs)) == 0
    q_ref, qs_ref = nx.quantize(x)
    assert np.array_equal(q, q_ref)
    assert _bits_equal(qs, qs_ref) == 0


def test_unsupported_vec_is_refused(lib: ctypes.CDLL) -> None:
    x = np.zeros((1, 8), F32)
    q, qs = np.zeros((1, 8), np.int8), np.zeros(1, F32)
    assert lib.tb_quantize(ctypes.c_int(8), csim.ptr(x), ctypes.c_int(1), ctypes.c_int(8), csim.ptr(q),
                           csim.ptr(qs)) == -1


def _f16_boundary_bits() -> np.ndarray:
    """f32 bit patterns at every binary16 rounding boundary: for each of the 2^15 magnitudes h (both
    signs), the f32 values h, the midpoint to h+1 (a tie) and its two f32 neighbours, h's own f32
    neighbours; plus zeros, inf, NaNs, the overflow threshold and values below the subnormal range."""
    h = np.arange(0x7C00, dtype=np.uint16)  # every finite non-negative binary16
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)  # 0x7c00 is inf: the overflow midpoint 65520
    hi[-1] = 65536.0
    mid = ((lo + hi) / 2).astype(F32)  # exact in f32 (binary16 midpoints need 12 significant bits)
    v = lo.astype(F32).view(np.uint32)
    mb = mid.view(np.uint32)
    cand = np.concatenate([v, v + 1, v - 1, mb, mb + 1, mb - 1]).astype(np.int64)
    special = np.array([0x0, 0x7F800000, 0x7F800001, 0x7FC00000, 0x7F802000, 0x7F801FFF, 0x7FFFFFFF,
                        0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000, 0x7F7FFFFF, 0x33000000,
                        0x33000001, 0x32FFFFFF, 0x33800000, 0x337FFFFF, 0x00000001, 0x007FFFFF,
                        0x38800000, 0x387FFFFF, 0x387FF000, 0x387FEFFF], np.int64)
    cand = np.concatenate([cand, special]) & 0x7FFFFFFF
    cand = np.unique(cand).astype(np.uint32)
    return np.concatenate([cand, cand | np.uint32(0x80000000)])


def test_f32_to_f16_bit_exact_vs_numpy(lib: ctypes.CDLL) -> None:
    """numerics_scalar.h f32_to_f16 == numpy astype(float16) on every binary16 boundary case and 10^6
    random f32 bit patterns (all exponents, NaNs included)."""
    rng = np.random.default_rng(16)
    x = np.concatenate([_f16_boundary_bits(), rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint64)
                        .astype(np.uint32)])
    y = np.empty(x.size, np.uint16)
    lib.tb_f32_to_f16(csim.ptr(x), csim.ptr(y), ctypes.c_long(x.size))
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.view(F32).astype(np.float16).view(np.uint16)
    mism = int((y != ref).sum())
    f = x.view(F32)
    print(f"f32->f16: {mism} mismatches of {x.size} ({int(np.isnan(f).sum())} NaN, "
          f"{int((np.abs(f) >= 65520).sum())} overflow, "
          f"{int(((np.abs(f) < 2.0**-14) & (f != 0)).sum())} subnormal/underflow inputs)")
    assert mism == 0
    assert np.array_equal(nx.kv_store(x.view(F32), "f16").view(np.uint16), ref)


def test_f16_to_f32_exact_all_patterns(lib: ctypes.CDLL) -> None:
    """Widening is exact on all 2^16 binary16 patterns (subnormals, inf, NaN payloads)."""
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    y = np.empty(h.size, np.uint32)
    lib.tb_f16_to_f32(csim.ptr(h), csim.ptr(y), ctypes.c_long(h.size))
    mism = int((y != h.view(np.float16).astype(F32).view(np.uint32)).sum())
    print(f"f16->f32: {mism} mismatches of {h.size}")
    assert mism == 0


def test_kv_element_round_trip(lib: ctypes.CDLL) -> None:
    """kv_elem<f32> is the identity, kv_elem<f16> store+load = golden kv_load(kv_store(., 'f16'))."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(10000) * 3, [70000.0, -1e-6, 6.1e-5, 2.0**-25]]).astype(F32)
    y32, y16 = np.empty_like(x), np.empty_like(x)
    lib.tb_kv_roundtrip(csim.ptr(x), csim.ptr(y32), csim.ptr(y16), ctypes.c_long(x.size))
    assert _bits_equal(y32, x) == 0
    assert _bits_equal(y16, nx.kv_load(nx.kv_store(x, "f16"))) == 0
    assert _bits_equal(y16, x) > 0  # the f16 cache does round
