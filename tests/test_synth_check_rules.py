"""hw/synth_check.py's pragma and m_axi rules (hw/synth_pragmas.py, hw/synth_maxi.py): each flags a small
mutant and the same mutation of the real kernel library, and passes the correct forms and the library."""

import re
import shutil
from pathlib import Path

import pytest

from edgellm.hw import csim, synth_check

LIB = csim.INCLUDE_DIR / "edgellm"

# rule -> (mutant that must be flagged, the correct form that must pass)
CASES = {
    "maxi-select": (
        "void f(float *a, float *b, bool t) { float *p = t ? a + 4 : b; p[0] = 0; }\n",
        "void f(float *a, float *b, bool t, long o) {\n  float *p = t ? a + 4 : a + o;\n  p[0] = b[0];\n}\n",
    ),
    "maxi-dependence": (
        "void f(const float *rs, float *out) {\n  for (int i = 0; i < 64; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = out inter false\n"
        "    out[i] = rs[i];\n  }\n}\n",
        "void f(const float *rs, float *out) {\n  float buf[64];\n"
        "  EDGELLM_DEP_LOOP(\"f\");\n  EDGELLM_DEP_CLAIM(buf, 0);\n  for (int i = 0; i < 64; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = buf inter false\n"
        "    EDGELLM_DEP_ITER(i);\n    buf[i] = rs[i];\n    out[i] = buf[i];\n  }\n}\n",
    ),
    "maxi-cast": (
        "void f(float *data, int n) {\n  int8_t *d8 = reinterpret_cast<int8_t *>(data);\n  d8[n] = 1;\n}\n",
        "void f(ap_uint<128> *data, int n) {\n  ap_uint<128> b = data[n / 16];\n"
        "  b.range(8 * (n % 16) + 7, 8 * (n % 16)) = 1;\n  data[n / 16] = b;\n}\n",
    ),
    "maxi-access": (
        "void f(const ap_uint<128> *m, ap_uint<128> *o) {\n  for (int i = 0; i < 64; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n    o[i] = m[2 * i] ^ m[2 * i + 1];\n  }\n}\n",
        "void f(const ap_uint<128> *m, ap_uint<128> *o) {\n  ap_uint<128> prev = 0;\n"
        "  for (int i = 0; i < 64; i++) {\n#pragma HLS PIPELINE II = 1\n    const ap_uint<128> b = m[i];\n"
        "    o[i] = b ^ prev;\n    prev = b;\n  }\n}\n",
    ),
    "dataflow-inline": (
        "void p1(int *a) { a[0] = 1; }\nvoid p2(int *b) { b[0] = 2; }\n"
        "void region(int *a, int *b) {\n#pragma HLS DATAFLOW\n  p1(a);\n  p2(b);\n}\n",
        "void p1(int *a) { a[0] = 1; }\nvoid p2(int *b) { b[0] = 2; }\n"
        "void region(int *a, int *b) {\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
        "  p1(a);\n  p2(b);\n}\n",
    ),
    "shared-call": (
        "template <int N> void unit(int *a) {\n#pragma HLS INLINE off\n  a[0] = N;\n}\n"
        "void caller(int *a, int *b, bool c) {\n  if (c) unit<3>(a); else unit<3>(b);\n}\n",
        "template <int N> void unit(int *a) {\n#pragma HLS INLINE off\n  a[0] = N;\n}\n"
        "void caller(int *a, int *b, bool c) {\n"
        "#pragma HLS ALLOCATION function instances = unit<3> limit = 1\n"
        "  if (c) unit<3>(a); else unit<3>(b);\n}\n",
    ),
    "partitioned-dependence": (
        "float f(const float *x) {\n  float acc[8];\n#pragma HLS ARRAY_PARTITION variable = acc complete\n"
        "  for (int j = 0; j < 8; j++) acc[j] = 0;\n  for (int c = 0; c < 64; c++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = acc inter distance = 8 true\n"
        "    acc[c % 8] = acc[c % 8] + x[c];\n  }\n  return acc[0];\n}\n",
        "float f(const float *x) {\n  float acc[16][8];\n"
        "#pragma HLS ARRAY_PARTITION variable = acc dim = 2 complete\n"
        "  EDGELLM_DEP_LOOP(\"f\");\n  EDGELLM_DEP_CLAIM(acc, 16);\n  for (int c = 0; c < 64; c++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = acc inter distance = 16 true\n"
        "    EDGELLM_DEP_ITER(c);\n    acc[c % 16][0] = acc[c % 16][0] + x[c];\n  }\n"
        "  return acc[0][0];\n}\n",
    ),
    "double-store": (
        "void f(const int *x, int *y) {\n  int buf[64];\n  for (int i = 0; i < 32; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n    buf[2 * i] = x[i];\n    buf[2 * i + 1] = x[i] + 1;\n  }\n"
        "  for (int i = 0; i < 64; i++) y[i] = buf[i];\n}\n",
        "void f(const int *x, int *y) {\n  int buf[64];\n"
        "#pragma HLS ARRAY_PARTITION variable = buf cyclic factor = 2\n"
        "  for (int i = 0; i < 32; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n    buf[2 * i] = x[i];\n    buf[2 * i + 1] = x[i] + 1;\n  }\n"
        "  for (int i = 0; i < 64; i++) y[i] = buf[i];\n}\n",
    ),
    "dep-unchecked": (
        "void f(const float *x, float *y) {\n  float buf[64];\n  for (int i = 0; i < 64; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = buf inter false\n"
        "    buf[i] = x[i];\n    y[i] = buf[i];\n  }\n}\n",
        "void f(const float *x, float *y) {\n  float buf[64];\n  EDGELLM_DEP_LOOP(\"f\");\n"
        "  EDGELLM_DEP_CLAIM(buf, 0);\n  for (int i = 0; i < 64; i++) {\n"
        "#pragma HLS PIPELINE II = 1\n#pragma HLS DEPENDENCE variable = buf inter false\n"
        "    EDGELLM_DEP_ITER(i);\n    buf[i] = x[i];\n    y[i] = buf[i];\n  }\n}\n",
    ),
}


