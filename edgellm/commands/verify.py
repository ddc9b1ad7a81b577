"""`edgellm verify DIR`: the verification ladder (device vs golden bit for bit per layer and stage,
onnxruntime vs golden within tolerance), as a table, JSON and HTML; exit 1 when a check fails."""

from __future__ import annotations

import contextlib
import html
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgellm.commands.run import (
    DeviceOpt,
    DirArg,
    PromptIdsOpt,
    TimeoutOpt,
    check_timeout,
    codec_for,
    device_for,
    open_project,
    prompt_ids_for,
)
from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.project import Project
    from edgellm.runtime.verify import Report

FAIL_EXIT = 1


def default_prompt(p: Project, codec: Any) -> list[int]:
    """reference/golden.json's prompt when the project has one, else a fixed text or id pattern."""
    from edgellm.runtime.verify import reference_prompt

    ids = reference_prompt(p.path, p.config.vocab_size)
    if ids:
        return ids
    if codec is not None:
        return codec.prompt_ids("Once upon a time")
    return [(7 * i + 3) % p.config.vocab_size for i in range(16)]


def _fmt(x: float | int | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _result(r: Any) -> str:
    """A row's verdict in one word: exact (bit for bit), pass (within tolerance) or FAIL."""
    if not r.ok:
        return "[red]FAIL[/red]"
    return "[green]exact[/green]" if r.exact else "[green]pass[/green]"


def pass_count(rep: Report) -> str:
    """'verify passed: 31/31 checks' or 'verify FAILED: 2 check(s) of 31'."""
    n, bad = len(rep.rows), sum(not r.ok for r in rep.rows)
    return f"verify passed: {n}/{n} checks" if not bad else f"verify FAILED: {bad} check(s) of {n}"


def print_table(rep: Report) -> None:
    """Compact tables that fit 80 columns: one per compared pair (its pass count in the title), a row
    per stage (max |err|, max ULP, exact/pass/FAIL, a note only where a pair has notes); the count."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgellm.commands.tables import folded

    con = Console()
    con.print(escape(f"edgellm verify {rep.project}: device = {rep.device}, "
                     f"{len(rep.prompt_ids)}-token prompt"))
    pairs: dict[str, list[Any]] = {}
    for r in rep.rows:
        pairs.setdefault(r.pair, []).append(r)
    for pair, rows in pairs.items():
        ok = sum(r.ok for r in rows)
        t = Table(title=escape(f"{pair}: {ok}/{len(rows)} pass"), box=box.SIMPLE_HEAD, title_justify="left",
                  pad_edge=False)
        notes = any(r.note for r in rows)
        for col, just in (("stage", "left"), ("max |err|", "right"), ("ULP", "right"), ("result", "left"),
                          *((("note", "left"),) if notes else ())):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for r in rows:
            t.add_row(escape(r.stage), _fmt(r.max_abs, ".3g"), _fmt(r.max_ulp, "d"), _result(r),
                      *((escape(r.note),) if notes else ()))
        con.print(folded(t))
    for k, v in rep.tokens.items():
        con.print(escape(f"greedy tokens [{k}]: {v}"))
    for n in rep.notes:
        con.print(f"[yellow]note:[/yellow] {escape(n)}")
    con.print(f"[{'green' if rep.ok else 'red'}]{escape(pass_count(rep))}[/]")


def html_report(rep: Report) -> str:
    """A self-contained HTML page of the report."""
    e = html.escape
    rows = "\n".join(
        f"<tr class={'ok' if r.ok else 'fail'}><td>{e(r.pair)}</td><td>{e(r.stage)}</td>"
        f"<td>{_fmt(r.max_abs, '.3g')}</td><td>{_fmt(r.max_ulp, 'd')}</td>"
        f"<td>{'-' if r.exact is None else ('yes' if r.exact else 'no')}</td>"
        f"<td>{'pass' if r.ok else 'FAIL'}</td><td>{e(r.note)}</td></tr>" for r in rep.rows)
    toks = "".join(f"<li>{e(k)}: {e(str(v))}</li>" for k, v in rep.tokens.items())
    notes = "".join(f"<li>{e(n)}</li>" for n in rep.notes)
    verdict = "passed" if rep.ok else "FAILED"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edgellm verify: {e(rep.project)}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:2px 8px}} tr.ok td:nth-child(6){{color:#080}} tr.fail td{{background:#fdd}}</style></head>
<body><h1>edgellm verify: {verdict}</h1>
<p>project {e(rep.project)}; device {e(rep.device)}; prompt ids {e(str(rep.prompt_ids))}</p>
<table><tr><th>pair</th><th>stage</th><th>max |err|</th><th>max ULP</th><th>exact</th><th>result</th>
<th>note</th></tr>
{rows}
</table><h2>greedy tokens</h2><ul>{toks}</ul><h2>notes</h2><ul>{notes}</ul></body></html>
"""


def check_output(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written as a regular file: a directory,
    a device or FIFO (never replaced), or a file in a folder that does not exist."""
    if path.is_dir():
        raise EdgeLLMError(f"{option} {path}: is a directory (give a file name)")
    if path.exists() and not path.is_file():
        raise EdgeLLMError(f"{option} {path}: exists and is not a regular file")
    parent = path.parent
    if not parent.is_dir():
        why = "does not exist" if not parent.exists() else "is not a directory"
        raise EdgeLLMError(f"{option} {path}: folder {parent} {why}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EdgeLLMError(f"{option} {path}: folder {parent} is not writable")


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a fresh temporary file beside it and a rename; on any failure the
    temporary file is removed and the error is one EdgeLLMError line (path keeps its old content)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise EdgeLLMError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def verify_cmd(
    project: DirArg,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Prompt text "
                                               "(default: the project's reference prompt).")] = None,
    prompt_ids: PromptIdsOpt = None,
    device: DeviceOpt = "auto",
    new_tokens: Annotated[int, typer.Option("--new-tokens", "-n", help="Greedy tokens compared after the "
                                                                      "prompt.")] = 8,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx",
                                       help="Also compare onnxruntime with golden.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report as HTML.")] = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Check device vs golden (bit for bit, every layer and stage) and onnxruntime vs golden."""
    from edgellm.runtime.verify import run_verify

    if new_tokens < 1:
        raise EdgeLLMError(f"--new-tokens must be >= 1, got {new_tokens}")
    check_timeout(timeout)
    for out, option in ((json_out, "--json"), (html_out, "--html")):
        if out is not None:
            check_output(out, option)
    p = open_project(project)
    codec = codec_for(p)
    if prompt is None and prompt_ids is None:
        ids = default_prompt(p, codec)
    else:
        ids = prompt_ids_for(codec, prompt, prompt_ids, p.config.vocab_size)
    dev = device_for(p, device, lambda s: typer.echo(s, err=True))
    from edgellm.commands.progress import Status

    what = f"verify: {dev.name} vs golden, every layer and stage" + (", then onnxruntime" if onnx else "")
    with Status(what) as status:
        rep = run_verify(p, dev, ids, new_tokens=new_tokens, onnx=onnx, timeout_s=timeout,
                         on_stage=lambda text, done, total: status.update(f"verify: {text}", done, total))
    print_table(rep)
    if json_out is not None:
        write_atomic(json_out, json.dumps(rep.to_dict(), indent=1))
    if html_out is not None:
        write_atomic(html_out, html_report(rep))
    if not rep.ok:
        raise typer.Exit(FAIL_EXIT)


def register(app: typer.Typer) -> None:
    """Add `edgellm verify`."""
    app.command("verify")(verify_cmd)
