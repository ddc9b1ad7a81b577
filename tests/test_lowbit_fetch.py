"""A low-bit design's decode priced as built: the top's weight fetchers (top_fetch.h fetch_program over
lowbit_mm_policy::fetch) stream the next linears' images into FIFOs of fetch_depth 128-bit words while the
engine runs the element-wise stages and attention (compiler/cost/lowbit_run.py over cost/fetch.py), and
the search sizes those FIFOs as the ternary DSE does (compiler/cost/lowbit_search.py)."""

from __future__ import annotations

import dataclasses

import pytest

from edgellm.boards import load_board
from edgellm.compiler import lowbit_estimate as le
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import lowbit_run as lr
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.cost.ddr import bandwidth
from edgellm.compiler.cost.lowbit_mix import llama_cpp_mix
from edgellm.models.config import PRESETS
from edgellm.runtime.lowbit_gear import Gear

BIG_VECTOR = ls.VECTOR[-1]  # the widest vector engines: the layers' vector work well under the stream's


def _llama(depth: int) -> tuple:
    cfg, board = PRESETS["llama-3.2-1b"], load_board("kv260").with_scenario("central")
    m = llama_cpp_mix(cfg, "Q4_0")
    eng = cl.LowbitEngine(max_group=32, max_k=cl.model_max_k(cfg), fetch_depth=depth)
    return cfg, board, m, eng, ls.design(board, eng, BIG_VECTOR)


def _stream_s(cfg, board, m, eng, p) -> float:  # noqa: ANN001
    """The linears' streams alone over the weight ports."""
    return m.linear_bytes(cfg, eng.rows, eng.beat_bits) / bandwidth(board, p).weights


def _compute_s(cfg, m, eng, p) -> float:  # noqa: ANN001
    """The engine's cycles of every linear (data always there)."""
    sh = cfg.linear_shapes()
    return sum(cl.linear_cycles(*sh[n], f, eng, 1) for layer in m.layers for n, f in layer.items()) / (
        p.clock_mhz * 1e6)


def test_vector_work_under_a_deep_fifo_costs_almost_nothing_beyond_the_stream() -> None:
    """Engine cycles + vector work shorter than the stream, a FIFO deep enough for a layer's vector
    stages: the layers take the stream's time plus a small part of the vector work (the last layer's
    tail, attention's K/V reads taken from the fetcher); the old model (each linear max(cycles, bytes /
    bandwidth), the vector work after them) added all of it."""
    cfg, board, m, eng, p = _llama(65536)
    run = lr.run_split(cfg, board, m, eng, p, 1, p.decode_context)
    stream, compute = _stream_s(cfg, board, m, eng, p), _compute_s(cfg, m, eng, p)
    assert compute + run.vector < stream  # the case: the engine could keep up with the ports
    layers = sum(run.layers)
    assert layers >= stream and layers >= compute + run.vector  # neither the ports nor the engine beaten
    assert layers - stream < 0.25 * run.vector, (layers, stream, run.vector)
    assert sum(run.parts().values()) == pytest.approx(layers + run.final + run.lm_head + run.host, rel=1e-12)


def test_a_shallow_fifo_hides_less_and_decode_never_drops_with_depth() -> None:
    """The FIFO alone (attention after q, k, v: attn_split off): more than 2% between 512 and 65536 words;
    with attention over the earlier K/V blocks beside k and v the slot hides part of what the FIFO had to,
    so depth matters less, and never hurts."""
    cfg, board, m, _, _ = _llama(512)
    tok_s: dict[bool, list[float]] = {True: [], False: []}
    for split in (False, True):
        for depth in (512, 2048, 8192, 32768, 65536):
            _, _, _, eng, p = _llama(depth)
            p = p.replace(attn_split=split)
            tok_s[split].append(1 / sum(lr.run_seconds(cfg, board, m, eng, p, 1, p.decode_context).values()))
        assert tok_s[split] == sorted(tok_s[split]) and tok_s[split][-1] > tok_s[split][0], tok_s
    assert tok_s[False][-1] > 1.02 * tok_s[False][0], tok_s
    gain = {split: tok_s[split][-1] / tok_s[split][0] for split in tok_s}
    assert tok_s[True][0] > tok_s[False][0] and gain[True] < gain[False]
    no_split = [_llama(d)[3:] for d in (512, 65536)]
    shallow, deep = (lr.run_split(cfg, board, m, eng, p.replace(attn_split=False), 1, 128)
                     for eng, p in no_split)
    assert shallow.vector == deep.vector and shallow.stall > deep.stall


