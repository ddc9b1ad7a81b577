"""Tokenizers stored as GGUF metadata (tokenizer.ggml.*) against transformers' GGUF tokenizer converter.

Small vocabularies are trained here with the `tokenizers` library (a byte-level BPE with the Llama-3
split for "gpt2"; a SentencePiece-style BPE with scores and <0xAB> byte tokens for "llama"), written
into GGUF files with gguf-py, and loaded both by edgellm (models/loaders/gguf_tokenizer.py ->
runtime/bpe.py) and by transformers (TokenizersBackend.from_pretrained(dir, gguf_file=...), what
AutoTokenizer builds for a GGUF); encode and decode must agree id for id on a varied corpus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared_gguf import CFG, CORPUS, TEXTS, f16_scaled, gpt2_vocab, model_file, spm_vocab, write_gguf

from edgellm.errors import CheckpointError
from edgellm.models.loaders import load_model
from edgellm.runtime.bpe import ByteLevelBPE

tokenizers = pytest.importorskip("tokenizers")
TokenizersBackend = pytest.importorskip("transformers.tokenization_utils_tokenizers").TokenizersBackend

def oracle(path: Path, ignore_merges: bool = False) -> Any:
    """transformers' tokenizer for the GGUF (what AutoTokenizer builds for a supported architecture)."""
    ref = TokenizersBackend.from_pretrained(str(path.parent), gguf_file=path.name)
    if ignore_merges:  # llama.cpp's (and Llama-3's tokenizer.json's) setting, which transformers leaves out
        ref.backend_tokenizer.model.ignore_merges = True
    return ref


def assert_same(ours: Any, ref: Any, vocab_size: int) -> int:
    """Encode (with BOS as add_bos_token says) and decode agree on TEXTS; returns the tokens compared."""
    n = 0
    for t in [*TEXTS, " ".join(TEXTS)]:
        want = ref.encode(t)
        got = ([ours.bos_id] if ours.bos_id is not None else []) + ours.encode(t)
        assert got == want, t
        assert ours.decode(want) == ref.decode(want, skip_special_tokens=True), t
        assert max(want, default=0) < vocab_size
        n += len(want)
    return n


@pytest.fixture(scope="module")
def vocabs() -> dict[str, dict[str, Any]]:
    return {"llama-bpe": gpt2_vocab("llama-bpe"), "qwen2": gpt2_vocab("qwen2"), "gpt-2": gpt2_vocab("gpt-2"),
            "spm": spm_vocab()}


@pytest.mark.parametrize("kind", ["llama-bpe", "qwen2", "gpt-2", "spm"])
def test_ids_match_transformers(tmp_path, vocabs, kind) -> None:
    v = vocabs[kind]
    path = model_file(tmp_path, v)
    qm, tok = load_model(path)
    assert isinstance(tok, ByteLevelBPE) and tok.bos_id == v["bos"] and tok.eos_id == v["eos"]
    ref = oracle(path, ignore_merges=kind == "llama-bpe")
    assert assert_same(tok, ref, len(v["tokens"])) > 600
    # the tokenizer.json written into a project is what transformers built, piece for piece
    spec, mine = json.loads(ref.backend_tokenizer.to_str()), json.loads(qm.meta["tokenizer_json"])
    for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert mine[k] == spec[k], k
    for k in ("merges", "vocab"):
        assert mine["model"][k] == spec["model"][k], k
    added = {(a["id"], a["content"], a["special"]) for a in spec["added_tokens"]}
    # transformers' GPT2Tokenizer also adds its default "<|endoftext|>" as a new id past the model's
    # vocabulary (an id the model has no row for); edgellm keeps to the file's tokens
    assert {(a["id"], a["content"], a["special"]) for a in mine["added_tokens"]} == {
        a for a in added if a[0] < len(v["tokens"])}
    # the tokenizers library reads the same text and agrees too
    lib = tokenizers.Tokenizer.from_str(qm.meta["tokenizer_json"])
    for t in TEXTS:
        assert lib.encode(t, add_special_tokens=False).ids == tok.encode(t)


