"""The pure-Python byte-level BPE against the `tokenizers` library on tokenizers trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgellm.errors import EdgeLLMError
from edgellm.runtime.bpe import ByteLevelBPE, UnsupportedTokenizer, load_tokenizer, split_gpt2

tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "Once upon a time there was a little girl who lived in a village near the forest.",
    "It's 2024; we'll see what they've done -- don't you think? I'm sure you'd agree.",
    "Numbers: 3.14159, 42, 1,000,000 and ½ or ² or Ⅻ. Café naïve résumé coöperate.",
    "Tabs\tand\nnewlines\n\n  indented   spaces   everywhere   ",
    "中文字符和日本語のテキスト、한국어 텍스트. Emoji: 🙂🚀✨ and ZWJ 👩‍💻.",
    "Mr. Darcy's estate was £10,000 a year!!! Elizabeth's reply — sharp; witty...",
    "<bos> special tokens inside text <eos> and <pad>",
] * 3

SAMPLES = [
    "", " ", "  ", "hello", " hello", "hello  world", "Hello,   World!!  ", "a\n\nb", "\n\n\n",
    "it's they're we've I'm you'll he'd 'twas ''s", "x  \ny", "Ünïcödé façade", "数字123 and ٣٤٥",
    "🙂🙂 🚀", "tab\t\tend\t", "trailing   ", "   leading", "mixed 3rd 1st 22nd", "a'b'c",
    "<bos>hi<eos>", "x<pad>y", "<bos> <eos>", "Zwischen\u00a0NBSP\u2009thin\u3000ideo", "\u0301combining",
    "line\r\nbreak\x0bvt\x0cff\x85nel\u2028ls", "$$$ %%% ^^^ ~~~", "½²Ⅻ⅓", "日本語のテキスト",
    "Once upon a time", "never seen zqxjv tokens", "a" * 50,
]


def train(tmp: Path, add_prefix_space: bool, name: str) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    p = tmp / name
    tok.save(str(p))
    return p


@pytest.fixture(scope="module", params=[False, True], ids=["no-prefix", "prefix-space"])
def tok_file(request, tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("tok"), request.param, "tokenizer.json")


def test_ids_match_tokenizers(tok_file: Path) -> None:
    ref = tokenizers.Tokenizer.from_file(str(tok_file))
    ours = ByteLevelBPE.from_file(tok_file)
    texts = SAMPLES + CORPUS[:7] + [" ".join(CORPUS[:7])]
    n_tokens = 0
    for t in texts:
        want = ref.encode(t, add_special_tokens=False).ids
        assert ours.encode(t) == want, t
        n_tokens += len(want)
    assert n_tokens > 500
    assert ours.bos_id == ref.token_to_id("<bos>") and ours.eos_id == ref.token_to_id("<eos>")
    assert ours.vocab_size == ref.get_vocab_size(with_added_tokens=True)


def test_decode_round_trip(tok_file: Path) -> None:
    ref = tokenizers.Tokenizer.from_file(str(tok_file))
    ours = ByteLevelBPE.from_file(tok_file)
    for t in SAMPLES + CORPUS[:7]:
        ids = ours.encode(t)
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True)
    # partial UTF-8 sequences decode to U+FFFD like the reference
    ids = ours.encode("🙂")
    for k in range(1, len(ids) + 1):
        assert ours.decode(ids[:k]) == ref.decode(ids[:k])
    assert ours.decode([1, 2], skip_special_tokens=False) == ref.decode([1, 2], skip_special_tokens=False)


def test_round_trip_without_prefix(tmp_path: Path) -> None:
    ours = ByteLevelBPE.from_file(train(tmp_path, False, "t.json"))
    for t in SAMPLES + CORPUS[:7]:
        if "<" not in t:
            assert ours.decode(ours.encode(t)) == t


def test_split_pattern() -> None:
    want = ["Hello", " ", " world", "'s", " 123", "!!", "\n\n", " x"]
    assert split_gpt2("Hello  world's 123!!\n\n x") == want
    assert split_gpt2("a   ") == ["a", "   "]


def test_unsupported_and_bad_files(tmp_path: Path) -> None:
    spec = json.loads(train(tmp_path, False, "t.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    with pytest.raises(UnsupportedTokenizer, match="pre-tokenizer 'Whitespace'"):
        ByteLevelBPE(spec)
    f = tmp_path / "w.json"
    f.write_text(json.dumps(spec))
    assert load_tokenizer(f).encode("hi there")  # falls back to the tokenizers library
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EdgeLLMError, match="bad.json: cannot read tokenizer"):
        ByteLevelBPE.from_file(bad)
    with pytest.raises(EdgeLLMError, match="malformed"):
        bad.write_text(json.dumps({"model": {"type": "BPE"}}))
        ByteLevelBPE.from_file(bad)
