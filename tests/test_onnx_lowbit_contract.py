"""The contract-order ONNX form of the W{b}A8 linear (models/onnx_contract.py, backend `onnx`): bit for bit
models.lowbit.lowbit_linear for every width and group, every GGUF block type and GPTQ, at every onnxruntime
graph optimization level; whole random low-bit Llama / Qwen2 models of every GGUF mix and GPTQ agree with
golden within verify's tolerance with identical greedy tokens; the MatMulNBits form stays as `onnx-nbits`."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from shared_lowbit_models import tiny_config

from edgellm.errors import EdgeLLMError
from edgellm.models.golden import GoldenModel
from edgellm.models.lowbit import GROUPS, GroupQuant, lowbit_linear
from edgellm.models.onnx_export import GraphBuilder, build_onnx, lowbit_node, q_float, q_uint8
from edgellm.models.random_model import random_float_weights, random_lowbit
from edgellm.models.weights import LowBitLinear

ort = pytest.importorskip("onnxruntime")
LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def _linear_session(lin: LowBitLinear, form: str, offset: bool, level: str):  # -> InferenceSession
    """A graph of one low-bit linear as the model export builds it: inputs q (int8, or uint8 q + 128 with
    offset) (T, K) and qs (T, 1) -> y (T, N)."""
    g = GraphBuilder(17, offset_ternary=offset, lowbit=form)
    qf = q_float(g, "q")
    y = lowbit_node(g, q_uint8(g, "q") if form == "contract" else "", qf, "qs", lin, "lin")
    g.op("Identity", [y], out=["y"])
    k = lin.shape[1]
    graph = helper.make_graph(
        g.nodes, "lin", [helper.make_tensor_value_info("q", TensorProto.UINT8 if offset else TensorProto.INT8,
                                                       ["T", k]),
                         helper.make_tensor_value_info("qs", TensorProto.FLOAT, ["T", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", lin.shape[0]])], g.inits)
    ops = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=8)
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _activations(k: int, t: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int8 q (t, k) with the extremes -128 / 127 present, and per-token scales qs (t,)."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (t, k)).astype(np.int8)
    q[0, :] = -128  # the largest |P| and |S|
    q[1, ::2] = 127
    qs = rng.uniform(0.5, 40.0, t).astype(np.float32)
    return q, qs


def _run(lin: LowBitLinear, q: np.ndarray, qs: np.ndarray, form: str = "contract", offset: bool = False,
         level: str = "all") -> np.ndarray:
    feed = (q.astype(np.int16) + 128).astype(np.uint8) if offset else q
    return _linear_session(lin, form, offset, level).run(None, {"q": feed, "qs": qs[:, None]})[0]


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


@pytest.mark.parametrize("bits", range(2, 9))
def test_contract_linear_is_bit_exact_for_every_width_and_group(bits: int) -> None:
    rng = np.random.default_rng(bits)
    q, qs = _activations(512, seed=bits)
    for group in GROUPS:
        lin = random_lowbit(rng, 40, 512, bits, group)
        want = lowbit_linear(q, qs, lin.quant)
        for offset in (False, True):
            for level in LEVELS:
                got = _run(lin, q, qs, "contract", offset, level)
                assert np.array_equal(_bits(got), _bits(want)), (bits, group, offset, level)


def _gguf_linear(kind: str, rng: np.random.Generator) -> LowBitLinear:
    from edgellm.models.loaders.gguf_quants import decode
    from edgellm.models.loaders.gguf_write import quantize

    w = (rng.standard_normal((32, 512)) * 0.05).astype(np.float32)
    raw = quantize(w, kind)
    return LowBitLinear(decode(kind, raw.reshape(-1), 32, 512, kind), kind)


def _gptq_linear(bits: int, group: int, sym: bool, rng: np.random.Generator) -> LowBitLinear:
    """As models/loaders/gptq.py builds it: s = scales, m = -(s * zero)."""
    from edgellm.models.loaders.gptq_write import rtn_gptq

    w = (rng.standard_normal((32, 512)) * 0.05).astype(np.float32)
    codes, scales, zeros = rtn_gptq(w, bits, group, sym)
    s = np.ascontiguousarray(scales.T, np.float32)
    m = (-(s * zeros.T.astype(np.float32))).astype(np.float32)
    return LowBitLinear(GroupQuant(codes, s, m, bits, group), "gptq")


GGUF_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
GPTQ = [(2, 32, False), (3, 128, True), (4, 64, False), (4, 128, True), (8, 32, True)]


GPTQ_NAMES = [f"gptq-{b}-{g}-{'sym' if s else 'asym'}" for b, g, s in GPTQ]


@pytest.mark.parametrize("codec", [*GGUF_TYPES, *GPTQ_NAMES])
def test_contract_linear_is_bit_exact_for_every_codec(codec: str) -> None:
    """Real codecs' scales and mins (K-quant super-block products, f16 scales, GPTQ zeros)."""
    rng = np.random.default_rng(len(codec))
    if codec.startswith("gptq"):
        _, b, g, s = codec.split("-")
        lin = _gptq_linear(int(b), int(g), s == "sym", rng)
    else:
        lin = _gguf_linear(codec, rng)
    q, qs = _activations(512, seed=7)
    want = lowbit_linear(q, qs, lin.quant)
    assert np.array_equal(_bits(_run(lin, q, qs)), _bits(want)), codec


