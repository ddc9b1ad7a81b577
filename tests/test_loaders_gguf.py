"""GGUF loader against files written by gguf-py (GGUFWriter + its numpy TQ1_0/TQ2_0 quantizers) and, for
bitnet.cpp's I2_S, by shared_gguf.quantize_i2s (tests/test_loaders_i2s.py)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from shared_gguf import CFG, LINEARS, Q, f16_scaled, golden_logits, write_gguf

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import detect_format, load_model
from edgellm.models.loaders.gguf_loader import tq1_codes, tq2_codes


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
    assert np.array_equal(golden_logits(qm), golden_logits(qm2))


def test_bitnet_b158_arch_is_relu2(tmp_path):
    cfg = ModelConfig(**(CFG.to_dict() | {"act": "relu2"}))
    qm = f16_scaled(cfg, seed=1)
    qm2, _ = load_model(write_gguf(qm, tmp_path / "r.gguf", arch="bitnet-b1.58"))
    assert qm2.config.act == "relu2"
    assert np.array_equal(golden_logits(qm), golden_logits(qm2))


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
    assert np.array_equal(golden_logits(qm), golden_logits(qm2))
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
