"""compiler/cost/speculative.py: the projected verify call, effective tokens/s vs acceptance, and the
runtime controller's pass costs (runtime/speculative.py verify_cost)."""

from __future__ import annotations

import json

import pytest

from edgellm.boards import load_board
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import pipe_threshold
from edgellm.compiler.cost import speculative as cs
from edgellm.compiler.design import DesignParams
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS
from edgellm.runtime.speculative import KController, SpecConfig, verify_cost

CFG = PRESETS["bitnet_b1_58-large"]


@pytest.fixture(scope="module")
def setup():
    return load_board("kv260"), DesignParams(prefill_token_block=8)


def test_k0_is_a_decode_step(setup) -> None:
    board, p = setup
    v = cs.verify_call(CFG, board, p, 0)
    assert v.seconds == cost_model.decode_step(CFG, board, p).seconds and v.relative == 1.0
    assert cs.max_k(p) == 7
    with pytest.raises(ValueError, match="1..7 drafts"):
        cs.verify_call(CFG, board, p, 8)


def test_verify_costs_grow_and_the_multi_row_head_streams_once(setup) -> None:
    board, p = setup
    calls = [cs.verify_call(CFG, board, p, k) for k in range(0, 8)]
    assert all(b.seconds >= a.seconds for a, b in zip(calls, calls[1:], strict=False))
    one = cost_lm_head.seconds(CFG, board, p)
    assert cs.head_lanes(CFG, p) == 8  # the built head's lanes at this block (design.head_rows)
    for k in range(1, 8):  # up to head_lanes rows: one pass of the head's dot loop, in the layers' start
        assert calls[k].parts["lm_head"] == one
        per_row = cs.verify_call(CFG, board, p, k, multi_row_head=False)
        assert per_row.parts["lm_head"] == (k + 1) * one and per_row.seconds > calls[k].seconds
    four = cs.verify_call(CFG, board, p, 4, head_lanes=4)  # 5 rows on a 4-lane head: two passes, two starts
    assert four.parts["lm_head"] == 2 * one and four.parts["host"] > calls[4].parts["host"]
    two = cs.verify_call(CFG, board, p.replace(head_lanes=2), 4)  # the design's 2-lane head: 3 passes
    assert cs.head_lanes(CFG, p.replace(head_lanes=2)) == 2 and two.parts["lm_head"] == 3 * one
    assert two.parts["host"] == four.parts["host"] + cost_model.HOST_CALL_S
    hidden = cs.verify_call(CFG, board, p, 3, hide_attention=True)
    assert hidden.parts["attention_cache"] == 0 < calls[3].parts["attention_cache"]


def test_effective_tokens_per_s(setup) -> None:
    board, p = setup
    dec = cost_model.decode_step(CFG, board, p).tokens_per_s
    assert cs.expected_tokens(0.5, 2) == 1.75 and cs.expected_tokens(0.0, 5) == 1.0
    assert cs.best_k(CFG, board, p, 0.0) == (0, dec)
    k, r = cs.best_k(CFG, board, p, 0.95)
    assert k >= 1 and r > dec
    assert cs.effective_tokens_per_s(CFG, board, p, 1.0, 1) == pytest.approx(
        2 / cs.verify_call(CFG, board, p, 1).seconds)
    # a measured run without any verify pass is plain decode
    assert cs.workload_tokens_per_s(CFG, board, p, 10, 10, {}) == pytest.approx(dec)
    both = cs.workload_tokens_per_s(CFG, board, p, 12, 8, {2: 2})
    want = 12 / (8 / dec + 2 * cs.verify_call(CFG, board, p, 2).seconds)
    assert both == pytest.approx(want)
    hs = cs.head_share(CFG, board, p)
    assert 0 < hs < 1
    assert cs.draft_token_s(CFG, board, p, CFG.n_layers) == pytest.approx(1 / dec)


def test_pass_costs_drive_the_controller(setup) -> None:
    board, p = setup
    pcs = cs.pass_costs(CFG, board, p, 4)
    assert len(pcs) == 5 and pcs[0] == cost_model.decode_step(CFG, board, p).seconds
    spec = SpecConfig("lookup", k_max=6, pass_costs=pcs)
    assert verify_cost(spec, 0) == 1.0 and verify_cost(spec, 3) == pytest.approx(pcs[3] / pcs[0])
    assert verify_cost(spec, 6) > verify_cost(spec, 4)  # extrapolated past the table
    ctl = KController(spec)
    assert ctl.cost(2) == pytest.approx(pcs[2] / pcs[0])
    with pytest.raises(EdgeLLMError, match="pass costs"):
        SpecConfig("lookup", pass_costs=(1.0, 0.0))