def test_matmulnbits_form_is_not_the_contract_order() -> None:
    """Why the contract form exists: onnxruntime's MatMulNBits (float sums in its own order) differs from
    lowbit_linear in the last bits for some outputs; the contract form above does not."""
    rng = np.random.default_rng(11)
    q, qs = _activations(512, seed=11)
    lin = random_lowbit(rng, 64, 512, 4, 32)
    want = lowbit_linear(q, qs, lin.quant)
    nbits = _run(lin, q, qs, "nbits")
    assert not np.array_equal(_bits(nbits), _bits(want))
    assert np.abs(nbits - want).max() < 1e-4 * np.abs(want).max()
    assert np.array_equal(_bits(_run(lin, q, qs)), _bits(want))


def test_contract_graph_ops_and_size() -> None:
    """One batched MatMulInteger and one Scan per low-bit linear, whatever the group count (llama-3.2-1b's
    down projection has 256 groups); no com.microsoft op; the form is recorded in the metadata."""
    from edgellm.models.onnx_export import LOWBIT_KEY
    from edgellm.models.random_model import random_model

    cfg = tiny_config(300, "qwen2")
    qm = random_model(cfg, 1, lowbit=(4, 16), lowbit_head=(4, 16))
    m = build_onnx(qm)
    ops = [n.op_type for n in m.graph.node]
    n_lin = 7 * cfg.n_layers + 1
    assert ops.count("Scan") == n_lin and ops.count("MatMulInteger") == n_lin
    assert "MatMulNBits" not in ops and all(o.domain in ("", "ai.onnx") for o in m.opset_import)
    assert {p.key: p.value for p in m.metadata_props}[LOWBIT_KEY] == "contract"
    body = next(n for n in m.graph.node if n.op_type == "Scan").attribute[0].g
    assert [n.op_type for n in body.node] == ["Mul", "Add", "Mul", "Add"]
    onnx.checker.check_model(m)
    nb = build_onnx(qm, lowbit="nbits")
    assert [n.op_type for n in nb.graph.node].count("MatMulNBits") == n_lin
    with pytest.raises(EdgeLLMError, match="low-bit ONNX form 'fp8'"):
        build_onnx(qm, lowbit="fp8")


def _checkpoint(kind: str, tmp_path) -> object:  # -> QuantModel
    """A random Llama (llama3-style rope factors) or Qwen2 (q/k/v biases) checkpoint written as a GGUF mix or
    GPTQ directory and loaded back, as a user's file is."""
    from edgellm.models.loaders import load_model
    from edgellm.models.loaders.gguf_write import write_gguf
    from edgellm.models.loaders.gptq_write import save_gptq

    arch, fmt = kind.split("-", 1)
    fw = random_float_weights(tiny_config(300, arch), seed=len(kind))
    fw.embed = fw.embed / 8
    if fmt.startswith("gptq"):
        bits, group = {"gptq4": (4, 64), "gptq3": (3, 128)}[fmt]
        path = save_gptq(tmp_path / "gptq", fw, arch, bits, group, fmt == "gptq3", "gptq")
    else:
        path = tmp_path / "m.gguf"
        write_gguf(path, fw, arch, fmt)
    return load_model(path)[0]


MODELS = ["llama-Q4_0", "llama-Q4_K_M", "llama-Q2_K", "llama-Q8_0", "llama-gptq4",
          "qwen2-Q4_0", "qwen2-Q4_K_M", "qwen2-Q2_K", "qwen2-Q8_0", "qwen2-gptq3"]


@pytest.mark.parametrize("kind", MODELS)
def test_models_of_every_codec_agree_with_golden(kind: str, tmp_path) -> None:
    """Prefill 9 tokens then decode 5: logits within verify's tolerance (1e-3 of max |logit|; the linears are
    bit-exact, the rest is ONNX's reductions and softmax as for ternary) and the same greedy tokens."""
    from edgellm.models.ort_runner import OrtBackend

    qm = _checkpoint(kind, tmp_path)
    tokens = np.random.default_rng(5).integers(0, 300, 14)
    g = GoldenModel(qm)
    gold = g.forward(tokens, g.new_cache(), all_logits=True)
    be = OrtBackend(qm)
    assert be.name == "onnx"
    got = np.concatenate([be.forward(tokens[:9], all_logits=True)]
                         + [be.forward(tokens[t:t + 1], all_logits=True) for t in range(9, 14)])
    tol = 1e-3 * max(1.0, float(np.abs(gold).max()))
    assert np.abs(got - gold).max() <= tol, (kind, np.abs(got - gold).max() / np.abs(gold).max())
    assert np.array_equal(got.argmax(-1), gold.argmax(-1))


