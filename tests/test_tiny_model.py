"""The shipped tiny ternary model (models/tiny): loads, reproduces its golden continuations, and its
validation perplexity under the golden backend matches the model card and the training log."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgellm.models import corpus as cp
from edgellm.models.loaders import load_model
from edgellm.models.train_tiny import EVAL_WINDOWS, SEQ, TINY_CONFIG, eval_slice, golden_ppl, greedy

TINY = Path(__file__).resolve().parents[1] / "models" / "tiny"


@pytest.fixture(scope="module")
def tiny():
    qm, tok = load_model(TINY)
    return qm, tok


def test_architecture(tiny) -> None:
    qm, tok = tiny
    c = qm.config
    for f in ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_size", "act", "subln",
              "tied_embeddings", "bos_id", "eos_id", "rope_theta"):
        assert getattr(c, f) == getattr(TINY_CONFIG, f), f
    assert c.n_kv_heads < c.n_heads and c.act == "relu2" and c.subln and c.tied_embeddings
    assert any(i % 3 for _, i in c.linear_shapes().values())  # a linear whose input is not a multiple of 3
    assert 2_000_000 <= c.n_ternary_params() <= 10_000_000
    assert tok is not None and tok.bos_id == c.bos_id and tok.eos_id == c.eos_id
    for L in qm.layers:  # real trained ternary weights: all three values used
        assert set(np.unique(L.gate.dense())) == {-1, 0, 1}


def test_golden_continuations(tiny) -> None:
    qm, tok = tiny
    gold = json.loads((TINY / "golden.json").read_text())
    assert len(gold["cases"]) == 3
    for case in gold["cases"]:
        assert case["prompt_ids"] == [qm.config.bos_id] + tok.encode(case["prompt"])
        new = greedy(qm, case["prompt_ids"], gold["n_new"], backend="golden")
        assert new == case["new_ids"], case["prompt"]
        assert tok.decode(new) == case["text"]


def test_torch_backend_agrees_on_golden_prompts(tiny) -> None:
    pytest.importorskip("torch")
    qm, _ = tiny
    gold = json.loads((TINY / "golden.json").read_text())
    case = gold["cases"][0]
    new = greedy(qm, case["prompt_ids"], 16, backend="torch")
    agree = np.mean(np.asarray(new) == np.asarray(case["new_ids"][:16]))
    assert agree >= 0.9


def _card_ppl(name: str) -> float:
    card = (TINY / "MODEL_CARD.md").read_text()
    m = re.search(rf"{name}: \*\*([0-9.]+)\*\*", card)
    assert m, f"MODEL_CARD.md has no '{name}: **N**' line"
    return float(m.group(1))


def test_validation_perplexity_matches_card(tiny) -> None:
    qm, _ = tiny
    metrics = json.loads((TINY / "metrics.json").read_text())["ternary"]
    tj = (TINY / "tokenizer.json").read_text()
    paragraphs = (TINY / "eval_slice.txt").read_text().splitlines()
    ev = eval_slice(cp.encode_stream(tj, paragraphs))
    assert ev.shape == (EVAL_WINDOWS, SEQ + 1)
    assert hashlib.sha256(ev.tobytes()).hexdigest() == metrics["eval_slice_sha256"]  # same slice as the log
    ppl = golden_ppl(qm, ev)
    print(f"golden perplexity on the eval slice: {ppl:.3f}")
    assert abs(ppl / _card_ppl("Ternary, golden backend, eval slice") - 1) < 0.02
    assert abs(ppl / metrics["torch_ppl_eval_slice"] - 1) < 0.02  # the training log's QAT evaluation
    assert ppl < 0.2 * TINY_CONFIG.vocab_size  # far better than chance (a trained model)


def _xdr(*ints: int) -> bytes:
    return b"".join(i.to_bytes(4, "big", signed=True) for i in ints)


def _charsxp(s: str | None) -> bytes:
    if s is None:
        return _xdr(9, -1)
    b = s.encode()
    return _xdr(0x40009, len(b)) + b


def test_r_reader_parses_named_list_and_strings() -> None:
    """The corpus's R serialization reader on a hand-built stream: list(a=1:2, b=c("x", NA)) with names."""
    head = b"X\n" + _xdr(3, 0x40201, 0x30500, 5) + b"UTF-8"
    body = _xdr(19 | (1 << 9), 2)  # VECSXP with attributes, 2 elements
    body += _xdr(13, 2, 1, 2)  # INTSXP 1:2
    body += _xdr(16, 2) + _charsxp("x") + _charsxp(None)  # STRSXP c("x", NA)
    body += _xdr(2 | (1 << 10)) + _xdr(1) + _charsxp("names")  # pairlist tag = symbol "names"
    body += _xdr(16, 2) + _charsxp("a") + _charsxp("b") + _xdr(254)  # value, end of pairlist
    assert cp._RReader(head + body).read() == {"a": [1, 2], "b": ["x", ""]}
    with pytest.raises(Exception, match="XDR"):
        cp._RReader(b"A\n" + body)


def test_paragraphs_join_wrapped_lines() -> None:
    lines = ["CHAPTER I", "", "It is a truth", "universally  acknowledged.", "", "", "Next."]
    assert cp.paragraphs(lines) == ["CHAPTER I", "It is a truth universally acknowledged.", "Next."]


def test_eval_cli_backends_agree_and_match_training_log(tmp_path) -> None:
    """`edgellm eval` on the held-out slice: golden, onnx and torch agree >= 99% top-1, and the printed
    perplexities match the training log's (same token stream, same 257-token windows)."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from edgellm.cli import app
    from edgellm.commands import eval as eval_cmd

    paragraphs = (TINY / "eval_slice.txt").read_text().splitlines()
    ev = eval_slice(cp.encode_stream((TINY / "tokenizer.json").read_text(), paragraphs))
    ids = np.concatenate([ev[0], *[w[1:] for w in ev[1:]]])  # the stream the windows cover
    (tmp_path / "ids.txt").write_text(",".join(map(str, ids)))
    r = CliRunner().invoke(app, ["eval", str(TINY), "--text", str(tmp_path / "ids.txt"), "--ids",
                                 "--window", str(SEQ + 1), "--compare", "golden,onnx,torch"])
    print(r.stdout)
    assert r.exit_code == 0, r.output  # exit 1 if any backend agrees < 99% with golden
    assert f"{EVAL_WINDOWS} window(s)" in r.stdout
    metrics = json.loads((TINY / "metrics.json").read_text())["ternary"]
    assert eval_cmd.fmt_ppl(metrics["golden_ppl_eval_slice"]) in r.stdout
    torch_row = next(ln for ln in r.stdout.splitlines() if ln.strip("│ ").startswith("torch"))
    torch_ppl = float(torch_row.split("│")[2])
    assert abs(torch_ppl / metrics["torch_ppl_eval_slice"] - 1) < 0.02
