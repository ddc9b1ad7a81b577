"""The backend side of speculative decoding (runtime/speculative.py): feed a verify block and read
every row, move the KV position back over rejected rows, the limits a pass must respect. numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.generation import argmax_on_device
from edgellm.runtime.sampling import SamplingParams, topk_samplable

K_LIMIT = 64  # the largest k a configuration may ask for
# drafted tokens per verify pass unless asked otherwise (SpecConfig, the CLI's --spec-k-max, the acceptance
# bench): the k the measured acceptance in compiler/cost/speculative_acceptance.json was recorded with
DEFAULT_K_MAX = 7


def can_rewind(backend: Any) -> bool:
    """Whether the backend can move its KV position back: a `rewind` method (sessions), or a cache of
    K/V arrays indexed by position with the position in cache.length (the golden backend). A cache
    that grows by concatenation (the torch backend's) or K/V fed back by the caller (onnx) cannot:
    moving its length back would leave the rejected rows in what attention reads."""
    if hasattr(backend, "rewind"):
        return True
    cache = getattr(backend, "cache", None)
    return hasattr(cache, "length") and isinstance(getattr(cache, "k", None), np.ndarray)


def check_rewind(backend: Any) -> None:
    """EdgeLLMError naming the backend when it cannot speculate (before anything runs)."""
    if not can_rewind(backend):
        name = getattr(backend, "name", None) or type(backend).__name__
        raise EdgeLLMError(f"backend {name} cannot move its KV position back, which speculation needs: "
                           "use the golden backend or a device, or leave --speculate off")


def rewind(backend: Any, length: int) -> None:
    """Move the backend's KV position back to `length` (rows past it are overwritten by the next call).
    Sessions have `rewind`; the golden backend keeps its position in cache.length."""
    check_rewind(backend)
    if hasattr(backend, "rewind"):
        backend.rewind(length)
        return
    if not 0 <= length <= backend.cache.length:
        raise EdgeLLMError(f"cannot rewind to {length}: the cache holds {backend.cache.length}")
    backend.cache.length = length


def verify_pick(backend: Any, params: SamplingParams, deterministic: bool) -> str:
    """What a verify pass reads instead of the logits: "argmax" (greedy without a repetition penalty on a
    device, generation.argmax_on_device), "top" (a deterministic drafter's drafts sampled with a top-k
    filter within the head's k, sampling.topk_samplable: each row replayed from its top-k), or "" (the
    logits)."""
    if argmax_on_device(backend, params) and hasattr(backend, "verify_argmax"):
        return "argmax"
    k = int(getattr(backend, "head_top_k", 0))
    return "top" if deterministic and hasattr(backend, "verify_top") and topk_samplable(params, k) else ""


def verify_rows(backend: Any, tokens: Sequence[int], pick: str = "") -> Any:
    """Append tokens at the current position as one block; (T, vocab) logits of every row, or with pick
    (verify_pick) every row's argmax / top-k (a session's verify_argmax / verify_top)."""
    ids = np.asarray(tokens, np.int64)
    if pick == "argmax":
        return backend.verify_argmax(ids)
    if pick == "top":
        return backend.verify_top(ids)
    if hasattr(backend, "verify"):
        return np.asarray(backend.verify(ids))
    return np.asarray(backend.forward(ids, all_logits=True))


def block_limit(backend: Any) -> int:
    """The most tokens one verify pass may feed (the accelerator's max_t; unbounded elsewhere)."""
    return int(getattr(backend, "max_block", K_LIMIT + 1))


def physical_room(backend: Any, context: int) -> int:
    """Positions left in the KV cache (a sliding session reports an unbounded context)."""
    cap = int(getattr(backend, "max_ctx", context))
    return cap - int(backend.length)
