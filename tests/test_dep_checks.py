"""The library's DEPENDENCE claims checked in C simulation (hw/include/edgellm/dep_check.h, built with
-DEDGELLM_CHECK_DEPS=1): every annotated read must see no write from fewer iterations back than its
claim allows. They hold on the attention testbench, on the generated top at the tiny model's shapes
and on a bitnet_b1_58-large-shape layer (bit-exact all along), and seeded mutants that C simulation
alone cannot tell apart (outputs still bit-exact) fail them."""

from __future__ import annotations

import ctypes
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from edgellm.boards import load_board
from edgellm.compiler import interface as itf
from edgellm.compiler.codegen_hls import generate_hls, weight_encoder
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.design import DesignParams
from edgellm.compiler.memory_plan import plan_memory
from edgellm.hw import csim
from edgellm.models import numerics as nx
from edgellm.models.config import PRESETS
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders import load_model
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir
from edgellm.runtime.layout import layer_buffer_sizes

F32 = np.float32
CHECK = {"EDGELLM_CHECK_DEPS": "1"}
DEP_TB = csim.TB_DIR / "dep_tb.cpp"
# every claim of the library (loop.variable) and what the tests must see of it: (reads, writes). The
# stage pass reads and writes all its arrays; the q load only writes K of tile 0 (no V yet); the copy
# loops only write, and in sequential C simulation the passes before them already took every beat.
PASS = (True, True)
CLAIMS = {"attn_rows.pass.acc": PASS, "attn_rows.pass.mx": PASS, "attn_rows.pass.l": PASS,
          "attn_rows.pass.o": PASS, "attn_rows.pass.m": PASS, "attn_rows.pass.s_tile": PASS,
          "attn_rows.pass.kt": PASS, "attn_rows.pass.vt": PASS, "attn_rows.load_q.kt": (False, True),
          "attn_rows.load_q.vt": (False, False), "attn_copy_rest.kt": (False, False),
          "attn_copy_rest.vt": (False, False)}
# claims checked by their own kernel's testbench (tests/test_hw_lowbit.py runs lowbit_mm.h with the checks on)
OTHER_TB_CLAIMS = {"lb_blocks.run.acc", "lb_blocks.run.s", "lb_blocks.run.m"}


def _dep_state(lib: ctypes.CDLL) -> tuple[int, dict[str, tuple[int, int, int]]]:
    """(violations, {claim: (reads, writes, violations)}) so far."""
    lib.tb_dep_violations.restype = ctypes.c_longlong
    buf = ctypes.create_string_buffer(1 << 16)
    lib.tb_dep_report(buf, ctypes.c_int(len(buf)))
    rows = [ln.split() for ln in buf.value.decode().splitlines()]
    return int(lib.tb_dep_violations()), {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def _check_coverage(report: dict[str, tuple[int, int, int]]) -> None:
    """Every claim of the library ran (its loop was entered), with the reads and writes CLAIMS asks."""
    assert set(report) == set(CLAIMS), sorted(report)
    for name, (reads, writes) in CLAIMS.items():
        r, w, _ = report[name]
        assert (r > 0 or not reads) and (w > 0 or not writes), (name, report[name])


def test_every_dependence_pragma_is_a_checked_claim() -> None:
    """The claims CLAIMS lists are the library's (one EDGELLM_DEP_CLAIM per DEPENDENCE pragma, which
    synth_check's dep-unchecked rule enforces)."""
    found = set()
    for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("*.h")):
        if h.name == "dep_check.h":  # the macros' own definitions
            continue
        code = re.sub(r"//[^\n]*", "", h.read_text())  # the loop names are string literals: comments only
        loops = [(m.start(), m.group(1)) for m in re.finditer(r'EDGELLM_DEP_LOOP\("([\w.]+)"\)', code)]
        for m in re.finditer(r"EDGELLM_DEP_CLAIM\((\w+),", code):
            loop = max((s, n) for s, n in loops if s < m.start())[1]
            found.add(f"{loop}.{m.group(1)}")
        assert code.count("#pragma HLS DEPENDENCE") == code.count("EDGELLM_DEP_CLAIM("), h.name
    assert found == set(CLAIMS) | OTHER_TB_CLAIMS


# ---- the attention testbench (every claim of the library lives in the attention core)

def _scale(d: int) -> ctypes.c_float:
    return ctypes.c_float(F32(1.0 / np.sqrt(d)))


def _cache(rng: np.random.Generator, n: int, n_kv: int, d: int, kv: str) -> tuple[np.ndarray, np.ndarray]:
    k = rng.standard_normal((n, n_kv, d)).astype(F32)
    v = rng.standard_normal((n, n_kv, d)).astype(F32)
    return nx.kv_store(k, kv), nx.kv_store(v, kv)


