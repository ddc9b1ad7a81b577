"""GPTQ directories (qweight, qzeros, scales, g_idx): the loader against a reference dequantization written
from AutoGPTQ's packing (int32 words, v1 zeros stored minus one), fixtures by models/loaders/gptq_write.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig, llama3_freq_factors
from edgellm.models.loaders import detect_format, load_model
from edgellm.models.loaders.gptq import pack_stream, unpack_stream
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.loaders.safetensors_io import Checkpoint
from edgellm.models.random_model import random_float_weights as float_weights
from edgellm.models.weights import LowBitLinear

LLAMA = ModelConfig(name="g-llama", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=512,
                    vocab_size=300, act="silu", subln=False, rope_theta=500000.0, tied_embeddings=False,
                    max_context=128, rope_freq_factors=llama3_freq_factors(64, 500000.0, 8.0, 1.0, 4.0, 32))
QWEN2 = ModelConfig(name="g-qwen2", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=1, ffn_size=512,
                    vocab_size=300, act="silu", subln=False, rope_theta=1000000.0, rms_eps=1e-6,
                    tied_embeddings=True, max_context=128, qkv_bias=True)
ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}


def ref_unpack_words(words: np.ndarray, bits: int) -> np.ndarray:
    """AutoGPTQ's unpacking along axis 0 of (W, cols) int32 words -> (W * 32 / bits, cols) values.
    2/4/8 bits: value j of a word at bits [bits*j, bits*j + bits). 3 bits: 32 values in 3 words (the pack
    loop of AutoGPTQ's QuantLinear: 10 values, a value split 2+1 bits, 10 values, a value split 1+2 bits,
    10 values)."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    if bits != 3:
        per = 32 // bits
        vals = [(u >> (bits * j)) & ((1 << bits) - 1) for j in range(per)]
        return np.stack(vals, 1).reshape(-1, u.shape[1])
    out = []
    for r in range(0, u.shape[0], 3):
        w0, w1, w2 = u[r], u[r + 1], u[r + 2]
        vals = [(w0 >> (3 * j)) & 7 for j in range(10)]
        vals.append(((w0 >> 30) & 3) | ((w1 & 1) << 2))
        vals += [(w1 >> (3 * j + 1)) & 7 for j in range(10)]
        vals.append(((w1 >> 31) & 1) | ((w2 & 3) << 1))
        vals += [(w2 >> (3 * j + 2)) & 7 for j in range(10)]
        out.append(np.stack(vals))
    return np.concatenate(out)


