"""C simulation of hw/include/edgellm/numerics.h against models/numerics.py, bit for bit."""

import ctypes

import numpy as np
import pytest

from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32


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


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 2560])
def test_reduce_and_rmsnorm_bit_exact(lib: ctypes.CDLL, n: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((8, n)) * rng.uniform(0.01, 100, (8, 1))).astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    s = np.empty(8, F32)
    lib.tb_reduce_sum16(csim.ptr(x), ctypes.c_int(8), ctypes.c_int(n), csim.ptr(s))
    assert _bits_equal(s, nx.reduce_sum(x, 16)) == 0
    y = np.empty_like(x)
    eps = F32(1e-5)
    lib.tb_rmsnorm16(csim.ptr(x), csim.ptr(g), ctypes.c_float(eps), ctypes.c_int(8),
                     ctypes.c_int(n), csim.ptr(y))
    mism = _bits_equal(y, nx.rmsnorm(x, g, 1e-5, 16))
    print(f"rmsnorm n={n}: {mism} mismatches")
    assert mism == 0


def test_quantize_exact(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(1)
    rows = [rng.standard_normal(300) * 3, np.zeros(300), np.full(300, 1e-7), np.full(300, -5.0),
            np.r_[np.full(299, 0.5), 1.0], (np.arange(300) - 150) / 300.0]
    x = np.stack(rows).astype(F32)
    q = np.empty(x.shape, np.int8)
    qs = np.empty(x.shape[0], F32)
    lib.tb_quantize(csim.ptr(x), ctypes.c_int(x.shape[0]), ctypes.c_int(300), csim.ptr(q), csim.ptr(qs))
    q_ref, qs_ref = nx.quantize(x)
    assert np.array_equal(q, q_ref)
    assert _bits_equal(qs, qs_ref) == 0
