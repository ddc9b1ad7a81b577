"""Friction a new user met (issue 20 #6): output that fits 80 columns, shell completion, `estimate --top`,
the calibration table's significant figures, verify's compact table, piped `generate`."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from edgellm import cli

runner = CliRunner()
EXE = shutil.which("edgellm") or "edgellm"


def _too_wide(text: str, width: int = 80) -> list[str]:
    """Lines longer than width, or cut with an ellipsis."""
    return [line for line in text.splitlines() if len(line) > width or "…" in line]


def _cells(table: str, label: str) -> list[str]:
    """The values of a row of a rich table whose first column is `label`: each cell's folded pieces
    joined (a row continues on lines whose first cell is empty)."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    start = next(i for i, r in enumerate(rows) if r[0] == label)
    end = next((i for i in range(start + 1, len(rows)) if rows[i][0]), len(rows))
    return ["".join(r[j] for r in rows[start:end]) for j in range(1, len(rows[start]))]


def _invoke80(args: list[str]):
    return runner.invoke(cli.app, args, env={"COLUMNS": "80"}, terminal_width=80)


@pytest.mark.parametrize("name", [c.replace("_", "-") for c in cli.COMMANDS])
def test_help_fits_80_columns_and_names_every_option_whole(name: str) -> None:
    """`compile --help` cut option names (`--reference-dec…`) in rich's boxed help at 80 columns."""
    res = _invoke80([name, "--help"])
    assert res.exit_code == 0, res.output
    assert not _too_wide(res.output), _too_wide(res.output)
    cmd = typer.main.get_command(cli.app).commands[name]  # type: ignore[attr-defined]
    for param in cmd.params:
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("--"):
                assert opt in res.output.split() or any(w.startswith(opt) for w in res.output.split()), opt


def test_boards_and_estimate_tables_fit_80_columns() -> None:
    """`boards` cut part numbers and estimate's cells were cut with an ellipsis at 80 columns."""
    res = _invoke80(["boards"])
    assert res.exit_code == 0 and not _too_wide(res.output), _too_wide(res.output)
    from edgellm.boards import load_all

    boards = load_all()
    assert _cells(res.output, "part") == [b.part for b in boards]  # folded, not cut
    assert _cells(res.output, "board part") == [b.board_part for b in boards]
    res = _invoke80(["estimate", "--board", "all", "--calibration", "--top", "2"])
    assert res.exit_code == 0, res.output
    assert not _too_wide(res.output), _too_wide(res.output)


