"""compiler/cost/lowbit.py: the engine's loop counts equal C simulation's (lowbit_mm.h lb_iters), the
formats equal what packing_lowbit writes, and the projection's invariants."""

import ctypes
import dataclasses

import numpy as np
import pytest
from shared_fixtures import gptq, kquant, lowbit_acts, lowbit_fields, q4_0, q6_k

from edgellm.boards import load_board
from edgellm.compiler import packing_lowbit as pl
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import lowbit_resources as lr_
from edgellm.compiler.cost import lowbit_run as lr
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.cost.ddr import bandwidth
from edgellm.compiler.cost.lowbit_mix import llama_cpp_mix
from edgellm.compiler.cost.memory import lutram_luts, mux_luts
from edgellm.compiler.design import DesignParams
from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.models import lowbit as lb
from edgellm.models.config import PRESETS

F32 = np.float32
KINDS = ("acts", "params", "decode", "block", "out")


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lowbit_tb.cpp"], "lowbit_tb")


def _counted(lib: ctypes.CDLL, fn: str, w: lb.GroupQuant, t: int, eng: cl.LowbitEngine) -> dict[str, int]:
    img = pl.pack_lowbit(w, rows=eng.rows, beat_bits=eng.beat_bits)
    q, qs = lowbit_acts(np.random.default_rng(t), t, w.shape[1])
    y = np.zeros((t, w.shape[0]), F32)
    lib.tb_lowbit_iters_reset()
    rc = getattr(lib, fn)(csim.ptr(lowbit_fields(img)), csim.ptr(img.data), ctypes.c_long(img.data.size),
                          ctypes.c_long(0), csim.ptr(q), csim.ptr(qs), ctypes.c_int(t), csim.ptr(y))
    assert rc == 0
    out = np.zeros(5, np.int64)
    lib.tb_lowbit_iters(csim.ptr(out))
    return dict(zip(KINDS, map(int, out), strict=True))


def _fmt_of(w: lb.GroupQuant) -> cl.TensorFormat:
    c = pl.pack_lowbit(w).codec
    return cl.TensorFormat("x", w.bits, w.group, c.sb, c.superblock_bits)


@pytest.mark.parametrize("case", ["q4_0", "q4_k", "q6_k", "q2_k", "gptq", "short", "stall"])
@pytest.mark.parametrize("t", [1, 5])
def test_iterations_equal_csim(lib: ctypes.CDLL, case: str, t: int) -> None:
    rng = np.random.default_rng(len(case) + t)
    w = {"q4_0": lambda: q4_0(rng, 70, 512), "q4_k": lambda: kquant(rng, 64, 768, 4, 32, 6),
         "q6_k": lambda: q6_k(rng, 40, 512), "q2_k": lambda: kquant(rng, 32, 512, 2, 16, 4),
         "gptq": lambda: gptq(rng, 33, 512, 4),
         "short": lambda: lb.quantize_rtn(rng.standard_normal((40, 256)).astype(F32), 2, 16),
         "stall": lambda: lb.quantize_rtn(rng.standard_normal((400, 256)).astype(F32), 2, 256)}[case]()
    fmt = _fmt_of(w)
    one = {"ports": 1, "record_decoders": 1}
    for fn, eng in (("tb_lowbit_r32", cl.LowbitEngine(rows=32, max_tokens=8, max_group=256, **one)),
                    ("tb_lowbit_r64", cl.LowbitEngine(rows=64, max_tokens=4, max_group=256, max_k=4096,
                                                      **one)),
                    ("tb_lowbit_tp3", cl.LowbitEngine(rows=32, max_tokens=8, max_group=64, token_lanes=3,
                                                      max_k=4096, **one)),
                    ("tb_lowbit_w4", cl.LowbitEngine(rows=128, max_tokens=8, max_group=256, token_lanes=2,
                                                     max_k=4096, ports=4, record_decoders=2)),
                    ("tb_lowbit_w2", cl.LowbitEngine(rows=64, max_tokens=4, max_group=256, max_k=4096,
                                                     ports=2, record_decoders=2)),
                    ("tb_lowbit_sl1", cl.LowbitEngine(rows=32, max_tokens=8, max_group=32, max_k=4096,
                                                      scale_lanes=1, **one)),
                    ("tb_lowbit_sl4", cl.LowbitEngine(rows=64, max_tokens=4, max_group=256, max_k=4096,
                                                      ports=2, record_decoders=2, scale_lanes=4))):
        n = min(t, eng.max_tokens)
        if w.group > eng.max_group:
            continue
        assert cl.iterations(w.shape[0], w.shape[1], fmt, eng, n) == _counted(lib, fn, w, n, eng), fn
        img = pl.pack_lowbit(w, rows=eng.rows, beat_bits=eng.beat_bits)
        assert cl.stream_bytes(w.shape[0], w.shape[1], fmt, eng.rows, eng.beat_bits) == img.data.size


