"""`edgellm serve --speculate`: every request decodes through the speculative loop and answers exactly
what plain decode answers (greedy, and sampled with a lookup drafter and the same seed), streaming
included; usage carries what was measured (OpenAI's accepted/rejected prediction tokens, and a
`speculation` object the openai client keeps), /health the totals; stop strings, a client that goes
away and timeouts work as without it; a backend that cannot move back and a bad --speculate value are
one `error:` line. The shipped tiny model on the golden backend (the engine the serving tests use),
on a live server on 127.0.0.1; (slow) a compiled project on the emulator, `self` with and without the
project's calibration."""

from __future__ import annotations

import dataclasses
import http.client
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared_serve import WAIT_S, cli_server, client, generate_text, serving, stop_cli, wait_until
from typer.testing import CliRunner

from edgellm.cli import app as cli_app
from edgellm.errors import EdgeLLMError

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
runner = CliRunner()

COPY = "the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog, the quick"
PROMPTS = [COPY, "Emma was", "Mr. Knightley", "It is a truth universally acknowledged"]
SPEC_KEYS = {"mode", "drafted", "accepted", "acceptance", "tokens_per_pass", "passes", "verify_passes",
             "plain_passes", "draft_passes", "projected_speedup"}


def lookup(k_max: int = 4) -> Any:
    from edgellm.commands.speculation import spec_config

    return spec_config("lookup", k_max, 0, None)


@pytest.fixture(scope="module")
def fast() -> Any:
    """The tiny model (golden backend), speculating with prompt lookup."""
    from edgellm.serve.target import open_target

    return open_target(None, spec=lookup())


@pytest.fixture(scope="module")
def srv(fast: Any) -> Iterator[tuple[Any, Any]]:
    with serving(fast) as (s, w):
        yield s, w


