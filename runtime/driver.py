"""The driver above the bus: load the DDR image once, write descriptor programs, start, wait, read.

Per forward pass (compiler/interface.py, hw/include/edgellm/interface.h): the host writes the token
embeddings into the H region ([max_t][hidden] f32), the descriptor program into the program region,
the registers hdr_off / prog_off / n_desc, sets ap_start, waits for ap_done, then reads the logits
([vocab] f32 of the token OP_HEAD selects) and argmax / top-k. Step mode runs one descriptor per
start, so the per-layer taps (DESC_TAPS) can be read after each layer. numpy only.

Bounds (runtime/bounds.py): the image's header and layer table are checked once at load, every
program before its start, exactly as the top checks them; the driver tells the top the buffer size
(HDR_BUF_BYTES), clears the status words before each start and raises the top's verdict after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.runtime import bounds, bounds_lowbit, layout
from edgellm.runtime.device import Buffer, Device, check_timeout, pointer_registers
from edgellm.runtime.project import Project

TAP_STAGES = layout.TAP_NAMES  # order of layer_taps (decoder_layer.h)


@dataclass
class TopK:
    """The fabric's argmax and top-k of the last logits."""

    argmax: int
    ids: np.ndarray  # int32 [k]
    values: np.ndarray  # float32 [k]


def tap_layout(p: Project) -> dict[str, tuple[int, int]]:
    """Stage -> (float offset in the taps region, row width); rows are max_t apart (layer_taps<C>)."""
    return layout.tap_layout(p.config, p.iface.max_t)


