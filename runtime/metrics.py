"""Teacher-forced perplexity and backend-vs-backend logit comparison (numpy only).

The token stream is cut into non-overlapping windows of at most the context; each window is one
prefill with all_logits=True after a reset, and position i's logits are scored on token i+1 of the
same window (so each window of W tokens contributes W-1 predictions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """logits (T, vocab), targets (T,) -> negative log-likelihoods (T,) float64 (log-softmax in f64)."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)  # (T, 1)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))  # (T,)
    return lse - x[np.arange(x.shape[0]), np.asarray(targets)]


def windows(ids: Sequence[int], window: int) -> list[list[int]]:
    """Windows of at most `window` tokens that overlap by one token, so every token after the first
    is predicted exactly once (window i covers ids[i*(window-1) : i*(window-1) + window])."""
    if window < 2:
        raise EdgeLLMError(f"window must be at least 2 tokens, got {window}")
    step = window - 1
    return [list(ids[i:i + window]) for i in range(0, max(len(ids) - 1, 0), step)]


@dataclass
class BackendScore:
    """Running totals for one backend (agreement and max diff are versus the reference backend)."""

    name: str
    nll_sum: float = 0.0
    n_pred: int = 0
    n_agree: int = 0
    max_abs_diff: float = 0.0
    seconds: float = 0.0

    @property
    def perplexity(self) -> float:
        """exp(mean NLL); nan before any prediction."""
        return math.exp(self.nll_sum / self.n_pred) if self.n_pred else float("nan")

    @property
    def agreement(self) -> float:
        """Fraction of positions whose argmax equals the reference backend's."""
        return self.n_agree / self.n_pred if self.n_pred else float("nan")


@dataclass
class EvalReport:
    """Per-backend scores; the first backend is the reference."""

    n_tokens: int
    n_windows: int
    scores: list[BackendScore] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"n_tokens": self.n_tokens, "n_windows": self.n_windows,
                "backends": [{"name": s.name, "perplexity": s.perplexity, "agreement": s.agreement,
                              "max_abs_logit_diff": s.max_abs_diff, "predictions": s.n_pred,
                              "seconds": s.seconds} for s in self.scores]}


def evaluate(backends: Sequence[Any], ids: Sequence[int], window: int,
             on_window: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score every backend on the same windows; compare each one's logits with backends[0]'s.

    backends: backend-like objects with name, reset() and forward(tokens, all_logits=True).
    on_window(done, total) is called after each window (for progress bars).
    """
    import time

    if not backends:
        raise EdgeLLMError("no backend to evaluate")
    wins = windows(ids, window)
    if not wins:
        raise EdgeLLMError(f"text has {len(ids)} tokens; at least 2 are needed for perplexity")
    scores = [BackendScore(getattr(b, "name", f"backend{i}")) for i, b in enumerate(backends)]
    for wi, w in enumerate(wins):
        toks = np.asarray(w, dtype=np.int64)  # (W,)
        targets = toks[1:]  # (W-1,)
        ref_top: np.ndarray | None = None
        ref_logits: np.ndarray | None = None
        for b, s in zip(backends, scores, strict=True):
            t0 = time.perf_counter()
            b.reset()
            logits = np.asarray(b.forward(toks, all_logits=True), dtype=np.float32)  # (W, vocab)
            s.seconds += time.perf_counter() - t0
            if logits.shape[0] != toks.size:
                raise EdgeLLMError(f"backend {s.name} returned {logits.shape[0]} logit rows for "
                                   f"{toks.size} tokens")
            if not np.isfinite(logits).all():  # a perplexity of nan (and numpy's warnings) otherwise
                row = int(np.flatnonzero(~np.isfinite(logits).all(axis=1))[0])
                raise EdgeLLMError(f"backend {s.name}: the logits of token {wi * (window - 1) + row} are "
                                   "NaN or infinite (the model's float32 arithmetic overflows)")
            pred = logits[:-1]  # (W-1, vocab)
            s.nll_sum += float(token_nll(pred, targets).sum())
            s.n_pred += int(targets.size)
            top = np.argmax(pred, axis=1)  # (W-1,)
            if ref_top is None:
                ref_top, ref_logits = top, pred
            assert ref_logits is not None
            s.n_agree += int((top == ref_top).sum())
            s.max_abs_diff = max(s.max_abs_diff, float(np.abs(pred - ref_logits).max()))
        if on_window is not None:
            on_window(wi + 1, len(wins))
    return EvalReport(n_tokens=len(ids), n_windows=len(wins), scores=scores)
