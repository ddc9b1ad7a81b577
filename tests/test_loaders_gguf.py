"""GGUF loader against files written by gguf-py (GGUFWriter + its numpy TQ1_0/TQ2_0 quantizers) and, for
bitnet.cpp's I2_S, by quantize_i2s below (tests/test_loaders_i2s.py)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders import detect_format, load_model
from edgellm.models.loaders.gguf_loader import tq1_codes, tq2_codes
from edgellm.models.loaders.i2s import I2S_TYPE
from edgellm.models.random_model import random_model

Q = gguf.GGMLQuantizationType
I2S = "I2_S"  # write_gguf's qtype for bitnet.cpp's I2_S (GGML type 36, unknown to gguf-py)
LINEARS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
           "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
CFG = ModelConfig(hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=512, vocab_size=300,
                  act="silu", max_context=64, rope_theta=10000.0, name="tiny-gguf")


def f16_scaled(cfg: ModelConfig, seed: int = 0):
    """A random model whose weight scales are 1/d for fp16 d, as TQ blocks can carry them."""
    qm = random_model(cfg, seed)
    for layer in qm.layers:
        for lin in layer.linears().values():
            d = np.float32(np.float16(np.float32(1.0) / lin.scale))
            lin.scale = np.float32(1.0) / d
    return qm


def quantize_i2s(w: np.ndarray) -> np.ndarray:
    """bitnet.cpp's quantize_i2_s (microsoft/BitNet src/ggml-bitnet-mad.cpp, the x86 ACT_PARALLEL
    layout; docs/weight_format.md) in numpy: scale = max|w| (double, stored as float32), code 1 for
    |w| < 1e-6, else 2 where w * scale > 0 and 0 otherwise; element 128b + 32g + p goes to bits
    (6 - 2g) of byte 32b + p; the scale follows the n/4 code bytes, in a 32-byte tail."""
    flat = np.asarray(w, np.float32).astype(np.float64).reshape(-1)
    n = flat.size
    assert n % 128 == 0
    scale = float(np.max(np.abs(flat))) if n else 0.0
    q = np.where(np.abs(flat) < 1e-6, 1, np.where(flat * scale > 0, 2, 0)).astype(np.uint8)
    q = q.reshape(n // 128, 4, 32)
    out = np.zeros(n // 4 + 32, np.uint8)
    out[: n // 4] = ((q[:, 0] << 6) | (q[:, 1] << 4) | (q[:, 2] << 2) | q[:, 3]).reshape(-1)
    out[n // 4: n // 4 + 4] = np.array([scale], "<f4").view(np.uint8)
    return out


def patch_tensor_info(path: Path, name: str, dims: list[int] | None = None, type_id: int | None = None,
                      offset: int | None = None) -> None:
    """Rewrite a 2-D tensor's GGUF info in place (dims innermost first, GGML type, data offset)."""
    data = bytearray(path.read_bytes())
    key = struct.pack("<Q", len(name.encode())) + name.encode() + struct.pack("<I", 2)
    at = data.index(key) + len(key)
    if dims is not None:
        data[at:at + 16] = struct.pack("<2Q", *dims)
    if type_id is not None:
        data[at + 16:at + 20] = struct.pack("<I", type_id)
    if offset is not None:
        data[at + 20:at + 28] = struct.pack("<Q", offset)
    path.write_bytes(bytes(data))