def test_the_split_adds_up_per_layer_and_per_linear() -> None:
    """run_split's layers are its linears (stalls included) and vector work; a Q4_K_M mix's two kinds of
    layer (Q6_K attn_v / ffn_down in use_more_bits layers) take different times."""
    cfg, board = PRESETS["llama-3.2-1b"], load_board("kv260").with_scenario("central")
    m = llama_cpp_mix(cfg, "Q4_K_M")
    eng = cl.LowbitEngine(max_group=32, max_k=cl.model_max_k(cfg), fetch_depth=16384)
    p = ls.design(board, eng, BIG_VECTOR)
    run = lr.run_split(cfg, board, m, eng, p, 1, p.decode_context)
    assert len(run.layers) == cfg.n_layers and set(run.linears) == set(cfg.linear_shapes())
    assert sum(run.layers) == pytest.approx(sum(run.linears.values()) + run.vector, rel=1e-12)
    more = [i for i, layer in enumerate(m.layers) if layer["v"].name == "Q6_K"]
    assert min(run.layers[i] for i in more) > max(t for i, t in enumerate(run.layers) if i not in more)
    # prefill: 16 calls of MAXT = 8 tokens, the FIFOs empty at each call's start
    pre = lr.run_split(cfg, board, m, eng, p, 128, 0)
    assert sum(pre.layers) == pytest.approx(sum(pre.linears.values()) + pre.vector, rel=1e-12)
    assert pre.host == pytest.approx(16 * run.host)  # a host call per start; the token is the head's argmax


def test_fifo_resources_follow_the_depth_and_the_search_sizes_it() -> None:
    """The weight FIFOs are counted as built (URAM on the KV260: two 72-bit columns a 128-bit word, one
    URAM deep per 4096 words, a FIFO a port, and the gearbox's side FIFOs); the search takes the deepest
    that fits, then the shallowest within FETCH_TIE of its decode; compile's design carries the depth."""
    cfg, board = PRESETS["qwen2.5-0.5b"], load_board("kv260")
    m = llama_cpp_mix(cfg, "Q4_0")
    eng, vec = ls.search(cfg, board, m, le.BUILT_ENGINES)
    p = ls.design(board, eng, vec)
    assert p.fetch_depth == eng.fetch_depth in ls.FETCH_DEPTHS
    fifo = ls.fetch_resources(board, p)
    # and the weight gearbox's two side FIFOs (the given words of fetch_depth beats: depth / 8 + 2 words)
    g = p.gear
    assert g == Gear(8, 1, 1)
    side = 2 * 2 * -(-(-(-eng.fetch_depth // g.cycle) + 2) // 4096)
    assert fifo.uram == p.weight_ports * 2 * -(-eng.fetch_depth // 4096) + side
    assert ls.fits(cfg, board, eng, vec, m)
    r = ls.project(cfg, board, m, eng, vec)
    deeper = [d for d in ls.FETCH_DEPTHS if d > eng.fetch_depth]
    for d in deeper:  # a deeper FIFO buys nothing beyond the tie, or does not fit
        q = dataclasses.replace(eng, fetch_depth=d)
        assert (not ls.fits(cfg, board, q, vec, m)
                or ls.project(cfg, board, m, q, vec)["decode"] <= r["decode"] / ls.FETCH_TIE)
    src = le.from_preset(cfg, "Q4_0")
    e, built = le.compile_design(src, board, 32)
    assert built.fetch_depth == e.engine.fetch_depth == e.record()["design"]["fetch_depth"]
    again = le.estimate_design(src, board, built)
    assert again.engine == e.engine and again.decode == pytest.approx(e.decode)
    # the vector engines round-trip too, a narrower GLU pass (ew_glu_vec) included
    assert again.vector == e.vector and built.ew_glu_vec == (e.vector[3] if len(e.vector) > 3 else 0)
