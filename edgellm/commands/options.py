"""Options shared by several commands (sampling, streaming, a project's checksums), declared once."""

from __future__ import annotations

from typing import Annotated

import typer

MaxNewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", "-n", help="Most tokens to generate.")]
TemperatureOpt = Annotated[float, typer.Option(help="0 = greedy (argmax).")]
TopKOpt = Annotated[int, typer.Option("--top-k", help="Keep the K most likely tokens (0 = off).")]
TopPOpt = Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass (1.0 = off).")]
RepetitionPenaltyOpt = Annotated[float, typer.Option(help="CTRL-style penalty (1.0 = off).")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for reproducible sampling.")]
StopAtEosOpt = Annotated[bool, typer.Option("--stop-at-eos/--ignore-eos", help="Stop at EOS.")]
StreamOpt = Annotated[bool, typer.Option("--stream/--no-stream", help="Print tokens as they arrive.")]
NoVerifyOpt = Annotated[bool, typer.Option("--no-verify-checksums",
                                           help="Skip the sha256 checks of the project files.")]
