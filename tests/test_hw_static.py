"""hw/synth_check.py rules, the state of hw/, and warning-free compilation of every HLS header."""

import re
import subprocess
from pathlib import Path

import pytest

from edgellm.hw import csim, synth_check

INCLUDE = csim.INCLUDE_DIR / "edgellm"
OWNED = ["weight_codec.h", "tlmm.h", "weight_buffer.h", "weight_bank_fill.h", "weight_storage.h",
         "elementwise.h", "lm_head.h", "lm_head_config.h", "lm_head_load.h", "lm_head_dot.h",
         "lm_head_lanes.h", "lm_head_score.h"]
STRICT = ("-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
          # HLS idioms g++ does not know: pragmas, and loop labels that name loops for the tool
          "-Wno-unknown-pragmas", "-Wno-unused-label")

BAD = {
    "malloc": ("void f(int n) { int *p = (int *)malloc(n * 4); p[0] = 1; }", "dynamic-memory"),
    "free": ("void f(int *p) { free(p); }", "dynamic-memory"),
    "new": ("void f() { int *p = new int[4]; p[0] = 0; }", "dynamic-memory"),
    "delete": ("void f(int *p) { delete[] p; }", "dynamic-memory"),
    "vector": ("#include <cstdint>\nvoid f() { std::vector<int> v(4); }", "std-container"),
    "include_map": ("#include <map>\nvoid f() {}", "std-container"),
    "string": ("void f() { std::string s; }", "std-container"),
    "recursion": ("int fact(int n) {\n  return n <= 1 ? 1 : n * fact(n - 1);\n}", "recursion"),
    "recursion_tpl": ("template <int N> int g(int x) { if (x) return g<N>(x - 1); return 0; }", "recursion"),
    "while1": ("void f(volatile int *p) { while (1) { if (*p) break; } }", "unbounded-loop"),
    "while_true": ("void f(volatile int *p) { while (true) { if (*p) break; } }", "unbounded-loop"),
    "for_ever": ("void f(volatile int *p) { for (;;) { if (*p) break; } }", "unbounded-loop"),
    "while_cond": ("void f(int n) { int i = 0; while (i < n) { i++; } }", "unbounded-loop"),
    "do_while": ("void f(int n) { int i = 0; do { i++; } while (i < n); }", "unbounded-loop"),
    "runtime_for": ("void f(int *a, int n) {\n  for (int i = 0; i < n; i++) {\n#pragma HLS PIPELINE II = 1\n"
                    "    a[i] = 0;\n  }\n}", "runtime-bound"),
    "runtime_const_local": ("void f(int *a, int m) {\n  const int n = m * 2;\n"
                            "  for (int i = 0; i < n; i++) a[i] = 0;\n}", "runtime-bound"),
    # a const local of another function does not bound this one's loop (constants are scoped)
    "const_of_another_function": ("void g(int *a) {\n  const int n = 4;\n"
                                  "  for (int i = 0; i < n; i++) a[i] = 0;\n}\n"
                                  "void f(int *a, int n) {\n  for (int i = 0; i < n; i++) a[i] = 0;\n}",
                                  "runtime-bound"),
    "tripcount_in_nested_only": ("void f(int *a, int n) {\n  for (int i = 0; i < n; i++) {\n"
                                 "    for (int j = 0; j < 4; j++) {\n#pragma HLS LOOP_TRIPCOUNT max = 4\n"
                                 "      a[i * 4 + j] = 0;\n    }\n  }\n}", "runtime-bound"),
}

