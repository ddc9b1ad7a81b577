"""Token sampling: greedy, temperature, top-k, top-p and repetition penalty (numpy only).

This runs on the board, where only numpy and pynq exist: it must not import torch or onnx.
The order of operations follows Hugging Face `generate`: repetition penalty on the raw logits,
then temperature, then top-k, then top-p, then one draw from the renormalized distribution.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgellm.errors import EdgeLLMError

MAX_TOP_K = 1 << 22  # the largest vocabulary a model config allows (models.config.LIMITS)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick the next token and when to stop.

    temperature 0 means greedy (argmax; ties go to the lowest token id). top_k 0 and top_p 1.0 switch
    those filters off; repetition_penalty 1.0 switches the penalty off. seed None draws fresh entropy.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    max_new_tokens: int = 64
    stop_at_eos: bool = True
    eos_id: int | None = None
    stop_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise EdgeLLMError naming the first out-of-range parameter."""
        def number(v: object) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        def integer(v: object) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        for name in ("temperature", "top_p", "repetition_penalty"):
            v = getattr(self, name)
            if not number(v) or not np.isfinite(v):
                raise EdgeLLMError(f"{name} must be a finite number, got {v}")
        for name in ("top_k", "max_new_tokens"):
            if not integer(getattr(self, name)):
                raise EdgeLLMError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if self.temperature < 0:
            raise EdgeLLMError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 <= self.top_k <= MAX_TOP_K:
            raise EdgeLLMError(f"top_k must be in [0, {MAX_TOP_K}] (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise EdgeLLMError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise EdgeLLMError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        if self.max_new_tokens < 1:
            raise EdgeLLMError(f"max_new_tokens (-n) must be >= 1, got {self.max_new_tokens}")
        if self.seed is not None and (not integer(self.seed) or not 0 <= self.seed < 2**128):
            raise EdgeLLMError(f"seed must be an integer in [0, 2^128), got {self.seed}")

    @property
    def greedy(self) -> bool:
        """True when no randomness is involved."""
        return self.temperature == 0.0

    def stop_set(self) -> frozenset[int]:
        """Token ids that end generation."""
        ids = set(self.stop_ids)
        if self.stop_at_eos and self.eos_id is not None:
            ids.add(self.eos_id)
        return frozenset(ids)


def apply_repetition_penalty(logits: np.ndarray, history: Iterable[int], penalty: float) -> np.ndarray:
    """CTRL / Hugging Face penalty: for each distinct token in history, positive logits are divided
    by penalty and negative ones multiplied by it. logits (vocab,) float64 -> new array (vocab,)."""
    out = np.array(logits, dtype=np.float64, copy=True)
    if penalty == 1.0:
        return out
    ids = np.unique(np.fromiter(history, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < out.size)]
    if ids.size:
        s = out[ids]
        out[ids] = np.where(s < 0, s * penalty, s / penalty)
    return out


def filtered_probs(logits: np.ndarray, params: SamplingParams, history: Iterable[int] = ()) -> np.ndarray:
    """The distribution the sampler draws from: (vocab,) logits -> (vocab,) float64 probabilities
    that sum to 1, zero outside the top-k / top-p support (one-hot at the argmax when greedy)."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1)  # (vocab,)
    if x.size == 0:
        raise EdgeLLMError("empty logits vector")
    if np.isnan(x).any():
        raise EdgeLLMError("logits contain NaN")
    if not np.isfinite(x).any():
        raise EdgeLLMError("logits are all infinite")
    x = apply_repetition_penalty(x, history, params.repetition_penalty)
    probs = np.zeros_like(x)
    if params.greedy:
        probs[int(np.argmax(x))] = 1.0
        return probs
    order = np.argsort(-x, kind="stable")  # (vocab,) descending, ties by lower id first
    if params.top_k > 0:
        order = order[:params.top_k]
    order, p = _tempered(order, x[order], params)
    probs[order] = p
    return probs


def _tempered(order: np.ndarray, z: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """The candidates (ids `order`, their logits z: descending, ties by lower id) after temperature and
    top-p: (ids kept, their probabilities, summing to 1)."""
    p = np.exp((z - z[0]) / params.temperature)  # z[0] is the finite maximum: no overflow
    p /= p.sum()
    if params.top_p < 1.0:
        # smallest prefix whose mass reaches top_p (always at least one token)
        keep = int(np.searchsorted(np.cumsum(p), params.top_p, side="left")) + 1
        order, p = order[:keep], p[:keep]
        p = p / p.sum()
    return order, p


def topk_samplable(params: SamplingParams, k: int) -> bool:
    """Whether a sampled token can come from k top logits alone (the LM head's top-K, ids descending by
    logit, ties by lower id): a top-k filter of at most k and no repetition penalty (which reads every
    logit of the history's tokens)."""
    return not params.greedy and 0 < params.top_k <= k and params.repetition_penalty == 1.0


class Sampler:
    """Picks next tokens; with a fixed seed the sequence of picks is reproducible."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def next(self, logits: np.ndarray, history: Iterable[int] = ()) -> int:
        """logits (vocab,) or (1, vocab) of the next position; history = ids so far (prompt included)."""
        probs = filtered_probs(logits, self.params, history)  # (vocab,)
        if self.params.greedy:
            return int(np.argmax(probs))
        support = np.flatnonzero(probs)  # ascending ids
        return draw(support, probs[support], self.rng)

    def next_from_top(self, ids: np.ndarray, values: np.ndarray) -> int:
        """The same pick as next() from the k top logits alone (ids descending by logit, ties by lower id:
        the LM head's top-K) when topk_samplable(params, k): the same candidates, probabilities and draw."""
        if not topk_samplable(self.params, len(ids)):
            raise EdgeLLMError(f"sampling from {len(ids)} top logits needs top_k in 1..{len(ids)} and no "
                               "repetition penalty")
        z = np.asarray(values, np.float64)[:self.params.top_k]
        if not np.isfinite(z[0]) or np.isnan(z).any():
            raise EdgeLLMError("the top logits are not finite")
        order, p = _tempered(np.asarray(ids, np.int64)[:self.params.top_k], z, self.params)
        by_id = np.argsort(order, kind="stable")
        keep = p[by_id] > 0  # next() draws over the nonzero probabilities in ascending id order
        return draw(order[by_id][keep], p[by_id][keep], self.rng)


def draw(support: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> int:
    """One draw over `support` (ascending ids) with probabilities `probs` (the sampler's draw: one
    uniform, the cumulative sum in id order)."""
    cdf = np.cumsum(probs)
    u = rng.random() * cdf[-1]
    i = min(int(np.searchsorted(cdf, u, side="right")), support.size - 1)
    return int(support[i])
