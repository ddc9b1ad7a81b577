"""The calibration's bitnet-kv260 head anchor (compiler/cost/calibration.py, docs/performance.md
"Calibration"): its published figure is the per-engine probe's, and both heads, bitnet-kv260's and ours,
are priced by one function of what they do (NP equal per-port shares, paced by the slowest stream)."""

from __future__ import annotations

import pytest

from edgellm.boards import SCENARIOS, load_board
from edgellm.compiler.cost import calibration, ddr, lm_head
from edgellm.compiler.design import DesignParams, stream_ports
from edgellm.compiler.design_bytes import lm_head_bytes
from edgellm.models.config import PRESETS


def _anchor(figure: str) -> calibration.Anchor:
    (a,) = [a for a in calibration.bitnet_kv260_anchors() if a.figure == figure]
    return a


def test_head_anchor_is_the_probe_not_the_stage_timer() -> None:
    """13.44 GB/s: 4 x 2,052,096 B a chunk in 610.7 us (results/probe-2026-09-26.txt). The stage-1 timer
    of the same run (3.998 ms for 65,667,072 B) would be faster than the four engines' beats can move."""
    m = calibration.BITNET_KV260
    assert m["head stream GB/s"] == (13.44, 13.44)
    assert 4 * 2_052_096 / 610.7e-6 / 1e9 == pytest.approx(13.44, abs=0.005)
    beat_rate = 4 * 16 * 250e6
    assert m["head stream bytes"] / 3.998e-3 > beat_rate  # the timer's figure is not a stream's
    a = _anchor("head stream GB/s (HP0-HP3)")
    assert a.status == "held-out" and a.in_range and abs(a.error) <= 15.0


def test_head_priced_by_the_function_that_prices_ours() -> None:
    """bitnet-kv260's head projection is cost_ddr.head_stream_bytes_per_s of its four ports in every
    scenario; our LM head's time on the KV260 (stream-bound) is its bytes at the same function's rate."""
    p = calibration.bitnet_kv260_params()
    a = _anchor("head stream GB/s (HP0-HP3)")
    kv = load_board("kv260")
    got = {s: ddr.head_stream_bytes_per_s(kv.with_scenario(s), p, 4) / 1e9 for s in SCENARIOS}
    assert (a.projected.low, a.projected.central, a.projected.high) == (got["low"], got["central"],
                                                                         got["high"])
    assert got["central"] == pytest.approx(12.74, abs=0.01)  # paced by HP1/HP2 on XPI 4 (6.37 / 2 each)
    cfg, board = PRESETS["bitnet_b1_58-large"], load_board("kv260")
    q = DesignParams(rows=16, weight_ports=4, lm_head_on_fabric=True, lm_head_bits=8)
    rate = ddr.head_stream_bytes_per_s(board, q, stream_ports(board, q))
    assert lm_head.seconds(cfg, board, q) == pytest.approx(lm_head_bytes(cfg, 8) / rate, rel=0.01)


def test_board_ends_are_measurements() -> None:
    """The KV260's shared-path ends are bitnet-kv260's address sweep's worst and best HP1/HP2 pair, the
    DDR ceiling's high end its best four-engine sum (results/sweep-2026-09-26.txt); no end rests on the
    head's stage-1 timer any more (0.83 x 19.2 = 15.94 GB/s)."""
    kv = load_board("kv260")
    assert kv.shared_path_gbps == (2 * 2.81, 6.37, 2 * 3.80)
    assert kv.with_scenario("high").ddr_achievable_gbps == pytest.approx(15.50, abs=0.01)
    assert kv.with_scenario("high").ddr_achievable_gbps < m_head_timer_gbps()


def m_head_timer_gbps() -> float:
    """What docs/measurements.md printed for the head (65,667,072 B in 4.123 ms, its slower end)."""
    return calibration.BITNET_KV260["head stream bytes"] / 4.123e-3 / 1e9
