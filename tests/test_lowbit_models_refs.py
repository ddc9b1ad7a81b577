"""Low-bit (W{b}A8) Llama and Qwen2 models: golden vs onnxruntime (contract order and MatMulNBits) vs torch,
and the architecture (llama3 rope scaling, q/k/v biases, tied/untied heads) against transformers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgellm.models.config import PRESETS, ModelConfig, llama3_freq_factors  # noqa: E402
from edgellm.models.golden import GoldenModel  # noqa: E402
from edgellm.models.ort_runner import OrtBackend  # noqa: E402
from edgellm.models.random_model import random_model  # noqa: E402
from edgellm.models.torch_ref import TorchBackend  # noqa: E402

LLAMA = ModelConfig(name="tiny-llama3", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=256,
                    vocab_size=300, act="silu", subln=False, rope_theta=500000.0, tied_embeddings=False,
                    max_context=64, rope_freq_factors=llama3_freq_factors(32, 500000.0, 32.0, 1.0, 4.0, 64))
QWEN2 = ModelConfig(name="tiny-qwen2", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=1, ffn_size=256,
                    vocab_size=300, act="silu", subln=False, rope_theta=1000000.0, rms_eps=1e-6,
                    tied_embeddings=True, max_context=64, qkv_bias=True)
CASES = {
    "llama-q4": (LLAMA, dict(lowbit=(4, 32))),
    "llama-mixed-head6": (LLAMA, dict(lowbit={"q": (4, 32), "k": (4, 32), "v": (6, 16), "o": (4, 32),
                                              "gate": (4, 32), "up": (4, 32), "down": (6, 16)},
                                      lowbit_head=(6, 16))),
    "qwen2-q2k": (QWEN2, dict(lowbit={"q": (2, 16), "k": (2, 16), "v": (3, 16), "o": (3, 16),
                                      "gate": (2, 16), "up": (2, 16), "down": (4, 32)})),
    "qwen2-q8-head4": (QWEN2, dict(lowbit=(8, 32), lowbit_head=(4, 128))),
    "qwen2-ternary-mix": (QWEN2, dict(lowbit={"gate": (5, 32), "up": (5, 32)})),
}


def _logits(backend, tokens: np.ndarray, split: int) -> np.ndarray:
    """Prefill tokens[:split] then decode the rest one by one; all logits (T, vocab)."""
    out = [backend.forward(tokens[:split], all_logits=True)]
    out += [backend.forward(tokens[t:t + 1], all_logits=True) for t in range(split, len(tokens))]
    return np.concatenate(out)


@pytest.mark.parametrize("case", list(CASES))
def test_golden_onnx_torch_agree(case: str) -> None:
    cfg, kw = CASES[case]
    qm = random_model(cfg, seed=3, **kw)
    tokens = np.random.default_rng(5).integers(0, cfg.vocab_size, 12)
    g = GoldenModel(qm)
    gold = g.forward(tokens, g.new_cache(), all_logits=True)
    for be in (OrtBackend(qm), OrtBackend(qm, fast=True), OrtBackend(qm, lowbit="nbits"), TorchBackend(qm)):
        got = _logits(be, tokens, 7)
        scale = np.abs(gold).max()
        err = np.abs(got - gold).max() / scale
        assert err < 1e-2, (be.name, err)  # as the ternary references (test_torch_ref, test_onnx)
        assert (got.argmax(-1) == gold.argmax(-1)).mean() >= 0.9, be.name


def test_onnx_uses_matmulnbits_for_2_4_8_bits() -> None:
    from edgellm.models.onnx_export import build_onnx

    ops = [n.op_type for n in build_onnx(random_model(QWEN2, 1, lowbit=(4, 32)), lowbit="nbits").graph.node]
    assert ops.count("MatMulNBits") == 7 * QWEN2.n_layers and ops.count("MatMulInteger") == 1  # int8 head
    ops = [n.op_type for n in build_onnx(random_model(QWEN2, 1, lowbit=(3, 16)), lowbit="nbits").graph.node]
    assert "MatMulNBits" not in ops


def test_qkv_biases_are_applied() -> None:
    """The golden v tap equals the bias-free linear plus the bias (a model without the add fails)."""
    qm = random_model(QWEN2, seed=2, lowbit=(4, 32))
    taps: dict[str, np.ndarray] = {}
    g = GoldenModel(qm)
    g.forward(np.arange(4), g.new_cache(), tap=lambda n, a: taps.__setitem__(n, a))
    from edgellm.models import numerics as nx
    from edgellm.models.lowbit import lowbit_linear

    L = qm.layers[0]
    x = nx.rmsnorm(taps["embed"], L.attn_norm, QWEN2.rms_eps, g.plan.norm_lanes)
    q8, qs = nx.quantize(x)
    v = lowbit_linear(q8, qs, L.v.quant) + L.v_bias
    assert np.array_equal(taps["L0.v"].reshape(4, -1), v)
    assert np.abs(L.v_bias).max() > 0.1


def test_llama3_factors_match_transformers() -> None:
    tr = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    c = PRESETS["llama-3.2-1b"]
    hf = tr.LlamaConfig(hidden_size=2048, num_attention_heads=32, head_dim=64, rope_theta=500000.0,
                        max_position_embeddings=131072,
                        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    inv_hf, _ = ROPE_INIT_FUNCTIONS["llama3"](hf, "cpu")
    inv = 1.0 / (500000.0 ** (np.arange(0, 64, 2) / 64)) / np.asarray(c.rope_freq_factors, np.float64)
    assert np.allclose(inv, inv_hf.double().numpy(), rtol=1e-6)
    assert c.rope_freq_factors[0] == 1.0 and c.rope_freq_factors[-1] == 32.0


def _hf_to_quant(hf_model, cfg: ModelConfig, bits: int, group: int):
    """A transformers Llama/Qwen2 model -> QuantModel (RTN group quantization); the HF model's linears
    are overwritten with the dequantized weights so both compute with the same weights."""
    from edgellm.models.lowbit import quantize_rtn
    from edgellm.models.weights import Int8Head, Layer, LowBitLinear, QuantModel

    def f32(t):
        return t.detach().float().numpy().astype(np.float32)

    layers = []
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for blk in hf_model.model.layers:
        lins = {}
        for n, path in names.items():
            mod = blk.get_submodule(path)
            gq = quantize_rtn(f32(mod.weight), bits, group)
            mod.weight.data = torch.from_numpy(gq.dequantize())
            lins[n] = LowBitLinear(gq, "rtn")
        bias = {f"{n}_bias": f32(blk.get_submodule(names[n]).bias) for n in "qkv"} if cfg.qkv_bias else {}
        layers.append(Layer(attn_norm=f32(blk.input_layernorm.weight),
                            ffn_norm=f32(blk.post_attention_layernorm.weight), **lins, **bias))
    emb = f32(hf_model.model.embed_tokens.weight)
    head = Int8Head.quantize(emb if cfg.tied_embeddings else f32(hf_model.lm_head.weight))
    qm = QuantModel(cfg, emb, layers, f32(hf_model.model.norm.weight), head)
    qm.validate()
    return qm


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_float_twin_matches_transformers(arch: str) -> None:
    """Same weights, float activations: our torch model (float_acts) equals transformers' Llama (llama3
    rope scaling, untied head) / Qwen2 (q/k/v biases, tied head) up to float rounding."""
    tr = pytest.importorskip("transformers")
    from edgellm.models.loaders.common import model_config_from_hf
    from edgellm.models.torch_ref import TorchModel

    torch.manual_seed(0)
    base = dict(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6)
    if arch == "llama":
        hcfg = tr.LlamaConfig(**base, rope_theta=500000.0, tie_word_embeddings=False,
                              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
        hf = tr.LlamaForCausalLM(hcfg)
    else:
        hcfg = tr.Qwen2Config(**base, rope_theta=1000000.0, tie_word_embeddings=True)
        hf = tr.Qwen2ForCausalLM(hcfg)
        for blk in hf.model.layers:  # transformers initializes biases to 0
            for p in ("q_proj", "k_proj", "v_proj"):
                torch.nn.init.normal_(getattr(blk.self_attn, p).bias, std=0.5)
    d = hcfg.to_dict()
    cfg = model_config_from_hf(d, "hf", subln=False, name=arch, default_theta=10000.0,
                               qkv_bias=arch == "qwen2")
    assert bool(cfg.rope_freq_factors) == (arch == "llama")
    qm = _hf_to_quant(hf.float().eval(), cfg, 8, 32)
    ours = TorchModel.from_quant(qm, float_acts=True)
    if not cfg.tied_embeddings:
        with torch.no_grad():
            ours.head.copy_(hf.lm_head.weight)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, 300, (1, 40)))
    with torch.no_grad():
        want = hf(tokens).logits[0].numpy()
        got = ours(tokens)[0].numpy()
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


def test_export_size_counts_lowbit_linears_as_exported() -> None:
    """MatMulNBits form: 3/5/6-bit linears export as float32 MatMul weights (4 bytes each), 4-bit as packed
    codes plus f32 scales and mins per group; contract form: a uint8 per code plus f32 scales and mins. The
    external-data decision sees that, not the ternary int8 count."""
    from edgellm.models.onnx_export import weight_bytes

    n = sum(o * i for o, i in QWEN2.linear_shapes().values()) * QWEN2.n_layers
    base = weight_bytes(QWEN2)
    assert weight_bytes(QWEN2, random_model(QWEN2, 1, lowbit=(3, 16)), "nbits") - base == 3 * n
    q4 = random_model(QWEN2, 1, lowbit=(4, 32))
    assert weight_bytes(QWEN2, q4, "nbits") - base == n // 2 + n // 32 * 8 - n
    assert weight_bytes(QWEN2, q4) - base == n // 32 * 8


def test_presets_equal_their_config_json() -> None:
    """The presets are what model_config_from_hf makes of each checkpoint's published config.json."""
    import dataclasses

    from edgellm.models.loaders.common import model_config_from_hf

    published = {
        "llama-3.2-1b": ({"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                          "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                          "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072,
                          "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": True,
                          "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": 128001,
                          "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                           "original_max_position_embeddings": 8192, "rope_type": "llama3"}},
                         False),
        "qwen2.5-0.5b": ({"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
                          "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                          "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
                          "rope_theta": 1000000.0, "tie_word_embeddings": True, "hidden_act": "silu",
                          "bos_token_id": 151643, "eos_token_id": 151643}, True),
    }
    for name, (d, bias) in published.items():
        c = model_config_from_hf(d, name, subln=False, name=name, default_theta=10000.0, qkv_bias=bias)
        assert dataclasses.replace(c, name=name) == PRESETS[name], name
