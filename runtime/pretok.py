"""Pre-tokenizer split patterns as hand-written scanners (standard library only; runs on the board).

The `tokenizers` library splits text with Oniguruma regexes that use \\p{L} / \\p{N}, which Python's
`re` lacks, so each pattern a supported tokenizer.json may name is a scanner here that reproduces
the regex's leftmost-first alternation (as a backtracking engine runs it):

- GPT-2 (ByteLevel with use_regex): 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|
  \\s+(?!\\S)|\\s+
- Llama-3 (llama.cpp pre "llama-bpe", "falcon3", ...; digits in runs of at most 3) and Qwen2 (one
  digit per piece): (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|
  ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import partial

# Unicode White_Space (what \s matches in the tokenizers' regex engine)
WHITE_SPACE = frozenset([*map(chr, range(0x9, 0xE)), " ", "\x85", "\xa0", "\u1680",
                         *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")
# (?i:...) case folding of the contraction letters: ASCII upper case, and U+017F (long s) folds to s
FOLD = {**{c.upper(): c for c in "strevmld"}, "\u017f": "s"}
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def kinds_of(text: str) -> list[str]:
    """Per character: 's' (white space), 'L' (letter), 'N' (number) or 'o' (anything else)."""
    out = []
    for ch in text:
        if ch in WHITE_SPACE:
            out.append("s")
        else:
            c = unicodedata.category(ch)[0]
            out.append(c if c in "LN" else "o")
    return out


def _run(kinds: list[str], i: int, want: str) -> int:
    """End of the run of characters of kind `want` starting at i."""
    n = len(kinds)
    while i < n and kinds[i] == want:
        i += 1
    return i


def _contraction(text: str, i: int, fold: bool) -> int:
    """End of 's, 't, 're, ... at i (case-insensitive when fold), or 0."""
    if text[i] != "'":
        return 0
    for c in CONTRACTIONS:
        got = text[i + 1:i + 1 + len(c)]
        if got == c or (fold and "".join(FOLD.get(ch, ch) for ch in got) == c):
            return i + 1 + len(c)
    return 0


def split_gpt2(text: str) -> list[str]:
    """The GPT-2 pattern (GPT2_REGEX)."""
    out, i, n = [], 0, len(text)
    kinds = kinds_of(text)
    while i < n:
        j = _contraction(text, i, fold=False)
        if not j:
            k = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] != "s" else i
            if kinds[k] != "s":
                j = _run(kinds, k, kinds[k])
            else:  # white space run
                j = _run(kinds, i, "s")
                if j < n and j - i >= 2:
                    j -= 1  # \s+(?!\S): leave the last space to prefix the next word
        out.append(text[i:j])
        i = j
    return out


def split_llama3(text: str, max_digits: int = 3) -> list[str]:
    """The Llama-3 pattern (LLAMA3_REGEX; max_digits=1 gives QWEN2_REGEX)."""
    out, i, n = [], 0, len(text)
    kinds = kinds_of(text)
    while i < n:
        j = _contraction(text, i, fold=True) or _llama3_piece(text, kinds, i, max_digits)
        out.append(text[i:j])
        i = j
    return out


def _llama3_piece(text: str, kinds: list[str], i: int, max_digits: int) -> int:
    """End of the piece at i for the alternatives after the contractions."""
    n, k = len(text), kinds[i]
    # [^\r\n\p{L}\p{N}]?\p{L}+
    if k == "L":
        return _run(kinds, i, "L")
    if text[i] not in "\r\n" and k != "N" and i + 1 < n and kinds[i + 1] == "L":
        return _run(kinds, i + 1, "L")
    if k == "N":  # \p{N}{1,max_digits}
        j = i
        while j < n and j - i < max_digits and kinds[j] == "N":
            j += 1
        return j
    # ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    start = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] == "o" else i
    if kinds[start] == "o":
        j = _run(kinds, start, "o")
        while j < n and text[j] in "\r\n":
            j += 1
        return j
    # white space: \s*[\r\n]+ (up to the last CR/LF of the run), else \s+(?!\S), else \s+
    j = _run(kinds, i, "s")
    last_nl = max(text.rfind("\r", i, j), text.rfind("\n", i, j))
    if last_nl >= 0:
        return last_nl + 1
    if j < n and j - i >= 2:
        return j - 1
    return j


SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    GPT2_REGEX: split_gpt2, LLAMA3_REGEX: split_llama3, QWEN2_REGEX: partial(split_llama3, max_digits=1),
}
