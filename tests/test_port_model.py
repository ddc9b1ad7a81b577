"""The m_axi port/channel rule in C simulation (hw/tb/port_model.h, the generated csim_entry.cpp): each
writable m_axi argument of the top (data, act) works on its own copy of the buffer during a call and
the read-only ones (w*, kv*) see the buffer as the call found it, as C/RTL co-simulation sees them
(UG1399, ALIAS pragma: distinct pointers are independent channels). A read through one argument of
bytes another wrote in the same call reads stale bytes, and a byte two arguments write is counted."""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import shared_top
from shared_top import CASES, PIPE, Top, case_id, check_prefill_then_decode, make_top

from edgellm.compiler.cost.attention import KV_ROW_RESTART, AttnCall, decode_reader_s, kv_bytes
from edgellm.compiler.design import DesignParams
from edgellm.hw import csim
from edgellm.runtime.device import DeviceError
from edgellm.runtime.emulator import CsimFunc, EmulatorDevice

HARNESS = r"""
#include <cstdint>
#include "port_model.h"
// A toy top with two writable arguments a, b and one read-only argument r, all on one buffer.
static void toy(const uint8_t *r, uint8_t *a, uint8_t *b, int what, uint8_t *seen) {
  if (what == 0) { a[0] = 7; seen[0] = b[0]; seen[1] = r[0]; seen[2] = a[0]; }  // write a, read b / r / a
  if (what == 1) { a[1] = 5; b[1] = 6; }                                           // both write byte 1
  if (what == 2) { a[2] = 1; b[3] = 2; }                                           // disjoint writes
}
extern "C" long long run_toy(uint8_t *ddr, uint64_t n, int what, uint8_t *seen) {
  static const char *const names[2] = {"a", "b"};
  return edgellm_csim::run_on_ports<2>(ddr, n, names, [&](const uint8_t *ro, uint8_t *const *rw) {
    toy(ro, rw[0], rw[1], what, seen);
  });
}
extern "C" long long total_conflicts() { return edgellm_csim::port_conflicts(); }
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    src = tmp_path_factory.mktemp("toy") / "toy.cpp"
    src.write_text(HARNESS)
    lib = csim.load([src], "port_model_toy", includes=[csim.TB_DIR])
    lib.run_toy.restype = lib.total_conflicts.restype = ctypes.c_longlong
    lib.run_toy.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p]
    return lib


def run_toy(lib: ctypes.CDLL, ddr: np.ndarray, what: int) -> tuple[int, np.ndarray]:
    seen = np.zeros(3, np.uint8)
    n = lib.run_toy(csim.ptr(ddr), ddr.size, what, csim.ptr(seen))
    return int(n), seen


def test_model_channels_and_merge(toy: ctypes.CDLL) -> None:
    """Inside a call an argument sees its own writes and no other argument's (the read-only one and b
    read the old byte); after the call every argument's writes are in the buffer; disjoint writes of two
    arguments are no conflict, two writes of one byte are one."""
    ddr = np.full(37, 3, np.uint8)  # not a multiple of 8: the merge's tail bytes too
    n, seen = run_toy(toy, ddr, 0)
    assert n == 0 and seen.tolist() == [3, 3, 7] and ddr[0] == 7
    n, _ = run_toy(toy, ddr, 2)
    assert n == 0 and ddr[2] == 1 and ddr[3] == 2
    before = toy.total_conflicts()
    n, _ = run_toy(toy, ddr, 1)
    assert n == 1 and toy.total_conflicts() == before + 1


def port_conflicts(t: Top) -> int:
    fn = t.lib.edgellm_csim_port_conflicts
    fn.restype = ctypes.c_longlong
    return int(fn())


def under_model(t: Top) -> Top:
    """The top's C simulation with every later call under the port model."""
    t.lib.edgellm_csim_set_port_model(1)
    return t


# the default design (4 weight ports, sequential schedule: decode attention over kv0..kv3) and the
# prefill pipeline (the two jobs of a slot on act and data)
MODEL_CASES = [CASES[0], PIPE]


@pytest.mark.parametrize("case", MODEL_CASES, ids=case_id)
def test_top_bit_exact_under_port_model(case: tuple[str, str, DesignParams], tmp_path: Path) -> None:
    """Prefill with taps and 12 decode steps bit-exact against the golden model with each m_axi argument
    its own channel, and no byte written through two arguments."""
    variant, mm, design = case
    t = under_model(make_top(tmp_path, variant, mm, design))
    c0 = port_conflicts(t)
    check_prefill_then_decode(t)
    assert port_conflicts(t) == c0


def reset(t: Top) -> None:
    """The DDR buffer as the host first loads it: the static image, zeros after it."""
    t.ddr[:] = 0
    t.ddr[:t.plan.static_bytes] = t.plan.image