def _attention(lib: ctypes.CDLL, fn: str, q: np.ndarray, pos0: int, k: np.ndarray, v: np.ndarray,
               lanes: int, kvb: int) -> int:
    """Runs prefill (q (T, H, D)) through tb function fn; returns the mismatches with the reference."""
    t_len, n_h, d = q.shape
    out = np.full_like(q, np.nan)
    getattr(lib, fn)(csim.ptr(q), csim.ptr(k), csim.ptr(v), csim.ptr(out), ctypes.c_int(t_len),
                     ctypes.c_int(pos0), ctypes.c_int(n_h), ctypes.c_int(k.shape[1]), ctypes.c_int(d),
                     _scale(d))
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=kvb)
    s = pos0 + t_len
    with np.errstate(over="ignore", invalid="ignore"):
        ref = nx.attention(q, nx.kv_load(k[:s]), nx.kv_load(v[:s]), pos0, plan)
    return int((out.view(np.uint32) != ref.view(np.uint32)).sum())


@pytest.fixture(scope="module")
def attn_lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "attention_tb.cpp", DEP_TB], "attention_tb_deps", defines=CHECK)


# (d_max, lanes, kv_block, d, kv dtype): several lane chunks, one chunk (lanes >= d: the o / l
# distance comes from the row padding alone), f16 cache
ATTN_CASES = [(128, 16, 16, 96, "f32"), (128, 128, 16, 64, "f32"), (128, 64, 32, 64, "f16"),
              (128, 8, 16, 40, "f32"), (128, 8, 4, 64, "f32")]  # the last: K/V tiles of 4 keys


def test_attention_claims_hold(attn_lib: ctypes.CDLL) -> None:
    """Decode (rows = heads, few or many) and prefill (query blocks of 8, one or more KV heads) on each
    configuration: bit-exact and no read sees a write closer than its claim; over all of them every
    claim of the library is exercised."""
    attn_lib.tb_dep_reset()
    for d_max, lanes, kvb, d, kv in ATTN_CASES:
        rng = np.random.default_rng(lanes + d)
        suffix = f"{'16' if kv == 'f16' else ''}_d{d_max}_l{lanes}_b{kvb}"
        bad = 0
        for (n_h, n_kv), t_len, pos0 in (((4, 2), 1, 37), ((16, 8), 1, 2 * kvb + 3), ((4, 2), 13, 5),
                                         ((8, 1), 9, kvb - 1), ((2, 2), 1 + kvb, 20)):
            q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
            k, v = _cache(rng, pos0 + t_len, n_kv, d, kv)
            bad += _attention(attn_lib, f"tb_prefill{suffix}", q, pos0, k, v, lanes, kvb)
        n, report = _dep_state(attn_lib)
        print(f"A={lanes} d={d} kv_block={kvb} {kv}: {bad} mismatches, {n} violations so far")
        assert bad == 0 and n == 0
    print(report)
    _check_coverage(report)


# ---- seeded mutants: the same kernels with a claim the code does not keep

MUTANT_TB = """// attention with dep_check on (tests/test_dep_checks.py): d_max 32, 8 or 32 lanes, kv_block 16
#include "attention_prefill.h"
#include "attention_decode.h"
#include "dep_check.h"
using namespace edgellm;
struct cfg_fields : attn_config_base {
  static const int d_max = 32, kv_block = 16, bq = 8, heads_max = 8, kv_heads_max = 4, group_max = 2;
  static const int max_ctx = 256;
};
struct cfg_l8_fields : cfg_fields { static const int dot_lanes = 8; };
struct cfg_l32_fields : cfg_fields { static const int dot_lanes = 32; };
typedef attn_traits<cfg_l8_fields> cfg_l8;
typedef attn_traits<cfg_l32_fields> cfg_l32;
#define TB(C)                                                                                         \\
  extern "C" void tb_prefill_##C(const f32 *q, const f32 *k, const f32 *v, f32 *out, int t_len,    \\
                                 int pos0, int n_heads, int n_kv, int head_dim, f32 scale) {      \\
    attention_prefill<C>(q, k, v, out, t_len, pos0, n_heads, n_kv, head_dim, scale);              \\
  }
TB(cfg_l8)
TB(cfg_l32)
extern "C" long long tb_dep_violations() { return dep_violations(); }
extern "C" int tb_dep_report(char *buf, int cap) { return dep_report(buf, cap); }
extern "C" void tb_dep_reset() { dep_reset(); }
"""

