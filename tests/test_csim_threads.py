"""The threaded C simulation (edgellm/dataflow.h, hw/csim_threads/): every process of the stream-only
DATAFLOW regions (the top's fetchers and engine, attention's K/V readers and core, the LM head's dot
and scoring processes) runs in its own thread, over FIFOs bounded at the depths the HLS declares. So
the FIFO depths are exercised and deadlock freedom is simulated, not only argued."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from shared_fixtures import head_ports, kv_cache, mismatches, nan_like, run_attention_layer
from shared_top import SMALL, check_prefill_then_decode, make_top

from edgellm.compiler.design import DesignParams
from edgellm.hw import csim
from edgellm.models import numerics as nx
from edgellm.models.numerics import F32


@pytest.fixture(scope="module")
def flow() -> ctypes.CDLL:
    lib = csim.load([csim.TB_DIR / "dataflow_tb.cpp"], "dataflow_tb", threads=True)
    for f in (lib.tb_pipe, lib.tb_cross):
        f.restype = ctypes.c_long
    lib.tb_deadlocks.restype = ctypes.c_longlong
    return lib


def test_bounded_fifo_pipe_and_deadlock_detection(flow: ctypes.CDLL) -> None:
    """A producer and a consumer over a FIFO of depth 1 run concurrently to the right sum; two processes
    that each fill the other's FIFO before reading deadlock once n exceeds the depth, and the simulation
    reports it (once) instead of hanging."""
    n = 5000
    assert flow.tb_pipe(n, 1) == n * (n - 1) // 2
    assert flow.tb_deadlocks() == 0
    assert flow.tb_cross(8, 8) == 2 * 28  # each FIFO holds all 8: no deadlock
    assert flow.tb_deadlocks() == 0
    flow.tb_cross(9, 8)
    assert flow.tb_deadlocks() == 1


# (variant, matmul, design): 4 weight ports at the default fetch depth; 2 ports with fetch FIFOs of 2
# words (fetchers and engine in near lockstep) and an f16 KV cache; the prefill pipeline (each slot's
# linear and vector jobs in two threads) with 2-word fetch FIFOs
THREADED = [("relu2_subln", "tlmm", DesignParams()),
            ("silu", "tlmm", DesignParams(**SMALL, kv_bytes=2, fetch_depth=2)),
            ("silu_subln", "tlmm", DesignParams(**SMALL, kv_bytes=2, fetch_depth=2, token_lanes=2,
                                                prefill_pipeline=True))]


@pytest.mark.parametrize("case", THREADED,
                         ids=lambda c: f"{c[0]}-{c[2].weight_ports}port-fifo{c[2].fetch_depth}"
                                       + ("-pipe" * c[2].prefill_pipeline))
def test_threaded_top_bit_exact(tmp_path: Path, case: tuple[str, str, DesignParams]) -> None:
    """The generated top with every fetcher, the engine, attention's readers and core and the LM head's
    processes in threads over FIFOs of their declared depths: prefill + 12 decode steps bit-exact
    against the golden model, no word left in a FIFO, no deadlock."""
    variant, mm, design = case
    top = make_top(tmp_path, variant, mm, design, threads=True)
    top.lib.edgellm_csim_deadlocks.restype = ctypes.c_longlong
    check_prefill_then_decode(top)
    assert top.lib.edgellm_csim_deadlocks() == 0


def _attn_lib(vs_depth: int | None) -> ctypes.CDLL:
    defines = {} if vs_depth is None else {"EDGELLM_CSIM_VS_DEPTH": str(vs_depth)}
    name = "attention_tb_mt" + ("" if vs_depth is None else f"_vs{vs_depth}")
    lib = csim.load([csim.TB_DIR / "attention_tb.cpp"], name, defines=defines, threads=True)
    lib.tb_attn_deadlocks.restype = ctypes.c_longlong
    return lib


def test_attention_kv_skew_needs_a_tile_of_v_fifo() -> None:
    """The core reads K one tile ahead of V (the software-pipelined softmax), so the V FIFO must hold a
    whole tile while K is read. Decode over 3 ports with all 8 KV heads and d = 64 (tiles of
    16 x 8 x 4 = 512 beats): bit-exact with the declared depth (a tile plus a position); with the V FIFO
    one beat short of a tile the simulation deadlocks, and says so."""
    rng = np.random.default_rng(11)
    n_h, n_kv, d, pos = 8, 8, 64, 40
    k, v = kv_cache(rng, pos + 1, n_kv, d, extra=0)
    nan = nan_like(k)
    q = (rng.standard_normal((1, n_h, d)) * 2).astype(F32)
    ref = nx.attention(q, nx.kv_load(k), nx.kv_load(v), pos, nx.NumericsPlan(dot_lanes=16, kv_block=16))
    ok = _attn_lib(None)
    out = run_attention_layer(ok, "3_l16", q, 1, pos, nan, nan, head_ports(k, v, 3))
    assert ok.tb_attn_deadlocks() == 0 and mismatches(out, ref) == 0
    short = _attn_lib(16 * 8 * 4 - 1)
    run_attention_layer(short, "3_l16", q, 1, pos, nan, nan, head_ports(k, v, 3))
    assert short.tb_attn_deadlocks() == 1


def _regions() -> list[tuple[str, str]]:
    """(header, function body) of every HLS function with a DATAFLOW pragma (comments stripped)."""
    import re

    from edgellm.hw import synth_check

    out = []
    for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("*.h")):
        code = synth_check.strip_source(h.read_text())
        for m in re.finditer(r"#pragma HLS DATAFLOW", code):
            start = code.rfind("{", 0, m.start())
            depth, i = 0, start
            while True:  # the enclosing function body: from its brace to the matching one
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                if depth == 0:
                    break
                i += 1
            out.append((h.name, code[start:i + 1]))
    return out


def test_stream_regions_are_threaded_with_declared_depths() -> None:
    """Every DATAFLOW region that declares streams opens EDGELLM_REGION, runs its calls as
    EDGELLM_PROCESS and joins them after the last (EDGELLM_JOIN); every STREAM pragma has an
    EDGELLM_DEPTH with the same depth right after it, so the threaded simulation bounds each FIFO as
    synthesis will."""
    import re

    regions = _regions()
    threaded = [(h, b) for h, b in regions if re.search(r"hls::stream<.*>\s+\w+\(\"", b)]
    assert {h for h, _ in threaded} == {"top.h", "attention_layer.h", "lm_head.h", "lm_head_lanes.h"}
    for h, body in threaded:
        assert "EDGELLM_REGION;" in body and body.rfind("EDGELLM_JOIN;") > body.rfind("EDGELLM_PROCESS("), h
        assert body.count("EDGELLM_PROCESS(") >= 2 or h == "top.h", h  # top: the fetchers via FetchPorts
    n = 0
    for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("*.h")):
        lines = h.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*#pragma HLS STREAM variable = (\w+) depth = (.+)$", line)
            if m:
                n += 1
                nxt = lines[i + 1].strip()
                if nxt.startswith("#ifdef EDGELLM_CSIM_VS_DEPTH"):  # the tests' override, then the real one
                    nxt = lines[i + 4].strip()
                assert nxt == f"EDGELLM_DEPTH({m.group(1)}, {m.group(2)});", f"{h.name}:{i + 2}: {nxt}"
    # 19 + the LM head's row-scale FIFO (lm_head_stream) + its lane packets (lm_dot_rows) + the geared top's
    # region (top_region_geared: 4 weight, 2 side, 2 merged-lane, 2 count and 4 head FIFOs)
    assert n == 35
