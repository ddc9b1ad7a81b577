"""`edgellm generate`: stream text from a checkpoint on a CPU backend (golden, onnx or torch).

Also holds the helpers `eval` shares: checkpoint resolution and loading, the tokenizer adapter and
backend construction. Model code and torch/onnxruntime are imported inside functions only.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.model_names import PresetOpt, preset_model
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
from edgellm.commands.speculation import (
    DEFAULT_K_MAX,
    DraftLayersOpt,
    SpecKMaxOpt,
    SpecKMinOpt,
    SpeculateOpt,
    spec_config,
    spec_line,
)
from edgellm.errors import EdgeLLMError
from edgellm.models.shipped import resolve_model_path

if TYPE_CHECKING:
    from edgellm.models.weights import QuantModel
    from edgellm.runtime.generation import GenerationResult
    from edgellm.runtime.sampling import SamplingParams

BACKEND_NAMES = ("golden", "onnx", "torch")
# Modules whose absence means "this backend is not installed here", not a bug.
_OPTIONAL_MODULES = ("torch", "onnx", "onnxruntime", "edgellm.models.ort_runner", "edgellm.models.torch_ref")


def _loader() -> Callable[[Path], tuple[Any, Any]]:
    """edgellm.models.loaders.load_model (looked up at call time)."""
    loaders = importlib.import_module("edgellm.models.loaders")
    fn = getattr(loaders, "load_model", None)
    if fn is None:
        raise EdgeLLMError("checkpoint loading is not available: "
                           "edgellm.models.loaders.load_model is missing")
    return fn


def load_checkpoint(model: Path | None) -> tuple[QuantModel, Any]:
    """Resolve (a hub id to its cached snapshot: model_names.py) and load a checkpoint -> (QuantModel,
    tokenizer or None)."""
    from edgellm.commands.model_names import resolve_model_arg

    path = resolve_model_path(resolve_model_arg(model))
    qm, tok = _loader()(path)
    return qm, tok


class TextCodec:
    """Adapter over the loader's tokenizer (an edgellm tokenizer or a `tokenizers.Tokenizer`)."""

    def __init__(self, tok: Any, bos_id: int | None, eos_id: int | None) -> None:
        self.tok = tok
        self.bos_id = _special(tok, "bos", bos_id)
        self.eos_id = _special(tok, "eos", eos_id)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, without BOS (see prompt_ids); EdgeLLMError if text is not valid UTF-8."""
        from edgellm.runtime.text import check_utf8

        r = self.tok.encode(check_utf8(text, "prompt"))
        ids = [int(t) for t in getattr(r, "ids", r)]
        if ids and self.bos_id is not None and ids[0] == self.bos_id:
            ids = ids[1:]
        return ids

    def prompt_ids(self, text: str) -> list[int]:
        """Text -> ids with BOS prepended when the model has one."""
        ids = self.encode(text)
        return [self.bos_id, *ids] if self.bos_id is not None else ids

    def decode(self, ids: list[int]) -> str:
        """Ids -> text."""
        return str(self.tok.decode([int(t) for t in ids]))


def _special(tok: Any, kind: str, default: int | None) -> int | None:
    """The tokenizer's BOS/EOS id if it declares one (None = it has none), else the config's."""
    for attr in (f"{kind}_id", f"{kind}_token_id"):
        if hasattr(tok, attr):
            v = getattr(tok, attr)
            return None if v is None else int(v)
    return default


def model_specials(qm: QuantModel) -> tuple[int | None, int | None]:
    """(bos, eos) from the model config, None where out of the vocabulary."""
    c = qm.config
    def ok(t: int) -> int | None:
        return t if 0 <= t < c.vocab_size else None
    return ok(c.bos_id), ok(c.eos_id)


def parse_ids(text: str, what: str, vocab_size: int | None = None) -> list[int]:
    """'1, 2 3' -> [1, 2, 3]; EdgeLLMError naming `what` on anything else or an id out of range
    (runtime.text.parse_token_ids)."""
    from edgellm.runtime.text import parse_token_ids

    return parse_token_ids(text, what, vocab_size)


def build_backend(name: str, qm: QuantModel) -> Any:
    """A CPU backend by name; one-line error for unknown names and missing optional packages."""
    if name not in BACKEND_NAMES:
        raise EdgeLLMError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    from edgellm.models.backend import make_backend

    try:
        return make_backend(name, qm)
    except ModuleNotFoundError as e:
        if e.name in _OPTIONAL_MODULES:
            raise EdgeLLMError(f"backend {name!r} is not available here: "
                               f"module {e.name} is missing") from None
        raise


class StreamPrinter:
    """on_token callback: decodes the full id list and writes the new suffix of the text."""

    def __init__(self, codec: TextCodec | None, write: Callable[[str], None]) -> None:
        self.codec, self.write = codec, write
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, tok: int) -> None:
        self.ids.append(tok)
        if self.codec is None:
            self.write(f"{' ' if len(self.ids) > 1 else ''}{tok}")
            return
        self._emit(final=False)

    def _emit(self, final: bool) -> None:
        assert self.codec is not None
        text = self.codec.decode(self.ids)
        if not final and text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for more
            return
        n = 0
        while n < min(len(text), len(self.shown)) and text[n] == self.shown[n]:
            n += 1
        if text[n:]:
            self.write(text[n:])
        self.shown = text

    def flush(self) -> None:
        """Write whatever was held back."""
        if self.codec is not None and self.ids:
            self._emit(final=True)


def run_generation(qm: QuantModel, tokenizer: Any, prompt: str | None, prompt_ids: list[int] | None,
                   backend: str, params: SamplingParams, stream: bool = True,
                   write: Callable[[str], None] | None = None,
                   info: Callable[[str], None] | None = None, spec: Any = None) -> GenerationResult:
    """Tokenize, generate on the named backend, write the text (streamed or at the end) and a stats line."""
    import dataclasses

    from edgellm.runtime.generation import generate

    write = write or write_stdout
    info = info or (lambda s: typer.echo(s, err=True))
    bos, eos = model_specials(qm)
    codec = TextCodec(tokenizer, bos, eos) if tokenizer is not None else None
    if prompt_ids is not None:
        ids = list(prompt_ids)
    elif prompt is None:
        raise EdgeLLMError("no prompt: pass --prompt TEXT (or --prompt-ids)")
    elif not prompt.strip():
        raise EdgeLLMError("empty prompt")
    elif codec is None:
        raise EdgeLLMError("this model has no tokenizer; pass --prompt-ids instead of --prompt")
    else:
        ids = codec.prompt_ids(prompt)
    if params.eos_id is None:
        params = dataclasses.replace(params, eos_id=codec.eos_id if codec else eos)
    engine = build_backend(backend, qm)
    printer = StreamPrinter(codec, write)
    res = generate(engine, ids, params, on_token=printer if stream else None, speculate=spec)
    if stream:
        printer.flush()
    else:
        for t in res.text_tokens:
            printer(t)
        printer.flush()
    write("\n")
    tps = res.decode_tokens_per_s
    info(f"[{backend}] prompt {len(ids)} tokens, generated {len(res.tokens)}, "
         f"TTFT {res.ttft_s * 1e3:.1f} ms, decode {'n/a' if tps is None else f'{tps:.2f}'} tok/s, "
         f"stop: {res.stop_reason}")
    line = spec_line(res, spec)
    if line:
        info(line)
    return res


def write_stdout(s: str) -> None:
    """Streamed text to stdout, flushed; nothing when stdout is closed (`>&-`: sys.stdout is None), as
    print() and click.echo do (was an AttributeError, an internal error)."""
    out = sys.stdout
    if out is None:
        return
    out.write(s)
    out.flush()


ModelArg = Annotated[Path | None, typer.Argument(
    help="Checkpoint: Hugging Face BitNet dir, latent-weight dir or .gguf, or a hub id (owner/name) "
         "(default: the shipped tiny model).",
    show_default=False, metavar="MODEL")]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help="CPU backend: golden, onnx or torch.")]


def generate_cmd(
    model: ModelArg = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Prompt text.")] = None,
    prompt_ids: Annotated[str | None, typer.Option(
        "--prompt-ids", help="Prompt as token ids ('1,2,3'), for models without a tokenizer.")] = None,
    backend: BackendOpt = "golden",
    max_new_tokens: MaxNewTokensOpt = 64,
    temperature: TemperatureOpt = 0.0,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    repetition_penalty: RepetitionPenaltyOpt = 1.0,
    seed: SeedOpt = None,
    stop_at_eos: StopAtEosOpt = True,
    stream: StreamOpt = True,
    speculate: SpeculateOpt = "off",
    spec_k_max: SpecKMaxOpt = DEFAULT_K_MAX,
    spec_k_min: SpecKMinOpt = 0,
    draft_layers: DraftLayersOpt = None,
    preset: PresetOpt = None,
) -> None:
    """Generate text from MODEL on a CPU backend, streaming tokens; reports TTFT and tokens/s."""
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.runtime.text import check_utf8

    if prompt is not None:
        check_utf8(prompt, "--prompt")
    if prompt is not None and prompt_ids is not None:
        raise EdgeLLMError("pass either --prompt or --prompt-ids, not both")
    ids = parse_ids(prompt_ids, "--prompt-ids") if prompt_ids is not None else None
    if ids is not None and not ids:
        raise EdgeLLMError("empty prompt")
    if prompt is None and ids is None:
        raise EdgeLLMError("no prompt: pass --prompt TEXT (or --prompt-ids)")
    if prompt is not None and not prompt.strip():
        raise EdgeLLMError("empty prompt")
    if backend not in BACKEND_NAMES:
        raise EdgeLLMError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}")
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, seed=seed,
                            max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos)
    spec = spec_config(speculate, spec_k_max, spec_k_min, draft_layers)
    if preset is not None and model is not None:
        raise EdgeLLMError("give either MODEL or --preset, not both")
    if preset is not None and ids is None:
        raise EdgeLLMError(f"--preset {preset}: a random-weight model has no tokenizer; pass --prompt-ids")
    qm, tok = (preset_model(preset), None) if preset is not None else load_checkpoint(model)
    run_generation(qm, tok, prompt, ids, backend, params, stream=stream, spec=spec)


def register(app: typer.Typer) -> None:
    """Add `generate` to the edgellm app."""
    app.command("generate")(generate_cmd)