def test_eval_compares_both_onnx_forms(tmp_path) -> None:
    """eval --compare names the two references: onnx (contract order) and onnx-nbits (MatMulNBits)."""
    from shared_fixtures import run_cli

    from edgellm.models.loaders.gguf_write import write_gguf

    fw = random_float_weights(tiny_config(300, "llama"), seed=4)
    fw.embed = fw.embed / 8
    write_gguf(tmp_path / "m.gguf", fw, "llama", "Q4_K_M")
    ids = tmp_path / "ids.txt"
    ids.write_text(" ".join(map(str, np.random.default_rng(0).integers(0, 300, 40))))
    r = run_cli("eval", str(tmp_path / "m.gguf"), "--ids", "-t", str(ids), "--compare",
                "golden,onnx,onnx-nbits", "--min-agreement", "0.9")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[1]: line for line in r.stdout.splitlines() if line.startswith("│ onnx")}
    assert set(rows) == {"onnx", "onnx-nbits"}, r.stdout
    r = run_cli("eval", str(tmp_path / "m.gguf"), "--ids", "-t", str(ids), "--compare", "golden,onnx-fp8")
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "error: unknown backend 'onnx-fp8'; choose one of golden, onnx, torch, onnx-nbits"], r.stderr


def _verify_rows(qm, proj, g_logits: np.ndarray | None = None):  # -> runtime.verify.Report
    """runtime.verify's onnx rows for qm on a 10-token prompt (proj: a directory standing for the project)."""
    from types import SimpleNamespace

    from edgellm.runtime import verify, verify_onnx

    prompt = list(range(3, 13))
    g = GoldenModel(qm)
    cache = g.new_cache()
    logits = g.forward(np.array(prompt), cache)[-1]
    toks = [int(np.argmax(logits))]
    for _ in range(3):
        toks.append(int(np.argmax(g.forward(np.array(toks[-1:]), cache)[-1])))
    rep = verify.Report("p", "none", prompt)
    p = SimpleNamespace(path=proj, numerics=SimpleNamespace(kv_dtype="f32"))
    verify_onnx.onnx_rows(p, qm, prompt, 4, logits if g_logits is None else g_logits(logits), toks, rep)
    return rep


def test_verify_holds_lowbit_onnx_logits_to_the_tolerance(tmp_path) -> None:
    """The low-bit onnx logits row is strict (it was informational when the graph used MatMulNBits)."""
    from edgellm.models.random_model import random_model

    qm = random_model(tiny_config(300, "llama"), 2, lowbit=(4, 32))
    rep = _verify_rows(qm, tmp_path)
    assert all(r.ok for r in rep.rows) and rep.rows[0].max_abs <= 1e-3 * max(1.0, rep.rows[0].max_abs)
    off = _verify_rows(qm, tmp_path, lambda x: x + np.float32(0.05) * max(1.0, float(np.abs(x).max())))
    logit_row = next(r for r in off.rows if r.stage == "logits")
    assert not logit_row.ok and "informational" not in logit_row.note


def test_verify_replaces_a_matmulnbits_reference(tmp_path) -> None:
    """A project whose reference/model.onnx holds MatMulNBits linears is checked on the contract-order
    export instead (with a note), so its logits row can be strict."""
    from edgellm.models.onnx_export import export_onnx
    from edgellm.models.random_model import random_model

    qm = random_model(tiny_config(300, "qwen2"), 5, lowbit=(4, 32))
    export_onnx(qm, tmp_path / "reference" / "model.onnx", lowbit="nbits")
    rep = _verify_rows(qm, tmp_path)
    assert any("onnx-nbits" in n and "contract-order" in n for n in rep.notes), rep.notes
    assert all(r.ok for r in rep.rows)
    old = onnx.load(str(tmp_path / "reference" / "model.onnx"))  # written before the form was recorded
    kept = [q for q in old.metadata_props if q.key != "edgellm.lowbit_onnx"]
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(tmp_path / "reference" / "model.onnx"))
    assert len(_verify_rows(qm, tmp_path).notes) == 1
    export_onnx(qm, tmp_path / "reference" / "model.onnx")
    assert _verify_rows(qm, tmp_path).notes == []
