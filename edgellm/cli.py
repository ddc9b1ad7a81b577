"""The `edgellm` command: a typer app whose subcommands live in edgellm/commands/<name>.py.

Each command module defines `register(app: typer.Typer) -> None`. Modules listed in COMMANDS that do
not exist (yet) are skipped; an ImportError raised inside an existing module is not hidden.
Keep this module and the command modules' top level light: import torch, onnxruntime, transformers
(and the model code) inside the command functions, so `edgellm --help` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

import click
import typer
from typer.core import TyperGroup

import edgellm
from edgellm.errors import EdgeLLMError

# Order in which commands appear in `edgellm --help`.
COMMANDS = ["generate", "eval", "boards", "estimate", "compile", "csim", "build", "run", "verify", "deploy"]

ERROR_EXIT = 2
INTERRUPT_EXIT = 130


def error_line(err: BaseException) -> str:
    """The one line shown for a user-facing error."""
    msg = " ".join(str(err).split()) or type(err).__name__
    return f"error: {msg}"


class _Group(TyperGroup):
    """Keeps commands in registration order and turns EdgeLLMError into one line + exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeLLMError as e:
            click.echo(error_line(e), err=True)
            raise typer.Exit(ERROR_EXIT) from None


app = typer.Typer(
    name="edgellm", cls=_Group, no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Compile ternary (BitNet b1.58) LLMs into FPGA accelerators for PYNQ boards, run and verify them.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgellm {edgellm.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """edgellm: ternary LLMs on edge FPGAs."""


def register_commands(target: typer.Typer, names: Sequence[str] = COMMANDS) -> list[str]:
    """Import edgellm.commands.<name> for each name that exists and call its register(target)."""
    done = []
    for name in names:
        modname = f"edgellm.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        module = importlib.import_module(modname)
        module.register(target)
        done.append(name)
    return done


REGISTERED = register_commands(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry: run the app; EdgeLLMError -> `error: ...` on stderr, exit 2."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="edgellm")
    except EdgeLLMError as e:
        print(error_line(e), file=sys.stderr)
        sys.exit(ERROR_EXIT)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        sys.exit(INTERRUPT_EXIT)


if __name__ == "__main__":
    main()
