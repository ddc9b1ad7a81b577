"""Shared pytest hooks.

Each test marked `slow` is named on its own line as it starts, so a long pause in the progress dots
says which test it is (the default run keeps them; `-m "not slow"` leaves them out). In one process the
name comes before the test's setup; under pytest-xdist (the default run: `-n auto`) the controller names
it when a worker reports its setup done, as the test's call starts.
"""

from __future__ import annotations

import fcntl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
PYNQ_LOCK_WAIT_S = 900  # the longest a pynq-client test waits for other workers' (each takes < 1 min)


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


@pytest.fixture
def pynq_client_lock() -> Iterator[None]:
    """One test at a time drives pynq's client, across xdist workers and concurrent runs: pynq keeps its
    state (_current_metadata.pkl, global_pl_state_*.json) in files of its own package folder. An
    exclusive lock on a file in the temp folder, waited for at most PYNQ_LOCK_WAIT_S."""
    with open(Path(tempfile.gettempdir()) / "edgellm-tests-pynq-client.lock", "a") as f:
        deadline = time.monotonic() + PYNQ_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test held the pynq client lock for {PYNQ_LOCK_WAIT_S} s")
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