def _rules(tmp_path: Path, name: str, text: str) -> set[str]:
    p = tmp_path / name
    p.write_text(text)
    found = synth_check.check_paths([p])
    print(name, [str(f) for f in found])
    return {f.rule for f in found}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_flags_its_mutant(tmp_path: Path, rule: str) -> None:
    bad, good = CASES[rule]
    assert rule in _rules(tmp_path, "bad.h", bad)
    assert _rules(tmp_path, "good.h", good) == set()


def test_exclusive_continue_paths_count_once(tmp_path: Path) -> None:
    """maxi-access: a read in an `if (...) { ... continue; }` block and one after it are exclusive paths (one
    read per iteration, as the low-bit engine's parameter-then-code loop); without the continue, two."""
    loop = ("void f(const ap_uint<128> *m, ap_uint<128> *o, int p) {\n  ap_uint<128> b = 0;\n"
            "  for (int i = 0; i < 64; i++) {\n#pragma HLS PIPELINE II = 1\n"
            "    if (i < p) {\n      o[i] = m[i];\n      continue;\n    }\n"
            "    if (i % 2 == 0) b = m[p + i / 2];\n    o[i] = b;\n  }\n}\n")
    assert _rules(tmp_path, "exclusive.h", loop) == set()
    assert "maxi-access" in _rules(tmp_path, "both.h", loop.replace("      continue;\n", ""))
    two_after = loop.replace("= m[p + i / 2]", "= m[p + i / 2] ^ m[p]")  # two reads on the second path
    assert "maxi-access" in _rules(tmp_path, "after.h", two_after)


def test_default_check_runs_the_m_axi_rules(tmp_path: Path) -> None:
    """The check `edgellm csim` runs (synth_check's CLI, no option) flags an m_axi pointer cast and a second
    beat per iteration: every m_axi argument of the top is a beat pointer read one beat per iteration
    (issue 21 #6, #11), so no rule is left out of it any more."""
    for rule in ("maxi-cast", "maxi-access"):
        p = tmp_path / f"{rule}.h"
        p.write_text(CASES[rule][0])
        assert rule in {f.rule for f in synth_check.check_paths([p])}, rule


