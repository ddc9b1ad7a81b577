"""`edgellm boards`: the supported boards as a table (all figures from boards/*.toml)."""

from __future__ import annotations

import typer


def board_rows(b) -> list[tuple[str, str]]:  # b: edgellm.boards.Board
    """(field, value) rows describing one board."""
    return [
        ("name", b.display_name), ("part", b.part), ("board part", b.board_part), ("PS", b.ps),
        ("LUT", f"{b.lut:,}"), ("FF", f"{b.ff:,}"), ("DSP", f"{b.dsp:,}"), ("BRAM36", f"{b.bram36:,}"),
        ("URAM", f"{b.uram:,}"), ("DDR", f"{b.ddr_bytes / 2**30:g} GiB {b.ddr_type} x{b.ddr_width_bits}"),
        ("DDR peak / achievable", f"{b.ddr_peak_gbps:.1f} / {b.ddr_achievable_gbps:.1f} GB/s"),
        ("HP ports", f"{b.hp_ports} x {b.hp_port_width_bits}-bit"), ("PL clock", f"{b.pl_clock_mhz:g} MHz"),
        ("PYNQ", ", ".join(b.pynq_versions)),
        ("DDR for the model", f"{b.ddr_available_bytes / 2**20:,.0f} MiB"),
    ]


def register(app: typer.Typer) -> None:
    """Add the `boards` command to the app."""

    @app.command("boards")
    def boards_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print every field of every board as JSON."),
    ) -> None:
        """List the supported boards: part, PL resources, DDR, PS-PL ports, clock, PYNQ versions."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from edgellm.boards import load_all

        boards = load_all()
        if as_json:
            import json

            from edgellm.report.records import boards_record

            typer.echo(json.dumps(boards_record(boards), indent=1))
            return
        table = Table(title=escape("Supported boards (sources: boards/<name>.toml [sources])"))
        table.add_column("")
        for b in boards:
            table.add_column(b.name, justify="right")
        rows = [board_rows(b) for b in boards]
        for i, (label, _) in enumerate(rows[0]):
            table.add_row(label, *(r[i][1] for r in rows))
        from edgellm.commands.tables import folded

        Console().print(folded(table))
