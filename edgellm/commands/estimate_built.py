"""`edgellm estimate PROJECT_DIR [--check] [--json]`: a compiled project's design projected by this
edgellm and, once `edgellm build` has run, re-projected at the achieved clock with the achieved
utilisation against the board (compiler/reproject.py). A low-bit project is projected by the low-bit
engine's model (compiler/lowbit_estimate.py estimate_design: the table compile printed). Speeds are
projected, not measured."""

from __future__ import annotations

from pathlib import Path

import typer

from edgellm.commands.estimate import estimate_rows


def estimate_project(path: Path, as_json: bool, check: bool) -> None:
    """A project's design projected by this edgellm, and once built, at the achieved clock with the
    achieved utilisation (compiler/reproject.py); --check: exit 1 on a misfit, error without a build."""
    import json

    from edgellm.compiler.reproject import open_design, read_summary, reproject
    from edgellm.errors import EdgeLLMError

    d = open_design(path)
    cfg, b, p = d.cfg, d.board, d.params
    summary = read_summary(path)
    if summary is None and check:
        raise EdgeLLMError(f"{path}: no report/build/summary.json to check (run edgellm build {path})")
    rec = reproject(cfg, b, p, summary, d.limits, d.lowbit) if summary is not None else None
    if as_json:
        from edgellm.report.records import LABEL, _finite

        out = {"label": LABEL, "project": str(path), "model": cfg.to_dict(), "board": b.name,
               "design": p.to_dict(), **_projection(d), "built": rec}
        typer.echo(json.dumps(_finite(out), indent=1))
    else:
        _print(path, d, rec)
    if check and rec is not None and rec["misfits"]:
        typer.echo(f"misfit: the built design misses its plan ({'; '.join(rec['misfits'])})", err=True)
        raise typer.Exit(1)


def _projection(d) -> dict:  # d: ProjectDesign
    """--json's projection: "summary" (estimate's) for a ternary design; for a low-bit one "lowbit" (the
    low-bit estimate's record, as estimate MODEL --json's board entry) with its weights, mix and notes."""
    if d.lowbit is None:
        from edgellm.compiler.estimate import estimate

        return {"summary": estimate(d.cfg, d.board, d.params).summary()}
    from edgellm.compiler import lowbit_estimate as le

    e = le.estimate_design(d.lowbit, d.board, d.params)
    return {"weights": d.lowbit.weights, "mix": le.mix_text(d.lowbit.model),
            "notes": list(le.notes(d.lowbit)), "lowbit": e.record()}


def _print(path: Path, d, rec: dict | None) -> None:  # d: ProjectDesign
    """The projection table (estimate's rows, or the low-bit estimate's), then the built lines."""
    from rich.console import Console
    from rich.table import Table

    from edgellm.commands.tables import folded
    from edgellm.compiler.reproject import lines

    cfg, b, p = d.cfg, d.board, d.params
    if d.lowbit is None:
        from edgellm.compiler.estimate import estimate

        title, rows, notes = "projected by the performance model", estimate_rows(estimate(cfg, b, p), b), []
    else:
        from edgellm.compiler import lowbit_estimate as le

        e = le.estimate_design(d.lowbit, b, p)
        title, rows = "low-bit, projected by compiler/cost/lowbit.py", le.rows(d.lowbit, e, b)
        notes = [*(f"{b.name} {end}: {text}" for end, text in e.assumptions.items()),
                 *(f"note: {n}" for n in le.notes(d.lowbit))]
    table = Table(title=f"{cfg.name} as compiled in {path}: {title} (not measured)")
    table.add_column("")
    table.add_column(b.name, justify="right")
    for label, value in rows:
        table.add_row(label, value)
    Console().print(folded(table))
    for line in notes:
        typer.echo(line)
    if rec is None:  # plain lines (not wrapped to the terminal): one line per figure and per misfit
        typer.echo(f"not built: no report/build/summary.json (edgellm build {path} re-projects the "
                   "design at the clock it achieves)")
    else:
        typer.echo(f"built ({rec['label']}):")
        for line in lines(rec):
            typer.echo(f"  {line}")