FU_ENGINES = {  # the testbench's FU configurations (hw/tb/lowbit_tb.cpp fu1 / fu4 / fu8)
    "tb_lowbit_fu1": cl.LowbitEngine(rows=32, max_tokens=8, max_group=256, max_k=4096, ports=1,
                                     record_decoders=1, float_units=1),
    "tb_lowbit_fu4": cl.LowbitEngine(rows=128, max_tokens=8, max_group=256, token_lanes=2, max_k=4096,
                                     ports=4, record_decoders=2, float_units=4),
    "tb_lowbit_fu8": cl.LowbitEngine(rows=64, max_tokens=8, max_group=256, token_lanes=3, max_k=4096,
                                     ports=2, record_decoders=2, float_units=8),
}


@pytest.mark.parametrize("fn,case", [("tb_lowbit_fu1", "q4_0"), ("tb_lowbit_fu1", "g256_8"),
                                     ("tb_lowbit_fu1", "q2k_short"),
                                     ("tb_lowbit_fu4", "q4_0"), ("tb_lowbit_fu4", "q4_k"),
                                     ("tb_lowbit_fu4", "g16_8"), ("tb_lowbit_fu4", "g256_8"),
                                     ("tb_lowbit_fu8", "g16_2"), ("tb_lowbit_fu8", "q6_k"),
                                     ("tb_lowbit_fu8", "g256_8")])
@pytest.mark.parametrize("t", [1, 5, 8])
def test_iterations_equal_csim_fewer_float_steps(lib: ctypes.CDLL, fn: str, case: str, t: int) -> None:
    """FU < BW / 16: a tile's outputs wait for its last row set's drained steps (ceil(rl / FU) chunks x
    token blocks from its first token block's last plane, drain_extra) where they end after its last block
    iteration; the model counts what C simulation counts, several token blocks (TP 1, 2, 3) included."""
    rng = np.random.default_rng(len(case) * 3 + t)
    w = {"q4_0": lambda: q4_0(rng, 300, 512), "q4_k": lambda: kquant(rng, 200, 768, 4, 32, 6),
         "q6_k": lambda: q6_k(rng, 130, 512),
         "q2k_short": lambda: kquant(rng, 40, 256, 4, 32, 6),
         "g16_8": lambda: lb.quantize_rtn(rng.standard_normal((200, 512)).astype(F32), 8, 16),
         "g16_2": lambda: lb.quantize_rtn(rng.standard_normal((150, 512)).astype(F32), 2, 16),
         "g256_8": lambda: lb.quantize_rtn(rng.standard_normal((140, 768)).astype(F32), 8, 256)}[case]()
    eng, fmt = FU_ENGINES[fn], _fmt_of(w)
    assert cl.float_steps(fmt, eng.beat_bits) <= eng.fu < eng.beat_bits // 16
    assert cl.iterations(w.shape[0], w.shape[1], fmt, eng, t) == _counted(lib, fn, w, t, eng)


