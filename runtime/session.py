"""Session: prefill and decode on the accelerator, with the Backend shape runtime/generation.py drives.

forward(tokens) embeds the tokens on the host, feeds them in blocks of max_t (one IP start per
block, KV positions pos0 = tokens already in the cache) and returns the last token's logits.
all_logits=True (teacher-forced eval) runs the layers once per block, then one OP_HEAD start per
row. numpy only (runs on the board).

Context limit: by default a forward that would pass the KV cache's max_ctx positions raises
EdgeLLMError. With context_policy="sliding" (attention sinks + sliding window, as StreamingLLM)
the session keeps the first `sink` tokens and the most recent `window` tokens: when the cache is
full it resets and re-prefills [sink tokens] + [last window tokens] at fresh positions 0.. (the
simplest correct form: no position shifting inside the cache, at the price of one re-prefill each
time the cache fills, i.e. every max_ctx - sink - window generated tokens).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.models.config import LIMITS, ModelConfig
from edgellm.runtime.device import Device, check_timeout
from edgellm.runtime.driver import Driver
from edgellm.runtime.project import Project

POLICIES = ("error", "sliding")
DEVICES = ("auto", "emu", "emu-threads", "pynq")
UNBOUNDED = LIMITS["max_context"]  # config.max_context reported under the sliding policy


class Session:
    """A stateful next-token-logits engine on a device (the Backend protocol of models/backend.py)."""

    def __init__(self, project: Project, device: Device, timeout_s: float = 30.0,
                 context_policy: str = "error", sink: int = 4, window: int | None = None,
                 driver: Driver | None = None) -> None:
        timeout_s = check_timeout(timeout_s)  # finite, > 0: every wait is bounded
        if context_policy not in POLICIES:
            raise EdgeLLMError(f"unknown context policy {context_policy!r}; "
                               f"choose one of {', '.join(POLICIES)}")
        self.project = project
        self.driver = driver or Driver(project, device, timeout_s)
        self.name = device.name
        self.max_ctx = project.iface.max_ctx
        self.policy = context_policy
        if context_policy == "sliding":
            window = window if window is not None else max(1, (self.max_ctx - sink) // 2)
            if sink < 0 or window < 1 or sink + window >= self.max_ctx:
                raise EdgeLLMError(f"sliding context: sink {sink} + window {window} must be below the "
                                   f"KV cache of {self.max_ctx} positions (and window >= 1)")
        self.sink, self.window = sink, window
        ctx = UNBOUNDED if context_policy == "sliding" else self.max_ctx
        self.config: ModelConfig = dataclasses.replace(project.config, max_context=ctx)
        self._tokens: list[int] = []  # what the KV cache holds, position by position
        self.refills = 0  # sliding-window re-prefills

    @property
    def length(self) -> int:
        """Positions already in the KV cache."""
        return len(self._tokens)

    def reset(self) -> None:
        """Forget all positions (the cache is overwritten from position 0 on the next forward)."""
        self._tokens = []

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append tokens (T,); return float32 logits (1, vocab), or (T, vocab) with all_logits."""
        ids = [int(t) for t in np.asarray(tokens, np.int64).reshape(-1)]
        if not ids:
            raise EdgeLLMError("empty token sequence")
        v = self.config.vocab_size
        if min(ids) < 0 or max(ids) >= v:
            raise EdgeLLMError(f"token id out of range [0, {v})")
        if self.length + len(ids) > self.max_ctx:
            if self.policy == "error":
                raise EdgeLLMError(f"context full: {self.length} + {len(ids)} tokens exceed the KV cache of "
                                   f"{self.max_ctx} positions (use --context-policy sliding to keep going)")
            if all_logits:
                raise EdgeLLMError("all_logits over a sliding-window refill is not supported")
            return self._refill(ids)
        return self._feed(ids, all_logits)

    def _feed(self, ids: list[int], all_logits: bool) -> np.ndarray:
        mt = self.project.iface.max_t
        rows: list[np.ndarray] = []
        last = None
        for b in range(0, len(ids), mt):
            block = ids[b:b + mt]
            pos0 = self.length
            h = self.project.embed_rows(np.asarray(block))  # (t, hidden) f32
            if all_logits:
                self.driver.run_layers(h, pos0)
                rows.extend(self.driver.run_head(len(block), pos0, r) for r in range(len(block)))
            else:
                last = self.driver.forward_block(h, pos0)
            self._tokens.extend(block)
        if all_logits:
            return np.stack(rows).astype(np.float32)  # (T, vocab)
        assert last is not None
        return last[None, :]  # (1, vocab)

    def _refill(self, ids: list[int]) -> np.ndarray:
        """Sliding policy: keep sink + the last window tokens of (cache + ids), re-prefill them at 0.."""
        assert self.window is not None
        seq = self._tokens + ids
        keep = seq[:self.sink] + seq[max(self.sink, len(seq) - self.window):]
        self.reset()
        self.refills += 1
        return self._feed(keep, False)

    def stats(self) -> dict[str, float]:
        """Device round trips and seconds spent waiting for the accelerator."""
        return {"starts": self.driver.starts, "device_s": self.driver.device_s, "refills": self.refills}


def open_device(project: Project, kind: str = "auto") -> Device:
    """The device for a project: "pynq" (the board), "emu" (C simulation of the project's HLS),
    "emu-threads" (its threaded C simulation: DATAFLOW processes concurrent over FIFOs of their
    declared depths, every call checked for a deadlock) or "auto" (pynq when running on a PYNQ board,
    the emulator elsewhere)."""
    if kind not in DEVICES:
        raise EdgeLLMError(f"unknown device {kind!r}; choose one of {', '.join(DEVICES)}")
    from edgellm.runtime import pynq_device

    if kind == "pynq" or (kind == "auto" and pynq_device.on_board()):
        return pynq_device.PynqDevice.for_project(project)
    from edgellm.runtime.emulator import EmulatorDevice

    return EmulatorDevice.for_project(project, threads=kind == "emu-threads")