PASS_ROWS = "const int nr = attn_pass_rows<C>(n_rows, nc);"
MUTANTS = {
    # the padding before issue 21 (max(R, min_rows)): with one lane chunk a row's o / l come back 8
    # iterations later, under the 16 their multiply-add needs
    "padding_min_rows": [(PASS_ROWS, "const int nr = n_rows < C::min_rows ? C::min_rows : n_rows;")],
    # no padding: 4 decode rows bring a row's lane sums back 4 iterations later (claim 8)
    "no_padding": [(PASS_ROWS, "const int nr = n_rows;")],
    # `inter false` on a carried value (pragma and check changed together, as synth_check requires)
    "o_inter_false": [("#pragma HLS DEPENDENCE variable = o inter RAW distance = kMacDist true",
                       "#pragma HLS DEPENDENCE variable = o inter false"),
                      ("EDGELLM_DEP_CLAIM(o, kMacDist);", "EDGELLM_DEP_CLAIM(o, 0);")],
    # a distance beyond the real one (l comes back nc * nr = 16 or 32 iterations later)
    "l_distance_64": [("#pragma HLS DEPENDENCE variable = l inter RAW distance = kMacDist true",
                       "#pragma HLS DEPENDENCE variable = l inter RAW distance = 64 true"),
                      ("EDGELLM_DEP_CLAIM(l, kMacDist);", "EDGELLM_DEP_CLAIM(l, 64);")],
}


def _mutant_lib(root: Path, name: str, edits: list[tuple[str, str]]) -> ctypes.CDLL:
    """The library's headers copied to root (includes made local, as a generated project's), the edits
    applied to attention_core.h, and MUTANT_TB built against them with the checks on."""
    root.mkdir(parents=True, exist_ok=True)
    for h in (csim.INCLUDE_DIR / "edgellm").glob("*.h"):
        text = re.sub(r'#include "edgellm/([\w.]+)"', r'#include "\1"', h.read_text())
        if h.name == "attention_core.h":
            for old, new in edits:
                assert text.count(old) == 1, old
                text = text.replace(old, new)
        (root / h.name).write_text(text)
    (root / "mutant_tb.cpp").write_text(MUTANT_TB)
    return csim.load([root / "mutant_tb.cpp"], f"dep_mutant_{name}", includes=[root], defines=CHECK)


def _run_mutant_cases(lib: ctypes.CDLL) -> tuple[int, int, dict[str, tuple[int, int, int]]]:
    """Decode of 4 heads and a prefill at d = 32 on both lane counts: (mismatches, violations, report)."""
    lib.tb_dep_reset()
    rng = np.random.default_rng(1)
    bad = 0
    for lanes in (8, 32):
        for t_len, pos0 in ((1, 40), (11, 6)):
            q = (rng.standard_normal((t_len, 4, 32)) * 2).astype(F32)
            k, v = _cache(rng, pos0 + t_len, 2, 32, "f32")
            bad += _attention(lib, f"tb_prefill_cfg_l{lanes}", q, pos0, k, v, lanes, 16)
    n, report = _dep_state(lib)
    return bad, n, report


def test_mutant_harness_is_clean(tmp_path: Path) -> None:
    """The unmutated headers through the mutant harness: bit-exact, no violation."""
    bad, n, report = _run_mutant_cases(_mutant_lib(tmp_path / "none", "none", []))
    assert bad == 0 and n == 0, report


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_fails_the_checks(tmp_path: Path, mutant: str) -> None:
    """A claim the code does not keep: C simulation alone still matches the reference bit for bit
    (the hazard is one of timing, invisible to sequential C), the checks count violations."""
    bad, n, report = _run_mutant_cases(_mutant_lib(tmp_path / mutant, mutant, MUTANTS[mutant]))
    print(mutant, bad, n, {k: v for k, v in report.items() if v[2]})
    assert bad == 0
    assert n > 0


# ---- the generated top: the tiny model's shapes, and a bitnet_b1_58-large-shape layer

def _top_lib(tmp: Path, qm, design: DesignParams, max_t: int, max_ctx: int, top_k: int = 8):
    """Generate a project's HLS for qm and build its C simulation with the checks on: (lib, plan,
    numerics)."""
    cfg = qm.config
    kv_dtype = "f16" if design.kv_bytes == 2 else "f32"  # the numerics the compile step derives (steps.py)
    numerics = nx.NumericsPlan(norm_lanes=design.ew_lanes, dot_lanes=cost_attention.lanes(cfg, design),
                               kv_block=design.attn_kv_block, kv_dtype=kv_dtype)
    sf, si, tf = layer_buffer_sizes(cfg, max_t)
    plan = plan_memory(qm, weight_encoder(design, "tlmm"), max_t=max_t, max_ctx=max_ctx,
                       scratch_floats=sf, scratch_i8=si, tap_floats=tf, top_k=top_k,
                       kv_elem_bytes=numerics.kv_elem_bytes, head_lanes=design.head_lanes)
    hls = tmp / "hls"
    generate_hls(hls, cfg, numerics, design, "tlmm", max_t=max_t, max_ctx=max_ctx, top_k=top_k,
                 board=load_board("kv260"), total_bytes=plan.total_bytes)
    lib = csim.load([hls / "csim_entry.cpp", DEP_TB], f"top_deps_{cfg.name}", includes=[hls],
                    defines=CHECK)
    lib.edgellm_csim_run.restype = None
    return lib, plan, numerics


