"""synth_check's port-budget rule on the element-wise engine's shared row (elementwise.h EwRows<E>::r0,
declared by the macro EDGELLM_EW_ROWS with its BIND_STORAGE and ARRAY_PARTITION, passed by reference to
the stages, whose passes take `rows.r0` as a pointer): the project's pragma macros expanded where used
(hw/synth_macros.py), parameters bound through the call chain and struct members passed by reference
(hw/synth_bind.py). Before this the row was invisible to the rule: every test that expects a finding
fails on the old rule."""

import re
import shutil
from pathlib import Path

from edgellm.hw import synth_check, synth_macros

MACROS = """#define P_STR(x) _Pragma(#x)
#define P(x) P_STR(x)
#define BIND(var, kind) P(HLS BIND_STORAGE variable = var type = kind impl = bram)
template <int N>
struct Rows {
  float r0[N];
};
#define ROWS(N, rows)  \\
  Rows<N> rows;        \\
  BIND(rows.r0, KIND)  \\
  P(HLS ARRAY_PARTITION variable = rows.r0 type = cyclic factor = 4)
"""


def _snippet(reads: str, kind: str = "ram_t2p", extra: str = "") -> str:
    """A row declared through ROWS (cyclic by 4, BIND_STORAGE kind) in top, passed by reference to engine
    and stage, whose pass takes rows.r0 as x: an II=1 loop over c, lanes l = 0..3 unrolled, reading x at
    `reads` (index offsets after c * 4 + l, '+'-separated) into y."""
    terms = " + ".join(f"x[c * 4 + l{o}]" for o in reads.split(","))
    return (MACROS.replace("KIND", kind) + extra +
            "void pass(const float *x, float *y, int n) {\n#pragma HLS INLINE\n"
            "  for (int c = 0; c < 16; c++) {\n#pragma HLS PIPELINE II = 1\n"
            "    for (int l = 0; l < 4; l++) {\n#pragma HLS UNROLL\n"
            f"      y[c * 4 + l] = {terms};\n    }}\n  }}\n}}\n"
            "template <int N>\nvoid stage(Rows<N> &rows, float *out, int n) {\n#pragma HLS INLINE off\n"
            "  pass(rows.r0, out, n);\n}\n"
            "template <int N>\nvoid engine(Rows<N> &rows, float *out, int n) {\n"
            "  stage<N>(rows, out, n);\n}\n"
            "void top(float *out, int n) {\n  ROWS(64, rows)\n  engine<64>(rows, out, n);\n}\n")


