"""A low-bit top (top.h + lowbit_policy.h, hw/tb/lowbit_top_tb.cpp: two layers of the GGUF-mix Llama/Qwen2
shape, the engine and the int8 LM head on two weight ports, the prefill pipeline) in C simulation under
the port model, driven through a DDR buffer laid out here as the host and the memory plan lay it out
(header, layer table, low-bit table at HDR_LB_TABLE, port images, params with q/k/v biases): a prefill
and decode steps bit-exact against models/golden.py (logits, argmax, KV cache), every weight FIFO drained;
and every program_check rule on the low-bit records refuses a bad record with its status, field and value
(docs/hls.md "Low-bit linears"), running nothing."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import pytest
from shared_lowbit import mixed_model, pack_linears

from edgellm.compiler import interface as itf
from edgellm.compiler import packing_lowbit as pl
from edgellm.compiler.packing_gear import gear_ports
from edgellm.hw import csim
from edgellm.models.golden import GoldenModel
from edgellm.models.numerics import F32
from edgellm.runtime.layout import LOGITS_ROW_ALIGN
from edgellm.runtime.lowbit_gear import Gear

MAX_T, MAX_CTX, TOP_K, N_LAYERS, VOCAB = 16, 64, 8, 2, 64
ALIGN = 4096
LB = itf.LB


def _load(threads: bool) -> ctypes.CDLL:
    dl = csim.load([csim.TB_DIR / "lowbit_top_tb.cpp"], "lowbit_top_tb" + "_mt" * threads, threads=threads)
    dl.tb_lb_top_run.restype = ctypes.c_longlong
    dl.tb_lb_top_run_gear.restype = ctypes.c_longlong
    dl.tb_lb_top_leftovers.restype = ctypes.c_longlong
    dl.tb_lb_top_deadlocks.restype = ctypes.c_longlong
    return dl


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return _load(False)


@dataclass
class LbTop:
    """The buffer of one low-bit model for the testbench's top."""

    lib: ctypes.CDLL
    gm: GoldenModel
    ddr: np.ndarray
    regions: dict[str, tuple[int, int]]  # name -> (offset, bytes)
    suffix: str = ""  # "_gear": the geared top's entry points (lbtop_gear)

    def region(self, name: str, dtype: type = F32) -> np.ndarray:
        off, n = self.regions[name]
        return self.ddr[off:off + n].view(dtype)

    def status(self) -> tuple[int, int, int]:
        h = self.region("header", np.uint32)
        return tuple(int(h[itf.HDR[w]]) for w in ("HDR_STATUS", "HDR_STATUS_FIELD", "HDR_STATUS_VALUE"))

    def run(self, tokens: np.ndarray, pos0: int) -> None:
        """One forward pass (every layer, the head on the last row) of the tokens at pos0."""
        emb = self.gm.model.embed_rows(tokens)
        self.region("h")[:emb.size] = emb.ravel()
        prog = itf.program(N_LAYERS, len(tokens), pos0)
        self.region("program", np.uint32)[:prog.size] = prog.ravel()
        self.region("logits")[:] = np.nan
        off = self.regions["program"][0]
        run = getattr(self.lib, "tb_lb_top_run" + self.suffix)
        assert run(csim.ptr(self.ddr), ctypes.c_uint64(self.ddr.size), ctypes.c_uint32(0),
                   ctypes.c_uint32(off), ctypes.c_uint32(len(prog))) == 0, "port conflicts"


def top_sizes(lib: ctypes.CDLL, suffix: str = "") -> tuple[list[int], Gear]:
    """The top's sizes (tb_lb_top_sizes: scratch, taps, head rows, R, BW, fetch ports) and its gearbox."""
    sz = np.zeros(10, np.int64)
    getattr(lib, "tb_lb_top_sizes" + suffix)(csim.ptr(sz))
    return [int(v) for v in sz[:7]], Gear(*(int(v) for v in sz[7:]))