def test_spm_merges_from_file_and_no_prefix_space(tmp_path, vocabs) -> None:
    """A "llama" vocabulary with its merges written out, and add_space_prefix false (no Metaspace prefix,
    as transformers' LlamaTokenizer(add_prefix_space=False) builds it; its GGUF converter ignores the key)."""
    from transformers import LlamaTokenizer

    from edgellm.models.loaders.gguf_tokenizer import merges_from_scores

    v = vocabs["spm"]
    vocab = {t: i for i, t in enumerate(v["tokens"])}
    merges = merges_from_scores(vocab, v["scores"])
    v2 = v | {"merges": [f"{a} {b}" for a, b in merges], "scores": None}
    _, tok = load_model(model_file(tmp_path, v2, add_space_prefix=False))
    ref = LlamaTokenizer(vocab=vocab, merges=merges, add_prefix_space=False, add_bos_token=True)
    assert assert_same(tok, ref, len(v["tokens"])) > 600
    assert tok.encode("hello") != ByteLevelBPE.from_spec(json.loads(
        load_model(model_file(tmp_path, v, "p.gguf"))[0].meta["tokenizer_json"]), "p").encode("hello")


def test_add_bos_token_and_llama3_defaults(tmp_path, vocabs) -> None:
    v = vocabs["llama-bpe"]
    _, off = load_model(model_file(tmp_path, v, "off.gguf", add_bos=False))
    assert off.bos_id is None  # prompts get no BOS
    # no add_bos_token key: llama.cpp's Llama-3 family adds BOS; a plain GPT-2 vocabulary does not
    _, l3 = load_model(model_file(tmp_path, v, "l3.gguf", add_bos=None))
    _, g2 = load_model(model_file(tmp_path, v | {"pre": "gpt-2"}, "g2.gguf", add_bos=None))
    assert l3.bos_id == v["bos"] and g2.bos_id is None
    _, spm = load_model(model_file(tmp_path, vocabs["spm"], "s.gguf", add_bos=None))
    assert spm.bos_id == 1


def test_ignore_merges_for_llama3_family(tmp_path) -> None:
    """A word in the vocabulary is one token for "llama-bpe" (llama.cpp: ignore_merges) even where the
    merges, applied by rank, would stop short of it; "qwen2" applies the merges."""
    tokens = ["<s>", "a", "b", "c", "ab", "bc", "abc"]
    v = {"model": "gpt2", "tokens": tokens, "merges": ["b c", "a b", "ab c"], "types": [3] + [1] * 6,
         "bos": 0, "eos": 0}
    _, l3 = load_model(model_file(tmp_path, v | {"pre": "llama-bpe"}, "l.gguf"))
    _, q2 = load_model(model_file(tmp_path, v | {"pre": "qwen2"}, "q.gguf"))
    assert l3.encode("abc") == [6] and q2.encode("abc") == [1, 5]


def test_chat_template_kept(tmp_path, vocabs) -> None:
    qm, _ = load_model(model_file(tmp_path, vocabs["spm"], chat_template="{{ messages[0]['content'] }}"))
    assert qm.meta["chat_template"] == "{{ messages[0]['content'] }}"
    qm, _ = load_model(model_file(tmp_path, vocabs["spm"], "n.gguf", chat_template=None))
    assert qm.meta["chat_template"] is None


def test_no_tokenizer_keys(tmp_path) -> None:
    qm, tok = load_model(write_gguf(f16_scaled(CFG), tmp_path / "m.gguf"))
    assert tok is None and "tokenizer_json" not in qm.meta


def _err(tmp_path: Path, v: dict[str, Any], **kw: Any) -> str:
    path = model_file(tmp_path, v, "bad.gguf", **kw)
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert "\n" not in msg and "bad.gguf" in msg
    return msg


