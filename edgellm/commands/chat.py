"""`edgellm chat DIR|MODEL`: a multi-turn conversation in the terminal, one user turn per line.

The model's chat template frames each turn (runtime/chat_template.py); the KV cache is kept between
turns, so each turn prefills only its new tokens (runtime/conversation.py). /reset starts over (the
--system message stays), /exit ends, as does end of input. A model without a template (the shipped
tiny model is not an instruct model) continues plain text. A line that is not valid UTF-8, or a turn
that does not fit the context, gets one `error:` line and the conversation goes on. --speculate (the
options of run and generate) decodes every reply speculatively; the turn's stats line then adds the
acceptance and tokens per pass.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.options import (
    NoVerifyOpt,
    RepetitionPenaltyOpt,
    SeedOpt,
    StopAtEosOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
)
from edgellm.commands.run import DeviceOpt, TimeoutOpt
from edgellm.commands.speculation import (
    DEFAULT_K_MAX,
    DraftLayersOpt,
    SpecKMaxOpt,
    SpecKMinOpt,
    SpeculateOpt,
    spec_config,
)
from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.conversation import Conversation, Turn
    from edgellm.serve.target import Target

TargetArg = Annotated[Path | None, typer.Argument(
    help="A compiled project directory (run on --device) or a checkpoint (run on --backend); default: "
         "the shipped tiny model.", show_default=False, metavar="DIR|MODEL")]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help="CPU backend for a MODEL: golden, onnx "
                                                                   "or torch.")]
HELP = "[chat] /reset starts over, /exit (or end of input) ends"


def chat_cmd(
    target: TargetArg = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System message.")] = None,
    device: DeviceOpt = "auto",
    backend: BackendOpt = "golden",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n",
                                                help="Most tokens per reply.")] = 128,
    temperature: TemperatureOpt = 0.0,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    repetition_penalty: RepetitionPenaltyOpt = 1.0,
    seed: SeedOpt = None,
    stop_at_eos: StopAtEosOpt = True,
    timeout: TimeoutOpt = 60.0,
    no_verify_checksums: NoVerifyOpt = False,
    speculate: SpeculateOpt = "off",
    spec_k_max: SpecKMaxOpt = DEFAULT_K_MAX,
    spec_k_min: SpecKMinOpt = 0,
    draft_layers: DraftLayersOpt = None,
) -> None:
    """Chat with a model: one turn per line on stdin, the KV cache kept between turns."""
    from edgellm.commands.run import check_timeout, sampling_params
    from edgellm.runtime.conversation import Conversation
    from edgellm.runtime.text import check_utf8
    from edgellm.serve.target import open_target

    params = sampling_params(temperature, top_k, top_p, repetition_penalty, seed, max_new_tokens, stop_at_eos)
    check_timeout(timeout)
    if system is not None and not check_utf8(system, "--system").strip():
        raise EdgeLLMError("--system is empty")
    spec = spec_config(speculate, spec_k_max, spec_k_min, draft_layers)
    t = open_target(target, device, backend, timeout, not no_verify_checksums, info=_info, spec=spec)
    conv = Conversation(t.engine, t.codec, t.template, params, system, speculate=t.spec)
    if t.template.adds_bos:
        _info(f"[chat] note: {t.name} has no chat template (it is not an instruct model): each line "
              "continues the text as plain text")
    else:
        _info(f"[chat] {t.name}: the model's chat template")
    _info(HELP)
    _repl(t, conv)


def _repl(t: Target, conv: Conversation) -> None:
    """Read turns until end of input or /exit."""
    from edgellm.cli import error_line
    from edgellm.commands.run import _stdin_lines
    from edgellm.runtime.text import decode_utf8

    interactive = sys.stdin is not None and sys.stdin.isatty()
    n_turn = 0
    for n, raw in enumerate(_prompted(_stdin_lines(), interactive), 1):
        try:
            line = decode_utf8(raw, f"stdin line {n}").rstrip("\r\n")
        except EdgeLLMError as e:
            _info(error_line(e))
            continue
        cmd = line.strip()
        if not cmd:
            continue
        if cmd in ("/exit", "/quit"):
            break
        if cmd == "/reset":
            conv.reset()
            n_turn = 0
            _info("[chat] conversation reset")
            continue
        if cmd.startswith("/") and " " not in cmd:
            _info(error_line(EdgeLLMError(f"unknown command {cmd}; {HELP[7:]}")))
            continue
        try:
            turn = _turn(t, conv, line)
        except EdgeLLMError as e:
            _info(error_line(e))
            continue
        n_turn += 1
        _info(_stats(t, conv, turn, n_turn))


def _turn(t: Target, conv: Conversation, line: str) -> Turn:
    """One reply, streamed to stdout."""
    from edgellm.commands.generate import StreamPrinter, write_stdout

    printer = StreamPrinter(t.codec, write_stdout)
    turn = conv.say(line, on_token=printer)
    printer.flush()
    write_stdout("\n")
    return turn


def _stats(t: Target, conv: Conversation, turn: Turn, n_turn: int) -> str:
    """The line after each reply: what was prefilled, how fast, how full the context is; with
    --speculate, the turn's acceptance and tokens per pass."""
    from edgellm.commands.speculation import spec_brief

    res = turn.result
    tps = res.decode_tokens_per_s
    rebuilt = " (cache rebuilt)" if turn.rebuilt and n_turn > 1 else ""
    fed = f"prefilled {turn.prefilled} new tokens{rebuilt}"
    st = t.stats()
    runs = f", accelerator runs {st['starts']}" if "starts" in st else ""
    spec = f", {spec_brief(res.speculation, t.spec.mode)}" if res.speculation is not None else ""
    return (f"[{t.device}] turn {n_turn}: {fed}, generated {len(res.tokens)}, "
            f"TTFT {res.ttft_s * 1e3:.1f} ms, decode {'n/a' if tps is None else f'{tps:.2f}'} tok/s, "
            f"stop: {res.stop_reason}, context {len(conv.ids)}/{conv.context}{runs}{spec}")


def _prompted(lines: Any, interactive: bool) -> Any:
    """The lines, with a `> ` prompt on stderr before each when a person is typing."""
    it = iter(lines)
    while True:
        if interactive:
            sys.stderr.write("> ")
            sys.stderr.flush()
        try:
            yield next(it)
        except StopIteration:
            return


def _info(s: str) -> None:
    typer.echo(s, err=True)


def register(app: typer.Typer) -> None:
    """Add `edgellm chat`."""
    app.command("chat")(chat_cmd)
