"""The emulator at bitnet_b1_58-large shapes (24 layers, hidden 1536, 16 heads x 96, FFN 4096,
vocab 32002; random weights): a 32-token prefill and 8 greedy decode steps through the full
register/DDR protocol (C simulation of the project's own HLS sources), every logit bit-exact against
the golden model. About 3 minutes here (bench/emulator_large.py prints the times)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.large,
              pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None,
                                 reason="C simulation needs hls4ml's ap_types headers")]


def test_large_shapes_bit_exact(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import emulator_large
    finally:
        sys.path.pop(0)
    r = emulator_large.run(tmp_path, n_prefill=32, n_decode=8, layers=None)
    print(r)
    assert r["layers"] == 24
    assert r["mismatches"] == [0] * 8