class Driver:
    """Owns the accelerator buffer of one project on one device."""

    def __init__(self, project: Project, device: Device, timeout_s: float = 30.0) -> None:
        self.p = project
        self.dev = device
        self.timeout_s = timeout_s  # checked: finite, > 0
        self.starts = 0  # ap_start round trips
        self.device_s = 0.0  # seconds spent waiting for ap_done
        # the device's own register map when it has one (pynq: from the .hwh), else the manifest's
        self.registers: dict[str, int] = dict(getattr(device, "registers", None) or project.iface.registers)
        for k in ("hdr_off", "prog_off", "n_desc"):
            if k not in self.registers:
                raise EdgeLLMError(f"the register map has no {k!r} register")
        if not 0 < project.total_bytes < bounds.MAX_BUFFER:
            raise EdgeLLMError(f"accelerator buffer of {project.total_bytes} bytes: the interface's 32-bit "
                               f"offsets address 1 .. {bounds.MAX_BUFFER - 1}")
        self.buf: Buffer = device.alloc(project.total_bytes)
        self.limits = bounds.Limits.of(project, self.buf.nbytes)
        self.load()

    @property
    def timeout_s(self) -> float:
        """Seconds to wait for each accelerator run (finite, > 0)."""
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._timeout_s = check_timeout(value)

    # ---- setup ----

    def load(self) -> None:
        """Write weights.bin into [0, static_bytes), zero the rest, tell the top the buffer size, check
        the header (bounds.check_header, and against the manifest's regions) and the layer table
        (bounds.check_layers) and a low-bit design's records (bounds_lowbit.check_lowbit), sync, program the
        registers."""
        img = self.p.image()
        a = self.buf.array
        if img.size > a.size:
            raise EdgeLLMError(f"weights.bin holds {img.size} bytes; the buffer {a.size}")
        a[:img.size] = img
        a[img.size:] = 0
        ho = self.p.iface.hdr_off
        if ho < 0 or ho % 4 or ho + 4 * itf.HDR_WORDS > a.size:
            raise bounds.BoundsError(f"register hdr_off = {ho}: the header must be 4-byte aligned and inside "
                                     f"the {a.size}-byte buffer")
        hdr = self.buf.view(ho, itf.HDR_WORDS, np.uint32)
        hdr[itf.HDR["HDR_BUF_BYTES"]] = a.size
        bounds.check_header(hdr, ho, self.limits)  # then the layer table lies inside the buffer
        bounds.check_regions(hdr, self.p.regions)
        table = self.buf.view(int(hdr[itf.HDR["HDR_LAYER_TABLE"]]), self.p.config.n_layers * itf.LD_WORDS,
                              np.uint32)
        bounds.check_layers(table, hdr, self.limits)
        if self.limits.lowbit_rows:  # a low-bit design's records (program_check.h check_lb_records)
            lb = self.buf.view(int(hdr[itf.HDR["HDR_LB_TABLE"]]),
                               self.p.config.n_layers * bounds.N_LIN * itf.LB_WORDS, np.uint32)
            bounds_lowbit.check_lowbit(lb, table, hdr, self.limits)
        self.dev.sync_to_device(self.buf)
        regs = self.registers
        for off in pointer_registers(regs).values():
            self.dev.write_reg64(off, self.buf.physical_address)
        self.dev.write_reg(regs["hdr_off"], self.p.iface.hdr_off)

    def _f32(self, region: str, count: int, start: int = 0) -> np.ndarray:
        off, size = self.p.region(region)
        if (start + count) * 4 > size:
            raise EdgeLLMError(f"region {region!r} holds {size} bytes; {(start + count) * 4} requested")
        return self.buf.view(off + start * 4, count, np.float32)

    # ---- data in / out ----

    def write_h(self, h: np.ndarray) -> None:
        """Hidden states (T, hidden) f32 into the H region, synced to the device."""
        h = np.ascontiguousarray(h, np.float32)
        t, hid = h.shape
        if hid != self.p.config.hidden_size or not 1 <= t <= self.p.iface.max_t:
            raise EdgeLLMError(f"H block of shape {h.shape}; the design takes up to "
                               f"{self.p.iface.max_t} x {self.p.config.hidden_size}")
        self._f32("h", h.size)[:] = h.ravel()
        self.dev.sync_to_device(self.buf, self.p.region("h")[0], h.nbytes)

    def read_h(self, t_len: int) -> np.ndarray:
        """(t_len, hidden) f32 from the H region (a copy)."""
        n = t_len * self.p.config.hidden_size
        self.dev.sync_from_device(self.buf, self.p.region("h")[0], n * 4)
        return self._f32("h", n).reshape(t_len, -1).copy()

    @property
    def head_rows(self) -> int:
        """Rows one OP_HEAD scores in one pass over the head's weights (the manifest's interface.head_rows:
        the compiled head's MAX_TOK, the design's head lanes; the logits and argmax regions' rows)."""
        return self.p.iface.head_rows

    def read_logits(self) -> np.ndarray:
        """(vocab,) f32 logits of the (first) row the last OP_HEAD selected (a copy)."""
        v = self.p.config.vocab_size
        self.dev.sync_from_device(self.buf, self.p.region("logits")[0], v * 4)
        return self._f32("logits", v).copy()

    def read_logits_rows(self, n: int) -> np.ndarray:
        """(n, vocab) f32 logits of the n rows the last OP_HEAD selected (rows layout.logits_row apart)."""
        v, row = self.p.config.vocab_size, layout.logits_row(self.p.config.vocab_size)
        if not 1 <= n <= self.head_rows:
            raise EdgeLLMError(f"{n} logit rows; the head writes 1..{self.head_rows}")
        self.dev.sync_from_device(self.buf, self.p.region("logits")[0], ((n - 1) * row + v) * 4)
        return np.stack([self._f32("logits", v, r * row).copy() for r in range(n)])

    def read_topk(self, row: int = 0, synced: bool = False) -> TopK:
        """argmax, top-k ids and values OP_HEAD wrote for its row `row` (argmax [R], ids [R][k], values
        [R][k] with R = head_rows); `synced`: the region was synced from the device since that OP_HEAD."""
        off, size = self.p.region("argmax")
        k, r = self.p.iface.top_k, self.head_rows
        if not 0 <= row < r:
            raise EdgeLLMError(f"top-k of head row {row}; the head writes rows 0..{r - 1}")
        if not synced:
            self.dev.sync_from_device(self.buf, off, min(size, r * (4 + 8 * k)))
        am = int(self.buf.view(off + 4 * row, 1, np.int32)[0])
        ids = self.buf.view(off + 4 * r + 4 * k * row, k, np.int32).copy()
        vals = self.buf.view(off + 4 * r + 4 * r * k + 4 * k * row, k, np.float32).copy()
        return TopK(am, ids, vals)

    def read_taps(self, t_len: int) -> dict[str, np.ndarray]:
        """The per-stage taps of the last DESC_TAPS layer descriptor: stage -> (t_len, width) f32."""
        off, size = self.p.region("taps")
        lay = tap_layout(self.p)
        end = max(o + self.p.iface.max_t * w for o, w in lay.values())
        if end * 4 > size:
            raise EdgeLLMError(f"taps region holds {size} bytes; the layer taps need {end * 4}")
        self.dev.sync_from_device(self.buf, off, end * 4)
        return {s: self._f32("taps", t_len * w, o).reshape(t_len, w).copy() for s, (o, w) in lay.items()}

    # ---- running ----

    def run_program(self, prog: np.ndarray) -> float:
        """Write a descriptor program (n, DESC_WORDS) uint32, start the IP once, wait; seconds waited."""
        prog = np.ascontiguousarray(prog, np.uint32)
        if prog.ndim != 2 or prog.shape[1] != itf.DESC_WORDS or prog.shape[0] < 1:
            raise EdgeLLMError(f"descriptor program of shape {prog.shape}; expected (n, {itf.DESC_WORDS})")
        off, size = self.p.region("program")
        if prog.nbytes > size:
            raise EdgeLLMError(f"program of {prog.shape[0]} descriptors exceeds the {size}-byte "
                               "program region")
        bounds.check_program(prog, off, self.limits)
        self.buf.view(off, prog.size, np.uint32)[:] = prog.ravel()
        self.dev.sync_to_device(self.buf, off, prog.nbytes)
        st_off, st = self._status()
        st[:] = itf.ST_NONE
        self.dev.sync_to_device(self.buf, st_off, st.nbytes)
        regs = self.registers
        self.dev.write_reg(regs["prog_off"], off)
        self.dev.write_reg(regs["n_desc"], prog.shape[0])
        t0 = time.perf_counter()
        self.dev.start()
        self.starts += 1
        self.dev.wait_done(self.timeout_s)
        dt = time.perf_counter() - t0
        self.device_s += dt
        self.dev.sync_from_device(self.buf, st_off, st.nbytes)
        err = bounds.status_error(st, self.buf.nbytes)
        if err:
            raise bounds.BoundsError(f"{self.dev.name}: {err}")
        return dt

    def _status(self) -> tuple[int, np.ndarray]:
        """(byte offset, uint32[3] view) of the header's status words."""
        off = self.p.iface.hdr_off + 4 * itf.HDR["HDR_STATUS"]
        return off, self.buf.view(off, 3, np.uint32)

    def forward_block(self, h: np.ndarray, pos0: int, taps: bool = False, pick: str = "") -> Any:
        """One IP start over a block of t_len <= max_t tokens at pos0: every layer, then the LM head on
        the last token. Returns (vocab,) f32 logits, or with pick "argmax" / "top" the head's argmax / top-k
        alone (read_rows: greedy decode, or sampling with a top-k filter of at most the design's k,
        runtime/sampling.py topk_samplable)."""
        t_len = self._check_block(h.shape[0], pos0)
        self.write_h(h)
        self.run_program(itf.program(self.p.config.n_layers, t_len, pos0, taps))
        return self.read_rows(1, pick)[0] if pick else self.read_logits()

    def read_top_rows(self, n: int) -> list[TopK]:
        """The argmax and top-k OP_HEAD wrote for each of its first n rows (read_topk) without the logits:
        the argmax region's few hundred bytes, not n x vocab x 4. Each row's top value must be finite
        (EdgeLLMError otherwise: what a NaN or infinite logit row raises from the logits)."""
        if not 1 <= n <= self.head_rows:
            raise EdgeLLMError(f"{n} argmax rows; the head writes 1..{self.head_rows}")
        tops = [self.read_topk(r, synced=r > 0) for r in range(n)]  # one sync of the region for all rows
        for t in tops:
            finite = not t.values.size or bool(np.isfinite(t.values[0]))
            if not (0 <= t.argmax < self.p.config.vocab_size and finite):
                raise EdgeLLMError(f"the LM head's argmax {t.argmax} (top logit {t.values[:1]}) is not a "
                                   "finite logit of the vocabulary")
        return tops

    def read_argmax_rows(self, n: int) -> list[int]:
        """Each of the first n rows' argmax (read_top_rows: the lowest id of the largest logit, greedy)."""
        return [t.argmax for t in self.read_top_rows(n)]

    def read_rows(self, n: int, pick: str = "") -> Any:
        """The first n rows of the last OP_HEAD: (n, vocab) logits, or with pick "argmax" / "top" their
        argmax / top-k alone (read_argmax_rows / read_top_rows)."""
        if pick == "argmax":
            return self.read_argmax_rows(n)
        return self.read_top_rows(n) if pick == "top" else self.read_logits_rows(n)

    def run_layers(self, h: np.ndarray, pos0: int) -> None:
        """All layers over a block (one start), no LM head: for per-row heads afterwards."""
        t_len = self._check_block(h.shape[0], pos0)
        self.write_h(h)
        self.run_program(itf.program(self.p.config.n_layers, t_len, pos0)[:-1])

    def run_layer(self, layer: int, t_len: int, pos0: int, taps: bool = True) -> None:
        """Step mode: one OP_LAYER descriptor on the H already in DDR."""
        self._check_block(t_len, pos0)
        flags = itf.DESC_TAPS if taps else 0
        self.run_program(itf.descriptor(itf.OP_LAYER, layer, t_len, pos0, flags)[None])

    def forward_rows(self, h: np.ndarray, pos0: int, pick: str = "") -> Any:
        """One IP start over a block of t_len <= head_rows tokens at pos0: every layer, then ONE OP_HEAD
        over all t_len rows (the multi-row head streams its weights once). Returns (t_len, vocab) f32, or
        with pick "argmax" / "top" each row's argmax / top-k (read_rows: verification without logits)."""
        t_len = self._check_block(h.shape[0], pos0)
        if t_len > self.head_rows:
            raise EdgeLLMError(f"block of {t_len} rows; one head pass scores up to {self.head_rows}")
        self.write_h(h)
        prog = itf.program(self.p.config.n_layers, t_len, pos0)
        prog[-1] = itf.descriptor(itf.OP_HEAD, 0, t_len, pos0, 0, 0, t_len)
        self.run_program(prog)
        return self.read_rows(t_len, pick)

    def run_head(self, t_len: int, pos0: int, row: int) -> np.ndarray:
        """Step mode: one OP_HEAD descriptor on H[row]; returns (vocab,) f32 logits."""
        if not 0 <= row < t_len:
            raise EdgeLLMError(f"head row {row} outside the block of {t_len} tokens")
        self.run_program(itf.descriptor(itf.OP_HEAD, 0, t_len, pos0, 0, row)[None])
        return self.read_logits()

    def _check_block(self, t_len: int, pos0: int) -> int:
        i = self.p.iface
        if not 1 <= t_len <= i.max_t:
            raise EdgeLLMError(f"block of {t_len} tokens; the design runs 1..{i.max_t} per start")
        if pos0 < 0 or pos0 + t_len > i.max_ctx:
            raise EdgeLLMError(f"positions {pos0}..{pos0 + t_len - 1} exceed the KV cache of {i.max_ctx}")
        return int(t_len)