def build(lib: ctypes.CDLL, gm: GoldenModel, suffix: str = "") -> LbTop:
    """Lay out the buffer: regions ALIGN apart, the header at 0 (suffix "_gear": the geared top's, its
    port images under its gearbox)."""
    sz, gear = top_sizes(lib, suffix)
    scratch_f, scratch_i8, tap_f, head_rows, rows, bw = sz[:6]
    c, qm = gm.cfg, gm.model
    # params: per layer attention norm, FFN norm, q/k/v biases; then the final norm
    params, p_off, bias_off = [], [], []
    for layer in qm.layers:
        at = sum(p.size for p in params)
        p_off.append([at, at + c.hidden_size, at, at])
        params += [layer.attn_norm, layer.ffn_norm]
        offs = {}
        for name in ("q", "k", "v"):
            b = getattr(layer, f"{name}_bias")
            if b is not None:
                offs[name] = sum(p.size for p in params)
                params.append(b)
        bias_off.append(offs)
    final_norm = sum(p.size for p in params)
    params = np.concatenate([*params, qm.final_norm]).astype(F32)
    images, w_offs, lbts, w_bytes = [], [], [], 0
    for li, layer in enumerate(qm.layers):
        img, w_off, lbt = pack_linears(layer, rows, bw, bias_off[li], base=w_bytes, gear=gear)
        images.append(img), w_offs.append(w_off), lbts.append(lbt)
        w_bytes += img.size
    vr = -(-VOCAB // LOGITS_ROW_ALIGN) * LOGITS_ROW_ALIGN
    kv = N_LAYERS * MAX_CTX * c.kv_size * 4
    sizes = {"header": 4 * itf.HDR_WORDS, "layer_table": N_LAYERS * itf.LD_WORDS * 4,
             "lb_table": N_LAYERS * 7 * itf.LB_WORDS * 4, "weights": w_bytes, "params": params.nbytes,
             "cos": gm.cos.nbytes, "sin": gm.sin.nbytes, "head_w": qm.lm_head.w.nbytes,
             "head_scale": qm.lm_head.row_scale.nbytes, "k_cache": kv, "v_cache": kv,
             "h": MAX_T * c.hidden_size * 4, "scratch_f": scratch_f * 4, "scratch_i8": scratch_i8,
             "taps": tap_f * 4, "logits": head_rows * vr * 4,
             "argmax": head_rows * (4 + 8 * TOP_K), "program": 8 * itf.DESC_WORDS * 4}
    regions, at = {}, 0
    for name, n in sizes.items():
        regions[name] = (at, n)
        at += -(-n // ALIGN) * ALIGN
    ddr = np.zeros(at, np.uint8)
    t = LbTop(lib, gm, ddr, regions, suffix)
    t.region("weights", np.uint8)[:] = np.concatenate(images)
    t.region("params")[:] = params
    t.region("cos")[:] = gm.cos.ravel()
    t.region("sin")[:] = gm.sin.ravel()
    t.region("head_w", np.int8)[:] = qm.lm_head.w.ravel()
    t.region("head_scale")[:] = qm.lm_head.row_scale
    table = np.stack([itf.layer_desc(w_offs[i], [1.0] * 7, p_off[i]) for i in range(N_LAYERS)])
    t.region("layer_table", np.uint32)[:] = table.ravel()
    t.region("lb_table", np.uint32)[:] = np.concatenate(lbts).ravel()
    off = {k: v[0] for k, v in regions.items()}
    t.region("header", np.uint32)[:] = itf.header({
        "HDR_N_LAYERS": N_LAYERS, "HDR_MAX_T": MAX_T, "HDR_MAX_CTX": MAX_CTX,
        "HDR_EPS_BITS": itf.f32_bits(c.rms_eps),
        "HDR_ATTN_SCALE_BITS": itf.f32_bits(1.0 / np.sqrt(c.head_dim)),
        "HDR_LAYER_TABLE": off["layer_table"], "HDR_WEIGHTS": off["weights"], "HDR_PARAMS": off["params"],
        "HDR_COS": off["cos"], "HDR_SIN": off["sin"], "HDR_K_CACHE": off["k_cache"],
        "HDR_V_CACHE": off["v_cache"],
        "HDR_H": off["h"], "HDR_SCRATCH_F": off["scratch_f"], "HDR_SCRATCH_I8": off["scratch_i8"],
        "HDR_TAPS": off["taps"], "HDR_FINAL_NORM": final_norm, "HDR_HEAD_W": off["head_w"],
        "HDR_HEAD_SCALE": off["head_scale"], "HDR_LOGITS": off["logits"], "HDR_ARGMAX": off["argmax"],
        "HDR_TOPK": TOP_K, "HDR_LB_TABLE": off["lb_table"]})
    return t


@pytest.fixture(scope="module", params=[False, True], ids=["llama", "qwen-bias"])
def top(request: pytest.FixtureRequest, lib: ctypes.CDLL) -> LbTop:
    return build(lib, mixed_model(request.param, seed=7 + request.param, n_layers=N_LAYERS, vocab=VOCAB))


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, F32).view(np.uint32)


def test_prefill_then_decode_bit_exact(top: LbTop) -> None:
    """A 12-token prefill (the two-half schedule: halves of 6 tokens), then 3 decode steps: logits,
    argmax and the KV cache bit-exact; status ST_OK; every FIFO word popped."""
    check_prefill_then_decode(top)


def test_threaded_fetchers_and_engine() -> None:
    """The threaded C simulation (hw/csim_threads: the fetchers and the engine concurrent over FIFOs
    bounded at fetch_depth = 64 words): the same results, no deadlock."""
    lib_mt = _load(True)
    check_prefill_then_decode(build(lib_mt, mixed_model(True, seed=8, n_layers=N_LAYERS, vocab=VOCAB)))


@pytest.mark.parametrize("threads", [False, True], ids=["sequential", "threaded"])
def test_weight_gearbox(threads: bool) -> None:
    """The same model on a 4-port engine with the weight gearbox (lbtop_gear: cycles of 5 beats, lane 1's
    last 2 words on port 0, lane 2's last on port 3; compiler/packing_gear.py's port images, each padded
    with 0xA5): bit-exact, every FIFO (side, count and merged-lane ones too) drained; threaded, with the
    64-word FIFOs and the side FIFOs at their depth: no deadlock. The linears' passes end mid-cycle, past the
    given beats too, and the ports' images differ from the lanes'."""
    lib = _load(threads)
    gm = mixed_model(True, seed=9, n_layers=N_LAYERS, vocab=VOCAB)
    (_, _, _, _, rows, bw, ports), gear = top_sizes(lib, "_gear")
    assert (bw, ports, gear) == (512, 4, Gear(5, 2, 1))
    nbs = [pl.pack_lowbit(lin.quant, rows=rows, beat_bits=bw).data.size // (bw // 8)
           for lin in gm.model.layers[0].linears().values()]
    assert {n % gear.cycle for n in nbs} >= {0, 4}, nbs  # a whole cycle, and one ending on a given beat
    lanes = pl.port_images(pl.pack_lowbit(gm.model.layers[0].q.quant, rows=rows, beat_bits=bw))
    assert [x.size for x in gear_ports(lanes, gear)] != [x.size for x in lanes]
    dead0 = lib.tb_lb_top_deadlocks()
    check_prefill_then_decode(build(lib, gm, "_gear"))
    assert lib.tb_lb_top_deadlocks() == dead0


def check_prefill_then_decode(top: LbTop) -> None:
    gm, c = top.gm, top.gm.cfg
    left0 = top.lib.tb_lb_top_leftovers()
    cache = gm.new_cache(MAX_CTX)
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, VOCAB, 12)
    bad, pos = [], 0
    for chunk in (tokens, *([int(rng.integers(0, VOCAB))] for _ in range(3))):
        chunk = np.asarray(chunk)
        ref = gm.forward(chunk, cache, all_logits=False)[0]
        top.run(chunk, pos)
        pos += chunk.size
        assert top.status()[0] == itf.ST_OK, top.status()
        logits = top.region("logits")[:VOCAB]
        am = int(top.region("argmax", np.int32)[0])
        bad.append(int((_bits(logits) != _bits(ref)).sum()) + int(am != int(np.argmax(ref))))
    kv = top.region("k_cache").reshape(N_LAYERS, MAX_CTX, -1)[:, :pos]
    vv = top.region("v_cache").reshape(N_LAYERS, MAX_CTX, -1)[:, :pos]
    bad.append(int((_bits(kv) != _bits(cache.k[:, :pos].reshape(N_LAYERS, pos, -1))).sum()))
    bad.append(int((_bits(vv) != _bits(cache.v[:, :pos].reshape(N_LAYERS, pos, -1))).sum()))
    assert bad == [0] * 6, bad
    assert top.lib.tb_lb_top_leftovers() == left0
    assert c.qkv_bias == (top.region("lb_table", np.uint32)[LB["LB_BIAS_OFF"]] != itf.LB_NO_BIAS)


