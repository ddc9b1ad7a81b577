"""compiler/packing_lowbit.py: lossless round trip, the codec each GGUF/GPTQ-style parameterisation gets,
and the bits per weight streamed (issue 17: <= b + 0.6 at group 32)."""

import numpy as np
import pytest
from shared_fixtures import gptq, kquant, q4_0, q6_k

from edgellm.compiler import packing_lowbit as pl
from edgellm.errors import EdgeLLMError
from edgellm.models.lowbit import GroupQuant, quantize_rtn

F32 = np.float32


def _same(a: GroupQuant, b: GroupQuant) -> bool:
    return (np.array_equal(a.codes, b.codes) and a.bits == b.bits and a.group == b.group
            and np.array_equal(a.scales.view(np.uint32), b.scales.view(np.uint32))
            and np.array_equal(a.mins.view(np.uint32), b.mins.view(np.uint32)))


CASES = {
    "q4_0": (lambda r: q4_0(r, 32, 512), 4.5, (8, 16, 0, 1, 0, 8, 1)),
    "q8_0": (lambda r: q4_0(r, 32, 256, 8), 8.5, (8, 16, 0, 1, 0, 128, 1)),
    "q4_k": (lambda r: kquant(r, 32, 512, 4, 32, 6), 4.5, (8, 16, 6, 0, 6, 0, 0)),
    "q5_k": (lambda r: kquant(r, 32, 512, 5, 32, 6), 5.5, (8, 16, 6, 0, 6, 0, 0)),
    "q2_k": (lambda r: kquant(r, 32, 512, 2, 16, 4), 2.625, (16, 16, 4, 0, 4, 0, 0)),
    "q6_k": (lambda r: q6_k(r, 32, 512), 6.5625, (16, 16, 8, 1, 0, 32, 0)),
    "gptq4": (lambda r: gptq(r, 32, 512, 4), 4 + 20 / 128, (2, 16, 0, 1, 4, 0, 1)),
    "rtn_f32": (lambda r: quantize_rtn(r.standard_normal((32, 256)).astype(F32), 3, 64), 4.0,
                (4, 32, 0, 0, 0, 1, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_and_codec(name: str) -> None:
    make, bpw, (sb, db, scb, mmode, mcb, mz, dper) = CASES[name]
    w = make(np.random.default_rng(len(name)))
    img = pl.pack_lowbit(w)
    assert img.data.dtype == np.uint8 and img.data.size % pl.BEAT_BYTES == 0
    assert _same(pl.unpack_lowbit(img), w)
    c = img.codec
    assert (c.sb, c.db, c.scb, c.mmode, c.mcb, c.mz, c.dper) == (sb, db, scb, mmode, mcb, mz, dper)
    assert img.bits_per_weight == pytest.approx(bpw)


@pytest.mark.parametrize("name", ["q4_0", "q4_k", "q5_k", "q8_0"])
def test_group32_overhead_within_issue_bound(name: str) -> None:
    w = CASES[name][0](np.random.default_rng(1))
    assert w.group == 32
    assert pl.pack_lowbit(w).bits_per_weight <= w.bits + 0.6


def test_stream_layout() -> None:
    """Q4_0, 64 inputs (2 groups), R 8: one block per tile whose records hold both groups' f16 scales
    (dper, SB 2): P_0 = 8 records of 32 bits (two beats), then C_0: group g, row set ri, plane b is beat
    (g * 2 + ri) * 4 + b, holding plane b of rows 4ri .. 4ri+3 (G 32: 4 rows a beat)."""
    rng = np.random.default_rng(2)
    w = q4_0(rng, 8, 64)
    img = pl.pack_lowbit(w, rows=8)
    assert (img.codec.sb, img.codec.dper) == (2, 1)
    bits = np.unpackbits(img.data, bitorder="little")
    assert img.param_block_bits == 256 and img.code_block_bits == 2 * 2 * 4 * 128
    raw = np.packbits(bits[:256], bitorder="little").view(np.float16).astype(F32).reshape(8, 2)
    assert np.array_equal(raw, w.scales)
    for g in range(2):
        for ri in range(2):
            for b in range(4):
                c0 = 256 + ((g * 2 + ri) * 4 + b) * 128
                beat = bits[c0:c0 + 128].reshape(4, 32)
                assert np.array_equal(beat, (w.codes[4 * ri:4 * ri + 4, 32 * g:32 * g + 32] >> b) & 1)


@pytest.mark.parametrize("rows,out", [(8, 5), (16, 40), (32, 33), (64, 7)])
def test_padded_tiles_round_trip(rows: int, out: int) -> None:
    for gs in (16, 32, 128, 256):
        w = quantize_rtn(np.random.default_rng(out + gs).standard_normal((out, 512)).astype(F32), 3, gs)
        img = pl.pack_lowbit(w, rows=rows)
        assert img.tiles == -(-out // rows)
        assert _same(pl.unpack_lowbit(img), w)


def test_bad_rows_refused() -> None:
    with pytest.raises(EdgeLLMError, match="multiple of 8"):
        pl.pack_lowbit(q4_0(np.random.default_rng(0), 4, 64), rows=12)


def test_inexact_scales_fall_back_losslessly() -> None:
    """Scales that no 16-bit super-block d reproduces (a perturbed K-quant: the perturbed scale is no
    binary16) still round-trip, wider: one binary32 scale and min per group."""
    rng = np.random.default_rng(3)
    w = kquant(rng, 8, 256, 4, 32, 6)
    s = w.scales.copy()
    s[3, 2] = np.nextafter(s[3, 2], F32(1.0))
    w2 = GroupQuant(w.codes, s, w.mins, 4, 32)
    img = pl.pack_lowbit(w2)
    assert img.codec.dper == 1 and img.codec.db == 32 and _same(pl.unpack_lowbit(img), w2)  # f32 per group


def test_truncated_image_is_refused() -> None:
    img = pl.pack_lowbit(q4_0(np.random.default_rng(4), 4, 64))
    short = pl.LowbitImage(img.data[:-16], img.codec, 4, 32, 4, 64, 32, img.param_block_bits,
                           img.code_block_bits)
    with pytest.raises(EdgeLLMError, match="the shape and codec need"):
        pl.unpack_lowbit(short)


def test_port_images() -> None:
    """A 512-bit-beat image splits into four port images, port u holding bytes 16u .. 16u+15 of every beat."""
    w = kquant(np.random.default_rng(5), 128, 512, 4, 32, 6)
    img = pl.pack_lowbit(w, rows=128, beat_bits=512)
    ports = pl.port_images(img)
    assert len(ports) == 4 and all(p.size == img.data.size // 4 for p in ports)
    beats = img.data.reshape(-1, 64)
    for u, p in enumerate(ports):
        assert np.array_equal(p.reshape(-1, 16), beats[:, 16 * u:16 * u + 16])
    assert len(pl.port_images(pl.pack_lowbit(w))) == 1
