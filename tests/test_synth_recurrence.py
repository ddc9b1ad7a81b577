"""hw/synth_recurrence.py's float-recurrence rule (through synth_check): a float carried from one iteration of
an II = 1 loop to the next through arithmetic is flagged (Vitis HLS would raise the II to the add's
latency); a delay line, a rotating index, integers, comparisons, a claimed DEPENDENCE and a loop at II 2
are not. The library passes; a library mutant (lane_sum without its delay line's rotation) does not."""

from pathlib import Path

import pytest

from edgellm.hw import synth_check


def _found(text: str) -> list[str]:
    found = synth_check.check_text(Path("k.h"), text, set())
    return [f.detail for f in found if f.rule == "float-recurrence"]


def _loop(decl: str, stmt: str, pragma: str = "#pragma HLS PIPELINE II = 1", pre: str = "") -> str:
    return (f"{pre}typedef float f32;\nf32 f(const f32 *x, int n) {{\n  {decl}\n"
            f"  for (int i = 0; i < 64; i++) {{\n{pragma}\n    {stmt}\n  }}\n  return 0;\n}}\n")


FLAGGED = {
    "scalar_sum": ("f32 s = 0.0f;", "s += x[i];"),
    "scalar_written_out": ("float s = 0.0f;", "s = s * 0.5f + x[i];"),
    "double": ("double s = 0;", "s -= x[i];"),
    "alias": ("acc_f s = 0;", "s += x[i];"),
    "static_element": ("f32 acc[4];", "acc[1] += x[i];"),
    "unrolled_lanes": ("f32 acc[4];", "for (int j = 0; j < 4; j++) {\n#pragma HLS UNROLL\n"
                       "      acc[j] = acc[j] + x[4 * i + j];\n    }"),
    "default_ii": ("f32 s = 0.0f;", "s += x[i];"),
}


@pytest.mark.parametrize("case", sorted(FLAGGED))
def test_flagged(case: str) -> None:
    decl, stmt = FLAGGED[case]
    pragma = "#pragma HLS PIPELINE" if case == "default_ii" else "#pragma HLS PIPELINE II = 1"
    pre = "typedef float acc_f;\n" if case == "alias" else ""
    found = _found(_loop(decl, stmt, pragma, pre))
    assert len(found) == 1 and "II=1 loop in f" in found[0], found


PASSES = {
    "int": ("int s = 0;", "s += (int)x[i];"),
    "rotating_index": ("f32 acc[8];", "acc[i % 8] += x[i];"),
    "running_max": ("f32 m = 0.0f;", "m = x[i] > m ? x[i] : m;"),
    "claimed": ("f32 acc[8];\n#pragma HLS DEPENDENCE variable = acc inter RAW distance = 8 true",
                "acc[0] += x[i];"),
    "delay_line": ("f32 acc[4];", "acc[0] = acc[0] + x[i];\n    for (int j = 0; j < 3; j++) {\n"
                   "#pragma HLS UNROLL\n      acc[j] = acc[j + 1];\n    }"),
    "local_to_the_iteration": ("int k = 0;", "f32 t = 0.0f;\n    t += x[i];\n    k += (int)t;"),
}


@pytest.mark.parametrize("case", sorted(PASSES))
def test_passes(case: str) -> None:
    decl, stmt = PASSES[case]
    assert _found(_loop(decl, stmt)) == []


def test_a_symbolic_or_longer_ii_is_not_claimed() -> None:
    """II = 2 (or a constant that may be the add's latency) is what the author asked for."""
    for pragma in ("#pragma HLS PIPELINE II = 2", "#pragma HLS PIPELINE II = kII"):
        assert _found(_loop("f32 s = 0.0f;", "s += x[i];", pragma)) == []


def test_through_an_inline_callee_and_a_reference_parameter() -> None:
    text = ("typedef float f32;\ninline void acc_add(f32 &a, f32 v) {\n#pragma HLS INLINE\n  a += v;\n}\n"
            "f32 f(const f32 *x) {\n  f32 s = 0.0f;\n  for (int i = 0; i < 64; i++) {\n"
            "#pragma HLS PIPELINE II = 1\n    acc_add(s, x[i]);\n  }\n  return s;\n}\n")
    found = _found(text)
    assert len(found) == 1 and found[0].startswith("s (a float)"), found
    # a pointer parameter's element (DDR or a caller's array): the same recurrence, through memory
    text = ("typedef float f32;\nvoid h(const f32 *x, f32 *y) {\n  for (int i = 0; i < 64; i++) {\n"
            "#pragma HLS PIPELINE II = 1\n    y[0] += x[i];\n  }\n}\n")
    assert len(_found(text)) == 1 and _found(text)[0].startswith("y[0]")
    # the callee's own loop over its reference parameter
    text = ("typedef float f32;\nvoid g(const f32 *x, f32 &s) {\n  for (int i = 0; i < 64; i++) {\n"
            "#pragma HLS PIPELINE II = 1\n    s += x[i];\n  }\n}\n")
    assert len(_found(text)) == 1


def test_library_passes_and_a_mutant_fails(tmp_path: Path) -> None:
    lib = Path(synth_check.__file__).resolve().parent / "include"
    assert [f for f in synth_check.check_paths([lib]) if f.rule == "float-recurrence"] == []
    for f in (lib / "edgellm").glob("*.h"):
        (tmp_path / f.name).write_text(f.read_text())
    lanes = tmp_path / "numerics_lanes.h"
    text = lanes.read_text()
    old = "    RING::rotate(acc);\n  }\n  return lane_tree<LANES>(acc);"
    assert text.count(old) == 1
    lanes.write_text(text.replace(old, "  }\n  return lane_tree<LANES>(acc);"))
    found = [f for f in synth_check.check_paths([tmp_path]) if f.rule == "float-recurrence"]
    assert len(found) == 1 and found[0].path.name == "numerics_lanes.h", found
    assert "lane_sum" in found[0].detail, found
