"""ONNX export + onnxruntime backend vs the golden model (and the torch reference)."""

from __future__ import annotations

from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgellm.errors import EdgeLLMError
from edgellm.models import onnx_export
from edgellm.models.backend import make_backend
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.onnx_export import build_onnx, export_onnx
from edgellm.models.ort_runner import OrtBackend
from edgellm.models.random_model import random_model
from edgellm.models.weights import Int8Head, QuantModel

VARIANTS = {  # (act, subln, tied_embeddings)
    "relu2-subln": ("relu2", True, True),
    "silu-plain-untied": ("silu", False, False),
}
N_TF = 300  # teacher-forced tokens


@cache
def model(variant: str) -> QuantModel:
    """Small random model whose LM head is a permuted copy of the embeddings.

    The residual stream of a random model is dominated by the current token's embedding, so logits
    are well separated; the permuted head makes the prediction perm[token] plus what attention and
    the FFN add (varied greedy outputs instead of a copy of the last token)."""
    act, subln, tied = VARIANTS[variant]
    cfg = ModelConfig(hidden_size=128, n_layers=3, n_heads=4, n_kv_heads=2, ffn_size=344,
                      vocab_size=512, max_context=1024, act=act, subln=subln, tied_embeddings=tied)
    qm = random_model(cfg, seed=0)
    perm = np.random.default_rng(7).permutation(cfg.vocab_size)
    e = qm.embed_rows(np.arange(cfg.vocab_size))
    head = np.empty_like(e)
    head[perm] = e  # head row perm[j] = embedding j
    qm.lm_head = Int8Head.quantize(head)
    return qm


def tokens(n: int, seed: int = 3) -> np.ndarray:
    """Varied random token ids."""
    return np.random.default_rng(seed).integers(0, 512, n)


def greedy(backend: object, prompt: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
    """n greedy tokens after prompt; returns the tokens and the logits of each decode step."""
    backend.reset()
    lg = backend.forward(prompt)
    out, steps = [], []
    for _ in range(n):
        t = int(lg[-1].argmax())
        out.append(t)
        lg = backend.forward(np.array([t]))
        steps.append(lg[0])
    return out, np.array(steps)


def compare(name: str, ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """Print and return (max abs logit difference, top-1 agreement)."""
    diff = float(np.abs(ref - got).max())
    agree = float((ref.argmax(-1) == got.argmax(-1)).mean())
    print(f"{name}: max|dlogit| {diff:.4g} (max|logit| {np.abs(ref).max():.4g}), "
          f"top-1 agreement {100 * agree:.2f}% over {len(ref)} tokens")
    return diff, agree


# ---------------------------------------------------------------- graph


def test_graph_checks_and_int8_matmuls() -> None:
    qm = model("relu2-subln")
    m = build_onnx(qm)
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({t.name: t.data_type for t in m.graph.initializer})
    mmi = [n for n in m.graph.node if n.op_type == "MatMulInteger"]
    assert len(mmi) == 4 * qm.config.n_layers + 1  # qkv, o, gate_up, down per layer + lm_head
    for n in mmi:
        assert len(n.input) == 2  # no zero points
        assert [types[x] for x in n.input] == [TensorProto.INT8, TensorProto.INT8], n.input
    inits = {t.name: t for t in m.graph.initializer}
    assert onnx.numpy_helper.to_array(inits["layers.0.qkv.weight"]).min() >= -1
    # float MatMul only inside attention (scores and values), never on weights
    mm = [n for n in m.graph.node if n.op_type == "MatMul"]
    assert len(mm) == 2 * qm.config.n_layers
    assert not any(x in inits for n in mm for x in n.input)


def test_matmulinteger_int8_exact() -> None:
    """int8 x int8 MatMulInteger is exact on this CPU, extreme values included (LM-head sizes)."""
    k = 2560
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mmi",
                          [helper.make_tensor_value_info("a", TensorProto.INT8, [None, k]),
                           helper.make_tensor_value_info("b", TensorProto.INT8, [k, None])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [None, None])])
    ops = [helper.make_opsetid("", 17)]
    m = helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (5, k)).astype(np.int8)
    a[0], a[1] = -128, 127
    b = rng.integers(-127, 128, (k, 33)).astype(np.int8)
    b[:, 0], b[:, 1] = -127, 127
    want = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(s.run(None, {"a": a, "b": b})[0], want)


