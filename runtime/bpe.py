"""A pure-Python byte-level BPE tokenizer reading tokenizer.json, so the board needs no `tokenizers`.

Covers what the `tokenizers` library writes for GPT-2-style byte-level BPE (the shipped tiny
model's tokenizer): added/special tokens (split out first, leftmost-longest), an optional Unicode
normalizer (NFC/NFD/NFKC/NFKD/Lowercase), the ByteLevel pre-tokenizer (GPT-2 split pattern, done by
a hand-written scanner over Unicode categories because Python's `re` has no \\p{L}/\\p{N}),
BPE merges by rank, and the ByteLevel decoder. Anything else raises UnsupportedTokenizer;
`load_tokenizer` then falls back to the `tokenizers` library when it is installed.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.text import check_utf8

BOS_NAMES = ("<|begin_of_text|>", "<s>", "<|endoftext|>", "<bos>")  # as models/loaders/tokenizer.py
EOS_NAMES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", "<|eot_id|>")
# Unicode White_Space (what \s matches in the tokenizers' regex engine)
WHITE_SPACE = frozenset([*map(chr, range(0x9, 0xE)), " ", "\x85", "\xa0", "\u1680",
                         *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")
NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase"}


class UnsupportedTokenizer(EdgeLLMError):
    """tokenizer.json uses a feature this pure-Python tokenizer does not implement."""


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _kind(ch: str) -> str:
    """'s' (white space), 'L' (letter), 'N' (number) or 'o' (anything else)."""
    if ch in WHITE_SPACE:
        return "s"
    c = unicodedata.category(ch)[0]
    return c if c in "LN" else "o"


def split_gpt2(text: str) -> list[str]:
    """The GPT-2 pre-tokenizer pattern, leftmost-first as a backtracking regex engine runs it:
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    out, i, n = [], 0, len(text)
    kinds = [_kind(c) for c in text]
    while i < n:
        j = 0
        if text[i] == "'":
            for c in CONTRACTIONS:
                if text.startswith(c, i + 1):
                    j = i + 1 + len(c)
                    break
        if not j:
            k = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] != "s" else i
            if kinds[k] in ("L", "N", "o"):
                want = kinds[k]
                j = k
                while j < n and kinds[j] == want:
                    j += 1
            else:  # white space run
                j = i
                while j < n and kinds[j] == "s":
                    j += 1
                if j < n and j - i >= 2:
                    j -= 1  # \s+(?!\S): leave the last space to prefix the next word
        out.append(text[i:j])
        i = j
    return out


