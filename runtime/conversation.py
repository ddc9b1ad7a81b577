"""A multi-turn conversation that keeps the backend's KV cache between turns (`edgellm chat`).

Each turn prefills only what is new: the reply's last token (sampled, not yet fed), then the text the
template puts between the reply and the next assistant header. That text is found by rendering the
conversation with a marker in place of the reply: rendering(history + [assistant: MARKER, user: new])
must start with rendering(history) + MARKER (true of templates that write a reply where the generation
prompt left off); what follows the marker is the new text. A template that rewrites earlier turns
(one that drops old reasoning, say) fails that test, and the whole conversation is prefilled again.
The same rule as llama.cpp's chat: a reply is kept as the tokens that were generated, not re-tokenized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.chat_template import (
    ChatTemplate,
    Message,
    PlainText,
    encode_rendered,
    end_of_turn_ids,
    token_text,
)
from edgellm.runtime.generation import GenerationResult, context_of, generate
from edgellm.runtime.sampling import SamplingParams

MARKER = "edgellmReplyMarker7f3a9c"  # no spaces: templates that trim a reply leave it whole


@dataclass
class Turn:
    """One reply: the generation, the tokens prefilled for it and whether the cache was rebuilt."""

    result: GenerationResult
    text: str
    prefilled: int
    rebuilt: bool


class Conversation:
    """Messages plus the token ids the backend's KV cache holds for them."""

    def __init__(self, backend: Any, codec: Any, renderer: ChatTemplate | PlainText,
                 params: SamplingParams, system: str | None = None, speculate: Any = None) -> None:
        self.backend, self.codec, self.renderer = backend, codec, renderer
        self.speculate = speculate  # a runtime.speculative.SpecConfig: replies decode speculatively
        stops = tuple(sorted(set(params.stop_ids) | set(end_of_turn_ids(renderer, codec))))
        eos = params.eos_id if params.eos_id is not None else codec.eos_id
        self.params = replace(params, stop_ids=stops, eos_id=eos)
        self.system = system
        self.context = context_of(backend)
        self.reset()

    def reset(self) -> None:
        """Forget every turn (the system message stays) and empty the KV cache."""
        self.messages: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        self.ids: list[int] = []  # what the KV cache holds, position by position
        self.pending: int | None = None  # the last reply's last token: sampled, not fed yet
        self.backend.reset()

    @property
    def free(self) -> int:
        """Context positions not used yet."""
        return self.context - len(self.ids)

    def plan(self, text: str) -> tuple[list[int], bool]:
        """(the tokens to prefill for a user turn, whether the cache must be rebuilt from empty).
        Changes nothing; EdgeLLMError when the turn does not fit the context."""
        user = {"role": "user", "content": text}
        new, rebuilt = None, True
        if self.ids:
            new = self._delta(user)
            rebuilt = new is None
        if new is None:
            new = encode_rendered(self.codec, self.renderer.render([*self.messages, user], True),
                                  self.renderer.adds_bos)
        room = self.context if rebuilt else self.free
        if not new:
            raise EdgeLLMError("empty turn")
        if len(new) > room:
            used = "" if rebuilt else f"; {len(self.ids)} of the {self.context} positions are in use (/reset)"
            raise EdgeLLMError(f"this turn needs {len(new)} tokens, more than the {room} free positions of "
                               f"the context{used}")
        return new, rebuilt

    def _delta(self, user: Message) -> list[int] | None:
        """The new tokens after the cached ones, or None when the template rewrote earlier turns."""
        before = self.messages[:-1]  # the messages the last reply answered
        r0 = self.renderer.render(before, True)
        r1 = self.renderer.render([*before, {"role": "assistant", "content": MARKER}, user], True)
        if not r1.startswith(r0 + MARKER):
            return None
        suffix = r1[len(r0) + len(MARKER):]
        head: list[int] = []
        t = self.pending
        if t is not None:
            stop = t in self.params.stop_set()
            s = token_text(self.codec.tok, t) if stop else None
            if not stop:
                head = [t]  # the reply ended at max tokens: its last token still belongs to it
            elif s and suffix.startswith(s):
                head, suffix = [t], suffix[len(s):]  # the template writes the stop token next: reuse it
        return head + encode_rendered(self.codec, suffix, False) if suffix else head

    def say(self, text: str, on_token: Callable[[int], None] | None = None) -> Turn:
        """Answer a user turn: prefill its new tokens after the cache, generate the reply."""
        new, rebuilt = self.plan(text)
        if rebuilt:
            self.ids, self.pending = [], None
        try:
            res = generate(self.backend, new, self.params, on_token=on_token,
                           past=None if rebuilt else self.ids, speculate=self.speculate)
        except BaseException:
            self.reset()  # the cache may hold part of this turn: start over rather than guess
            raise
        self.ids += new + res.tokens[:-1]  # every sampled token but the last was fed back
        self.pending = res.tokens[-1] if res.tokens else None
        reply = self.codec.decode(res.text_tokens)
        self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        held = getattr(self.backend, "length", len(self.ids))
        if held != len(self.ids):
            self.reset()
            raise EdgeLLMError(f"internal: the KV cache holds {held} positions, the conversation "
                               f"{len(self.ids)}; the conversation was reset")
        return Turn(res, reply, len(new), rebuilt)