# ---------------------------------------------------------------- golden vs onnxruntime


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_golden_vs_onnx_teacher_forced(variant: str) -> None:
    qm = model(variant)
    toks = tokens(N_TF)
    ref = make_backend("golden", qm).forward(toks, all_logits=True)
    got = make_backend("onnx", qm).forward(toks, all_logits=True)
    assert got.shape == (N_TF, 512) and got.dtype == np.float32
    diff, agree = compare(f"golden vs onnx [{variant}]", ref, got)
    assert agree >= 0.99
    assert diff <= 0.02 * np.abs(ref).max()


def test_fast_graph_is_bit_identical() -> None:
    """fast=True: ternary linears are uint8 (zero point 128) x int8, the head stays int8 x int8,
    and the logits equal the int8 x int8 graph's bit for bit."""
    qm = model("silu-plain-untied")
    m = build_onnx(qm, fast=True)
    onnx.checker.check_model(m, full_check=True)
    inits = {t.name: t for t in m.graph.initializer}
    mmi = [n for n in m.graph.node if n.op_type == "MatMulInteger"]
    assert [len(n.input) for n in mmi] == [3] * (4 * qm.config.n_layers) + [2]
    for n in mmi[:-1]:
        assert onnx.numpy_helper.to_array(inits[n.input[2]]).tolist() == 128
        assert inits[n.input[1]].data_type == TensorProto.INT8
    toks = tokens(64)
    fast = OrtBackend(qm, fast=True)
    np.testing.assert_array_equal(fast.forward(toks[:60], all_logits=True),
                                  OrtBackend(qm).forward(toks[:60], all_logits=True))
    slow = OrtBackend(qm)
    slow.forward(toks[:60])
    for t in toks[60:]:
        np.testing.assert_array_equal(fast.forward(np.array([t])), slow.forward(np.array([t])))


@pytest.mark.parametrize("decode", [False, True])
def test_layer0_stages_match_golden(decode: bool) -> None:
    """Before the first requantization of a rounding difference, ONNX matches golden to ~ulps:
    the quantized input exactly, q/k (RoPE), v and attention output to 1e-5 (prefill and decode)."""
    qm = model("relu2-subln")
    toks = tokens(40)
    taps: dict[str, np.ndarray] = {}
    gm = GoldenModel(qm)
    gm.forward(toks, gm.new_cache(), tap=lambda n, a: taps.setdefault(n, a))
    ob = OrtBackend(qm, taps=True, fast=decode)
    if decode:  # 39 positions in the cache, then one decode step at position 39
        ob.forward(toks[:39])
        ob.forward(toks[39:])
        taps = {n: a[-1:] for n, a in taps.items()}
    else:
        ob.forward(toks)
    got = ob.last_taps
    np.testing.assert_array_equal(got["embed"], taps["embed"])
    np.testing.assert_array_equal(got["L0.attn_in_q"], taps["L0.attn_in_q"])
    for name in ("L0.q_rope", "L0.k_rope", "L0.v", "L0.attn"):
        assert got[name].shape == taps[name].shape
        np.testing.assert_allclose(got[name], taps[name], rtol=0, atol=1e-5, err_msg=name)


