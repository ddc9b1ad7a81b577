"""`edgellm estimate MODEL` for a low-bit model (a llama/qwen2 GGUF, a GPTQ directory, or `--preset NAME
--weights q4_0|q4_k_m|q2_k`): projected through the low-bit engine's cost model
(compiler/lowbit_estimate.py, compiler/cost/lowbit.py), not as if it were ternary; its LM head as built
(int8 per row) or, with --lowbit-head, as its quantized tensor on the low-bit engine (projection only)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgellm.commands.model_names import resolve_config


def lowbit_source(model: Path | None, preset: str | None, weights: str | None,
                  lowbit_head: bool = False):  # -> LowbitSource | None
    """The low-bit model to project (compiler/lowbit_estimate.py): a llama/qwen2 GGUF or a GPTQ directory,
    or a preset with --weights; None for a ternary model (estimated by the DSE as before). lowbit_head:
    its head on the low-bit engine (--lowbit-head; EdgeLLMError for a ternary model)."""
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.errors import EdgeLLMError

    src = None
    if weights is not None:
        if preset is None:
            raise EdgeLLMError("--weights applies to a --preset (a checkpoint's own tensor types are used)")
        src = le.from_preset(resolve_config(None, preset), weights)
    elif model is not None:
        from edgellm.commands.model_names import resolve_model_arg

        local = resolve_model_arg(model, ["config.json"])
        src = le.from_path(local) if local is not None else None
    if lowbit_head:
        if src is None:
            raise EdgeLLMError("--lowbit-head applies to a low-bit model (a llama/qwen2 GGUF, a GPTQ "
                               "directory or --preset NAME --weights TYPE)")
        src = le.with_lowbit_head(src)
    return src


def estimate_lowbit(src, names: list[str], meas, as_json: bool, clock: float | None = None,
                    limits: dict[str, float] | None = None,
                    head_row: dict | None = None) -> None:  # src: LowbitSource
    """Each board's low-bit design and projection at `clock` MHz (None: the board's PL clock) under the
    utilization `limits` (--lut-cap), the search honouring both: a table (or --json), every figure
    projected. head_row: --measured's LM head row record (measured.head_row_info), in each fitting
    board's JSON."""
    from edgellm.boards import load_board
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.errors import EdgeLLMError

    results: dict = {}
    for name in names:
        b = meas.apply(load_board(name)) if meas else load_board(name)
        try:
            results[name] = (b, le.estimate(src, b, clock, limits))
        except EdgeLLMError as err:
            if len(names) == 1:
                raise
            results[name] = (b, str(err))
    if as_json:
        import json

        from edgellm.report.records import LABEL, _finite

        out = {"label": LABEL, "model": src.cfg.to_dict(), "weights": src.weights,
               "mix": le.mix_text(src.model), "notes": list(le.notes(src)),
               "boards": {n: {"fits": False, "error": e} if isinstance(e, str)
                          else {"fits": True, **e.record(),
                                **({"measured_head_row": head_row} if head_row is not None else {})}
                          for n, (_, e) in results.items()}}
        typer.echo(json.dumps(_finite(out), indent=1))
        return
    print_table(src, results)


def print_table(src, results: dict) -> None:  # (LowbitSource, {board: (Board, LowbitEstimate | error)})
    """The projection table, each board's assumptions and the notes (estimate and compile print this)."""
    from rich.console import Console
    from rich.table import Table

    from edgellm.commands.tables import folded
    from edgellm.compiler import lowbit_estimate as le

    table = Table(title=f"{src.cfg.name} (low-bit): projected by compiler/cost/lowbit.py (not measured)")
    table.add_column("")
    cols = {n: le.rows(src, e, b) if not isinstance(e, str) else None for n, (b, e) in results.items()}
    for n in cols:
        table.add_column(n, justify="right")
    labels = next((c for c in cols.values() if c), [])
    for i, (label, _) in enumerate(labels):
        table.add_row(label, *(c[i][1] if c else "-" for c in cols.values()))
    console = Console()
    console.print(folded(table))
    for n, (_, e) in results.items():
        if isinstance(e, str):
            typer.echo(f"{n}: does not fit: {e}")
        else:
            for end, text in e.assumptions.items():
                typer.echo(f"{n} {end}: {text}")
    for note in le.notes(src):
        typer.echo(f"note: {note}")