# (linear, record word, new value ("+n": the old one plus n), status[, the word reported: default the one
# changed]), linears of layer 1
Q, GATE, DOWN = 0, 4, 6
RULES = {
    "bits_high": (Q, "LB_BITS", 9, "ST_LIMIT"),
    "bits_low": (DOWN, "LB_BITS", 1, "ST_LIMIT"),
    "group_not_pow2": (Q, "LB_GROUP", 48, "ST_LIMIT"),
    "group_small": (GATE, "LB_GROUP", 8, "ST_LIMIT"),
    "group_over_max": (DOWN, "LB_GROUP", 512, "ST_LIMIT"),
    "sb_zero": (Q, "LB_SB", 0, "ST_LIMIT"),
    "sb_over_16": (GATE, "LB_SB", 17, "ST_LIMIT"),
    "sb_not_dividing_k": (Q, "LB_SB", 3, "ST_LIMIT"),
    "db": (Q, "LB_DB", 24, "ST_LIMIT"),
    "scb": (Q, "LB_SCB", 9, "ST_LIMIT"),
    "mmode": (GATE, "LB_MMODE", 2, "ST_LIMIT"),
    "dmb_mode0": (Q, "LB_DMB", 8, "ST_LIMIT"),
    "dmb_mode1": (GATE, "LB_DMB", 16, "ST_LIMIT"),
    "mcb": (Q, "LB_MCB", 12, "ST_LIMIT"),
    "dper": (Q, "LB_DPER", 2, "ST_LIMIT"),
    # G16 at 2 bits: a 256-bit beat's 16 rows finish every 2 planes, 8 steps an iteration > FU 4
    "float_steps_over_fu": (GATE, "LB_BITS", 2, "ST_LIMIT"),
    # 16 x (16 + 8) bits > kLbMaxRecordBits: reported at the record's LB_SB word
    "record_too_wide": (GATE, "LB_DPER", 1, "ST_LIMIT", "LB_SB"),
    "bias_outside": (DOWN, "LB_BIAS_OFF", 1 << 28, "ST_RANGE"),
    "bias_misaligned": (Q, "LB_BIAS_OFF", "+1", "ST_ALIGN"),
    "port1_misaligned": (Q, "LB_PORT1_OFF", "+8", "ST_ALIGN"),
    "port1_outside": (DOWN, "LB_PORT1_OFF", 1 << 30, "ST_RANGE"),  # the top: two weight ports
}


