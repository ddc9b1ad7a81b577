"""bitnet.cpp's I2_S tensors (GGML type 36): files written by shared_gguf.quantize_i2s, which follows
bitnet.cpp's quantize_i2_s (docs/weight_format.md), load to the same model as TQ1_0/TQ2_0 files."""

from __future__ import annotations

import numpy as np
import pytest
from shared_gguf import (
    CFG,
    I2S,
    LINEARS,
    Q,
    f16_scaled,
    golden_logits,
    patch_tensor_info,
    quantize_i2s,
    write_gguf,
)

from edgellm.errors import CheckpointError
from edgellm.models.loaders import load_model
from edgellm.models.loaders.i2s import i2s_decode, reader


def test_writer_layout_by_hand() -> None:
    """The documented layout on single elements: element 128b + 32g + p -> byte 32b + p, bits 6 - 2g;
    codes 0/1/2 = -1/0/+1; float32 max|w| right after the n/4 code bytes, 32-byte tail."""
    w = np.zeros((2, 128), np.float32)
    w[0, 0], w[0, 32], w[0, 127], w[1, 5], w[1, 64 + 7] = 0.5, -0.5, 0.5, -0.5, 0.5
    raw = quantize_i2s(w)
    assert raw.size == 256 // 4 + 32
    zero = 0b01010101
    want = np.full(64, zero, np.uint8)
    want[0] = 0b10_00_01_01  # element 0 (+1) in bits 7-6, element 32 (-1) in bits 5-4
    want[31] = 0b01_01_01_10  # element 127 = 96 + 31: bits 1-0
    want[32 + 5] = 0b00_01_01_01  # row 1 is block 1: element 128 + 5 (-1)
    want[32 + 7] = 0b01_01_10_01  # element 128 + 64 + 7 (+1): bits 3-2
    np.testing.assert_array_equal(raw[:64], want)
    assert raw[64:68].view("<f4")[0] == np.float32(0.5) and not raw[68:].any()


@pytest.mark.parametrize("shape", [(4, 128), (6, 512), (256, 256)])
def test_decode_is_exact(shape) -> None:
    rng = np.random.default_rng(1)
    t = rng.integers(-1, 2, shape).astype(np.float32)
    w = t * np.float32(0.0371)
    codes, scale = i2s_decode(quantize_i2s(w), *shape)
    assert scale == np.abs(w).max()
    np.testing.assert_array_equal((codes.astype(np.float32) - 1) * scale, w)


def test_i2s_and_tq_files_load_to_the_same_model(tmp_path) -> None:
    qm = f16_scaled(CFG, seed=5)
    models = {q: load_model(write_gguf(qm, tmp_path / f"{q}.gguf", qtype))[0]
              for q, qtype in (("i2s", I2S), ("tq2", Q.TQ2_0), ("tq1", Q.TQ1_0))}
    for other in ("tq2", "tq1"):
        for a, b in zip(models["i2s"].layers, models[other].layers, strict=True):
            for n in LINEARS:
                np.testing.assert_array_equal(a.linears()[n].packed, b.linears()[n].packed)
                assert a.linears()[n].scale == b.linears()[n].scale
    logits = golden_logits(models["i2s"])
    assert np.array_equal(logits, golden_logits(models["tq2"])) and np.array_equal(logits, golden_logits(qm))


def test_reader_keeps_other_tensors(tmp_path) -> None:
    """gguf-py reads every other tensor as before; the I2_S ones carry their logical shape."""
    path = write_gguf(f16_scaled(CFG), tmp_path / "m.gguf", I2S)
    r = reader(path)
    kinds = {t.name: t.tensor_type.name for t in r.tensors}
    assert kinds["blk.0.attn_q.weight"] == "I2_S" and kinds["token_embd.weight"] == "BF16"
    q = next(t for t in r.tensors if t.name == "blk.1.ffn_down.weight")
    assert list(q.shape) == [CFG.ffn_size, CFG.hidden_size] and q.n_bytes == q.n_elements // 4 + 32


def _err(path) -> str:
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert "\n" not in msg and path.name in msg
    return msg


def test_truncated_and_overlapping_i2s(tmp_path) -> None:
    path = write_gguf(f16_scaled(CFG), tmp_path / "t.gguf", I2S)
    last = next(t for t in reader(path).tensors if t.name == "blk.1.ffn_down.weight")
    data = path.read_bytes()
    path.write_bytes(data[:last.data_offset + last.n_bytes - 3])  # the scale's tail is cut
    msg = _err(path)
    assert "blk.1.ffn_down.weight" in msg and "truncated I2_S data" in msg
    path.write_bytes(data)
    up = next(t for t in reader(path).tensors if t.name == "blk.1.ffn_up.weight")
    start = reader(path).data_offset
    patch_tensor_info(path, "blk.1.ffn_up.weight", offset=up.data_offset - start - 64)
    assert "overlaps another tensor" in _err(path)


def test_bad_i2s_contents(tmp_path) -> None:
    def corrupt(how):
        def tweak(name, data):
            if name != "blk.0.attn_k.weight":
                return None
            raw = quantize_i2s(data)
            n = data.size
            if how == "code3":
                raw[7] |= 0b11
            else:
                raw[n // 4: n // 4 + 4] = np.array([how], "<f4").view(np.uint8)
            return data, raw
        return tweak
    for how, want in (("code3", "I2_S code 3 is not ternary"), (np.nan, "finite and positive"),
                      (-1.0, "finite and positive"), (0.0, "finite and positive")):
        msg = _err(write_gguf(f16_scaled(CFG), tmp_path / "b.gguf", I2S, tweak=corrupt(how)))
        assert "blk.0.attn_k.weight" in msg and want in msg
    path = write_gguf(f16_scaled(CFG), tmp_path / "s.gguf", I2S)
    patch_tensor_info(path, "blk.0.attn_k.weight", dims=[100, 3])
    assert "multiple of 128 elements" in _err(path)


def test_all_zero_i2s_tensor_loads(tmp_path) -> None:
    """max|w| = 0 (bitnet.cpp writes scale 0 for an all-zero tensor): any scale will do."""
    def zero(name, data):
        return (np.zeros_like(data), I2S) if name == "blk.0.attn_v.weight" else None
    qm, _ = load_model(write_gguf(f16_scaled(CFG), tmp_path / "z.gguf", I2S, tweak=zero))
    assert not qm.layers[0].v.dense().any() and qm.layers[0].v.scale == 1.0
