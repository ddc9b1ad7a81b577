"""llama / qwen2 GGUF files with mixed group-quantized tensors -> QuantModel (loaders/gguf_llama.py)."""

from __future__ import annotations

from pathlib import Path

import gguf
import gguf.quants
import numpy as np
import pytest

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig, llama3_freq_factors
from edgellm.models.loaders import gguf_quants, load_model
from edgellm.models.loaders.gguf_loader import load_gguf
from edgellm.models.loaders.gguf_write import quantize, tensor_type, write_gguf
from edgellm.models.random_model import random_float_weights as float_weights
from edgellm.models.weights import FloatWeights, Int8Head, LowBitLinear

LLAMA = ModelConfig(name="t-llama", hidden_size=256, n_layers=3, n_heads=4, n_kv_heads=2, ffn_size=512,
                    vocab_size=320, act="silu", subln=False, rope_theta=500000.0, tied_embeddings=False,
                    max_context=128, rope_freq_factors=llama3_freq_factors(64, 500000.0, 8.0, 1.0, 4.0, 32))
QWEN2 = ModelConfig(name="t-qwen2", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=1, ffn_size=512,
                    vocab_size=320, act="silu", subln=False, rope_theta=1000000.0, rms_eps=1e-6,
                    tied_embeddings=True, max_context=128, qkv_bias=True)


@pytest.mark.parametrize("arch,cfg,mix", [("llama", LLAMA, "Q4_K_M"), ("llama", LLAMA, "Q4_0"),
                                          ("qwen2", QWEN2, "Q2_K"), ("qwen2", QWEN2, "Q8_0")])
def test_written_gguf_loads_with_gguf_py_values(tmp_path: Path, arch: str, cfg: ModelConfig,
                                                mix: str) -> None:
    fw = float_weights(cfg)
    path = tmp_path / f"{arch}-{mix}.gguf"
    types = write_gguf(path, fw, arch, mix)
    qm, _ = load_model(path)
    c = qm.config
    assert (c.qkv_bias, c.tied_embeddings, c.rope_freq_factors, c.act, c.subln) == (
        cfg.qkv_bias, cfg.tied_embeddings, cfg.rope_freq_factors, "silu", False)
    got = (c.hidden_size, c.n_heads, c.n_kv_heads, c.ffn_size, c.head_dim)
    assert got == (256, 4, cfg.n_kv_heads, 512, 64)
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    for i, L in enumerate(qm.layers):
        for n, gn in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
                      ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
            lin = L.linears()[n]
            t = tensors[f"blk.{i}.{gn}.weight"]
            assert isinstance(lin, LowBitLinear) and lin.source == t.tensor_type.name == types[t.name]
            want = gguf.quants.dequantize(t.data, t.tensor_type).reshape(lin.shape)
            got = lin.dequantize()
            if arch == "llama" and n in ("q", "k"):  # stored permuted; loaded in HF row order
                from edgellm.models.loaders.gguf_llama import permute_rows

                got = got[permute_rows(got.shape[0], cfg.n_heads if n == "q" else cfg.n_kv_heads)]
            assert np.array_equal(got + 0, want + 0), t.name
            # HF row order: close to the float weights written (a wrong permutation is far off)
            err = np.abs(lin.dequantize() - fw.layers[i][n]).max() / np.abs(fw.layers[i][n]).max()
            assert err < (0.5 if types[t.name] in ("Q2_K", "Q3_K") else 0.15), (t.name, err)
        if cfg.qkv_bias:
            assert np.array_equal(L.q_bias, fw.layers[i]["q_bias"])
    assert isinstance(qm.lm_head, Int8Head)
    if mix == "Q4_K_M":
        assert {types[f"blk.{i}.attn_v.weight"] for i in range(3)} == {"Q4_K", "Q6_K"}
        assert types["output.weight"] == "Q6_K"
    if mix == "Q2_K":
        assert {"Q2_K", "Q3_K", "Q4_K"} <= set(types.values())