def test_drain_extra_is_counted() -> None:
    """Q4_0 at 512-bit beats, FU 4, 5 tokens in 3 token blocks: the last row set's 4 x 3 steps end 9
    iterations after the tile's last block iteration, so each tile's outputs (and the call) end 9 later
    than at FU 32; 1 token: 3 later."""
    fmt = cl.fit(cl.FORMATS["Q4_0"], 512)
    eng = FU_ENGINES["tb_lowbit_fu4"]
    full = dataclasses.replace(eng, float_units=32)
    for t, extra in ((5, 9), (1, 3)):
        a, b = cl.iterations(128, 512, fmt, eng, t), cl.iterations(128, 512, fmt, full, t)
        assert a["out"] - b["out"] == extra and a["block"] == b["block"]


def test_float_units_sized_to_the_formats() -> None:
    """FU: ceil(rl / (bits x plane beats)) rounded up to a power of two, the widest need of a model's
    formats: Q4_0 / Q4_K 4 at 512-bit beats (16 rows a plane beat, 4 planes), Q6_K 8 (32 rows, 6 planes),
    Q2_K 16; GPTQ4 (G 128) 1. The float steps' DSPs and most of their LUTs go with FU; a tensor that needs
    more than the engine's FU is refused."""
    f = cl.FORMATS
    names = ("Q4_0", "Q4_K", "Q6_K", "Q2_K", "GPTQ4")
    assert [cl.float_units_for([f[n]], 512) for n in names] == [4, 4, 8, 16, 1]
    assert cl.float_units_for([f["Q4_0"], f["Q6_K"]], 512) == 8
    assert cl.float_units_for([f["Q4_K"]], 128) == 1
    wide = cl.LowbitEngine(rows=128, ports=4, token_lanes=2, float_units=32)
    four = dataclasses.replace(wide, float_units=4)
    assert wide.fu == 32 and four.fu == 4 and dataclasses.replace(wide, ports=1, rows=32).fu == 8
    assert dataclasses.replace(wide, min_group=32).fu == 16  # LANES = BW / MING rows a beat at most
    da, db = lr_.resources(wide), lr_.resources(four)
    assert da.dsp - db.dsp == 2 * 28 * lr_.FLOAT_STEP.dsp
    assert da.lut - db.lut > 2 * 28 * lr_.FLOAT_STEP.lut  # the steps, and the banks that go with FU
    with pytest.raises(EdgeLLMError, match="FU 4 float steps of the 6 it needs"):
        cl.iterations(128, 512, f["Q6_K"], four, 1)
    with pytest.raises(EdgeLLMError, match="float units"):
        cl.LowbitEngine(float_units=3)


@pytest.mark.parametrize("case", ["q4_0_896", "gptq", "g256"])
@pytest.mark.parametrize("t", [1, 4])
def test_iterations_equal_csim_small_records(lib: ctypes.CDLL, case: str, t: int) -> None:
    """MAXSB 4 (hw/tb/lowbit_tb.cpp sb4: R 64, 256-bit beats, RD 2, SL 2): the model counts what C
    simulation counts for tensors of at most 4 groups a record."""
    rng = np.random.default_rng(len(case) + 40 * t)
    w = {"q4_0_896": lambda: q4_0(rng, 70, 896), "gptq": lambda: gptq(rng, 50, 512, 4),
         "g256": lambda: lb.quantize_rtn(rng.standard_normal((140, 768)).astype(F32), 8, 256)}[case]()
    eng = cl.LowbitEngine(rows=64, max_tokens=4, max_group=256, max_k=4096, ports=2, record_decoders=2,
                          scale_lanes=2, max_sb=4)
    fmt = _fmt_of(w)
    assert fmt.sb <= 4
    assert cl.iterations(w.shape[0], w.shape[1], fmt, eng, t) == _counted(lib, "tb_lowbit_sb4", w, t, eng)


