"""Autoregressive generation over any backend-like engine (numpy only; runs on the board too).

A backend-like object has `config.max_context`, `reset()` and `forward(tokens (T,), all_logits=False)
-> logits (1, vocab)` that appends the tokens to its KV state (edgellm.models.backend.Backend, and the
FPGA session on the board, have that shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.sampling import Sampler, SamplingParams, topk_samplable

OnToken = Callable[[int], None]


@dataclass
class GenerationResult:
    """What one generate() call produced and how fast.

    tokens holds every generated id, including a final stop id when stop_reason is "eos"/"stop_id".
    token_latencies_s[0] is the TTFT (prefill + first sample); later entries are decode steps.
    """

    prompt_ids: list[int]
    tokens: list[int] = field(default_factory=list)
    stop_reason: str = "max_new_tokens"  # "eos" | "stop_id" | "max_new_tokens" | "context"
    ttft_s: float = 0.0
    token_latencies_s: list[float] = field(default_factory=list)
    speculation: Any = None  # runtime.speculative.SpecStats when generated speculatively

    @property
    def text_tokens(self) -> list[int]:
        """Generated ids without the stop id that ended generation."""
        if self.stop_reason in ("eos", "stop_id"):
            return self.tokens[:-1]
        return list(self.tokens)

    @property
    def decode_s(self) -> float:
        """Seconds spent in decode steps (every token after the first)."""
        return float(sum(self.token_latencies_s[1:]))

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Decode throughput in tokens/s; None when no decode step ran (a single token)."""
        n = len(self.token_latencies_s) - 1
        if n <= 0:
            return None
        return n / self.decode_s if self.decode_s > 0 else float("inf")

    def summary(self) -> dict[str, Any]:
        """Plain dict for JSON / tables."""
        out = {"prompt_tokens": len(self.prompt_ids), "new_tokens": len(self.tokens),
               "stop_reason": self.stop_reason, "ttft_s": self.ttft_s,
               "decode_tokens_per_s": self.decode_tokens_per_s}
        if self.speculation is not None:
            out["speculation"] = self.speculation.summary()
        return out


def context_of(backend: Any) -> int:
    """The most positions a backend-like object can hold."""
    try:
        return int(backend.config.max_context)
    except AttributeError as e:
        raise EdgeLLMError(f"backend {type(backend).__name__} has no config.max_context") from e


def check_prompt(prompt_ids: Sequence[int], context: int, vocab_size: int | None = None) -> list[int]:
    """Validate a prompt against the context and vocabulary; return it as a list of ints."""
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise EdgeLLMError("empty prompt")
    if len(ids) > context:
        raise EdgeLLMError(f"prompt of {len(ids)} tokens is longer than the model's context of "
                           f"{context} tokens")
    if vocab_size is not None:
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise EdgeLLMError(f"prompt token id {bad[0]} is outside the vocabulary [0, {vocab_size})")
    return ids


def argmax_on_device(backend: Any, params: SamplingParams) -> bool:
    """Whether a greedy token can come from the backend's own argmax: greedy sampling without a
    repetition penalty needs only the argmax, and a device session reads the LM head's
    (runtime/session.py forward_argmax, verify_argmax) instead of the logits."""
    return params.greedy and params.repetition_penalty == 1.0 and hasattr(backend, "forward_argmax")


def device_picker(backend: Any, sampler: Sampler) -> Callable[[Sequence[int], Sequence[int]], int]:
    """feed(tokens, history) -> the next token: the tokens fed as plain decode does, the token picked from
    what the backend can give without its logits when the sampling allows (the LM head's argmax when
    greedy, argmax_on_device; its top-k when sampling with a top-k filter of at most the head's k and no
    repetition penalty, sampling.topk_samplable: Sampler.next_from_top, the same pick), else the sampler
    over the logits."""
    params = sampler.params
    if argmax_on_device(backend, params):
        return lambda tokens, history: int(backend.forward_argmax(np.asarray(tokens, np.int64)))
    if hasattr(backend, "forward_top") and topk_samplable(params, int(getattr(backend, "head_top_k", 0))):
        def from_top(tokens: Sequence[int], history: Sequence[int]) -> int:
            top = backend.forward_top(np.asarray(tokens, np.int64))
            return sampler.next_from_top(top.ids, top.values)
        return from_top
    return lambda tokens, history: sampler.next(
        np.asarray(backend.forward(np.asarray(tokens, np.int64), all_logits=False))[-1], history)


def generate(backend: Any, prompt_ids: Sequence[int], params: SamplingParams,
             on_token: OnToken | None = None, past: Sequence[int] | None = None,
             speculate: Any = None) -> GenerationResult:
    """Prefill the prompt, then sample and decode until a stop id, max_new_tokens or the context end.

    The backend is reset first, unless `past` lists the ids its KV state already holds (a conversation
    going on): then only prompt_ids are prefilled, after them, and the context counts both. Greedy
    decode without a repetition penalty on a device takes the LM head's argmax (argmax_on_device).
    on_token(id) is called as each token arrives, except a stop id. speculate: a
    runtime.speculative.SpecConfig (mode lookup or self) verifies drafted tokens in blocks
    (runtime/speculative.py): the same tokens when greedy, the same distribution when sampling.
    """
    if speculate is not None and speculate.on:
        from edgellm.runtime import drafters, speculative

        return speculative.generate_speculative(backend, prompt_ids, params, speculate,
                                                drafters.make_drafter(speculate, backend), on_token, past)
    context = context_of(backend)
    vocab = getattr(getattr(backend, "config", None), "vocab_size", None)
    kept = [int(t) for t in past] if past is not None else []
    ids = check_prompt(prompt_ids, context - len(kept), vocab)
    sampler = Sampler(params)
    stops = params.stop_set()
    res = GenerationResult(prompt_ids=list(ids))
    history = kept + list(ids)
    if past is None:
        backend.reset()
    next_token = device_picker(backend, sampler)

    t0 = time.perf_counter()
    tok = next_token(ids, history)
    while True:
        t1 = time.perf_counter()
        res.token_latencies_s.append(t1 - t0)
        res.tokens.append(tok)
        history.append(tok)
        if tok in stops:
            res.stop_reason = "eos" if tok == params.eos_id and params.stop_at_eos else "stop_id"
            break
        if on_token is not None:
            on_token(tok)
        if len(res.tokens) >= params.max_new_tokens:
            res.stop_reason = "max_new_tokens"
            break
        if len(history) >= context:  # no room to feed this token back
            res.stop_reason = "context"
            break
        t0 = time.perf_counter()
        tok = next_token([tok], history)
    res.ttft_s = res.token_latencies_s[0]
    return res
