"""Shared pytest hooks.

Each test marked `slow` is named on its own line as it starts, so a long pause in the progress dots
says which test it is (the default run keeps them; `-m "not slow"` leaves them out).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Name a slow test before it runs (verbose runs name every test already)."""
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if item.get_closest_marker("slow") is None or reporter is None or reporter.verbosity > 0:
        return
    reporter.ensure_newline()
    reporter.write_line(f"slow test running: {item.nodeid}")
    reporter.currentfspath = None  # the next result starts a fresh line with its file name