def write_gguf(qm, path: Path, qtype=Q.TQ2_0, arch: str = "bitnet", tokenizer_json: str | None = None,
               tweak: Callable[[str, np.ndarray], tuple[np.ndarray, object]] | None = None,
               meta: Callable[[gguf.GGUFWriter], None] | None = None) -> Path:
    """Write qm with llama.cpp's bitnet tensor names; tweak(name, float_data) may replace a tensor (or
    return (data, raw I2_S bytes));
    meta(writer) may add metadata. qtype I2S writes bitnet.cpp's I2_S linears (gguf-py cannot: they
    go in as I8 placeholders of the same size whose tensor info is then patched to type 36)."""
    c = qm.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.n_layers)
    w.add_context_length(c.max_context)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.ffn_size)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_eps)
    w.add_bos_token_id(c.bos_id)
    w.add_eos_token_id(c.eos_id)
    if tokenizer_json is not None:
        w.add_string("tokenizer.huggingface.json", tokenizer_json)
    if meta is not None:
        meta(w)
    i2s: dict[str, tuple[int, ...]] = {}

    def put(name: str, data: np.ndarray, qt) -> None:
        if tweak is not None:
            data, qt = tweak(name, data) or (data, qt)
        if isinstance(qt, np.ndarray) or qt == I2S:  # an ndarray: the I2_S bytes to write
            i2s[name] = data.shape
            raw = qt if isinstance(qt, np.ndarray) else quantize_i2s(data)
            w.add_tensor(name, raw.reshape(1, -1), raw_dtype=Q.I8)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qt), raw_dtype=qt)

    put("token_embd.weight", qm.embed_rows(np.arange(c.vocab_size)), Q.BF16)
    for i, layer in enumerate(qm.layers):
        p = f"blk.{i}."
        for n in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"):
            put(p + n + ".weight", np.asarray(getattr(layer, n), np.float32), Q.F32)
        for n, gn in LINEARS.items():
            lin = layer.linears()[n]
            d = np.float32(1.0) / lin.scale  # dequantized weight = trit * d
            put(p + gn + ".weight", lin.dense().astype(np.float32) * d, qtype)
    put("output_norm.weight", qm.final_norm, Q.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for name, (rows, cols) in i2s.items():
        patch_tensor_info(path, name, dims=[cols, rows], type_id=I2S_TYPE)
    return path


def _logits(qm) -> np.ndarray:
    g = GoldenModel(qm)
    return g.forward(np.array([1, 9, 250, 3, 3, 77]), g.new_cache(8))


@pytest.mark.parametrize("qtype", [Q.TQ1_0, Q.TQ2_0])
def test_roundtrip_through_gguf_bit_exact(tmp_path, qtype):
    qm = f16_scaled(CFG, seed=4)
    path = write_gguf(qm, tmp_path / "m.gguf", qtype)
    assert detect_format(path) == "gguf"
    qm2, tok = load_model(path)
    assert tok is None
    assert qm2.config.to_dict() | {"name": ""} == qm.config.to_dict() | {"name": ""}
    for a, b in zip(qm.layers, qm2.layers, strict=True):
        for n in LINEARS:
            np.testing.assert_array_equal(a.linears()[n].packed, b.linears()[n].packed)
            assert a.linears()[n].scale == b.linears()[n].scale
    np.testing.assert_array_equal(qm2.embed, qm.embed)
    assert np.array_equal(_logits(qm), _logits(qm2))


def test_bitnet_b158_arch_is_relu2(tmp_path):
    cfg = ModelConfig(**(CFG.to_dict() | {"act": "relu2"}))
    qm = f16_scaled(cfg, seed=1)
    qm2, _ = load_model(write_gguf(qm, tmp_path / "r.gguf", arch="bitnet-b1.58"))
    assert qm2.config.act == "relu2"
    assert np.array_equal(_logits(qm), _logits(qm2))


@pytest.mark.parametrize("qtype,decode", [(Q.TQ1_0, tq1_codes), (Q.TQ2_0, tq2_codes)])
def test_block_decoders_match_gguf_dequantize(qtype, decode):
    rng = np.random.default_rng(0)
    t = rng.integers(-1, 2, (6, 512)).astype(np.float32)
    x = t * rng.uniform(0.1, 2, (6, 2)).repeat(256, axis=1).astype(np.float32)  # per-block scales
    raw = gguf.quants.quantize(x, qtype)
    codes, dbits = decode(raw.reshape(6, 2, -1))
    mine = (codes.astype(np.float32) - 1) * dbits.view(np.float16).astype(np.float32)[..., None]
    np.testing.assert_array_equal(mine.reshape(6, 512), gguf.quants.dequantize(raw, qtype))
    np.testing.assert_array_equal(codes.reshape(6, 512).astype(np.float32) - 1, t)


def test_float_linears_and_tokenizer(tmp_path):
    """F16 ternary*d linears load exactly; an embedded tokenizer.huggingface.json is returned."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    tk = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1, "world": 2}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    qm = f16_scaled(CFG, seed=2)

    def f16_q(name: str, data: np.ndarray):
        return (data, Q.F16) if name == "blk.1.attn_q.weight" else None
    qm2, tok = load_model(write_gguf(qm, tmp_path / "f.gguf", tokenizer_json=tk.to_str(), tweak=f16_q))
    assert np.array_equal(_logits(qm), _logits(qm2))
    assert tok is not None and tok.encode("hello world") == [1, 2]


def _err(tmp_path, tweak, qtype=Q.TQ2_0) -> str:
    path = write_gguf(f16_scaled(CFG), tmp_path / "bad.gguf", qtype, tweak=tweak)
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert "\n" not in msg and "bad.gguf" in msg
    return msg


def test_per_block_scales_rejected(tmp_path):
    def two_scales(name, data):
        if name != "blk.0.ffn_up.weight":
            return None
        data = data.copy()
        data[100:] *= np.float32(2.0)  # the blocks of rows 100.. get another d
        return data, Q.TQ2_0
    msg = _err(tmp_path, two_scales)
    assert "blk.0.ffn_up.weight" in msg and "per-block" in msg


def test_unsupported_quant_type_rejected(tmp_path):
    msg = _err(tmp_path, lambda n, d: (d, Q.Q4_0) if n == "blk.1.attn_k.weight" else None)
    assert "blk.1.attn_k.weight" in msg and "Q4_0" in msg


def test_tq2_code3_and_bad_scale_rejected(tmp_path, monkeypatch):
    real = gguf.quants.quantize

    def corrupt(kind):
        def q(data, qt):
            out = real(data, qt)
            if qt == Q.TQ2_0 and data.shape == (CFG.q_size, CFG.hidden_size) and corrupt.first:
                corrupt.first = False
                b = out.reshape(out.shape[0], -1, 66).copy()
                if kind == "code3":
                    b[3, 0, 5] = 0xFF
                else:
                    b[..., 64:66] = np.full(b.shape[:2], kind, np.float16)[..., None].view(np.uint8)
                out = b.reshape(out.shape)
            return out
        corrupt.first = True
        return q
    for kind, want in (("code3", "code 3"), (-0.5, "finite and positive"), (np.inf, "finite and positive")):
        monkeypatch.setattr(gguf.quants, "quantize", corrupt(kind))
        msg = _err(tmp_path, None)
        assert "blk.0.attn_q.weight" in msg and want in msg


def test_truncated_and_foreign_files(tmp_path):
    path = write_gguf(f16_scaled(CFG), tmp_path / "t.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="t.gguf"):
        load_model(path)
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 5)
    with pytest.raises(CheckpointError, match="t.gguf"):
        load_model(path)
    other = write_gguf(f16_scaled(CFG), tmp_path / "l.gguf", arch="gemma")
    with pytest.raises(CheckpointError, match="architecture 'gemma'"):
        load_model(other)
    # llama is a low-bit architecture now (gguf_llama.py): its ternary TQ2_0 tensors name their type
    other = write_gguf(f16_scaled(CFG), tmp_path / "l.gguf", arch="llama")
    with pytest.raises(CheckpointError, match=r"blk\.0\.attn_q\.weight: unsupported GGUF tensor type TQ2_0"):
        load_model(other)


@pytest.mark.parametrize("qtype", [Q.TQ1_0, Q.TQ2_0])
def test_loaded_weights_equal_gguf_dequantize(tmp_path, qtype):
    """Every linear as loaded (trits, weight_scale = 1 / d) is gguf-py's dequantization of the file's
    tensor (trit * d)."""
    path = write_gguf(f16_scaled(CFG, seed=6), tmp_path / "d.gguf", qtype)
    qm, _ = load_model(path)
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    for i, layer in enumerate(qm.layers):
        for n, gn in LINEARS.items():
            lin = layer.linears()[n]
            want = gguf.quants.dequantize(np.asarray(tensors[f"blk.{i}.{gn}.weight"].data), qtype)
            d = np.float32(np.abs(want).max())  # one scale per tensor: dequantized = trit * d
            np.testing.assert_array_equal(lin.dense().astype(np.float32) * d, want)
            assert lin.scale == np.float32(1.0) / d
