"""hw/synth_ports.py's port-budget rule: more accesses to one on-chip memory per iteration of an II=1 loop
than the memory has ports. Each test pairs the flagged form with the one that must pass."""

from pathlib import Path

from edgellm.hw import synth_check


def _found(tmp_path: Path, text: str, name: str = "k.h") -> list[str]:
    p = tmp_path / name
    p.write_text(text)
    return [f.detail for f in synth_check.check_paths([p]) if f.rule == "port-budget"]


def _loop(decl: str, stmt: str, pre: str = "") -> str:
    """f with a local `decl`, an II=1 loop whose iteration is `stmt`; pre: code before f."""
    return (f"{pre}int f(const int *x, int n, int r) {{\n  {decl}\n  int y = 0;\n"
            "  for (int i = 0; i < 64; i++) {\n#pragma HLS PIPELINE II = 1\n"
            f"    {stmt}\n  }}\n  return y;\n}}\n")


def test_three_reads_of_an_unpartitioned_array(tmp_path: Path) -> None:
    """One memory, two ports: three reads at distinct indices are one too many, two are not."""
    three = _loop("int a[64];", "y += a[i] + a[i + 1] + a[r];")
    assert _found(tmp_path, three) == ["a 3 accesses on one memory per iteration of an II=1 loop in f"]
    assert _found(tmp_path, _loop("int a[64];", "y += a[i] + a[r];")) == []


def test_the_same_index_text_is_one_read(tmp_path: Path) -> None:
    """The tool shares a read of the same address: a[i] twice and a[r] are two accesses."""
    assert _found(tmp_path, _loop("int a[64];", "y += a[i] * a[i] + a[r];")) == []
    assert _found(tmp_path, _loop("int a[64];", "y += a[i] * a[i + 2] + a[r];")) != []


def test_banks_at_static_indices_and_at_a_runtime_one(tmp_path: Path) -> None:
    """Complete on dim 1: an unrolled loop's b = 0..3 reads bank b once each; a runtime bank index
    (b + r) % 4 reaches every bank, so each bank sees all four reads."""
    decl = "int a[4][16];\n#pragma HLS ARRAY_PARTITION variable = a complete dim = 1"
    unrolled = ("for (int b = 0; b < 4; b++) {\n#pragma HLS UNROLL\n      y += a[b][i % 16];\n    }")
    assert _found(tmp_path, _loop(decl, unrolled)) == []
    runtime = unrolled.replace("a[b][", "a[(b + r) % 4][")
    assert _found(tmp_path, _loop(decl, runtime)) == \
        ["a 4 accesses on one memory per iteration of an II=1 loop in f"]


def test_fully_partitioned_arrays_are_registers(tmp_path: Path) -> None:
    """ARRAY_PARTITION complete on every dimension (dim = 0, or the only one): no port budget."""
    stmt = "y += a[i % 8] + a[r % 8] + a[(i + r) % 8];"
    assert _found(tmp_path, _loop("int a[8];", stmt)) != []
    assert _found(tmp_path, _loop("int a[8];\n#pragma HLS ARRAY_PARTITION variable = a complete", stmt)) == []
    two = "int a[2][8];\n#pragma HLS ARRAY_PARTITION variable = a dim = 0 complete"
    assert _found(tmp_path, _loop(two, stmt.replace("a[", "a[1]["))) == []


def test_accesses_in_inline_callees_count(tmp_path: Path) -> None:
    """A `#pragma HLS INLINE` helper reading its array parameter three times is three reads of the
    caller's array (parameter renamed to the argument); an `INLINE off` helper is its own module."""
    helper = ("int g(const int v[64], int k) {\n#pragma HLS INLINE\n"
              "  return v[k] + v[k + 1] + v[k + 2];\n}\n")
    code = _loop("int a[64];", "y += g(a, i);", helper)
    assert _found(tmp_path, code) == ["a 3 accesses on one memory per iteration of an II=1 loop in f"]
    off = helper.replace("INLINE\n", "INLINE off\n")
    assert _found(tmp_path, _loop("int a[64];", "y += g(a, i);", off)) == []


def test_ports_of_the_bound_storage(tmp_path: Path) -> None:
    """BIND_STORAGE ram_s2p: one read port, so two reads are too many; ram_1p: one port for a read and a
    write; impl = reg: registers."""
    s2p = "int a[64];\n#pragma HLS BIND_STORAGE variable = a type = ram_s2p impl = bram"
    assert _found(tmp_path, _loop(s2p, "y += a[i] + a[r];")) == \
        ["a 2 accesses on one memory per iteration of an II=1 loop in f"]
    one = "int a[64];\n#pragma HLS BIND_STORAGE variable = a type = ram_1p impl = bram"
    assert _found(tmp_path, _loop(one, "a[i] = a[r] + 1;")) != []
    assert _found(tmp_path, _loop(one.replace("ram_1p", "ram_2p"), "a[i] = a[r] + 1;")) == []
    reg = "int a[64];\n#pragma HLS BIND_STORAGE variable = a type = ram_2p impl = reg"
    assert _found(tmp_path, _loop(reg, "y += a[i] + a[i + 1] + a[r];")) == []