def test_variants_each_rule_sees(tmp_path: Path) -> None:
    """The forms the library uses: a select written as `p ? p : q` (the old decoder_layer_ports), a
    DEPENDENCE on a port an INTERFACE m_axi pragma names, a struct member unit (`S<N>::run`) called
    twice, a store in an unrolled inner loop, an array fully partitioned with dim = 0; and what they
    must not flag: the processes of a DATAFLOW region (one instance each by design), a loop at II = 2,
    a select between two non-pointer values."""
    sel = "void f(float *fs, float *fs_t) { g(fs_t ? fs_t : fs); }\n"
    assert "maxi-select" in _rules(tmp_path, "sel.h", sel)
    top = ("void top(float *data) {\n#pragma HLS INTERFACE m_axi port = data bundle = data\n"
           "  for (int i = 0; i < 8; i++) {\n#pragma HLS PIPELINE II = 1\n"
           "#pragma HLS DEPENDENCE variable = data inter false\n    data[i + 8] = data[i];\n  }\n}\n")
    assert "maxi-dependence" in _rules(tmp_path, "top.cpp", top)
    member = ("template <int N> struct L {\n  static void run(int *a) {\n#pragma HLS INLINE off\n"
              "    a[0] = N;\n  }\n};\nvoid caller(int *a, int *b) {\n  L<2>::run(a);\n  L<2>::run(b);\n}\n")
    assert "shared-call" in _rules(tmp_path, "member.h", member)
    region = ("void unit(int *a) {\n#pragma HLS INLINE off\n  a[0] = 1;\n}\n"
              "void region(int *a, int *b) {\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
              "  unit(a);\n  unit(b);\n}\n")
    assert _rules(tmp_path, "region.h", region) == set()
    unrolled = ("void f(const int *x) {\n  int buf[64];\n  for (int i = 0; i < 16; i++) {\n"
                "#pragma HLS PIPELINE II = 1\n    for (int j = 0; j < 4; j++) {\n#pragma HLS UNROLL\n"
                "      buf[i * 4 + j] = x[i];\n    }\n  }\n}\n")
    assert "double-store" in _rules(tmp_path, "unrolled.h", unrolled)
    assert _rules(tmp_path, "ii2.h", unrolled.replace("II = 1", "II = 4")) == set()
    dim0 = ("float f(const float *x) {\n  float acc[2][4];\n"
            "#pragma HLS ARRAY_PARTITION variable = acc dim = 0 complete\n"
            "  for (int c = 0; c < 64; c++) {\n#pragma HLS PIPELINE II = 1\n"
            "#pragma HLS DEPENDENCE variable = acc inter false\n    acc[c % 2][c % 4] = x[c];\n  }\n"
            "  return acc[0][0];\n}\n")
    assert "partitioned-dependence" in _rules(tmp_path, "dim0.h", dim0)
    assert _rules(tmp_path, "vals.h", "int f(int a, int b, bool t) { return t ? a : b; }\n") == set()


def test_maxi_select_through_assignments(tmp_path: Path) -> None:
    """Issue 21 #5's leftover: a local pointer that an if / switch assignment points at another pointer
    parameter than its initializer did (decoder_layer.h vector_job's `a`: h or fs); offsets of one
    parameter, or non-pointer switches, pass."""
    switch = ("void f(float *h, float *fs, int s) {\n  const float *a = h;\n  switch (s) {\n"
              "    case 1:\n      a = fs + S::q_lin;\n      break;\n    default:\n      break;\n  }\n"
              "  g(a);\n}\n")
    assert "maxi-select" in _rules(tmp_path, "switch.h", switch)
    branch = ("void f(float *h, float *fs, bool t) {\n  float *a = fs + 8, *b = h;\n  if (t) a = b;\n"
              "  g(a);\n}\n")
    assert "maxi-select" in _rules(tmp_path, "branch.h", branch)  # through another local pointer
    one = ("void f(float *h, float *fs, int s) {\n  const float *a = fs;\n  int w = 4;\n"
           "  switch (s) {\n    case 1:\n      a = fs + S::q, w = 8;\n      break;\n  }\n  g(a, h, w);\n}\n")
    assert _rules(tmp_path, "one.h", one) == set()


