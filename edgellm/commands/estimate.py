"""`edgellm estimate [MODEL] --board B|all [--preset NAME]`: DSE + projected speed and resources.
`edgellm estimate PROJECT_DIR [--check]`: a compiled project's design projected again, and once
`edgellm build` has run, at the clock it achieved, with its utilisation against the board
(compiler/reproject.py).

Every speed printed is projected by the performance model (docs/performance.md), not measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgellm.commands.design_opts import (
    AllowEmulatedOpt,
    ClockOpt,
    ContextOpt,
    LutCapOpt,
    MeasuredOpt,
    SetOpt,
    SpecObjectiveOpt,
    board_or_all_names,
)
from edgellm.commands.model_names import resolve_config


def _engine_split(detail: dict[str, float]) -> str:
    """Where a projected prefill's engine time goes: TLMM compute, element-wise stages, attention."""
    parts = (("TLMM", "compute"), ("element-wise", "elementwise"), ("attention", "attention"))
    return ", ".join(f"{label} {detail[k]:.2f} s" for label, k in parts if k in detail)


def _ranged(e, key: str, central: float, fmt: str, unit: str = "") -> str:  # e: Estimate
    """'central (low-high)' when the estimate carries the range, else the central figure."""
    r = e.ranges.get(key)
    return r.text(fmt, unit) if r else fmt.format(central) + unit


def _pct(used: float, have: int) -> str:
    return f"{used:,.0f} / {have:,} ({100 * used / have:.0f}%)" if have else f"{used:,.0f} / 0"


def estimate_rows(e, b) -> list[tuple[str, str]]:  # e: Estimate, b: Board
    """(label, value) rows of one estimate: resources vs board, projected speed, DDR limit and use."""
    t = e.resources["total"]
    p = e.params
    return [
        ("LUT", _pct(t.lut, b.lut)), ("FF", _pct(t.ff, b.ff)), ("DSP", _pct(t.dsp, b.dsp)),
        ("BRAM36", _pct(t.bram36, b.bram36)), ("URAM", _pct(t.uram, b.uram)),
        ("design", f"G={p.group_size} T={p.tables} R={p.rows} {p.clock_mhz:g} MHz "
                   f"{p.weight_ports}x{p.port_width_bits}b ports"
                   + (f" ({':'.join(map(str, p.port_shares))} shares)" if p.port_shares else "")),
        ("lanes", f"{p.token_lanes} token" + (f" ({p.dsp_lanes} on DSPs)" if p.dsp_lanes else "")
                  + f", {p.out_lanes} out, attention {p.attn_lanes}, element-wise {p.ew_vec}"
                  + (f" (GLU {p.glu_vec})" if p.glu_vec != p.ew_vec else "")
                  + (f", LM head {p.head_lanes} token" if p.lm_head_on_fabric
                     else ", LM head on the ARM cores")),
        ("prefill", f"{p.prefill_token_block}-token blocks, "
                    + (f"pipelined (TLMM and vector engines on two halves) from {p.pipe_min_tokens} tokens"
                       if p.prefill_pipeline else "engines one after another")),
        ("weight fetch FIFOs", f"{e.fetch_fifo_bytes / 1024:,.0f} KiB ({p.fetch_depth} words per port)"),
        ("weights", f"{e.bits_per_weight:.3f} bits/weight"),
        (f"decode tok/s (projected, {p.decode_context} ctx)",
         _ranged(e, "decode_tok_s", e.decode_tok_s, "{:.1f}")),
        ("TTFT 64 tokens (projected)", _ranged(e, "ttft_64_s", e.ttft[64].seconds, "{:.3f}", " s")),
        ("TTFT 128 tokens (projected)", _ranged(e, "ttft_128_s", e.ttft[128].seconds, "{:.3f}", " s")),
        ("  engine time in it" + (" (overlapped)" if p.prefill_pipeline else ""),
         _engine_split(e.ttft[128].detail)),
        *[(f"  {s.name} assumes", s.assumes.split(":")[0]) for s in e.assumptions.values()],
        *[(f"  at {mhz:g} MHz (central bandwidth)", f"{d:.1f} tok/s, TTFT 128 {t:.3f} s")
          for mhz, (d, t) in e.sensitivity.items()],
        ("DDR-bound tok/s", _ranged(e, "ddr_bound_tok_s", e.ddr_bound_tok_s, "{:.1f}")
         + f" = {e.ddr_achievable_gbps:.1f} GB/s / {e.bytes_per_token / 1e6:.0f} MB per token"),
        ("DDR use", f"{sum(e.ddr_footprint.values()) / 2**20:,.0f} / {e.ddr_available / 2**20:,.0f} MiB"),
    ]


