"""Hugging Face BitNet loader and writer, against checkpoints written and run by transformers itself."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgellm.errors import CheckpointError
from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders import detect_format, load_model, save_hf_bitnet
from edgellm.models.loaders import hf_bitnet as hfb
from edgellm.models.random_model import random_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, AutoModelForCausalLM, BitNetConfig, BitNetForCausalLM  # noqa: E402
from transformers.integrations import bitnet as tb  # noqa: E402
from transformers.utils.quantization_config import BitNetQuantConfig  # noqa: E402

torch._dynamo.config.disable = True  # transformers' unpack_weights is @torch.compile; run it eagerly

CFG = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128, vocab_size=300,
                  max_context=256, rope_theta=10000.0, name="tiny")


def _logits(qm, tokens: np.ndarray) -> np.ndarray:
    g = GoldenModel(qm)
    return g.forward(tokens, g.new_cache(len(tokens)))


def _hf_model(directory: str):
    """transformers' own BitNet model (BitLinear, float32) with the directory's weights."""
    from safetensors.torch import load_file
    config = AutoConfig.from_pretrained(directory)
    model = AutoModelForCausalLM.from_config(config)
    tb.replace_with_bitnet_linear(model, modules_to_not_convert=["lm_head"],
                                  quantization_config=BitNetQuantConfig(**config.quantization_config))
    state = {}
    for f in sorted(os.listdir(directory)):
        if f.endswith(".safetensors"):
            state.update(load_file(os.path.join(directory, f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.float().eval()


def _transformers_checkpoint(path: str, dtype=torch.bfloat16, shard: str | None = None) -> dict:
    """A tiny BitNet checkpoint packed and saved by transformers; returns its ternary weights."""
    qc = BitNetQuantConfig()
    config = BitNetConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          tie_word_embeddings=True, rope_theta=10000.0, bos_token_id=1,
                          eos_token_id=2, quantization_config=qc.to_dict())
    torch.manual_seed(0)
    model = BitNetForCausalLM(config)
    tb.replace_with_bitnet_linear(model, modules_to_not_convert=["lm_head"], quantization_config=qc)
    tern = {}
    for name, mod in model.named_modules():
        if isinstance(mod, tb.BitLinear):
            t = torch.randint(-1, 2, (mod.out_features, mod.in_features), dtype=torch.int8)
            tern[name] = t.numpy().copy()
            mod.weight = tb.pack_weights(t.clone())
            mod.weight_scale = torch.tensor([float(torch.empty(1).uniform_(4, 12))])
    for p in model.parameters():
        if p.dim() == 1:
            p.data.uniform_(0.5, 1.5)
    model.to(dtype).save_pretrained(path, **({"max_shard_size": shard} if shard else {}))
    return tern


@pytest.mark.parametrize("shard", [None, "40KB"])
def test_load_transformers_written_checkpoint(tmp_path, shard):
    d = str(tmp_path / "hf")
    tern = _transformers_checkpoint(d, shard=shard)
    assert detect_format(d) == "hf_bitnet"
    qm, tok = load_model(d)
    assert tok is None and qm.config.act == "relu2" and qm.config.tied_embeddings
    hf = _hf_model(d)
    for i, layer in enumerate(qm.layers):
        for n, lin in layer.linears().items():
            mod = f"model.layers.{i}.{hfb.LINEAR_NAMES[n]}"
            np.testing.assert_array_equal(lin.dense(), tern[mod])
            ref = hf.get_submodule(mod).weight_scale.detach().numpy()
            assert lin.scale == np.float32(ref[0])
    emb = hf.model.embed_tokens.weight.detach().numpy()
    np.testing.assert_array_equal(qm.embed_rows(np.arange(300)), emb)


def test_transformers_unpack_matches_ours():
    rng = np.random.default_rng(3)
    t = rng.integers(-1, 2, (32, 24)).astype(np.int8)
    packed = tb.pack_weights(torch.from_numpy(t.copy())).numpy()
    np.testing.assert_array_equal(hfb.hf_pack_codes((t + 1).astype(np.uint8)), packed)
    codes = hfb.hf_unpack_codes(packed, 32, "x")
    np.testing.assert_array_equal(codes.astype(np.int8) - 1, t)
    un = tb.unpack_weights(torch.from_numpy(packed), dtype=torch.float32).numpy()
    np.testing.assert_array_equal(un, t)


@pytest.mark.parametrize("shard", [None, 30000])
def test_roundtrip_ours_hf_ours_bit_exact(tmp_path, shard):
    qm = random_model(CFG, seed=5)
    out = save_hf_bitnet(qm, tmp_path / "rt", max_shard_bytes=shard)
    files = os.listdir(out)
    assert ("model.safetensors.index.json" in files) == bool(shard)
    qm2, _ = load_model(out)
    assert qm2.config.to_dict() | {"name": "x"} == qm.config.to_dict() | {"name": "x"}
    tokens = np.array([1, 17, 42, 299, 0, 8, 8, 130])
    assert np.array_equal(_logits(qm, tokens), _logits(qm2, tokens))
    np.testing.assert_array_equal(qm2.embed, qm.embed)


def test_transformers_runs_our_checkpoint_same_perplexity(tmp_path):
    qm = random_model(CFG, seed=11)
    qm.final_norm = (qm.final_norm * np.float32(0.15)).astype(np.float32)  # flatter logits, ppl ~10-100
    d = save_hf_bitnet(qm, tmp_path / "ppl")
    hf = _hf_model(str(d))
    torch.manual_seed(0)
    with torch.no_grad():  # ~200 tokens sampled from the model itself, so perplexity is moderate
        seq = hf.generate(torch.tensor([[1]]), do_sample=True, top_k=0, max_new_tokens=199,
                          min_new_tokens=199, pad_token_id=0)
        hf_logits = hf(seq).logits[0].double().numpy()
    tokens = seq[0].numpy()
    ours = GoldenBackend(qm, max_len=256).forward(tokens, all_logits=True).astype(np.float64)

    def ppl(lg: np.ndarray) -> float:
        lg = lg[:-1] - lg[:-1].max(axis=1, keepdims=True)
        lp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
        return float(np.exp(-lp[np.arange(len(tokens) - 1), tokens[1:]].mean()))

    p_hf, p_ours = ppl(hf_logits), ppl(ours)
    rel = abs(p_ours / p_hf - 1)
    print(f"perplexity over {len(tokens)} tokens: transformers {p_hf:.4f} golden {p_ours:.4f} "
          f"rel diff {rel:.2e}; max |logit diff| {np.abs(hf_logits - ours).max():.3e}")
    assert 2 < p_hf < 300 and rel < 0.01  # non-degenerate model; 1% agreement
    assert (hf_logits.argmax(1) == ours.argmax(1)).mean() > 0.95


def test_config_readable_by_transformers(tmp_path):
    qm = random_model(CFG, seed=2)
    d = save_hf_bitnet(qm, tmp_path / "c")
    c = BitNetConfig.from_pretrained(str(d))
    assert (c.hidden_size, c.num_hidden_layers, c.num_key_value_heads, c.hidden_act) == (64, 2, 2, "relu2")
    assert c.rope_parameters["rope_theta"] == 10000.0 and c.tie_word_embeddings
    assert c.quantization_config["quant_method"] == "bitnet"


def test_writer_is_atomic(tmp_path, monkeypatch):
    qm = random_model(CFG, seed=1)
    out = save_hf_bitnet(qm, tmp_path / "a")
    with pytest.raises(CheckpointError, match="already exists"):
        save_hf_bitnet(qm, out)

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(hfb, "write_safetensors", boom)
    with pytest.raises(OSError):
        save_hf_bitnet(qm, tmp_path / "b")
    with pytest.raises(OSError):
        save_hf_bitnet(qm, out, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["a"]  # no half-written dir, no temp leftovers
    assert json.loads((out / "config.json").read_text())["model_type"] == "bitnet"
    monkeypatch.undo()
    save_hf_bitnet(random_model(CFG, seed=9), out, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["a"]
    assert not np.array_equal(load_model(out)[0].embed, qm.embed)


def test_writer_rejects_models_hf_cannot_hold(tmp_path):
    wide_q = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=4, head_dim=32, ffn_size=128,
                         vocab_size=50)
    with pytest.raises(CheckpointError, match="q_size"):
        save_hf_bitnet(random_model(wide_q), tmp_path / "x")
    odd = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=4, ffn_size=130, vocab_size=50)
    with pytest.raises(CheckpointError, match="divisible by 4"):
        save_hf_bitnet(random_model(odd), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_packed_llama_without_subln_runs_in_transformers(tmp_path):
    """No SubLN: written as a packed Llama checkpoint (HF1BitLLM/Llama3-8B-1.58 layout)."""
    cfg = ModelConfig(**(CFG.to_dict() | {"subln": False, "act": "silu", "tied_embeddings": False}))
    qm = random_model(cfg, seed=4)
    qm.final_norm = (qm.final_norm * np.float32(0.1)).astype(np.float32)
    d = save_hf_bitnet(qm, tmp_path / "llama")
    assert json.loads((d / "config.json").read_text())["model_type"] == "llama"
    qm2, _ = load_model(d)
    assert not qm2.config.subln and not qm2.config.tied_embeddings
    tokens = np.array([1, 17, 42, 299, 0, 8, 8, 130])
    a, b = _logits(qm, tokens), _logits(qm2, tokens)
    # the untied head goes through float (int8 * row_scale) and is re-quantized: equal up to rounding
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(a).max())
    hf = _hf_model(str(d))
    with torch.no_grad():
        ref = hf(torch.from_numpy(tokens)[None]).logits[0].numpy()
    assert (ref.argmax(1) == b.argmax(1)).all()
    assert np.abs(ref - b).max() < 0.05 * np.abs(ref).max()
