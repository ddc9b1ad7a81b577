"""Design parameters, resource/performance models, TeLLMe calibration, DSE targets, `edgellm estimate`."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgellm.boards import list_boards, load_board
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.calibration import (
    TELLME_FITTED,
    TELLME_PREFILL_TOKEN_BLOCK,
    TELLME_PUBLISHED,
    calibration,
    fit_tellme_prefill_block,
    tellme_anchors,
    tellme_calibration,
    tellme_overlap_params,
    tellme_params,
)
from edgellm.compiler.cost.memory import KINDS, Resources, bram36_for, uram_for
from edgellm.compiler.cost.resource_model import estimate_resources
from edgellm.compiler.design import DesignParams
from edgellm.compiler.design_bytes import bits_per_weight, check_ddr_fit, weight_bytes
from edgellm.compiler.dse import FETCH_DEPTHS, explore
from edgellm.compiler.estimate import UTIL_LIMITS, Range, estimate
from edgellm.compiler.packing import pack_ternary
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS, ModelConfig

LARGE = PRESETS["bitnet_b1_58-large"]
B2 = PRESETS["bitnet-b1.58-2B-4T"]
SMALL = ModelConfig(name="small", hidden_size=256, n_layers=4, n_heads=4, n_kv_heads=4, ffn_size=688,
                    vocab_size=1024, max_context=512)
KV260 = load_board("kv260")


def test_packing_bytes() -> None:
    # the estimator counts exactly what the encoder writes (5 trits per byte, rows padded to 5 trits)
    p = DesignParams()
    manual = sum(pack_ternary(np.zeros((o, i), np.int8), p.rows).size + 4
                 for o, i in LARGE.linear_shapes().values()) * LARGE.n_layers
    assert weight_bytes(LARGE, p) == manual
    assert 1.6 < bits_per_weight(LARGE, p) < 1.61  # 1.6 plus padding and scales
    tl = tellme_params(LARGE)
    assert bits_per_weight(LARGE, tl) == pytest.approx(2.06, abs=1e-3)


def test_params_validation() -> None:
    with pytest.raises(EdgeLLMError, match="rows"):
        DesignParams(rows=0)
    with pytest.raises(EdgeLLMError, match="port_width_bits"):
        DesignParams(port_width_bits=100)
    with pytest.raises(EdgeLLMError, match="weight_buffer"):
        DesignParams(weight_buffer="sram")
    DesignParams(rows=128)  # a 1024-bit weight beat: the widest m_axi element Vitis HLS builds by default
    with pytest.raises(EdgeLLMError, match="rows must be at most 128"):
        DesignParams(rows=256)


def test_memory_blocks() -> None:
    assert bram36_for(72, 512) == 1 and bram36_for(144, 512) == 2 and bram36_for(36, 1024) == 1
    assert bram36_for(18, 100) == 0.5
    assert uram_for(140, 5472) == 4 and uram_for(72, 4096) == 1


def test_tellme_speed_through_the_headline_path() -> None:
    """TeLLMe's speed is projected by the generated engine's path (overlap=True), configured like its
    released design; its resources by its own serial description. (Before: the serial path for both.)"""
    tl = tellme_overlap_params(LARGE)
    assert tl.overlap and tl.bits_per_weight == 2.06 and not tl.lm_head_on_fabric and tl.weight_ports == 3
    speed = {a.figure: a for a in tellme_anchors()}
    assert speed["decode tok/s"].projected.central == cost_model.decode_step(LARGE, KV260, tl).tokens_per_s
    assert speed["TTFT 128 tokens (s)"].projected.central == cost_model.prefill(LARGE, KV260, tl, 128).seconds
    # its three ports on HP0, HP1, HP3 (no shared XPI): each a stream alone on its XPI, at the board's
    # measured lone-stream rate (port_stream_gbps central: 3.85 GB/s, below the 16 B x 250 MHz beat rate)
    assert cost_ddr.bandwidth(KV260, tl).weights == pytest.approx(3 * 3.85e9)
    assert cost_ddr.weight_load_s(LARGE, KV260, tellme_params(LARGE)) == pytest.approx(
        weight_bytes(LARGE, tellme_params(LARGE)) / 11.55e9, rel=1e-9)
    # the overlap path streams what bits_per_weight says (2.06 bits/weight: 175 MB), not our 1.6
    fetched = cost_model.decode_step(LARGE, KV260, tl).detail["fetch"]
    assert fetched * cost_ddr.bandwidth(KV260, tl).weights == pytest.approx(weight_bytes(LARGE, tl), rel=0.01)


def test_calibration_separates_fitted_from_held_out() -> None:
    """Every published figure appears once, as fitted or held-out; the prefill token block is the fit of
    TTFT(64) (not a prediction); the figures the bandwidth model is built from are marked fitted."""
    anchors = calibration()
    tl = [a for a in anchors if a.source == "TeLLMe v2"]
    assert [a.figure for a in tl] == list(TELLME_PUBLISHED)
    assert {a.figure for a in tl if a.status == "fitted"} == TELLME_FITTED
    assert TELLME_PREFILL_TOKEN_BLOCK == fit_tellme_prefill_block()
    bk = {a.figure: a for a in anchors if a.source == "bitnet-kv260"}
    assert bk["weight stream GB/s (HP0-HP3)"].status == "fitted"
    for a in anchors:
        assert a.status in ("fitted", "held-out")
        lo, hi = a.published
        c = a.projected.central
        ref = lo if c < lo else hi if c > hi else c
        assert a.error == pytest.approx(100 * (c - ref) / ref)
    for fig, pub, pred, err in tellme_calibration():
        assert pub == TELLME_PUBLISHED[fig] and err == pytest.approx(100 * (pred - pub) / pub)
    fitted = [a for a in anchors if a.status == "fitted"]
    assert all(abs(a.error) <= 10.0 for a in fitted), [(a.figure, a.error) for a in fitted]


# Held-out figures that miss the target, each a strict xfail naming why. None since the board files
# carry the measured rate of a stream alone on its XPI (TeLLMe's decode, on three such ports, was
# 29.1 tok/s projected at their 4 GB/s beat rate, +16%; 28.5 at the measured 3.85, +14.2%).
_MISSES: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("key", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=_MISSES[k])) if k in _MISSES else k
    for k in [("TeLLMe v2", f) for f in TELLME_PUBLISHED if f not in TELLME_FITTED]
    + [("bitnet-kv260", "bytes per token (MB)"), ("bitnet-kv260", "head stream GB/s (HP0-HP3)")]],
    ids=lambda k: f"{k[0]}: {k[1]}")
def test_held_out_within_15_percent(key: tuple[str, str]) -> None:
    """The target for every held-out figure (issue 19): within 15% of the published one. The misses are
    strict xfails naming why (docs/performance.md "Calibration"), not loosened."""
    (a,) = [a for a in calibration() if (a.source, a.figure) == key]
    assert a.status == "held-out"
    assert abs(a.error) <= 15.0, (a.figure, a.published, a.projected, a.error)


def test_physics() -> None:
    """Projections never beat the DDR bound; overlap and more ports never slow decode down."""
    base = DesignParams()
    for p in (base, base.replace(overlap=False), base.replace(weight_ports=1), tellme_params(LARGE)):
        e = estimate(LARGE, KV260, p)
        assert e.decode_tok_s <= e.ddr_bound_tok_s * 1.0001
        assert e.ttft[128].seconds > e.ttft[64].seconds > 0
    slow = cost_model.decode_step(LARGE, KV260, base.replace(overlap=False)).seconds
    assert cost_model.decode_step(LARGE, KV260, base).seconds < slow
    one = cost_model.decode_step(LARGE, KV260, base.replace(weight_ports=1)).seconds
    assert cost_model.decode_step(LARGE, KV260, base).seconds < one
    longer = cost_model.decode_step(LARGE, KV260, base, context=1024).seconds
    assert longer > cost_model.decode_step(LARGE, KV260, base).seconds
    # the LM head on the ARM cores is slower than on the fabric
    arm = cost_model.decode_step(LARGE, KV260, base.replace(lm_head_on_fabric=False))
    assert arm.parts["lm_head"] > cost_model.decode_step(LARGE, KV260, base).parts["lm_head"]


def test_banked_weight_buffers_as_built() -> None:
    """Ping/pong x P banks x (G*T/5) slots of 8R-bit memories (weight_buffer.h): the default design
    (G3, T25, R16, 4 ports) needs 2 * 4 * 15 slot memories, each 128 bits = two 72-bit URAMs."""
    from edgellm.compiler.cost.tlmm import weight_banks

    p = DesignParams()
    wb = weight_banks(LARGE, KV260, p)
    assert wb["memories"] == 2 * 4 * 15 and wb["width"] == 128
    # nb = ceil(4096 / 5) = 820 columns, 205 per port, (205 + 13) // 15 + 1 = 15 bank rows
    assert wb["depth"] == 15
    tot = estimate_resources(LARGE, KV260, p)["total"]
    assert tot.uram >= 2 * 4 * 15 * 2 > KV260.uram  # the default design does not fit the KV260
    assert not estimate(LARGE, KV260, p).fits


def test_lm_head_streams_over_all_ports() -> None:
    """lm_head.h lm_dot_fifo: NP rows per block at P bytes per port and cycle in one (block, beat) loop,
    no fill between blocks; one port is about NP times slower."""
    p = DesignParams()
    four = cost_model.decode_step(B2, KV260, p).parts["lm_head"]
    one = cost_model.decode_step(B2, KV260, p.replace(weight_ports=1)).parts["lm_head"]
    head_bytes = B2.vocab_size * B2.hidden_size
    # 4 ports: vocab / 4 blocks, each the longer of 160 dot beats and 4 rows' stream time (the four
    # weight streams', HP1 and HP2 sharing XPI 4: 12.74 GB/s in the central scenario, below the DDR's
    # 14.4), the logits scored alongside: within 0.1% of the stream time
    stream_s = head_bytes / cost_ddr.bandwidth(KV260, p).weights
    assert stream_s < four < 1.001 * stream_s
    # one port: its stream alone on its XPI at the measured 3.85 GB/s (below its 16 B/cycle beat rate)
    assert one == pytest.approx(head_bytes / 3.85e9, rel=1e-3)
    # four streams paced by the slowest (HP1, HP2: 6.37 / 2 GB/s each) against one at 3.85 GB/s
    assert one / four == pytest.approx(4 * cost_ddr.bandwidth(KV260, p).kv_port / 3.85e9, rel=2e-3)


def test_resources_scale_with_parallelism() -> None:
    small = estimate_resources(LARGE, KV260, DesignParams(rows=8))["total"]
    big = estimate_resources(LARGE, KV260, DesignParams(rows=16))["total"]
    assert big.lut > small.lut and big.ff > small.ff  # lookups, adder trees and accumulators grow with R
    for field, lo, hi in (("ew_vec", 2, 8), ("attn_lanes", 4, 16), ("out_lanes", 1, 4)):  # fp32 lanes: DSPs
        a = estimate_resources(LARGE, KV260, DesignParams(**{field: lo}))["total"]
        b = estimate_resources(LARGE, KV260, DesignParams(**{field: hi}))["total"]
        assert b.dsp > a.dsp and b.lut > a.lut, field
    one = estimate_resources(LARGE, KV260, DesignParams(token_lanes=1))["tlmm"]
    four = estimate_resources(LARGE, KV260, DesignParams(token_lanes=4))["tlmm"]
    assert four.lut > 3 * one.lut * 0.5 and four.ff > one.ff  # every token lane has its tables and lookups
    z2 = load_board("pynq_z2")
    no_uram = estimate_resources(LARGE, z2, DesignParams(weight_buffer_depth=4096))["total"]
    assert no_uram.uram == 0 and no_uram.bram36 > 0


def test_dsp_lanes_cost_dsps_not_luts() -> None:
    """A DSP token lane (tlmm_traits DL) adds exactly PAIRS * (G * T + DSP_CHAINS - 1) DSPs (per row pair
    G*T multiply-adds, two MACs each, in cascades of DSP_CHAIN, and the DSP adders that sum the
    cascades) and far fewer LUTs than a table lane; its shared trit decode and operand skew are paid
    once; the accumulators and buffers are those of any token lane. On LARGE / KV260 with G3 T15 R16."""
    g, t, r = 3, 15, 16
    pairs, chains = (r + 1) // 2, -(-g * t // 4)
    assert chains == 12

    def tl(tp: int, dl: int = 0) -> Resources:
        p = DesignParams(group_size=g, tables=t, rows=r, token_lanes=tp, dsp_lanes=dl, prefill_token_block=48)
        return estimate_resources(LARGE, KV260, p)["tlmm"]

    one, two, mixed = tl(1), tl(2), tl(2, 1)
    assert mixed.dsp - one.dsp == pairs * (g * t + chains - 1) == 448
    for dl in (1, 2, 3):
        assert tl(dl + 1, dl).dsp - one.dsp == dl * pairs * (g * t + chains - 1)
    table_lane, dsp_lane = two.lut - one.lut, mixed.lut - one.lut
    print(f"G{g} T{t} R{r}: a table lane {table_lane:.0f} LUT, a DSP lane {dsp_lane:.0f} LUT + 448 DSP")
    assert 0 < dsp_lane < table_lane / 2 and mixed.ff < two.ff
    assert (mixed.uram, mixed.bram36) == (two.uram, two.bram36)  # weight banks and xbuf (per lane) unchanged
    # the trit decode and the operands' skew are shared: each further DSP lane costs less than the first
    further = tl(3, 2).lut - tl(2, 1).lut
    assert tl(4, 3).lut - tl(3, 2).lut == pytest.approx(further) and further < dsp_lane / 2
    with pytest.raises(EdgeLLMError, match="dsp_lanes"):
        DesignParams(token_lanes=2, dsp_lanes=2)
    with pytest.raises(EdgeLLMError, match="dsp_lanes"):
        DesignParams(dsp_lanes=1)  # one token lane: lane 0 (decode) must stay a table lane
    with pytest.raises(EdgeLLMError, match="dsp_lanes"):
        DesignParams(token_lanes=2, dsp_lanes=-1)
    assert DesignParams().dsp_lanes == 0 and tl(1) == tl(1, 0)
    with pytest.raises(EdgeLLMError, match="prefill_pipeline"):
        DesignParams(prefill_pipeline="yes")


@pytest.fixture(scope="module")
def large_kv260():
    return explore(LARGE, KV260)


def _check_fits(e, board) -> None:
    tot = e.resources["total"]
    for k in KINDS:
        assert getattr(tot, k) <= UTIL_LIMITS[k] * board.resource(k) + 1e-9, k
    assert sum(e.ddr_footprint.values()) <= board.ddr_available_bytes


def test_target_large_on_kv260_decode(large_kv260) -> None:
    """Issue #5: bitnet_b1_58-large on KV260 projects >= 60 tok/s decode (128 cached tokens), at the central
    bandwidth (the four weight streams at bitnet-kv260's measured 12.74 GB/s) and at the high end. Met
    again since the LM head's token lanes are a design field: the plain objective takes one head lane
    (2.6k LUT against 13.2k for eight); a strict xfail while the head's lanes followed the block."""
    e = large_kv260.estimate
    assert e.decode_tok_s >= 60.0 and e.ranges["decode_tok_s"].high >= 60.0
    assert e.fits and large_kv260.feasible > 0 and e.params.head_lanes == 1


def test_large_on_kv260_as_built(large_kv260) -> None:
    """The chosen design fits with headroom and stays under the DDR bound."""
    e = large_kv260.estimate
    _check_fits(e, KV260)
    assert 50.0 < e.decode_tok_s <= e.ddr_bound_tok_s
    assert e.fetch_fifo_bytes == cost_model.fetch_capacity_bytes(KV260, e.params) > 0
    assert e.params.fetch_depth in FETCH_DEPTHS and e.resources["fetch"].lut > 0
    assert e.summary()["fetch_fifo_kib"] == e.fetch_fifo_bytes / 1024
    assert e.ttft[128].seconds > e.ttft[64].seconds > 0


def test_large_on_kv260_prefill_engines(large_kv260) -> None:
    """The chosen design overlaps the TLMM with the vector engines (prefill pipeline); without it its
    TTFT(128) is longer."""
    r = large_kv260
    e, p = r.estimate, r.params
    assert p.prefill_pipeline and e.fits
    no_pipe = cost_model.prefill(LARGE, KV260, p.replace(prefill_pipeline=False), 128).seconds
    assert no_pipe > e.ttft[128].seconds


def test_large_on_kv260_dsp_token_lane(large_kv260) -> None:
    """The chosen design has a DSP token lane beside the table lane; without it its TTFT(128) is longer
    (a strict xfail while the 8-lane head took its LUTs)."""
    r = large_kv260
    e, p = r.estimate, r.params
    assert p.dsp_lanes >= 1 and e.fits
    no_dsp = cost_model.prefill(LARGE, KV260, p.replace(token_lanes=p.token_lanes - p.dsp_lanes, dsp_lanes=0,
                                                         prefill_token_block=64), 128).seconds
    assert no_dsp > e.ttft[128].seconds


TTFT_MISS = ("issue 5's TTFT(128) <= 0.5 s is missed: prefill is compute-bound (central 0.635 s, high "
             "0.634 s; G3 T10 R16 TP2 with one DSP lane, pipelined, one LM-head lane at 74.8% of the LUTs): "
             "more TLMM tables or token lanes do not fit the 75% LUT cap (the 0.46 s design, G2 T20 R16 OL2, "
             "used 79.7%)")


@pytest.mark.xfail(strict=True, reason=TTFT_MISS)
@pytest.mark.parametrize("end", ["central", "high"])
def test_target_large_on_kv260_ttft(large_kv260, end: str) -> None:
    """Issue #5: bitnet_b1_58-large on KV260 projects TTFT(128) <= 0.5 s (with decode >= 60 tok/s)."""
    e = large_kv260.estimate
    r = e.ranges["ttft_128_s"]
    assert (r.central if end == "central" else r.high) <= 0.5 and e.decode_tok_s >= 60.0


@pytest.fixture(scope="module")
def b2_kv260():
    return explore(B2, KV260)


B2_MISS = ("measured bandwidth: the four weight streams are paced by HP1 and HP2 sharing XPI 4 (12.74 GB/s "
           "central, bitnet-kv260's 12.73), and 768 MB a token at that rate is 16.6 tok/s at best; the DSE's "
           "design projects 16.3 central and 19.0 at the high end (15.2 GB/s of weights)")


def test_2b_on_kv260_fits(b2_kv260) -> None:
    _check_fits(b2_kv260.estimate, KV260)
    assert b2_kv260.estimate.decode_tok_s > 15.0


@pytest.mark.xfail(strict=True, reason=B2_MISS)
@pytest.mark.parametrize("end", ["central", "high"])
def test_target_2b_on_kv260(b2_kv260, end: str) -> None:
    """Issue #5: BitNet-b1.58-2B-4T on KV260 projects >= 20 tok/s."""
    r = b2_kv260.estimate.ranges["decode_tok_s"]
    assert (r.central if end == "central" else r.high) >= 20.0


@pytest.mark.parametrize("board_name", list_boards())
def test_small_model_fits_every_board(board_name: str) -> None:
    board = load_board(board_name)
    r = explore(SMALL, board)
    _check_fits(r.estimate, board)
    assert r.estimate.decode_tok_s > 0


@pytest.mark.parametrize("model", [LARGE, B2, SMALL], ids=lambda c: c.name)
def test_dse_vector_fields_touch_only_vector_kernels(model: ModelConfig) -> None:
    """The DSE looks up every kernel but the element-wise engine and the attention core once per design
    with VECTOR_FIELDS normalized (dse.kernels): changing those fields must change no other kernel."""
    from edgellm.compiler.dse import VECTOR_FIELDS

    rng = np.random.default_rng(3)
    for board in (KV260, load_board("zcu104"), load_board("pynq_z2")):
        for _ in range(12):
            vec = int(rng.choice([1, 2, 4, 8]))
            p = DesignParams(group_size=int(rng.choice([2, 3])), tables=int(rng.choice([5, 15, 30])),
                             rows=int(rng.choice([8, 16, 32])), weight_ports=int(rng.choice([1, 2, 4])),
                             attn_lanes=int(rng.choice([2, 8, 32])), attn_kv_block=int(rng.choice([8, 32])),
                             ew_vec=vec, ew_glu_vec=int(rng.choice([0, 1])), ew_lanes=max(16, 8 * vec),
                             token_lanes=int(rng.choice([1, 2])),
                             weight_buffer=str(rng.choice(["bram", "lutram"])))
            full = estimate_resources(model, board, p)
            rest = estimate_resources(model, board, p.replace(**VECTOR_FIELDS))
            for k in full:
                if k not in ("elementwise", "attention", "total"):
                    assert full[k] == rest[k], (k, p)


def test_dse_fast_path_matches_the_designs_it_stands_for() -> None:
    """The DSE's fast path keys decode by _decode_key_of(rest, vector fields, depth) and builds the design
    later (_built): both equal what the built DesignParams gives."""
    from edgellm.compiler.dse import _built, _decode_key_of, candidate_groups, decode_key

    n = 0
    for rest, vectors in candidate_groups(LARGE, KV260, DesignParams()):
        for v in vectors[::7]:
            for d in (512, 12288):
                q = rest.replace(**v, fetch_depth=d)
                assert _decode_key_of(rest, v, d) == decode_key(q) and _built((rest, v, d)) == q
                n += 1
        if n > 400:
            break
    assert n > 400


def test_ddr_limit_named() -> None:
    with pytest.raises(EdgeLLMError, match=r"pynq_z2 \(512 MiB DDR\) leaves 256 MiB"):
        explore(B2, load_board("pynq_z2"))
    with pytest.raises(EdgeLLMError, match="kv_cache"):
        check_ddr_fit(B2, DesignParams(), 100 << 20, "somewhere")


def test_no_design_fits() -> None:
    with pytest.raises(EdgeLLMError, match="no accelerator configuration .* fits pynq_z2"):
        explore(SMALL, load_board("pynq_z2"), limits={k: 0.05 for k in KINDS})


def _app() -> typer.Typer:
    from edgellm.commands.estimate import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:
        pass

    return app


def test_estimate_command() -> None:
    runner = CliRunner()
    res = runner.invoke(_app(), ["estimate", "--board", "pynq_z2", "--calibration"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "projected" in res.output and "DDR-bound" in res.output and "TTFT 128" in res.output
    assert "+" in res.output and "decode tok/s" in res.output  # calibration table
    bad = runner.invoke(_app(), ["estimate", "--preset", "nope"])
    assert bad.exit_code != 0 and isinstance(bad.exception, EdgeLLMError)


def test_estimate_command_reads_config_only(tmp_path) -> None:
    import json

    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "intermediate_size": 512, "vocab_size": 1000, "hidden_act": "silu"}))
    res = CliRunner().invoke(_app(), ["estimate", str(tmp_path), "--board", "kv260"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert tmp_path.name in res.output


def test_ttft_bounds_bench_bound_is_below_built() -> None:
    """bench/ttft_bounds.py: the overlap bound of a design lies between its TLMM + load time and its
    projected TTFT with the engines one after another, and below its pipelined TTFT (no schedule of
    the engines beats a perfect overlap)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "ttft_bounds.py"
    spec = importlib.util.spec_from_file_location("ttft_bounds", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = explore(SMALL, KV260).params
    s = mod.split(SMALL, KV260, p)
    assert s["load"] + max(s["tlmm"], s["elementwise"] + s["attention"]) <= s["bound"] < s["sequential"]
    assert s["bound"] <= s["pipelined"]
    assert s["built"] == pytest.approx(cost_model.prefill(SMALL, KV260, p, 128).seconds)


@pytest.mark.parametrize("cfg", [LARGE, B2, SMALL], ids=lambda c: c.name)
@pytest.mark.parametrize("tokens", [2, 13, 128])
def test_prefill_pipeline_projection(cfg: ModelConfig, tokens: int) -> None:
    """The two-half schedule's projection: decode (one token, sequential schedule) unchanged; for
    prompts long enough to hide the vector engines it beats the sequential schedule of the same design;
    it never beats its busier engine (the TLMM's compute, or element-wise + attention) plus the LM head
    and the host; and its engine totals are those of the same tokens run as the two halves."""
    p = DesignParams(group_size=3, tables=15, rows=16, token_lanes=2, prefill_token_block=64, attn_lanes=16,
                     ew_vec=4, ew_glu_vec=1, ew_lanes=32, out_lanes=2, fetch_depth=4096)
    q = p.replace(prefill_pipeline=True)
    dec = cost_model.decode_step(cfg, KV260, p).seconds
    # decode's value depends on none of the prefill-only fields (one token on lane 0); DSP lanes deepen
    # the TLMM loop every call pays once per tile (cost_tlmm.dsp_lane_extra_depth), decode included
    for other in (q, p.replace(token_lanes=1), p.replace(prefill_token_block=16)):
        assert cost_model.decode_step(cfg, KV260, other).seconds == dec
    with_dsp = cost_model.decode_step(cfg, KV260, p.replace(dsp_lanes=1))
    base = cost_model.decode_step(cfg, KV260, p)
    assert with_dsp.detail["compute"] > base.detail["compute"] and with_dsp.seconds >= dec * (1 - 1e-12)
    seq, pipe = cost_model.prefill(cfg, KV260, p, tokens), cost_model.prefill(cfg, KV260, q, tokens)
    d = pipe.detail
    floor = max(d["compute"], d["elementwise"] + d["attention"]) + pipe.parts["lm_head"] + pipe.parts["host"]
    assert pipe.seconds >= floor
    if tokens >= 13:
        assert pipe.seconds < seq.seconds
    # the halves: element-wise work is per token, so the two halves' sum equals the whole call's
    assert d["elementwise"] == pytest.approx(seq.detail["elementwise"], rel=1e-9)


def test_prefill_floor_bounds_every_widened_variant() -> None:
    """cost_model.prefill_floor (the DSE's branch-and-bound) is a lower bound of the TTFT of every variant
    of a design in the prefill-only fields (token lanes, DSP lanes, prefill block, pipeline); so pruning
    by it cannot change the DSE's choice."""
    import itertools

    from edgellm.compiler import dse

    rng = np.random.default_rng(7)
    for cfg in (LARGE, SMALL):
        for _ in range(4):
            p = DesignParams(group_size=int(rng.choice([2, 3])), tables=int(rng.choice([10, 15, 20])),
                             rows=int(rng.choice([8, 16])), attn_lanes=int(rng.choice([4, 16])),
                             ew_vec=int(rng.choice([2, 4])), out_lanes=int(rng.choice([1, 2])),
                             prefill_token_block=16)
            floor = cost_model.prefill_floor(cfg, KV260, p, 128, dse.PREFILL_TOKEN_BLOCKS)
            assert floor > 0
            for pb, tp, pipe in itertools.product(dse.PREFILL_TOKEN_BLOCKS, dse.TOKEN_LANES, (False, True)):
                q = p.replace(prefill_token_block=pb, token_lanes=tp, dsp_lanes=tp - 1, prefill_pipeline=pipe)
                assert cost_model.prefill(cfg, KV260, q, 128).seconds >= floor


def test_dsp_lane_depth_is_paid_per_tile() -> None:
    """cost_tlmm: DSP lanes deepen compute_tile's pipeline (cascades of DSP_CHAIN plus an adder tree
    over them) by dsp_lane_extra_depth cycles, paid once per tile by every call, decode included; the
    cascades are short so that stays a few cycles (a G*T-long chain would add about G*T)."""
    from edgellm.compiler.cost import tlmm as cost_tlmm

    p = DesignParams(group_size=2, tables=20, rows=16, token_lanes=2, out_lanes=2)
    q = p.replace(dsp_lanes=1)
    extra = cost_tlmm.dsp_lane_extra_depth(q)
    assert cost_tlmm.dsp_lane_extra_depth(p) == 0 and 0 < extra <= 4
    for tokens in (1, 7, 64):
        assert (cost_tlmm.tlmm_tile_compute_cycles(1536, q, tokens)
                == cost_tlmm.tlmm_tile_compute_cycles(1536, p, tokens) + extra)
    # one cascade per pair would be G*T stages deep
    assert cost_tlmm.DSP_STAGE_REGS + 2 * 20 - 1 + 1 - cost_tlmm.TILE_PIPELINE_DEPTH > 10 * extra


def test_every_speed_is_a_range_with_named_assumptions() -> None:
    """estimate(): decode, TTFT and the DDR bound as central (low-high); low = the low bandwidth scenario
    at 80% of the clock, high = the high scenario at the design's clock; each end's assumptions named
    (clock, weight GB/s, DDR ceiling); summary() (report/estimate.json) carries them all; the clock
    sensitivity at 225 and 200 MHz."""
    from edgellm.compiler.estimate import LOW_CLOCK_FRACTION

    p = DesignParams(group_size=2, tables=20, rows=16, weight_buffer="lutram", fetch_depth=4096)
    e = estimate(LARGE, KV260, p)
    dec, t128 = e.ranges["decode_tok_s"], e.ranges["ttft_128_s"]
    assert dec.central == e.decode_tok_s and t128.central == e.ttft[128].seconds
    assert dec.low < dec.central < dec.high and t128.low > t128.central >= t128.high
    low = KV260.with_scenario("low")
    slow = p.replace(clock_mhz=LOW_CLOCK_FRACTION * 250)
    assert dec.low == cost_model.decode_step(LARGE, low, slow).tokens_per_s
    assert set(e.assumptions) == {"low", "central", "high"}
    assert e.assumptions["low"].clock_mhz == 200.0 and "200 MHz" in e.assumptions["low"].assumes
    assert "GB/s" in e.assumptions["central"].assumes
    s = e.summary()
    assert s["projected_decode_tok_s_low"] < s["projected_decode_tok_s"] < s["projected_decode_tok_s_high"]
    assert s["projected_ttft_128_s_low"] > s["projected_ttft_128_s"]
    assert set(s["assumptions"]) == {"low", "central", "high"}
    assert set(s["clock_sensitivity"]) == {"225 MHz", "200 MHz"}
    assert e.sensitivity[200.0][1] > e.sensitivity[225.0][1] > e.ttft[128].seconds  # prefill is compute-bound
    assert Range(2.0, 1.0, 3.0).text() == "2.0 (1.0-3.0)" and Range(0.5, 0.6, 0.4).text("{:.2f}", " s") \
        == "0.50 s (0.40-0.60 s)"


def test_trit_decoder_priced_as_built() -> None:
    """tlmm.h compute_tile decodes every row's BEATS_PER_STEP = G*T/5 bytes each step (R x BPS bytes a
    cycle, 128 at G2 T20 R16), not the DDR's ~64 bytes a cycle: TRIT_DECODE_LUT_PER_BYTE each."""
    from edgellm.compiler.cost import tlmm as cost_tlmm

    p = DesignParams(group_size=2, tables=20, rows=16, weight_buffer="lutram")
    assert cost_tlmm.trit_decode_bytes(p) == 16 * 8
    with_decode = cost_tlmm.resources(LARGE, KV260, p).lut
    without = cost_tlmm.resources(LARGE, KV260, p.replace(bits_per_weight=1.6)).lut  # no decoder
    assert with_decode - without == pytest.approx(128 * cost_tlmm.TRIT_DECODE_LUT_PER_BYTE)
    # the same at any bandwidth or clock: it is the compute loop's width
    low = KV260.with_scenario("low")
    assert cost_tlmm.resources(LARGE, low, p.replace(clock_mhz=200.0)).lut == with_decode


def test_lut_cap_and_clock_are_the_users() -> None:
    """explore() takes the LUT cap (default UTIL_LIMITS, 75%: routing margin) and the clock (default the
    board's PL clock); bad values are one clear error."""
    assert UTIL_LIMITS["lut"] <= 0.75
    r = explore(SMALL, KV260, clock_mhz=200.0)
    assert r.params.clock_mhz == 200.0 and explore(SMALL, KV260).params.clock_mhz == 250.0
    tight = explore(SMALL, KV260, limits={"lut": 0.4})
    assert tight.estimate.utilization["lut"] <= 0.4 < explore(SMALL, KV260).estimate.utilization["lut"]
    for bad in (0, -5, 5000, "fast", True, float("nan")):
        with pytest.raises(EdgeLLMError, match="clock"):
            explore(SMALL, KV260, clock_mhz=bad)
    for limits in ({"lut": 0}, {"lut": 1.5}, {"lut": True}, {"luts": 0.5}):
        with pytest.raises(EdgeLLMError, match="utilization limit"):
            explore(SMALL, KV260, limits=limits)
    res = CliRunner().invoke(_app(), ["estimate", "--board", "kv260", "--clock", "200", "--lut-cap", "0.5"],
                             terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "200 MHz" in res.output and "at 180 MHz" in res.output and "at 160 MHz" in res.output
    bad = CliRunner().invoke(_app(), ["estimate", "--board", "kv260", "--lut-cap", "2"])
    assert bad.exit_code != 0 and isinstance(bad.exception, EdgeLLMError)


def test_lm_head_bits_count_on_the_overlap_path() -> None:
    """The generated engine's LM-head time streams lm_head_bits per weight: an fp16 head moves twice the
    int8 head's bytes (before, both projected the same time)."""
    p = DesignParams(group_size=2, tables=20, rows=16, weight_buffer="lutram")
    int8 = cost_model.decode_step(LARGE, KV260, p).parts["lm_head"]
    fp16 = cost_model.decode_step(LARGE, KV260, p.replace(lm_head_bits=16)).parts["lm_head"]
    assert fp16 == pytest.approx(2 * int8, rel=0.01)
    assert int8 * cost_ddr.bandwidth(KV260, p).weights == pytest.approx(LARGE.vocab_size * LARGE.hidden_size,
                                                                         rel=0.01)


def test_decode_bytes_count_gammas_and_linear_outputs() -> None:
    """decode_bytes_per_token counts the activations pass by pass (cost_ddr.activation_bytes): every
    norm's gamma (fp32) and every linear's int8 input and fp32 output go through the data port."""
    from edgellm.compiler.design_bytes import NORM_BYTES, kv_bytes_per_token, lm_head_bytes

    cfg = SMALL  # hidden 256 (= q = kv), ffn 688, 4 heads of 64, SubLN, vocab 1024
    h, f, d, v = 256, 688, 64, 1024
    linears = sum(i + 4 * o for o, i in cfg.linear_shapes().values())
    # attention norm 9h (row, gamma, int8), RoPE q and k (row in/out, cos/sin), K/V rows 8h, attention's
    # q in / o out 8h, SubLN 9h, residual + FFN norm 17h, GLU 13f (g, u, gamma, int8), residual 12h
    layer = 9 * h + linears + (8 * h + 4 * d) * 2 + 8 * h + 8 * h + 9 * h + 17 * h + 13 * f + 12 * h
    assert cost_ddr.activation_bytes(cfg) == cfg.n_layers * layer + 9 * h + h + 4 * v
    p = DesignParams()
    rest = weight_bytes(cfg, p) + lm_head_bytes(cfg, 8) + (p.decode_context + 1) * kv_bytes_per_token(cfg, p)
    assert cost_ddr.decode_bytes_per_token(cfg, p) == rest + cost_ddr.activation_bytes(cfg)
    gammas = cfg.n_layers * 2 * h * NORM_BYTES + h * NORM_BYTES
    outputs = cfg.n_layers * sum(4 * o for o, _ in cfg.linear_shapes().values())
    assert cost_ddr.activation_bytes(cfg) > gammas + 2 * outputs  # written once, read back once


def test_projection_sensitivity_bench_scales_bandwidth() -> None:
    """bench/projection_sensitivity.py: k scales every central bandwidth figure (the KV260's four weight
    streams follow XPI 4's share: 12.74 GB/s x k until the ports' 16 GB/s), and decode follows."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "projection_sensitivity.py"
    spec = importlib.util.spec_from_file_location("projection_sensitivity", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = DesignParams(group_size=2, tables=20, rows=16, weight_buffer="lutram", fetch_depth=4096)
    assert mod.point(SMALL, mod.scaled(KV260, 1.0), p) == mod.point(SMALL, KV260, p)
    g8, d8, _ = mod.point(LARGE, mod.scaled(KV260, 0.8), p)
    g10, d10, _ = mod.point(LARGE, mod.scaled(KV260, 1.0), p)
    assert g8 == pytest.approx(0.8 * g10) and d8 < d10
    assert mod.point(LARGE, mod.scaled(KV260, 1.3), p)[0] == pytest.approx(16.0)


def _dse_step(overrides: dict, board=KV260, cfg: ModelConfig = SMALL):  # -> the step's context
    """compile's DSE step (steps.step_dse) alone, with these design overrides."""
    from types import SimpleNamespace

    from edgellm.compiler.steps import step_dse

    ctx = SimpleNamespace(state={"qm": SimpleNamespace(config=cfg), "board": board},
                          config=SimpleNamespace(overrides=overrides))
    step_dse(ctx)
    return ctx


def test_compile_dse_step_takes_clock_and_lut_cap() -> None:
    """compile's design overrides: "clock_mhz" and "lut_cap" steer the exploration (the design is chosen
    for that clock, under that cap), other fields replace the chosen design's, and the estimate that
    report/estimate.json writes is always the built design's."""
    run = _dse_step
    ctx = run({"clock_mhz": 200.0, "lut_cap": 0.4})
    assert ctx.state["design"].clock_mhz == 200.0 == ctx.state["dse"].estimate.params.clock_mhz
    assert ctx.state["dse"].estimate.utilization["lut"] <= 0.4
    ctx = run({"attn_lanes": 2})
    assert ctx.state["design"].attn_lanes == 2 and ctx.state["dse"].estimate.params == ctx.state["design"]
    with pytest.raises(EdgeLLMError, match="utilization limit"):
        run({"lut_cap": 3})


def test_compile_overrides_are_rechecked() -> None:
    """Issue 15: an overridden design is projected as built (prefill_token_block=8: the summary's TTFT is
    that design's, not the DSE's) and checked again: resources under the routing headroom (with the
    user's LUT cap), fields codegen does not build refused, tables the engine does not build refused;
    each in one line."""
    ctx = _dse_step({"prefill_token_block": 8})
    built = estimate(SMALL, KV260, ctx.state["design"])
    assert ctx.state["design"].prefill_token_block == 8
    key = "projected_ttft_128_s"
    assert ctx.state["dse"].estimate.summary()[key] == built.summary()[key]
    with pytest.raises(EdgeLLMError, match=r"design overrides tables=55, rows=32: .* does not fit pynq_z2 "
                                           r"within the routing headroom \(lut "):
        _dse_step({"tables": 55, "rows": 32}, load_board("pynq_z2"))
    fits = _dse_step({}).state["design"]
    with pytest.raises(EdgeLLMError, match="does not fit kv260"):  # fits the default cap, not the user's
        _dse_step({"lut_cap": 0.35, "tables": fits.tables, "rows": 32, "token_lanes": 4})
    for field, value in (("lm_head_bits", 16), ("bits_per_weight", 2.0), ("overlap", False)):
        with pytest.raises(EdgeLLMError, match=f"design override {field}={value!r}: the generated hardware"):
            _dse_step({field: value})
    with pytest.raises(EdgeLLMError, match="tables=28: the TLMM engine builds a multiple of 5"):
        _dse_step({"tables": 28})


def test_default_design_is_the_built_one() -> None:
    """Issue 15: the default DesignParams' tables are what the engine builds (was 28, built as 25), and
    DesignParams.validate (the one place) refuses tables the generated engine would not build as given:
    the design itself, its replace(), --set tables=28 and compile's overrides all go through it (it used
    to accept 28 and leave the refusal to estimate)."""
    from edgellm.compiler.design import tlmm_tables

    assert DesignParams().tables == tlmm_tables(DesignParams())
    for bad in (28, 4, 3):
        with pytest.raises(EdgeLLMError, match=f"tables={bad}: the TLMM engine builds a multiple of 5"):
            DesignParams(tables=bad)
        with pytest.raises(EdgeLLMError, match=f"tables={bad}"):
            DesignParams().replace(tables=bad)
    serial = DesignParams(tables=28, overlap=False)  # the serial description takes T as given
    assert estimate(SMALL, KV260, serial).params.tables == 28
    res = CliRunner().invoke(_app(), ["estimate", "--board", "kv260", "--set", "tables=28"])
    assert res.exit_code != 0 and "tables=28: the TLMM engine builds a multiple of 5" in str(res.exception)


def test_invalid_set_value_is_an_error_for_every_board() -> None:
    """A --set value no design takes (weight_ports=0) is one `error:` line and a non-zero exit, also with
    --board all (each board used to report it as "does not fit" under an empty table, exit 0)."""
    for board in ("kv260", "all"):
        res = CliRunner().invoke(_app(), ["estimate", "--board", board, "--set", "weight_ports=0"])
        assert res.exit_code != 0, res.output
        assert "weight_ports must be a positive integer" in str(res.exception) + res.output
        assert "does not fit" not in res.output


def test_readme_and_performance_doc_state_the_headline_as_estimated(large_kv260) -> None:
    """README's headline and docs/performance.md's KV260 row say what the estimate projects for
    bitnet_b1_58-large on the KV260 (decode central (low-high), TTFT(128) central (high-low), the LUT
    share): the docs drifted from the model before (a 72.8% LUT share after the model said 74.5%)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    e = large_kv260.estimate
    d, t = e.ranges["decode_tok_s"], e.ranges["ttft_128_s"]
    decode = f"{d.central:.1f} ({d.low:.1f}-{d.high:.1f})"
    ttft = f"{t.central:.3f} s ({t.high:.3f}-{t.low:.3f})"
    lut = f"{100 * e.summary()['lut_util']:.1f}%"
    readme = " ".join((root / "README.md").read_text().split())
    m = re.search(r"bitnet_b1_58-large on KV260: \*\*([\d.]+ \([\d.]+-[\d.]+\)) tok/s\*\*.*?"
                  r"TTFT\(128\) ([\d.]+ s \([\d.]+-[\d.]+\))\*\*.*?([\d.]+%) of the LUTs", readme)
    assert m is not None, "README's headline sentence changed form"
    assert m.groups() == (decode, ttft, lut)
    perf = (root / "docs" / "performance.md").read_text()
    row = next(ln for ln in perf.splitlines() if ln.startswith("| bitnet_b1_58-large | KV260 |"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[3] == decode and cells[5].endswith(f"/ {ttft}") and cells[8] == lut, cells