class _Sig3(str):
    """A format string for three significant figures that keeps trailing zeros (1.00, 25.0, 610):
    '{:.3g}' printed 1.00 as '1'."""

    def format(self, x: float) -> str:  # type: ignore[override]
        return f"{x:#.3g}".rstrip(".") if abs(x) < 1000 else f"{x:,.0f}"


SIG3 = _Sig3("{:#.3g}")


def top_table(res, n: int):  # res: DseResult -> rich Table
    """The best `n` designs the search scored (those within the decode tie of the fastest, best first:
    TTFT, then LUTs, then decode; with --speculate: by projected speculative decode), the chosen one
    first."""
    from rich.table import Table

    from edgellm.compiler.dse import TTFT_TOKENS
    from edgellm.compiler.dse_points import design_label

    t = Table(title=f"The {n} best designs considered on {res.board.name if res.board else 'the board'} "
                    "(projected)")
    spec = [sp for sp, _, _ in res.spec] if res.speculate else []
    cols = ("#", *([f"{res.speculate} tok/s"] if spec else []), "decode tok/s", f"TTFT {TTFT_TOKENS} s",
            "design")
    for col in cols:
        t.add_column(col, justify="left" if col == "design" else "right", overflow="fold")
    for i, (dec, ttft, p) in enumerate(res.scored[:n], 1):
        chosen = " (chosen)" if p == res.params else ""
        t.add_row(str(i), *([f"{spec[i - 1]:.1f}"] if spec else []), f"{dec:.1f}", f"{ttft:.3f}",
                  design_label(p) + chosen)
    return t


def calibration_table():  # -> rich Table
    """The published designs against the model configured like them: fitted figures, then held-out."""
    from rich.table import Table

    from edgellm.compiler.cost.calibration import calibration

    cal = Table(title="Published designs vs the model configured like them (KV260; central (low-high))")
    for col in ("source", "figure", "status", "published", "projected", "error", "in range", "how"):
        cal.add_column(col, justify="left" if col in ("source", "figure", "status", "how") else "right")
    anchors = calibration()
    for status in ("fitted", "held-out"):
        for a in (a for a in anchors if a.status == status):
            fmt = "{:,.0f}" if a.published[1] >= 1000 else SIG3
            pub = fmt.format(a.published[0]) + ("" if a.published[0] == a.published[1]
                                                else "-" + fmt.format(a.published[1]))
            cal.add_row(a.source, a.figure, status, pub, a.projected.text(fmt), f"{a.error:+.1f}%",
                        "-" if a.projected.low == a.projected.high else "yes" if a.in_range else "no", a.note)
    return cal


