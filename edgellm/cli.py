"""The `edgellm` command: a typer app whose subcommands live in edgellm/commands/<name>.py.

Each command module defines `register(app: typer.Typer) -> None`. Every module listed in COMMANDS must
exist and define it: a missing or broken command module is an error (CommandModuleError, or the
module's own ImportError), never a silently absent command.
Keep this module and the command modules' top level light: import torch, onnxruntime, transformers
(and the model code) inside the command functions, so `edgellm --help` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors its own click as typer._click; older typer uses click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx  # type: ignore[no-redef]

import edgellm
from edgellm.errors import EdgeLLMError

# Order in which commands appear in `edgellm --help`.
COMMANDS = ["generate", "eval", "boards", "estimate", "compile", "csim", "build", "run", "chat", "serve",
            "verify", "report", "deploy", "board_emulator", "calibrate", "calibrate_draft"]

ERROR_EXIT = 2
INTERNAL_EXIT = 3  # an exception edgellm did not expect (a bug): one line; EDGELLM_DEBUG=1: traceback
INTERRUPT_EXIT = 130


def os_error_text(e: OSError) -> str:
    """An OSError as a sentence naming the path (no errno prefix noise)."""
    what = e.strerror or type(e).__name__
    where = f"{e.filename}: " if e.filename is not None else ""
    extra = f" -> {e.filename2}" if e.filename2 is not None else ""
    return f"{where}{what}{extra}"


def internal_error_line(err: BaseException) -> str:
    """The one line shown for an exception edgellm did not anticipate (a bug)."""
    msg = " ".join(str(err).split())[:300]
    return (f"error: internal error ({type(err).__name__}: {msg}); please report it "
            "(EDGELLM_DEBUG=1 shows the traceback)")


def error_line(err: BaseException) -> str:
    """The one line shown for a user-facing error."""
    msg = " ".join(str(err).split()) or type(err).__name__
    return f"error: {msg}"


class _Group(TyperGroup):
    """Keeps commands in registration order; EdgeLLMError and usage errors become one line + exit 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run non-standalone underneath so usage errors print as one line, not a box."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except _cx.NoArgsIsHelpError as e:  # its message is the help (click's layout: printed here)
            e.show()
            sys.exit(e.exit_code)
        except _cx.ClickException as e:
            hint = ""
            if isinstance(e, _cx.UsageError) and e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            typer.echo(error_line(Exception(e.format_message())) + hint, err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeLLMError as e:
            typer.echo(error_line(e), err=True)
            raise typer.Exit(ERROR_EXIT) from None
        except BrokenPipeError:
            raise  # the reader went away (`| head`): main() exits quietly
        except OSError as e:  # disk full, permissions, a path that is not what it should be
            typer.echo(error_line(Exception(os_error_text(e))), err=True)
            raise typer.Exit(ERROR_EXIT) from None
        except MemoryError:
            typer.echo(error_line(Exception("out of memory (the input asks for more than this machine has)")),
                       err=True)
            raise typer.Exit(ERROR_EXIT) from None


app = typer.Typer(
    name="edgellm", cls=_Group, no_args_is_help=True, add_completion=True, rich_markup_mode=None,
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Compile ternary (BitNet b1.58) and low-bit (2-8-bit group-quantized GGUF / GPTQ Llama and Qwen2) "
         "LLMs into FPGA accelerators for PYNQ boards, run and verify them.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgellm {edgellm.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", show_default=False,
        help="Progress of long steps on stderr: by default only on a terminal (not when piped, not in "
             "CI); --progress also elsewhere, as plain lines."),
) -> None:
    """edgellm: ternary and low-bit LLMs on edge FPGAs."""
    if progress is not None:  # read by edgellm.commands.progress (EDGELLM_PROGRESS)
        os.environ["EDGELLM_PROGRESS"] = "1" if progress else "0"


class CommandModuleError(ImportError):
    """A command module listed in COMMANDS is missing or has no register(app): a broken installation."""


def register_commands(target: typer.Typer, names: Sequence[str] = COMMANDS) -> list[str]:
    """Import edgellm.commands.<name> for each name and call its register(target).

    A listed module that does not exist or defines no callable `register` raises CommandModuleError;
    an ImportError inside a module propagates as it is."""
    done = []
    for name in names:
        modname = f"edgellm.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            raise CommandModuleError(f"edgellm command module {modname} is missing (listed in "
                                     "edgellm.cli.COMMANDS); the installation is incomplete")
        module = importlib.import_module(modname)
        register = getattr(module, "register", None)
        if not callable(register):
            raise CommandModuleError(f"edgellm command module {modname} defines no register(app)")
        register(target)
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
    except BrokenPipeError:  # `edgellm ... | head`: stop writing, no error, no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as e:
        print(error_line(Exception(os_error_text(e))), file=sys.stderr)
        sys.exit(ERROR_EXIT)
    except Exception as e:  # noqa: BLE001 - the last resort: never a traceback for a user
        if os.environ.get("EDGELLM_DEBUG"):
            raise
        print(internal_error_line(e), file=sys.stderr)
        sys.exit(INTERNAL_EXIT)


if __name__ == "__main__":
    main()
