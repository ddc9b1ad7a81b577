"""What `serve --speculate` reports: per response, in `usage`; over the server's life, in GET /health.

A response's `usage` keeps OpenAI's three counts and adds, when the server speculates:
- `completion_tokens_details` {accepted_prediction_tokens, rejected_prediction_tokens}: OpenAI's own
  fields for predicted outputs, typed in the openai client (drafted tokens the model accepted, and
  those it rejected; unlike OpenAI's, the rejected ones are not part of completion_tokens);
- `speculation`: the measurement (mode, drafted, accepted, acceptance, tokens_per_pass, passes,
  verify_passes, plain_passes, draft_passes, projected_speedup). The openai client keeps unknown fields
  (its models allow extras: `usage.speculation`, or `usage.model_extra`).
Standard library only (the SpecStats come from runtime/speculative.py).
"""

from __future__ import annotations

import threading
from typing import Any

FIELDS = ("verify_passes", "plain_passes", "drafted", "accepted", "draft_passes", "decode_tokens",
          "rejections")


def measured(st: Any, mode: str) -> dict[str, Any]:
    """One generation's (or the totals') speculation figures as JSON."""
    passes = st.verify_passes + st.plain_passes
    return {"mode": mode, "drafted": st.drafted, "accepted": st.accepted,
            "acceptance": _round(st.accepted / st.drafted if st.drafted else None),
            "tokens_per_pass": _round(st.decode_tokens / passes if passes else None), "passes": passes,
            "verify_passes": st.verify_passes, "plain_passes": st.plain_passes,
            "draft_passes": st.draft_passes,
            "projected_speedup": _round(st.decode_tokens / st.cost_steps if st.cost_steps else None)}


def usage_fields(st: Any, mode: str) -> dict[str, Any]:
    """The fields a speculating response adds to `usage`."""
    return {"completion_tokens_details": {"accepted_prediction_tokens": st.accepted,
                                          "rejected_prediction_tokens": st.drafted - st.accepted},
            "speculation": measured(st, mode)}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


class Totals:
    """Every request's speculation summed (requests stopped early included), for GET /health."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.cost_steps = 0.0
        for f in FIELDS:
            setattr(self, f, 0)
        self._lock = threading.Lock()  # the device thread adds, the event loop reads

    def add(self, st: Any) -> None:
        with self._lock:
            self.requests += 1
            self.cost_steps += st.cost_steps
            for f in FIELDS:
                setattr(self, f, getattr(self, f) + getattr(st, f))

    def report(self) -> dict[str, Any]:
        """{"mode": "off"} without speculation, else the totals (measured's fields and requests)."""
        if self.mode == "off":
            return {"mode": "off"}
        with self._lock:
            return {**measured(self, self.mode), "requests": self.requests}