def register(app: typer.Typer) -> None:
    """Add the `estimate` command to the app."""

    @app.command("estimate")
    def estimate_cmd(
        model: Annotated[Path | None, typer.Argument(help="Checkpoint dir or .gguf, or a hub id "
                                                          "(owner/name); its config only. Or a project "
                                                          "directory (edgellm compile's).")] = None,
        board: Annotated[str | None, typer.Option("--board", "-b", help="Board name or 'all' "
                                                  "(default kv260).",
                                                  autocompletion=board_or_all_names)] = None,
        preset: Annotated[str | None, typer.Option("--preset", help="A models.config.PRESETS name.")] = None,
        calibration: Annotated[bool, typer.Option("--calibration",
                                                  help="Also print the TeLLMe calibration table.")] = False,
        context: ContextOpt = None,
        clock: ClockOpt = None,
        lut_cap: LutCapOpt = None,
        sets: SetOpt = None,
        html_out: Annotated[Path | None, typer.Option(
            "--html", help="Also write an HTML page with plots (as edgellm report's) to this file.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
        top: Annotated[int, typer.Option("--top", min=0, help="Also list the N best designs the search "
                                         "scored (best first: TTFT, then LUTs).")] = 0,
        measured: MeasuredOpt = None,
        allow_emulated: AllowEmulatedOpt = False,
        weights: Annotated[str | None, typer.Option(
            "--weights", help="With a llama/qwen2 --preset: project it with llama.cpp's low-bit tensor types "
                              "(q4_0, q4_k_m, q2_k) on the low-bit engine.")] = None,
        lowbit_head: Annotated[bool, typer.Option(
            "--lowbit-head", help="With a low-bit model: project its LM head as the checkpoint's quantized "
                                  "tensor on the low-bit engine instead of the int8 per-row head (a "
                                  "projection only: compile builds the int8 head and refuses a low-bit "
                                  "one).")] = False,
        check: Annotated[bool, typer.Option(
            "--check", help="With a built PROJECT_DIR: exit 1 when the build misses its plan (clock below "
                            "it, a resource above the board or the routing limit).")] = False,
        speculate: SpecObjectiveOpt = "off",
    ) -> None:
        """Size the accelerator for a model on a board; print projected speed and resources."""
        from edgellm.commands.estimate_lowbit import lowbit_source
        from edgellm.errors import EdgeLLMError

        if model is not None and (model / "manifest.json").is_file():
            _refuse_given((("--board", board), ("--preset", preset), ("--context", context),
                           ("--clock", clock), ("--lut-cap", lut_cap), ("--set", sets), ("--html", html_out),
                           ("--measured", measured), ("--calibration", calibration), ("--top", top),
                           ("--speculate", speculate != "off"), ("--lowbit-head", lowbit_head)),
                          "does not apply to a project directory (its manifest fixes the model, board and "
                          "design)")
            from edgellm.commands.estimate_built import estimate_project

            estimate_project(model, as_json, check)
            return
        if model is not None and model.is_dir() and not (model / "config.json").exists():
            raise EdgeLLMError(f"{model} is neither a compiled project (no manifest.json) nor a checkpoint "
                               "(no config.json)")
        if check:
            raise EdgeLLMError("--check needs a project directory that edgellm build has run on")
        board = board or "kv260"
        src = lowbit_source(model, preset, weights, lowbit_head)
        if src is not None:
            _refuse_given((("--context", context), ("--set", sets), ("--html", html_out), ("--top", top),
                           ("--calibration", calibration), ("--speculate", speculate != "off")),
                          "does not apply to a low-bit model yet (its design is "
                          "compiler/cost/lowbit_search.py search's; --clock and --lut-cap steer it)")
            _estimate_lowbit(src, board, measured, allow_emulated, clock, lut_cap, as_json)
            return
        _estimate_ternary(model, preset, board, context, clock, lut_cap, sets, html_out, as_json, top,
                          measured, allow_emulated, calibration, speculate)


def _refuse_given(options: tuple[tuple[str, object], ...], why: str) -> None:
    """One error line for the first option given (a truthy value) that does not apply: `NAME why`."""
    from edgellm.errors import EdgeLLMError

    given = [name for name, v in options if v]
    if given:
        raise EdgeLLMError(f"{given[0]} {why}")


def _estimate_lowbit(src, board: str, measured: Path | None, allow_emulated: bool, clock: float | None,
                     lut_cap: float | None, as_json: bool) -> None:  # src: lowbit_estimate.LowbitSource
    """A low-bit model (GGUF, GPTQ, --preset with --weights): the low-bit engine's search per board."""
    from edgellm.boards import list_boards, load_board
    from edgellm.commands.estimate_lowbit import estimate_lowbit
    from edgellm.compiler.calibrate.measured import for_command

    names = list_boards() if board == "all" else [load_board(board).name]
    meas, clock = for_command(measured, allow_emulated, names, clock)
    head_row = None
    if meas and not src.model.lowbit_head:  # the int8 head, as lowbit_search designs it
        from edgellm.compiler.design import DesignParams

        head_row = print_head_row_note(meas, src.cfg, DesignParams())
    estimate_lowbit(src, names, meas, as_json, clock, {} if lut_cap is None else {"lut": lut_cap}, head_row)


def _estimate_ternary(model: Path | None, preset: str | None, board: str, context: int | None,
                      clock: float | None, lut_cap: float | None, sets: list[str] | None,
                      html_out: Path | None, as_json: bool, top: int, measured: Path | None,
                      allow_emulated: bool, calibration: bool, speculate: str) -> None:
    """A ternary model: the design search per board (with --set applied), then the HTML page, the JSON
    record or the tables."""
    from edgellm.boards import list_boards, load_board
    from edgellm.commands.design_opts import check_speculate, parse_sets
    from edgellm.compiler.calibrate.measured import for_command

    over = parse_sets(sets)
    check_speculate(speculate)
    cfg = resolve_config(model, preset)
    names = list_boards() if board == "all" else [load_board(board).name]
    meas, clock = for_command(measured, allow_emulated, names, clock)
    if html_out is not None:
        from edgellm.commands.verify import check_output

        check_output(html_out, "--html")
    limits = {} if lut_cap is None else {"lut": lut_cap}
    results = explore_boards(cfg, names, meas, context, clock, limits, over, speculate)
    head_rows = {n: print_head_row_note(meas, cfg, r.params) for n, r in results.items()
                 if meas and not isinstance(r, str)}
    if html_out is not None:
        from edgellm.report.records import write_estimate_page

        write_estimate_page(html_out, cfg, results, limits)
        typer.echo(f"page written to {html_out} (projected figures)", err=True)
    if as_json:
        import json

        from edgellm.report.records import estimate_record

        rec = estimate_record(cfg, results, calibration, top)
        for name, row in head_rows.items():  # --measured: the note's figures
            rec["boards"][name]["measured_head_row"] = row
        typer.echo(json.dumps(rec, indent=1))
        return
    print_estimates(cfg, results, meas, top, calibration)


def print_head_row_note(meas, cfg, p) -> dict:  # (Measured, ModelConfig, DesignParams)
    """--measured (estimate and compile): a `note:` on stderr when its head ratio was measured at other rows
    than the design's (compiler/calibrate/measured.py head_row_note); returns the record --json carries
    (head_row_info: the file's and the design's head rows, the note's text)."""
    from edgellm.compiler.calibrate.measured import head_row_info

    info = head_row_info(meas, cfg, p)
    if info["note"]:
        typer.echo(f"note: {info['note']}", err=True)
    return info


def explore_boards(cfg, names: list[str], meas, context: int | None, clock: float | None,
                   limits: dict[str, float], over: dict, speculate: str = "off") -> dict:
    """board -> DseResult (with the --set overrides applied), or why no design fits (a single board's
    failure is raised); a progress status per board (progress.py). speculate: the search's objective
    (dse.explore)."""
    from edgellm.boards import load_board
    from edgellm.commands.design_opts import apply_sets
    from edgellm.commands.progress import Status
    from edgellm.compiler.design import DesignParams
    from edgellm.compiler.dse import explore
    from edgellm.errors import EdgeLLMError

    results: dict = {}
    with Status("design search") as status:
        for i, name in enumerate(names):
            status.update(f"exploring designs for {name}", i, len(names))
            try:
                b = meas.apply(load_board(name)) if meas else load_board(name)
                res = explore(cfg, b, DesignParams(max_context=context or 0), limits, clock_mhz=clock,
                              speculate=speculate)
                results[name] = apply_sets(res, cfg, b, over)
            except EdgeLLMError as err:
                if len(names) == 1:
                    raise
                results[name] = str(err)
    return results


def objective_line(cfg, board, res) -> str:  # res: DseResult of a speculation objective
    """What --speculate ranked by, for the chosen design: plain and speculative figures (projected)."""
    from edgellm.compiler.cost import model as cost_model
    from edgellm.compiler.cost import speculative as cost_spec

    p, run = res.params, cost_spec.objective_run(res.speculate)
    plain = cost_model.decode_step(cfg, board, p).tokens_per_s
    spec = cost_spec.run_tokens_per_s(cfg, board, p, run)
    hid = cost_spec.run_tokens_per_s(cfg, board, p, run, hide_attention=True)
    return (f"design ranked by --speculate {res.speculate} (projected): {spec:.1f} tok/s effective decode "
            f"({spec / plain:.2f}x; {hid:.1f} tok/s, {hid / plain:.2f}x with the extra rows' attention "
            "hidden) "
            f"against {plain:.1f} tok/s plain, on the measured {res.speculate} run ({run['model']} model, "
            f"copy-heavy prompts, {100 * float(run['acceptance']):.0f}% acceptance, "
            f"{cost_spec.run_tokens_per_pass(run):.2f} tokens per pass); TLMM token lanes {p.token_lanes} "
            f"({p.dsp_lanes} on DSPs), LM head token lanes {cost_spec.head_lanes(cfg, p)}"
            + (f"; {note}" if (note := cost_spec.costs_note(cfg, board, p, run)) else ""))


def print_estimates(cfg, results: dict, meas, top: int, calibration: bool) -> None:
    """The table (a column per board), the boards without a design, each end's assumptions, the
    projected speculative speed-up, the calibration note, --top's and --calibration's tables."""
    from rich.console import Console
    from rich.table import Table

    from edgellm.boards import load_board
    from edgellm.commands.tables import folded
    from edgellm.compiler.calibrate.measured import note
    from edgellm.compiler.cost.speculative import speedup_lines

    def board_of(name: str):
        return meas.apply(load_board(name)) if meas else load_board(name)

    fits = {n: r for n, r in results.items() if not isinstance(r, str)}
    columns = {n: estimate_rows(r.estimate, board_of(n)) if n in fits else f"does not fit: {r}"
               for n, r in results.items()}
    table = Table(title=f"{cfg.name}: projected by the performance model (not measured)")
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    labels = next((c for c in columns.values() if isinstance(c, list)), [])
    for i, (label, _) in enumerate(labels):
        table.add_row(label, *(c[i][1] if isinstance(c, list) else "-" for c in columns.values()))
    console = Console()
    console.print(folded(table))
    for name, c in columns.items():
        if isinstance(c, str):
            console.print(f"{name}: {c}", markup=False)
    console.print("Figures are central (low-high); each end's assumptions: docs/performance.md "
                  "'Ranges'.", markup=False)
    for name, r in fits.items():
        for s in r.estimate.assumptions.values():
            console.print(f"{name} {s.name}: {s.assumes}", markup=False)
    for name, r in fits.items():
        if r.speculate:
            console.print(f"{name} {objective_line(cfg, board_of(name), r)}", markup=False)
        for spec_line in speedup_lines(cfg, board_of(name), r.params):
            console.print(f"{name} {spec_line}", markup=False)
    if meas:
        console.print(note(meas, load_board(meas.board)), markup=False)
    for r in fits.values():
        if top:
            console.print(folded(top_table(r, top)))
    if calibration:
        console.print(folded(calibration_table()), markup=False)

