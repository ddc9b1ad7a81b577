"""Bad checkpoints: each one a CheckpointError with a one-line message naming the file or tensor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import load_model, save_hf_bitnet
from edgellm.models.random_model import random_model

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

CFG = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128, vocab_size=300,
                  max_context=64)
Q = "model.layers.1.self_attn.q_proj.weight"


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return save_hf_bitnet(random_model(CFG, seed=0), tmp_path / "m")


def _fails(path: Path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def _edit(ckpt: Path, fn) -> None:
    f = ckpt / "model.safetensors"
    sd = load_file(str(f))
    fn(sd)
    save_file(sd, str(f), metadata={"format": "pt"})


def test_truncated_safetensors(ckpt):
    f = ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    _fails(ckpt, "model.safetensors", "truncated")
    f.write_bytes(data[:5])
    _fails(ckpt, "model.safetensors", "truncated")
    f.write_bytes(data[:8] + b"{not json" + data[17:200])
    _fails(ckpt, "model.safetensors")


def test_missing_tensor(ckpt):
    _edit(ckpt, lambda sd: sd.pop("model.layers.1.mlp.ffn_sub_norm.weight"))
    _fails(ckpt, "missing tensor model.layers.1.mlp.ffn_sub_norm.weight")


def test_missing_weight_scale(ckpt):
    _edit(ckpt, lambda sd: sd.pop(Q + "_scale"))
    _fails(ckpt, "missing tensor " + Q + "_scale")


def test_wrong_shape(ckpt):
    _edit(ckpt, lambda sd: sd.__setitem__(Q, sd[Q][:-1].contiguous()))
    _fails(ckpt, Q, "shape [15, 64]", "[16, 64]")


def test_wrong_norm_shape(ckpt):
    _edit(ckpt, lambda sd: sd.__setitem__("model.norm.weight", torch.ones(63)))
    _fails(ckpt, "model.norm.weight", "shape [63]")


def test_wrong_dtype(ckpt):
    _edit(ckpt, lambda sd: sd.__setitem__(Q, sd[Q].float()))
    _fails(ckpt, Q, "expected packed U8")


def test_code3_not_ternary(ckpt):
    def poke(sd):
        w = sd[Q].clone()
        w[2, 5] = 0b00110001  # field 2 holds code 3
        sd[Q] = w
    _edit(ckpt, poke)
    _fails(ckpt, Q, "code 3")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -2.0])
def test_bad_weight_scale(ckpt, value):
    _edit(ckpt, lambda sd: sd.__setitem__(Q + "_scale", torch.tensor([value])))
    _fails(ckpt, Q + "_scale", "finite and positive")


def test_nan_norm(ckpt):
    def poke(sd):
        g = sd["model.layers.0.input_layernorm.weight"].clone()
        g[3] = float("nan")
        sd["model.layers.0.input_layernorm.weight"] = g
    _edit(ckpt, poke)
    _fails(ckpt, "model.layers.0.input_layernorm.weight", "NaN")


def test_malformed_config(ckpt):
    cfgp = ckpt / "config.json"
    good = json.loads(cfgp.read_text())
    cfgp.write_text("{not json")
    _fails(ckpt, "config.json", "malformed JSON")
    cfgp.write_text("[1, 2]")
    _fails(ckpt, "config.json")
    for key, val, needle in (("hidden_size", None, "lacks hidden_size"),
                             ("num_attention_heads", "4", "must be an integer"),
                             ("hidden_act", "gelu", "unsupported hidden_act"),
                             ("num_key_value_heads", 3, "multiple"),
                             ("model_type", "gpt2", "unsupported model_type")):
        bad = dict(good)
        if val is None:
            bad.pop(key)
        else:
            bad[key] = val
        cfgp.write_text(json.dumps(bad))
        _fails(ckpt, needle)
    cfgp.write_text(json.dumps(dict(good, rope_scaling={"rope_type": "llama3", "factor": 8.0})))
    _fails(ckpt, "config.json", "rope_type")


def test_missing_paths(tmp_path):
    _fails(tmp_path / "nope", "no such file")
    (tmp_path / "empty").mkdir()
    _fails(tmp_path / "empty", "config.json", "not found")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    _fails(junk, "junk.bin", "bad magic")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    _fails(tmp_path / "noweights", "no model.safetensors")


def test_missing_shard(tmp_path):
    d = save_hf_bitnet(random_model(CFG, seed=0), tmp_path / "s", max_shard_bytes=20000)
    shard = sorted(d.glob("model-*.safetensors"))[1]
    shard.unlink()
    _fails(d, shard.name, "missing")


def test_latent_nan_weight(tmp_path):
    d = tmp_path / "lat"
    d.mkdir()
    sd = {"model.embed_tokens.weight": torch.zeros(300, 64), "model.norm.weight": torch.ones(64)}
    for i in range(2):
        p = f"model.layers.{i}."
        for n, (o, k) in {"self_attn.q_proj": (64, 64), "self_attn.k_proj": (32, 64),
                          "self_attn.v_proj": (32, 64), "self_attn.o_proj": (64, 64),
                          "mlp.gate_proj": (128, 64), "mlp.up_proj": (128, 64),
                          "mlp.down_proj": (64, 128)}.items():
            sd[p + n + ".weight"] = torch.randn(o, k)
        sd[p + "input_layernorm.weight"] = torch.ones(64)
        sd[p + "post_attention_layernorm.weight"] = torch.ones(64)
    sd["model.layers.1.mlp.up_proj.weight"][0, 0] = float("inf")
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(
        {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 300,
         "tie_word_embeddings": True}))
    _fails(d, "model.layers.1.mlp.up_proj.weight", "NaN or inf")
    sd["model.layers.1.mlp.up_proj.weight"][0, 0] = 0.0
    save_file(sd, str(d / "model.safetensors"))
    qm, _ = load_model(d)
    assert not qm.config.subln and np.all(qm.embed == 0)