class ByteLevelBPE:
    """encode(text) -> ids (no special tokens added), decode(ids) -> text (special tokens skipped)."""

    def __init__(self, spec: dict[str, Any], source: str = "tokenizer.json") -> None:
        self.source = source
        m = spec.get("model") or {}
        if m.get("type", "BPE") != "BPE":
            raise UnsupportedTokenizer(f"{source}: model type {m.get('type')!r} (only BPE is supported)")
        for k in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
            if m.get(k):
                raise UnsupportedTokenizer(f"{source}: BPE option {k}={m[k]!r} is not supported")
        if m.get("byte_fallback"):
            raise UnsupportedTokenizer(f"{source}: BPE byte_fallback is not supported")
        self.vocab: dict[str, int] = {str(k): int(v) for k, v in m["vocab"].items()}
        self.ranks: dict[tuple[str, str], int] = {}
        for r, mg in enumerate(m.get("merges", [])):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            self.ranks.setdefault((a, b), r)
        self.ignore_merges = bool(m.get("ignore_merges", False))
        self.unk = m.get("unk_token")
        self.added = {str(t["content"]): t for t in spec.get("added_tokens") or []}
        for t in self.added.values():
            self.vocab.setdefault(t["content"], int(t["id"]))
        self.inv = {v: k for k, v in self.vocab.items()}
        for t in self.added.values():
            self.inv[int(t["id"])] = t["content"]
        self.special_ids = {int(t["id"]) for t in self.added.values() if t.get("special")}
        self._added_sorted = sorted(self.added, key=len, reverse=True)
        self.normalizers = self._normalizers(spec.get("normalizer"))
        self.add_prefix_space, self.use_regex = self._pre_tokenizer(spec.get("pre_tokenizer"))
        dec = spec.get("decoder")
        if dec is not None and dec.get("type") != "ByteLevel":
            raise UnsupportedTokenizer(f"{source}: decoder {dec.get('type')!r} (only ByteLevel is supported)")
        self.b2u = byte_to_unicode()
        self.u2b = {c: b for b, c in self.b2u.items()}
        self._cache: dict[str, list[int]] = {}
        self.bos_id = self._find(BOS_NAMES)
        self.eos_id = self._find(EOS_NAMES)

    @classmethod
    def from_file(cls, path: str | Path) -> ByteLevelBPE:
        """Load tokenizer.json; EdgeLLMError naming the file when unreadable or malformed."""
        p = Path(path)
        if p.exists() and not p.is_file():
            raise EdgeLLMError(f"{p}: not a regular file")
        try:
            spec = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(spec, dict):
                raise TypeError("the file is not a JSON object")
            return cls(spec, str(p))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EdgeLLMError(f"{p}: cannot read tokenizer: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise EdgeLLMError(f"{p}: malformed tokenizer.json ({type(e).__name__}: {e})") from None

    def _normalizers(self, spec: dict[str, Any] | None) -> list[str]:
        if spec is None:
            return []
        items = spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]
        for n in items:
            if n.get("type") not in NORMALIZERS:
                raise UnsupportedTokenizer(f"{self.source}: normalizer {n.get('type')!r} is not supported")
        return [n["type"] for n in items]

    def _pre_tokenizer(self, spec: dict[str, Any] | None) -> tuple[bool, bool]:
        items = (spec or {}).get("pretokenizers", []) if (spec or {}).get("type") == "Sequence" else [spec]
        if len(items) != 1 or not items[0] or items[0].get("type") != "ByteLevel":
            raise UnsupportedTokenizer(f"{self.source}: pre-tokenizer {spec and spec.get('type')!r} "
                                       "(only ByteLevel is supported)")
        return bool(items[0].get("add_prefix_space", False)), bool(items[0].get("use_regex", True))

    def _find(self, names: tuple[str, ...]) -> int | None:
        for n in names:
            if n in self.vocab:
                return self.vocab[n]
        return None

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return max(self.inv) + 1 if self.inv else 0

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string, or None."""
        return self.vocab.get(token)

    # ---- encoding ----

    def _normalize(self, s: str) -> str:
        for n in self.normalizers:
            s = s.lower() if n == "Lowercase" else unicodedata.normalize(n, s)
        return s

    def _split_added(self, text: str) -> list[tuple[str, bool]]:
        """[(piece, is_added_token)], added tokens matched leftmost-longest (honouring l/rstrip)."""
        out: list[tuple[str, bool]] = []
        start = i = 0
        n = len(text)
        while i < n and self._added_sorted:
            tok = next((t for t in self._added_sorted if text.startswith(t, i)), None)
            if tok and self.added[tok].get("single_word") and not self._word_bounded(text, i, len(tok)):
                tok = None
            if tok is None:
                i += 1
                continue
            a, b = i, i + len(tok)
            if self.added[tok].get("lstrip"):
                while a > start and text[a - 1] in WHITE_SPACE:
                    a -= 1
            if self.added[tok].get("rstrip"):
                while b < n and text[b] in WHITE_SPACE:
                    b += 1
            if a > start:
                out.append((text[start:a], False))
            out.append((tok, True))
            start = i = b
        if start < n:
            out.append((text[start:], False))
        return out

    @staticmethod
    def _word_bounded(text: str, i: int, n: int) -> bool:
        def word(c: str) -> bool:
            return c.isalnum() or c == "_"
        return (i == 0 or not word(text[i - 1])) and (i + n >= len(text) or not word(text[i + n]))

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        if self.ignore_merges and word in self.vocab:
            ids = [self.vocab[word]]
        else:
            syms = list(word)
            while len(syms) > 1:
                pairs = [(self.ranks.get((syms[k], syms[k + 1])), k) for k in range(len(syms) - 1)]
                best = min((r for r, _ in pairs if r is not None), default=None)
                if best is None:
                    break
                a, b = next((syms[k], syms[k + 1]) for r, k in pairs if r == best)
                merged, k = [], 0
                while k < len(syms):
                    if k + 1 < len(syms) and syms[k] == a and syms[k + 1] == b:
                        merged.append(a + b)
                        k += 2
                    else:
                        merged.append(syms[k])
                        k += 1
                syms = merged
            ids = [self._id(s) for s in syms]
        self._cache[word] = ids
        return ids

    def _id(self, sym: str) -> int:
        if sym in self.vocab:
            return self.vocab[sym]
        if self.unk is not None and self.unk in self.vocab:
            return self.vocab[self.unk]
        raise EdgeLLMError(f"{self.source}: symbol {sym!r} is not in the vocabulary and there is "
                           "no unk_token")

    def encode(self, text: str) -> list[int]:
        """Token ids of text, without BOS/EOS; EdgeLLMError if text holds bytes that were not UTF-8."""
        check_utf8(text, "text")
        ids: list[int] = []
        for piece, is_added in self._split_added(text):
            if is_added:
                ids.append(int(self.added[piece]["id"]))
                continue
            piece = self._normalize(piece)
            if self.add_prefix_space and not piece.startswith(" "):
                piece = " " + piece
            for w in (split_gpt2(piece) if self.use_regex else [piece]):
                ids.extend(self._bpe("".join(self.b2u[b] for b in w.encode("utf-8"))))
        return ids

    # ---- decoding ----

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Text of ids (invalid UTF-8 becomes U+FFFD, as the tokenizers ByteLevel decoder does)."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if skip_special_tokens and i in self.special_ids:
                continue
            tok = self.inv.get(i)
            if tok is None:
                raise EdgeLLMError(f"token id {i} is outside the vocabulary of {self.source}")
            if all(c in self.u2b for c in tok):
                out.extend(self.u2b[c] for c in tok)
            else:
                out.extend(tok.encode("utf-8"))
        return out.decode("utf-8", errors="replace")


def load_tokenizer(path: str | Path) -> Any:
    """The pure-Python tokenizer for path, or the `tokenizers`-based one when the file needs features
    this module lacks (and `tokenizers` is installed)."""
    try:
        return ByteLevelBPE.from_file(path)
    except UnsupportedTokenizer as e:
        missing = f"{e}, and the tokenizers package is not installed (pip install tokenizers)"
        try:
            from edgellm.models.loaders.tokenizer import Tokenizer

            return Tokenizer.from_file(path)
        except ImportError:
            raise EdgeLLMError(missing) from None