def test_a_caller_array_bound_to_a_parameter(tmp_path: Path) -> None:
    """The loop in a function taking the array: the caller's partition applies (row_load's form)."""
    code = ("void ld(const int *x, int v[64]) {\n  for (int i = 0; i < 16; i++) {\n"
            "#pragma HLS PIPELINE II = 1\n    for (int k = 0; k < 4; k++) {\n#pragma HLS UNROLL\n"
            "      v[4 * i + k] = x[i];\n    }\n  }\n}\n"
            "int top(const int *x) {\n  int a[64];\n{part}  ld(x, a);\n  return a[3];\n}\n")
    assert _found(tmp_path, code.replace("{part}", "")) == \
        ["v 4 accesses on one memory per iteration of an II=1 loop in ld"]
    part = "#pragma HLS ARRAY_PARTITION variable = a complete\n"
    assert _found(tmp_path, code.replace("{part}", part)) == []


def test_static_locals_and_folded_banks(tmp_path: Path) -> None:
    """An index through a `const` local of the unrolled variable stays static, and (X * N + s) % N names
    bank s; C-simulation instrumentation (EDGELLM_DEP_R) is not an access."""
    decl = "int a[4][16];\n#pragma HLS ARRAY_PARTITION variable = a complete dim = 1"
    body = ("for (int b = 0; b < 4; b++) {\n#pragma HLS UNROLL\n      const int e = r * 4 + b;\n"
            "      EDGELLM_DEP_R(a, a[e % 4][r]);\n      EDGELLM_DEP_R(a, a[e % 4][r + 1]);\n"
            "      y += a[e % 4][e / 4];\n    }")
    assert _found(tmp_path, _loop(decl, body)) == []
    assert _found(tmp_path, _loop(decl, body.replace("r * 4 + b", "r + b"))) != []  # (r + b) % 4: any bank


def test_a_project_is_checked_with_its_own_header_copies(tmp_path: Path) -> None:
    """A project carries copies of the library's headers (maybe older ones): a callee it defines is taken
    from its copy, not from the toolkit's hw/include. Here the copy of lowbit_steps.h lacks pv's
    ARRAY_PARTITION (as before it was fixed), and the finding must come out though the library has it."""
    import shutil

    lib = Path(synth_check.__file__).resolve().parent / "include"
    shutil.copytree(lib, tmp_path / "include")
    steps = tmp_path / "include" / "edgellm" / "lowbit_steps.h"
    fixed = "#pragma HLS ARRAY_PARTITION variable = pv complete\n"
    assert fixed in steps.read_text()
    steps.write_text(steps.read_text().replace(fixed, ""))
    found = [f.detail for f in synth_check.check_paths([tmp_path / "include"]) if f.rule == "port-budget"]
    assert any(d.startswith("pv ") for d in found), found


TEMPLATE_BODY = """
struct Buffers {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static int a[64];
{part}    BODY::run(a, args...);
  }
};
struct Body {
  static int run(const int v[64], const int *x) {
    int y = 0;
    for (int i = 0; i < 16; i++) {
#pragma HLS PIPELINE II = 1
      y += v[4 * i] + v[4 * i + 1] + v[4 * i + 2] + x[i];
    }
    return y;
  }
};
struct Other {
  static int run(const int v[64], const int *x) {
    int y = 0;
    for (int i = 0; i < 16; i++) {
#pragma HLS PIPELINE II = 1
      y += v[4 * i] + v[4 * i + 1] + v[4 * i + 2] + x[i];
    }
    return y;
  }
};
int top(const int *x) {
  return Buffers::template run<int, Body>(x);
}
"""


def test_storage_through_a_template_parameters_call(tmp_path: Path) -> None:
    """`BODY::run(a, args...)` of a template parameter BODY (weight_storage.h TlmmBuffers, tlmm.h's
    TlmmBody): the storage binds to the structs given for BODY (Body, not Other, whose run is never
    called so), the pack expansion to no parameter."""
    assert _found(tmp_path, TEMPLATE_BODY.replace("{part}", "")) == \
        ["v 3 accesses on one memory per iteration of an II=1 loop in Body::run"]
    part = "#pragma HLS ARRAY_PARTITION variable = a cyclic factor = 4\n"
    assert _found(tmp_path, TEMPLATE_BODY.replace("{part}", part)) == []


def test_tlmm_banks_are_checked_through_the_engine_body(tmp_path: Path) -> None:
    """The TLMM's weight banks (declared by weight_storage.h EDGELLM_TLMM_BUFFERS in TlmmBuffers, passed
    through BODY::run and TlmmBody::run to compute_tile's II=1 loop): a project copy whose bank macro lost
    the beats' partition is flagged (its macro, not the library's, is expanded); the library is clean."""
    import shutil

    lib = Path(synth_check.__file__).resolve().parent / "include"
    assert [f for f in synth_check.check_paths([lib]) if f.rule == "port-budget"] == []
    shutil.copytree(lib, tmp_path / "include")
    storage = tmp_path / "include" / "edgellm" / "weight_storage.h"
    part = "EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = NAME dim = 2 type = complete)"
    assert storage.read_text().count(part) == 1
    storage.write_text(storage.read_text().replace(part, ""))
    found = [f.detail for f in synth_check.check_paths([tmp_path / "include"]) if f.rule == "port-budget"]
    assert sorted(found) == [f"b{p} 3 accesses on one memory per iteration of an II=1 loop in compute_tile"
                             for p in range(4)], found
