"""Generated token ids -> text deltas for a response, stop strings cut out (standard library only).

Each push decodes every id so far (a token may complete a multi-byte character or change how the
previous ones read) and releases the new text, holding back an incomplete UTF-8 sequence (U+FFFD at the
end) and any tail that could still grow into a stop string. When a stop string appears, the text ends
before it and `stopped` is set. The deltas concatenate to `text`, which is what `edgellm generate`
prints for the same ids when there are no stop strings.
"""

from __future__ import annotations

from typing import Any


class TextStream:
    """Token ids in, text deltas out."""

    def __init__(self, codec: Any, stops: tuple[str, ...] = ()) -> None:
        self.codec = codec
        self.stops = tuple(s for s in stops if s)
        self.ids: list[int] = []
        self.text = ""  # what was released
        self.stopped = False

    def push(self, tok: int) -> str:
        """Add a generated id; the text that can be sent now (maybe empty)."""
        self.ids.append(int(tok))
        if self.stopped:
            return ""
        full = self.codec.decode(self.ids)
        if full.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next bytes
            return ""
        return self._release(full, final=False)

    def finish(self) -> str:
        """The text held back at the end of generation."""
        if self.stopped or not self.ids:
            return ""
        return self._release(self.codec.decode(self.ids), final=True)

    def _release(self, full: str, final: bool) -> str:
        n = 0  # the released text is a prefix of the full one, except where decoding revised it
        limit = min(len(full), len(self.text))
        while n < limit and full[n] == self.text[n]:
            n += 1
        cut = len(full)
        hits = [i for i in (full.find(s, max(0, n - len(s) + 1)) for s in self.stops) if i >= 0]
        if hits:
            cut = min(hits)
            self.stopped = True
        elif not final:
            cut -= self._held(full)
        cut = max(cut, n)
        out = full[n:cut]
        self.text = full[:cut]
        return out

    def _held(self, full: str) -> int:
        """Length of the longest tail of full that is a proper prefix of a stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(full)), best, -1):
                if full.endswith(s[:k]):
                    best = k
                    break
        return best