def _refused(top: LbTop, code: str, field: int, value: int) -> None:
    """The program refused with (code, field, value) and nothing ran: h as written, no logits."""
    top.run(np.arange(3), 0)
    st = top.status()
    assert st == (itf.STATUS[code], field, value), (st, (itf.STATUS[code], field, value))
    h = top.region("h")[:3 * top.gm.cfg.hidden_size]
    assert (_bits(h) == _bits(top.gm.model.embed_rows(np.arange(3)).ravel())).all()
    assert np.isnan(top.region("logits")).all()


@pytest.mark.parametrize("rule", list(RULES))
def test_bad_record_refused(lib: ctypes.CDLL, rule: str) -> None:
    t = build(lib, mixed_model(True, seed=2, n_layers=N_LAYERS, vocab=VOCAB))
    lin, word, new, code, *said = RULES[rule]
    layer, named = 1, said[0] if said else word
    rec = t.region("lb_table", np.uint32).reshape(N_LAYERS, 7, itf.LB_WORDS)[layer, lin]
    old = int(rec[LB[word]])
    if word == "LB_BIAS_OFF" and isinstance(new, str):
        assert old != itf.LB_NO_BIAS
    rec[LB[word]] = old + int(new) if isinstance(new, str) else new
    left0 = lib.tb_lb_top_leftovers()
    _refused(t, code, itf.status_field(itf.SW_LAYER, layer, itf.LD_WORDS + lin * itf.LB_WORDS + LB[named]),
             int(rec[LB[named]]))
    assert lib.tb_lb_top_leftovers() == left0  # the fetchers fetched nothing either


def test_groups_below_ming_refused(lib: ctypes.CDLL) -> None:
    """The same top on an engine whose narrowest group is 32 (lowbit_cfg min_group, MING: the engine
    builds groups 32 .. 256 only): its program check refuses the mix's first G16 record (layer 0's
    Q6_K-like gate) at its LB_GROUP word, where the MING 16 top's check passes the same buffer."""
    t = build(lib, mixed_model(False, seed=2, n_layers=N_LAYERS, vocab=VOCAB))
    prog = itf.program(N_LAYERS, 3, 0)
    t.region("program", np.uint32)[:prog.size] = prog.ravel()
    out = np.zeros(3, np.uint32)
    off = t.regions["program"][0]
    lib.tb_lb_top_check_mg32(csim.ptr(t.ddr), ctypes.c_uint64(t.ddr.size), ctypes.c_uint32(0),
                             ctypes.c_uint32(off), ctypes.c_uint32(len(prog)), csim.ptr(out))
    rec = t.region("lb_table", np.uint32).reshape(N_LAYERS, 7, itf.LB_WORDS)[0, GATE]
    assert rec[LB["LB_GROUP"]] == 16
    field = itf.status_field(itf.SW_LAYER, 0, itf.LD_WORDS + GATE * itf.LB_WORDS + LB["LB_GROUP"])
    assert tuple(int(v) for v in out) == (itf.STATUS["ST_LIMIT"], field, 16)
    t.run(np.arange(3), 0)
    assert t.status()[0] == itf.ST_OK


