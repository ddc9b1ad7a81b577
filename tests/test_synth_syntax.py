"""hw/synth_syntax.py's pragma-syntax rule (through synth_check): every `#pragma HLS` of the library and of a
generated project is one the Vitis HLS pragma reference defines; a bad name, option, value or combination is
flagged, and so are those a pragma macro writes."""

from pathlib import Path

import pytest

from edgellm.hw import synth_check, synth_syntax


def _found(pragma: str) -> list[str]:
    text = f"void f(int *p) {{\n  int a[64];\n  hls::stream<int> s;\n{pragma}\n  p[0] = a[0];\n}}\n"
    return [f.detail for f in synth_check.check_text(Path("k.h"), text, set()) if f.rule == "pragma-syntax"]


GOOD = [
    "#pragma HLS PIPELINE II = 1",
    "#pragma HLS pipeline ii = 1",
    "#pragma HLS PIPELINE II = kII rewind",
    "#pragma HLS PIPELINE off",
    "#pragma HLS UNROLL factor = 4",
    "#pragma HLS LOOP_TRIPCOUNT min = 1 max = (K_MAX + 3) / 4",
    "#pragma HLS ARRAY_PARTITION variable = a complete dim = 1",
    "#pragma HLS ARRAY_PARTITION variable = a type = cyclic factor = 4 dim = 1",
    "#pragma HLS ARRAY_PARTITION variable = rows.r0 cyclic factor = E::PART",
    "#pragma HLS BIND_STORAGE variable = a type = ram_s2p impl = lutram",
    "#pragma HLS BIND_STORAGE variable = s type = fifo impl = srl",
    "#pragma HLS BIND_STORAGE variable = a type = ram_t2p impl = bram",
    "#pragma HLS BIND_OP variable = a op = mul impl = dsp",
    "#pragma HLS BIND_OP variable = a op = fadd impl = fulldsp latency = 4",
    "#pragma HLS STREAM variable = s depth = (C::kv_block + 1) * C::beats_max",
    "#pragma HLS DEPENDENCE variable = a inter RAW distance = kMacDist true",
    "#pragma HLS DEPENDENCE variable = a type = inter dependent = false",
    "#pragma HLS dependence variable = a inter raw distance = 8 true",
    "#pragma HLS interface M_AXI port = p offset = SLAVE",
    "#pragma HLS INTERFACE m_axi port = p bundle = w0 offset = slave depth = 4096 max_widen_bitwidth = 128 "
    "max_read_burst_length = 64 num_read_outstanding = 4 latency = 64",
    "#pragma HLS INTERFACE s_axilite port = return bundle = control",
    "#pragma HLS INTERFACE mode = axis port = s",
    "#pragma HLS ALLOCATION function instances = load<CFG, WT> limit = 1",
    "#pragma HLS ALLOCATION operation instances = fadd limit = kFadd",
    "#pragma HLS DATAFLOW",
    "#pragma HLS INLINE off",
    "#pragma HLS EXPRESSION_BALANCE off",
    "#pragma HLS BIND_STORAGE variable = a type = ram_s2p impl = EDGELLM_ACT_STORAGE",
]


@pytest.mark.parametrize("pragma", GOOD)
def test_reference_pragmas_pass(pragma: str) -> None:
    assert _found(pragma) == []


BAD = {
    "#pragma HLS PIPELNE II = 1": "unknown HLS pragma",
    "#pragma HLS PIPELINE ii = 1 rewnd": "no option 'rewnd'",  # (option names in any case)
    "#pragma HLS PIPELINE II = 0": "II must be 1 or more",
    "#pragma HLS UNROLL factr = 4": "no option 'factr'",
    "#pragma HLS LOOP_TRIPCOUNT min = 1": "max is required",
    "#pragma HLS ARRAY_PARTITION variable = a cyclic dim = 1": "needs a factor",
    "#pragma HLS ARRAY_PARTITION variable = a complete factor = 4": "takes no factor",
    "#pragma HLS ARRAY_PARTITION a complete": "no option 'a'",
    "#pragma HLS ARRAY_PARTITION variable = a type = compete": "is not one of",
    "#pragma HLS BIND_STORAGE variable = a impl = bram": "type is required",
    "#pragma HLS BIND_STORAGE variable = a type = ram_s2p impl = reg": "impl = reg is not one of",
    "#pragma HLS BIND_STORAGE variable = a type = ram_2p impl = srl": "is for a fifo",
    "#pragma HLS BIND_STORAGE variable = a type = ram_t2p impl = lutram": "no true dual port",
    "#pragma HLS BIND_STORAGE variable = a type = rom_1p impl = uram": "cannot hold a ROM",
    "#pragma HLS BIND_STORAGE variable = a type = ram_2p impl = bram_ecc": "is for ram_s2p",
    "#pragma HLS BIND_OP variable = a op = fadd impl = primitivedsp": "Versal devices only",
    "#pragma HLS BIND_OP variable = a op = mul impl = fulldsp": "for floating-point operations",
    "#pragma HLS BIND_OP variable = a op = madd impl = dsp": "op = madd is not one of",
    "#pragma HLS STREAM variable = s dept = 4": "no option 'dept'",
    "#pragma HLS STREAM depth = 4": "variable is required",
    "#pragma HLS DEPENDENCE variable = a inter RAWW false": "no option 'RAWW'",
    "#pragma HLS INTERFACE port = p bundle = w0": "no mode",
    "#pragma HLS INTERFACE m_axi port = p offset = slv": "offset = slv is not one of",
    "#pragma HLS INTERFACE m_axi port = p max_widen_bitwidth = 96": "not a power of two",
    "#pragma HLS INTERFACE m_axi port = p max_read_burst_length = 512": "outside 1 .. 256",
    "#pragma HLS INTERFACE s_axilite port = p max_widen_bitwidth = 128": "no option 'max_widen_bitwidth'",
    "#pragma HLS ALLOCATION function instances = f": "limit is required",
    "#pragma HLS ALLOCATION instances = f limit = 1 function": "must follow the pragma's name",
}


