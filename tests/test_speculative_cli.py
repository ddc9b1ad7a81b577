"""`--speculate` on `edgellm generate` (golden) and `edgellm run` (the emulator: the C simulation of a
compiled project's own HLS sources): the same greedy text as without it, the summary line, fewer passes
over the layers; Session.verify's rows bit for bit against the golden model on the C simulation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from shared_project import E2E_PROMPT as PROMPT
from shared_project import compile_e2e_project
from typer.testing import CliRunner

from edgellm.cli import app

runner = CliRunner()
COPY = "the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog, the quick"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(checkpoint dir, project dir) of shared_project.compile_e2e_project."""
    return compile_e2e_project(tmp_path_factory.mktemp("e2e"))


def test_generate_speculate_same_text() -> None:
    args = ["generate", "--prompt", COPY, "-n", "12", "--ignore-eos"]
    plain = runner.invoke(app, args)
    fast = runner.invoke(app, [*args, "--speculate", "lookup", "--spec-k-max", "3"])
    assert plain.exit_code == 0 and fast.exit_code == 0, (plain.output, fast.output)
    assert fast.stdout == plain.stdout
    assert "[speculate lookup] acceptance" in fast.stderr and "tokens per pass" in fast.stderr
    assert "[speculate" not in plain.stderr


@pytest.mark.parametrize("args,msg", [
    (["--speculate", "medusa"], "unknown --speculate 'medusa'"),
    (["--speculate", "lookup", "--spec-k-max", "0"], "k_max must be in"),
    (["--speculate", "lookup", "--spec-k-min", "8"], "k_min must be in"),
    (["--speculate", "lookup", "--draft-layers", "1"], "--draft-layers goes with --speculate self"),
    (["--speculate", "self"], "needs draft layers"),
    (["--speculate", "self", "--draft-layers", "0,9"], "draft layers [0, 9] must be distinct layers"),
])
def test_generate_speculate_errors(args: list[str], msg: str) -> None:
    res = runner.invoke(app, ["generate", "--prompt", "Once", "-n", "2", *args])
    assert res.exit_code != 0 and res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert msg in res.stderr, res.stderr


@pytest.mark.slow
def test_for_project_prices_the_design(built) -> None:
    """Pass costs from the project's design and board (compiled project); unchanged without a known
    board."""
    from types import SimpleNamespace

    from edgellm.commands.speculation import for_project, spec_config
    from edgellm.runtime.project import Project

    _, proj = built
    p = Project.open(proj)
    spec = for_project(spec_config("lookup", 3, 0, None), p)
    assert len(spec.pass_costs) == 4 and spec.pass_costs[3] > spec.pass_costs[1] > spec.pass_costs[0]
    fake = SimpleNamespace(manifest={"design": {}, "board": {"name": "no-such-board"}}, config=p.config)
    assert for_project(spec_config("lookup", 3, 0, None), fake).pass_costs == ()
    assert for_project(None, p) is None


needs_csim = pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None,
                                reason="C simulation needs hls4ml's ap_types headers")


@pytest.mark.slow
@needs_csim
def test_run_speculate_lookup_on_emulator(built) -> None:
    _, proj = built
    args = ["run", str(proj), "--prompt", PROMPT, "-n", "20", "--ignore-eos", "--device", "emu"]
    plain = runner.invoke(app, args)
    fast = runner.invoke(app, [*args, "--speculate", "lookup", "--spec-k-max", "4"])
    assert plain.exit_code == 0 and fast.exit_code == 0, (plain.output, fast.output)
    assert fast.stdout == plain.stdout
    line = [x for x in fast.stderr.splitlines() if x.startswith("[speculate lookup]")][0]
    assert "projected for the design" in line  # the verify calls priced for the project's design and board
    passes = int(line.rsplit("layer passes ", 1)[1])
    accepted = int(line.split("(", 1)[1].split("/", 1)[0])
    assert accepted > 0
    # plain: one start per prefill block and per decode step, each over every layer
    plain_runs = int(plain.stderr.split("accelerator runs ", 1)[1].split(",", 1)[0])
    assert passes == plain_runs - accepted
    # the verify call is one start (layers + the multi-row head): one start per pass over the layers
    fast_runs = int(fast.stderr.split("accelerator runs ", 1)[1].split(",", 1)[0])
    assert fast_runs == passes < plain_runs


@pytest.mark.slow
@needs_csim
def test_verify_rows_bit_exact_on_csim(built) -> None:
    """A verify block's rows from the C simulation equal decode-style rows of the golden model, bit for
    bit; a draft through a layer subset equals the golden draft."""
    from edgellm.models.backend import GoldenBackend
    from edgellm.models.loaders import load_model
    from edgellm.runtime.drafters import draft_logits
    from edgellm.runtime.project import Project
    from edgellm.runtime.session import Session, open_device

    ckpt, proj = built
    p = Project.open(proj)
    s = Session(p, open_device(p, "emu"))
    qm, _ = load_model(ckpt)
    g = GoldenBackend(qm, p.numerics)
    prompt = np.arange(5, 5 + 11) * 3 % p.config.vocab_size
    s.forward(prompt)
    g.forward(prompt)
    d_s, d_g = s.draft_logits(9, s.length, (1,)), draft_logits(g, 9, g.length, (1,))
    assert np.array_equal(d_s.view(np.uint32), d_g.view(np.uint32))
    block = np.array([9, 40, 41, 7, 7])
    rows = s.verify(block)
    for i, t in enumerate(block):
        want = g.forward(np.array([t]))[0]
        assert np.array_equal(rows[i].view(np.uint32), want.view(np.uint32)), i
    s.rewind(s.length - 3)  # two rows rejected: the next start overwrites them
    g.cache.length -= 3
    assert np.array_equal(s.forward(np.array([41]))[0].view(np.uint32),
                          g.forward(np.array([41]))[0].view(np.uint32))


def test_the_summary_says_where_cheaper_verify_calls_come_from() -> None:
    """No verify pass on a design whose one-draft call costs more than 1.5 decode steps (a plain-ranked
    design: the default tiny one's is 1.65): the run's summary line names `compile --speculate`; with a
    verify pass, or cheap calls, it does not."""
    from types import SimpleNamespace

    from edgellm.commands.speculation import costly_hint, spec_line

    spec = SimpleNamespace(mode="lookup", pass_costs=(2.0, 3.3, 4.0), draft_cost=0.0, row_cost=0.0)
    none = SimpleNamespace(verify_passes=0, plain_passes=9, passes=9, draft_passes=0, acceptance=None,
                           tokens_per_pass=1.0, projected_speedup=1.0, accepted=0, drafted=0)
    line = spec_line(SimpleNamespace(speculation=none), spec)
    assert line.endswith("no pass verified drafts: one draft costs 1.65 decode steps on this design "
                         "(`edgellm compile --speculate lookup` ranks designs by speculation)")
    assert costly_hint(SimpleNamespace(verify_passes=1), spec) == ""
    assert costly_hint(none, SimpleNamespace(mode="lookup", pass_costs=(2.0, 2.6))) == ""
    assert costly_hint(none, SimpleNamespace(mode="lookup", pass_costs=())) == ""
