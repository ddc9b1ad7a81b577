"""hw/ap_widths.py: the widest ap_[u]int a synthesized top instantiates against Vitis HLS's AP_INT_MAX_W
(1024 by default, UG1399), which hls4ml's C-simulation headers do not enforce; and `edgellm csim` failing
a project whose top exceeds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgellm.errors import EdgeLLMError
from edgellm.hw import ap_widths, csim

pytestmark = pytest.mark.skipif(shutil.which("nm") is None or shutil.which(csim.cxx()) is None,
                                reason="needs g++ and nm")

FLAGS = [f"-isystem{csim.ap_types_dir()}"]


def _widths(tmp_path: Path, body: str) -> dict[int, str]:
    src = tmp_path / "t.cpp"
    src.write_text("#include <ap_int.h>\n" + body)
    return ap_widths.object_widths(csim.cxx(), src, FLAGS)


def test_a_2048_bit_type_is_over_the_default(tmp_path: Path) -> None:
    w = _widths(tmp_path, "ap_uint<2048> f(ap_uint<2048> a) { return a + 1; }\n")
    assert max(w) > 1024
    out = ap_widths.findings(w, ap_widths.AP_INT_MAX_W)
    assert out and out[0].startswith("ap width ") and "> AP_INT_MAX_W 1024" in out[0]


def test_1024_bits_is_within(tmp_path: Path) -> None:
    w = _widths(tmp_path, "ap_uint<1024> f(ap_uint<1024> a) { return a >> 3; }\n")
    assert max(w) == 1024 and ap_widths.findings(w, ap_widths.AP_INT_MAX_W) == []


def test_operator_results_count(tmp_path: Path) -> None:
    """ap_uint<1024> + ap_uint<1024> is 1025 bits: over the default, though no declared type is."""
    w = _widths(tmp_path, "ap_uint<1024> f(ap_uint<1024> a, ap_uint<1024> b) { return a + b; }\n")
    assert max(w) > 1024


def test_a_define_raises_the_limit_to_at_most_4096(tmp_path: Path) -> None:
    src = tmp_path / "t.cpp"
    src.write_text("#define AP_INT_MAX_W 2048\n#include <ap_int.h>\nap_uint<1500> g;\n")
    assert ap_widths.declared_limit([src]) == 2048
    widest, over = ap_widths.check_top(csim.cxx(), src, FLAGS, [src])
    assert widest >= 1500 and over == []
    src.write_text("#define AP_INT_MAX_W 8192\n#include <ap_int.h>\nap_uint<5000> g;\n")
    assert ap_widths.check_top(csim.cxx(), src, FLAGS, [src])[1]


def test_a_source_that_does_not_compile_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeLLMError, match="ap width check, -O0.*failed"):
        _widths(tmp_path, "this is not C++;\n")


def test_csim_fails_a_top_over_the_limit(tmp_path: Path) -> None:
    """`edgellm csim`'s check (commands/csim.ap_width_findings) on a project folder's top.cpp: within for
    the shipped headers' widths, a finding once the top instantiates a 2048-bit type."""
    from edgellm.commands.csim import ap_width_findings

    hls = tmp_path / "hls"
    hls.mkdir()
    (hls / "top.cpp").write_text("#include <ap_int.h>\nap_uint<512> top(ap_uint<512> a) { return a ^ 1; }\n")
    assert ap_width_findings(hls, [hls / "top.cpp"]) == []
    (hls / "top.cpp").write_text("#include <ap_int.h>\nap_uint<2048> top(ap_uint<2048> a) { return a; }\n")
    assert ap_width_findings(hls, [hls / "top.cpp"])
