"""Speculative decoding's acceptance rules (runtime/speculative.py's verify passes): the speculative-sampling
rule over target and draft distributions (accept_sampling, with draw), the target rows a sampled pass
compares against (target_dists), and the replay of plain decode's picks for greedy decoding or a
deterministic drafter (accept_replay). numpy only (runs on the board).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgellm.runtime.sampling import Sampler, SamplingParams, filtered_probs
from edgellm.runtime.sampling import draw as sampling_draw

AcceptRule = Callable[[np.ndarray, np.ndarray | None, Sequence[int], np.random.Generator],
                      tuple[int, int | None]]


def accept_sampling(p: np.ndarray, q: np.ndarray | None, drafts: Sequence[int], rng: np.random.Generator
                    ) -> tuple[int, int | None]:
    """The speculative-sampling rule. p: (k+1, vocab) target distributions (row i follows drafts[:i]),
    q: (k, vocab) draft distributions or None (one-hot at the drafts). Returns (accepted n, the token
    drawn after them: from the residual when a draft was rejected, from p[k] after all k)."""
    for i, x in enumerate(drafts):
        qx = 1.0 if q is None else float(q[i, x])
        px = float(p[i, x])
        if qx > 0 and rng.random() * qx < px:  # accept with probability min(1, p/q)
            continue
        qi = np.zeros_like(p[i]) if q is None else q[i]
        if q is None:
            qi[x] = 1.0
        r = np.maximum(p[i] - qi, 0.0)
        s = r.sum()
        return i, draw(r / s if s > 0 else p[i], rng)
    return len(drafts), draw(p[len(drafts)], rng)


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One draw from a distribution, the way Sampler.next draws (support in ascending id order)."""
    support = np.flatnonzero(probs)
    return sampling_draw(support, probs[support], rng)


def target_dists(logits: np.ndarray, params: SamplingParams, history: list[int], drafts: list[int]
                  ) -> np.ndarray:
    rows = [filtered_probs(logits[i], params, history + drafts[:i]) for i in range(len(drafts) + 1)]
    return np.stack(rows)


def accept_replay(sampler: Sampler, rows: Any, history: list[int], drafts: list[int], pick: str = ""
                  ) -> tuple[int, int]:
    """Greedy or a deterministic drafter: row i's token is the one plain decode picks there
    (sampler.next over row i's logits, its generator drawn once per row as plain decode draws per token;
    rows read with spec_backend.verify_rows' `pick`: "argmax" the head's argmax, "top" Sampler.next_from_top
    over the head's top-k); accept drafts while they match. Returns (accepted n, the pick at the first
    mismatch or after all drafts)."""
    for i in range(len(drafts) + 1):
        if pick == "argmax":
            want = int(rows[i])
        elif pick == "top":
            want = sampler.next_from_top(rows[i].ids, rows[i].values)
        else:
            want = sampler.next(rows[i], history + drafts[:i])
        if i == len(drafts) or want != drafts[i]:
            return i, want
    raise AssertionError("unreachable")
