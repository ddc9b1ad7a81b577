"""JSON parsed so that every malformed input is a json.JSONDecodeError (standard library only).

Runs on the board too (deployed with the rest of runtime/): no numpy, Python 3.10.

json.loads raises RecursionError, not a ValueError, on input nested deeper than Python's recursion
limit (`[` * 100000 is 100 kB): a malformed config.json, tokenizer.json or safetensors header then
escaped every `except json.JSONDecodeError` / `except ValueError` written for bad JSON and ended as an
internal error. Every user-supplied JSON file is parsed through loads() here instead.
"""

from __future__ import annotations

import json
from typing import Any


class JSONNestingError(json.JSONDecodeError):
    """JSON nested deeper than the parser can follow (a JSONDecodeError, so a ValueError too)."""

    def __str__(self) -> str:
        return self.msg


def loads(s: str | bytes | bytearray, **kw: Any) -> Any:
    """json.loads(s, **kw); JSONNestingError instead of RecursionError on too deeply nested input."""
    try:
        return json.loads(s, **kw)
    except RecursionError:
        doc = s if isinstance(s, str) else ""
        raise JSONNestingError("JSON nested too deeply (more levels than the parser can follow)",
                               doc, 0) from None
