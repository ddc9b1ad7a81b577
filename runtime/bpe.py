"""A pure-Python BPE tokenizer reading tokenizer.json, so the board needs no `tokenizers`.

One implementation for the tokenizers edgellm meets: GPT-2-style byte-level BPE (the shipped tiny
model; llama.cpp's "gpt2" GGUF vocabularies with the GPT-2, Llama-3 or Qwen2 split) and
SentencePiece-style BPE with byte fallback (llama.cpp's "llama" GGUF vocabularies: Metaspace, "<0xAB>"
byte tokens). A GGUF's tokenizer is turned into tokenizer.json by models/loaders/gguf_tokenizer.py
and read by this class, in `generate`/`eval` and from a compiled project alike.

Encoding follows the `tokenizers` library step by step: added/special tokens split out first
(leftmost-longest, honouring single_word/lstrip/rstrip), the normalizer and pre-tokenizer
(runtime/bpe_steps.py, runtime/pretok.py), then BPE merges by rank with a priority queue, characters
missing from the vocabulary going to byte-fallback tokens, the unk token (fused when fuse_unk) or
nowhere. Decoding runs the decoder chain. A TemplateProcessing post-processor says whether BOS is
added. Unsupported features raise UnsupportedTokenizer; `load_tokenizer` then falls back to the
`tokenizers` library when it is installed.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime.bpe_steps import (
    UnsupportedTokenizer,
    byte_to_unicode,
    decoder,
    normalizer,
    pre_tokenizer,
)
from edgellm.runtime.pretok import WHITE_SPACE, split_gpt2
from edgellm.runtime.text import check_utf8

__all__ = ["ByteLevelBPE", "UnsupportedTokenizer", "byte_to_unicode", "load_tokenizer", "split_gpt2"]

BOS_NAMES = ("<|begin_of_text|>", "<s>", "<|endoftext|>", "<bos>")  # as models/loaders/tokenizer.py
EOS_NAMES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", "<|eot_id|>")


class ByteLevelBPE:
    """encode(text) -> ids (no special tokens added), decode(ids) -> text (special tokens skipped).

    bos_id is the id prepended to prompts (None when the tokenizer adds none: a TemplateProcessing
    post-processor without a leading special token); eos_id the end-of-sequence id (or None).
    bos_id / eos_id arguments (ids inside the vocabulary) take precedence over the names found."""

    def __init__(self, spec: dict[str, Any], source: str = "tokenizer.json", bos_id: int | None = None,
                 eos_id: int | None = None) -> None:
        self.source = source
        m = spec.get("model") or {}
        self._read_model(m)
        self.added = {str(t["content"]): t for t in spec.get("added_tokens") or []}
        for t in self.added.values():
            self.vocab.setdefault(t["content"], int(t["id"]))
        self.inv = {v: k for k, v in self.vocab.items()}
        for t in self.added.values():
            self.inv[int(t["id"])] = t["content"]
        self.special_ids = {int(t["id"]) for t in self.added.values() if t.get("special")}
        self._added_by_first: dict[str, list[str]] = {}  # first character -> added tokens, longest first
        for t in sorted(self.added, key=len, reverse=True):
            if t:
                self._added_by_first.setdefault(t[0], []).append(t)
        self.normalize = normalizer(spec.get("normalizer"), source)
        self.pre_tokenize, self.byte_level = pre_tokenizer(spec.get("pre_tokenizer"), source)
        self.decode_tokens = decoder(spec.get("decoder"), source)
        self._cache: dict[str, list[int]] = {}
        add_bos, template_bos = self._template(spec.get("post_processor"))
        bos = self._known(bos_id)
        bos = bos if bos is not None else template_bos
        self.bos_id = (bos if bos is not None else self._find(BOS_NAMES)) if add_bos else None
        self.eos_id = self._known(eos_id) if self._known(eos_id) is not None else self._find(EOS_NAMES)

    def _read_model(self, m: dict[str, Any]) -> None:
        if m.get("type", "BPE") != "BPE":
            raise UnsupportedTokenizer(f"{self.source}: model type {m.get('type')!r} (only BPE is supported)")
        for k in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
            if m.get(k):
                raise UnsupportedTokenizer(f"{self.source}: BPE option {k}={m[k]!r} is not supported")
        self.vocab: dict[str, int] = {str(k): int(v) for k, v in m["vocab"].items()}
        # (left, right) -> (rank, merged); a merge listed twice keeps its last rank, as tokenizers does
        self.merges: dict[tuple[str, str], tuple[int, str]] = {}
        for r, mg in enumerate(m.get("merges", [])):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            for t in (a, b, a + b):
                if t not in self.vocab:
                    raise EdgeLLMError(f"{self.source}: merge {a!r} {b!r} names {t!r}, which is not in the "
                                       "vocabulary")
            self.merges[(a, b)] = (r, a + b)
        self.ignore_merges = bool(m.get("ignore_merges", False))
        self.byte_fallback = bool(m.get("byte_fallback", False))
        self.fuse_unk = bool(m.get("fuse_unk", False))
        self.unk = m.get("unk_token")
        if self.unk is not None and self.unk not in self.vocab:
            raise EdgeLLMError(f"{self.source}: unk_token {self.unk!r} is not in the vocabulary")

    def _template(self, spec: dict[str, Any] | None) -> tuple[bool, int | None]:
        """(adds BOS, its id) from a TemplateProcessing post-processor; (True, None) without one."""
        items = (spec or {}).get("processors", []) if (spec or {}).get("type") == "Sequence" else [spec]
        for p in items:
            if p and p.get("type") == "TemplateProcessing":
                first = (p.get("single") or [{}])[0]
                if "SpecialToken" not in first:
                    return False, None
                name = first["SpecialToken"]["id"]
                ids = ((p.get("special_tokens") or {}).get(name) or {}).get("ids") or [self.vocab.get(name)]
                return True, (int(ids[0]) if ids[0] is not None else None)
        return True, None

    @classmethod
    def from_file(cls, path: str | Path, bos_id: int | None = None,
                  eos_id: int | None = None) -> ByteLevelBPE:
        """Load tokenizer.json; EdgeLLMError naming the file when unreadable or malformed."""
        p = Path(path)
        if p.exists() and not p.is_file():
            raise EdgeLLMError(f"{p}: not a regular file")
        try:
            spec = jsonfile.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EdgeLLMError(f"{p}: cannot read tokenizer: {e}") from None
        return cls.from_spec(spec, str(p), bos_id, eos_id)

    @classmethod
    def from_spec(cls, spec: Any, source: str, bos_id: int | None = None,
                  eos_id: int | None = None) -> ByteLevelBPE:
        """Build from a parsed tokenizer.json; EdgeLLMError naming `source` when malformed."""
        try:
            if not isinstance(spec, dict):
                raise TypeError("the file is not a JSON object")
            return cls(spec, source, bos_id, eos_id)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise EdgeLLMError(f"{source}: malformed tokenizer.json ({type(e).__name__}: {e})") from None

    def _find(self, names: tuple[str, ...]) -> int | None:
        for n in names:
            if n in self.vocab:
                return self.vocab[n]
        return None

    def _known(self, i: int | None) -> int | None:
        return int(i) if i is not None and int(i) in self.inv else None

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return max(self.inv) + 1 if self.inv else 0

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string, or None."""
        return self.vocab.get(token)

    # ---- encoding ----

    def _split_added(self, text: str) -> list[tuple[str, bool, bool]]:
        """[(piece, is_added_token, starts_at_0)], added tokens matched leftmost-longest."""
        out: list[tuple[str, bool, bool]] = []
        start = i = 0
        n = len(text)
        while i < n and self._added_by_first:
            cands = self._added_by_first.get(text[i], ())
            tok = next((t for t in cands if text.startswith(t, i)), None)
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
                out.append((text[start:a], False, start == 0))
            out.append((tok, True, a == 0))
            start = i = b
        if start < n:
            out.append((text[start:], False, start == 0))
        return out

    @staticmethod
    def _word_bounded(text: str, i: int, n: int) -> bool:
        def word(c: str) -> bool:
            return c.isalnum() or c == "_"
        return (i == 0 or not word(text[i - 1])) and (i + n >= len(text) or not word(text[i + n]))

    def _symbols(self, word: str) -> list[str]:
        """The word's characters as vocabulary symbols: byte-fallback tokens or unk for unknown ones."""
        syms: list[str] = []
        unk_run = False
        for c in word:
            if c in self.vocab:
                syms.append(c)
                unk_run = False
                continue
            if self.byte_fallback:
                bts = [f"<0x{b:02X}>" for b in c.encode("utf-8")]
                if all(t in self.vocab for t in bts):
                    syms.extend(bts)
                    unk_run = False
                    continue
            if self.unk is not None:
                if not (self.fuse_unk and unk_run):
                    syms.append(self.unk)
                unk_run = True
        return syms

    def _merge(self, syms: list[str]) -> list[str]:
        """Apply merges lowest rank first (leftmost on ties), as tokenizers' Word::merge_all."""
        n = len(syms)
        nxt, prv, alive = list(range(1, n + 1)), list(range(-1, n - 1)), [True] * n
        heap = [(r, i, new) for i in range(n - 1)
                for r, new in [self.merges.get((syms[i], syms[i + 1]), (-1, ""))] if r >= 0]
        heapq.heapify(heap)
        while heap:
            _, i, new = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j >= n or self.merges.get((syms[i], syms[j]), (0, None))[1] != new:
                continue
            syms[i], alive[j] = new, False
            nxt[i] = k = nxt[j]
            if k < n:
                prv[k] = i
            for a, b in ((prv[i], i), (i, k)):
                if 0 <= a and b < n and (syms[a], syms[b]) in self.merges:
                    r, m = self.merges[(syms[a], syms[b])]
                    heapq.heappush(heap, (r, a, m))
        return [s for s, ok in zip(syms, alive, strict=True) if ok]

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        if self.ignore_merges and word in self.vocab:
            ids = [self.vocab[word]]
        else:
            ids = [self.vocab[s] for s in self._merge(self._symbols(word))]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of text, without BOS/EOS; EdgeLLMError if text holds bytes that were not UTF-8."""
        check_utf8(text, "text")
        ids: list[int] = []
        for piece, is_added, first in self._split_added(text):
            if is_added:
                ids.append(int(self.added[piece]["id"]))
                continue
            for w in self.pre_tokenize([(self.normalize(piece), first)]):
                ids.extend(self._bpe(w))
        return ids

    # ---- decoding ----

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Text of ids through the decoder (invalid UTF-8 becomes U+FFFD, as in tokenizers)."""
        toks = []
        for i in ids:
            i = int(i)
            if skip_special_tokens and i in self.special_ids:
                continue
            tok = self.inv.get(i)
            if tok is None:
                raise EdgeLLMError(f"token id {i} is outside the vocabulary of {self.source}")
            toks.append(tok)
        return self.decode_tokens(toks)


def load_tokenizer(path: str | Path, bos_id: int | None = None, eos_id: int | None = None) -> Any:
    """The pure-Python tokenizer for path, or the `tokenizers`-based one when the file needs features
    this module lacks (and `tokenizers` is installed). bos_id / eos_id: the model's, when known."""
    try:
        return ByteLevelBPE.from_file(path, bos_id, eos_id)
    except UnsupportedTokenizer as e:
        missing = f"{e}, and the tokenizers package is not installed (pip install tokenizers)"
        try:
            from edgellm.models.loaders.tokenizer import Tokenizer

            return Tokenizer.from_file(path, bos_id, eos_id)
        except ImportError:
            raise EdgeLLMError(missing) from None
