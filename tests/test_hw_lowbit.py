"""The low-bit matmul engine (hw/include/edgellm/lowbit_mm.h) in C simulation: bit-exact against
models/lowbit.py lowbit_linear for bits 2..8, groups 16..256, every parameter codec, R 32 and 64."""

import ctypes

import numpy as np
import pytest
from shared_fixtures import (
    LOWBIT_CONFIGS,
    assert_bits,
    gptq,
    kquant,
    lowbit_acts,
    lowbit_fields,
    q4_0,
    q6_k,
    run_lowbit,
    scale_terms_first,
)

from edgellm.compiler import packing_lowbit as pl
from edgellm.hw import csim
from edgellm.models import lowbit as lb

F32 = np.float32


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lowbit_tb.cpp"], "lowbit_tb")


@pytest.mark.parametrize("group", [16, 32, 128])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_rtn_every_width(lib: ctypes.CDLL, bits: int, group: int) -> None:
    rng = np.random.default_rng(100 * bits + group)
    w = lb.quantize_rtn(rng.standard_normal((45, 512)).astype(F32), bits, group)
    q, qs = lowbit_acts(rng, 3, 512)
    assert_bits(run_lowbit(lib, w, q, qs), lb.lowbit_linear(q, qs, w))


CODECS = ["q4_0", "q8_0", "q4_k", "q2_k", "q6_k", "gptq4", "gptq3", "g256", "one_block"]


