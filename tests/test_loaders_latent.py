"""Latent-weight loader (absmean at load), against checkpoints written by transformers / safetensors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders import detect_format, load_model
from edgellm.models.loaders.hf_bitnet import LINEAR_NAMES
from edgellm.models.loaders.latent import absmean_ternarize
from edgellm.models.random_model import random_model
from edgellm.models.weights import Int8Head

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402
from transformers import BitNetConfig, BitNetForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.integrations import bitnet as tb  # noqa: E402
from transformers.utils.quantization_config import BitNetQuantConfig  # noqa: E402

torch._dynamo.config.disable = True

BASE = dict(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128, vocab_size=300,
            max_context=256, rope_theta=10000.0)
HF_ARGS = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               rope_theta=10000.0, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5)


def latent_pair(cfg: ModelConfig, seed: int):
    """(expected QuantModel, {hf name: latent float32 weight}); latent = ternary * c, c 16-bit-exact,
    so absmean recovers the ternary and the scale is 1 / float32(mean|W| in float64)."""
    qm = random_model(cfg, seed)
    rng = np.random.default_rng(seed)
    latent = {}
    for i, layer in enumerate(qm.layers):
        for n, lin in layer.linears().items():
            c = np.float32(rng.integers(10, 52) / 1024)  # exact in fp16 and bf16
            w = lin.dense().astype(np.float32) * c
            latent[f"model.layers.{i}.{LINEAR_NAMES[n]}.weight"] = w
            lin.scale = np.float32(1.0) / np.float32(np.abs(w).astype(np.float64).mean())
    return qm, latent


def _logits(qm) -> np.ndarray:
    g = GoldenModel(qm)
    return g.forward(np.array([1, 2, 3, 250, 7, 7, 299]), g.new_cache(8))


def _fill(model, qm, latent) -> None:
    """Put qm's norms/embeddings and the latent weights into a transformers model."""
    sd = {k: torch.from_numpy(v) for k, v in latent.items()}
    sd["model.embed_tokens.weight"] = torch.from_numpy(qm.embed_rows(np.arange(qm.config.vocab_size)))
    sd["model.norm.weight"] = torch.from_numpy(qm.final_norm)
    for i, layer in enumerate(qm.layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = torch.from_numpy(layer.attn_norm)
        sd[p + "post_attention_layernorm.weight"] = torch.from_numpy(layer.ffn_norm)
        if qm.config.subln:
            sd[p + "self_attn.attn_sub_norm.weight"] = torch.from_numpy(layer.attn_sub_norm)
            sd[p + "mlp.ffn_sub_norm.weight"] = torch.from_numpy(layer.ffn_sub_norm)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}


def test_bitnet_latent_written_by_transformers(tmp_path):
    cfg = ModelConfig(**BASE, act="relu2", subln=True)
    qm, latent = latent_pair(cfg, 3)
    model = BitNetForCausalLM(BitNetConfig(**HF_ARGS, tie_word_embeddings=True))
    _fill(model, qm, latent)
    model.save_pretrained(tmp_path / "b")
    assert detect_format(tmp_path / "b") == "latent"
    qm2, _ = load_model(tmp_path / "b")
    assert qm2.config.subln and qm2.config.act == "relu2"
    assert np.array_equal(_logits(qm), _logits(qm2))

    # transformers' online BitNet (AutoBitLinear: absmean + per-token int8) on the same latent weights
    hf = BitNetForCausalLM(BitNetConfig(**HF_ARGS, tie_word_embeddings=True))
    online = BitNetQuantConfig(linear_class="autobitlinear", quantization_mode="online")
    tb.replace_with_bitnet_linear(hf, modules_to_not_convert=["lm_head"], quantization_config=online)
    qm2.final_norm = qm.final_norm = (qm.final_norm * np.float32(0.07)).astype(np.float32)  # flatter
    _fill(hf, qm, latent)
    hf.lm_head.weight = hf.model.embed_tokens.weight
    torch.manual_seed(0)
    with torch.no_grad():  # 200 tokens sampled from transformers' model itself
        seq = hf.eval().generate(torch.tensor([[1]]), do_sample=True, top_k=0, max_new_tokens=199,
                                 min_new_tokens=199, pad_token_id=0)
        a = hf(seq).logits[0].double().numpy()
    tokens = seq[0].numpy()
    b = GoldenBackend(qm2, max_len=256).forward(tokens, all_logits=True).astype(np.float64)

    def ppl(lg: np.ndarray) -> float:
        lg = lg[:-1] - lg[:-1].max(axis=1, keepdims=True)
        lp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
        return float(np.exp(-lp[np.arange(len(tokens) - 1), tokens[1:]].mean()))
    rel = abs(ppl(b) / ppl(a) - 1)
    print(f"latent: perplexity transformers(online) {ppl(a):.3f} golden {ppl(b):.3f} rel {rel:.2e}, "
          f"max |logit diff| {np.abs(a - b).max():.3e}")
    assert 2 < ppl(a) < 250 and rel < 0.01


