"""The DSE's LM-head lanes and its speculation objective (compiler/dse.py, compiler/dse_spec.py):
head_lanes explored, the plain objective keeps the fewest (they change neither decode nor TTFT), and
explore(speculate=...) / `estimate --speculate` rank by the measured run projected on each design."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from edgellm.boards import load_board
from edgellm.compiler import dse
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import speculative as cs
from edgellm.compiler.design import DesignParams
from edgellm.compiler.dse_spec import SPEC_TIE
from edgellm.compiler.estimate import UTIL_LIMITS, estimate, fits_board
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

SMALL = ModelConfig(name="small-spec", hidden_size=256, n_layers=4, n_heads=4, n_kv_heads=4, ffn_size=688,
                    vocab_size=1024, max_context=512)
KV260 = load_board("kv260")
RUN = {"model": "tiny", "drafter": "lookup", "kind": "copy", "temperature": 0.0, "acceptance": 0.9,
       "rate": 0.9, "tokens_per_pass": 1.7, "decode_tokens": 120, "plain_passes": 40,
       "k_counts": {"1": 10, "3": 20}, "draft_tokens": 0, "draft_layer_fraction": 0.0}


@pytest.fixture()
def measured(tmp_path, monkeypatch):
    f = tmp_path / "acceptance.json"
    f.write_text(json.dumps({"measured": [RUN, {**RUN, "kind": "control"}]}))
    monkeypatch.setattr(cs, "MEASURED_FILE", f)
    return f


def test_head_lanes_change_neither_decode_nor_ttft() -> None:
    p = DesignParams(prefill_token_block=16)
    base = (cost_model.decode_step(SMALL, KV260, p).seconds, cost_model.prefill(SMALL, KV260, p, 128).seconds)
    for hl in (1, 2, 4):
        q = p.replace(head_lanes=hl)
        assert (cost_model.decode_step(SMALL, KV260, q).seconds,
                cost_model.prefill(SMALL, KV260, q, 128).seconds) == base


def test_plain_objective_takes_the_fewest_head_lanes() -> None:
    r = dse.explore(SMALL, KV260)
    assert r.params.head_lanes == 1 and r.speculate is None and r.spec == ()
    lanes = {p.head_lanes for _, _, p in r.scored}
    assert lanes >= {1}  # explored: the widened variants carry other head lanes where they tie
    assert all(p.head_lanes in (1, 2, 4, 8) for _, _, p in r.scored)


# The Ultra96-V2's search is the default run's representative (about 30 s); the KV260's (about 2 min on a
# 2-core machine) runs with -m large.
@pytest.mark.parametrize("board", [pytest.param("ultra96v2", marks=pytest.mark.slow),
                                   pytest.param("kv260", marks=pytest.mark.large)])
def test_speculation_objective_ranks_by_the_measured_run(measured, board: str) -> None:
    B = load_board(board)
    plain = dse.explore(SMALL, B)
    r = dse.explore(SMALL, B, speculate="lookup")
    assert r.speculate == "lookup" and r.spec
    best = cs.run_tokens_per_s(SMALL, B, r.params, RUN)
    assert r.spec[0][0] == pytest.approx(best) and r.spec[0][2] == r.params
    rec = r.record()
    assert rec["objective"] == "speculate lookup" and rec["speculative_tok_s"] == round(best, 2)
    assert plain.record()["objective"] == "decode" and "speculative_tok_s" not in plain.record()
    assert best >= SPEC_TIE * cs.run_tokens_per_s(SMALL, B, plain.params, RUN)
    assert all(sp <= r.spec[0][0] / SPEC_TIE + 1e-9 for sp, _, _ in r.spec)
    # every fitting variant of the plain choice in head lanes scores no better (the bounds are exact)
    for q in (plain.params.replace(head_lanes=hl) for hl in (1, 2, 4, 8)):
        if not fits_board(estimate(SMALL, B, q, ranges=False).resources["total"], B, UTIL_LIMITS):
            assert cs.run_tokens_per_s(SMALL, B, q, RUN) <= r.spec[0][0] / SPEC_TIE + 1e-9
    # a verify call costs at least a decode step: the search's bound
    for k in range(1, 8):
        assert cs.verify_call(SMALL, B, r.params, k).seconds >= r.estimate.decode.seconds


def test_speculation_objective_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(EdgeLLMError, match="unknown speculation objective"):
        dse.explore(SMALL, KV260, speculate="medusa")
    monkeypatch.setattr(cs, "MEASURED_FILE", tmp_path / "none.json")
    with pytest.raises(EdgeLLMError, match=r"--speculate self: no measured self run .*--record --self"):
        dse.explore(SMALL, KV260, speculate="self")
    assert dse.explore(SMALL, KV260, speculate="off").speculate is None


def test_widened_variants_never_decode_faster_and_the_ceiling_bounds_them() -> None:
    """run_ceiling's premise: the DSE's widened variants (block, token and DSP lanes, pipeline, head
    lanes) of a base design (16-token block, one lane, no pipeline, one head lane) decode no faster than
    it, so its ceiling bounds every variant's speculative figure."""
    r = dse.explore(SMALL, KV260)
    for _, _, p0 in r.sample[::40]:
        base = p0.replace(prefill_token_block=16, token_lanes=1, dsp_lanes=0, prefill_pipeline=False,
                          head_lanes=1)
        d0 = cost_model.decode_step(SMALL, KV260, base).seconds
        ceiling = cs.run_ceiling(SMALL, KV260, base, RUN)
        for pb, tp, pipe, hl in ((64, 2, True, 4), (16, 8, False, 8), (64, 4, True, 1)):
            for dl in (0, tp - 1):
                q = base.replace(prefill_token_block=pb, token_lanes=tp, dsp_lanes=dl, prefill_pipeline=pipe,
                                 head_lanes=hl)
                assert cost_model.decode_step(SMALL, KV260, q).seconds >= d0 * (1 - 1e-12)
                assert cs.run_tokens_per_s(SMALL, KV260, q, RUN) <= ceiling * (1 + 1e-12)


