"""Session: prefill and decode on the accelerator, with the Backend shape runtime/generation.py drives.

forward(tokens) embeds the tokens on the host, feeds them in blocks of max_t (one IP start per
block, KV positions pos0 = tokens already in the cache) and returns the last token's logits.
all_logits=True (teacher-forced eval) runs each block as a verify pass does: the layers and one OP_HEAD
over all its rows in one start (the multi-row head), more head starts only past its rows. numpy only
(runs on the board).

Speculative decoding (runtime/speculative.py) uses verify (a block of drafted tokens, every row's
logits), rewind (move the position back over rejected rows: never read, overwritten by the next
start) and draft_logits (self-speculation: a layer subset at a position, the position unchanged).

Context limit: by default a forward that would pass the KV cache's max_ctx positions raises
EdgeLLMError. With context_policy="sliding" (attention sinks + sliding window, as StreamingLLM)
the session keeps the first `sink` tokens and the most recent `window` tokens: when the cache is
full it resets and re-prefills [sink tokens] + [last window tokens] at fresh positions 0.. (the
simplest correct form: no position shifting inside the cache, at the price of one re-prefill each
time the cache fills, i.e. every max_ctx - sink - window generated tokens).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
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
        self.max_block = project.iface.max_t  # the most tokens one verify pass feeds (speculation)
        self.layer_passes = 0  # starts that ran every layer (prefill blocks, decode steps, verify passes)
        self.draft_passes = 0  # starts that ran a layer subset (self-speculation drafts)
        self._draft_layers: tuple[int, ...] | None = None

    @property
    def length(self) -> int:
        """Positions already in the KV cache."""
        return len(self._tokens)

    def reset(self) -> None:
        """Forget all positions (the cache is overwritten from position 0 on the next forward)."""
        self._tokens = []

    def rewind(self, length: int) -> None:
        """Move the KV position back to `length` (speculation: drop rejected rows). Their K/V stay in DDR
        but are never read: attention reads positions up to the query's, and the next start writes its
        rows' K/V (from `length` on) before its attention reads them."""
        if not 0 <= length <= self.length:
            raise EdgeLLMError(f"cannot rewind to position {length}: the cache holds {self.length}")
        del self._tokens[length:]

    def verify(self, tokens: np.ndarray) -> np.ndarray:
        """Append up to max_t tokens as one block (speculation's verify pass); (T, vocab) f32 logits of
        every row. One start runs the layers and ONE OP_HEAD over all T rows (the multi-row head streams
        its weights once for them) when T <= the head's rows (driver.head_rows); a longer block (a design
        whose max_t exceeds them) takes the head's rows in passes, one OP_HEAD start per further pass."""
        return self._verify(tokens, "")

    def verify_argmax(self, tokens: np.ndarray) -> list[int]:
        """verify, returning every row's greedy token (the LM head's argmax) without reading the logits
        (greedy speculation without a repetition penalty, runtime/speculative.py)."""
        return self._verify(tokens, "argmax")

    def verify_top(self, tokens: np.ndarray) -> list[Any]:
        """verify, returning every row's top-k (driver.TopK) without reading the logits (sampled
        speculation with a deterministic drafter and a top-k filter within head_top_k)."""
        return self._verify(tokens, "top")

    def _verify(self, tokens: np.ndarray, pick: str) -> Any:
        ids = self._check_ids(tokens)
        if len(ids) > self.max_block or self.length + len(ids) > self.max_ctx:
            raise EdgeLLMError(f"verify block of {len(ids)} tokens at position {self.length}: the design "
                               f"takes up to {self.max_block} per start and {self.max_ctx} positions")
        out = self._block_rows(ids, self.length, pick)
        self.layer_passes += 1
        self._tokens.extend(ids)
        return out

    def _block_rows(self, ids: list[int], pos0: int, pick: str = "") -> Any:
        """A block at pos0 and every row's logits (T, vocab) f32 (pick "argmax" / "top": every row's
        argmax / top-k, a list): one start with the layers and the head over all T rows when T <= the
        head's rows, else the layers, then the head r rows a start."""
        h = self.project.embed_rows(np.asarray(ids))
        t, r = len(ids), self.driver.head_rows
        if t <= r:
            out = self.driver.forward_rows(h, pos0, pick)
            return out if pick else out.astype(np.float32)
        self.driver.run_layers(h, pos0)
        parts = [self._head_rows(t, pos0, r0, min(r, t - r0), pick) for r0 in range(0, t, r)]
        return [a for p in parts for a in p] if pick else np.concatenate(parts).astype(np.float32)

    def _head_rows(self, t_len: int, pos0: int, row: int, n: int, pick: str = "") -> Any:
        """One OP_HEAD start over rows row .. row + n - 1 of the block in DDR: (n, vocab) f32, or the n
        rows' argmax / top-k (pick)."""
        self.driver.run_program(itf.descriptor(itf.OP_HEAD, 0, t_len, pos0, 0, row, n)[None])
        return self.driver.read_rows(n, pick)

    def draft_logits(self, token: int, pos: int, layers: tuple[int, ...] | list[int]) -> np.ndarray:
        """Self-speculation: (vocab,) logits of `token` at position pos (length <= pos < max_ctx) through
        the given layers and the LM head, in one start; the position stays. The draft's K/V land at pos,
        which the verify pass overwrites with the full model's."""
        if not self.length <= pos < self.max_ctx:
            raise EdgeLLMError(f"draft position {pos} outside {self.length}..{self.max_ctx - 1}")
        [tok] = self._check_ids(np.asarray([token]))
        h = self.project.embed_rows(np.asarray([tok]))
        self.driver.write_h(h)
        prog = [itf.descriptor(itf.OP_LAYER, int(i), 1, pos) for i in layers]
        prog.append(itf.descriptor(itf.OP_HEAD, 0, 1, pos, 0, 0))
        self.driver.run_program(np.stack(prog))
        self.draft_passes += 1
        return self.driver.read_logits()

    @property
    def draft_layers(self) -> tuple[int, ...]:
        """The project's calibrated self-speculation layers (speculation.json; () without one)."""
        if self._draft_layers is None:
            from edgellm.runtime.drafters import load_draft_layers

            self._draft_layers = load_draft_layers(self.project.path, self.config.n_layers)
        return self._draft_layers

    def _check_ids(self, tokens: np.ndarray) -> list[int]:
        ids = [int(t) for t in np.asarray(tokens, np.int64).reshape(-1)]
        if not ids:
            raise EdgeLLMError("empty token sequence")
        v = self.config.vocab_size
        if min(ids) < 0 or max(ids) >= v:
            raise EdgeLLMError(f"token id out of range [0, {v})")
        return ids

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append tokens (T,); return float32 logits (1, vocab), or (T, vocab) with all_logits."""
        ids = self._check_ids(tokens)
        if self.length + len(ids) > self.max_ctx:
            if self.policy == "error":
                raise EdgeLLMError(f"context full: {self.length} + {len(ids)} tokens exceed the KV cache of "
                                   f"{self.max_ctx} positions (use --context-policy sliding to keep going)")
            if all_logits:
                raise EdgeLLMError("all_logits over a sliding-window refill is not supported")
            return self._refill(ids)
        return self._feed(ids, all_logits)

    def forward_argmax(self, tokens: np.ndarray) -> int:
        """Append tokens (T,) as forward does; return the next token by greedy decoding (the LM head's
        argmax: the lowest id of the largest logit, as runtime/sampling.py's greedy pick) without reading
        the logits (runtime/generation.py takes this path for greedy decode without a repetition
        penalty)."""
        return self._pick(tokens, "argmax")

    @property
    def head_top_k(self) -> int:
        """The top logits the LM head writes per row (the project's top_k)."""
        return int(self.project.iface.top_k)

    def forward_top(self, tokens: np.ndarray) -> Any:
        """Append tokens (T,) as forward does; return the LM head's top-k of the last token (driver.TopK:
        ids descending by logit, ties by lower id, and their logits) without reading the logits
        (runtime/generation.py takes this path for sampling with a top-k filter of at most head_top_k and
        no repetition penalty)."""
        return self._pick(tokens, "top")

    def _pick(self, tokens: np.ndarray, pick: str) -> Any:
        ids = self._check_ids(tokens)
        if self.length + len(ids) > self.max_ctx:
            if self.policy == "error":
                raise EdgeLLMError(f"context full: {self.length} + {len(ids)} tokens exceed the KV cache of "
                                   f"{self.max_ctx} positions (use --context-policy sliding to keep going)")
            return self._refill(ids, pick)
        return self._feed(ids, False, pick)

    def _feed(self, ids: list[int], all_logits: bool, pick: str = "") -> Any:
        """Feed ids in blocks of max_t: (T, vocab) logits with all_logits, else the last token's (1, vocab)
        logits, or the head's argmax (pick "argmax", an int) or top-k (pick "top", a driver.TopK)."""
        mt = self.project.iface.max_t
        rows: list[np.ndarray] = []
        last: Any = None
        for b in range(0, len(ids), mt):
            block = ids[b:b + mt]
            pos0 = self.length
            self.layer_passes += 1
            if all_logits:
                rows.extend(self._block_rows(block, pos0))
            else:
                h = self.project.embed_rows(np.asarray(block))  # (t, hidden) f32
                last = self.driver.forward_block(h, pos0, pick=pick)
            self._tokens.extend(block)
        if all_logits:
            return np.stack(rows).astype(np.float32)  # (T, vocab)
        assert last is not None
        return last if pick else last[None, :]  # the argmax or top-k, or (1, vocab)

    def _refill(self, ids: list[int], pick: str = "") -> Any:
        """Sliding policy: keep sink + the last window tokens of (cache + ids), re-prefill them at 0.."""
        assert self.window is not None
        seq = self._tokens + ids
        keep = seq[:self.sink] + seq[max(self.sink, len(seq) - self.window):]
        self.reset()
        self.refills += 1
        return self._feed(keep, False, pick)

    def stats(self) -> dict[str, float]:
        """Device round trips and seconds spent waiting for the accelerator."""
        return {"starts": self.driver.starts, "device_s": self.driver.device_s, "refills": self.refills,
                "layer_passes": self.layer_passes, "draft_passes": self.draft_passes}


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
