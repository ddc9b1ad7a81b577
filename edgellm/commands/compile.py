"""`edgellm compile [MODEL|--preset NAME] [--board kv260] [-o DIR] [--force] [design options]`: write a
buildable project. MODEL may be a hub id (model_names.py); the design options are estimate's
(design_opts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgellm.commands.design_opts import (
    AllowEmulatedOpt,
    BoardOpt,
    ClockOpt,
    ContextOpt,
    LutCapOpt,
    MeasuredOpt,
    SetOpt,
    SpecObjectiveOpt,
)
from edgellm.commands.model_names import PresetOpt


def _head_row_note(ctx) -> None:  # ctx: BuildContext
    """--measured: estimate's note when the file's LM head ratio was measured at other rows than the built
    design's head rows."""
    if ctx.config.measured is None:
        return
    from edgellm.commands.estimate import print_head_row_note
    from edgellm.compiler.calibrate.measured import Measured

    meas = Measured.from_config(ctx.config.measured)
    print_head_row_note(meas, ctx.state["qm"].config, ctx.state["design"])


def _summary(ctx) -> None:  # ctx: BuildContext
    """Resources vs the board, projected speed beside the DDR bound, DDR use."""
    from rich.console import Console
    from rich.table import Table

    _head_row_note(ctx)
    if ctx.state.get("lowbit"):  # a low-bit design: the projection edgellm estimate prints for the model
        from edgellm.commands.estimate_lowbit import print_table

        board, plan = ctx.state["board"], ctx.state["plan"]
        print_table(ctx.state["lowbit_source"], {board.name: (board, ctx.state["lowbit_estimate"])})
        Console().print(f"DDR buffer (weights + KV + work): {plan.total_bytes / 2**20:,.1f} MiB of "
                        f"{board.ddr_available_bytes / 2**20:,.0f} MiB available to the PL", markup=False)
        Console().print(f"project written to [bold]{ctx.work}[/bold]; next: edgellm csim {ctx.work}")
        return
    est = ctx.state["dse"].estimate
    s = est.summary()
    board = ctx.state["board"]
    plan = ctx.state["plan"]
    con = Console()
    t = Table(title=f"{ctx.state['qm'].config.name} on {board.display_name}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k in ("lut", "ff", "dsp", "bram36", "uram"):
        have = board.resource(k)
        t.add_row(k.upper(), f"{s[k]:,.0f} / {have:,} ({100 * s[k] / have:.0f}%)" if have else f"{s[k]:,.0f}")
    t.add_row("decode tok/s (projected)", f"{s['projected_decode_tok_s']:.1f}")
    t.add_row("DDR-bandwidth bound tok/s", f"{s['ddr_bound_tok_s']:.1f}")
    for n in (64, 128):
        key = f"projected_ttft_{n}_s"
        if key in s:
            t.add_row(f"TTFT {n} tokens (projected)", f"{s[key]:.3f} s")
    t.add_row("ternary bits/weight streamed", f"{8 * plan.weight_bytes / plan.ternary_weights:.3f}")
    t.add_row("DDR buffer (weights + KV + work)", f"{plan.total_bytes / 2**20:,.1f} MiB")
    t.add_row("DDR available to the PL", f"{board.ddr_available_bytes / 2**20:,.0f} MiB")
    from edgellm.commands.tables import folded

    con.print(folded(t))
    if "measured" in board.sources:
        con.print(f"central bandwidth: {board.sources['measured']}", markup=False)
    con.print(f"project written to [bold]{ctx.work}[/bold]; next: edgellm csim {ctx.work}")


def _check_preset_fits(preset: str, board: str, meas, overrides: dict) -> None:  # meas: Measured | None
    """The preset's ternary model fits the board's DDR (compiler/early_fit.py), checked on its config before
    its random weights are generated and loaded; a cached checkpoint is checked again in step_load."""
    from edgellm.boards import load_board
    from edgellm.commands.model_names import preset_saved_config
    from edgellm.compiler.early_fit import check_fits_early

    b = load_board(board)
    check_fits_early(preset_saved_config(preset), meas.apply(b) if meas else b, overrides)


def _run(cfg, con) -> object:  # (BuildConfig, Console) -> BuildContext
    """run_steps with progress: a status line with a bar over the steps on a terminal (progress.py);
    resume notes as lasting lines."""
    from edgellm.commands.progress import Status
    from edgellm.compiler.pipeline import run_steps
    from edgellm.compiler.steps import compile_steps

    steps = compile_steps()
    names = [s.name for s in steps]
    with Status("compile") as status:
        def say(text: str) -> None:  # above the status on a terminal, else a plain line on stderr
            if status.on:
                status.note(text)
            else:
                con.print(text, markup=False)

        def progress(step: str, what: str) -> None:
            i = names.index(step) if step in names else 0
            if what == "resumed":
                say(f"resuming past {step}")
            elif what.startswith("stale"):
                say(f"rerunning from {step} ({what.partition(': ')[2]})")
            elif what == "start":
                status.update(f"step {step}", i, len(names))
            elif what == "done":
                status.update(done=i + 1)

        return run_steps(cfg, steps, progress)


def compile_cmd(
    model: Annotated[Path | None, typer.Argument(help="Checkpoint (HF BitNet dir, latent dir, .gguf) or a "
                                                      "Hugging Face hub id (owner/name); default: the "
                                                      "shipped tiny model")] = None,
    board: BoardOpt = "kv260",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Project directory")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing project")] = False,
    preset: PresetOpt = None,
    context: ContextOpt = None,
    clock: ClockOpt = None,
    lut_cap: LutCapOpt = None,
    sets: SetOpt = None,
    reference_decode: Annotated[int, typer.Option(
        "--reference-decode", min=0, help="Greedy decode steps in the reference run (after a 16-token "
                                          "prefill) that `edgellm csim` replays")] = 16,
    onnx_reference: Annotated[bool, typer.Option(
        "--onnx-reference/--no-onnx-reference", help="Export reference/model.onnx")] = True,
    measured: MeasuredOpt = None,
    allow_emulated: AllowEmulatedOpt = False,
    speculate: SpecObjectiveOpt = "off",
) -> None:
    """Compile a ternary or low-bit (GGUF K-quants, GPTQ) model into an HLS + Vivado project for a board."""
    from rich.console import Console

    from edgellm.boards import board_name
    from edgellm.commands.design_opts import check_options, compile_overrides, parse_sets
    from edgellm.commands.model_names import model_or_preset
    from edgellm.compiler.calibrate.measured import for_command
    from edgellm.compiler.pipeline import BuildConfig

    con = Console(stderr=True)
    over = parse_sets(sets)  # the cheap checks first: nothing is fetched or written for a bad option
    board = board_name(board)  # the shipped board's name ("PYNQ-Z2" -> pynq_z2): the output folder's too
    meas, clock = for_command(measured, allow_emulated, [board], clock)
    check_options(board, clock, lut_cap, speculate)
    name = preset or (model.absolute().name if model else "tiny") or "model"
    out_dir = out or Path(f"edgellm-out/{name}-{board}")
    if preset is not None and model is None:  # too large for the board: refused before it is generated
        _check_preset_fits(preset, board, meas, compile_overrides(context, clock, lut_cap, over, speculate))
    path = model_or_preset(model, preset)
    cfg = BuildConfig(model=str(path) if path else None, board=board, out_dir=str(out_dir), force=force,
                      reference_new_tokens=reference_decode, reference_onnx=onnx_reference,
                      overrides=compile_overrides(context, clock, lut_cap, over, speculate),
                      measured=meas.to_config() if meas else None)
    _summary(_run(cfg, con))


def register(app: typer.Typer) -> None:
    """Add `edgellm compile`."""
    app.command("compile")(compile_cmd)