def test_bad_tokenizers_are_one_line_errors(tmp_path, vocabs) -> None:
    g, s = vocabs["llama-bpe"], vocabs["spm"]
    ng, ns = len(g["tokens"]), len(s["tokens"])
    assert "'bert' is not supported" in _err(tmp_path, g, **{"tokenizer.ggml.model": "bert"})
    assert "'tekken' is not supported" in _err(tmp_path, g | {"pre": "tekken"})
    assert "'made-up' is not supported" in _err(tmp_path, g | {"pre": "made-up"})
    msg = _err(tmp_path, g, **{"tokenizer.ggml.tokens": g["tokens"][:-1]})
    assert f"has {ng - 1} tokens, the model's vocabulary has {ng} rows" in msg
    msg = _err(tmp_path, g, **{"tokenizer.ggml.token_type": g["types"][:-1]})
    assert f"token_type has {ng - 1} entries" in msg
    assert f"scores has {ns - 1} entries" in _err(tmp_path, s, **{"tokenizer.ggml.scores": s["scores"][:-1]})
    msg = _err(tmp_path, g, **{"tokenizer.ggml.merges": [*g["merges"][:5], "the zzzz"]})
    assert "merges[5]" in msg and "which is not in tokenizer.ggml.tokens" in msg
    assert "not two tokens" in _err(tmp_path, g, **{"tokenizer.ggml.merges": ["a b c"]})
    assert "merges is missing" in _err(tmp_path, g | {"merges": None})
    assert "neither" in _err(tmp_path, s | {"scores": None})
    assert "twice" in _err(tmp_path, s | {"tokens": [*s["tokens"][:-1], s["tokens"][300]]})
    assert "outside the vocabulary" in _err(tmp_path, s, **{"tokenizer.ggml.unknown_token_id": 10_000})
    assert "must be a bool" in _err(tmp_path, s, **{"tokenizer.ggml.add_bos_token": "yes"})
    assert "must be an array of str" in _err(tmp_path, s, **{"tokenizer.ggml.tokens": list(range(ns))})


def test_cli_generate_and_eval(tmp_path, vocabs) -> None:
    """`edgellm generate` / `eval --text` on a GGUF with no tokenizer file beside it."""
    from typer.testing import CliRunner

    from edgellm.cli import app

    runner = CliRunner()
    for kind in ("llama-bpe", "spm"):
        path = model_file(tmp_path, vocabs[kind], f"{kind}.gguf")
        res = runner.invoke(app, ["generate", str(path), "--prompt", "Once upon a time", "-n", "6",
                                  "--ignore-eos"])
        assert res.exit_code == 0 and "no tokenizer" not in res.output, res.output
        text = tmp_path / "t.txt"
        text.write_text(" ".join(CORPUS[:4]))
        res = runner.invoke(app, ["eval", str(path), "--text", str(text), "--compare", "golden"])
        assert res.exit_code == 0 and "perplexity" in res.output, res.output
    res = runner.invoke(app, ["generate", str(model_file(tmp_path, vocabs["spm"], "x.gguf",
                                                         **{"tokenizer.ggml.model": "rwkv"})),
                              "--prompt", "hi"])
    assert res.exit_code != 0 and res.output.strip().count("\n") == 0 and "error:" in res.output
    assert "tokenizer.ggml.model 'rwkv' is not supported" in res.output


def test_generate_matches_ids_of_golden(tmp_path, vocabs) -> None:
    """The ids generate feeds the model are the oracle's ids of the prompt (BOS included)."""
    from edgellm.commands.generate import TextCodec, model_specials

    path = model_file(tmp_path, vocabs["spm"])
    qm, tok = load_model(path)
    codec = TextCodec(tok, *model_specials(qm))
    ref = oracle(path)
    for t in ("Once upon a time", "🙂 x", "def f(x):"):
        assert codec.prompt_ids(t) == ref.encode(t)
    assert np.all(np.array(codec.prompt_ids(" ".join(TEXTS))) < qm.config.vocab_size)
