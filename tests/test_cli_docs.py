"""docs/cli.md, the CLI reference, names every command and every long option (and its --no- form) the CLI
takes: options documented only elsewhere, or nowhere (build --cosim, run --context-policy, verify --onnx,
...), were missing from it."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from edgellm.cli import app

DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()


def test_every_command_and_long_option_is_in_the_cli_reference() -> None:
    cmd = get_command(app)
    missing = [f"{name} {opt}" for name, sub in cmd.commands.items()
               for p in sub.params for opt in (*p.opts, *getattr(p, "secondary_opts", ()))
               if opt.startswith("--") and opt not in DOC]
    missing += [name for name in cmd.commands if f"edgellm {name}" not in DOC]
    assert not missing, missing