GOOD = """
// malloc(n) in a comment, and "new" / "delete" in a string, are not code
#include <cstdint>
const char *kMsg = "no new or delete or std::vector here";
enum { kMax = 64 };
template <int N, class CFG>
struct Body { static void run(int *a, int n) { (void)a; (void)n; } };
template <int N, class CFG>
void run(int *a, int n, int m) {
  const int H = N / 2;
  for (int i = 0; i < N; i++) a[i] = 0;
  for (int i = 0; i < CFG::K_MAX && i < n; i++) a[i] = 1;
  for (int h = H; h >= 1; h /= 2) {
    for (int j = 0; j < h; j++) a[j] += a[j + h];
  }
  for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
#pragma HLS PIPELINE II = 1
    a[i] = i;
  }
  int i = 0;
  while (i < m) {
#pragma HLS LOOP_TRIPCOUNT max = kMax
    i++;
  }
  Body<N, CFG>::run(a, n);
}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_snippet_is_caught(tmp_path: Path, case: str) -> None:
    text, rule = BAD[case]
    found = synth_check.check_paths([_write(tmp_path, f"{case}.h", text)])
    print(case, [str(f) for f in found])
    assert rule in {f.rule for f in found}


def test_good_snippet_passes(tmp_path: Path) -> None:
    found = synth_check.check_paths([_write(tmp_path, "good.h", GOOD)])
    assert found == [], [str(f) for f in found]


def test_findings_name_file_and_line(tmp_path: Path) -> None:
    src = "void a() {}\n\nvoid f(int *a, int n) {\n  for (int i = 0; i < n; i++) a[i] = 0;\n}\n"
    p = _write(tmp_path, "x.cpp", src)
    (f,) = synth_check.check_paths([p])
    assert str(f).startswith(f"{p}:4: runtime-bound")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    _write(good, "k.h", GOOD)
    _write(good / ".." / "good", "tb_k.cpp", BAD["malloc"][0])  # a testbench: skipped
    assert synth_check.main([str(good)]) == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad, "k.h", BAD["while1"][0])
    assert synth_check.main([str(bad)]) == 1
    assert "unbounded-loop" in capsys.readouterr().out
    assert synth_check.main([str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    assert synth_check.main(["--help"]) == 0  # usage, not "--help: no such file"
    assert capsys.readouterr().out.startswith("usage: python -m edgellm.hw.synth_check DIR")
    res = subprocess.run(["python", "-m", "edgellm.hw.synth_check", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1 and "k.h:1: unbounded-loop" in res.stdout


def test_owned_kernels_are_clean() -> None:
    found = synth_check.check_paths([INCLUDE / n for n in OWNED])
    assert found == [], "\n".join(map(str, found))


def test_hw_tree() -> None:
    """Every synthesizable source under hw/ passes every rule (the m_axi ones included: issue 21 #6, #11)."""
    found = synth_check.check_paths([csim.HW_DIR])
    print(f"synth_check hw/: {len(found)} finding(s)")
    for f in found:
        print(" ", f)
    assert found == [], "\n".join(map(str, found))


@pytest.fixture(scope="module")
def strict_flags() -> list[str]:
    return [csim.cxx(), *STRICT, f"-I{csim.INCLUDE_DIR}", f"-isystem{csim.ap_types_dir()}"]


@pytest.mark.parametrize("header", sorted(p.name for p in INCLUDE.glob("*.h")))
def test_header_compiles_warning_free(tmp_path: Path, strict_flags: list[str], header: str) -> None:
    tu = _write(tmp_path, "tu.cpp", f'#include "edgellm/{header}"\n#include "edgellm/{header}"\n')
    res = subprocess.run([*strict_flags, str(tu)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[:3000]


def test_all_headers_together_and_instantiated(tmp_path: Path, strict_flags: list[str]) -> None:
    """Every header in one unit (no name clashes) plus the testbenches that instantiate the kernels."""
    tu = _write(tmp_path, "all.cpp", "".join(f'#include "edgellm/{p.name}"\n'
                                           for p in sorted(INCLUDE.glob("*.h"))))
    tbs = [csim.TB_DIR / n for n in ("tlmm_tb.cpp", "elementwise_tb.cpp", "lm_head_tb.cpp")]
    for src in [tu, *tbs]:
        res = subprocess.run([*strict_flags, str(src)], capture_output=True, text=True)
        assert res.returncode == 0, f"{src.name}:\n{res.stderr[:3000]}"


def _preprocess(src: str, defs: list[str]) -> list[str]:
    res = subprocess.run([csim.cxx(), "-x", "c++", "-E", *defs, f"-I{csim.INCLUDE_DIR}",
                          f"-isystem{csim.ap_types_dir()}", "-"], input=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[:2000]
    return res.stdout.splitlines()


@pytest.mark.parametrize("kind", ["bram", "uram"])
def test_activation_storage_macro(kind: str) -> None:
    """EDGELLM_ACT_STORAGE (set by the generated config) reaches every activation buffer's BIND_STORAGE:
    the element-wise stages' shared rows (EwRows, declared by EDGELLM_EW_ROWS at each call site:
    decoder_layer.h and top.h). elementwise.h binds no buffer itself (a binding there would bypass the
    call sites' EwRows and its storage macro), so every one is checked below."""
    defs = [] if kind == "bram" else [f"-DEDGELLM_ACT_STORAGE={kind}"]
    own = [ln for ln in _preprocess('#include "edgellm/elementwise.h"\n', defs) if "BIND_STORAGE" in ln]
    assert own == [], own
    # every row of N_BUF elements is an EwRows member (no stage declares its own row)
    ew = (INCLUDE / "elementwise.h").read_text()
    assert ew.count("[E::N_BUF]") == 1 and "[N_BUF]" not in ew
    lines = [ln for ln in _preprocess('#include "edgellm/top.h"\n', defs)
             if ln.strip() and not ln.startswith("# ")]  # without the line markers
    decls = [i for i, ln in enumerate(lines) if "EwRows<E> rows;" in ln]
    assert len(decls) >= 2  # decoder_layer (one-port wrapper) and edgellm_top_impl
    for i in decls:
        block = [ln.strip() for ln in lines[i + 1:i + 3]]
        binds = {ln.split("variable = ")[1].split()[0]: ln for ln in block if "BIND_STORAGE" in ln}
        parts = {ln.split("variable = ")[1].split()[0]: ln for ln in block if "ARRAY_PARTITION" in ln}
        assert set(binds) == set(parts) == {"rows.r0"}, block
        assert all(ln.endswith(f"impl = {kind}") for ln in binds.values()), block
        assert "type = ram_t2p" in binds["rows.r0"]  # RoPE reads two addresses per bank per cycle
        assert all("type = cyclic factor = E::PART" in ln for ln in parts.values()), block


@pytest.mark.parametrize("act", ["bram", "uram"])
def test_tlmm_buffers_per_storage_kind(act: str) -> None:
    """Each TlmmBuffers specialization (weight_storage.h, its buffers declared by EDGELLM_TLMM_BUFFERS)
    partitions the 8 banks' beats and binds them to its kind, partitions xbuf's lanes and chunks and binds
    it to the kind (LUTRAM banks: the activation storage, EDGELLM_ACT_STORAGE)."""
    defs = [] if act == "bram" else [f"-DEDGELLM_ACT_STORAGE={act}"]
    text = "\n".join(ln for ln in _preprocess('#include "edgellm/weight_storage.h"\n', defs)
                     if not ln.startswith("# "))
    specs = re.split(r"template\s*<>\s*struct\s+TlmmBuffers\s*<\s*kStorage(\w+)\s*>", text)[1:]
    banks = [f"{pp}{i}" for pp in ("ping", "pong") for i in range(4)]
    want_impl = {"Bram": ("bram", "bram"), "Uram": ("uram", "uram"), "Lutram": ("lutram", act)}
    assert sorted(specs[0::2]) == sorted(want_impl)
    for kind, body in zip(specs[0::2], specs[1::2], strict=True):
        head = body.split("BODY::run")[0]
        pragmas = {" ".join(m.split()) for m in re.findall(r"#pragma HLS ([^\n;]+)", head)}
        impl, ximpl = want_impl[kind]
        want = {f"ARRAY_PARTITION variable = {b} dim = 2 type = complete" for b in banks}
        want |= {f"BIND_STORAGE variable = {b} type = ram_s2p impl = {impl}" for b in banks}
        want |= {f"ARRAY_PARTITION variable = xbuf dim = {d} type = complete" for d in (1, 3)}
        want.add(f"BIND_STORAGE variable = xbuf type = ram_s2p impl = {ximpl}")
        assert pragmas == want, (kind, pragmas ^ want)
        for b in banks:
            assert re.search(rf"static typename CFG::beat_t {b}\[BankDepth<CFG, {b[-1]}>::value\]", body), b


def _loop_body(code: str, label: str) -> str:
    """The braced body of the loop labelled `label:` in comment-free code."""
    i = code.index("{", code.index(f"{label}:"))
    depth, j = 0, i
    while True:
        depth += {"{": 1, "}": -1}.get(code[j], 0)
        if depth == 0:
            return code[i:j + 1]
        j += 1


def bank_fill_stores(text: str) -> dict[str, int]:
    """Store sites into a weight bank per iteration of each bank-filling loop of weight_bank_fill.h text:
    put_column calls (one store), put_column_pair calls (one store per slot memory), store statements
    written in the loop, each counted twice inside an unrolled inner loop."""
    code = synth_check.strip_source(text)
    out = {}
    for label in ("load_full", "load_tail", "fifo_full"):
        body = _loop_body(code, label)
        n = len(re.findall(r"\bput_column\s*<", body)) + len(re.findall(r"\bput_column_pair\s*<", body))
        n += len(re.findall(r"\bbank\s*\[[^\]]*\]\s*\[[^\]]*\]\s*=(?!=)", body))
        unrolled = re.search(r"for\s*\([^)]*\)\s*\{\s*#pragma HLS UNROLL([\s\S]*?)\}", body)
        if unrolled:
            n += len(re.findall(r"\bput_column\s*<|\bbank\s*\[", unrolled.group(1)))  # its second copy
        out[label] = n
    return out


def test_bank_fill_one_store_per_slot_memory() -> None:
    """Issue 21 #8: every bank-filling loop stores one column per slot memory and cycle: one put_column
    (a single store) or one put_column_pair (one store per slot memory, two columns in distinct slots),
    and no padding store in the loop (pad_last_step runs after it). The loops before the fix stored two
    columns (put_column in an unrolled loop) and padded inside the loop."""
    text = (INCLUDE / "weight_bank_fill.h").read_text()
    assert bank_fill_stores(text) == {"load_full": 1, "load_tail": 1, "fifo_full": 1}
    code = synth_check.strip_source(text)
    pair = code[code.index("void put_column_pair("):]
    pair = pair[:pair.index("\n}\n")]
    store = r"\bbank\s*\[[^\]]*\]\s*\[[^\]]*\]\s*=(?!=)"
    assert len(re.findall(store, pair)) == 1 and "#pragma HLS UNROLL" in pair
    single = code[code.index("void put_column("):]
    assert len(re.findall(store, single[:single.index("\n}\n")])) == 1  # no padding inside
