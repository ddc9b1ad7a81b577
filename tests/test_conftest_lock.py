"""conftest.py's pynq_client_lock: while a test holds it, another process cannot take it (the tests that
drive pynq's client take turns across xdist workers)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TRY = """import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("taken")
except BlockingIOError:
    print("busy")
"""
LOCK = Path(tempfile.gettempdir()) / "edgellm-tests-pynq-client.lock"


def _try() -> str:
    return subprocess.run([sys.executable, "-c", TRY, str(LOCK)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.usefixtures("pynq_client_lock")
def test_held_lock_excludes_another_process() -> None:
    assert _try() == "busy"


def test_free_lock_is_taken() -> None:
    # no test of this process holds it; another worker may for a moment: retry a few times
    import time

    for _ in range(600):
        if _try() == "taken":
            return
        time.sleep(0.1)
    pytest.fail("the pynq client lock stayed held for a minute")