def test_prefill_vs_decode_consistency() -> None:
    qm = model("relu2-subln")
    toks = tokens(48)
    ob = OrtBackend(qm)
    full = ob.forward(toks, all_logits=True)
    ob.reset()
    parts = [ob.forward(toks[:32], all_logits=True)]
    parts += [ob.forward(toks[i:i + 1], all_logits=True) for i in range(32, 48)]
    assert ob.length == 48
    step = np.concatenate(parts)
    diff, agree = compare("onnx prefill vs prefill+decode", full, step)
    assert agree == 1.0 and diff < 1e-3
    # negative control: a decode step at the wrong position must not pass the same check
    ob.reset()
    ob.forward(toks[:32])
    ob._length = 31
    wrong = ob.forward(toks[32:33])
    assert np.abs(wrong[0] - full[32]).max() > 1e-2


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_greedy_identical(variant: str) -> None:
    qm = model(variant)
    prompt = tokens(8, seed=11)
    g_tok, g_lg = greedy(make_backend("golden", qm), prompt, 64)
    o_tok, o_lg = greedy(make_backend("onnx", qm), prompt, 64)
    compare(f"greedy decode steps golden vs onnx [{variant}]", g_lg, o_lg)
    print("greedy tokens:", g_tok)
    assert len(set(g_tok)) >= 16  # a varied continuation, not a repeated token
    assert g_tok == o_tok


# ---------------------------------------------------------------- torch vs onnxruntime


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_vs_onnx(variant: str) -> None:
    pytest.importorskip("torch", reason="torch reference needs torch")
    qm = model(variant)
    toks = tokens(N_TF)
    ref = make_backend("torch", qm).forward(toks, all_logits=True)
    got = make_backend("onnx", qm).forward(toks, all_logits=True)
    diff, agree = compare(f"torch vs onnx [{variant}]", ref, got)
    assert agree >= 0.99
    assert diff <= 0.02 * np.abs(ref).max()
    prompt = tokens(8, seed=11)
    assert greedy(make_backend("torch", qm), prompt, 64)[0] == greedy(OrtBackend(qm), prompt, 64)[0]


# ---------------------------------------------------------------- files and errors


@pytest.mark.parametrize("external", [False, True])
def test_export_file_roundtrip(tmp_path, monkeypatch, external: bool) -> None:
    qm = model("silu-plain-untied")
    if external:
        monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    path = export_onnx(qm, tmp_path / "m" / "model.onnx")
    assert (tmp_path / "m" / "model.onnx.data").is_file() == external
    onnx.checker.check_model(str(path))
    ob = OrtBackend(path)
    assert ob.config == qm.config
    toks = tokens(20)
    np.testing.assert_array_equal(ob.forward(toks, all_logits=True),
                                  OrtBackend(qm).forward(toks, all_logits=True))


def test_backend_large_model_path(monkeypatch) -> None:
    """A QuantModel over the in-memory limit goes through a temporary external-data file."""
    qm = model("relu2-subln")
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    ob = OrtBackend(qm)
    assert ob._tmp is not None
    toks = tokens(10)
    monkeypatch.undo()
    np.testing.assert_array_equal(ob.forward(toks), OrtBackend(qm).forward(toks))


def test_errors(tmp_path) -> None:
    qm = model("relu2-subln")
    ob = OrtBackend(qm)
    with pytest.raises(EdgeLLMError, match="out of range"):
        ob.forward(np.array([0, 512]))
    with pytest.raises(EdgeLLMError, match="empty"):
        ob.forward(np.array([], np.int64))
    with pytest.raises(EdgeLLMError, match="exceeds the context"):
        ob.forward(np.zeros(1025, np.int64))
    assert ob.length == 0
    with pytest.raises(EdgeLLMError, match="opset"):
        build_onnx(qm, opset=13)
    with pytest.raises(EdgeLLMError, match="not found"):
        OrtBackend(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgeLLMError, match="junk.onnx"):
        OrtBackend(tmp_path / "junk.onnx")
    m = build_onnx(qm)
    del m.metadata_props[:]
    onnx.save_model(m, str(tmp_path / "nometa.onnx"))
    with pytest.raises(EdgeLLMError, match="metadata"):
        OrtBackend(tmp_path / "nometa.onnx")
