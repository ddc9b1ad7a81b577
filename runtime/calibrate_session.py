"""One calibration's probe on a device (runtime/calibrate.py): the buffer with its pseudo-random regions and
one descriptor per port set (ProbeSession), each start checked against what was asked (beats, word sums,
the written pattern, cycle counts) before its Sample is kept. Board-side: numpy and pynq only, Python 3.10.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgellm.runtime import probe_kit as pk
from edgellm.runtime.calibrate_plan import HEAD_ROW_BYTES, CalibrationError, RunSpec, bundle, head_rows
from edgellm.runtime.device import Device, check_timeout, pointer_registers


@dataclass
class Sample:
    """One start of one port set: cycles per active bundle, the run's cycles, seconds waited."""

    cycles: dict[str, int]
    total: int
    wall_s: float


class ProbeSession:
    """The probe's buffer on a device, loaded with its program; `run(i)` starts descriptor i once."""

    def __init__(self, kit: pk.ProbeKit, dev: Device, runs: list[RunSpec], bytes_per_port: int,
                 timeout_s: float, head_row_bytes: int = HEAD_ROW_BYTES) -> None:
        self.kit, self.dev, self.runs, self.timeout_s = kit, dev, runs, check_timeout(timeout_s)
        self.head_row_bytes = head_row_bytes
        self.lay = pk.Layout(len(runs), kit.weight_ports, bytes_per_port)
        self.beats = {s: bytes_per_port // (kit.data_beat_bytes if s == pk.DATA_SLOT else kit.beat_bytes)
                      for s in (*range(kit.weight_ports), pk.DATA_SLOT)}
        self.buf = dev.alloc(self.lay.total_bytes)
        a = self.buf.array
        rng = np.random.default_rng(0x5EED)
        self.sums = {}
        for s in self.beats:
            off = self.lay.region(s)
            a[off:off + bytes_per_port] = rng.integers(0, 256, bytes_per_port, dtype=np.uint8)
            self.sums[s] = pk.word_sum(a[off:off + bytes_per_port])
        self.buf.view(self.lay.hdr_off, pk.PH_WORDS, np.uint32)[:] = pk.header_words(self.buf.nbytes)
        self.want: list[dict[int, tuple[int, int]]] = []  # per run: slot -> (beats, word sum)
        self.port_bytes: list[dict[str, int]] = []  # per run: bundle -> the bytes it moves
        for i, r in enumerate(runs):
            if r.head:
                d = self._head_descriptor(i, r)
            else:  # (a shares run at equal shares until set_shares)
                d = self._descriptor(i, r, {s: self.beats[s] for s in r.slots})
            self.buf.view(self.lay.desc_off(i), pk.PD_WORDS, np.uint32)[:] = d
        dev.sync_to_device(self.buf)
        regs = kit.iface.registers
        for off in pointer_registers(regs).values():
            dev.write_reg64(off, self.buf.physical_address)
        dev.write_reg(regs["hdr_off"], self.lay.hdr_off)

    def _descriptor(self, i: int, spec: RunSpec, beats: dict[int, int]) -> np.ndarray:
        """Run i moving beats[s] beats from the start of each slot's region; records what each must move
        and its word sum."""
        slots, want, what = {}, {}, {}
        for s in spec.slots:
            off, nb = self.lay.region(s, spec.write), beats[s]
            nbytes = nb * (self.kit.data_beat_bytes if s == pk.DATA_SLOT else self.kit.beat_bytes)
            slots[s] = (off, nb)
            want[s] = (nb, pk.word_sum(self.buf.array[off:off + nbytes]))
            what[bundle(s)] = nbytes
        if i < len(self.want):
            self.want[i], self.port_bytes[i] = want, what
        else:
            self.want.append(want), self.port_bytes.append(what)
        return pk.descriptor(slots, spec.write, self.seed(i), self.lay.result_off(i))

    def set_shares(self, i: int, shares: tuple[int, ...]) -> None:
        """Run i (a SHARES_RUN) moving, per weight port s, its share shares[s] / max(shares) of the bytes
        the other runs move (whole beats, at least one)."""
        spec = self.runs[i]
        top = max(shares)
        beats = {s: max(1, self.beats[s] * shares[s] // top) for s in spec.slots}
        self.buf.view(self.lay.desc_off(i), pk.PD_WORDS, np.uint32)[:] = self._descriptor(i, spec, beats)
        self.dev.sync_to_device(self.buf, self.lay.desc_off(i), 4 * pk.PD_WORDS)

    def _head_descriptor(self, i: int, spec: RunSpec) -> np.ndarray:
        """Run i reading the LM head's rows (head_rows) over spec's weight ports; records what each must
        move and its word sum."""
        n, row, beat = self.kit.weight_ports, self.head_row_bytes, self.kit.beat_bytes
        rows, stride = head_rows(self.lay, n, row)
        base = self.lay.region(0)
        table = self.buf.array[base:base + rows * stride].reshape(rows, stride)
        slots, want = {}, {}
        for k in spec.slots:
            slots[k] = (base + k * row, rows * row // beat)
            want[k] = (rows * row // beat, pk.word_sum(np.ascontiguousarray(table[:, k * row:(k + 1) * row])))
        self.want.append(want)
        self.port_bytes.append({bundle(k): rows * row for k in spec.slots})
        return pk.descriptor(slots, False, self.seed(i), self.lay.result_off(i), row // beat, stride)

    @staticmethod
    def seed(i: int) -> int:
        return 0x1000_0000 + 0x10_0001 * i

    def run(self, i: int) -> Sample:
        """Start descriptor i once, wait (bounded), check everything it reports; its Sample."""
        spec, lay, dev = self.runs[i], self.lay, self.dev
        st_off = lay.hdr_off + 4 * pk.PH_STATUS
        st = self.buf.view(st_off, 3, np.uint32)
        st[:] = 0
        res = self.buf.view(lay.result_off(i), pk.PR_WORDS, np.uint32)
        res[:] = 0
        dev.sync_to_device(self.buf, st_off, 12)
        dev.sync_to_device(self.buf, lay.result_off(i), 4 * pk.PR_WORDS)
        dev.write_reg(self.kit.iface.registers["prog_off"], lay.desc_off(i))
        dev.write_reg(self.kit.iface.registers["n_desc"], 1)
        t0 = time.perf_counter()
        dev.start()
        dev.wait_done(self.timeout_s)
        wall = time.perf_counter() - t0
        dev.sync_from_device(self.buf, st_off, 12)
        if int(st[0]) != pk.ST_OK:
            raise CalibrationError(f"{dev.name}: the probe refused run {spec.name!r}: {pk.status_text(st)}")
        dev.sync_from_device(self.buf, lay.result_off(i), 4 * pk.PR_WORDS)
        slots, total = pk.decode_result(res)
        cycles = self._check(spec, slots, total, self.seed(i), self.want[i])
        return Sample(cycles, total, wall)

    def _check(self, spec: RunSpec, slots: list[tuple[int, int, int]], total: int, seed: int,
               want_run: dict[int, tuple[int, int]]) -> dict[str, int]:
        """What the probe reports against what was asked; cycles per active bundle."""
        where = f"{self.dev.name}: run {spec.name!r}"
        cycles = {}
        for s, (beats, got_sum, cyc) in enumerate(slots):
            if s not in spec.slots:
                if beats or got_sum:
                    raise CalibrationError(f"{where}: port {bundle(s)} moved {beats} beats outside its set")
                continue
            if beats != want_run[s][0]:
                raise CalibrationError(f"{where}: {bundle(s)} moved {beats} beats, {want_run[s][0]} were "
                                       "asked")
            words = self.lay.region_bytes // 4
            want = (pk.word_sum(pk.pattern(seed, words))
                    if s == pk.DATA_SLOT and spec.write else want_run[s][1])
            if got_sum != want:
                raise CalibrationError(f"{where}: {bundle(s)}'s word sum 0x{got_sum:08x} is not its region's "
                                       f"0x{want:08x}: the probe did not move the bytes it reports")
            if cyc < beats:
                raise CalibrationError(f"{where}: {bundle(s)} counted {cyc} cycles for {beats} beats (at "
                                       "most one beat per cycle)")
            cycles[bundle(s)] = cyc
        if total < max(cycles.values()):
            raise CalibrationError(f"{where}: the run's {total} cycles end before its ports' {cycles}")
        if spec.write:
            off = self.lay.region(pk.DATA_SLOT, True)
            self.dev.sync_from_device(self.buf, off, self.lay.region_bytes)
            got = self.buf.view(off, self.lay.region_bytes // 4, np.uint32)
            bad = np.flatnonzero(got != pk.pattern(seed, got.size))
            if bad.size:
                raise CalibrationError(f"{where}: the data port's region differs from what it wrote at word "
                                       f"{int(bad[0])} ({bad.size} words)")
        return cycles