def _run_top(lib, plan, qm, emb: np.ndarray, pos0: int, ddr: np.ndarray) -> np.ndarray:
    """One forward pass through the top (every layer, the head on the last row): the logits."""
    def region(name: str, dtype: type = F32) -> np.ndarray:
        r = plan.regions[name]
        return ddr[r.offset:r.offset + r.size].view(dtype)

    region("h")[:emb.size] = emb.ravel()
    prog = itf.program(qm.config.n_layers, emb.shape[0], pos0, False)
    region("program", np.uint32)[:prog.size] = prog.ravel()
    lib.edgellm_csim_run(csim.ptr(ddr), ctypes.c_uint64(ddr.size), ctypes.c_uint32(0),
                         ctypes.c_uint32(plan.regions["program"].offset), ctypes.c_uint32(len(prog)))
    return region("logits")[:qm.config.vocab_size].copy()  # the head's first row (the region holds its rows)


def _prefill_decode(tmp: Path, qm, design: DesignParams, prefill: int, decode: int, max_t: int = 16,
                    max_ctx: int = 64) -> tuple[list[int], int, dict[str, tuple[int, int, int]]]:
    """A prefill then greedy decode steps on the instrumented top: (logit mismatches per step vs the
    golden model, violations, claim report)."""
    lib, plan, numerics = _top_lib(tmp, qm, design, max_t, max_ctx)
    lib.tb_dep_reset()
    ddr = np.zeros(plan.total_bytes, np.uint8)
    ddr[:plan.static_bytes] = plan.image
    gm = GoldenModel(qm, numerics)
    cache = gm.new_cache(max_ctx)
    prompt = np.random.default_rng(2).integers(3, qm.config.vocab_size, prefill)
    ref = gm.forward(prompt, cache, all_logits=False)[0]
    got = _run_top(lib, plan, qm, qm.embed_rows(prompt), 0, ddr)
    bad = [int((got.view(np.uint32) != ref.view(np.uint32)).sum())]
    for s in range(decode):
        tok = np.array([int(np.argmax(ref))])
        ref = gm.forward(tok, cache, all_logits=False)[0]
        got = _run_top(lib, plan, qm, qm.embed_rows(tok), prefill + s, ddr)
        bad.append(int((got.view(np.uint32) != ref.view(np.uint32)).sum()))
    n, report = _dep_state(lib)
    return bad, n, report


def test_top_tiny_model_claims_hold(tmp_path: Path) -> None:
    """The shipped tiny model (4 layers, hidden 256, 4/2 heads of 64; 16 attention lanes: 4 chunks of the
    head; K/V tiles of 8 positions, so a decode step's attention in two parts has two tiles before the
    split: the pass copies K of the next tile) on the generated top: a 16-token prefill and 4 decode
    steps, bit-exact, no violation, every claim exercised."""
    qm, _ = load_model(tiny_model_dir())
    design = DesignParams(tables=15, weight_ports=2, weight_buffer="bram", kv_bytes=4, attn_lanes=16,
                          attn_kv_block=8)
    bad, n, report = _prefill_decode(tmp_path, qm, design, prefill=16, decode=4)
    print(f"tiny: mismatches {bad}, violations {n}; {report}")
    assert bad == [0] * 5 and n == 0
    _check_coverage(report)


def test_top_large_shape_layer_claims_hold(tmp_path: Path) -> None:
    """One bitnet_b1_58-large-shape layer (hidden 1536, FFN 4096, 16 heads of 96, SiLU + SubLN; random
    weights, a 512-token vocabulary to keep the LM head's C simulation short) on the generated top with
    the KV260 design's attention (8 lanes: 12 chunks of the head; K/V tiles of 8, as the DSE's): a 16-token
    prefill (two query blocks) and 2 decode steps, bit-exact, no violation."""
    cfg = dataclasses.replace(PRESETS["bitnet_b1_58-large"], n_layers=1, vocab_size=512, max_context=64,
                              name="large-1layer")
    qm = random_model(cfg, seed=1)
    design = DesignParams(attn_lanes=8, attn_kv_block=8, kv_bytes=4)
    bad, n, report = _prefill_decode(tmp_path, qm, design, prefill=16, decode=2)
    print(f"large layer: mismatches {bad}, violations {n}; {report}")
    assert bad == [0] * 3 and n == 0
    _check_coverage(report)
