"""The `edgellm serve` command as a user runs it: refusals before anything loads, the process answering
the openai client on 127.0.0.1 (a free port) and exiting 0 on SIGTERM/SIGINT, a port in use; and (slow) a
compiled project served on the emulator. Every wait is bounded."""

from __future__ import annotations

import json
import signal

import pytest
from shared_serve import cli_server, client, generate_text, serving, stop_cli
from typer.testing import CliRunner

from edgellm.cli import app as cli_app
from edgellm.errors import EdgeLLMError

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
runner = CliRunner()


def test_serve_command_refusals() -> None:
    res = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0"], env={"EDGELLM_API_KEY": None})
    assert res.exit_code == 2 and "lets other machines reach the device: pass --api-key" in res.output
    assert res.output.count("\n") == 1
    res = runner.invoke(cli_app, ["serve", "--api-key", " "])
    assert res.exit_code == 2 and "--api-key is empty" in res.output
    for args, msg in ((["--queue-size", "0"], "--queue-size"), (["--port", "70000"], "--port"),
                      (["--request-timeout", "nan"], "--request-timeout"), (["--timeout", "0"], "timeout")):
        res = runner.invoke(cli_app, ["serve", *args])
        assert res.exit_code == 2 and msg in res.output and res.output.count("\n") == 1, (args, res.output)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_command_answers_and_stops(sig: int) -> None:
    with cli_server([]) as (proc, c):
        out = c.completions.create(model="tiny", prompt="Emma was", max_tokens=12, temperature=0)
        assert out.choices[0].text == generate_text("--prompt", "Emma was", "-n", "12", "--ignore-eos")
        text = stop_cli(proc, sig)
    assert "[serve] stopped" in text and "Traceback" not in text


def test_port_in_use_is_one_line() -> None:
    from edgellm.serve.server import bind

    taken = bind("127.0.0.1", 0)
    taken.listen(1)
    try:
        res = runner.invoke(cli_app, ["serve", "--port", str(taken.getsockname()[1])])
        assert res.exit_code == 2 and "cannot listen on 127.0.0.1:" in res.output
        assert res.output.count("\n") == 1
    finally:
        taken.close()


# ---- a compiled project on the emulator ----

@pytest.mark.slow
def test_project_on_the_emulator(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The tiny model compiled, served on the emulator: greedy answers equal `edgellm run`'s; a chat on
    the same project keeps the session's KV cache (its counters)."""
    pytest.importorskip("hls4ml")
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.runtime.conversation import Conversation
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.serve.target import open_target

    proj = tmp_path_factory.mktemp("emu") / "tiny"
    run_steps(BuildConfig(model=None, board="kv260", out_dir=str(proj)), compile_steps())
    run = runner.invoke(cli_app, ["run", str(proj), "--device", "emu", "--prompt", "Emma was", "-n", "6",
                                  "--ignore-eos"])
    assert run.exit_code == 0, run.output
    with pytest.raises(EdgeLLMError, match="--backend applies to a MODEL"):
        open_target(proj, backend="onnx")
    t = open_target(proj, device="emu")
    assert t.device.startswith("emulator") and t.name == "tiny"
    with serving(t) as (srv, _):
        c = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=6, temperature=0)
        assert c.choices[0].text == run.stdout[:-1]
    sess = t.engine
    conv = Conversation(sess, t.codec, t.template, SamplingParams(max_new_tokens=4))
    first = conv.say("Emma was")
    starts, n1 = sess.stats()["starts"], sess.length
    second = conv.say("and then")
    mt = sess.project.iface.max_t
    assert sess.length == n1 + second.prefilled + 3 and second.prefilled < 8 and not second.rebuilt
    assert sess.stats()["starts"] == starts + -(-second.prefilled // mt) + 3
    assert first.prefilled == 3 and json.loads((proj / "manifest.json").read_text())["chat_template"] is None