def _found(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "k.h"
    p.write_text(text)
    return [f"{f.line}: {f.detail}" for f in synth_check.check_paths([p]) if f.rule == "port-budget"]


def _line(text: str, what: str) -> int:
    return text[:text.index(what)].count("\n") + 1


def test_struct_member_row_through_a_macro_two_levels_down(tmp_path: Path) -> None:
    """Three reads per bank of the macro-declared member row, two levels of reference below its
    declaration: a finding at the loop; two reads per bank (c * 4 + l and + 4: one bank each, the macro's
    cyclic partition): none (one memory, had the partition not been carried, would take eight); the
    macro's BIND_STORAGE carried too: ram_1p takes one access per bank."""
    three = _snippet(",+4,+8")
    loop = _line(three, "for (int c")
    assert _found(tmp_path, three) == [
        f"{loop}: x 3 accesses on one memory per iteration of an II=1 loop in pass"]
    assert _found(tmp_path, _snippet(",+4")) == []
    assert _found(tmp_path, _snippet(",+4", kind="ram_1p")) == [
        f"{loop}: x 2 accesses on one memory per iteration of an II=1 loop in pass"]


def test_in_place_parameters_are_one_array(tmp_path: Path) -> None:
    """x and y bound to the same row (a pass in place): its read and write at c * 4 + l and a second read
    at + 4 are three accesses on one bank (each parameter alone would be within two ports)."""
    text = _snippet(",+4").replace("pass(rows.r0, out, n)", "pass(rows.r0, rows.r0, n)")
    assert _found(tmp_path, text) == [
        f"{_line(text, 'for (int c')}: x 3 accesses on one memory per iteration of an II=1 loop in pass"]


def test_unknown_storage_makes_no_claim(tmp_path: Path) -> None:
    """A pointer member (not an array), a struct with no definition in the sources, a macro defined twice
    (its pragmas are not known): no finding however many reads."""
    ptr = _snippet(",+4,+8").replace("float r0[N];", "float *r0;")
    assert _found(tmp_path, ptr) == []
    undefined = _snippet(",+4,+8").replace("struct Rows {\n  float r0[N];\n};", "struct Rows;")
    assert _found(tmp_path, undefined) == []
    twice = _snippet(",+4,+8").replace("#define P(x) P_STR(x)\n", "#define P(x) P_STR(x)\n#define P(x)\n")
    assert _found(tmp_path, twice) == []


def test_macro_expansion_keeps_lines() -> None:
    """Uses replaced on their own lines (a use spanning lines keeps its newlines after it); arguments are
    not rescanned for the parameters' names; other macros stay."""
    found = synth_macros.pragma_macros(synth_macros.defines(MACROS.replace("KIND", "ram_t2p")
                                                            + "#define OTHER(a) (a + 1)\n"))
    assert set(found) == {"P_STR", "P", "BIND", "ROWS"}
    code = "int f() {\n  ROWS(8,\n       x)\n  return OTHER(1);\n}\n"
    out = synth_macros.expand(code, found)
    assert out.count("\n") == code.count("\n")
    assert "Rows<8> x; #pragma HLS BIND_STORAGE variable = x.r0 type = ram_t2p impl = bram;" in out
    assert "#pragma HLS ARRAY_PARTITION variable = x.r0 type = cyclic factor = 4;" in out
    assert "OTHER(1)" in out
    # P's argument holds `x` (P_STR's parameter): substituted once, not again
    assert synth_macros.expand("P(HLS UNROLL factor = x)", found) == "#pragma HLS UNROLL factor = x;"


def test_select_between_static_offsets(tmp_path: Path) -> None:
    """A rotate-half partner read at a selected index (rope_row's form): `r < H ? i + H : i - H` with H of
    unknown value is one access of i's runtime part and lane (static parts taken to differ by a multiple of
    the factor), so with the element's own read two per bank; H = 2 under factor 4 (i + 2 and i - 2
    in one bank) likewise; H = 1 (banks l + 1 or l - 1: either) counts against every bank."""
    def sel(h: str) -> str:
        partner = f"x[(c * 4 + l) % 8 < {h} ? c * 4 + l + {h} : c * 4 + l - {h}]"
        text = _snippet("").replace("x[c * 4 + l];", f"x[c * 4 + l] + {partner};")
        return text.replace("void pass(", "template <int H>\nvoid pass(") if h == "H" else text

    assert _found(tmp_path, sel("H")) == []
    assert _found(tmp_path, sel("2")) == []
    assert _found(tmp_path, sel("1")) == [
        f"{_line(sel('1'), 'for (int c')}: x 5 accesses on one memory per iteration of an II=1 loop in pass"]


def test_one_return_member_call_indexes(tmp_path: Path) -> None:
    """An index through a local struct's one-return member (maxi.h RowStore::index, `j * E + i - s`):
    inlined, the lanes i are a rotation (one read per bank); opaque, each lane would count against every
    bank (four reads)."""
    st = ("struct St {\n  enum { E = 4 };\n  int s;\n"
          "  int index(int j, int i) const { return j * E + i - s; }\n};\n")
    local = "#pragma HLS INLINE\n  St st;\n  st.s = n;\n"
    text = _snippet("", extra=st).replace("#pragma HLS INLINE\n", local, 1)
    text = text.replace("y[c * 4 + l] = x[c * 4 + l];", "y[c * 4 + l] = x[st.index(c, l)];")
    assert _found(tmp_path, text) == []
    opaque = text.replace("return j * E + i - s;", "const int k = j * E + i - s; return k;")  # two statements
    assert _found(tmp_path, opaque) == [
        f"{_line(text, 'for (int c')}: x 4 accesses on one memory per iteration of an II=1 loop in pass"]


def _library_copy(tmp_path: Path) -> Path:
    lib = Path(synth_check.__file__).resolve().parent / "include"
    shutil.copytree(lib, tmp_path / "include")
    return tmp_path / "include"


def test_the_engine_row_is_counted(tmp_path: Path) -> None:
    """hw/include's passes on rows.r0 are counted: rope_row with its partner read as the select between
    two reads it had before 62246f8 (three reads of a two-port bank), rmsnorm_scale (the scale pass, in
    place: x = y = rows.r0) with one more read of x a beat on, and the fused residual pass (ew_fused.h:
    ew_fused_pass's op(u, i) inlined, op.row = row = rows.r0) with one more read of the row a beat on:
    each a finding in a copy of the library, none in the library itself."""
    inc = _library_copy(tmp_path)
    passes = inc / "edgellm" / "ew_passes.h"
    text = passes.read_text()
    new = "const f32 p = x[r < H ? i + H : i - H];"
    assert new in text
    text = text.replace(new, "const f32 p = r < H ? x[i + H] : x[i - H];")
    scale = "const f32 v = (x[i] * r) * gb[j];"
    assert scale in text
    passes.write_text(text.replace(scale, "const f32 v = (x[i] * r + x[i + X]) * gb[j];"))
    fused = inc / "edgellm" / "ew_fused.h"
    text = fused.read_text()
    residual = "const f32 v = b[u] + row[i];"
    assert residual in text
    fused.write_text(text.replace(residual, "const f32 v = b[u] + row[i] + row[i + X];"))
    found = {(f.path.name, re.sub(r"^([\w.]+) (\d+) .* in (\w+)$", r"\3 \1 \2", f.detail))
             for f in synth_check.check_paths([inc]) if f.rule == "port-budget"}
    assert found == {("ew_passes.h", "rope_row x 3"), ("ew_passes.h", "rmsnorm_scale x 3"),
                     ("ew_fused.h", "ew_fused_pass op.row 3")}
    assert [f for f in synth_check.check_paths([Path(synth_check.__file__).resolve().parent / "include"])
            if f.rule == "port-budget"] == []