def ref_dequant(ck: Checkpoint, prefix: str, bits: int, fmt: str) -> np.ndarray:
    """w[o, i] = scales[g_idx[i], o] * (q[i, o] - zero[g_idx[i], o]) in float32, zero = stored + 1 (v1)."""
    q = ref_unpack_words(ck.raw(prefix + ".qweight"), bits)  # (in, out)
    z = ref_unpack_words(ck.raw(prefix + ".qzeros").T, bits).T  # (groups, out)
    if fmt == "gptq":
        z = z + 1
    s = ck.f32(prefix + ".scales")
    g = ck.raw(prefix + ".g_idx")
    return (s[g] * (q - z[g]).astype(np.float32)).T


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_stream_packing_roundtrip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    v = rng.integers(0, 1 << bits, (5, 64)).astype(np.uint8)
    words = pack_stream(v, bits)
    assert words.shape == (5, 64 * bits // 32) and words.dtype == np.int32
    assert np.array_equal(unpack_stream(words, bits, 64), v)
    assert np.array_equal(ref_unpack_words(words.T, bits).T, v)  # the stream is AutoGPTQ's layout


@pytest.mark.parametrize("arch,cfg,bits,group,sym,fmt", [
    ("llama", LLAMA, 4, 128, True, "gptq"), ("llama", LLAMA, 3, 64, False, "gptq"),
    ("qwen2", QWEN2, 2, 32, False, "gptq_v2"), ("qwen2", QWEN2, 8, -1, True, "gptq"),
    ("llama", LLAMA, 4, 128, False, "gptq")])
def test_loader_equals_reference_dequantization(tmp_path: Path, arch, cfg, bits, group, sym, fmt) -> None:
    fw = float_weights(cfg, seed=bits)
    fw.layers[0]["up"][3, :] = np.abs(fw.layers[0]["up"][3, :])  # asymmetric zero 0: v1 stores -1
    fw.layers[0]["up"][4, :] = 0.0  # a dead row
    if arch == "llama":
        fw.meta["rope_scaling"] = ROPE
    d = save_gptq(tmp_path / "m", fw, arch, bits, group, sym, fmt)
    assert detect_format(d) == "gptq"
    qm, _ = load_model(d)
    c = qm.config
    assert (c.qkv_bias, c.tied_embeddings, c.rope_freq_factors) == (cfg.qkv_bias, cfg.tied_embeddings,
                                                                     cfg.rope_freq_factors)
    ck = Checkpoint(d)
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for i, L in enumerate(qm.layers):
        for n, lin in L.linears().items():
            assert isinstance(lin, LowBitLinear) and lin.bits == bits
            want = ref_dequant(ck, f"model.layers.{i}.{names[n]}", bits, fmt)
            got = lin.dequantize()
            assert np.array_equal(got + 0, want + 0), (i, n)
            ref = fw.layers[i][n]
            if (i, n) == (0, "up"):  # the all-positive row: checked against the reference only
                if not sym and fmt == "gptq":  # v1's zero - 1 of a zero 0 reads back as 2^bits (AutoGPTQ)
                    assert np.all(lin.quant.mins[3] == -(lin.quant.scales[3] * np.float32(1 << bits)))
                got, ref = np.delete(got, 3, 0), np.delete(ref, 3, 0)
            err = np.abs(got - ref).max() / np.abs(ref).max()
            assert err < {2: 0.7, 3: 0.3, 4: 0.15, 8: 0.01}[bits], (i, n, err)
    if cfg.qkv_bias:
        assert np.array_equal(qm.layers[1].k_bias, fw.layers[1]["k_bias"])


def _dir(tmp_path: Path, **qc) -> Path:
    d = save_gptq(tmp_path / "m", float_weights(QWEN2), "qwen2", 4, 128, True, "gptq")
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"].update(qc)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _fails(path: Path, *needles: str) -> None:
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


def _with_g_idx(tmp_path: Path, g_idx: np.ndarray) -> Path:
    """A GPTQ directory whose layer-0 q_proj has this g_idx (256 inputs, group 128)."""
    d = save_gptq(tmp_path / "m", float_weights(QWEN2), "qwen2", 4, 128, True, "gptq")
    from edgellm.models.loaders.safetensors_io import write_safetensors

    ck = Checkpoint(d)
    names = sorted(ck.where)
    arrays = {n: ck.raw(n) for n in names}
    arrays["model.layers.0.self_attn.q_proj.g_idx"] = g_idx.astype(np.int32)
    tags = {n: ck.info(n).dtype for n in names}
    write_safetensors(d / "model.safetensors", [(n, tags[n], arrays[n].shape, lambda a=arrays[n]: a)
                                                for n in names])
    return d


def test_act_order_refused(tmp_path: Path) -> None:
    perm = np.random.default_rng(0).permutation(256)
    d = _with_g_idx(tmp_path, perm // 128)
    _fails(d, "model.layers.0.self_attn.q_proj.g_idx", "act-order", "desc_act")


def test_g_idx_out_of_range_is_invalid_not_act_order(tmp_path: Path) -> None:
    g_idx = np.arange(256) // 128
    g_idx[5] = 2  # two groups: 0..1
    with pytest.raises(CheckpointError) as e:
        load_model(_with_g_idx(tmp_path, g_idx))
    msg = str(e.value)
    assert "q_proj.g_idx: invalid g_idx: input 5 has group 2, out of range 0..1" in msg, msg
    assert "act-order" not in msg


def test_g_idx_wrong_length_named(tmp_path: Path) -> None:
    _fails(_with_g_idx(tmp_path, np.zeros(200)), "q_proj.g_idx: shape [200], expected [256]")


def test_bad_quantization_configs(tmp_path: Path) -> None:
    _fails(_dir(tmp_path, bits=5), "GPTQ bits 5 unsupported", "2, 3, 4, 8")
    _fails(_dir(tmp_path, checkpoint_format="marlin"), "checkpoint_format 'marlin'")
    _fails(_dir(tmp_path, group_size=96), "group_size 96 does not divide")
    d = _dir(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "mistral"
    (d / "config.json").write_text(json.dumps(cfg))
    _fails(d, "model_type 'mistral'")


def test_inconsistent_tensors(tmp_path: Path) -> None:
    """A qweight packed for another bit width (config says 8: the words are too few) names the tensor."""
    _fails(_dir(tmp_path, bits=8), "qweight", "I32", "expected I32")
