"""The design options `estimate` and `compile` share: KV cache capacity, design clock, LUT cap, a
measured calibration file (--measured, --allow-emulated) and `--set FIELD=VALUE` overrides of the
chosen design (compiler/design.py DesignParams), declared once."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from edgellm.errors import EdgeLLMError

ContextOpt = Annotated[int | None, typer.Option("--context", min=1, help="KV cache capacity in tokens "
                                                "(default: the model's).")]
ClockOpt = Annotated[float | None, typer.Option(
    "--clock", help="Design clock in MHz (default: the board's PL clock), e.g. 200 for a design that will "
                    "not close timing at 250.")]
LutCapOpt = Annotated[float | None, typer.Option(
    "--lut-cap", help="Largest LUT fraction a design may use (default: routing margin).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="FIELD=VALUE", help="Override a field of the chosen design (DesignParams, "
                                         "docs/cli.md), e.g. --set weight_buffer=bram; repeatable.")]
MeasuredOpt = Annotated[Path | None, typer.Option(
    "--measured", help="A calibration file of the board (edgellm calibrate KIT): its bandwidth as the "
                       "central figure, its PL clock as the design clock.")]
AllowEmulatedOpt = Annotated[bool, typer.Option(
    "--allow-emulated", help="Take an emulated calibration file (C simulation: measures nothing).")]
SpecObjectiveOpt = Annotated[str, typer.Option(
    "--speculate", help="The design search's objective: off (plain decode, then TTFT), or lookup / self "
                        "(projected effective decode with that drafter at its measured acceptance, "
                        "compiler/cost/speculative_acceptance.json).")]
SPEC_OBJECTIVES = ("off", "lookup", "self")

def board_names(incomplete: str = "") -> list[str]:
    """Shell completion of --board: the board names starting with what was typed (and 'all' where
    a command takes it)."""
    from edgellm.boards import list_boards

    return [b for b in list_boards() if b.startswith(incomplete)]


def board_or_all_names(incomplete: str = "") -> list[str]:
    """Shell completion of estimate's --board: the boards and 'all'."""
    return [b for b in (*board_names(), "all") if b.startswith(incomplete)]


BoardOpt = Annotated[str, typer.Option("--board", "-b", help="Target board (`edgellm boards`)",
                                       autocompletion=board_names)]

# Fields with an option of their own (the search takes them into account, an override would not).
OWN_OPTION = {"clock_mhz": "--clock", "max_context": "--context"}


def _field_types() -> dict[str, Any]:
    from edgellm.compiler.design import DesignParams

    hints = typing.get_type_hints(DesignParams)
    return {f.name: hints[f.name] for f in dataclasses.fields(DesignParams) if f.init}


def _parse(name: str, kind: Any, text: str) -> Any:
    """text as the field's type (int, float, bool, str; 'none' for an optional field)."""
    args = typing.get_args(kind)
    if type(None) in args:
        if text.strip().lower() == "none":
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(text)
            return low in ("true", "1", "yes", "on")
        if kind is int:
            return int(text, 10)
        if kind is float:
            v = float(text)
            if not math.isfinite(v):
                raise ValueError(text)
            return v
    except ValueError:
        raise EdgeLLMError(f"--set {name}={text}: not a {getattr(kind, '__name__', kind)}") from None
    return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """['weight_buffer=bram', 'tables=20'] -> {'weight_buffer': 'bram', 'tables': 20}; one-line errors for
    a malformed item, an unknown field, a field with its own option, a value of the wrong type or one
    DesignParams.validate refuses whatever the rest of the design."""
    types = _field_types()
    out: dict[str, Any] = {}
    for item in items or []:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise EdgeLLMError(f"--set {item!r}: expected FIELD=VALUE")
        if name in OWN_OPTION:
            raise EdgeLLMError(f"--set {name}: use {OWN_OPTION[name]} (the design search takes it "
                               "into account)")
        if name not in types:
            raise EdgeLLMError(f"--set {name}: unknown design field; fields: {', '.join(sorted(types))}")
        out[name] = _parse(name, types[name], value.strip())
    if out:  # a value no design takes is the user's error, not a board's misfit (estimate --board all)
        from edgellm.compiler.design import DesignParams

        DesignParams().replace(**out)
    return out


def check_options(board: str, clock: float | None, lut_cap: float | None, speculate: str = "off") -> None:
    """The board and the numbers the design search would refuse (compiler/dse.py explore), checked
    before a preset model is written or a hub model fetched; --speculate's objective and its measured
    run."""
    from edgellm.boards import load_board

    load_board(board)
    check_speculate(speculate)
    if clock is not None and not (math.isfinite(clock) and 0 < clock <= 1000):
        raise EdgeLLMError(f"--clock must be a number of MHz in (0, 1000], got {clock:g}")
    if lut_cap is not None and not (math.isfinite(lut_cap) and 0 < lut_cap <= 1):
        raise EdgeLLMError(f"--lut-cap must be a fraction in (0, 1], got {lut_cap:g}")


def check_speculate(speculate: str) -> None:
    """One line for an unknown --speculate objective or one without a measured run to rank by."""
    if speculate not in SPEC_OBJECTIVES:
        raise EdgeLLMError(f"unknown --speculate {speculate!r}; choose one of {', '.join(SPEC_OBJECTIVES)}")
    if speculate != "off":
        from edgellm.compiler.cost.speculative import objective_run

        objective_run(speculate)


def compile_overrides(context: int | None, clock: float | None, lut_cap: float | None,
                      sets: dict[str, Any], speculate: str = "off") -> dict[str, Any]:
    """BuildConfig.overrides of the options (compiler/steps.py step_dse reads clock_mhz, lut_cap,
    max_context and speculate for the search and applies the rest to the chosen design)."""
    over = dict(sets)
    if speculate != "off":
        over["speculate"] = speculate
    for key, v in (("max_context", context), ("clock_mhz", clock), ("lut_cap", lut_cap)):
        if v is not None:
            over[key] = v
    return over


def apply_sets(res: Any, cfg: Any, board: Any, sets: dict[str, Any]) -> Any:
    """The DseResult with its chosen design overridden by sets and re-estimated (as compile builds it)."""
    if not sets:
        return res
    from edgellm.compiler.estimate import estimate

    params = res.params.replace(**sets)
    return dataclasses.replace(res, params=params, estimate=estimate(cfg, board, params))