def test_calibration_figures_keep_three_significant_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """`estimate --calibration` printed `1` for a projected 1.00 ('{:.3g}')."""
    from rich.console import Console

    from edgellm.commands import estimate as est
    from edgellm.compiler.cost import calibration as cal
    from edgellm.compiler.estimate import Range

    assert [est.SIG3.format(x) for x in (1.0, 25.0, 610.0, 0.45, 12.0, 98.5, 98303.0)] == \
        ["1.00", "25.0", "610", "0.450", "12.0", "98.5", "98,303"]
    anchor = cal.Anchor("paper", "TTFT 128 tokens (s)", (1.0, 1.0), Range(1.0, 1.0, 1.25), "held-out", "n")
    monkeypatch.setattr(cal, "calibration", lambda: [anchor])
    out = io.StringIO()
    Console(file=out, width=200).print(est.calibration_table())
    row = next(line for line in out.getvalue().splitlines() if "paper" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[3:6] == ["1.00", "1.00 (1.00-1.25)", "+0.0%"], cells


def test_estimate_top_lists_the_best_designs_the_search_scored() -> None:
    from edgellm.boards import load_board
    from edgellm.commands.model_names import resolve_config
    from edgellm.compiler.dse import explore

    res = runner.invoke(cli.app, ["estimate", "--top", "3"], env={"COLUMNS": "200"}, terminal_width=200)
    assert res.exit_code == 0, res.output
    r = explore(resolve_config(None, None), load_board("kv260"))
    lines = res.output.splitlines()
    title = next(i for i, line in enumerate(lines) if "3 best designs considered on kv260" in line)
    rows = [line for line in lines[title:] if line.startswith("│")][:3]
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert [c[0] for c in cells] == ["1", "2", "3"]
    assert cells[0][3].endswith("(chosen)") and not any(c[3].endswith("(chosen)") for c in cells[1:])
    assert [float(c[2]) for c in cells] == [round(t, 3) for _, t, _ in r.scored[:3]]
    assert float(cells[0][1]) == round(r.estimate.decode_tok_s, 1)
    js = runner.invoke(cli.app, ["estimate", "--top", "3", "--json"])
    assert js.exit_code == 0, js.output
    top = json.loads(js.stdout)["boards"]["kv260"]["top"]
    assert [(t["decode_tok_s"], t["ttft_s"], t["chosen"]) for t in top] == \
        [(d, t, p == r.params) for d, t, p in r.scored[:3]] and top[0]["design"] == r.params.to_dict()
    res = runner.invoke(cli.app, ["estimate"])
    assert res.exit_code == 0 and "best designs considered" not in res.output
    assert "top" not in json.loads(runner.invoke(cli.app, ["estimate", "--json"]).stdout)["boards"]["kv260"]
    bad = runner.invoke(cli.app, ["estimate", "--top", "-1"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")


def test_shell_completion_is_offered() -> None:
    """typer's completion: --show-completion prints a script for the shell it runs under (typer detects it
    from the process tree, so the command runs under bash: a test run with no shell among its parents, e.g.
    a detached job, would otherwise see none); the completion protocol completes names."""
    cmd = f"{shlex.quote(EXE)} --show-completion; exit $?"  # two commands: bash stays its parent (no exec)
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "_edgellm_completion" in p.stdout, p.stderr
    env = {**os.environ, "_EDGELLM_COMPLETE": "complete_bash", "COMP_WORDS": "edgellm compile --bo",
           "COMP_CWORD": "2"}
    p = subprocess.run([EXE], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0 and p.stdout.split() == ["--board"], (p.stdout, p.stderr)
    for words, want in (("edgellm compile --board u", ["ultra96v2"]), ("edgellm estimate --board a", ["all"]),
                        ("edgellm compile --board ", ["kv260", "pynq_z2", "ultra96v2", "zcu104"])):
        env = {**env, "COMP_WORDS": words, "COMP_CWORD": "3"}  # the word after --board
        p = subprocess.run([EXE], capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0 and sorted(p.stdout.split()) == want, (words, p.stdout, p.stderr)


def _report(fail: bool):  # -> runtime.verify.Report
    from edgellm.runtime.verify import Report, Row

    rows = [Row("image vs source", "weights.bin decoded", exact=True, note="identical")]
    rows += [Row("device vs golden", f"L{i}.{s}", 0.0, 0, True, True)
             for i in range(3) for s in ("attn_norm_q", "q_rope", "h_attn", "ffn_out")]
    rows.append(Row("device vs golden", "greedy 8 tokens", 0.0, 0, True, True, "token agreement 8/8"))
    rows.append(Row("onnx vs golden", "logits", 3.81e-06, 3, False, True, "tol 5.25e-02"))
    rows.append(Row("onnx vs golden", "greedy 8 tokens", exact=not fail, ok=not fail,
                    note=f"token agreement {7 if fail else 8}/8"))
    return Report("edgellm-out/tiny-kv260", "emulator (C simulation)", list(range(16)), rows,
                  {"device": [1, 2, 3]}, [])


@pytest.mark.parametrize("fail", [False, True])
def test_verify_table_is_compact_with_a_pass_count(fail: bool, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's seven-column table wrapped every row at 80 columns."""
    from edgellm.commands.verify import print_table

    monkeypatch.setenv("COLUMNS", "80")
    rep = _report(fail)
    print_table(rep)
    out = capsys.readouterr().out
    assert not _too_wide(out), _too_wide(out)
    lines = out.splitlines()
    for r in rep.rows:  # every check on one line of its own: stage, figures and verdict together
        err = "-" if r.max_abs is None else format(r.max_abs, ".3g")
        hits = [line for line in lines if f" {r.stage} " in line and r.note in line and f" {err} " in line]
        assert len(hits) == 1, (r.stage, hits)
        assert ("FAIL" if not r.ok else "exact" if r.exact else "pass") in hits[0]
    assert "device vs golden: 13/13 pass" in out
    n = len(rep.rows)
    assert lines[-1] == (f"verify FAILED: 1 check(s) of {n}" if fail else f"verify passed: {n}/{n} checks")


def test_piped_generate_keeps_text_and_stats_apart(tmp_path) -> None:
    """Piped, the text ends its own line on stdout; the stats line goes to stderr, never glued to it."""
    p = subprocess.run([EXE, "generate", "-p", "Once upon a time", "-n", "6"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("\n") and p.stdout.count("\n") == 1 and "tok/s" not in p.stdout
    assert p.stderr.strip().splitlines()[-1].startswith("[golden] prompt ")
    with open(tmp_path / "both.txt", "w") as f:  # `edgellm generate ... > file 2>&1`
        subprocess.run([EXE, "generate", "-p", "Once upon a time", "-n", "6"], stdout=f, stderr=f,
                       timeout=120, check=True)
    both = (tmp_path / "both.txt").read_text().splitlines()
    assert both[-1].startswith("[golden] prompt ") and both[0] == p.stdout.rstrip("\n")
