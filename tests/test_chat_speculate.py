"""`edgellm chat --speculate`: every reply decodes speculatively and is plain decode's reply token for token,
the KV cache still kept between turns; the turn's stats line adds acceptance and tokens per pass; a bad
--speculate value, or `self` without draft layers, is one `error:` line. The shipped tiny model (no
template) and a random ChatML checkpoint (a template, end-of-turn stop ids) on the golden backend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shared_chat import write_chatml_checkpoint, write_tokenizer
from typer.testing import CliRunner

from edgellm.cli import app

runner = CliRunner()
COPY = "the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog, the quick"
TURNS = f"{COPY}\nand the quick brown fox jumps\n/reset\nEmma was\n"
STATS = re.compile(r"speculate lookup: acceptance (n/a|\d+\.\d% \((\d+)/(\d+)\)), "
                   r"tokens per pass (\d+\.\d\d)$")


def chat(*args: str, stdin: str = TURNS) -> tuple[str, list[str]]:
    """(stdout, the turns' stats lines) of `edgellm chat ARGS`."""
    res = runner.invoke(app, ["chat", *args], input=stdin)
    assert res.exit_code == 0, res.output
    return res.stdout, [ln for ln in res.stderr.splitlines() if " turn " in ln and ln.startswith("[")]


def test_replies_equal_plain_decode_on_the_tiny_model() -> None:
    want, plain = chat("-n", "16")
    got, fast = chat("-n", "16", "--speculate", "lookup", "--spec-k-max", "4")
    assert got == want and len(got.splitlines()) == 3
    assert not any("speculate" in ln for ln in plain) and len(fast) == 3
    for p, f in zip(plain, fast, strict=True):  # the same turns: prefill, tokens, context
        assert f.split(", TTFT")[0] == p.split(", TTFT")[0]
        assert f.split("stop: ")[1].startswith(p.split("stop: ")[1])
    m = [STATS.search(ln) for ln in fast]
    assert all(m), fast
    accepted = [int(x.group(2) or 0) for x in m]
    assert accepted[0] > 0 and float(m[0].group(4)) > 1.0  # the copy turn: drafts accepted
    n2 = int(fast[1].split("prefilled ")[1].split(" ")[0])
    assert n2 < 16 and "rebuilt" not in fast[1]  # the cache kept: the new line, not the 37-token opening


def test_replies_equal_plain_decode_with_a_template(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    ckpt = write_chatml_checkpoint(tmp_path / "chatml", write_tokenizer(tmp_path / "tokenizer.json"))
    stdin = "Hello there, who are you?\nYou are a helpful assistant. I am an assistant\n"
    want, plain = chat(str(ckpt), "-n", "12", "--system", "Be brief.", stdin=stdin)
    got, fast = chat(str(ckpt), "-n", "12", "--system", "Be brief.", "--speculate", "lookup", stdin=stdin)
    assert got == want and len(fast) == 2 and all(STATS.search(ln) for ln in fast)
    assert "rebuilt" not in fast[1]
    assert fast[1].split(", TTFT")[0] == plain[1].split(", TTFT")[0]


def test_bad_speculate_is_one_error_line() -> None:
    res = runner.invoke(app, ["chat", "--speculate", "medusa"], input="hi\n")
    assert res.exit_code == 2 and res.output == ("error: unknown --speculate 'medusa'; choose one of off, "
                                                 "lookup, self\n")
    res = runner.invoke(app, ["chat", "--speculate", "self"], input="hi\n")
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(errs) == 1 and "--speculate self needs draft layers" in errs[0]
    assert res.stdout == "" and "Traceback" not in res.output


def test_self_with_draft_layers() -> None:
    want, _ = chat("-n", "10", stdin=f"{COPY}\n")
    got, fast = chat("-n", "10", "--speculate", "self", "--draft-layers", "0", stdin=f"{COPY}\n")
    assert got == want and "speculate self: acceptance" in fast[0]