def test_estimate_lines_from_measured_runs(setup, tmp_path, monkeypatch) -> None:
    board, p = setup
    f = tmp_path / "m.json"
    runs = [{"model": "tiny", "drafter": "lookup", "kind": "copy", "acceptance": 0.8, "tokens_per_pass": 1.7,
             "decode_tokens": 60, "plain_passes": 20, "k_counts": {"2": 10, "3": 5}},
            {"model": "tiny", "drafter": "self", "kind": "control", "temperature": 0.8, "acceptance": 0.0,
             "tokens_per_pass": 1.0, "decode_tokens": 30, "plain_passes": 30, "k_counts": {},
             "draft_tokens": 0, "draft_layer_fraction": 0.5}, {"model": "broken"}]
    f.write_text(json.dumps({"measured": runs}))
    monkeypatch.setattr(cs, "MEASURED_FILE", f)
    lines = cs.speedup_lines(CFG, board, p)
    dec = cost_model.decode_step(CFG, board, p).tokens_per_s
    want = cs.workload_tokens_per_s(CFG, board, p, 60, 20, {2: 10, 3: 5})
    assert len(lines) == 3 and f"plain decode {dec:.1f} tok/s" in lines[0]
    assert "lookup on copy prompts (tiny model, greedy): acceptance 80%, 1.70 tokens per pass" in lines[1]
    assert f"-> {want:.1f} tok/s ({want / dec:.2f}x" in lines[1]
    assert "(tiny model, sampled at T=0.8)" in lines[2] and "(1.00x" in lines[2]
    monkeypatch.setattr(cs, "MEASURED_FILE", tmp_path / "none.json")
    assert cs.speedup_lines(CFG, board, p) == []


def test_a_head_on_the_arm_cores_pays_every_row(setup, tmp_path, monkeypatch) -> None:
    """Ultra96-style design (lm_head_on_fabric False): no multi-row head, every verify row streams the
    whole head on the A53s (cost_lm_head.arm_seconds), no OP_HEAD start; the estimate's lines say so."""
    board, p = setup
    arm = p.replace(lm_head_on_fabric=False)
    one = cost_lm_head.arm_seconds(CFG, arm)
    v = cs.verify_call(CFG, board, arm, 3)
    assert cs.head_lanes(CFG, arm) == 1 and v.parts["lm_head"] == pytest.approx(4 * one)
    assert cs.verify_call(CFG, board, arm, 3, multi_row_head=False).parts["lm_head"] == v.parts["lm_head"]
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"measured": [{"model": "tiny", "drafter": "lookup", "kind": "copy",
                                           "acceptance": 0.8, "tokens_per_pass": 1.7, "decode_tokens": 60,
                                           "plain_passes": 20, "k_counts": {"2": 10}}]}))
    monkeypatch.setattr(cs, "MEASURED_FILE", f)
    head = cs.speedup_lines(CFG, board, arm)[0]
    assert "the LM head on the ARM cores" in head and "no multi-row head" in head
    assert "token lanes" not in head


def test_verify_rows_attend_over_the_cache_as_built(setup) -> None:
    """A verify call's T rows attend over the cache as the hardware does (one cached-style attention call:
    the cache read once over the K/V ports, cost_attention.plan), inside the block at its context: the
    call costs the block cost_model.call(T, context) prices (the design's schedule) plus the head and host.
    Before, the block was priced from context 0 and rows 1 .. T-1 added as separate decode calls (row 0's
    attention over the cache uncounted), and the hardware read the cache over the data port per KV head."""
    from edgellm.compiler.cost import attention as cost_attention

    board, p = setup
    ctx = p.decode_context
    rows = cost_attention.rows_max(CFG, p.attn_q_block)
    assert cost_attention.plan(5, CFG.n_heads, CFG.n_kv_heads, rows, p.attn_q_block).cached
    bw_args = (p.clock_mhz * 1e6, 2.98e9, 12.74e9, 4)
    one = cost_attention.layer_seconds(CFG, p, 1, ctx + 1, *bw_args)
    five = cost_attention.layer_seconds(CFG, p, 5, ctx + 5, *bw_args)
    assert 4 * one < five < 6 * one  # about five decode rows' compute, not a data-port re-read per head
    for k in (1, 3):
        v = cs.verify_call(CFG, board, p, k)
        block = cost_model.call(CFG, board, p, k + 1, ctx).parts["layers"]
        assert v.parts["layers"] + v.parts["attention_cache"] == pytest.approx(block)
        hidden = cs.verify_call(CFG, board, p, k, hide_attention=True)
        assert hidden.seconds == pytest.approx(v.seconds - v.parts["attention_cache"])
        floor = cs.cache_attention_s(CFG, board, p, k, ctx)  # run_ceiling's lower bound holds
        assert v.parts["layers"] + v.parts["attention_cache"] >= floor


