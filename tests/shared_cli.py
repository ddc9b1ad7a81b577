"""CLI assertions the hardening tests share (test_hardening_sweep, test_hardening_manifest). Test modules
import these from here, never from each other."""

from __future__ import annotations

from typing import Any


def one_error(res: Any, *needles: str) -> str:
    """A CliRunner result that is one `error:` line (no internal error, no exception but the exit) with
    exit code 2, containing every needle; returns the line."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "internal error" not in errors[0], res.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]
