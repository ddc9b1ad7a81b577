"""compiler/cost/data_port.py: the data port's bytes stage by stage (they add up to cost/ddr.py
activation_bytes) and their charge against the weight fetcher where the weight streams and the data
port together would pass the DDR ceiling (issue 19 #6: norm gammas and fp32 linear outputs counted)."""

from __future__ import annotations

import dataclasses

import pytest

from edgellm.boards import load_board
from edgellm.compiler.cost import data_port, ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.fetch import Phase
from edgellm.compiler.design import DesignParams
from edgellm.models.config import PRESETS

# bitnet-b1.58-2B-4T's KV260 design (the DSE's, bench/projection_sensitivity.py): its decode step is
# paced by the weight fetcher
P2B = DesignParams(group_size=3, tables=10, rows=16, token_lanes=2, dsp_lanes=1, out_lanes=4, weight_ports=4)


@pytest.mark.parametrize("name", ["bitnet-b1.58-2B-4T", "bitnet_b1_58-large", "qwen2.5-0.5b"])
def test_stage_bytes_add_up_to_activation_bytes(name: str) -> None:
    cfg = PRESETS[name]
    st = data_port.stage_bytes(cfg)
    layer = sum(v for k, v in st.items() if k != "final")
    assert cfg.n_layers * layer + st["final"] == ddr.activation_bytes(cfg)


def test_charged_counts_only_what_passes_the_headroom() -> None:
    ph = Phase(100.0, 2.0, 5.0)
    bw = ddr.Bandwidth(weights=15.0, data=8.0, ddr=20.0, kv_port=5.0, kv_ports=1)  # 5 B/s headroom, draw 8
    assert data_port.headroom(bw) == 5.0 and data_port.draw(bw) == 8.0
    assert data_port.charged(ph, 10.0, bw) is ph  # 10 bytes in 2 s under 5 B/s of headroom: free
    assert data_port.charged(ph, 16.0, bw) == Phase(100.0, 2.0, 11.0)  # 6 bytes beyond it, on top of 5
    assert data_port.charged(ph, 100.0, bw) == Phase(100.0, 2.0, 11.0)  # at most 8 B/s x 2 s moved
    full = dataclasses.replace(bw, weights=20.0, kv_ports=4)  # at the ceiling: 5 ports round-robin, 4 B/s
    assert data_port.charged(ph, 100.0, full).ddr_share_bytes == 5.0 + 8.0


def _uncharged(monkeypatch: pytest.MonkeyPatch, fn, *args):  # noqa: ANN001, ANN202
    with monkeypatch.context() as m:
        m.setattr(data_port, "charged", lambda ph, nbytes, room: ph)
        return fn(*args)


@pytest.mark.parametrize("end", ["low", "central", "high"])
def test_decode_pays_for_the_data_port(monkeypatch: pytest.MonkeyPatch, end: str) -> None:
    """With the data port's bytes charged, a fetch-paced decode step is slower than without, by at most
    those bytes at the DDR ceiling, and by something at every end (the round-robin draw and the phases'
    bursts pass the headroom); at the high end (weight streams 15.2 of the 15.49 GB/s ceiling: 0.29 GB/s
    of headroom) it pays most (the saturated case, no headroom: test_charged_counts_only_...)."""
    cfg, b = PRESETS["bitnet-b1.58-2B-4T"], load_board("kv260").with_scenario(end)
    bw = ddr.bandwidth(b, P2B)
    now = cost_model.decode_step(cfg, b, P2B).parts["layers"]
    was = _uncharged(monkeypatch, cost_model.decode_step, cfg, b, P2B).parts["layers"]
    moved = ddr.activation_bytes(cfg) - data_port.final_bytes(cfg)
    assert was <= now <= was + moved / bw.ddr + 1e-12
    assert now > was + 0.05 * moved / bw.ddr
    if end == "high":
        assert data_port.headroom(bw) < 0.03 * bw.ddr and now > was + 0.15 * moved / bw.ddr


def test_pipelined_prefill_charges_each_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, b = PRESETS["bitnet-b1.58-2B-4T"], load_board("kv260").with_scenario("high")
    p = P2B.replace(prefill_pipeline=True, prefill_token_block=16)
    now = cost_model.prefill(cfg, b, p, 32).seconds
    was = _uncharged(monkeypatch, cost_model.prefill, cfg, b, p, 32).seconds
    assert was <= now <= was + 32 * ddr.activation_bytes(cfg) / ddr.bandwidth(b, p).ddr
