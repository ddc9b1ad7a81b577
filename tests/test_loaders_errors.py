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
    cfgp.write_text(json.dumps(dict(good, rope_scaling={"rope_type": "yarn", "factor": 8.0})))
    _fails(ckpt, "config.json", "rope_type 'yarn'", "default, llama3")
    cfgp.write_text(json.dumps(dict(good, rope_scaling={"rope_type": "llama3", "factor": 8.0})))
    _fails(ckpt, "config.json", "rope_scaling.low_freq_factor must be a number")


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


# ---- issue 14: model numbers, header field types, shard paths (each a one-line CheckpointError) ----

def _set_config(ckpt: Path, **kw) -> None:
    cfgp = ckpt / "config.json"
    cfgp.write_text(json.dumps({**json.loads(cfgp.read_text()), **kw}))


@pytest.mark.parametrize("key,value,needles", [
    ("rope_theta", float("nan"), ("rope_theta", "finite")),
    ("rope_theta", -1.0, ("rope_theta", "> 0")),
    ("rope_theta", 0, ("rope_theta", "> 0")),
    ("rope_theta", True, ("rope_theta", "number")),
    ("rms_norm_eps", -1e-5, ("rms_norm_eps", "> 0")),
    ("rms_norm_eps", float("inf"), ("rms_norm_eps", "finite")),
    ("rms_norm_eps", 0.0, ("rms_norm_eps",)),
    ("max_position_embeddings", 2**40, ("max_position_embeddings", "at most 1,048,576")),
    ("hidden_size", 10**12, ("hidden_size", "at most")),
    ("vocab_size", 2**40, ("vocab_size", "at most")),
    ("num_hidden_layers", 10**9, ("num_hidden_layers", "at most")),
    ("intermediate_size", -4, ("intermediate_size", "positive")),
    ("tie_word_embeddings", "yes", ("tie_word_embeddings", "true or false")),
    ("hidden_act", ["silu"], ("hidden_act",)),
    ("bos_token_id", 2**40, ("bos_token_id",)),
])
def test_config_numbers_refused(ckpt, key, value, needles):
    _set_config(ckpt, **{key: value})
    _fails(ckpt, "config.json", *needles)


def test_config_null_head_dim_means_default(ckpt):
    _set_config(ckpt, head_dim=None, max_position_embeddings=None)
    qm, _ = load_model(ckpt)
    assert qm.config.head_dim == CFG.head_dim and qm.config.max_context == 4096


def test_model_config_types_and_limits():
    """ModelConfig (also what a manifest's "model" becomes) checks types, not only ranges."""
    base = CFG.to_dict()
    for key, value, needle in (("hidden_size", "64", "must be an integer"), ("rope_theta", "1e4", "number"),
                               ("subln", "yes", "true or false"), ("name", 3, "string"),
                               ("max_context", 1 << 21, "at most"), ("rms_eps", 1e-60, "rms_eps"),
                               ("head_dim", 2048, "head_dim")):
        with pytest.raises(CheckpointError, match=needle):
            ModelConfig.from_dict({**base, key: value})
    with pytest.raises(CheckpointError, match="missing keys"):
        ModelConfig.from_dict({k: v for k, v in base.items() if k != "vocab_size"})
    with pytest.raises(CheckpointError, match="expected an object"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]


def _poke(name: str, value: float):
    def poke(sd):
        t = sd[name].clone()
        t.view(-1)[7] = value
        sd[name] = t
    return poke


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_nonfinite_embedding(ckpt, value):
    _edit(ckpt, _poke("model.embed_tokens.weight", value))
    _fails(ckpt, "model.embed_tokens.weight", "NaN or inf", "row 0")


def test_nonfinite_untied_head(tmp_path):
    import dataclasses
    d = save_hf_bitnet(random_model(dataclasses.replace(CFG, tied_embeddings=False), seed=0), tmp_path / "u")
    _edit(d, _poke("lm_head.weight", float("-inf")))
    _fails(d, "lm_head.weight", "NaN or inf")


def test_quant_model_validate_checks_numbers():
    qm = random_model(CFG, seed=0)
    qm.layers[1].ffn_norm[3] = np.inf
    with pytest.raises(CheckpointError, match=r"layers\.1\.ffn_norm: contains NaN or inf"):
        qm.validate()
    qm = random_model(CFG, seed=0)
    qm.layers[0].up.scale = np.float32(np.nan)
    with pytest.raises(CheckpointError, match=r"layers\.0\.up: weight scale"):
        qm.validate()


def _rewrite_header(f: Path, fn) -> None:
    """Change a safetensors file's JSON header in place (the data stays)."""
    raw = f.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    fn(header)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    f.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n:])


@pytest.mark.parametrize("field,value,needle", [
    ("data_offsets", ["0", "16"], "data_offsets"),
    ("data_offsets", [0.0, 16.0], "data_offsets"),
    ("data_offsets", [0], "data_offsets"),
    ("data_offsets", [True, 16], "data_offsets"),
    ("shape", [64.0], "shape"),
    ("shape", [-1, -64], "shape"),
    ("shape", [2**50], "shape"),
    ("dtype", ["F32"], "dtype"),
])
def test_safetensors_header_field_types(ckpt, field, value, needle):
    name = "model.norm.weight"
    _rewrite_header(ckpt / "model.safetensors", lambda h: h[name].__setitem__(field, value))
    _fails(ckpt, "model.safetensors", name, needle)


