"""The fp16 KV cache option of the numerics contract (NumericsPlan.kv_dtype = "f16"): golden model
semantics, prefill/decode equivalence, and the onnxruntime and torch references with the same
rounding (the HLS kernels are checked in test_hw_numerics / test_hw_attention / test_hw_layer /
test_top)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.numerics import F32, NumericsPlan
from edgellm.models.random_model import random_model
from edgellm.models.weights import Int8Head, QuantModel

F16 = NumericsPlan.for_head_dim(32, kv_dtype="f16")
F32_PLAN = NumericsPlan.for_head_dim(32)


@cache
def model(act: str = "relu2", subln: bool = True) -> QuantModel:
    """Small random model with a permuted-embedding head (varied greedy tokens, as test_onnx)."""
    cfg = ModelConfig(hidden_size=128, n_layers=3, n_heads=4, n_kv_heads=2, ffn_size=344,
                      vocab_size=512, max_context=512, act=act, subln=subln)
    qm = random_model(cfg, seed=0)
    perm = np.random.default_rng(7).permutation(cfg.vocab_size)
    e = qm.embed_rows(np.arange(cfg.vocab_size))
    head = np.empty_like(e)
    head[perm] = e
    qm.lm_head = Int8Head.quantize(head)
    return qm


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, F32).view(np.uint32)


def test_plan_option() -> None:
    assert NumericsPlan().kv_dtype == "f32" and NumericsPlan().kv_elem_bytes == 4
    assert F16.kv_elem_bytes == 2 and F16.kv_np_dtype is np.float16
    assert NumericsPlan(**F16.to_dict()) == F16  # manifest round trip
    with pytest.raises(ValueError, match="kv_dtype"):
        NumericsPlan(kv_dtype="bf16")


def test_kv_store_is_numpy_rne() -> None:
    x = np.array([1.0, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 65519.0, 65520.0, -70000.0, 2.0**-25,
                  3 * 2.0**-26, 1e-7, -0.0, np.inf], F32)  # 1e-7 = 1.68 * 2^-24
    got = nx.kv_store(x, "f16")
    assert got.dtype == np.float16
    want = [1.0, 1.0, 1.0 + 2.0**-9, 65504.0, np.inf, -np.inf, 0.0, 2.0**-24, 2.0**-23, -0.0, np.inf]
    assert np.array_equal(got.astype(np.float64), np.array(want))
    assert np.signbit(got[9])
    assert np.array_equal(bits(nx.kv_store(x, "f32")), bits(x))


def test_golden_cache_stores_f16_and_attention_reads_rounded() -> None:
    qm = model()
    g16, g32 = GoldenModel(qm, F16), GoldenModel(qm, F32_PLAN)
    c16, c32 = g16.new_cache(64), g32.new_cache(64)
    assert c16.k.dtype == np.float16 and c32.k.dtype == np.float32
    toks = np.random.default_rng(1).integers(0, 512, 20)
    taps: dict[str, np.ndarray] = {}
    l16 = g16.forward(toks, c16, tap=lambda n, a: taps.__setitem__(n, np.array(a)))
    l32 = g32.forward(toks, c32)
    # the cache holds the rounded K (after RoPE) and V taps, exactly
    assert np.array_equal(c16.k[0, :20], nx.kv_store(taps["L0.k_rope"], "f16"))
    assert np.array_equal(c16.v[2, :20], nx.kv_store(taps["L2.v"], "f16"))
    # layer 0's K/V are the same in both (computed before any attention); the caches differ by rounding
    assert np.array_equal(c16.k[0, :20].astype(F32), c32.k[0, :20].astype(np.float16).astype(F32))
    d = float(np.abs(l16 - l32).max())
    print(f"f16 vs f32 KV cache: max|dlogit| {d:.3g}, top-1 agreement "
          f"{100 * float((l16.argmax(-1) == l32.argmax(-1)).mean()):.1f}%")
    assert d > 0  # rounding is applied, the current tokens' own K/V included
    assert np.allclose(l16, l32, atol=0.05 * float(np.abs(l32).max()))


@pytest.mark.parametrize("act,subln", [("relu2", True), ("silu", False)])
def test_golden_prefill_equals_prefill_plus_decode_f16(act: str, subln: bool) -> None:
    """One prefill of N tokens == a prefill of P then N-P single-token decodes, bit for bit."""
    gm = GoldenModel(model(act, subln), F16)
    toks = np.random.default_rng(2).integers(0, 512, 40)
    full_cache = gm.new_cache(64)
    full = gm.forward(toks, full_cache)
    c = gm.new_cache(64)
    rows = [gm.forward(toks[:23], c)]
    rows += [gm.forward(toks[i:i + 1], c) for i in range(23, 40)]
    steps = np.concatenate(rows)
    mism = int((bits(steps) != bits(full)).sum())
    kv = int((full_cache.k.view(np.uint16) != c.k.view(np.uint16)).sum() +
             (full_cache.v.view(np.uint16) != c.v.view(np.uint16)).sum())
    print(f"f16 {act}: prefill(40) vs prefill(23)+17 decodes: {mism} logit, {kv} KV mismatches")
    assert mism == 0 and kv == 0
