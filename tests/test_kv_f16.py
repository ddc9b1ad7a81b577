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


# ---------------------------------------------------------------- onnxruntime and torch references

EDGE = np.array([1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, -(1.0 + 2.0**-11), 65504.0, 65519.99, 65520.0,
                 -65520.0, 1e6, 2.0**-14, 2.0**-14 * (1 - 2.0**-11), 2.0**-24, 2.0**-25, 3 * 2.0**-26,
                 2.0**-25 * 1.0000001, 1e-30, 0.0, -0.0, np.inf, -np.inf], F32)


def _edge_and_random() -> np.ndarray:
    rng = np.random.default_rng(9)
    r = (rng.standard_normal(20000) * np.exp2(rng.integers(-30, 20, 20000))).astype(F32)
    return np.concatenate([EDGE, r])


def test_onnx_cast_and_torch_half_are_the_contract_rounding() -> None:
    """ONNX Cast float->float16->float (onnxruntime) and torch .half().float() round exactly as
    kv_store/kv_load (numpy astype, round to nearest even) on ties, subnormals, overflow, +-0, inf."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from edgellm.models.onnx_export import GraphBuilder, kv_round

    g = GraphBuilder(17)
    y = kv_round(g, "x", "f16")
    graph = helper.make_graph(g.nodes + [helper.make_node("Identity", [y], ["y"])], "cast", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = _edge_and_random()
    want = bits(nx.kv_load(nx.kv_store(x, "f16")))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0]
    t = torch.from_numpy(x).half().float().numpy()
    print(f"cast f32->f16->f32 of {x.size}: onnxruntime {int((bits(got) != want).sum())}, "
          f"torch {int((bits(t) != want).sum())} mismatches")
    assert np.array_equal(bits(got), want) and np.array_equal(bits(t), want)


def _compare(name: str, ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    diff = float(np.abs(ref - got).max())
    agree = float((ref.argmax(-1) == got.argmax(-1)).mean())
    print(f"{name}: max|dlogit| {diff:.4g} (max|logit| {np.abs(ref).max():.4g}), "
          f"top-1 agreement {100 * agree:.2f}% over {len(ref)} tokens")
    return diff, agree


@pytest.mark.parametrize("act,subln", [("relu2", True), ("silu", False)])
def test_onnx_and_torch_f16_vs_golden_f16(act: str, subln: bool) -> None:
    """Teacher-forced prefill of 300 tokens: onnxruntime and torch with the f16 rounding vs the f16
    golden model: >= 99% top-1 agreement, logits within 2% of their range; the rounded present K/V
    of onnxruntime are exactly kv_store of its own K/V taps."""
    from edgellm.models.ort_runner import OrtBackend
    from edgellm.models.torch_ref import TorchBackend

    qm = model(act, subln)
    toks = np.random.default_rng(3).integers(0, 512, 300)
    gm = GoldenModel(qm, F16)
    ref = gm.forward(toks, gm.new_cache())
    ob = OrtBackend(qm, taps=True, kv_dtype="f16")
    got = ob.forward(toks, all_logits=True)
    assert np.array_equal(ob._past["past_key_1"], nx.kv_load(nx.kv_store(ob.last_taps["L1.k_rope"], "f16")))
    assert np.array_equal(ob._past["past_value_2"], nx.kv_load(nx.kv_store(ob.last_taps["L2.v"], "f16")))
    tb = TorchBackend(qm, kv_dtype="f16").forward(toks, all_logits=True)
    for name, other in (("onnx", got), ("torch", tb)):
        diff, agree = _compare(f"golden f16 vs {name} f16 [{act}]", ref, other)
        assert agree >= 0.99
        assert diff <= 0.02 * np.abs(ref).max()


def test_greedy_golden_f16_equals_onnx_f16() -> None:
    """64 greedy tokens after an 8-token prompt, prefill then decode, identical."""
    from edgellm.models.ort_runner import OrtBackend

    qm = model()
    prompt = np.random.default_rng(11).integers(0, 512, 8)
    gm = GoldenModel(qm, F16)
    cache = gm.new_cache()
    ob = OrtBackend(qm, kv_dtype="f16")
    lg, lo = gm.forward(prompt, cache, all_logits=False), ob.forward(prompt)
    g_tok, o_tok = [], []
    for _ in range(64):
        g_tok.append(int(lg[-1].argmax()))
        o_tok.append(int(lo[-1].argmax()))
        lg = gm.forward(np.array(g_tok[-1:]), cache)
        lo = ob.forward(np.array(o_tok[-1:]))
    print("f16 greedy tokens:", g_tok)
    assert len(set(g_tok)) >= 16 and g_tok == o_tok


def test_default_references_unchanged() -> None:
    """Without kv_dtype the export and torch model have no rounding (the f32 behaviour)."""
    from edgellm.models.onnx_export import KV_DTYPE_KEY, build_onnx
    from edgellm.models.torch_ref import TorchModel

    m = build_onnx(model())
    assert not [n for n in m.graph.node if n.op_type == "Cast" and n.attribute[0].i == 10]  # FLOAT16
    assert {p.key: p.value for p in m.metadata_props}[KV_DTYPE_KEY] == "f32"
    m16 = build_onnx(model(), kv_dtype="f16")
    assert len([n for n in m16.graph.node if n.op_type == "Cast" and n.attribute[0].i == 10]) == 2 * 3
    assert not any(b.kv_f16 for b in TorchModel.from_quant(model()).blocks)
