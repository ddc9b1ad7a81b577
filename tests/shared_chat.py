"""Chat test data shared by test_chat and test_serve: the ChatML (Qwen2) template, a byte-level BPE
tokenizer holding every template's special tokens, a random ChatML checkpoint, and transformers'
tokenizer for comparison. Test modules import these from here, never from each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"]
CORPUS = ["Hello there, who are you?", "You are a helpful assistant.", "I am an assistant, here to help.",
          "system user assistant Assistant User System", "Ünïcødé text ✓ with accents: café, naïve"]


def write_tokenizer(p: Path) -> Path:
    """A byte-level BPE tokenizer.json holding every template's special tokens, written to p."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(p))
    return p


def write_chatml_checkpoint(d: Path, tok_file: Path) -> Path:
    """A random model with the ChatML (Qwen2) template in its tokenizer_config.json, saved in d."""
    from edgellm.models.config import ModelConfig
    from edgellm.models.loaders import save_hf_bitnet
    from edgellm.models.random_model import random_model

    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=352,
                      max_context=96, bos_id=0, eos_id=SPECIALS.index("<|im_end|>"), name="chatml")
    out = Path(save_hf_bitnet(random_model(cfg, seed=5, density=0.5), d, tokenizer_json=str(tok_file)))
    (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": QWEN2}))
    return out


def hf_tokenizer(tok_file: Path, bos: str | None, eos: str) -> Any:
    """transformers' fast tokenizer of tok_file with these BOS / EOS tokens (skips without transformers)."""
    transformers = pytest.importorskip("transformers")
    kw = {"bos_token": bos} if bos else {}
    return transformers.PreTrainedTokenizerFast(tokenizer_file=str(tok_file), eos_token=eos, **kw)
