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


# ---- beyond GPT-2: what GGUF vocabularies need (runtime/bpe_steps.py, runtime/pretok.py) ----

def _lib(spec: dict) -> object:
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


def _bpe_spec(vocab: list[str], merges: list[tuple[str, str]], **model) -> dict:
    return {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
            "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(vocab)},
                      "merges": [list(m) for m in merges], **model}}


def test_merges_by_priority_queue_and_last_duplicate() -> None:
    """Merges apply as tokenizers' Word::merge_all: the lowest rank among the current pairs, leftmost
    first, new pairs entering the queue at once (so "abab" -> "aba" "b" when ("ab", "a") outranks
    ("a", "b")); a merge listed twice keeps its last rank."""
    spec = _bpe_spec(["a", "b", "ab", "aba", "c", "bc"], [("ab", "a"), ("a", "b")])
    assert ByteLevelBPE(spec).encode("abab") == _lib(spec).encode("abab").ids == [3, 1]
    spec = _bpe_spec(["a", "b", "ab", "aba", "c", "bc"], [("a", "b"), ("b", "c"), ("a", "b")])
    assert ByteLevelBPE(spec).encode("abc") == _lib(spec).encode("abc").ids == [0, 5]


def test_unknown_characters_like_tokenizers() -> None:
    """No byte token and no unk: dropped; an unk: one per character, or one per run with fuse_unk;
    byte fallback: <0xAB> tokens of the character's UTF-8 bytes."""
    vocab = ["<unk>", "a", "b", "<0xC3>", "<0xA9>"]
    for model in ({}, {"unk_token": "<unk>"}, {"unk_token": "<unk>", "fuse_unk": True},
                  {"byte_fallback": True}, {"byte_fallback": True, "unk_token": "<unk>", "fuse_unk": True}):
        spec = _bpe_spec(vocab, [], **model)
        for t in ("axyb", "éa", "aé€b", "€€"):
            assert ByteLevelBPE(spec).encode(t) == _lib(spec).encode(t).ids, (model, t)


SPM_TEXTS = [*SAMPLES, "▁already▁spaced", " lead", "<0x41>", "end "]


@pytest.mark.parametrize("scheme,split", [("first", False), ("always", True), ("never", False)])
def test_metaspace_byte_fallback_and_decoders(scheme, split) -> None:
    """A SentencePiece-style tokenizer.json (Metaspace, byte fallback, <s> special) against the tokenizers
    library, encode and decode, with the Replace/ByteFallback/Fuse/Strip chain and the Metaspace decoder."""
    from tokenizers import models, pre_tokenizers, trainers

    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=scheme, split=split)
    trainer = trainers.BpeTrainer(vocab_size=300, limit_alphabet=50, show_progress=False)
    tk.train_from_iterator(CORPUS, trainer)
    spec = json.loads(tk.to_str())
    vocab = spec["model"]["vocab"]
    for t in ["<unk>", "<s>", *[f"<0x{b:02X}>" for b in range(256)]]:
        vocab[t] = len(vocab)
    spec["model"] |= {"byte_fallback": True, "fuse_unk": True, "unk_token": "<unk>"}
    spec["added_tokens"] = [{"id": vocab["<s>"], "content": "<s>", "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}]
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    for dec in (spec["decoder"], {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme,
                                  "split": split}):
        spec["decoder"] = dec
        lib, ours = _lib(spec), ByteLevelBPE(spec)
        n_bytes = 0
        for t in [*SPM_TEXTS, "<s>x<s> y"]:
            ids = lib.encode(t, add_special_tokens=False).ids
            assert ours.encode(t) == ids, t
            assert ours.decode(ids) == lib.decode(ids), t
            assert ours.decode(ids, False) == lib.decode(ids, skip_special_tokens=False), t
            n_bytes += sum(1 for i in ids if i >= vocab["<0x00>"])
        assert n_bytes > 50  # byte fallback was exercised
        for cut in range(1, 4):  # part of a UTF-8 character
            ids = lib.encode("🙂", add_special_tokens=False).ids[:cut]
            assert ours.decode(ids) == lib.decode(ids)


def test_legacy_llama_normalizer() -> None:
    """Llama-2's tokenizer.json: normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer."""
    from tokenizers import models, normalizers

    vocab = ["<unk>", "▁", "h", "i", "▁h", "▁hi", "x", *[f"<0x{b:02X}>" for b in range(256)]]
    tk = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(vocab)}, [("▁", "h"), ("▁h", "i")],
                                         byte_fallback=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    spec = json.loads(tk.to_str())
    for t in ("hi hi", " hix", "é hi"):
        assert ByteLevelBPE(spec).encode(t) == tk.encode(t, add_special_tokens=False).ids


def test_llama3_and_qwen2_splits_match_the_regex() -> None:
    """The hand-written scanners against the regex, as the tokenizers library runs it, on random text
    over letters, digits, marks, punctuation, emoji, CR/LF and other white space."""
    import random

    from tokenizers import Regex, pre_tokenizers

    from edgellm.runtime.pretok import GPT2_REGEX, LLAMA3_REGEX, QWEN2_REGEX, SPLITTERS

    pool = list("aZéß'sStTrReEvVmMlLdDſ0123456789٣½Ⅻ\t\n\r \u3000\x0b\x85\u2028.,;!?-_()<>|🙂中\u0301") + [
        "'s", "'S", "'Re", "'ll", "\r\n", "  ", "\n\n"]
    rng = random.Random(7)
    for regex in (GPT2_REGEX, LLAMA3_REGEX, QWEN2_REGEX):
        ref = pre_tokenizers.Split(Regex(regex), behavior="isolated")
        for _ in range(3000):
            s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 16)))
            assert SPLITTERS[regex](s) == [p for p, _ in ref.pre_tokenize_str(s)], (regex[:20], s)


