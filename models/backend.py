"""The CPU backend interface (golden, onnx, torch) used by `generate`, `eval` and `verify`.

A backend holds its own KV state: `forward(tokens)` appends tokens at the current position and
returns their logits; `reset()` empties the state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.numerics import NumericsPlan
from edgellm.models.weights import QuantModel


class Backend(Protocol):
    """A stateful next-token-logits engine."""

    name: str
    config: ModelConfig

    @property
    def length(self) -> int:
        """Positions already in the KV state."""
        ...

    def reset(self) -> None:
        """Forget all positions."""
        ...

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append tokens (T,); return logits float32 (T, vocab), or (1, vocab) for the last only."""
        ...


class GoldenBackend:
    """The numpy golden model as a backend."""

    name = "golden"

    def __init__(self, model: QuantModel, plan: NumericsPlan | None = None,
                 max_len: int | None = None) -> None:
        self.golden = GoldenModel(model, plan)
        self.config = model.config
        self._max_len = max_len
        self.cache = self.golden.new_cache(max_len)

    @property
    def length(self) -> int:
        return self.cache.length

    def reset(self) -> None:
        self.cache = self.golden.new_cache(self._max_len)

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        return self.golden.forward(tokens, self.cache, all_logits=all_logits)


BackendFactory = Callable[[QuantModel], Backend]
BACKENDS: dict[str, BackendFactory] = {"golden": GoldenBackend}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available by name (onnx and torch register lazily)."""
    BACKENDS[name] = factory


def make_backend(name: str, model: QuantModel) -> Backend:
    """Instantiate a backend by name: golden, onnx or torch."""
    if name == "onnx" and name not in BACKENDS:
        from edgellm.models import ort_runner  # noqa: F401  (registers itself)
    if name == "torch" and name not in BACKENDS:
        from edgellm.models import torch_ref  # noqa: F401  (registers itself)
    if name not in BACKENDS:
        raise EdgeLLMError(f"unknown backend {name!r}; choose one of golden, onnx, torch")
    return BACKENDS[name](model)
