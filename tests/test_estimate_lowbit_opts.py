"""`edgellm estimate --clock MHZ --lut-cap F` on a low-bit model: the low-bit design search honours both
(compiler/cost/lowbit_search.search through lowbit_estimate.estimate), as the ternary DSE does; bad values
are one error line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgellm.boards import load_board
from edgellm.cli import app
from edgellm.compiler import lowbit_estimate as le
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS

runner = CliRunner()
ARGS = ("estimate", "--preset", "qwen2.5-0.5b", "--weights", "q4_0", "--board", "kv260")


def _board(*extra: str) -> dict:
    res = runner.invoke(app, [*ARGS, *extra, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["boards"]["kv260"]


def test_clock_and_lut_cap_steer_the_lowbit_search() -> None:
    base = _board()
    slow = _board("--clock", "200")
    assert base["clock_mhz"]["central"] == 250 and slow["clock_mhz"] == {"low": 160, "central": 200,
                                                                         "high": 200}
    assert slow["projected_ttft_128_s"]["central"] > base["projected_ttft_128_s"]["central"]
    src, board = le.from_preset(PRESETS["qwen2.5-0.5b"], "q4_0"), load_board("kv260")
    e = le.estimate(src, board, 200.0)
    assert slow["projected_decode_tok_s"] == pytest.approx(e.decode)
    capped = _board("--lut-cap", "0.6")
    assert capped["utilization"]["lut"] <= 0.6 < base["utilization"]["lut"]
    assert capped["projected_decode_tok_s"]["central"] < base["projected_decode_tok_s"]["central"]
    c = le.estimate(src, board, limits={"lut": 0.6})
    assert ls.fits(src.cfg, board, c.engine, c.vector, src.model, {"lut": 0.6})
    assert not ls.fits(src.cfg, board, le.estimate(src, board).engine, le.estimate(src, board).vector,
                       src.model, {"lut": 0.6})


def test_bad_clock_or_cap_is_one_line() -> None:
    for extra, word in ((("--lut-cap", "2"), "utilization limit 'lut'"), (("--clock", "0"), "clock must be"),
                        (("--lut-cap", "0.05"), "no low-bit engine configuration fits kv260")):
        res = runner.invoke(app, [*ARGS, *extra])
        assert res.exit_code != 0 and "Traceback" not in res.output, res.output
        lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and word in lines[0], res.output
    assert "the limits given" in runner.invoke(app, [*ARGS, "--lut-cap", "0.05"]).output
    with pytest.raises(EdgeLLMError, match="clock must be"):
        le.estimate(le.from_preset(PRESETS["qwen2.5-0.5b"], "q4_0"), load_board("kv260"), True)
