"""`edgellm csim --sanitize` (hw/sanitize.py): the testbench under AddressSanitizer and
UndefinedBehaviorSanitizer. An out-of-bounds access or a signed overflow in edgellm's code fails it;
hls4ml's ap types shifting negative values inside their own arithmetic does not (suppressed, and shown
to need the suppression)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgellm.commands.csim import build_testbench, run_testbench, sanitizer_env
from edgellm.hw import csim

pytestmark = pytest.mark.skipif(shutil.which(csim.cxx()) is None, reason="needs g++")

MAIN = "int main(int, char **) {\n  return run();\n}\n"
AP_NEGATIVE_SHIFTS = """#include <ap_int.h>
int run() {
  ap_int<18> a = -903;       // hls4ml's ap_private shifts the negative value left to sign-extend it
  ap_int<18> b = a << 3;
  ap_int<45> c;              // default-constructed: the same shifts on whatever bits it holds
  c = b * a;
  return (c == ap_int<45>(-903 * 8 * -903)) ? 0 : 3;
}
"""
OUT_OF_BOUNDS = """static int buf[8];
static int sum(const int *p, int n) {
  int s = 0;
  for (int i = 0; i <= n; i++) s += p[i];  // one past the end
  return s;
}
int run() {
  volatile int n = 8;
  return sum(buf, n) == 12345 ? 4 : 0;
}
"""
SIGNED_OVERFLOW = """int run() {
  volatile int big = 2147483647;
  int x = big + 1;
  return x == 0 ? 4 : 0;
}
"""


def _run(tmp_path: Path, top: str, sanitize: bool = True,
         env_override: dict[str, str] | None = None, capsys: pytest.CaptureFixture | None = None
         ) -> tuple[int, str]:
    hls = tmp_path / "hls"
    hls.mkdir(exist_ok=True)
    (hls / "top.cpp").write_text(top)
    (hls / "tb_top.cpp").write_text("int run();\n" + MAIN)
    exe = build_testbench(hls, False, sanitize)
    env = sanitizer_env(tmp_path) if sanitize else None
    if env is not None and env_override:
        env.update(env_override)
    rc = run_testbench(exe, tmp_path, None, 120, env)
    out = capsys.readouterr().out if capsys is not None else ""
    return rc, out


def test_ap_types_own_shifts_are_suppressed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out = _run(tmp_path, AP_NEGATIVE_SHIFTS, capsys=capsys)
    assert rc == 0, out
    # control: without the suppressions the same program stops in ap_private.h
    rc, out = _run(tmp_path, AP_NEGATIVE_SHIFTS, env_override={"UBSAN_OPTIONS": "halt_on_error=1"},
                   capsys=capsys)
    assert rc != 0 and "ap_private.h" in out and "runtime error" in out, out


def test_an_out_of_bounds_read_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out = _run(tmp_path, OUT_OF_BOUNDS, capsys=capsys)  # UBSan's object-size check or ASan, first wins
    assert rc != 0 and ("AddressSanitizer: global-buffer-overflow" in out or "insufficient space" in out), out
    rc, out = _run(tmp_path, OUT_OF_BOUNDS, sanitize=False, capsys=capsys)  # unsanitized: passes
    assert rc == 0, out


def test_a_signed_overflow_in_our_code_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out = _run(tmp_path, SIGNED_OVERFLOW, capsys=capsys)
    assert rc != 0 and "signed integer overflow" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("threads", [False, pytest.param(True, marks=pytest.mark.large)],
                         ids=["sequential", "threads"])  # threaded: `pytest -m large`
def test_the_tiny_project_is_clean_under_the_sanitizers(tmp_path: Path, threads: bool) -> None:
    """The shipped tiny model's project, prefill and one decode step, sequential and threaded, bit-exact
    and without a report: no out-of-bounds access or undefined behaviour in the kernels (measured also on
    a geared Q4_K_M and a Q2_K low-bit project: clean)."""
    from shared_fixtures import run_cli

    out = tmp_path / "p"
    assert run_cli("compile", "-o", str(out)).returncode == 0
    res = run_cli("csim", str(out), "--sanitize", "--decode-steps", "1", *(["--threads"] if threads else []))
    assert res.returncode == 0 and "csim: PASS" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]
    assert "-fsanitize=address,undefined" in res.stdout


def _preloaded(tmp_path: Path, args: str) -> subprocess.CompletedProcess:
    """args run as sanitize.preload_command writes it (the kernel libraries under the sanitizers)."""
    from edgellm.hw import sanitize

    line = sanitize.preload_command(csim.cxx(), csim.ap_types_dir(), tmp_path, args)
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).resolve().parents[1])


LIB_UB = """extern "C" int f(int n) {
  long long x = -1;
  return int(x << n);  // a negative value shifted left: undefined behaviour in C++14
}
"""


def test_kernel_libraries_under_the_sanitizers(tmp_path: Path) -> None:
    """$EDGELLM_CSIM_SANITIZE=1 builds csim.build's libraries with the sanitizers; loaded into a Python
    with their runtime preloaded, undefined behaviour in one stops the process; the clean twin runs."""
    src = tmp_path / "ub.cpp"
    for body, fails in ((LIB_UB, True), (LIB_UB.replace("x << n", "x * (1LL << n)"), False)):
        src.write_text(body)
        code = (f"from edgellm.hw import csim; lib = csim.load([{str(src)!r}], 'ubtest'); "
                "print('value', lib.f(3))")
        res = _preloaded(tmp_path, f"python -c \"{code}\"")
        if fails:
            assert res.returncode != 0 and "left shift of negative value" in res.stderr, res.stderr[-2000:]
        else:
            assert res.returncode == 0 and "value -8" in res.stdout, res.stderr[-2000:]


DSP_LANES = """#include <ap_int.h>
#include <cstdio>
#include "edgellm/tlmm.h"
using namespace edgellm;
struct D_fields : tlmm_config_base {  // test_hw_tlmm's d1: TP 2, one DSP lane
  static const int G = 3, T = 5, R = 16, K_MAX = 64, N_MAX = 64, MAX_TOK = 8;
  static const int TP = 2, OL = 4, DL = 1;
};
typedef tlmm_traits<D_fields> C;
static C::xchunk_t xbuf[C::TP][C::XROWS][C::CPC];
int main() {
  ap_int<2> wt[2 * C::PAIRS][C::STEP_K];
  for (int r = 0; r < 2 * C::PAIRS; r++)
    for (int j = 0; j < C::STEP_K; j++) wt[r][j] = (r + j) % 3 - 1;  // every trit, -1 included
  for (int l = 0; l < C::TP; l++)
    for (int cc = 0; cc < C::CPC; cc++) xbuf[l][0][cc] = C::xchunk_t(0x5A5A5A5A5A5AULL * (l + cc + 1));
  C::acc_t acc[C::GROUP_OUTS];
  tile_dsp_lanes<C>(wt, xbuf, 0, true, acc);
  std::printf("dsp lanes ran\\n");
  return 0;
}
"""


def _dsp_lanes_under_ubsan(tmp_path: Path, include: Path) -> subprocess.CompletedProcess:
    """DSP_LANES built with the sanitizers against the headers under include, run with csim's suppressions."""
    from edgellm.hw import sanitize

    src, exe = tmp_path / "dsp_lanes.cpp", tmp_path / "dsp_lanes"
    src.write_text(DSP_LANES)
    cmd = [csim.cxx(), "-std=c++14", "-O0", *sanitize.FLAGS, f"-I{include}", f"-isystem{csim.ap_types_dir()}",
           str(src), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return subprocess.run([str(exe)], capture_output=True, text=True, env=sanitizer_env(tmp_path), timeout=60)


def test_dsp_lane_packing_is_defined(tmp_path: Path) -> None:
    """The TLMM's DSP lanes pack w[2p] * 2^S (tlmm_tile.h tile_dsp_lanes): written `w << S`, a negative
    trit shifted left was undefined behaviour in the C simulation's int64_t operands (found by the
    sanitizer sweep: UBSan stopped test_hw_tlmm's DSP-lane cases); a multiply by the constant gives the
    same bits (test_hw_tlmm's DSP shapes check them against numpy). The packing under the sanitizers is
    clean; the old line is reported."""
    res = _dsp_lanes_under_ubsan(tmp_path, csim.INCLUDE_DIR)
    assert res.returncode == 0 and "dsp lanes ran" in res.stdout, res.stderr[-2000:]
    old = tmp_path / "old" / "edgellm"
    old.mkdir(parents=True)
    for f in (csim.INCLUDE_DIR / "edgellm").glob("*.h"):
        (old / f.name).write_text(f.read_text())
    tile = (old / "tlmm_tile.h").read_text()
    new_line = "typename CFG::dsp_a_t(wt[2 * p][j]) * two_s"
    assert tile.count(new_line) == 1
    (old / "tlmm_tile.h").write_text(tile.replace(new_line, "(typename CFG::dsp_a_t(wt[2 * p][j]) << S)"))
    res = _dsp_lanes_under_ubsan(tmp_path, old.parent)
    assert res.returncode != 0 and "left shift of negative value" in res.stderr, res.stderr[-2000:]


@pytest.mark.large
def test_dsp_lane_cases_of_the_kernel_tests(tmp_path: Path) -> None:
    """A DSP-lane case of test_hw_tlmm with its library under the sanitizers (python -m edgellm.hw.sanitize;
    about 2 minutes here: the default run has the focused case above)."""
    res = _preloaded(tmp_path, "python -m pytest -q -s -x -n 0 -p no:cacheprovider tests/test_hw_tlmm.py "
                               "-k 'int_exact_random and d1-37'")
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