def test_bos_from_template_and_model_ids(tok_file: Path) -> None:
    """A TemplateProcessing post-processor says whether BOS is added; bos_id / eos_id arguments (ids in
    the vocabulary) win over the names found."""
    spec = json.loads(tok_file.read_text())
    assert ByteLevelBPE(spec).bos_id == 1
    spec["post_processor"] = {"type": "TemplateProcessing", "pair": [], "special_tokens": {},
                              "single": [{"Sequence": {"id": "A", "type_id": 0}}]}
    assert ByteLevelBPE(spec).bos_id is None and ByteLevelBPE(spec, bos_id=1).bos_id is None
    spec["post_processor"]["single"].insert(0, {"SpecialToken": {"id": "<eos>", "type_id": 0}})
    spec["post_processor"]["special_tokens"] = {"<eos>": {"id": "<eos>", "ids": [2], "tokens": ["<eos>"]}}
    assert ByteLevelBPE(spec).bos_id == 2 and ByteLevelBPE(spec, bos_id=0).bos_id == 0
    assert ByteLevelBPE(spec, eos_id=0).eos_id == 0 and ByteLevelBPE(spec, eos_id=10**6).eos_id == 2


def test_merges_naming_unknown_tokens(tmp_path: Path) -> None:
    spec = _bpe_spec(["a", "b"], [("a", "b")])
    with pytest.raises(EdgeLLMError, match="merge 'a' 'b' names 'ab', which is not in the vocabulary"):
        ByteLevelBPE(spec)
    f = tmp_path / "m.json"
    f.write_text(json.dumps(spec))
    with pytest.raises(EdgeLLMError, match="m.json: merge"):
        load_tokenizer(f)


def test_empty_added_token_is_ignored() -> None:
    """An added token with empty content matches nothing (the old scan stayed on it forever)."""
    spec = _bpe_spec(["a", "b", "ab"], [("a", "b")])
    spec["added_tokens"] = [{"id": 3, "content": "", "special": True}]
    spec["added_tokens"][0] |= {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
    assert ByteLevelBPE(spec).encode("ab a") == _lib(spec).encode("ab a").ids == [2, 0]