def test_short_calls_run_in_one_pass_below_pipe_min_tokens(setup) -> None:
    """With the prefill pipeline a call of T tokens runs the two halves (each streaming the weights) from
    pipe_min_tokens on, one pass below (layer_schedule.h layer_halves; tests/test_top.py C-simulates it);
    pipe_min_tokens_for picks the fewest tokens whose halves are no slower, so a verify call of 2 rows
    streams the weights once. The verify call is priced in the schedule the design runs, not the cheaper
    of the two (the model before, whose 2-row call the hardware ran in halves)."""
    board, p = setup
    q = p.replace(prefill_token_block=16, token_lanes=2, prefill_pipeline=True)
    m = pipe_threshold.pipe_min_tokens_for(CFG, board, q)
    ctx = q.decode_context
    seq, halves = q.replace(pipe_min_tokens=1 << 16), q.replace(pipe_min_tokens=2)

    def layers(d: DesignParams, t: int) -> float:
        return cost_model.call(CFG, board, d, t, ctx).parts["layers"]

    assert 2 < m <= 16
    assert all(layers(seq, t) < layers(halves, t) for t in range(2, m))
    assert layers(halves, m) <= layers(seq, m)
    assert [cost_model.pipelined(q.replace(pipe_min_tokens=m), t) for t in (1, m - 1, m, 16)] == [
        False, False, True, True]
    assert not cost_model.pipelined(seq, 16) and pipe_threshold.pipe_min_tokens_for(CFG, board, p) == 2
    built = cs.verify_call(CFG, board, q.replace(pipe_min_tokens=m), 1)
    before = cs.verify_call(CFG, board, halves, 1)  # the hardware before pipe_min_t: 2 rows in halves
    assert built.seconds < before.seconds
    assert built.parts["layers"] + built.parts["attention_cache"] == pytest.approx(layers(seq, 2))
    for bad in (1, 0, True, 2.5):
        with pytest.raises(EdgeLLMError, match="pipe_min_tokens"):
            DesignParams(pipe_min_tokens=bad)


def test_a_run_recorded_at_other_verify_costs_says_so(setup, tmp_path, monkeypatch) -> None:
    """A recorded run's k choices follow the verify costs its controller ran with (pass_steps): projected
    on a design whose costs differ by more than COSTS_TIE for a k it ran, the estimate's line says so;
    at the design's own costs, or without pass_steps (older records), it does not."""
    board, p = setup
    own = [c / cs.pass_costs(CFG, board, p, 3)[0] for c in cs.pass_costs(CFG, board, p, 3)]
    run = {"model": "tiny", "drafter": "lookup", "kind": "copy", "acceptance": 0.8, "tokens_per_pass": 1.7,
           "decode_tokens": 60, "plain_passes": 20, "k_counts": {"1": 10, "3": 5}, "pass_steps": own}
    assert cs.costs_note(CFG, board, p, run) == ""
    assert cs.costs_note(CFG, board, p, {**run, "pass_steps": []}) == ""
    other = [*own[:3], own[3] * 1.1]  # k = 3 recorded 10% dearer
    note = cs.costs_note(CFG, board, p, {**run, "pass_steps": other})
    assert note.startswith(f"its k choices followed other verify costs (k = 3: {other[3]:.2f} decode steps")
    unused = [*own[:2], own[2] * 1.5, own[3]]  # k = 2, which the run never took, dearer
    assert cs.costs_note(CFG, board, p, {**run, "pass_steps": unused}) == ""
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"measured": [{**run, "pass_steps": other}]}))
    monkeypatch.setattr(cs, "MEASURED_FILE", f)
    assert cs.speedup_lines(CFG, board, p)[1].endswith(note)