def test_lowbit_head_option(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_gguf(path, float_weights(QWEN2), "qwen2", "Q4_K_M")
    qm, _ = load_gguf(path, lowbit_head=True)
    assert isinstance(qm.lm_head, LowBitLinear) and qm.lm_head.source == "Q6_K"  # tied: token_embd
    emb = qm.embed_rows(np.arange(QWEN2.vocab_size))
    assert np.array_equal(qm.lm_head.dequantize(), emb)


@pytest.mark.parametrize("mix,want", [("Q4_0", "Q6_K"), ("Q4_K_M", "Q6_K"), ("Q2_K", "Q6_K"),
                                      ("Q8_0", "Q8_0")])
def test_tied_token_embd_takes_the_output_type(tmp_path: Path, mix: str, want: str) -> None:
    """llama.cpp (llama_tensor_get_type) quantizes a tied model's token_embd, its LM head too, as the
    output tensor; an untied model's token_embd keeps the mix's default type. The loader reads the
    K-quant embedding: its rows are gguf-py's dequantized values."""
    path = tmp_path / "tied.gguf"
    fw = float_weights(QWEN2)
    types = write_gguf(path, fw, "qwen2", mix)
    assert "output.weight" not in types and types["token_embd.weight"] == want
    head = tensor_type(mix, "output", 0, 2, 256)
    assert tensor_type(mix, "token_embd", 0, 2, 256, has_output=False) == head == want
    t = {t.name: t for t in gguf.GGUFReader(path).tensors}["token_embd.weight"]
    qm, _ = load_model(path)
    rows = gguf.quants.dequantize(t.data, t.tensor_type).reshape(QWEN2.vocab_size, QWEN2.hidden_size)
    assert np.array_equal(qm.embed_rows(np.arange(QWEN2.vocab_size)), rows)
    untied = write_gguf(tmp_path / "untied.gguf", float_weights(LLAMA), "llama", mix)
    base = {"Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K", "Q8_0": "Q8_0"}[mix]
    assert untied["token_embd.weight"] == base and untied["output.weight"] == want


def test_float_linear_requantized_or_refused(tmp_path: Path) -> None:
    """A F16 linear is quantized to Q8_0 by gguf-py (listed in meta), or refused on request."""
    fw = float_weights(QWEN2)
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "qwen2")
    _minimal(w, QWEN2)
    for name, arr in _tensors(fw).items():
        if name == "blk.1.ffn_up.weight":
            w.add_tensor(name, arr.astype(np.float16))
        elif arr.ndim == 2:
            w.add_tensor(name, quantize(arr, "Q8_0"), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, arr)
    _close(w)
    qm, _ = load_gguf(path)
    assert qm.meta["requantized"] == ["blk.1.ffn_up.weight: F16 -> Q8_0"]
    q8 = gguf.GGMLQuantizationType.Q8_0
    up16 = fw.layers[1]["up"].astype(np.float16).astype(np.float32)
    want = gguf.quants.dequantize(gguf.quants.quantize(up16, q8), q8)
    assert np.array_equal(qm.layers[1].up.dequantize() + 0, want + 0)
    with pytest.raises(CheckpointError, match=r"blk\.1\.ffn_up\.weight: F16 linear"):
        load_gguf(path, float_linears="error")


def _minimal(w, cfg: ModelConfig) -> None:
    w.add_block_count(cfg.n_layers)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.ffn_size)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.n_kv_heads)
    w.add_context_length(cfg.max_context)
    w.add_rope_freq_base(cfg.rope_theta)


def _close(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _tensors(fw: FloatWeights) -> dict[str, np.ndarray]:
    out = {"token_embd.weight": fw.embed, "output_norm.weight": fw.final_norm}
    names = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
             "up": "ffn_up", "down": "ffn_down", "attn_norm": "attn_norm", "ffn_norm": "ffn_norm"}
    for i, L in enumerate(fw.layers):
        for n, gn in names.items():
            out[f"blk.{i}.{gn}.weight"] = L[n]
        for n in ("q", "k", "v"):
            if f"{n}_bias" in L:
                out[f"blk.{i}.attn_{n}.bias"] = L[f"{n}_bias"]
    return out


def _write_with(tmp_path: Path, replace: dict[str, tuple[np.ndarray, object]], arch: str = "qwen2") -> Path:
    """A qwen2 Q8_0 file whose tensors in `replace` are written as (raw array, raw_dtype or None)."""
    fw = float_weights(QWEN2)
    path = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(path), arch)
    _minimal(w, QWEN2)
    for name, arr in _tensors(fw).items():
        if name in replace:
            raw, dt = replace[name]
            w.add_tensor(name, raw, raw_dtype=dt) if dt is not None else w.add_tensor(name, raw)
        elif arr.ndim == 2:
            w.add_tensor(name, quantize(arr, "Q8_0"), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, arr)
    _close(w)
    return path


