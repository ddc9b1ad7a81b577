"""`edgellm eval`: teacher-forced perplexity of a text file, optionally compared across CPU backends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.generate import (
    BACKEND_NAMES,
    BackendOpt,
    ModelArg,
    TextCodec,
    build_backend,
    load_checkpoint,
    model_specials,
    parse_ids,
)
from edgellm.errors import EdgeLLMError

NBITS = "onnx-nbits"  # onnxruntime with the low-bit linears as com.microsoft MatMulNBits (eval only)
EVAL_BACKENDS = (*BACKEND_NAMES, NBITS)  # `onnx`: low-bit linears in the numerics contract's order

if TYPE_CHECKING:
    from edgellm.models.weights import QuantModel
    from edgellm.runtime.metrics import EvalReport


def read_text(path: Path) -> str:
    """The --text file as UTF-8 (runtime/text.py read_text_file: one-line errors)."""
    from edgellm.runtime.text import read_text_file

    return read_text_file(path, "--text file")


def parse_backends(compare: str | None, backend: str) -> list[str]:
    """--compare 'golden,onnx' (or --backend alone) -> validated backend names, no duplicates."""
    names = [n.strip() for n in compare.split(",") if n.strip()] if compare is not None else [backend]
    if not names:
        raise EdgeLLMError("--compare: give backend names separated by commas, e.g. golden,onnx")
    for n in names:
        if n not in EVAL_BACKENDS:
            raise EdgeLLMError(f"unknown backend {n!r}; choose one of {', '.join(EVAL_BACKENDS)}")
    if len(set(names)) != len(names):
        raise EdgeLLMError(f"--compare lists a backend twice: {','.join(names)}")
    return names


def eval_backend(name: str, qm: QuantModel) -> Any:
    """A backend by name: generate's (golden, onnx, torch) or onnx-nbits (the ecosystem's MatMulNBits graph
    of the low-bit linears; the same graph as onnx for a ternary model)."""
    if name != NBITS:
        return build_backend(name, qm)
    try:
        from edgellm.models.ort_runner import OrtBackend
    except ModuleNotFoundError as e:
        raise EdgeLLMError(f"backend {name!r} is not available here: module {e.name} is missing") from None
    return OrtBackend(qm, lowbit="nbits")


def text_token_ids(qm: QuantModel, tokenizer: Any, text: str, ids_file: bool) -> list[int]:
    """Token ids to score: the text tokenized with BOS prepended, or the ids written in the file."""
    if ids_file:
        return parse_ids(text, "--text (with --ids)", qm.config.vocab_size)
    if tokenizer is None:
        raise EdgeLLMError("this model has no tokenizer; pass --ids with a file of token ids")
    bos, eos = model_specials(qm)
    return TextCodec(tokenizer, bos, eos).prompt_ids(text)


def fmt_ppl(p: float) -> str:
    """Perplexity as shown in the table (scientific notation when huge)."""
    return f"{p:.4f}" if p < 1e6 else f"{p:.4e}"


def print_report(report: EvalReport, min_agreement: float) -> list[str]:
    """Rich table of the scores; returns the failure lines (agreement below min_agreement)."""
    from rich.console import Console
    from rich.table import Table

    ref = report.scores[0].name
    table = Table(title=f"teacher-forced eval: {report.n_tokens} tokens, {report.n_windows} window(s)")
    table.add_column("backend")
    table.add_column("perplexity", justify="right")
    table.add_column(f"top-1 agreement vs {ref}", justify="right")
    table.add_column(f"max |logit diff| vs {ref}", justify="right")
    table.add_column("seconds", justify="right")
    fails = []
    for i, s in enumerate(report.scores):
        agree = "(reference)" if i == 0 else f"{100 * s.agreement:.2f}%"
        diff = "-" if i == 0 else f"{s.max_abs_diff:.3g}"
        table.add_row(s.name, fmt_ppl(s.perplexity), agree, diff, f"{s.seconds:.2f}")
        if i > 0 and s.agreement < min_agreement:
            fails.append(f"top-1 agreement of {s.name} vs {ref} is {100 * s.agreement:.2f}% "
                         f"< {100 * min_agreement:.2f}%")
    Console(soft_wrap=True).print(table)
    return fails


def eval_cmd(
    model: ModelArg = None,
    text: Annotated[Path | None, typer.Option("--text", "-t", help="UTF-8 text file to score.",
                                              show_default=False)] = None,
    backend: BackendOpt = "golden",
    compare: Annotated[str | None, typer.Option(
        help="Comma-separated backends to compare (first = reference), e.g. golden,onnx,torch; onnx-nbits "
             "runs low-bit linears as onnxruntime's MatMulNBits.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Score at most N tokens (0 = all).")] = 0,
    window: Annotated[int, typer.Option(help="Tokens per prefill window (0 = the model's context).")] = 0,
    min_agreement: Annotated[float, typer.Option(
        help="With --compare: exit 1 if a backend's top-1 agreement with the first is below this.")] = 0.99,
    ids: Annotated[bool, typer.Option("--ids", help="--text holds token ids, not text.")] = False,
) -> None:
    """Teacher-forced perplexity of --text on MODEL; with --compare, a per-backend comparison table."""
    from edgellm.runtime.metrics import evaluate

    if text is None:
        raise EdgeLLMError("no text: pass --text FILE")
    names = parse_backends(compare, backend)
    if max_tokens < 0:
        raise EdgeLLMError(f"--max-tokens must be >= 0, got {max_tokens}")
    if window < 0 or window == 1:
        raise EdgeLLMError(f"--window must be 0 (the context) or at least 2, got {window}")
    if not 0.0 <= min_agreement <= 1.0:
        raise EdgeLLMError(f"--min-agreement must be in [0, 1], got {min_agreement}")
    body = read_text(text)
    qm, tok = load_checkpoint(model)
    context = qm.config.max_context
    if window > context:
        raise EdgeLLMError(f"--window {window} is longer than the model's context of {context} tokens")
    token_ids = text_token_ids(qm, tok, body, ids)
    if max_tokens:
        token_ids = token_ids[:max_tokens]
    engines = [eval_backend(n, qm) for n in names]
    from edgellm.commands.progress import Status

    with Status(f"scoring {len(token_ids)} tokens on {', '.join(names)}") as status:
        report = evaluate(engines, token_ids, window or context,
                          on_window=lambda done, total: status.update(done=done, total=total))
    fails = print_report(report, min_agreement)
    if compare is not None and fails:
        for f in fails:
            typer.echo(f"FAIL: {f}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `eval` to the edgellm app."""
    app.command("eval")(eval_cmd)
