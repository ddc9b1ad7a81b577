"""The low-bit matmul engine (hw/include/edgellm/lowbit_mm.h) in C simulation: bit-exact against
models/lowbit.py lowbit_linear for bits 2..8, groups 16..256, every parameter codec, R 32 and 64."""

import ctypes

import numpy as np
import pytest
from test_hw_lowbit_pack import _gptq, _kquant, _q4_0, _q6_k

from edgellm.compiler import packing_lowbit as pl
from edgellm.hw import csim
from edgellm.models import lowbit as lb
from edgellm.models import numerics as nx

F32 = np.float32
GUARD = 32


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lowbit_tb.cpp"], "lowbit_tb")


def _fields(img: pl.LowbitImage) -> np.ndarray:
    return np.array([img.bits, img.group, img.n_out, img.n_in, *img.codec.as_words()], np.int32)


# testbench entry -> (rows, beat bits) of its LowbitConfig (hw/tb/lowbit_tb.cpp)
CONFIGS = {"tb_lowbit_r32": (32, 128), "tb_lowbit_r64": (64, 128), "tb_lowbit_tp3": (32, 128),
           "tb_lowbit_w4": (128, 512), "tb_lowbit_w2": (64, 256)}


def _run(lib: ctypes.CDLL, w: lb.GroupQuant, q: np.ndarray, qs: np.ndarray, rows: int = 32,
         lead_beats: int = 0, fn: str = "") -> np.ndarray:
    fn = fn or f"tb_lowbit_r{rows}"
    rows, bw = CONFIGS[fn]
    img = pl.pack_lowbit(w, rows=rows, beat_bits=bw)
    data = np.concatenate([np.full(bw // 8 * lead_beats, 0xA5, np.uint8), img.data])
    t, out = q.shape[0], w.shape[0]
    buf = np.full(t * out + 2 * GUARD, np.nan, F32)
    y = buf[GUARD:GUARD + t * out]
    call = getattr(lib, fn)
    rc = call(csim.ptr(_fields(img)), csim.ptr(data), ctypes.c_long(data.size), ctypes.c_long(lead_beats),
            csim.ptr(np.ascontiguousarray(q)), csim.ptr(qs), ctypes.c_int(t), csim.ptr(y))
    assert rc == 0
    assert np.isnan(buf[:GUARD]).all() and np.isnan(buf[-GUARD:]).all(), "write outside y"
    return y.reshape(t, out)


def _acts(rng: np.random.Generator, t: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((t, k)).astype(F32)
    x[0, :7] *= 40.0  # an outlier: some q hit -128 / 127
    return nx.quantize(x)


def _assert_bits(y: np.ndarray, ref: np.ndarray) -> None:
    assert y.dtype == ref.dtype == F32
    assert int((y.view(np.uint32) != ref.view(np.uint32)).sum()) == 0


@pytest.mark.parametrize("group", [16, 32, 128])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_rtn_every_width(lib: ctypes.CDLL, bits: int, group: int) -> None:
    rng = np.random.default_rng(100 * bits + group)
    w = lb.quantize_rtn(rng.standard_normal((45, 512)).astype(F32), bits, group)
    q, qs = _acts(rng, 3, 512)
    _assert_bits(_run(lib, w, q, qs), lb.lowbit_linear(q, qs, w))


CODECS = ["q4_0", "q8_0", "q4_k", "q2_k", "q6_k", "gptq4", "gptq3", "g256", "one_block"]


@pytest.mark.parametrize("name", CODECS)
def test_codecs(lib: ctypes.CDLL, name: str) -> None:
    rng = np.random.default_rng(len(name))
    make = {"q4_0": lambda: _q4_0(rng, 64, 512), "q8_0": lambda: _q4_0(rng, 40, 256, 8),
            "q4_k": lambda: _kquant(rng, 32, 768, 4, 32, 6), "q2_k": lambda: _kquant(rng, 48, 512, 2, 16, 4),
            "q6_k": lambda: _q6_k(rng, 32, 512), "gptq4": lambda: _gptq(rng, 50, 512, 4),
            "gptq3": lambda: _gptq(rng, 32, 256, 3),
            "g256": lambda: lb.quantize_rtn(rng.standard_normal((33, 768)).astype(F32), 5, 256),
            "one_block": lambda: _kquant(rng, 32, 256, 4, 32, 6)}[name]  # one tile, one super-block
    w = make()
    q, qs = _acts(rng, 2, w.shape[1])
    _assert_bits(_run(lib, w, q, qs), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("rows,t,lead", [(32, 1, 0), (32, 8, 3), (64, 4, 1), (64, 1, 0)])
def test_tiles_tokens_and_offsets(lib: ctypes.CDLL, rows: int, t: int, lead: int) -> None:
    rng = np.random.default_rng(rows * 10 + t)
    w = _kquant(rng, 96, 1024, 4, 32, 6)
    q, qs = _acts(rng, t, 1024)
    _assert_bits(_run(lib, w, q, qs, rows=rows, lead_beats=lead), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("t", [1, 3, 5, 8])
def test_token_lanes(lib: ctypes.CDLL, t: int) -> None:
    """TP = 3 token lanes (LowbitConfig<32, 4096, 8, 64, 3>): partial token blocks, G 16 and 64."""
    rng = np.random.default_rng(t)
    w6 = lb.quantize_rtn(rng.standard_normal((64, 512)).astype(F32), 6, 64)
    for w in (_kquant(rng, 40, 512, 2, 16, 4), w6):
        q, qs = _acts(rng, t, 512)
        _assert_bits(_run(lib, w, q, qs, fn="tb_lowbit_tp3"), lb.lowbit_linear(q, qs, w))


@pytest.mark.parametrize("fn", ["tb_lowbit_w4", "tb_lowbit_w2"])
@pytest.mark.parametrize("name", CODECS)
def test_wide_beats(lib: ctypes.CDLL, fn: str, name: str) -> None:
    """Beats of 512 bits (four ports, RD 4, TP 2, R 128) and 256 bits (two ports, RD 2, R 64): every
    codec, partial tiles, 1 and 3 tokens."""
    rng = np.random.default_rng(len(name) + len(fn))
    w = {"q4_0": lambda: _q4_0(rng, 200, 512), "q8_0": lambda: _q4_0(rng, 40, 256, 8),
         "q4_k": lambda: _kquant(rng, 128, 768, 4, 32, 6), "q2_k": lambda: _kquant(rng, 160, 512, 2, 16, 4),
         "q6_k": lambda: _q6_k(rng, 128, 512), "gptq4": lambda: _gptq(rng, 50, 512, 4),
         "gptq3": lambda: _gptq(rng, 32, 256, 3),
         "g256": lambda: lb.quantize_rtn(rng.standard_normal((33, 768)).astype(F32), 5, 256),
         "one_block": lambda: _kquant(rng, 128, 256, 4, 32, 6)}[name]()
    for t in (1, 3):
        q, qs = _acts(rng, t, w.shape[1])
        _assert_bits(_run(lib, w, q, qs, fn=fn, lead_beats=t - 1), lb.lowbit_linear(q, qs, w))


def test_group_order_is_the_contracts(lib: ctypes.CDLL) -> None:
    """The engine's result differs from an all-scale-terms-first association on this input (so the
    bit-exact tests above would catch an engine that reassociated the group loop)."""
    rng = np.random.default_rng(7)
    w = _kquant(rng, 64, 1024, 4, 32, 6)
    q, qs = _acts(rng, 2, 1024)
    y = _run(lib, w, q, qs)
    sp = np.zeros_like(y)
    ms = np.zeros_like(y)
    s_all = lb.group_sums(q, 32).astype(F32)
    for g in range(w.n_groups):
        sp = sp + w.scales[None, :, g] * lb.group_products(q, w, g).astype(F32)
        ms = ms + w.mins[None, :, g] * s_all[:, g:g + 1]
    assert (((sp + ms) / qs[:, None]).view(np.uint32) != y.view(np.uint32)).any()


def test_stream_beats_match_the_packer(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(3)
    cases = ((_kquant(rng, 40, 512, 2, 16, 4), 32, 128), (_q4_0(rng, 64, 256), 64, 128),
             (_gptq(rng, 8, 256, 4), 32, 128), (_q6_k(rng, 200, 512), 128, 512),
             (_q4_0(rng, 70, 256), 64, 256))
    for w, rows, bw in cases:
        img = pl.pack_lowbit(w, rows=rows, beat_bits=bw)
        n = lib.tb_lowbit_stream_beats(csim.ptr(_fields(img)), ctypes.c_int(rows), ctypes.c_int(bw))
        assert n == img.data.size // (bw // 8)


def test_too_large_calls_refused(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(4)
    w = _q4_0(rng, 32, 256)
    img = pl.pack_lowbit(w)
    q, qs = _acts(rng, 9, 256)  # MAXT = 8
    y = np.zeros((9, 32), F32)
    args = (csim.ptr(_fields(img)), csim.ptr(img.data), ctypes.c_long(img.data.size), ctypes.c_long(0),
            csim.ptr(q), csim.ptr(qs))
    assert lib.tb_lowbit_r32(*args, ctypes.c_int(9), csim.ptr(y)) == -1
    short = img.data[:-16].copy()
    assert lib.tb_lowbit_r32(csim.ptr(_fields(img)), csim.ptr(short), ctypes.c_long(short.size),
                             ctypes.c_long(0), csim.ptr(q), csim.ptr(qs), ctypes.c_int(1), csim.ptr(y)) == -2


def test_dependence_claim_holds() -> None:
    """C simulation with EDGELLM_CHECK_DEPS: the accumulator's distance-8 claim is never violated at the
    tightest case (G 16, 2 bits, one token: R / (BW / 16) = 4 row sets x 2 planes, at 128-, 256- and
    512-bit beats), and it is exercised."""
    dl = csim.load([csim.TB_DIR / "lowbit_tb.cpp", csim.TB_DIR / "dep_tb.cpp"], "lowbit_dep_tb",
                   defines={"EDGELLM_CHECK_DEPS": "1"})
    dl.tb_dep_reset()
    rng = np.random.default_rng(5)
    for bits, group in ((2, 16), (3, 16), (2, 32), (8, 256)):
        w = lb.quantize_rtn(rng.standard_normal((160, 512)).astype(F32), bits, group)
        q, qs = _acts(rng, 1, 512)
        for fn in ("tb_lowbit_r32", "tb_lowbit_w4", "tb_lowbit_w2"):  # R * 2 / (BW / 16) = 8 at G 16
            _assert_bits(_run(dl, w, q, qs, fn=fn), lb.lowbit_linear(q, qs, w))
    buf = ctypes.create_string_buffer(4096)
    dl.tb_dep_report(buf, 4096)
    report = buf.value.decode()
    assert dl.tb_dep_violations() == 0, report
    line = next(ln for ln in report.splitlines() if ln.startswith("lb_block.codes"))
    assert int(line.split()[1]) > 0 and int(line.split()[2]) > 0, report  # reads and writes seen
