"""models/lowbit.py: GroupQuant validation and the W{b}A8 linear's contract (docs/numerics.md)."""

import numpy as np
import pytest
from shared_fixtures import scale_terms_first

from edgellm.errors import CheckpointError
from edgellm.models import lowbit as lb
from edgellm.models import numerics as nx

F32 = np.float32


def _random_gq(rng: np.random.Generator, out: int, n_in: int, bits: int, group: int) -> lb.GroupQuant:
    codes = rng.integers(0, 1 << bits, size=(out, n_in), dtype=np.uint8)
    ng = n_in // group
    scales = (rng.random((out, ng)) * 0.02 + 1e-4).astype(F32)
    mins = (-(rng.random((out, ng)) * 0.1)).astype(F32)
    return lb.GroupQuant(codes, scales, mins, bits, group)


def _scalar_contract(q: np.ndarray, qs: np.ndarray, w: lb.GroupQuant) -> np.ndarray:
    """The contract written out one scalar f32 operation at a time (slow; small shapes only)."""
    t_n, out = q.shape[0], w.shape[0]
    y = np.zeros((t_n, out), F32)
    for t in range(t_n):
        for o in range(out):
            acc = F32(0.0)
            for g in range(w.n_groups):
                sl = slice(g * w.group, (g + 1) * w.group)
                p = int(np.dot(w.codes[o, sl].astype(np.int64), q[t, sl].astype(np.int64)))
                s = int(q[t, sl].astype(np.int64).sum())
                acc = F32(F32(acc + F32(w.scales[o, g] * F32(p))) + F32(w.mins[o, g] * F32(s)))
            y[t, o] = F32(acc / qs[t])
    return y


@pytest.mark.parametrize("bits,group", [(2, 16), (3, 32), (4, 32), (5, 64), (6, 128), (8, 256)])
def test_linear_equals_scalar_contract(bits: int, group: int) -> None:
    rng = np.random.default_rng(bits * 1000 + group)
    w = _random_gq(rng, 7, 2 * group, bits, group)
    q, qs = nx.quantize(rng.standard_normal((3, 2 * group)).astype(F32))
    y = lb.lowbit_linear(q, qs, w)
    ref = _scalar_contract(q, qs, w)
    assert y.dtype == F32
    assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("bits,group", [(2, 32), (4, 32), (4, 128), (6, 16), (8, 64)])
def test_linear_close_to_float64(bits: int, group: int) -> None:
    rng = np.random.default_rng(bits + group)
    w = _random_gq(rng, 48, 512, bits, group)
    x = rng.standard_normal((5, 512)).astype(F32)
    q, qs = nx.quantize(x)
    y = lb.lowbit_linear(q, qs, w)
    ref = (q.astype(np.float64) @ w.dequantize().astype(np.float64).T) / qs.astype(np.float64)[:, None]
    scale = np.abs(ref).max()
    assert np.abs(y - ref).max() <= 1e-5 * scale


def test_dequantize_order_is_multiply_then_add() -> None:
    rng = np.random.default_rng(3)
    w = _random_gq(rng, 16, 64, 5, 32)
    s = np.repeat(w.scales, 32, axis=1)
    m = np.repeat(w.mins, 32, axis=1)
    want = (s * w.codes.astype(F32)) + m
    assert np.array_equal(w.dequantize().view(np.uint32), want.view(np.uint32))
    assert w.dequantize().dtype == F32


def test_product_bound_is_exact_at_the_extremes() -> None:
    # Worst case: every code 255, every activation -128, group 256: |P| = 8,355,840 < 2^24.
    w = lb.GroupQuant(np.full((2, 256), 255, np.uint8), np.ones((2, 1), F32), np.zeros((2, 1), F32), 8, 256)
    q = np.full((1, 256), -128, np.int8)
    p = lb.group_products(q, w, 0)
    assert p.dtype == np.int32 and int(p[0, 0]) == -255 * 128 * 256
    assert lb.P_BOUND == 255 * 128 * 256 < 1 << 24
    assert int(lb.group_sums(q, 256)[0, 0]) == -128 * 256


def test_group_order_matters() -> None:
    """A different association (all scale terms first, then all offset terms) changes some output:
    the scalar-contract test above can tell the orders apart."""
    rng = np.random.default_rng(11)
    w = _random_gq(rng, 64, 512, 4, 32)
    q, qs = nx.quantize(rng.standard_normal((4, 512)).astype(F32))
    y = lb.lowbit_linear(q, qs, w)
    assert (scale_terms_first(q, qs, w).view(np.uint32) != y.view(np.uint32)).any()
    s_all = lb.group_sums(q, 32).astype(F32)
    rev = np.zeros_like(y)
    for g in reversed(range(w.n_groups)):
        rev = (rev + w.scales[None, :, g] * lb.group_products(q, w, g).astype(F32)) \
            + w.mins[None, :, g] * s_all[:, g:g + 1]
    assert ((rev / qs[:, None]).view(np.uint32) != y.view(np.uint32)).any()


def test_leading_dims() -> None:
    rng = np.random.default_rng(5)
    w = _random_gq(rng, 8, 64, 3, 16)
    q, qs = nx.quantize(rng.standard_normal((2, 3, 64)).astype(F32))
    y = lb.lowbit_linear(q, qs, w)
    assert y.shape == (2, 3, 8)
    assert np.array_equal(y.reshape(6, 8), lb.lowbit_linear(q.reshape(6, 64), qs.reshape(6), w))


def test_rtn_round_trip() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 128)).astype(F32)
    for sym in (False, True):
        w = lb.quantize_rtn(x, 4, 32, symmetric=sym)
        err = np.abs(w.dequantize() - x).max()
        step = float(w.scales.max())
        assert err <= step * (1.0 if sym else 0.51)


@pytest.mark.parametrize("kw,msg", [
    ({"bits": 1}, "bits must be one of 2, 3, 4, 5, 6, 7, 8, got 1"),
    ({"bits": 9}, "bits must be one of 2, 3, 4, 5, 6, 7, 8, got 9"),
    ({"group": 48}, "group must be one of"),
    ({"codes": np.full((4, 64), 16, np.uint8)}, "does not fit 4 bits"),
    ({"codes": np.zeros((4, 64), np.int8)}, "codes must be uint8"),
    ({"scales": np.ones((4, 2), np.float64)}, "scales must be float32"),
    ({"mins": np.ones((4, 3), F32)}, "mins shape"),
    ({"scales": np.full((4, 2), np.inf, F32)}, "non-finite"),
    ({"codes": np.zeros((4, 48), np.uint8), "scales": np.ones((4, 1), F32), "mins": np.ones((4, 1), F32)},
     "not a positive multiple"),
])
def test_validation_errors(kw: dict, msg: str) -> None:
    base = {"codes": np.zeros((4, 64), np.uint8), "scales": np.ones((4, 2), F32),
            "mins": np.zeros((4, 2), F32), "bits": 4, "group": 32}
    base.update(kw)
    with pytest.raises(CheckpointError, match=msg) as e:
        lb.GroupQuant(**base)
    assert "\n" not in str(e.value)


def test_linear_input_errors() -> None:
    w = lb.GroupQuant(np.zeros((4, 64), np.uint8), np.ones((4, 2), F32), np.zeros((4, 2), F32), 4, 32)
    with pytest.raises(CheckpointError, match="int8"):
        lb.lowbit_linear(np.zeros((1, 64), np.int16), np.ones(1, F32), w)
    with pytest.raises(CheckpointError, match="width"):
        lb.lowbit_linear(np.zeros((1, 32), np.int8), np.ones(1, F32), w)