def test_max_sb_sizes_the_scale_buffers() -> None:
    """s / m: FU x min(SL, MAXSB) block-RAM banks each (lowbit_banks.h), both halves of R / FU rows x
    ceil(MAXSB / SLB) words deep: at FU 32, SL 16 MAXSB 8 (Llama-3.2-1B Q4_0's records) halves the banks
    of MAXSB 16 and their sub-bank muxes; MAXSB is the widest record of the model's formats (Qwen2.5-0.5B
    Q4_0: 4 groups a record at 896 inputs but 8 at its down projection's 4864; any Q6_K: 16), and a format
    of wider records is refused."""
    a = cl.LowbitEngine(rows=128, ports=4)
    b = dataclasses.replace(a, max_sb=8)
    assert a.fu == 32 and a.scale_lanes == 16
    assert lr_.scales(a).bram36 == 2 * 32 * 16 * 0.5 and lr_.scales(b).bram36 == 2 * 32 * 8 * 0.5
    assert lr_.scales(a).lut == 2 * 32 * 32 * mux_luts(16)
    assert lr_.resources(a).lut - lr_.resources(b).lut == 2 * 32 * 32 * (4 - 2)
    q40 = llama_cpp_mix(PRESETS["qwen2.5-0.5b"], "Q4_0")
    assert {f.sb for layer in q40.layers for f in layer.values()} == {4, 8} and q40.max_sb() == 8
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_0").max_sb() == 8
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_K_M").max_sb() == 16
    with pytest.raises(EdgeLLMError, match="MAXSB 4 of its 8 groups"):
        cl.iterations(128, 512, cl.FORMATS["Q4_K"], dataclasses.replace(a, max_sb=4), 1)
    with pytest.raises(EdgeLLMError, match="MAXSB"):
        cl.LowbitEngine(max_sb=17)