@pytest.mark.parametrize("pragma", sorted(BAD))
def test_malformed_pragmas_are_flagged(pragma: str) -> None:
    found = _found(pragma)
    assert found and any(BAD[pragma] in f for f in found), found


def test_a_pragma_a_macro_writes_is_checked() -> None:
    """The pragma macros are expanded before the rule reads the pragmas (hw/synth_macros.py)."""
    text = ("#define P_STR(x) _Pragma(#x)\n#define P(x) P_STR(x)\n"
            "#define BIND(v, i) P(HLS BIND_STORAGE variable = v type = ram_s2p impl = i)\n"
            "void f(int *p) {\n  int a[64];\n  BIND(a, bram)\n  p[0] = a[0];\n}\n")
    found = lambda t: [f for f in synth_check.check_text(Path("k.h"), t, set())  # noqa: E731
                       if f.rule == "pragma-syntax"]
    assert found(text) == []
    bad = found(text.replace("BIND(a, bram)", "BIND(a, bramm)"))
    assert len(bad) == 1 and "impl = bramm" in bad[0].detail and bad[0].line == 6, bad


def test_the_library_and_a_project_pass(tmp_path: Path) -> None:
    lib = Path(synth_check.__file__).resolve().parent / "include"
    assert [str(f) for f in synth_check.check_paths([lib]) if f.rule == "pragma-syntax"] == []
    # every pragma name the library uses is in the table (the rule knows them, none passes by omission)
    names = {m.group(1).upper() for p in (lib / "edgellm").glob("*.h")
             for m in synth_syntax._PRAGMA.finditer(synth_check.strip_source(p.read_text()))}
    assert names and names <= set(synth_syntax.SPECS), names - set(synth_syntax.SPECS)


def _variable_findings(text: str) -> list[str]:
    return [f.detail for f in synth_check.check_text(Path("k.h"), text, set()) if f.rule == "pragma-variable"]


def test_a_pragma_names_a_variable_of_its_function() -> None:
    """`variable = X` must be declared in the function holding the pragma (or be its parameter); member paths
    by their root; several declarators and template types count."""
    good = ("template <class T> struct Row { T v[4]; };\n"
            "void f(int p[64], hls::stream<int> &s) {\n  int a[8], b[8];\n  Row<int> r;\n"
            "#pragma HLS ARRAY_PARTITION variable = a complete\n"
            "#pragma HLS ARRAY_PARTITION variable = b complete\n"
            "#pragma HLS ARRAY_PARTITION variable = r.v complete\n#pragma HLS STREAM variable = s depth = 4\n"
            "#pragma HLS BIND_STORAGE variable = p type = ram_1p impl = bram\n"
            "  p[0] = a[0] + b[0] + r.v[0];\n}\n")
    assert _variable_findings(good) == []
    bad = good.replace("variable = b complete", "variable = bb complete")
    assert _variable_findings(bad) == ["ARRAY_PARTITION names 'bb', which f neither declares nor takes"]
    # declared in another function only: out of scope
    other = "void g() {\n  int c[8];\n  c[0] = 1;\n}\n" + good.replace("variable = a complete",
                                                                       "variable = c complete")
    assert len(_variable_findings(other)) == 1


def test_a_library_mutant_with_a_misnamed_variable(tmp_path: Path) -> None:
    lib = Path(synth_check.__file__).resolve().parent / "include" / "edgellm"
    for f in lib.glob("*.h"):
        (tmp_path / f.name).write_text(f.read_text())
    head = tmp_path / "lm_head.h"
    text = head.read_text()
    assert text.count("variable = qbuf type") == 1
    head.write_text(text.replace("variable = qbuf type", "variable = qbuff type"))
    found = [f for f in synth_check.check_paths([tmp_path]) if f.rule == "pragma-variable"]
    assert len(found) == 1 and "'qbuff'" in found[0].detail and found[0].path.name == "lm_head.h", found


def test_a_partition_dim_past_the_arrays_dimensions() -> None:
    base = ("void f(int p[4][8], int q[8]) {{\n  int a[4][8];\n"
            "#pragma HLS ARRAY_PARTITION variable = a complete dim = {d}\n"
            "#pragma HLS ARRAY_PARTITION variable = p complete dim = {e}\n  q[0] = a[0][0] + p[0][0];\n}}\n")
    assert _variable_findings(base.format(d=2, e=0)) == []
    assert _variable_findings(base.format(d=3, e=2)) == [
        "ARRAY_PARTITION dim = 3 on 'a', an array of 2 dimensions"]
    assert _variable_findings(base.format(d=1, e=3)) == [
        "ARRAY_PARTITION dim = 3 on 'p', an array of 2 dimensions"]
