"""`edgellm run DIR --prompt ...`: generate on the accelerator (the board through pynq, or the emulator,
i.e. C simulation of the project's own HLS sources), streaming text; reports TTFT and tokens/s.

Also holds what `verify` shares: opening the project, choosing the device, the prompt codec.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.options import (
    MaxNewTokensOpt,
    NoVerifyOpt,
    RepetitionPenaltyOpt,
    SeedOpt,
    StopAtEosOpt,
    StreamOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
)
from edgellm.commands.speculation import (
    DEFAULT_K_MAX,
    DraftLayersOpt,
    SpecKMaxOpt,
    SpecKMinOpt,
    SpeculateOpt,
    for_project,
    spec_config,
    spec_line,
)
from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.project import Project
    from edgellm.runtime.sampling import SamplingParams

DirArg = Annotated[Path, typer.Argument(help="Compiled project directory (edgellm compile).",
                                        show_default=False)]
PromptOpt = Annotated[str | None, typer.Option("--prompt", "-p", help="Prompt text.")]
PromptIdsOpt = Annotated[str | None, typer.Option("--prompt-ids", help="Prompt as token ids ('1,2,3').")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (pynq on a board, else the emulator), "
                                                            "emu, emu-threads (threaded C simulation: "
                                                            "bounded FIFOs, deadlocks detected) or pynq.")]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds to wait for each accelerator run: on the board, the whole run; on the "
                      "emulator (emu, emu-threads), the time without progress (no descriptor and no "
                      "linear finished), a run capped at this x (descriptors x 15 + 1).")]


def device_for(p: Project, kind: str, info: Any) -> Any:
    """Open the device and say which one it is."""
    from edgellm.runtime.session import DEVICES, open_device

    if kind not in DEVICES:
        raise EdgeLLMError(f"unknown device {kind!r}; choose one of {', '.join(DEVICES)}")
    from edgellm.commands.progress import Status

    with Status(f"opening the {kind} device (the emulator builds its C simulation once: g++, cached)"):
        dev = open_device(p, kind)
    why = " (no PYNQ board here)" if kind == "auto" and "emulator" in dev.name else ""
    info(f"[device] {dev.name}{why}")
    return dev


def codec_for(p: Project) -> Any:
    """TextCodec over the project's tokenizer (pure-Python BPE), or None when it has none."""
    from edgellm.commands.generate import TextCodec
    from edgellm.runtime.bpe import load_tokenizer

    tp = p.tokenizer_path
    if tp is None:
        return None
    c = p.config
    def ok(t: int) -> int | None:
        return t if 0 <= t < c.vocab_size else None
    return TextCodec(load_tokenizer(tp, ok(c.bos_id), ok(c.eos_id)), ok(c.bos_id), ok(c.eos_id))


def prompt_ids_for(codec: Any, prompt: str | None, prompt_ids: str | None, vocab_size: int | None = None,
                   what: str = "--prompt") -> list[int]:
    """Token ids of --prompt / --prompt-ids (one-line errors: not UTF-8, not integers, out of the
    vocabulary, empty)."""
    from edgellm.commands.generate import parse_ids
    from edgellm.runtime.text import check_utf8

    if prompt is not None and prompt_ids is not None:
        raise EdgeLLMError("pass either --prompt or --prompt-ids, not both")
    if prompt_ids is not None:
        ids = parse_ids(prompt_ids, "--prompt-ids", vocab_size)
        if not ids:
            raise EdgeLLMError("empty prompt")
        return ids
    if prompt is None:
        raise EdgeLLMError("no prompt: pass --prompt TEXT (or --prompt-ids)")
    if not check_utf8(prompt, what).strip():
        raise EdgeLLMError("empty prompt")
    if codec is None:
        raise EdgeLLMError("this project has no tokenizer; pass --prompt-ids instead of --prompt")
    return codec.prompt_ids(prompt)