def make_mutant(tmp: Path, monkeypatch: pytest.MonkeyPatch, file: str, *edits: tuple[str, str]) -> Top:
    """The default design's top with edits (old, new) in the generated project's copy of `file` (a seeded
    bug)."""
    real = shared_top.generate_hls

    def generate(hls: Path, *args: object, **kw: object) -> dict:
        info = real(hls, *args, **kw)
        path = Path(hls) / file
        text = path.read_text()
        for old, new in edits:
            assert text.count(old) == 1, f"{file}: the mutation's target {old!r} is not there once"
            text = text.replace(old, new)
        path.write_text(text)
        return info

    monkeypatch.setattr(shared_top, "generate_hls", generate)
    variant, mm, design = CASES[0]
    return make_top(tmp, variant, mm, design)


def test_mutant_cross_argument_read_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded bug: cached-style attention (decode, short multi-row calls) reads every position over
    kv0..kv3, those this call wrote through data too (the design before the fix). Bit-exact with every
    argument on one buffer (what C simulation showed), caught under the port model (kv* reads those
    positions' old bytes, as co-simulation would)."""
    t = make_mutant(tmp_path, monkeypatch, "edgellm/attention_layer.h",
                    ("return kv_old < 0 || kv_old > pos0 ? pos0 + t_len : kv_old;", "return pos0 + t_len;"))
    t.lib.edgellm_csim_set_port_model(0)
    check_prefill_then_decode(t)
    t.lib.edgellm_csim_set_port_model(1)
    reset(t)  # the K/V cache the first run left would be the right stale bytes
    with pytest.raises(AssertionError):
        check_prefill_then_decode(t)


def test_mutant_two_argument_write_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded bug: the LM head's final norm writes its quantized row through data while the layers write
    the same bytes through act (and the head reads it back through data, so every logit is still right):
    the port model counts the bytes two arguments wrote in one call."""
    t = make_mutant(tmp_path, monkeypatch, "edgellm/top_engine.h",
                    ("act, act, data, taps, rows, head, act, act, at);",
                     "act, head ? data : act, data, taps, rows, head, act, act, at);"),
                    ("lm_head<typename TC::head>(act, act, t_len,",
                     "lm_head<typename TC::head>(data, act, t_len,"))
    t.lib.edgellm_csim_set_port_model(1)
    c0 = port_conflicts(t)
    check_prefill_then_decode(t)
    assert port_conflicts(t) > c0


@pytest.mark.slow
@pytest.mark.large
@pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None, reason="C simulation needs hls4ml's ap_types")
def test_large_layer_under_port_model(tmp_path: Path) -> None:
    """One bitnet_b1_58-large layer (hidden 1536, FFN 4096, 16 heads; random weights) compiled for the
    KV260 (4 weight ports, the prefill pipeline): a 13-token prefill (uneven halves) and 3 decode steps
    through the emulator, whose C simulation runs every call under the port model: bit-exact against
    the golden model, no byte written through two arguments."""
    from edgellm.runtime.emulator import build_csim_library
    from edgellm.runtime.project import Project

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import emulator_large
    finally:
        sys.path.pop(0)
    r = emulator_large.run(tmp_path, n_prefill=13, n_decode=4, layers=1)
    proj = Project.open(tmp_path / "proj")
    lib = ctypes.CDLL(str(build_csim_library(proj.path, proj.iface.ip_name)))  # the emulator's, loaded
    lib.edgellm_csim_port_conflicts.restype = ctypes.c_longlong
    print(r)
    assert r["mismatches"] == [0] * 4 and lib.edgellm_csim_port_conflicts() == 0


def test_perf_model_reads_the_new_position_over_data() -> None:
    """The decode K/V stream as cost_attention counts it: the positions of earlier calls at the K/V
    ports' rate, the one the call wrote at the data port's (and only that one at position 0)."""
    c, d, kv, f = AttnCall(16, 16, 129), 96, 2, 250e6
    base = decode_reader_s(c, d, kv, f, 4e9, 16e9)
    one = kv_bytes(AttnCall(16, 16, 1), d, kv)
    assert decode_reader_s(c, d, kv, f, 1e9, 16e9) - base == pytest.approx(one / 1e9 - one / 4e9)
    assert decode_reader_s(c, d, kv, f, 4e9, 8e9) - base == pytest.approx(128 * one / 8e9 - 128 * one / 16e9)
    first = AttnCall(16, 16, 1)
    # its K row and its V row, a first-beat latency each
    assert decode_reader_s(first, d, kv, f, 4e9, 1.0) == pytest.approx(2 * KV_ROW_RESTART / f + one / 4e9)


def test_emulator_refuses_a_two_argument_write() -> None:
    """The emulator reads the library's conflict count around every call: a call in which two arguments
    wrote one byte is a DeviceError (here a toy top that reports n_desc such bytes)."""
    count = [0]

    def run(ddr: int, nbytes: int, hdr_off: int, prog_off: int, n_desc: int) -> None:
        count[0] += n_desc

    regs = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "data": 0x28}
    dev = EmulatorDevice(CsimFunc(run), regs)
    dev.port_conflicts = lambda: count[0]
    buf = dev.alloc(4096)
    dev.write_reg64(regs["data"], buf.physical_address)
    dev.run(timeout_s=5.0)
    dev.write_reg(regs["n_desc"], 3)
    with pytest.raises(DeviceError, match="two m_axi arguments"):
        dev.run(timeout_s=5.0)
