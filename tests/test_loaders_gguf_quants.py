"""GGUF block types -> GroupQuant: every type's dequantize() equals gguf-py's dequantization bit for bit."""

from __future__ import annotations

import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from edgellm.errors import CheckpointError
from edgellm.models.loaders import gguf_quants as gquants

# byte offsets of the fp16 fields of each block (d, dmin)
F16_FIELDS = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,), "Q2_K": (80, 82),
              "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def random_blocks(kind: str, rows: int, k: int, rng: np.random.Generator, zero_rows: int = 1) -> np.ndarray:
    """Random block bytes with finite fp16 scales of both signs (some zero, some subnormal); the first
    `zero_rows` rows are all-zero blocks (what quantizers write for zero weights)."""
    _, _, per_block, nbytes = gquants.FORMATS[kind]
    nb = rows * (k // per_block)
    b = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    for off in F16_FIELDS[kind]:
        d = rng.standard_normal(nb).astype(np.float32) * np.float32(0.05)
        d[::7] = 0.0
        d[3::11] = np.float32(3e-6)  # a subnormal binary16
        d[5::13] *= -1000.0
        b[:, off:off + 2] = d.astype(np.float16)[:, None].view(np.uint8)
    b = b.reshape(rows, -1)
    b[:zero_rows] = 0
    return b


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal float32 bit patterns, +0.0 and -0.0 identified (x + 0.0 maps -0.0 to +0.0)."""
    a = (np.asarray(a, np.float32) + np.float32(0.0)).view(np.uint32)
    b = (np.asarray(b, np.float32) + np.float32(0.0)).view(np.uint32)
    return a.shape == b.shape and bool(np.array_equal(a, b))


@pytest.mark.parametrize("kind", list(gquants.FORMATS))
def test_random_blocks_match_gguf_py(kind: str) -> None:
    rng = np.random.default_rng(sum(map(ord, kind)))
    rows, k = 6, 512
    raw = random_blocks(kind, rows, k, rng)
    want = gq.dequantize(raw, T[kind])
    gqt = gquants.decode(kind, raw, rows, k, "blk.0.ffn_up.weight")
    bits, group = gquants.FORMATS[kind][:2]
    assert (gqt.bits, gqt.group, gqt.shape) == (bits, group, (rows, k))
    assert int(gqt.codes.max()) < 1 << bits
    assert np.any(gqt.scales < 0) and np.all(gqt.dequantize()[0] == 0)  # negative scales, zero blocks
    assert same_bits(gqt.dequantize(), want)


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_quantized_real_weights_match_gguf_py(kind: str) -> None:
    """Blocks written by gguf-py's own quantizer from float weights (zero rows included)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 256)).astype(np.float32)
    w[2] = 0.0
    raw = gq.quantize(w, T[kind])
    gqt = gquants.decode(kind, raw, 8, 256, "t")
    assert same_bits(gqt.dequantize(), gq.dequantize(raw, T[kind]))


def test_signed_zero_is_the_only_difference() -> None:
    """gguf-py's d * 0 with d < 0 is -0.0; the GroupQuant form gives +0.0: equal values, not bits,
    which same_bits allows and nothing else does."""
    raw = np.zeros((1, 18), np.uint8)
    raw[0, :2] = np.array([-1.0], np.float16).view(np.uint8)
    raw[0, 2:] = 0x88  # code 8 everywhere: weight 0
    want = gq.dequantize(raw, T.Q4_0)
    got = gquants.decode("Q4_0", raw, 1, 32, "t").dequantize()
    assert np.signbit(want).all() and not np.signbit(got).any()
    assert same_bits(got, want)
    assert not same_bits(got + np.float32(1e-30), want)


def test_k_quant_group_structure() -> None:
    """Q4_K: eight sub-blocks of 32 per super-block with s = d * sc, m = -dmin * mn."""
    raw = np.zeros((1, 144), np.uint8)
    raw[0, 0:2] = np.array([0.5], np.float16).view(np.uint8)
    raw[0, 2:4] = np.array([0.25], np.float16).view(np.uint8)
    raw[0, 4:8] = [1, 2, 3, 63]  # scales 0..3 (low 6 bits)
    raw[0, 8:12] = [4, 5, 6, 7]  # mins 0..3
    gqt = gquants.decode("Q4_K", raw, 1, 256, "t")
    assert gqt.scales[0, :4].tolist() == [0.5, 1.0, 1.5, 31.5]
    assert gqt.mins[0, :4].tolist() == [-1.0, -1.25, -1.5, -1.75]


@pytest.mark.parametrize("kind", list(gquants.FORMATS))
def test_truncated_blocks_name_the_tensor(kind: str) -> None:
    rng = np.random.default_rng(0)
    raw = random_blocks(kind, 2, 256, rng).reshape(-1)
    with pytest.raises(CheckpointError, match=r"blk\.3\.attn_q\.weight: .*truncated or inconsistent") as e:
        gquants.decode(kind, raw[:-5], 2, 256, "blk.3.attn_q.weight")
    assert "\n" not in str(e.value)


def test_row_length_not_a_block_multiple() -> None:
    with pytest.raises(CheckpointError, match=r"t: Q4_K needs a row length divisible by 256, got 96"):
        gquants.decode("Q4_K", np.zeros(144, np.uint8), 1, 96, "t")


def test_nonfinite_block_scale() -> None:
    raw = np.zeros((3, 34), np.uint8)
    raw[2, :2] = np.array([np.inf], np.float16).view(np.uint8)
    with pytest.raises(CheckpointError, match=r"w: Q8_0 block scale is NaN or inf \(row 2\)"):
        gquants.decode("Q8_0", raw, 3, 32, "w")


def test_unsupported_type_names_itself_and_the_list() -> None:
    with pytest.raises(CheckpointError) as e:
        gquants.decode("IQ2_XXS", np.zeros(66, np.uint8), 1, 256, "blk.0.ffn_down.weight")
    msg = str(e.value)
    assert "IQ2_XXS" in msg and "blk.0.ffn_down.weight" in msg
    assert all(t in msg for t in gquants.SUPPORTED)


@pytest.mark.parametrize("kind", ["F32", "F16", "BF16"])
def test_float_types(kind: str) -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 64)).astype(np.float32)
    raw = {"F32": w, "F16": w.astype(np.float16),
           "BF16": gq.quantize(w, T.BF16)}[kind]
    want = gq.dequantize(np.asarray(raw).view(np.uint8) if kind == "BF16" else raw, T[kind])
    got = gquants.floats(kind, raw, (3, 64), "t")
    assert same_bits(got, np.asarray(want).reshape(3, 64))
    with pytest.raises(CheckpointError, match="truncated"):
        gquants.floats(kind, np.asarray(raw).reshape(-1)[:-1], (3, 64), "t")
