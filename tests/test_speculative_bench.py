"""bench/speculative_acceptance.py's clairvoyant bound: the least projected cost any k controller could reach
with prompt lookup on a greedy run whose tokens are known (dynamic programming over the position)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams
from edgellm.runtime.speculative import SpecConfig, verify_cost

BENCH = Path(__file__).parents[1] / "bench" / "speculative_acceptance.py"
CFG = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=40,
                  max_context=96, name="spec-bench")
COSTS = (1.0, 1.3, 1.89, 2.1, 2.71)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("speculative_acceptance", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cost(run: dict, spec: SpecConfig) -> float:
    return run["plain_passes"] + sum(n * verify_cost(spec, k) for k, n in run["k_counts"].items())


def test_bound_is_below_the_controller(bench) -> None:
    """The controller's run (the same drafter and cost table) never costs less than the bound, and the
    bound accounts for every token."""
    qm = random_model(CFG, seed=3)
    spec = SpecConfig("lookup", k_max=4, pass_costs=COSTS)
    params = SamplingParams(max_new_tokens=40, stop_at_eos=False)
    for prompt in ([1, 5, 9, 13, 5, 9, 13, 5, 9], [3, 3, 3, 3], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]):
        res = generate(GoldenBackend(qm), prompt, params, speculate=spec)
        st = res.speculation
        b = bench.clairvoyant(prompt, res.tokens, spec)
        assert b["decode_tokens"] == st.decode_tokens == len(res.tokens) - 1
        assert cost(b, spec) <= st.cost_steps + 1e-9


def test_bound_by_hand(bench) -> None:
    """No repeats: every pass plain. A period-3 sequence under a table flat from 2 to 3 drafts: calls of 3
    drafts, all accepted, never a 2-draft call."""
    spec = SpecConfig("lookup", k_max=4, pass_costs=COSTS)
    b = bench.clairvoyant([7, 21, 8], [30, 2, 17, 11, 6], spec)
    assert b["plain_passes"] == 4 and b["k_counts"] == {}
    b = bench.clairvoyant([1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3, 1, 2, 3], spec)
    assert b["decode_tokens"] == 8 and b["k_counts"] == {3: 2} and b["plain_passes"] == 0


def test_a_lut_cap_run_is_not_recorded(bench, monkeypatch) -> None:
    """--lut-cap is a sensitivity: its runs' k choices follow another design's costs than the one
    `edgellm estimate` projects the records on, so --record refuses it (before any work, the file
    untouched)."""
    before = bench.cost_spec.MEASURED_FILE.read_bytes()
    monkeypatch.setattr("sys.argv", ["speculative_acceptance.py", "--lut-cap", "0.84", "--record"])
    with pytest.raises(SystemExit, match="^error: --record with --lut-cap"):
        bench.main()
    assert bench.cost_spec.MEASURED_FILE.read_bytes() == before


@pytest.mark.parametrize("cap", ["2", "0", "nan"])
def test_a_bad_lut_cap_is_one_error_line(bench, monkeypatch, cap) -> None:
    monkeypatch.setattr("sys.argv", ["speculative_acceptance.py", "--lut-cap", cap])
    with pytest.raises(SystemExit, match="^error: utilization limit 'lut' must be a fraction"):
        bench.main()