def test_run_longer_than_the_block_scores_zero() -> None:
    p = DesignParams(prefill_token_block=4)
    assert cs.run_tokens_per_s(SMALL, KV260, p, {**RUN, "k_counts": {"5": 1}}) == 0.0
    assert cs.run_tokens_per_pass(RUN) == pytest.approx(120 / 70)


def _app() -> typer.Typer:
    from edgellm.commands import estimate

    app = typer.Typer()
    estimate.register(app)

    @app.command("noop")
    def _noop() -> None:
        pass

    return app


@pytest.mark.slow
def test_estimate_speculate_option(measured, tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(_app(), ["estimate", "--board", "ultra96v2", "--speculate", "lookup", "--top", "3"],
                        terminal_width=400)
    assert res.exit_code == 0, res.output
    assert "design ranked by --speculate lookup (projected)" in res.output and "tok/s plain" in res.output
    assert "lookup tok/s" in res.output and "(chosen)" in res.output  # --top ranks by the objective
    bad = runner.invoke(_app(), ["estimate", "--board", "kv260", "--speculate", "eagle"])
    assert bad.exit_code != 0 and "unknown --speculate 'eagle'" in str(bad.exception)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "manifest.json").write_text("{}")
    proj = runner.invoke(_app(), ["estimate", str(tmp_path / "proj"), "--speculate", "lookup"])
    assert proj.exit_code != 0 and "--speculate does not apply to a project directory" in str(proj.exception)


def test_compile_takes_the_objective(measured) -> None:
    from edgellm.commands.design_opts import check_options, compile_overrides

    assert compile_overrides(None, None, None, {}, "lookup") == {"speculate": "lookup"}
    assert compile_overrides(None, None, None, {}) == {}
    with pytest.raises(EdgeLLMError, match="unknown --speculate"):
        check_options("kv260", None, None, "medusa")
