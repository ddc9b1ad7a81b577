"""`edgellm run DIR --prompt ...`: generate on the accelerator (the board through pynq, or the emulator,
i.e. C simulation of the project's own HLS sources), streaming text; reports TTFT and tokens/s.

Also holds what `verify` shares: opening the project, choosing the device, the prompt codec.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.options import (
    MaxNewTokensOpt,
    RepetitionPenaltyOpt,
    SeedOpt,
    StopAtEosOpt,
    StreamOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
)
from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.project import Project

DirArg = Annotated[Path, typer.Argument(help="Compiled project directory (edgellm compile).",
                                        show_default=False)]
PromptOpt = Annotated[str | None, typer.Option("--prompt", "-p", help="Prompt text.")]
PromptIdsOpt = Annotated[str | None, typer.Option("--prompt-ids", help="Prompt as token ids ('1,2,3').")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (pynq on a board, else the emulator), "
                                                            "emu, emu-threads (threaded C simulation: "
                                                            "bounded FIFOs, deadlocks detected) or pynq.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for each accelerator run.")]


def device_for(p: Project, kind: str, info: Any) -> Any:
    """Open the device and say which one it is."""
    from edgellm.runtime.session import DEVICES, open_device

    if kind not in DEVICES:
        raise EdgeLLMError(f"unknown device {kind!r}; choose one of {', '.join(DEVICES)}")
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
    return TextCodec(load_tokenizer(tp), ok(c.bos_id), ok(c.eos_id))


def prompt_ids_for(codec: Any, prompt: str | None, prompt_ids: str | None, chat: bool = False) -> list[int]:
    """Token ids of --prompt / --prompt-ids (one-line errors)."""
    from edgellm.commands.generate import parse_ids

    if prompt is not None and prompt_ids is not None:
        raise EdgeLLMError("pass either --prompt or --prompt-ids, not both")
    if prompt_ids is not None:
        ids = parse_ids(prompt_ids, "--prompt-ids")
        if not ids:
            raise EdgeLLMError("empty prompt")
        return ids
    if prompt is None:
        raise EdgeLLMError("no prompt: pass --prompt TEXT (or --prompt-ids)")
    if not prompt.strip():
        raise EdgeLLMError("empty prompt")
    if codec is None:
        raise EdgeLLMError("this project has no tokenizer; pass --prompt-ids instead of --prompt")
    return codec.prompt_ids(prompt)


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
    no_verify_checksums: Annotated[bool, typer.Option(
        "--no-verify-checksums", help="Skip the sha256 checks of the project files.")] = False,
) -> None:
    """Generate text from a compiled project on the accelerator (board or emulator)."""
    from edgellm.commands.generate import StreamPrinter
    from edgellm.runtime.generation import generate
    from edgellm.runtime.project import Project
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.runtime.session import Session

    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, seed=seed,
                            max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos)
    info = lambda s: typer.echo(s, err=True)  # noqa: E731
    p = Project.open(project, verify=not no_verify_checksums)
    codec = codec_for(p)
    if not chat:
        ids = prompt_ids_for(codec, prompt, prompt_ids)
    if codec is not None and params.eos_id is None:
        params = dataclasses.replace(params, eos_id=codec.eos_id)
    sess = Session(p, device_for(p, device, info), timeout_s=timeout, context_policy=context_policy,
                   sink=sink, window=window)
    prompts = iter([ids]) if not chat else _chat_prompts(codec, info)
    for ids in prompts:
        printer = StreamPrinter(codec, _stdout)
        res = generate(sess, ids, params, on_token=printer if stream else None)
        if not stream:
            for t in res.text_tokens:
                printer(t)
        printer.flush()
        _stdout("\n")
        tps = res.decode_tokens_per_s
        st = sess.stats()
        info(f"[{sess.name}] prompt {len(ids)} tokens, generated {len(res.tokens)}, "
             f"TTFT {res.ttft_s * 1e3:.1f} ms, decode {'n/a' if tps is None else f'{tps:.2f}'} tok/s, "
             f"stop: {res.stop_reason}, "
             f"accelerator runs {st['starts']}, refills {st['refills']}")


def _chat_prompts(codec: Any, info: Any) -> Any:
    """Prompts read line by line from stdin (each a fresh generation)."""
    info("[chat] one prompt per line; end with Ctrl-D")
    for line in sys.stdin:
        if line.strip():
            yield prompt_ids_for(codec, line.rstrip("\n"), None)


def _stdout(s: str) -> None:
    sys.stdout.write(s)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `edgellm run`."""
    app.command("run")(run_cmd)
