"""`edgellm estimate PROJECT_DIR [--check] [--json]`: a compiled project's design projected by this
edgellm and, once `edgellm build` has run, re-projected at the achieved clock with the achieved
utilisation against the board (compiler/reproject.py). Speeds are projected, not measured."""

from __future__ import annotations

from pathlib import Path

import typer

from edgellm.commands.estimate import estimate_rows


def estimate_project(path: Path, as_json: bool, check: bool) -> None:
    """A project's design projected by this edgellm, and once built, at the achieved clock with the
    achieved utilisation (compiler/reproject.py); --check: exit 1 on a misfit, error without a build."""
    import json

    from edgellm.compiler.estimate import estimate
    from edgellm.compiler.reproject import lines, project_design, read_summary, reproject
    from edgellm.errors import EdgeLLMError

    cfg, b, p, limits = project_design(path)
    summary = read_summary(path)
    if summary is None and check:
        raise EdgeLLMError(f"{path}: no report/build/summary.json to check (run edgellm build {path})")
    rec = reproject(cfg, b, p, summary, limits) if summary is not None else None
    if as_json:
        from edgellm.report.records import LABEL, _finite

        out = {"label": LABEL, "project": str(path), "model": cfg.to_dict(), "board": b.name,
               "design": p.to_dict(), "summary": estimate(cfg, b, p).summary(), "built": rec}
        typer.echo(json.dumps(_finite(out), indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        from edgellm.commands.tables import folded

        table = Table(title=f"{cfg.name} as compiled in {path}: projected by the performance model (not "
                            "measured)")
        table.add_column("")
        table.add_column(b.name, justify="right")
        for label, value in estimate_rows(estimate(cfg, b, p), b):
            table.add_row(label, value)
        console = Console()
        console.print(folded(table))
        if rec is None:  # plain lines (not wrapped to the terminal): one line per figure and per misfit
            typer.echo(f"not built: no report/build/summary.json (edgellm build {path} re-projects the "
                       "design at the clock it achieves)")
        else:
            typer.echo(f"built ({rec['label']}):")
            for line in lines(rec):
                typer.echo(f"  {line}")
    if check and rec is not None and rec["misfits"]:
        typer.echo(f"misfit: the built design misses its plan ({'; '.join(rec['misfits'])})", err=True)
        raise typer.Exit(1)
