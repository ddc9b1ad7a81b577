"""Shared pytest hooks.

Each test marked `slow` is named on its own line as it starts, so a long pause in the progress dots
says which test it is (the default run keeps them; `-m "not slow"` leaves them out). In one process the
name comes before the test's setup; under pytest-xdist (the default run: `-n auto`) the controller names
it when a worker reports its setup done, as the test's call starts.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def _name_slow(config: pytest.Config, nodeid: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or reporter.verbosity > 0:  # verbose runs name every test already
        return
    reporter.ensure_newline()
    reporter.write_line(f"slow test running: {nodeid}")
    reporter.currentfspath = None  # the next result starts a fresh line with its file name


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Name a slow test before it runs (one process; an xdist worker's terminal is not shown)."""
    if item.get_closest_marker("slow") is not None and not hasattr(item.config, "workerinput"):
        _name_slow(item.config, item.nodeid)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        config.pluginmanager.register(_XdistNamer(config), "edgellm-slow-namer")


class _XdistNamer:
    """On the xdist controller: name a slow test when its setup report arrives (report.keywords carries
    the test's markers)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and report.passed and "slow" in report.keywords:
            _name_slow(self.config, report.nodeid)
