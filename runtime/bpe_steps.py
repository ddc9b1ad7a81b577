"""The normalizer, pre-tokenizer and decoder of a tokenizer.json, as the `tokenizers` library runs them
(standard library only; runs on the board).

Supported: normalizers NFC/NFD/NFKC/NFKD/Lowercase/Prepend/Replace (string patterns) and Sequence of
them; pre-tokenizers ByteLevel, Metaspace, Split (with a pattern runtime/pretok.py scans) and
Sequence of them; decoders ByteLevel, Metaspace, Replace (string patterns), ByteFallback, Fuse,
Strip and Sequence of them. Anything else raises UnsupportedTokenizer.

A piece of text travels as (text, first): `first` says it starts at offset 0 of the input, which
Metaspace's prepend_scheme "first" needs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.pretok import SPLITTERS, split_gpt2

Piece = tuple[str, bool]
HEX = frozenset("0123456789abcdefABCDEF")


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


def _items(spec: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The steps of a (possibly Sequence) component; [] for null."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        raise TypeError(f"a component must be an object, got {type(spec).__name__}")
    return list(spec.get(key) or []) if spec.get("type") == "Sequence" else [spec]


def _string_pattern(step: dict[str, Any], what: str, source: str) -> str:
    pat = step.get("pattern") or {}
    if "String" not in pat:
        raise UnsupportedTokenizer(f"{source}: {what} Replace with a regex pattern is not supported")
    return str(pat["String"])


# ---- normalizers ----

def normalizer(spec: dict[str, Any] | None, source: str) -> Callable[[str], str]:
    """The normalizer as a function of one piece of text."""
    fns: list[Callable[[str], str]] = []
    for n in _items(spec, "normalizers"):
        t = n.get("type")
        if t in ("NFC", "NFD", "NFKC", "NFKD"):
            fns.append(lambda s, form=t: unicodedata.normalize(form, s))
        elif t == "Lowercase":
            fns.append(str.lower)
        elif t == "Prepend":
            fns.append(lambda s, p=str(n["prepend"]): p + s if s else s)
        elif t == "Replace":
            a, b = _string_pattern(n, "normalizer", source), str(n["content"])
            fns.append(lambda s, a=a, b=b: s.replace(a, b))
        else:
            raise UnsupportedTokenizer(f"{source}: normalizer {t!r} is not supported")

    def run(s: str) -> str:
        for f in fns:
            s = f(s)
        return s
    return run


# ---- pre-tokenizers ----

PreTokenizer = Callable[[list[Piece]], list[str]]


def pre_tokenizer(spec: dict[str, Any] | None, source: str) -> tuple[PreTokenizer, bool]:
    """(pieces -> words, byte_level): the pre-tokenizer, and whether it maps bytes to GPT-2 characters."""
    steps: list[Callable[[list[Piece]], list[Piece]]] = []
    byte_level = False
    for p in _items(spec, "pretokenizers"):
        t = p.get("type")
        if t == "ByteLevel":
            steps.append(_byte_level(bool(p.get("add_prefix_space", True)), bool(p.get("use_regex", True))))
            byte_level = True
        elif t == "Metaspace":
            steps.append(_metaspace(p, source))
        elif t == "Split":
            steps.append(_split(p, source))
        else:
            raise UnsupportedTokenizer(f"{source}: pre-tokenizer {t!r} is not supported "
                                       "(ByteLevel, Metaspace, Split and Sequence are)")

    def run(pieces: list[Piece]) -> list[str]:
        for s in steps:
            pieces = s(pieces)
        return [w for w, _ in pieces if w]
    return run, byte_level


def _byte_level(add_prefix_space: bool, use_regex: bool) -> Callable[[list[Piece]], list[Piece]]:
    b2u = byte_to_unicode()

    def run(pieces: list[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for text, first in pieces:
            if add_prefix_space and not text.startswith(" "):
                text = " " + text
            for k, w in enumerate(split_gpt2(text) if use_regex else [text]):
                out.append(("".join(b2u[b] for b in w.encode("utf-8")), first and k == 0))
        return out
    return run


def _metaspace(p: dict[str, Any], source: str) -> Callable[[list[Piece]], list[Piece]]:
    rep = str(p.get("replacement", "\u2581"))
    scheme = p.get("prepend_scheme")
    if scheme is None:  # tokenizers < 0.19 wrote add_prefix_space
        scheme = "always" if p.get("add_prefix_space", True) else "never"
    if scheme not in ("always", "first", "never") or len(rep) != 1:
        raise UnsupportedTokenizer(f"{source}: Metaspace prepend_scheme {scheme!r} / replacement {rep!r}")
    split = bool(p.get("split", True))

    def run(pieces: list[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for text, first in pieces:
            text = text.replace(" ", rep)
            if text and not text.startswith(rep) and (scheme == "always" or (scheme == "first" and first)):
                text = rep + text
            if not split:
                out.append((text, first))
                continue
            starts = [0] + [i for i in range(1, len(text)) if text[i] == rep]
            ends = starts[1:] + [len(text)]
            out.extend((text[a:b], first and a == 0) for a, b in zip(starts, ends, strict=True))
        return out
    return run


def _split(p: dict[str, Any], source: str) -> Callable[[list[Piece]], list[Piece]]:
    pat = p.get("pattern") or {}
    fn = SPLITTERS.get(pat.get("Regex")) if "Regex" in pat else None
    if fn is None or p.get("behavior") not in ("Isolated", "isolated") or p.get("invert"):
        raise UnsupportedTokenizer(f"{source}: Split pre-tokenizer with pattern {str(pat)[:60]!r} / behavior "
                                   f"{p.get('behavior')!r} is not supported (the GPT-2, Llama-3 and Qwen2 "
                                   "patterns, Isolated, are)")

    def run(pieces: list[Piece]) -> list[Piece]:
        return [(w, first and k == 0) for text, first in pieces for k, w in enumerate(fn(text))]
    return run


# ---- decoders ----

def decoder(spec: dict[str, Any] | None, source: str) -> Callable[[list[str]], str]:
    """tokens -> text, as the decoder chain (tokens joined with spaces when there is none)."""
    if spec is None:
        return " ".join
    steps: list[Callable[[list[str]], list[str]]] = []
    for d in _items(spec, "decoders"):
        t = d.get("type")
        if t == "ByteLevel":
            steps.append(_decode_byte_level)
        elif t == "ByteFallback":
            steps.append(_decode_byte_fallback)
        elif t == "Fuse":
            steps.append(lambda toks: ["".join(toks)])
        elif t == "Replace":
            a, b = _string_pattern(d, "decoder", source), str(d["content"])
            steps.append(lambda toks, a=a, b=b: [x.replace(a, b) for x in toks])
        elif t == "Strip":
            steps.append(_strip(str(d["content"]), int(d.get("start", 0)), int(d.get("stop", 0))))
        elif t == "Metaspace":
            steps.append(_decode_metaspace(d))
        else:
            raise UnsupportedTokenizer(f"{source}: decoder {t!r} is not supported")

    def run(tokens: list[str]) -> str:
        for s in steps:
            tokens = s(tokens)
        return "".join(tokens)
    return run


def _decode_byte_level(tokens: list[str]) -> list[str]:
    u2b = {c: b for b, c in byte_to_unicode().items()}
    out = bytearray()
    for tok in tokens:
        if all(c in u2b for c in tok):
            out.extend(u2b[c] for c in tok)
        else:
            out.extend(tok.encode("utf-8"))
    return [out.decode("utf-8", errors="replace")]


def byte_token(tok: str) -> int | None:
    """The byte of a byte-fallback token '<0xAB>' (as tokenizers parses it), else None."""
    if len(tok) != 6 or not tok.startswith("<0x") or not tok.endswith(">"):
        return None
    h = tok[3:5]
    if all(c in HEX for c in h) or (h[0] == "+" and h[1] in HEX):
        return int(h, 16)
    return None


def _decode_byte_fallback(tokens: list[str]) -> list[str]:
    out: list[str] = []
    pending = bytearray()

    def flush() -> None:
        if pending:
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                out.extend("\ufffd" for _ in pending)
            pending.clear()
    for tok in tokens:
        b = byte_token(tok)
        if b is not None:
            pending.append(b)
            continue
        flush()
        out.append(tok)
    flush()
    return out


def _strip(content: str, start: int, stop: int) -> Callable[[list[str]], list[str]]:
    def one(tok: str) -> str:
        a, b = 0, len(tok)
        while a < min(start, len(tok)) and tok[a] == content:
            a += 1
        while len(tok) - b < stop and b > a and tok[b - 1] == content:
            b -= 1
        return tok[a:b]
    return lambda toks: [one(t) for t in toks]


def _decode_metaspace(d: dict[str, Any]) -> Callable[[list[str]], list[str]]:
    rep = str(d.get("replacement", "\u2581"))
    scheme = d.get("prepend_scheme") or ("always" if d.get("add_prefix_space", True) else "never")

    def run(tokens: list[str]) -> list[str]:
        return [t.replace(rep, "" if i == 0 and scheme != "never" else " ") for i, t in enumerate(tokens)]
    return run