@pytest.mark.parametrize("name", CODECS)
def test_codecs(lib: ctypes.CDLL, name: str) -> None:
    rng = np.random.default_rng(len(name))
    make = {"q4_0": lambda: q4_0(rng, 64, 512), "q8_0": lambda: q4_0(rng, 40, 256, 8),
            "q4_k": lambda: kquant(rng, 32, 768, 4, 32, 6), "q2_k": lambda: kquant(rng, 48, 512, 2, 16, 4),
            "q6_k": lambda: q6_k(rng, 32, 512), "gptq4": lambda: gptq(rng, 50, 512, 4),
            "gptq3": lambda: gptq(rng, 32, 256, 3),
            "g256": lambda: lb.quantize_rtn(rng.standard_normal((33, 768)).astype(F32), 5, 256),
            "one_block": lambda: kquant(rng, 32, 256, 4, 32, 6)}[name]  # one tile, one super-block
    w = make()
    q, qs = lowbit_acts(rng, 2, w.shape[1])
    assert_bits(run_lowbit(lib, w, q, qs), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("rows,t,lead", [(32, 1, 0), (32, 8, 3), (64, 4, 1), (64, 1, 0)])
def test_tiles_tokens_and_offsets(lib: ctypes.CDLL, rows: int, t: int, lead: int) -> None:
    rng = np.random.default_rng(rows * 10 + t)
    w = kquant(rng, 96, 1024, 4, 32, 6)
    q, qs = lowbit_acts(rng, t, 1024)
    assert_bits(run_lowbit(lib, w, q, qs, rows=rows, lead_beats=lead), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("t", [1, 3, 5, 8])
def test_token_lanes(lib: ctypes.CDLL, t: int) -> None:
    """TP = 3 token lanes (LowbitConfig<32, 4096, 8, 64, 3>): partial token blocks, G 16 and 64."""
    rng = np.random.default_rng(t)
    w6 = lb.quantize_rtn(rng.standard_normal((64, 512)).astype(F32), 6, 64)
    for w in (kquant(rng, 40, 512, 2, 16, 4), w6):
        q, qs = lowbit_acts(rng, t, 512)
        assert_bits(run_lowbit(lib, w, q, qs, fn="tb_lowbit_tp3"), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("fn", ["tb_lowbit_w4", "tb_lowbit_w2"])
@pytest.mark.parametrize("name", CODECS)
def test_wide_beats(lib: ctypes.CDLL, fn: str, name: str) -> None:
    """Beats of 512 bits (four ports, RD 4, TP 2, R 128) and 256 bits (two ports, RD 2, R 64): every
    codec, partial tiles, 1 and 3 tokens."""
    rng = np.random.default_rng(len(name) + len(fn))
    w = {"q4_0": lambda: q4_0(rng, 200, 512), "q8_0": lambda: q4_0(rng, 40, 256, 8),
         "q4_k": lambda: kquant(rng, 128, 768, 4, 32, 6), "q2_k": lambda: kquant(rng, 160, 512, 2, 16, 4),
         "q6_k": lambda: q6_k(rng, 128, 512), "gptq4": lambda: gptq(rng, 50, 512, 4),
         "gptq3": lambda: gptq(rng, 32, 256, 3),
         "g256": lambda: lb.quantize_rtn(rng.standard_normal((33, 768)).astype(F32), 5, 256),
         "one_block": lambda: kquant(rng, 128, 256, 4, 32, 6)}[name]()
    for t in (1, 3):
        q, qs = lowbit_acts(rng, t, w.shape[1])
        assert_bits(run_lowbit(lib, w, q, qs, fn=fn, lead_beats=t - 1), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("fn", ["tb_lowbit_sl1", "tb_lowbit_sl4"])
@pytest.mark.parametrize("name", CODECS)
def test_scale_lanes(lib: ctypes.CDLL, fn: str, name: str) -> None:
    """Records decoded SL sub-scales per iteration: SL 1 (R 32, one decoder, MAXG 32: a 16-sub-scale record
    over 16 iterations, longer than a Q2_K block's codes) and SL 4 (R 64, two decoders, 256-bit beats):
    every codec the configuration's MAXG takes, partial tiles, 1 and 4 tokens."""
    rng = np.random.default_rng(len(name) + 7 * len(fn))
    w = {"q4_0": lambda: q4_0(rng, 70, 512), "q8_0": lambda: q4_0(rng, 40, 256, 8),
         "q4_k": lambda: kquant(rng, 64, 768, 4, 32, 6), "q2_k": lambda: kquant(rng, 96, 512, 2, 16, 4),
         "q6_k": lambda: q6_k(rng, 64, 512), "gptq4": lambda: gptq(rng, 50, 512, 4),
         "gptq3": lambda: gptq(rng, 32, 256, 3),
         "g256": lambda: lb.quantize_rtn(rng.standard_normal((33, 768)).astype(F32), 5, 256),
         "one_block": lambda: kquant(rng, 64, 256, 4, 32, 6)}[name]()
    if fn == "tb_lowbit_sl1" and w.group > 32:
        pytest.skip("MAXG 32")
    for t in (1, 4):
        q, qs = lowbit_acts(rng, t, w.shape[1])
        assert_bits(run_lowbit(lib, w, q, qs, fn=fn, lead_beats=t - 1), lb.lowbit_linear(q, qs, w))


FU_CASES = {  # (fn, tensor): FU float steps against ceil(rl / (bits x plane beats)) the tensor needs
    "tb_lowbit_fu1": ("q4_0", "q4_k", "q8_0", "gptq4", "g256_8"),  # 128 bits, FU 1: G32 4-bit needs 4 / 4
    "tb_lowbit_fu4": ("q4_0", "q4_k", "q8_0", "g16_8", "g256_8", "gptq4"),  # 512 bits, FU 4 of 32
    "tb_lowbit_fu8": ("q2_k", "g16_2", "q6_k", "q4_k", "g256_8", "gptq3"),  # 256 bits, FU 8 of 16, TP 3
}


def _fu_tensor(rng: np.random.Generator, name: str, rows: int) -> lb.GroupQuant:
    rtn = {"g16_2": (2, 16), "g16_8": (8, 16), "g256_8": (8, 256)}
    if name in rtn:
        return lb.quantize_rtn(rng.standard_normal((rows + 7, 512)).astype(F32), *rtn[name])
    return {"q4_0": lambda: q4_0(rng, 2 * rows + 5, 512), "q8_0": lambda: q4_0(rng, 40, 256, 8),
            "q4_k": lambda: kquant(rng, rows, 768, 4, 32, 6),
            "q2_k": lambda: kquant(rng, rows + 32, 512, 2, 16, 4),
            "q6_k": lambda: q6_k(rng, rows, 512), "gptq4": lambda: gptq(rng, 50, 512, 4),
            "gptq3": lambda: gptq(rng, 32, 256, 3)}[name]()


@pytest.mark.parametrize("fn,name", [(fn, n) for fn, names in FU_CASES.items() for n in names])
def test_float_units(lib: ctypes.CDLL, fn: str, name: str) -> None:
    """FU < BW / 16 float steps per token lane, time-shared by a row set's rows over the iterations after
    its last plane (lb_drain): bit-exact where the tensor needs all of them (G32 4-bit at FU 1 of 8 and FU 4
    of 32: 4 chunks in 4 planes; 2-bit G16 at FU 8 of 16: 2 chunks in 2 planes; 8-bit G16 at FU 4: 8 in 8),
    with spare planes (8-bit, G 128 / 256), over 1, several token blocks (TP 2 and 3) and partial tiles."""
    rng = np.random.default_rng(len(name) * 31 + len(fn))
    w = _fu_tensor(rng, name, LOWBIT_CONFIGS[fn][0])
    for t in (1, 3, 8):
        q, qs = lowbit_acts(rng, t, w.shape[1])
        assert_bits(run_lowbit(lib, w, q, qs, fn=fn, lead_beats=t % 2), lb.lowbit_linear(q, qs, w))


def _refusal(lib: ctypes.CDLL, fn: str, w, rng: np.random.Generator) -> int:  # noqa: ANN001
    """The testbench's return code on one token of 512 inputs through w (32 x 512) packed for fn's engine
    (LOWBIT_CONFIGS: rows, beat bits): < 0 when the engine refuses the tensor."""
    rows, bw = LOWBIT_CONFIGS[fn]
    img = pl.pack_lowbit(w, rows=rows, beat_bits=bw)
    q, qs = lowbit_acts(rng, 1, 512)
    y = np.zeros((1, 32), F32)
    return getattr(lib, fn)(csim.ptr(lowbit_fields(img)), csim.ptr(img.data), ctypes.c_long(img.data.size),
                            ctypes.c_long(0), csim.ptr(q), csim.ptr(qs), ctypes.c_int(1), csim.ptr(y))


@pytest.mark.parametrize("fn,bits,group", [("tb_lowbit_fu1", 4, 16), ("tb_lowbit_fu1", 3, 32),
                                           ("tb_lowbit_fu4", 2, 32), ("tb_lowbit_fu4", 6, 16),
                                           ("tb_lowbit_fu1", 2, 32)])
def test_float_units_refuse_what_outpaces_them(lib: ctypes.CDLL, fn: str, bits: int, group: int) -> None:
    """A tensor whose row set finishes more rows per plane than FU can step before its next step
    (ceil(rl / (bits x wpp)) > FU) is refused (-3), as program_check refuses its record."""
    rng = np.random.default_rng(bits * group)
    w = lb.quantize_rtn(rng.standard_normal((32, 512)).astype(F32), bits, group)
    rc = _refusal(lib, fn, w, rng)
    assert rc == -3


SB4_CASES = {  # tensors whose records hold at most 4 groups (the packer's record_groups)
    "q4_0_896": lambda r: q4_0(r, 70, 896), "q4_0_384": lambda r: q4_0(r, 64, 384),
    "gptq4": lambda r: gptq(r, 50, 512, 4), "gptq3": lambda r: gptq(r, 32, 256, 3),
    "g256": lambda r: lb.quantize_rtn(r.standard_normal((33, 768)).astype(F32), 5, 256),
    "g16_8": lambda r: lb.quantize_rtn(r.standard_normal((70, 512)).astype(F32), 8, 16),
}


@pytest.mark.parametrize("name", list(SB4_CASES))
def test_small_records(lib: ctypes.CDLL, name: str) -> None:
    """MAXSB 4 (s / m buffers of 4 sub-scales a row; two decoders of SL 2, 256-bit beats): bit-exact for
    every tensor whose records hold at most 4 groups (Qwen2.5-0.5B's 896 inputs: Q4_0 records of 4)."""
    rng = np.random.default_rng(len(name) * 5)
    w = SB4_CASES[name](rng)
    assert pl.pack_lowbit(w).codec.sb <= 4
    for t in (1, 4):
        q, qs = lowbit_acts(rng, t, w.shape[1])
        y = run_lowbit(lib, w, q, qs, fn="tb_lowbit_sb4", lead_beats=t - 1)
        assert_bits(y, lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("fn,make", [("tb_lowbit_sb4", lambda r: q4_0(r, 32, 512)),
                                     ("tb_lowbit_fu1", lambda r: q6_k(r, 32, 512))])
def test_records_wider_than_maxsb_refused(lib: ctypes.CDLL, fn: str, make) -> None:
    """A tensor whose records hold more groups than the engine's MAXSB (8 at 512 Q4_0 inputs against 4;
    Q6_K's 16 against 8) is refused (-1), as program_check refuses its record's LB_SB."""
    rng = np.random.default_rng(9)
    w = make(rng)
    rc = _refusal(lib, fn, w, rng)
    assert rc == -1


MG32_CASES = {  # tensors of groups 32 .. 256 (an engine built for MING 32 runs them)
    "q4_0": lambda r: q4_0(r, 45, 512), "q4_k": lambda r: kquant(r, 32, 768, 4, 32, 6),
    "gptq3": lambda r: gptq(r, 50, 512, 3),
    "g256": lambda r: lb.quantize_rtn(r.standard_normal((33, 768)).astype(F32), 5, 256),
}


@pytest.mark.parametrize("name", list(MG32_CASES))
def test_narrowest_group_32(lib: ctypes.CDLL, name: str) -> None:
    """MING 32 (the engine's group-size choices 32 .. 256: a model without G16 tensors, a Q4_0 file):
    bit-exact for G32, G128 and G256 tensors, one and several tokens."""
    rng = np.random.default_rng(len(name) * 7)
    w = MG32_CASES[name](rng)
    for t in (1, 5):
        q, qs = lowbit_acts(rng, t, w.shape[1])
        y = run_lowbit(lib, w, q, qs, fn="tb_lowbit_mg32", lead_beats=t % 2)
        assert_bits(y, lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("fn,names", [("tb_lowbit_g32", ("q4_0", "q4_k")),
                                      ("tb_lowbit_g16_32", ("q4_0", "q4_k", "q6_k"))])
def test_the_built_group_choices(lib: ctypes.CDLL, fn: str, names: tuple[str, ...]) -> None:
    """The shapes the search builds at 512-bit beats: one group size (MING = MAXG = 32: no lane or
    activation choice, the s / m and accumulator banks of FU 4) and a Q4_K_M mix's two (G 16 and 32: 32
    row lanes, lanes 0..15 tapping either tree level, FU 8, two token lanes), each decoding the codecs its
    configuration lists with static field positions (lowbit_decode.h): bit-exact over several tiles, one
    and several tokens; the cost model counts C simulation's iterations."""
    from edgellm.compiler.cost import lowbit as cl

    make = {"q4_0": lambda r: q4_0(r, 300, 1024), "q4_k": lambda r: kquant(r, 260, 768, 4, 32, 6),
            "q6_k": lambda r: q6_k(r, 200, 512)}
    eng = cl.LowbitEngine(rows=128, max_tokens=8, max_k=4096, ports=4, record_decoders=2, scale_lanes=4,
                          max_group=32, min_group=32 if fn.endswith("g32") else 16,
                          float_units=4 if fn.endswith("g32") else 8, max_sb=8 if fn.endswith("g32") else 16,
                          token_lanes=1 if fn.endswith("g32") else 2)
    rng = np.random.default_rng(len(fn))
    for name in names:
        w = make[name](rng)
        c = pl.pack_lowbit(w, rows=128, beat_bits=512).codec
        fmt = cl.TensorFormat(name, w.bits, w.group, c.sb, c.superblock_bits)
        for t in (1, 6):
            q, qs = lowbit_acts(rng, t, w.shape[1])
            lib.tb_lowbit_iters_reset()
            assert_bits(run_lowbit(lib, w, q, qs, fn=fn, lead_beats=t % 2), lb.lowbit_linear(q, qs, w))
            counted = np.zeros(5, np.int64)
            lib.tb_lowbit_iters(csim.ptr(counted))
            want = cl.iterations(w.shape[0], w.shape[1], fmt, eng, t)
            assert list(want.values()) == counted.tolist(), (name, t)


def test_unlisted_codec_refused(lib: ctypes.CDLL) -> None:
    """An engine that lists its codecs (tb_lowbit_g32: Q4_0's and Q4_K's) refuses a tensor whose parameter
    codec is another (K-quant records of 4-bit scales: -4), as program_check refuses its record; the
    engine that lists none runs it."""
    rng = np.random.default_rng(3)
    w = kquant(rng, 32, 512, 4, 32, 4)
    assert pl.pack_lowbit(w, rows=128, beat_bits=512).codec.scb == 4
    assert _refusal(lib, "tb_lowbit_g32", w, rng) == -4
    assert _refusal(lib, "tb_lowbit_w4", w, rng) == 0


@pytest.mark.parametrize("make", [lambda r: q6_k(r, 32, 512), lambda r: kquant(r, 32, 512, 2, 16, 4),
                                  lambda r: lb.quantize_rtn(r.standard_normal((32, 512)).astype(F32), 4, 16)],
                         ids=["q6_k", "q2_k", "rtn_g16"])
def test_groups_below_ming_refused(lib: ctypes.CDLL, make) -> None:  # noqa: ANN001
    """A G16 tensor on an engine whose narrowest group is 32 is refused (-1), as program_check refuses its
    record's LB_GROUP; the MING 16 engine of the same shape runs it."""
    rng = np.random.default_rng(11)
    w = make(rng)
    assert _refusal(lib, "tb_lowbit_mg32", w, rng) == -1
    assert _refusal(lib, "tb_lowbit_r32", w, rng) == 0


def test_group_order_is_the_contracts(lib: ctypes.CDLL) -> None:
    """The engine's result differs from an all-scale-terms-first association on this input (so the
    bit-exact tests above would catch an engine that reassociated the group loop)."""
    rng = np.random.default_rng(7)
    w = kquant(rng, 64, 1024, 4, 32, 6)
    q, qs = lowbit_acts(rng, 2, 1024)
    y = run_lowbit(lib, w, q, qs)
    assert w.group == 32
    assert (scale_terms_first(q, qs, w).view(np.uint32) != y.view(np.uint32)).any()


def test_stream_beats_match_the_packer(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(3)
    cases = ((kquant(rng, 40, 512, 2, 16, 4), 32, 128), (q4_0(rng, 64, 256), 64, 128),
             (gptq(rng, 8, 256, 4), 32, 128), (q6_k(rng, 200, 512), 128, 512),
             (q4_0(rng, 70, 256), 64, 256))
    for w, rows, bw in cases:
        img = pl.pack_lowbit(w, rows=rows, beat_bits=bw)
        n = lib.tb_lowbit_stream_beats(csim.ptr(lowbit_fields(img)), ctypes.c_int(rows), ctypes.c_int(bw))
        assert n == img.data.size // (bw // 8)


def test_too_large_calls_refused(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(4)
    w = q4_0(rng, 32, 256)
    img = pl.pack_lowbit(w)
    q, qs = lowbit_acts(rng, 9, 256)  # MAXT = 8
    y = np.zeros((9, 32), F32)
    args = (csim.ptr(lowbit_fields(img)), csim.ptr(img.data), ctypes.c_long(img.data.size), ctypes.c_long(0),
            csim.ptr(q), csim.ptr(qs))
    assert lib.tb_lowbit_r32(*args, ctypes.c_int(9), csim.ptr(y)) == -1
    short = img.data[:-16].copy()
    assert lib.tb_lowbit_r32(csim.ptr(lowbit_fields(img)), csim.ptr(short), ctypes.c_long(short.size),
                             ctypes.c_long(0), csim.ptr(q), csim.ptr(qs), ctypes.c_int(1), csim.ptr(y)) == -2


def test_dependence_claim_holds() -> None:
    """C simulation with EDGELLM_CHECK_DEPS: the accumulator's distance-8 claim is never violated over the
    whole block loop (its steps and the outputs it reads back) at the tightest case (G 16, 2 bits, one
    token: R / (BW / 16) = 4 row sets x 2 planes, at 128-, 256- and 512-bit beats) and where tiles wait
    for the outputs before them; nor is the s / m banks' kLbScaleLag claim (a half's first read at least
    8 iterations after its last decode), tightest where the decode sets the block's length (K-quant
    records of 16 sub-scales at SL 1 and 4); every claim is exercised."""
    dl = csim.load([csim.TB_DIR / "lowbit_tb.cpp", csim.TB_DIR / "dep_tb.cpp"], "lowbit_dep_tb",
                   defines={"EDGELLM_CHECK_DEPS": "1"})
    dl.tb_dep_reset()
    rng = np.random.default_rng(5)
    for bits, group in ((2, 16), (3, 16), (2, 32), (8, 256)):
        w = lb.quantize_rtn(rng.standard_normal((160, 512)).astype(F32), bits, group)
        q, qs = lowbit_acts(rng, 1, 512)
        for fn in ("tb_lowbit_r32", "tb_lowbit_w4", "tb_lowbit_w2"):  # R * 2 / (BW / 16) = 8 at G 16
            assert_bits(run_lowbit(dl, w, q, qs, fn=fn), lb.lowbit_linear(q, qs, w))
    # FU below the lanes: the steps drained over the iterations after each row set's last plane, as tight
    # as they go (4 chunks in 4 planes, 2 in 2), several token blocks, outputs read after the drain
    for fn, bits, group, rows in (("tb_lowbit_fu1", 4, 32, 70), ("tb_lowbit_fu4", 4, 32, 300),
                                  ("tb_lowbit_fu8", 2, 16, 150), ("tb_lowbit_fu4", 8, 16, 200)):
        w = lb.quantize_rtn(rng.standard_normal((rows, 512)).astype(F32), bits, group)
        for t in (1, 5):
            q, qs = lowbit_acts(rng, t, 512)
            assert_bits(run_lowbit(dl, w, q, qs, fn=fn), lb.lowbit_linear(q, qs, w))
    # tiles shorter than the previous tile's outputs (2-bit G 256, 512-bit beats, 5 tokens: 400 block
    # iterations a tile, 640 outputs): tile t + 2 waits for tile t's outputs; 400 rows: a partial last tile
    w = lb.quantize_rtn(rng.standard_normal((400, 256)).astype(F32), 2, 256)
    for t in (5, 8):
        q, qs = lowbit_acts(rng, t, 256)
        assert_bits(run_lowbit(dl, w, q, qs, fn="tb_lowbit_w4"), lb.lowbit_linear(q, qs, w))
    # decode-bound blocks: 16 sub-scales a record at one (four) a decoder iteration
    for fn in ("tb_lowbit_sl1", "tb_lowbit_sl4"):
        w = kquant(rng, 100, 512, 2, 16, 4)
        for t in (1, 3):
            q, qs = lowbit_acts(rng, t, 512)
            assert_bits(run_lowbit(dl, w, q, qs, fn=fn), lb.lowbit_linear(q, qs, w))
    buf = ctypes.create_string_buffer(4096)
    dl.tb_dep_report(buf, 4096)
    report = buf.value.decode()
    assert dl.tb_dep_violations() == 0, report
    seen = {ln.split()[0]: ln.split()[1:3] for ln in report.splitlines() if ln.startswith("lb_blocks.run")}
    assert set(seen) == {"lb_blocks.run.acc", "lb_blocks.run.s", "lb_blocks.run.m"}, report
    assert all(int(r) > 0 and int(wr) > 0 for r, wr in seen.values()), report  # reads and writes seen
