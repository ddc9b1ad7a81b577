"""hw/synth_view.py: the generated top compiled as Vitis HLS's front end reads it (__SYNTHESIS__ defined,
C++14, -Werror=vla), which the C simulation never does; and `edgellm csim` failing a top whose
synthesis-only code does not compile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgellm.hw import csim, synth_view, synth_view_libclang

pytestmark = pytest.mark.skipif(shutil.which(csim.cxx()) is None, reason="needs g++")

AP = csim.ap_types_dir()
CLANG = synth_view.clang()
LIBCLANG = [synth_view.LIBCLANG] if synth_view_libclang.version() else []  # the [test] extra's wheel
FRONT_ENDS = [csim.cxx(), *([CLANG] if CLANG else []), *LIBCLANG]
STREAM_TOP = """#include <ap_int.h>
#include <hls_stream.h>
void top(hls::stream<ap_uint<64> > &s, ap_uint<64> *o) {
#pragma HLS INTERFACE m_axi port = o
  o[0] = s.read() + 1;
}
"""


def _top(tmp_path: Path, body: str) -> Path:
    hls = tmp_path / "hls"
    hls.mkdir(exist_ok=True)
    top = hls / "top.cpp"
    top.write_text(body)
    return top


def _csim_view_compiles(top: Path) -> bool:
    """Whether the C simulation's view of top (no __SYNTHESIS__) compiles: what csim always checked."""
    cmd = [csim.cxx(), "-std=c++14", "-fsyntax-only", "-Wno-unknown-pragmas", f"-isystem{AP}", str(top)]
    return subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0


@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_a_top_with_ap_types_and_streams_compiles(tmp_path: Path, cxx: str) -> None:
    """The open ap types `#error` under __SYNTHESIS__: the view includes them first, so a plain top
    using them compiles."""
    assert synth_view.check(cxx, _top(tmp_path, STREAM_TOP), AP) == []


@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_a_synthesis_only_branch_is_compiled(tmp_path: Path, cxx: str) -> None:
    bad = (STREAM_TOP + "#ifdef __SYNTHESIS__\ntypedef ap_int<27> dsp_t;\n"
           "dsp_t f(dsp_t a) { return a * b; }\n#endif\n")
    top = _top(tmp_path, bad)
    assert _csim_view_compiles(top)  # the C simulation never sees it
    found = synth_view.check(cxx, top, AP)
    assert found and "__SYNTHESIS__ defined" in found[0] and "'b'" in " ".join(found), found
    top.write_text(bad.replace("#ifdef __SYNTHESIS__", "#ifndef __SYNTHESIS__"))  # control: C-sim only
    assert synth_view.check(cxx, top, AP) == []


@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_a_name_only_the_c_simulation_declares(tmp_path: Path, cxx: str) -> None:
    text = STREAM_TOP.replace("  o[0] = s.read() + 1;\n", "#ifndef __SYNTHESIS__\n  int trace = 0;\n#endif\n"
                              "  o[0] = s.read() + 1 + trace;\n")
    top = _top(tmp_path, text)
    assert _csim_view_compiles(top)
    found = synth_view.check(cxx, top, AP)
    assert found and "trace" in " ".join(found), found


@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_a_variable_length_array_fails(tmp_path: Path, cxx: str) -> None:
    vla = STREAM_TOP + "int sum(int n) {\n  int buf[n];\n  buf[0] = n;\n  return buf[0];\n}\n"
    top = _top(tmp_path, vla)
    assert _csim_view_compiles(top)  # an extension both compilers accept
    found = synth_view.check(cxx, top, AP)
    assert found and ("vla" in " ".join(found) or "variable length" in " ".join(found)), found


def test_front_end_prefers_the_environment_then_clang(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.errors import EdgeLLMError

    monkeypatch.setenv("EDGELLM_SYNTH_VIEW_CXX", csim.cxx())
    assert synth_view.front_end() == csim.cxx()
    monkeypatch.setenv("EDGELLM_SYNTH_VIEW_CXX", "no-such-compiler-here")
    with pytest.raises(EdgeLLMError, match="not found on PATH"):
        synth_view.front_end()
    monkeypatch.delenv("EDGELLM_SYNTH_VIEW_CXX")
    fallback = synth_view.LIBCLANG if LIBCLANG else csim.cxx()
    assert synth_view.front_end().startswith("clang++") if CLANG else synth_view.front_end() == fallback
    monkeypatch.setattr(synth_view, "clang", lambda: None)  # no clang++: the wheel, else g++
    assert synth_view.front_end() == fallback
    if LIBCLANG:
        monkeypatch.setenv("EDGELLM_SYNTH_VIEW_CXX", synth_view.LIBCLANG)
        assert synth_view.front_end() == synth_view.LIBCLANG
        monkeypatch.setattr(synth_view_libclang, "version", lambda: None)
        with pytest.raises(EdgeLLMError, match="libclang module does not load"):
            synth_view.front_end()


@pytest.mark.slow
@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_the_compiled_tiny_project_compiles_in_the_view(tmp_path: Path, cxx: str) -> None:
    """Every source of a compiled project (the toolkit's headers as the project carries them, the
    generated config and top) as synthesis reads them, with g++ and, where installed, clang."""
    from shared_fixtures import run_cli

    out = tmp_path / "p"
    assert run_cli("compile", "-o", str(out)).returncode == 0
    assert synth_view.check(cxx, out / "hls" / "top.cpp", AP) == []


@pytest.mark.parametrize("cxx", FRONT_ENDS)
def test_csim_reports_a_synthesis_view_finding(tmp_path: Path, cxx: str, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """commands/csim.synthesis_view_findings on a project folder's top.cpp: none for a plain top, a finding
    once synthesis-only code does not compile (cached by content: the edit is seen); with each front end
    (its cache key names it: libclang has no --version to run)."""
    from edgellm.commands.csim import synthesis_view_findings

    monkeypatch.setenv("EDGELLM_SYNTH_VIEW_CXX", cxx)

    top = _top(tmp_path, STREAM_TOP)
    assert synthesis_view_findings(top.parent) == []
    top.write_text(STREAM_TOP + "#ifdef __SYNTHESIS__\nint broken = missing_name;\n#endif\n")
    found = synthesis_view_findings(top.parent)
    assert found and "missing_name" in " ".join(found), found
