"""`edgellm calibrate-draft DIR`: choose self-speculation's draft layers for a compiled project and store
them in DIR/speculation.json (runtime/drafters.py calibrate_draft_layers, save_draft_calibration).

The calibration runs greedy self-speculation for every candidate layer subset on the golden model rebuilt
from the project's weights.bin (bit-exact with the accelerator, so the acceptance it measures is the
device's), over prompts tokenized with the project's tokenizer: --prompts FILE (UTF-8, prompts separated
by blank lines) or, by default, paragraphs of the shipped tiny model's held-out text (eval_slice.txt,
public-domain prose). Draft and verify costs are projected for the project's design and board
(compiler/cost/speculative.py head_share, row_cost), or the defaults when the compiler cannot price it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.run import DirArg, codec_for, open_project
from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.project import Project

N_NEW_MAX = 256  # and at least k + 2: the first token comes from the prefill, a full draft needs k + 1 more
K_RANGE = (1, 8)
MAX_PROMPTS_RANGE = (1, 64)
MAX_PROMPT_TOKENS = 32  # each prompt's first tokens (BOS included): the draft is judged on the continuation
DEFAULT_TEXT = "eval_slice.txt"  # in the shipped tiny model's directory: one paragraph a line


def check_range(option: str, value: int, lo: int, hi: int, why: str = "") -> None:
    """One-line error naming the option and its range."""
    if not lo <= value <= hi:
        raise EdgeLLMError(f"{option} must be in {lo}..{hi}{why}, got {value}")


def check_n_new(n_new: int, k: int, ctx: int | None = None) -> None:
    """--n-new: k + 2 .. N_NEW_MAX (each candidate drafts k tokens at least once), and within a KV cache
    of ctx positions (a prompt of 2 tokens, the new tokens and the last verify pass's drafts)."""
    hi = N_NEW_MAX if ctx is None else min(N_NEW_MAX, ctx - k - 3)
    if hi < k + 2:
        raise EdgeLLMError(f"this project's KV cache of {ctx} positions has no room to calibrate at --k {k}")
    where = f" at --k {k}" + ("" if ctx is None else f" and a KV cache of {ctx} positions")
    check_range("--n-new", n_new, k + 2, hi, where)


def read_prompts(path: Path) -> list[str]:
    """--prompts FILE: UTF-8 text, prompts separated by blank lines (one-line errors: missing, not a
    regular file, not UTF-8, no prompt)."""
    from edgellm.runtime.text import read_text_file

    text = read_text_file(path, "--prompts")
    prompts = [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n"))]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise EdgeLLMError(f"--prompts {path}: holds no prompt (prompts are separated by blank lines)")
    return prompts


def default_prompts() -> tuple[list[str], str]:
    """The shipped calibration text's paragraphs and where they come from."""
    from edgellm.models.shipped import tiny_model_dir

    f = tiny_model_dir() / DEFAULT_TEXT
    try:
        paras = [p.strip() for p in f.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError):
        raise EdgeLLMError(f"the default calibration text {f} is missing from this install; pass "
                           "--prompts FILE") from None
    return [p for p in paras if p], f"the shipped tiny model's {DEFAULT_TEXT} (held-out Austen prose)"


def prompt_ids(codec: Any, texts: list[str], limit: int) -> list[list[int]]:
    """Each text tokenized (BOS first when the model has one), cut to its first `limit` tokens."""
    if codec is None:
        raise EdgeLLMError("this project has no tokenizer: calibrate-draft tokenizes its prompts with it")
    return [codec.prompt_ids(t)[:limit] for t in texts]


def golden_backend(p: Project) -> Any:
    """The golden model of the project's weights.bin (runtime/verify.py model_from_image: what the
    device computes with), at the project's numerics."""
    from edgellm.models.backend import GoldenBackend
    from edgellm.runtime.verify import model_from_image

    try:
        qm = model_from_image(p)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as e:
        why = " ".join(str(e).split())[:200]
        raise EdgeLLMError(f"{p.weights_path}: the golden model cannot be rebuilt from it "
                           f"({type(e).__name__}: {why})") from None
    return GoldenBackend(qm, p.numerics)


def projected_costs(p: Project, k: int) -> tuple[float, float, str | None]:
    """(head_share, row_cost, None) projected for the project's design and board by the compiler's cost
    model; (the defaults, why) when it cannot price them."""
    from edgellm.commands.speculation import project_design
    from edgellm.runtime.drafters import DEFAULT_HEAD_SHARE, DEFAULT_ROW_COST

    try:
        from edgellm.compiler.cost.speculative import head_share, row_cost

        cfg, board, design = project_design(p)
        hs, rc = head_share(cfg, board, design), row_cost(cfg, board, design, k)
    except (ImportError, KeyError, TypeError, ValueError, ZeroDivisionError, EdgeLLMError) as e:
        return DEFAULT_HEAD_SHARE, DEFAULT_ROW_COST, " ".join(str(e).split())[:160] or type(e).__name__
    if not (0.0 <= hs <= 1.0 and rc >= 0.0):
        return DEFAULT_HEAD_SHARE, DEFAULT_ROW_COST, f"out-of-range projection (head {hs}, row {rc})"
    return hs, rc, None


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
    """SIGINT held back (then raised as KeyboardInterrupt) while the block runs, so Ctrl-C cannot fall
    between writing speculation.json and the manifest that lists it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: list[int] = []
    old = signal.signal(signal.SIGINT, lambda sig, frame: hit.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hit:
        raise KeyboardInterrupt


def _layers(layers: list[int]) -> str:
    return ",".join(str(i) for i in layers)


def print_result(rec: dict[str, Any], n_layers: int) -> None:
    """The candidates' figures (a short table) and the chosen subset."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from edgellm.commands.tables import folded

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
              title=f"candidates (k = {rec['k']} drafts per verify pass)")
    for col, just in (("draft layers", "left"), ("acceptance", "right"), ("projected speed-up", "right"),
                      ("", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rec["candidates"]:
        chosen = r["draft_layers"] == rec["draft_layers"]
        t.add_row(_layers(r["draft_layers"]), f"{100 * r['acceptance']:.1f}%", f"{r['speedup']:.2f}x",
                  "chosen" if chosen else "")
    con = Console(soft_wrap=True)
    con.print(folded(t))
    typer.echo(f"draft layers {_layers(rec['draft_layers'])} of {n_layers}: acceptance "
               f"{100 * rec['acceptance']:.1f}%, projected decode speed-up {rec['speedup']:.2f}x at k = "
               f"{rec['k']} (plain decode 1.00x; greedy output is identical either way)")
    if rec["speedup"] < 1.0:
        typer.echo(f"note: even the best subset projects slower than plain decode at k = {rec['k']} on this "
                   "design (acceptance too low for the draft's cost)")


def calibrate_draft_cmd(
    project: DirArg,
    prompts: Annotated[Path | None, typer.Option(
        "--prompts", help="UTF-8 text, prompts separated by blank lines (default: paragraphs of the "
                          "shipped tiny model's held-out text, public-domain prose).")] = None,
    n_new: Annotated[int, typer.Option("--n-new", help=f"Greedy tokens generated per prompt and "
                                       f"candidate, from k + 2 to {N_NEW_MAX}.")] = 32,
    k: Annotated[int, typer.Option("--k", help=f"Drafted tokens per verify pass, "
                                   f"{K_RANGE[0]}..{K_RANGE[1]}.")] = 3,
    max_prompts: Annotated[int, typer.Option("--max-prompts", help=f"Prompts used (the first M), "
                                             f"{MAX_PROMPTS_RANGE[0]}..{MAX_PROMPTS_RANGE[1]}.")] = 4,
) -> None:
    """Calibrate self-speculation's draft layers on the golden model; store them in speculation.json."""
    from edgellm.runtime.drafters import DRAFT_FILE, calibrate_draft_layers, save_draft_calibration

    check_range("--k", k, *K_RANGE)
    check_n_new(n_new, k)
    check_range("--max-prompts", max_prompts, *MAX_PROMPTS_RANGE)
    texts, source = (read_prompts(prompts), str(prompts)) if prompts is not None else default_prompts()
    p = open_project(project)
    n_layers = p.config.n_layers
    if n_layers < 2:
        raise EdgeLLMError(f"the model has {n_layers} layer: self-speculation drafts with a proper subset of "
                           "its layers, which needs at least 2")
    if k + 1 > p.iface.max_t:  # a verify pass of k drafts feeds k + 1 tokens in one accelerator call
        raise EdgeLLMError(f"--k {k}: this project's accelerator takes at most {p.iface.max_t} tokens a "
                           f"call, so a verify pass drafts at most {p.iface.max_t - 1}")
    ctx = min(p.config.max_context, p.iface.max_ctx)
    check_n_new(n_new, k, ctx)
    if not os.access(p.path, os.W_OK | os.X_OK):
        raise EdgeLLMError(f"{p.path}: the project directory is not writable: cannot store {DRAFT_FILE}")
    limit = min(MAX_PROMPT_TOKENS, ctx - n_new - k - 1)
    ids = prompt_ids(codec_for(p), texts[:max_prompts], limit)
    backend = golden_backend(p)
    head_share, row_cost, why = projected_costs(p, k)
    board = p.manifest.get("board", {}).get("name", "?")
    typer.echo(f"calibrating the draft layers of {p.path} on the golden model of its weights.bin "
               f"(bit-exact with the accelerator): {len(ids)} prompt(s) from {source}, at most {limit} "
               f"tokens each, {n_new} new tokens, k = {k}")
    if why is None:
        typer.echo(f"costs projected for the project's design on {board}: LM head {100 * head_share:.1f}% of "
                   f"a decode step, verify row {row_cost:.3f} decode steps")
    else:
        typer.echo(f"note: the compiler cannot price this project's design ({why}); default costs, not "
                   f"projected: LM head {100 * head_share:.1f}% of a decode step, verify row {row_cost:.3f}")
    from edgellm.commands.progress import Status

    with Status("calibrating draft layers") as status:
        rec = calibrate_draft_layers(
            backend, ids, n_new=n_new, k=k, head_share=head_share, row_cost=row_cost,
            on_candidate=lambda done, total, layers: status.update(
                f"calibrating draft layers: {_layers(list(layers))}", done, total))
    rec.update(model="golden model of weights.bin", prompt_source=source, max_prompt_tokens=limit,
               costs="projected" if why is None else "defaults", board=board)
    print_result(rec, n_layers)
    with interrupt_deferred():
        dest = save_draft_calibration(p.path, rec)
    typer.echo(f"written {dest} (listed in manifest.json with its sha256); `edgellm run {p.path} "
               "--speculate self` drafts with these layers")


def register(app: typer.Typer) -> None:
    """Add `edgellm calibrate-draft`."""
    app.command("calibrate-draft")(calibrate_draft_cmd)
