"""User text and token ids from the command line, stdin or a file, checked once (standard library only).

Runs on the board too (the deployed run_on_board.py uses it): no numpy, no typer, Python 3.10.

Python turns bytes that are not UTF-8 in argv (and in stdin under a C locale) into lone surrogates
(U+DC80..U+DCFF, "surrogate escapes"); no tokenizer can encode those, so they are refused here with
the offending byte named, instead of failing deep inside a tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from edgellm.errors import EdgeLLMError

MAX_TOKEN_ID = 2**31 - 1  # ids above this are refused even when the vocabulary is not known yet


def check_utf8(text: str, what: str) -> str:
    """text unchanged when it is valid Unicode; EdgeLLMError naming `what` and the first bad byte."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        c = ord(text[e.start])
        byte = f"byte 0x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"code point U+{c:04X}"
        raise EdgeLLMError(f"{what} is not valid UTF-8 text ({byte} at character {e.start})") from None
    return text


def decode_utf8(raw: bytes, what: str) -> str:
    """UTF-8 bytes -> str; EdgeLLMError naming `what` and the first bad byte's offset."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgeLLMError(f"{what} is not valid UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                           f"{e.start})") from None


def read_text_file(path: Path, what: str) -> str:
    """A user's text file (--text, --prompts) as UTF-8; one-line EdgeLLMError naming `what` and the path
    when it is missing, a directory, not a regular file (a FIFO or device, whose read could wait
    forever), unreadable or not UTF-8 (decode_utf8: the first bad byte and its offset)."""
    if path.is_dir():
        raise EdgeLLMError(f"{what} {path} is a directory")
    if path.exists() and not path.is_file():
        raise EdgeLLMError(f"{what} {path} is not a regular file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EdgeLLMError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise EdgeLLMError(f"cannot read {what} {path}: {e.strerror or e}") from None
    return decode_utf8(raw, f"{what} {path}")


def parse_token_ids(text: str, what: str, vocab_size: int | None = None) -> list[int]:
    """'1, 2 3' -> [1, 2, 3]. EdgeLLMError naming `what` on anything that is not a decimal integer, on
    negative ids, and on ids outside [0, vocab_size) (or above MAX_TOKEN_ID without a vocabulary)."""
    check_utf8(text, what)
    limit = MAX_TOKEN_ID + 1 if vocab_size is None else int(vocab_size)
    ids = []
    for part in text.replace(",", " ").split():
        digits = part[1:] if part[:1] in "+-" else part
        if not (digits.isascii() and digits.isdigit()):
            raise EdgeLLMError(f"{what}: {_short(part)!r} is not an integer token id")
        t = int(part) if len(digits) <= 18 else None  # longer: out of range (and int() may refuse it)
        if t is None or not 0 <= t < limit:
            span = f"the vocabulary [0, {limit})" if vocab_size is not None else f"[0, {limit})"
            raise EdgeLLMError(f"{what}: token id {_short(part)} is outside {span}")
        ids.append(t)
    return ids


def _short(s: str, n: int = 24) -> str:
    return s if len(s) <= n else s[:n] + "..."
