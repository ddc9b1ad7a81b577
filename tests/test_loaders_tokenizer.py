"""Tokenizer wrapper and its discovery by load_model."""

from __future__ import annotations

import pytest

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import Tokenizer, load_model, save_hf_bitnet
from edgellm.models.random_model import random_model

tokenizers = pytest.importorskip("tokenizers")

TEXT = ["the quick brown fox jumps over the lazy dog", "edge accelerators run ternary models",
        "hello world, hello fpga"] * 20


def _bpe_json() -> str:
    """A small byte-level BPE tokenizer trained by the tokenizers library itself."""
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(TEXT, trainer)
    return tk.to_str()


def test_encode_decode_and_special_ids():
    tok = Tokenizer.from_str(_bpe_json())
    ids = tok.encode("hello fpga, the lazy fox!")
    assert ids and all(isinstance(i, int) for i in ids)
    assert tok.decode(ids) == "hello fpga, the lazy fox!"
    assert (tok.bos_id, tok.eos_id) == (0, 1)  # found by name: <s>, </s>
    assert tok.decode([tok.bos_id] + ids + [tok.eos_id]) == "hello fpga, the lazy fox!"
    assert tok.vocab_size <= 300


def test_load_model_finds_tokenizer(tmp_path):
    js = _bpe_json()
    cfg = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=128, vocab_size=300,
                      bos_id=0, eos_id=1)
    d = save_hf_bitnet(random_model(cfg), tmp_path / "m", tokenizer_json=js)
    qm, tok = load_model(d)
    assert tok is not None and (tok.bos_id, tok.eos_id) == (0, 1)
    assert max(tok.encode(" ".join(TEXT))) < qm.config.vocab_size
    (tmp_path / "t.json").write_text(js)
    d2 = save_hf_bitnet(random_model(cfg), tmp_path / "m2", tokenizer_json=str(tmp_path / "t.json"))
    assert load_model(d2)[1].encode("hello") == tok.encode("hello")


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(CheckpointError, match="malformed tokenizer.json"):
        Tokenizer.from_str("{\"version\": 1}")
    with pytest.raises(CheckpointError, match="missing.json"):
        Tokenizer.from_file(tmp_path / "missing.json")