def test_maxi_cast_and_access_variants(tmp_path: Path) -> None:
    """maxi-cast: C-style and static casts of a pointer parameter and of an INTERFACE m_axi port (not a
    cast of a literal or of a call's result); maxi-access: an access in an unrolled inner loop counts
    twice, accesses inside a helper the loop calls count (the helper overload with the argument's
    beat type), one read and one write of a port per iteration pass (separate AXI channels), and an
    II = 2 loop may read twice."""
    assert "maxi-cast" in _rules(tmp_path, "c.h", "void f(float *p) { ((uint32_t *)p)[0] = 1u; }\n")
    assert "maxi-cast" in _rules(tmp_path, "s.h", "void f(void *p) { g(static_cast<int *>(p)); }\n")
    top = ("void top(float *data) {\n#pragma HLS INTERFACE m_axi port = data bundle = data\n"
           "  g(reinterpret_cast<int8_t *>(data));\n}\n")
    assert "maxi-cast" in _rules(tmp_path, "top.cpp", top)
    lit = "int *f(int *p) { g((const float *)0, p); return (int *)h(p); }\n"
    assert _rules(tmp_path, "lit.h", lit) == set()
    unrolled = ("void f(const ap_uint<128> *m, ap_uint<32> *o) {\n  for (int i = 0; i < 64; i++) {\n"
                "#pragma HLS PIPELINE II = 1\n    const ap_uint<128> b = m[i];\n"
                "    for (int j = 0; j < 4; j++) {\n#pragma HLS UNROLL\n"
                "      o[4 * i + j] = b.range(32 * j + 31, 32 * j);\n    }\n  }\n}\n")
    (tmp_path / "u.h").write_text(unrolled)
    found = [f.detail for f in synth_check.check_paths([tmp_path / "u.h"])
             if f.rule == "maxi-access"]
    assert len(found) == 1 and "2 writes of m_axi pointer o " in found[0], found  # m: one read
    helper = ("ap_uint<128> rd(const ap_uint<128> *m, long i) { return m[i] ^ m[i + 1]; }\n"
              "ap_uint<128> rd(const uint8_t *m, long i) { return m[i]; }\n"
              "void f(const ap_uint<128> *m, ap_uint<128> *o) {\n  for (int i = 0; i < 64; i++) {\n"
              "#pragma HLS PIPELINE II = 1\n    o[i] = rd(m, i);\n  }\n}\n")
    assert "maxi-access" in _rules(tmp_path, "helper.h", helper)
    assert _rules(tmp_path, "helper1.h", helper.replace("m[i] ^ m[i + 1]", "m[i]")) == set()
    rw = ("void f(ap_uint<128> *h, const ap_uint<128> *y) {\n  for (int i = 0; i < 64; i++) {\n"
          "#pragma HLS PIPELINE II = 1\n    h[i] = h[i] + y[i];\n  }\n}\n")
    assert _rules(tmp_path, "rw.h", rw) == set()
    assert _rules(tmp_path, "ii2.h", CASES["maxi-access"][0].replace("II = 1", "II = 2")) == set()