def health(srv: Any) -> dict[str, Any]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=WAIT_S)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@pytest.mark.parametrize("prompt", PROMPTS, ids=["copy", "emma", "knightley", "truth"])
def test_greedy_equals_plain_decode(srv: Any, prompt: str) -> None:
    s, _ = srv
    want = generate_text("--prompt", prompt, "-n", "24", "--ignore-eos")  # plain decode, no --speculate
    c = client(s).completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0)
    assert c.choices[0].text == want and c.usage.completion_tokens == 24
    st = c.usage.speculation  # an extra field: the openai client keeps it
    assert set(st) == SPEC_KEYS and st["mode"] == "lookup"
    d = c.usage.completion_tokens_details
    assert (d.accepted_prediction_tokens, d.rejected_prediction_tokens) == (st["accepted"],
                                                                             st["drafted"] - st["accepted"])
    assert st["passes"] == st["verify_passes"] + st["plain_passes"] and st["draft_passes"] == 0
    assert st["tokens_per_pass"] == pytest.approx(23 / st["passes"], abs=1e-4)  # 23 decode tokens
    chunks = list(client(s).completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0,
                                               stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == want
    assert chunks[-1].choices == [] and chunks[-1].usage.speculation == st
    if prompt == COPY:  # the copy-heavy prompt: drafts accepted, fewer passes than tokens
        assert st["accepted"] > 0 and st["tokens_per_pass"] > 1.2 and st["passes"] < 23


def test_chat_streaming_equals_plain_decode(srv: Any) -> None:
    s, _ = srv
    want = generate_text("--prompt", COPY, "-n", "20", "--ignore-eos")
    msgs = [{"role": "user", "content": COPY}]
    c = client(s).chat.completions.create(model="tiny", messages=msgs, max_tokens=20, temperature=0)
    assert c.choices[0].message.content == want and c.usage.speculation["accepted"] > 0
    chunks = list(client(s).chat.completions.create(model="tiny", messages=msgs, max_tokens=20,
                                                    temperature=0, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == want


def test_sampled_with_lookup_equals_plain_sampling(srv: Any) -> None:
    """A lookup drafter is verified by the sampler's own draw per row, so a seeded sampled answer is plain
    decode's token for token (the one-hot speculative-sampling rule drew differently: a regression)."""
    s, _ = srv
    want = generate_text("--prompt", COPY, "-n", "24", "--temperature", "0.3", "--seed", "1")
    c = client(s).completions.create(model="tiny", prompt=COPY, max_tokens=24, temperature=0.3, seed=1)
    st = c.usage.speculation
    assert c.choices[0].text == want
    assert st["accepted"] > 0 and st["drafted"] > st["accepted"]  # both rules' branches ran


def test_stop_string_keeps_the_measurement(srv: Any) -> None:
    s, _ = srv
    greedy = generate_text("--prompt", COPY, "-n", "24", "--ignore-eos")
    stop = greedy.split()[5]
    c = client(s).completions.create(model="tiny", prompt=COPY, max_tokens=24, temperature=0, stop=stop)
    assert c.choices[0].text == greedy[:greedy.index(stop)] and c.choices[0].finish_reason == "stop"
    assert c.usage.speculation["passes"] > 0  # counted although on_token ended the generation


def test_health_totals(fast: Any) -> None:
    with serving(fast) as (s, w):
        h0 = health(s)["speculation"]
        assert h0["mode"] == "lookup" and h0["requests"] == 0 and h0["drafted"] == 0
        got = [client(s).completions.create(model="tiny", prompt=p, max_tokens=12, temperature=0).usage
               for p in PROMPTS[:2]]
        wait_until(lambda: w.spec_totals.requests == 2, "the totals")
        h = health(s)["speculation"]
        assert h["requests"] == 2 and set(h) == SPEC_KEYS | {"requests"}
        for k in ("drafted", "accepted", "passes"):
            assert h[k] == sum(u.speculation[k] for u in got), k


def test_plain_server_reports_no_speculation() -> None:
    from edgellm.serve.target import open_target

    with serving(open_target(None)) as (s, _):
        c = client(s).completions.create(model="tiny", prompt="Emma was", max_tokens=4, temperature=0)
        assert not hasattr(c.usage, "speculation") and c.usage.completion_tokens_details is None
        assert health(s)["speculation"] == {"mode": "off"}


class Slow:
    """The golden engine, each forward after `delay` seconds; it can move back (speculation needs it)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.config, self.delay = inner, inner.config, delay
        self.forwards = 0

    @property
    def length(self) -> int:
        return int(self.inner.length)

    def reset(self) -> None:
        self.inner.reset()

    def rewind(self, n: int) -> None:
        from edgellm.runtime.speculative import rewind

        rewind(self.inner, n)

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        self.forwards += 1
        time.sleep(self.delay)
        return self.inner.forward(tokens, all_logits)


def test_disconnect_and_timeout_with_speculation(fast: Any) -> None:
    t = dataclasses.replace(fast, engine=Slow(fast.engine, 0.02))
    with serving(t) as (s, w):
        stream = client(s).completions.create(model="tiny", prompt=COPY, max_tokens=400, temperature=0,
                                              stream=True)
        it = iter(stream)
        next(it)
        next(it)
        stream.close()
        wait_until(lambda: w.current is None, "the device to be freed")
        assert t.engine.forwards < 100 and w.spec_totals.requests == 1  # stopped soon after the client left
    t = dataclasses.replace(fast, engine=Slow(fast.engine, 0.05))
    with serving(t, request_timeout=0.5) as (s, w):
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as ei:
            client(s).completions.create(model="tiny", prompt=COPY, max_tokens=200)
        assert ei.value.status_code == 504 and time.monotonic() - t0 < 5
        wait_until(lambda: w.current is None, "the device to be freed")


def test_self_on_the_golden_backend() -> None:
    """--speculate self with --draft-layers on a checkpoint: the same greedy text, draft passes counted."""
    from edgellm.commands.speculation import spec_config
    from edgellm.serve.target import open_target

    want = generate_text("--prompt", COPY, "-n", "12", "--ignore-eos")
    t = open_target(None, spec=spec_config("self", 3, 0, "0"))
    with serving(t) as (s, _):
        c = client(s).completions.create(model="tiny", prompt=COPY, max_tokens=12, temperature=0)
    st = c.usage.speculation
    assert c.choices[0].text == want and st["mode"] == "self" and st["draft_passes"] >= st["drafted"] > 0


def test_backend_that_cannot_move_back_is_refused() -> None:
    """The torch backend's cache grows by concatenation: speculation is refused before anything runs (it
    gave wrong tokens after a rejected draft: a regression), in serve as in generate."""
    pytest.importorskip("torch")
    from edgellm.commands.generate import build_backend, load_checkpoint
    from edgellm.runtime.generation import generate
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.runtime.speculative import SpecConfig
    from edgellm.serve.target import open_target

    with pytest.raises(EdgeLLMError, match="backend torch cannot move its KV position back"):
        open_target(None, backend="torch", spec=lookup())
    qm, _ = load_checkpoint(None)
    eng = build_backend("torch", qm)
    with pytest.raises(EdgeLLMError, match="cannot move its KV position back"):
        generate(eng, [1, 50, 60, 70], SamplingParams(max_new_tokens=4), speculate=SpecConfig("lookup"))
    assert eng.length == 0  # refused before the prefill


@pytest.mark.parametrize("args,msg", [
    (["--speculate", "medusa"], "unknown --speculate 'medusa'"),
    (["--speculate", "lookup", "--spec-k-max", "0"], "k_max must be in"),
    (["--speculate", "lookup", "--draft-layers", "1"], "--draft-layers goes with --speculate self"),
])
def test_bad_speculate_is_one_line(args: list[str], msg: str) -> None:
    res = runner.invoke(cli_app, ["serve", "--port", "0", *args])
    assert res.exit_code == 2 and res.output.startswith("error: ") and msg in res.output
    assert res.output.count("\n") == 1, res.output


def test_self_without_layers_and_torch_are_one_error_line() -> None:
    for args, msg in ((["--speculate", "self"], "--speculate self needs draft layers"),
                      (["--speculate", "lookup", "-b", "torch"], "cannot move its KV position back")):
        if "torch" in args:
            pytest.importorskip("torch")
        res = runner.invoke(cli_app, ["serve", "--port", "0", *args])
        errs = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert res.exit_code == 2 and len(errs) == 1 and msg in errs[0], res.output
        assert "Traceback" not in res.output


def test_serve_command_speculates() -> None:
    """The command as a process: the startup line names the speculation, answers carry it."""
    with cli_server(["--speculate", "lookup", "--spec-k-max", "3"]) as (proc, c):
        out = c.completions.create(model="tiny", prompt=COPY, max_tokens=12, temperature=0)
        assert out.choices[0].text == generate_text("--prompt", COPY, "-n", "12", "--ignore-eos")
        assert out.usage.speculation["mode"] == "lookup" and out.usage.speculation["accepted"] > 0
        text = stop_cli(proc)
    assert "speculate lookup k 0..3" in text and "Traceback" not in text
    assert "speculate lookup: acceptance" in text  # the request's log line


# ---- a compiled project on the emulator (the C simulation of its HLS) ----

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from shared_project import compile_e2e_project

    pytest.importorskip("hls4ml")
    return compile_e2e_project(tmp_path_factory.mktemp("e2e"))


@pytest.mark.slow
def test_project_on_the_emulator(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Greedy answers with --speculate lookup equal `edgellm run`'s plain ones in fewer passes over the
    layers; `self` without the project's calibration is run's error; with it stored, the same text."""
    from shared_project import E2E_PROMPT

    from edgellm.commands.speculation import spec_config
    from edgellm.runtime.drafters import save_draft_calibration
    from edgellm.serve.target import open_target

    _, proj = built
    prompt = E2E_PROMPT  # a context of 64 positions
    run = runner.invoke(cli_app, ["run", str(proj), "--device", "emu", "--prompt", prompt, "-n", "16",
                                  "--ignore-eos"])
    assert run.exit_code == 0, run.output
    plain_runs = int(run.stderr.split("accelerator runs ", 1)[1].split(",", 1)[0])
    # priced for the project's design (for_project), a verify call here costs more than a decode step
    # (a tiny design): the controller would not draft, so --spec-k-min 2 makes it
    t = open_target(proj, device="emu", spec=spec_config("lookup", 4, 2, None))
    assert len(t.spec.pass_costs) == 5
    with serving(t) as (s, _):
        c = client(s).completions.create(model=t.name, prompt=prompt, max_tokens=16, temperature=0)
    assert c.choices[0].text == run.stdout[:-1] and c.usage.speculation["accepted"] > 0
    # plain decode: one start per prefill block and decode step, each over every layer; a verify pass
    # runs the layers once for its rows (its head takes more starts on a design with fewer head lanes
    # than rows: this one's DSE chose 1)
    st = c.usage.speculation
    assert t.engine.stats()["layer_passes"] == plain_runs - st["accepted"] < plain_runs
    with pytest.raises(EdgeLLMError, match="--speculate self needs draft layers"):
        open_target(proj, device="emu", spec=spec_config("self", 3, 0, None))
    calibrated = tmp_path / "calibrated"
    shutil.copytree(proj, calibrated)
    save_draft_calibration(calibrated, {"draft_layers": [0]})
    t = open_target(calibrated, device="emu", spec=spec_config("self", 3, 2, None))
    with serving(t) as (s, _):
        c = client(s).completions.create(model=t.name, prompt=prompt, max_tokens=16, temperature=0)
    assert c.choices[0].text == run.stdout[:-1] and c.usage.speculation["draft_passes"] > 0


@pytest.mark.slow
def test_chat_on_the_emulator(built: tuple[Path, Path]) -> None:
    """`edgellm chat DIR --device emu --speculate lookup` (here, to share the compiled project): the
    replies of plain decode, the turn's line with the figures, drafts accepted."""
    from shared_project import E2E_PROMPT

    _, proj = built
    stdin = f"{E2E_PROMPT}\nthe quick brown fox\n"
    args = ["chat", str(proj), "--device", "emu", "-n", "8", "--ignore-eos"]
    plain = runner.invoke(cli_app, args, input=stdin)
    fast = runner.invoke(cli_app, [*args, "--speculate", "lookup", "--spec-k-min", "2"], input=stdin)
    assert plain.exit_code == 0 and fast.exit_code == 0, (plain.output, fast.output)
    assert fast.stdout == plain.stdout and len(fast.stdout.splitlines()) == 2
    lines = [ln for ln in fast.stderr.splitlines() if " turn " in ln]
    assert len(lines) == 2 and all("speculate lookup: acceptance" in ln for ln in lines)

    accepted = sum(int(ln.split("acceptance ")[1].split("(")[1].split("/")[0]) for ln in lines
                   if "acceptance n/a" not in ln)
    assert accepted > 0
