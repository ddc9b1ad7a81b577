"""Seeded, time-bounded fuzzing (tests/fuzz/driver.py): mutated checkpoints, GGUF files, project
manifests and weight-image headers must each end in exit 0 or one `error:` line, never a traceback,
an internal error, a signal or a hang. Seeds and case counts are fixed, so a failure reproduces with
`python tests/fuzz/driver.py TARGET SEED N DIR` (the failing case's mutation is in the message)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parent / "fuzz" / "driver.py"
# target -> (seed, cases, one process per case); about 40 s in all on a 2-core machine
PLAN = {"checkpoint": (20261206, 80, False), "gguf": (20261206, 80, False),
        "manifest": (20261206, 60, False), "image": (20261206, 24, True)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("target", list(PLAN))
def test_fuzz_never_crashes(target: str, workdir: Path) -> None:
    seed, n, sub = PLAN[target]
    cmd = [sys.executable, str(DRIVER), target, str(seed), str(n), str(workdir), *(["--subprocess"] * sub)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    rows = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert res.returncode == 0, f"the driver itself died (exit {res.returncode}): {res.stderr[-2000:]}"
    assert len(rows) == n
    bad = [r for r in rows if r["verdict"] != "ok"]
    report = "\n".join(f"case {r['case']} {r['verdict']} (exit {r['exit']}): {r['mutation']} -> "
                       f"{(r['stderr_tail'] or [''])[-1][:200]}" for r in bad)
    assert not bad, f"{len(bad)} of {n} {target} cases failed (seed {seed}):\n{report}"