def _shard_index(tmp_path: Path) -> tuple[Path, Path, dict]:
    d = save_hf_bitnet(random_model(CFG, seed=0), tmp_path / "s", max_shard_bytes=20000)
    index = d / "model.safetensors.index.json"
    return d, index, json.loads(index.read_text())


@pytest.mark.parametrize("target", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors",
                                    "", 7])
def test_shard_index_outside_checkpoint(tmp_path, target):
    d, index, data = _shard_index(tmp_path)
    (tmp_path / "outside.safetensors").write_bytes((d / next(iter(data["weight_map"].values()))).read_bytes())
    first = next(iter(data["weight_map"]))
    data["weight_map"][first] = target
    index.write_text(json.dumps(data))
    msg = _fails(d, "model.safetensors.index.json")
    assert "outside the checkpoint directory" in msg or "not a file name" in msg, msg
    assert "header bytes" not in msg  # the file named was never read


def test_shard_symlinked_inside_checkpoint_loads(tmp_path):
    """Shards may be symbolic links (the Hugging Face cache links snapshots to its blobs folder)."""
    d, _, data = _shard_index(tmp_path)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for name in set(data["weight_map"].values()):
        (d / name).rename(blobs / name)
        (d / name).symlink_to(Path("..") / "blobs" / name)
    qm, _ = load_model(d)
    assert qm.config.n_layers == CFG.n_layers


def test_shard_not_a_regular_file(tmp_path):
    d, _, data = _shard_index(tmp_path)
    name = sorted(set(data["weight_map"].values()))[0]
    (d / name).unlink()
    (d / name).mkdir()
    _fails(d, name, "not a regular file")


def test_model_path_of_the_wrong_kind(tmp_path):
    import os
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    msg = _fails(fifo, "not a regular file or a directory")
    assert "no such file" not in msg
    ck = tmp_path / "ck"
    ck.mkdir()
    os.mkfifo(ck / "config.json")  # reading it would wait for a writer forever
    _fails(ck, "config.json", "not a regular file")


# ---- GGUF metadata of the wrong type, non-finite numbers ----

GCFG = ModelConfig(hidden_size=256, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=512, vocab_size=300,
                   act="silu", max_context=64, rope_theta=10000.0, name="g")


def _gguf(tmp_path: Path, monkeypatch, method: str, put, **kw) -> Path:
    """The GGUF test model written with GGUFWriter.<method> replaced by put(writer, value)."""
    import gguf
    from shared_gguf import f16_scaled, write_gguf

    monkeypatch.setattr(gguf.GGUFWriter, method, put)
    return write_gguf(f16_scaled(GCFG), tmp_path / "m.gguf", **kw)


@pytest.mark.parametrize("method,put,needles", [
    ("add_block_count", lambda w, v: w.add_string(f"{w.arch}.block_count", str(v)),
     ("bitnet.block_count", "must be an integer", "str")),
    ("add_block_count", lambda w, v: w.add_float32(f"{w.arch}.block_count", float(v)),
     ("bitnet.block_count", "must be an integer")),
    ("add_block_count", lambda w, v: w.add_array(f"{w.arch}.block_count", [v]),
     ("bitnet.block_count", "must be an integer", "list")),
    ("add_head_count", lambda w, v: w.add_bool(f"{w.arch}.attention.head_count", True),
     ("attention.head_count", "must be an integer")),
    ("add_rope_freq_base", lambda w, v: w.add_string(f"{w.arch}.rope.freq_base", "10000"),
     ("rope.freq_base", "must be a number")),
    ("add_rope_freq_base", lambda w, v: w.add_float32(f"{w.arch}.rope.freq_base", float("nan")),
     ("rope.freq_base", "finite")),
    ("add_layer_norm_rms_eps", lambda w, v: w.add_float32(f"{w.arch}.attention.layer_norm_rms_epsilon",
                                                          float("inf")),
     ("layer_norm_rms_epsilon", "finite")),
    ("add_context_length", lambda w, v: w.add_uint64(f"{w.arch}.context_length", 2**40),
     ("bitnet.context_length", "at most")),
    ("add_eos_token_id", lambda w, v: w.add_string("tokenizer.ggml.eos_token_id", "2"),
     ("tokenizer.ggml.eos_token_id", "must be an integer")),
    ("add_architecture", lambda w: w.add_uint32("general.architecture", 7),
     ("general.architecture", "must be a string")),
])
def test_gguf_metadata_types(tmp_path, monkeypatch, method, put, needles):
    _fails(_gguf(tmp_path, monkeypatch, method, put), "m.gguf", *needles)


def test_gguf_nonfinite_embedding(tmp_path):
    from shared_gguf import f16_scaled, write_gguf

    def tweak(name, data):
        if name == "token_embd.weight":
            data = data.copy()
            data[5, 1] = np.inf
        return None if name != "token_embd.weight" else (data, __import__("gguf").GGMLQuantizationType.F32)
    p = write_gguf(f16_scaled(GCFG), tmp_path / "m.gguf", tweak=tweak)
    _fails(p, "token_embd.weight", "NaN or inf", "row 5")