def test_one_block_loop_a_call(lib: ctypes.CDLL) -> None:
    """Every block and every output of a call run in one pipelined loop: its block iterations are the
    blocks' own, its output-only iterations (kind "out") the last tile's outputs after kLbFaddChain - 1
    waits when each tile outlasts the previous one's outputs, more when it does not (here: 4 tiles of 128
    rows, one super-block each, 2-bit G 256 at 512-bit beats; 1 token: 144 block iterations a tile against
    128 outputs; 5 tokens in 3 token blocks: 400 against 640, so tiles 2 and 3 wait). C simulation counts
    the same; a call is 4 loop runs."""
    rng = np.random.default_rng(11)
    w = lb.quantize_rtn(rng.standard_normal((400, 256)).astype(F32), 2, 256)
    fmt = _fmt_of(w)
    eng = cl.LowbitEngine(rows=128, max_tokens=8, max_group=256, token_lanes=2, max_k=4096, ports=4,
                          record_decoders=2)
    assert fmt.sb == 1  # one block a tile
    for t in (1, 5):
        it = cl.iterations(400, 256, fmt, eng, t)
        assert it == _counted(lib, "tb_lowbit_w4", w, t, eng)
        tile, outputs = cl.block_iters(fmt, eng, -(-t // 2), True), t * 128
        assert (tile, it["out"] == cl.FADD_CHAIN - 1 + outputs) == ((144, True) if t == 1 else (400, False))
        assert it["out"] > cl.FADD_CHAIN - 1 + outputs or tile >= outputs
        assert cl.linear_cycles(400, 256, fmt, eng, t) == sum(it.values()) + 4 * cl.PIPE_FILL


def test_resources_price_the_double_buffered_accumulators() -> None:
    """The accumulators of two tiles (lowbit_banks.h acc: 2 x TP x FU banks of TD x R / FU words, each read
    by its float unit and by the outputs: a LUTRAM copy per read port) and a token lane's P accumulators
    (TD x LANES registers, the token slot's choice): MAXT 16 against 8 at R 128, FU 32 deepens each bank
    from 32 to 64 words and doubles the slot choice; the rest of the engine does not grow with MAXT in
    LUTs."""
    a = cl.LowbitEngine(rows=128, max_tokens=8)
    b = dataclasses.replace(a, max_tokens=16)
    acc = 2 * (2 * 32) * (lutram_luts(32, 16 * 4) - lutram_luts(32, 8 * 4))
    p = 32 * 32 * (mux_luts(16) - mux_luts(8))
    assert lr_.accumulators(b).lut - lr_.accumulators(a).lut == acc + p
    assert lr_.resources(b).lut - lr_.resources(a).lut == acc + p
    assert lr_.resources(a).lut >= lr_.BLOCK_LOOP_CONTROL.lut + lr_.accumulators(a).lut


def test_decoders_priced_by_their_codecs() -> None:
    """A record decoder is priced for the codecs it lists (lowbit_decode.h): Q4_K's 128-bit records shift
    in steps of 128 bits (4 positions at 512-bit beats), a Q6_K beside it (144 bits) brings the steps to 16
    (32 positions) and its 16 sub-scales' fields to the candidates each sub-scale chooses among; the
    model's codecs are its formats' (record bits, groups a record)."""
    q4k = cl.LowbitEngine(rows=128, ports=4, scale_lanes=4, codecs=((128, 8),))
    mix = dataclasses.replace(q4k, codecs=((128, 8), (144, 16)))
    nw_rotate = 2 * 512 * mux_luts(2)
    fixed = 4 * (lr_.DECODE_CONVERT_LUT + 2 * lr_.DECODE_FMUL.lut)
    assert lr_.decoders(q4k).lut == nw_rotate + lr_.shifter_lut(128, 4) + 4 * 80 * mux_luts(2) + fixed
    assert lr_.decoders(mix).lut == nw_rotate + lr_.shifter_lut(144, 32) + 4 * 80 * mux_luts(6) + fixed
    assert lr_.shifter_lut(144, 32) == 144 * 3 and lr_.shifter_lut(128, 4) == 128
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_K_M").codecs() == ((128, 8), (144, 16))
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_0").codecs() == ((128, 8),)
    # a compiled design's listed codecs (design.lowbit_codecs, ParamCodec.as_words rows) price the same
    from edgellm.compiler import lowbit_estimate as le

    listed = ((8, 16, 6, 0, 0, 16, 6, 0, 0, 0), (16, 16, 8, 128, 1, 0, 0, 0, 32, 0))
    assert le._codec_shapes(listed) == ((128, 8), (144, 16))


def test_one_group_size_builds_one_choice() -> None:
    """The engine builds the group-size choices MING .. MAXG only (lowbit_lookup.h, lowbit_banks.h): the
    tables repeat a narrower group over the MAXG window, so every lookup is one static 16:1 multiplexer of
    its table's 12 bits whatever the choices; with one (Q4_0: every linear G 32) each lane is one tree tap
    and the activations need no choice; a Q4_K_M mix (Q6_K's G 16 beside Q4_K's G 32) pays the lane taps,
    the activation choice and twice the row lanes (P, stage, FU). A group below MING is refused."""
    one = cl.LowbitEngine(rows=128, ports=4, max_group=32, min_group=32, float_units=4)
    two = dataclasses.replace(one, min_group=16)
    nib = 512 // 4
    assert lr_.lookups(one).lut == nib * 12 * lr_.LOOKUP_LUT_PER_BIT + (nib - 1) * 16
    assert lr_.lookups(two).lut == lr_.lookups(one).lut + 16 * 32 * mux_luts(2)  # lanes 0..15 tap 2 levels
    assert lr_.tables(two).lut == lr_.tables(one).lut + 32 * 8 * mux_luts(3)  # G 16 at 0 / 16, or G 32
    assert one.row_lanes == 16 and two.row_lanes == 32
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_0").min_group() == 32
    assert llama_cpp_mix(PRESETS["llama-3.2-1b"], "Q4_K_M").min_group() == 16
    with pytest.raises(EdgeLLMError, match="groups MING 32"):
        cl.iterations(128, 512, cl.FORMATS["Q6_K"], one, 1)


@pytest.mark.parametrize("name,make", [
    ("Q4_0", lambda r: q4_0(r, 32, 256)), ("Q8_0", lambda r: q4_0(r, 32, 256, 8)),
    ("Q4_K", lambda r: kquant(r, 32, 512, 4, 32, 6)), ("Q5_K", lambda r: kquant(r, 32, 512, 5, 32, 6)),
    ("Q2_K", lambda r: kquant(r, 32, 512, 2, 16, 4)), ("Q6_K", lambda r: q6_k(r, 32, 512)),
    ("GPTQ4", lambda r: gptq(r, 32, 512, 4))])
def test_formats_are_what_the_packer_writes(name: str, make) -> None:
    w = make(np.random.default_rng(0))
    fmt = cl.FORMATS[name]
    assert (fmt.bits, fmt.group) == (w.bits, w.group)
    img = pl.pack_lowbit(w)
    assert (img.codec.sb, img.codec.superblock_bits) == (fmt.sb, fmt.record_bits)
    assert img.bits_per_weight == pytest.approx(fmt.bits_per_weight)


def test_fit_follows_the_packer() -> None:
    """Qwen2.5-0.5B's 896 inputs: 28 groups of 32, so Q4_0 records hold 4 groups, as the packer does."""
    rng = np.random.default_rng(1)
    w = q4_0(rng, 32, 896)
    f = cl.fit(cl.FORMATS["Q4_0"], 896)
    c = pl.pack_lowbit(w).codec
    assert (f.sb, f.record_bits) == (c.sb, c.superblock_bits) == (4, 64)
    assert cl.fit(cl.FORMATS["Q4_K"], 896) == cl.FORMATS["Q4_K"]


def test_engines_split_tiles() -> None:
    fmt = cl.FORMATS["Q4_K"]
    narrow = {"ports": 1, "record_decoders": 1, "rows": 32}
    one = cl.linear_cycles(8192, 2048, fmt, cl.LowbitEngine(engines=1, **narrow), 1)
    four = cl.linear_cycles(8192, 2048, fmt, cl.LowbitEngine(engines=4, **narrow), 1)
    wide = cl.linear_cycles(8192, 2048, fmt, cl.LowbitEngine(engines=1, ports=4, rows=128), 1)
    assert four < one / 3.5 and wide < one / 3.5
    # one beat per token block per cycle: 4-bit G32, R32 at 128 bits: 8 groups x 8 row sets x 4 planes
    it = cl.iterations(32, 256, fmt, cl.LowbitEngine(engines=1, **narrow), 1)
    assert it["block"] == 8 * 8 * 4


def test_scale_lanes_pace_the_decoders() -> None:
    """A block's records take ceil(R / RD) x ceil(SB / SL) iterations, and the block kLbScaleLag more: Q2_K's
    16 sub-scales at SL 1 and SL 4 (128 + 8) outlast its 128 code iterations (R 32, 128-bit beats) and set
    the block's length; Q4_K's 8 at SL 2 (128 + 8 against 256) do not. The decoders' DSPs scale with RD x SL
    (2 fmul of 3 DSPs a sub-scale)."""
    q2k, q4k = cl.FORMATS["Q2_K"], cl.FORMATS["Q4_K"]
    eng = {sl: cl.LowbitEngine(rows=32, ports=1, record_decoders=1, scale_lanes=sl) for sl in (1, 2, 4, 16)}
    assert [cl.decode_iters(q2k, eng[sl]) for sl in (1, 2, 4, 16)] == [512, 256, 128, 32]
    assert cl.block_iters(q2k, eng[1], 1, True) == cl.param_beats(q2k, 32) + 512 + cl.SCALE_LAG
    assert cl.block_iters(q2k, eng[4], 1, True) == cl.param_beats(q2k, 32) + 128 + cl.SCALE_LAG
    assert cl.block_iters(q2k, eng[16], 1, True) == cl.param_beats(q2k, 32) + 128  # the codes'
    assert cl.block_iters(q4k, eng[2], 1, True) == cl.block_iters(q4k, eng[16], 1, True)
    assert lr_.resources(eng[16]).dsp - lr_.resources(eng[2]).dsp == (16 - 2) * 2 * 3
    with pytest.raises(EdgeLLMError, match="scale lanes"):
        cl.LowbitEngine(scale_lanes=3)


def test_refusals() -> None:
    with pytest.raises(EdgeLLMError, match="multiple of 32"):
        cl.LowbitEngine(rows=48)
    with pytest.raises(EdgeLLMError, match="at least 128"):
        cl.LowbitEngine(rows=64, ports=4)
    with pytest.raises(EdgeLLMError, match="does not fit"):
        cl.iterations(64, 8192 + 256, cl.FORMATS["Q4_K"], cl.LowbitEngine(), 1)
    with pytest.raises(EdgeLLMError, match="MAXT"):
        cl.iterations(64, 256, cl.FORMATS["Q4_K"], cl.LowbitEngine(max_tokens=4), 5)


def test_decode_never_beats_its_ddr_bound() -> None:
    cfg = PRESETS["llama-3.2-1b"]
    board = load_board("kv260")
    fmt = cl.FORMATS["Q4_0"]
    layers = tuple({n: fmt for n in cfg.linear_shapes()} for _ in range(cfg.n_layers))
    m = cl.LowbitModel(layers, cl.FORMATS["Q6_K"])
    p = DesignParams(clock_mhz=board.pl_clock_mhz)
    eng = cl.LowbitEngine()
    run = lr.run_seconds(cfg, board, m, eng, p, 1, p.decode_context)
    tok_s = 1.0 / sum(run.values())
    assert tok_s < lr.ddr_bound_tokens_per_s(cfg, board, m, p, eng)


def _counts(m: cl.LowbitModel) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer in m.layers:
        for f in layer.values():
            out[f.name] = out.get(f.name, 0) + 1
    return out


def test_llama_cpp_mixes() -> None:
    """llama.cpp's llama_tensor_get_type rules: Q4_K_M's use_more_bits layers (16 layers: 0, 1, 4, 7,
    10, 13, 14, 15) give attn_v and ffn_down Q6_K; Qwen2.5-0.5B's 896-wide rows fall back to Q5_0 /
    Q8_0, its head to Q8_0."""
    llama, qwen = PRESETS["llama-3.2-1b"], PRESETS["qwen2.5-0.5b"]
    m = llama_cpp_mix(llama, "Q4_K_M")
    assert _counts(m) == {"Q4_K": 96, "Q6_K": 16} and m.head.name == "Q6_K"
    more = [i for i, layer in enumerate(m.layers) if layer["v"].name == "Q6_K"]
    assert more == [0, 1, 4, 7, 10, 13, 14, 15]
    assert _counts(llama_cpp_mix(llama, "Q4_0")) == {"Q4_0": 112}
    q = llama_cpp_mix(qwen, "Q4_K_M")
    assert _counts(q) == {"Q5_0": 132, "Q8_0": 12, "Q6_K": 12, "Q4_K": 12} and q.head.name == "Q8_0"
    assert q.layers[0]["q"].sb == 4  # 28 groups of 32 a row: 4 per-group scales a record
    q2 = llama_cpp_mix(llama, "Q2_K")
    assert q2.layers[3]["v"].name == "Q4_K" and q2.layers[3]["down"].name == "Q3_K"
    with pytest.raises(EdgeLLMError, match="unknown file type"):
        llama_cpp_mix(llama, "Q9_X")


def test_search_fits_and_stays_under_the_bound() -> None:
    cfg, board = PRESETS["qwen2.5-0.5b"], load_board("kv260")
    m = llama_cpp_mix(cfg, "Q4_0")
    eng, vec = ls.search(cfg, board, m)
    assert ls.fits(cfg, board, eng, vec, m)
    r = ls.project(cfg, board, m, eng, vec)
    assert 0 < r["decode"] < r["bound"] and r["ttft"] > 0


def test_the_head_priced_is_the_int8_head_unless_lowbit_head() -> None:
    """compile builds lm_head.h's int8 per-row head (P = 16 bytes a port beat, its own weight ports): the
    projection prices that head's bytes (design_bytes.lm_head_bytes), time (cost/lm_head.seconds at
    P = 16) and resources (cost/lm_head.resources + its row FIFOs); lowbit_head=True prices the file's head
    format on the low-bit engine instead, as a linear."""
    from edgellm.compiler.cost import lm_head as cost_lm_head
    from edgellm.compiler.design import head_beat_bytes
    from edgellm.compiler.design_bytes import lm_head_bytes

    cfg, board = PRESETS["llama-3.2-1b"], load_board("kv260")
    built = llama_cpp_mix(cfg, "Q4_0")
    low = cl.LowbitModel(built.layers, built.head, lowbit_head=True)
    assert not built.lowbit_head and built.head.name == low.head.name == "Q6_K"
    eng, vec = cl.LowbitEngine(), ls.VECTOR[-1]
    p = ls.design(board, eng, vec)
    assert head_beat_bytes(p, "lowbit") == 16  # codegen's LmHeadConfig P for a low-bit design
    body = built.linear_bytes(cfg, eng.rows, eng.beat_bits)
    assert built.weight_bytes(cfg, eng.rows, eng.beat_bits) == body + lm_head_bytes(cfg, 8)
    assert low.weight_bytes(cfg, eng.rows, eng.beat_bits) == body + cl.stream_bytes(
        cfg.vocab_size, cfg.hidden_size, cl.FORMATS["Q6_K"], eng.rows, eng.beat_bits)
    f, wbps = p.clock_mhz * 1e6, bandwidth(board, p).weights
    run = lr.run_seconds(cfg, board, built, eng, p, 1, p.decode_context)
    assert run["lm_head"] == pytest.approx(cost_lm_head.seconds(cfg, board, p, beat=16))
    run_low = lr.run_seconds(cfg, board, low, eng, p, 1, p.decode_context)
    assert run_low["lm_head"] == pytest.approx(
        cl.linear_seconds(cfg.vocab_size, cfg.hidden_size, cl.FORMATS["Q6_K"], eng, 1, f, wbps))
    assert run["lm_head"] > run_low["lm_head"]  # 8.125 bits a weight against Q6_K's 6.56
    # its resources: the int8 head's MACs (DSPs) and state in the fit check, none with the low-bit head
    head = ls.head_resources(cfg, board, built, p)
    mac = cost_lm_head.resources(cfg, board, p, 16)
    assert head.dsp == mac.dsp > 0 and head.lut > mac.lut  # plus the row FIFOs
    assert cost_lm_head.resources(cfg, board, p, 32).dsp > mac.dsp  # P sizes the MACs: 16 is priced
    assert ls.head_resources(cfg, board, low, p).lut == 0
    both = ls.total_resources(cfg, board, built, eng, vec), ls.total_resources(cfg, board, low, eng, vec)
    assert both[0].lut - both[1].lut == head.lut and both[0].dsp - both[1].dsp == head.dsp
    # the head's group sizes the engine (MAXG) only when the head runs there
    wide = cl.LowbitModel(built.layers, cl.fit(cl.FORMATS["GPTQ4"], cfg.hidden_size))  # G 128, linears G 32
    assert wide.max_group() == 32 and cl.LowbitModel(wide.layers, wide.head, True).max_group() == 128