def _check(t: LbTop, fn: str) -> tuple[int, int, int]:
    """(status, field, value) of the testbench's check-only entry fn on t's buffer (a 3-token program)."""
    prog = itf.program(N_LAYERS, 3, 0)
    t.region("program", np.uint32)[:prog.size] = prog.ravel()
    out = np.zeros(3, np.uint32)
    getattr(t.lib, fn)(csim.ptr(t.ddr), ctypes.c_uint64(t.ddr.size), ctypes.c_uint32(0),
                       ctypes.c_uint32(t.regions["program"][0]), ctypes.c_uint32(len(prog)), csim.ptr(out))
    return tuple(int(v) for v in out)


def test_codecs_not_listed_refused(lib: ctypes.CDLL) -> None:
    """The same top on an engine built for two codecs (lowbit_cfg n_codecs / codec, as compile lists a
    model's: the mix's Q4_K- and Q6_K-like ones, not its 5-bit down's): its program check takes layer 0's
    q..up records and refuses its down's at the first word where the record leaves both (LB_SB: 1 where
    the listed have 8 and 16), as the host's bounds_lowbit.lb_codec_mismatch says; a Q4_K-like record with one
    word changed (LB_MZ) is refused at that word. The any-codec top runs the same buffer."""
    from edgellm.runtime.bounds_lowbit import lb_codec_mismatch

    t = build(lib, mixed_model(False, seed=2, n_layers=N_LAYERS, vocab=VOCAB))
    words = np.zeros((8, 10), np.int32)
    n = lib.tb_lb_top_codecs(csim.ptr(words))
    listed = tuple(tuple(int(v) for v in r) for r in words[:n])
    recs = t.region("lb_table", np.uint32).reshape(N_LAYERS, 7, itf.LB_WORDS)
    sb = LB["LB_SB"]
    assert n == 2 and all(tuple(int(v) for v in recs[0, i, sb:sb + 10]) in listed for i in range(DOWN))
    at = lb_codec_mismatch([int(v) for v in recs[0, DOWN, sb:sb + 10]], listed)
    assert at == 0  # the down's codec (1, 32, ...) leaves both at its first word
    field = itf.status_field(itf.SW_LAYER, 0, itf.LD_WORDS + DOWN * itf.LB_WORDS + sb)
    assert _check(t, "tb_lb_top_check_codecs") == (itf.STATUS["ST_LIMIT"], field, int(recs[0, DOWN, sb]))
    recs[0, Q, LB["LB_MZ"]] = 5  # Q4_K-like: mode 0 with 6-bit mins, mz 0 listed
    assert lb_codec_mismatch([int(v) for v in recs[0, Q, sb:sb + 10]], listed) == LB["LB_MZ"] - sb
    field = itf.status_field(itf.SW_LAYER, 0, itf.LD_WORDS + Q * itf.LB_WORDS + LB["LB_MZ"])
    assert _check(t, "tb_lb_top_check_codecs") == (itf.STATUS["ST_LIMIT"], field, 5)
    recs[0, Q, LB["LB_MZ"]] = 0
    t.run(np.arange(3), 0)
    assert t.status()[0] == itf.ST_OK


def test_port0_image_past_the_buffer_refused(lib: ctypes.CDLL) -> None:
    """A linear's port-0 image starting inside the buffer (one beat fits: the layer-table check passes)
    but running past its end: refused at the layer table's LD_W_OFF word."""
    t = build(lib, mixed_model(False, seed=2, n_layers=N_LAYERS, vocab=VOCAB))
    ld = t.region("layer_table", np.uint32).reshape(N_LAYERS, itf.LD_WORDS)
    new = t.ddr.size - t.regions["weights"][0] - 64
    ld[0, itf.LD_W_OFF + DOWN] = new
    _refused(t, "ST_RANGE", itf.status_field(itf.SW_LAYER, 0, itf.LD_W_OFF + DOWN), new)


@pytest.mark.parametrize("delta,code", [(4, "ST_ALIGN"), (None, "ST_RANGE")])
def test_lb_table_region_checked(lib: ctypes.CDLL, delta: int | None, code: str) -> None:
    t = build(lib, mixed_model(False, seed=2, n_layers=N_LAYERS, vocab=VOCAB))
    hdr = t.region("header", np.uint32)
    i = itf.HDR["HDR_LB_TABLE"]
    hdr[i] = hdr[i] + delta if delta is not None else t.ddr.size - 64
    _refused(t, code, itf.status_field(itf.SW_HEADER, 0, i), int(hdr[i]))