def test_unsupported_tensor_type_names_itself_and_the_list(tmp_path: Path) -> None:
    nl = gguf.GGMLQuantizationType.IQ4_NL
    raw = np.zeros((512, 256 // 32 * 18), np.uint8)
    path = _write_with(tmp_path, {"blk.0.ffn_gate.weight": (raw, nl)})
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert "blk.0.ffn_gate.weight" in msg and "IQ4_NL" in msg and "\n" not in msg
    assert all(t in msg for t in gguf_quants.SUPPORTED)


def test_unsupported_architecture_names_the_list(tmp_path: Path) -> None:
    path = _write_with(tmp_path, {}, arch="gemma")
    with pytest.raises(CheckpointError,
                       match=r"unsupported GGUF architecture 'gemma' \(one of .*'llama'.*'qwen2'"):
        load_model(path)


def test_inconsistent_blocks_are_one_line_errors(tmp_path: Path) -> None:
    """A Q4_K tensor declared for a row length that is not a multiple of 256 (shape [512, 96] cannot hold
    whole super-blocks) and a non-finite block scale name their tensor."""
    raw = np.zeros((4, 34), np.uint8)
    raw[2, :2] = np.array([np.nan], np.float16).view(np.uint8)
    with pytest.raises(CheckpointError, match=r"Q8_0 block scale is NaN or inf \(row 2\)"):
        gguf_quants.decode("Q8_0", raw, 4, 32, "blk.0.attn_q.weight")
    good = quantize(float_weights(QWEN2).layers[0]["gate"], "Q8_0")
    bad = good.copy()
    bad[7, :2] = np.array([np.inf], np.float16).view(np.uint8)
    path = _write_with(tmp_path, {"blk.0.ffn_gate.weight": (bad, gguf.GGMLQuantizationType.Q8_0)})
    with pytest.raises(CheckpointError,
                       match=r"bad\.gguf: tensor blk\.0\.ffn_gate\.weight: Q8_0 block scale"):
        load_model(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_gguf(path, float_weights(QWEN2), "qwen2", "Q4_0")
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:len(data) - 5000])
    with pytest.raises(CheckpointError) as e:
        load_model(cut)
    assert "cut.gguf" in str(e.value) and "\n" not in str(e.value)


def test_mix_types() -> None:
    assert tensor_type("Q4_K_M", "attn_v", 0, 16, 2048) == "Q6_K"
    assert tensor_type("Q4_K_M", "attn_v", 3, 16, 2048) == "Q4_K"
    assert tensor_type("Q4_K_M", "ffn_gate", 0, 16, 2048) == "Q4_K"
    assert tensor_type("Q4_K_M", "ffn_gate", 0, 16, 896 + 32) == "Q5_0"  # llama.cpp's fallback
    assert tensor_type("Q2_K", "attn_q", 5, 24, 896) == "Q4_0"  # 896 is not a multiple of 256
    assert tensor_type("Q2_K", "attn_v", 5, 24, 896) == "Q5_0"  # Q4_K falls back to Q5_0
    with pytest.raises(CheckpointError, match="unknown quantization mix"):
        tensor_type("Q3_K_L", "attn_v", 0, 1, 256)


def test_mutated_lowbit_files_load_or_fail_in_one_line(tmp_path: Path) -> None:
    """Seeded byte flips and truncations of a Q4_K_M llama file: load_model either loads (finite
    weights) or raises one CheckpointError line; nothing else escapes."""
    small = ModelConfig(name="f", hidden_size=256, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=256,
                        vocab_size=64, act="silu", subln=False, tied_embeddings=True, max_context=32)
    src = tmp_path / "src.gguf"
    write_gguf(src, float_weights(small), "llama", "Q4_K_M")
    data = src.read_bytes()
    rng = np.random.default_rng(17)
    for case in range(24):
        buf = bytearray(data)
        if case % 3 == 0:
            buf = buf[:int(rng.integers(8, len(buf)))]
        else:
            top = min(len(buf), 2048) if case % 3 == 1 else len(buf)  # the header, or anywhere
            hot = int(rng.integers(0, top))
            for _ in range(int(rng.integers(1, 6))):
                buf[min(hot + int(rng.integers(0, 16)), len(buf) - 1)] = int(rng.integers(0, 256))
        p = tmp_path / f"m{case}.gguf"
        p.write_bytes(bytes(buf))
        try:
            qm, _ = load_model(p)
        except CheckpointError as e:
            assert "\n" not in str(e)
            continue
        qm.validate()
