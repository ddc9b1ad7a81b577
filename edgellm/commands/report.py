"""`edgellm report DIR`: one self-contained HTML page of a compiled project's design (inline SVG plots:
resources per kernel, rooflines, time per layer and stage, the explored designs, verify results).

Every speed, time and resource figure on it is projected (docs/performance.md). The page goes to
DIR/report/build/report.html by default: report/build is a build-output folder, which the project's
closed file set allows unlisted (runtime/project_files.py), so the project stays valid; -o puts it
anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgellm.commands.run import DirArg
from edgellm.errors import EdgeLLMError


def report_cmd(
    project: DirArg,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Page to write (default: DIR/report/build/report.html).")] = None,
    verify: Annotated[Path | None, typer.Option(
        "--verify", help="`edgellm verify --json` results to show (default: DIR/report/build/verify.json "
                         "when it exists).")] = None,
) -> None:
    """Write an HTML page with plots of a project's projected resources and speed (and verify results)."""
    from edgellm.commands.verify import check_output, write_atomic
    from edgellm.report.gather import PAGE_FILE, project_section
    from edgellm.report.page import page

    if out is not None:
        check_output(out, "--output")
    s = project_section(project, verify)
    target = out if out is not None else project / PAGE_FILE
    if out is None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EdgeLLMError(f"cannot create {target.parent}: {e.strerror or e}") from None
        check_output(target, "page")
    write_atomic(target, page([s], f"edgellm report: {s.cfg.name} on {s.board.name}"))
    typer.echo(f"report written to {target} (projected figures; open it in a browser)")


def register(app: typer.Typer) -> None:
    """Add `edgellm report`."""
    app.command("report")(report_cmd)