def check_timeout(seconds: float) -> float:
    """--timeout must be finite and positive (every wait on the accelerator has a bound)."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise EdgeLLMError(f"--timeout must be a finite number of seconds > 0, got {seconds}")
    return seconds


def open_project(path: Path, verify: bool = True) -> Project:
    """Project.open, after saying plainly when PATH is not a directory at all."""
    from edgellm.runtime.project import Project

    if path.exists() and not path.is_dir():
        raise EdgeLLMError(f"{path}: not a directory (a project is the folder edgellm compile wrote)")
    return Project.open(path, verify=verify)


def run_cmd(
    project: DirArg,
    prompt: PromptOpt = None,
    prompt_ids: PromptIdsOpt = None,
    device: DeviceOpt = "auto",
    max_new_tokens: MaxNewTokensOpt = 64,
    temperature: TemperatureOpt = 0.0,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    repetition_penalty: RepetitionPenaltyOpt = 1.0,
    seed: SeedOpt = None,
    stop_at_eos: StopAtEosOpt = True,
    stream: StreamOpt = True,
    chat: Annotated[bool, typer.Option("--chat", help="Read prompts from stdin, one per line.")] = False,
    context_policy: Annotated[str, typer.Option(
        "--context-policy", help="error, or sliding (attention sink + window, re-prefilled when the "
                                 "KV cache is full).")] = "error",
    sink: Annotated[int, typer.Option(help="Sliding policy: first tokens always kept.")] = 4,
    window: Annotated[int | None, typer.Option(help="Sliding policy: recent tokens kept "
                                                    "(default: half the KV cache).")] = None,
    timeout: TimeoutOpt = 60.0,
    no_verify_checksums: NoVerifyOpt = False,
    speculate: SpeculateOpt = "off",
    spec_k_max: SpecKMaxOpt = DEFAULT_K_MAX,
    spec_k_min: SpecKMinOpt = 0,
    draft_layers: DraftLayersOpt = None,
) -> None:
    """Generate text from a compiled project on the accelerator (board or emulator)."""
    from edgellm.runtime.generation import check_prompt
    from edgellm.runtime.session import Session

    params = sampling_params(temperature, top_k, top_p, repetition_penalty, seed, max_new_tokens, stop_at_eos)
    info = lambda s: typer.echo(s, err=True)  # noqa: E731
    check_timeout(timeout)
    spec = spec_config(speculate, spec_k_max, spec_k_min, draft_layers)
    p = open_project(project, verify=not no_verify_checksums)
    codec = codec_for(p)
    if not chat:
        ids = prompt_ids_for(codec, prompt, prompt_ids, p.config.vocab_size)
    elif prompt is not None or prompt_ids is not None:
        raise EdgeLLMError("--chat reads its prompts from stdin: leave out --prompt and --prompt-ids")
    elif codec is None:
        raise EdgeLLMError("this project has no tokenizer: --chat needs one (use --prompt-ids instead)")
    if codec is not None and params.eos_id is None:
        params = dataclasses.replace(params, eos_id=codec.eos_id)
    sess = Session(p, device_for(p, device, info), timeout_s=timeout, context_policy=context_policy,
                   sink=sink, window=window)
    spec = for_project(spec, p)
    if chat:
        _chat(sess, codec, params, stream, info, spec)
        return
    check_prompt(ids, sess.config.max_context, p.config.vocab_size)
    _generate_one(sess, codec, ids, params, stream, info, spec)


def _chat(sess: Any, codec: Any, params: SamplingParams, stream: bool, info: Any, spec: Any = None) -> None:
    """Prompts read line by line from stdin, each a fresh generation; a line that is not a valid
    prompt (not UTF-8, too long, no tokenizer, ...) gets an `error:` line and the session goes on."""
    from edgellm.cli import error_line
    from edgellm.runtime.generation import check_prompt
    from edgellm.runtime.text import decode_utf8

    info("[chat] one prompt per line; end with Ctrl-D")
    vocab = sess.config.vocab_size
    for n, line in enumerate(_stdin_lines(), 1):
        if not line.strip():
            continue
        what = f"stdin line {n}"
        try:
            ids = prompt_ids_for(codec, decode_utf8(line, what).rstrip("\r\n"), None, vocab, what)
            check_prompt(ids, sess.config.max_context, vocab)
        except EdgeLLMError as e:
            info(error_line(e))
            continue
        _generate_one(sess, codec, ids, params, stream, info, spec)


def sampling_params(temperature: float, top_k: int, top_p: float, repetition_penalty: float,
                    seed: int | None, max_new_tokens: int, stop_at_eos: bool) -> SamplingParams:
    """SamplingParams from the shared options (one-line errors naming the bad one)."""
    from edgellm.runtime.sampling import SamplingParams

    return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed,
                          max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos)


def _generate_one(sess: Any, codec: Any, ids: list[int], params: SamplingParams, stream: bool,
                  info: Any, spec: Any = None) -> None:
    """One generation on the session: streamed text on stdout, the stats line on stderr."""
    from edgellm.commands.generate import StreamPrinter, write_stdout
    from edgellm.runtime.generation import generate

    printer = StreamPrinter(codec, write_stdout)
    res = generate(sess, ids, params, on_token=printer if stream else None, speculate=spec)
    if not stream:
        for t in res.text_tokens:
            printer(t)
    printer.flush()
    write_stdout("\n")
    tps = res.decode_tokens_per_s
    st = sess.stats()
    info(f"[{sess.name}] prompt {len(ids)} tokens, generated {len(res.tokens)}, "
         f"TTFT {res.ttft_s * 1e3:.1f} ms, decode {'n/a' if tps is None else f'{tps:.2f}'} tok/s, "
         f"stop: {res.stop_reason}, "
         f"accelerator runs {st['starts']}, refills {st['refills']}")
    line = spec_line(res, spec, st)
    if line:
        info(line)


def _stdin_lines() -> Iterator[bytes]:
    """stdin line by line as bytes (decoded per line, so one bad line does not end the session)."""
    if sys.stdin is None:  # started with stdin closed
        return
    buf = getattr(sys.stdin, "buffer", None)
    if buf is not None:
        yield from buf
    else:  # a text-only stream (already decoded)
        for line in sys.stdin:
            yield line.encode("utf-8", "surrogateescape")


def register(app: typer.Typer) -> None:
    """Add `edgellm run`."""
    app.command("run")(run_cmd)
