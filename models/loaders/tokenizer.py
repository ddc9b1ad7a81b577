"""Tokenizer: a thin wrapper over the `tokenizers` library's tokenizer.json."""

from __future__ import annotations

import os
from pathlib import Path

from edgellm.errors import CheckpointError
from edgellm.runtime.text import check_utf8

BOS_NAMES = ("<|begin_of_text|>", "<s>", "<|endoftext|>", "<bos>")
EOS_NAMES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", "<|eot_id|>")


class Tokenizer:
    """encode(text) -> ids (no special tokens added), decode(ids) -> text, bos/eos ids."""

    def __init__(self, tok: object, bos_id: int | None = None, eos_id: int | None = None,
                 source: str = "") -> None:
        self._tok = tok
        self.source = source
        self.bos_id = bos_id if bos_id is not None else self._find(BOS_NAMES)
        self.eos_id = eos_id if eos_id is not None else self._find(EOS_NAMES)

    @classmethod
    def from_file(cls, path: str | os.PathLike, bos_id: int | None = None,
                  eos_id: int | None = None) -> Tokenizer:
        """Load tokenizer.json; CheckpointError if missing or malformed."""
        p = Path(path)
        if p.exists() and not p.is_file():
            raise CheckpointError(f"{p}: not a regular file")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{p}: cannot read tokenizer: {e}") from e
        return cls.from_str(text, bos_id, eos_id, source=str(p))

    @classmethod
    def from_str(cls, text: str, bos_id: int | None = None, eos_id: int | None = None,
                 source: str = "tokenizer.json") -> Tokenizer:
        """Build from tokenizer.json text."""
        from tokenizers import Tokenizer as HFTokenizer
        try:
            tok = HFTokenizer.from_str(text)
        except Exception as e:  # tokenizers raises its own Exception subclass
            raise CheckpointError(f"{source}: malformed tokenizer.json: {str(e).splitlines()[0]}") from e
        return cls(tok, bos_id, eos_id, source)

    def _find(self, names: tuple[str, ...]) -> int | None:
        for n in names:
            i = self._tok.token_to_id(n)
            if i is not None:
                return int(i)
        return None

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Token ids of text, without BOS/EOS (prepend bos_id yourself); EdgeLLMError if text holds
        bytes that were not UTF-8 (surrogate escapes)."""
        return list(self._tok.encode(check_utf8(text, "text"), add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        """Text of ids, special tokens skipped."""
        return str(self._tok.decode([int(i) for i in ids], skip_special_tokens=True))