def test_1bitllm_style_fp16_untied_subln(tmp_path):
    """1bitLLM naming (inner_attn_ln / ffn_layernorm), fp16 tensors, model_type llama, untied head."""
    cfg = ModelConfig(**BASE, act="silu", subln=True, tied_embeddings=False)
    qm, latent = latent_pair(cfg, 4)
    head = np.random.default_rng(1).standard_normal((300, 64)).astype(np.float16)
    qm.lm_head = Int8Head.quantize(head.astype(np.float32))
    sd = {k: torch.from_numpy(v.astype(np.float16)) for k, v in latent.items()}
    sd["lm_head.weight"] = torch.from_numpy(head)
    sd["model.embed_tokens.weight"] = torch.from_numpy(qm.embed_rows(np.arange(300))).half()
    qm.embed = qm.embed_rows(np.arange(300)).astype(np.float16).astype(np.float32)
    sd["model.norm.weight"] = torch.from_numpy(qm.final_norm).half()
    qm.final_norm = qm.final_norm.astype(np.float16).astype(np.float32)
    for i, layer in enumerate(qm.layers):
        p = f"model.layers.{i}."
        for attr, name in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                           ("attn_sub_norm", "self_attn.inner_attn_ln"),
                           ("ffn_sub_norm", "mlp.ffn_layernorm")):
            g = getattr(layer, attr).astype(np.float16)
            setattr(layer, attr, g.astype(np.float32))
            sd[p + name + ".weight"] = torch.from_numpy(g)
    d = tmp_path / "large"
    d.mkdir()
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps(dict(HF_ARGS, model_type="llama", hidden_act="silu",
                                                   architectures=["BitnetForCausalLM"],
                                                   tie_word_embeddings=False, torch_dtype="float16")))
    qm2, _ = load_model(d)
    assert qm2.config.subln and not qm2.config.tied_embeddings and qm2.config.act == "silu"
    assert np.array_equal(_logits(qm), _logits(qm2))


def test_llama_without_subln_bf16(tmp_path):
    cfg = ModelConfig(**BASE, act="silu", subln=False)
    qm, latent = latent_pair(cfg, 5)
    model = LlamaForCausalLM(LlamaConfig(**HF_ARGS, tie_word_embeddings=True, hidden_act="silu"))
    _fill(model, qm, latent)
    for layer in qm.layers:  # the checkpoint holds bf16 norms
        layer.attn_norm = torch.from_numpy(layer.attn_norm).bfloat16().float().numpy()
        layer.ffn_norm = torch.from_numpy(layer.ffn_norm).bfloat16().float().numpy()
    qm.final_norm = torch.from_numpy(qm.final_norm).bfloat16().float().numpy()
    model.to(torch.bfloat16).save_pretrained(tmp_path / "l")
    qm2, _ = load_model(tmp_path / "l")
    assert not qm2.config.subln and qm2.embed.dtype == np.uint16
    assert np.array_equal(_logits(qm), _logits(qm2))


def test_absmean_matches_transformers_weightquant():
    rng = np.random.default_rng(7)
    for shape, std in (((96, 64), 0.02), ((128, 200), 1.3), ((8, 8), 1e-7)):
        w = (rng.standard_normal(shape) * std).astype(np.float32)
        t, scale = absmean_ternarize(w)
        ref = tb.WeightQuant.apply(torch.from_numpy(w)).numpy()  # = ternary / scale
        np.testing.assert_array_equal(np.sign(ref).astype(np.int8), t)
        expect = np.float32(1.0) / max(np.float32(np.abs(w.astype(np.float64)).mean()), np.float32(1e-5))
        assert scale == expect
        assert abs(float(scale) * float(np.abs(w).mean()) - 1) < 1e-5 or std < 1e-5