# rule -> (library header, text in it, the mutation that brings the issue-21 finding back); a case named
# rule:variant tests that rule on another mutation
LIBRARY_MUTANTS = {
    "maxi-select": ("decoder_layer.h", "(fs, S::q + qo, EDGELLM_KV_READ_ARGS, fs,",
                    "(fs, S::q + qo, EDGELLM_KV_READ_ARGS, tap_en ? taps : fs,"),
    # vector_job's operand `a` pointing at the scratch (act) by default and at h (the data argument) in
    # the attention norm: the select the issue-21 review left (now an offset into fs, never a pointer)
    "maxi-select:switch": ("decoder_layer.h", "    long a = S::q_lin, qs_in",
                           "    const PD *ap = h;\n    if (s != EW_ATTN_NORM) ap = fs;\n"
                           "    long a = S::q_lin, qs_in"),
    "maxi-dependence": ("lm_head_score.h", "    if (p == 0) pk = dots.read();",
                        "#pragma HLS DEPENDENCE variable = logits inter false\n"
                        "    if (p == 0) pk = dots.read();"),
    # the fetchers on R-byte beats (issue 21 #11, #6): a width-changing cast of the weight port back, and
    # a second beat read per iteration of the tile-share loop
    "maxi-cast": ("top_fetch.h", "(w + hdr[HDR_HEAD_W] / HEAD::P, n_rows,",
                  "(reinterpret_cast<const int8_t *>(w) + hdr[HDR_HEAD_W], n_rows,"),
    "maxi-access": ("weight_fetch.h", "= read_beat<R>(w, first + j);",
                    "= read_beat<R>(w, first + j) ^ read_beat<R>(w, first + j + 1);"),
    # the K/V reader back to reading the row's fields element by element (issue 21 #6: 16 narrow reads)
    "maxi-access:kv": ("attention_layer.h", "    const ap_uint<B> b = m[off / E + j];\n",
                       "    const ap_uint<B> b = m[off / E + j] ^ m[off / E + j + 1];\n"),
    "dataflow-inline": ("attention_layer.h", "#pragma HLS INLINE off\n#pragma HLS DATAFLOW",
                        "#pragma HLS DATAFLOW"),
    "shared-call": ("tlmm.h",
                    "#pragma HLS ALLOCATION function instances = compute_tile<CFG, DEQ, PY> limit = 1\n", ""),
    "partitioned-dependence": ("numerics_lanes.h", "#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxVec / U\n",
                               "#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxVec / U\n"
                               "#pragma HLS DEPENDENCE variable = acc inter distance = 8 true\n"),
    # a claim changed in the pragma alone (its C-simulation check still states the old one)
    "dep-unchecked": ("attention_core.h",
                      "#pragma HLS DEPENDENCE variable = o inter RAW distance = kMacDist true",
                      "#pragma HLS DEPENDENCE variable = o inter RAW distance = 32 true"),
    "double-store": ("lm_head.h", "      qbuf[t][j] = bytes_word<P>(by);\n",
                     "      qbuf[t][j] = bytes_word<P>(by);\n      qbuf[t][nbeats - 1 - j] = 0;\n"),
}


@pytest.fixture(scope="module")
def library_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lib") / "edgellm"
    shutil.copytree(LIB, d)
    return d


@pytest.mark.parametrize("case", sorted(LIBRARY_MUTANTS))
def test_rule_flags_the_library_mutant(library_copy: Path, case: str) -> None:
    rule = case.split(":")[0]
    header, old, new = LIBRARY_MUTANTS[case]
    path = library_copy / header
    text = (LIB / header).read_text()
    assert text.count(old) == 1, (header, old)
    before = synth_check.check_paths([path])
    assert library_findings(before) == set()
    path.write_text(text.replace(old, new))
    try:
        after = synth_check.check_paths([path])
        found = [f for f in after if f.rule == rule and f not in before]
    finally:
        path.write_text(text)
    print(rule, [str(f) for f in found])
    assert found


def library_findings(found: list[synth_check.Finding]) -> set[tuple[str, str, str]]:
    """(file, rule, function) of findings (the function: the detail's last word)."""
    return {(f.path.name, f.rule, f.detail.split()[-1]) for f in found}


def test_library_is_clean_and_uses_the_fixed_forms() -> None:
    """The kernel library passes every rule, maxi-cast and maxi-access included (every m_axi argument is a
    beat pointer read one beat per iteration: issue 21 #6, #11); the fixed forms are
    there: INLINE off beside every DATAFLOW, ALLOCATION limits on the ping-pong units, no DEPENDENCE on a
    pointer."""
    assert library_findings(synth_check.check_paths([LIB])) == set()
    code = {p.name: synth_check.strip_source(p.read_text()) for p in LIB.glob("*.h")}
    n_dataflow = sum(len(re.findall(r"#pragma HLS DATAFLOW", c)) for c in code.values())
    n_paired = sum(len(re.findall(r"#pragma HLS INLINE off\n#pragma HLS DATAFLOW", c)) for c in code.values())
    assert n_dataflow == n_paired >= 10
    for unit in ("tlmm_load_tile", "compute_tile"):
        assert re.search(rf"ALLOCATION function instances = {unit}<[^>]*> limit = 1", code["tlmm.h"]), unit
    for unit in ("lm_load_block", "lm_dot_block"):
        allocation = rf"ALLOCATION function instances = {unit}<[^>]*> limit = 1"
        assert re.search(allocation, code["lm_head_dot.h"]), unit  # lm_dot_blocks
