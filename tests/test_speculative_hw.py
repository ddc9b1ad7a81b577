"""The verify call of speculative decoding in hardware (issue 18 #1): one start runs the layers over a block
of T rows and ONE OP_HEAD over all of them (D_N_ROWS = T <= the head's rows, layout.head_rows), the LM
head streaming its weights once (lm_head.h token lanes). C simulation of the generated top bit-exact against
the golden model per row (logits, argmax, top-K), the descriptor checks on both sides, and the Session using
it (one start per verify pass, the greedy text unchanged)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, emulator_for, write_project
from shared_top import (
    CASES,
    MAX_CTX,
    MAX_T,
    TOP_K,
    Top,
    case_id,
    fifo_leftovers,
    kv_mismatches,
    make_top,
    mismatches,
    ref_topk,
    status,
)

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.models.golden import GoldenModel
from edgellm.models.random_model import random_model
from edgellm.runtime import bounds, layout
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams
from edgellm.runtime.session import Session
from edgellm.runtime.speculative import SpecConfig

R = layout.head_rows(MAX_T, layout.HEAD_ROWS_MAX)  # the default design's head (head_lanes 8)


def test_head_rows_is_the_layout_fact() -> None:
    assert R == min(layout.HEAD_ROWS_MAX, MAX_T) == 8
    assert layout.head_rows(4, 8) == 4 and layout.head_rows(1, 8) == 1 and layout.head_rows(MAX_T, 2) == 2
    assert layout.logits_row(300) == 304 and layout.logits_row(96) == 96


def _run(top: Top, prog: np.ndarray) -> None:
    o = top.plan.regions["program"].offset
    top.ddr[o:o + prog.nbytes] = prog.view(np.uint8).ravel()
    top.region("logits")[:] = np.nan
    top.lib.edgellm_csim_run(csim.ptr(top.ddr), ctypes.c_uint64(top.ddr.size), ctypes.c_uint32(0),
                             ctypes.c_uint32(o), ctypes.c_uint32(len(prog)))


def _rows_out(top: Top, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(logits (n, vocab), argmax (n,), ids (n, k), values (n, k)) of the head's first n rows."""
    v = top.qm.config.vocab_size
    lr = layout.logits_row(v)
    lg = top.region("logits")
    logits = np.stack([lg[i * lr:i * lr + v] for i in range(n)])
    a = top.region("argmax", np.int32)
    ids = a[R:R + R * TOP_K].reshape(R, TOP_K)[:n]
    vals = a[R + R * TOP_K:R + 2 * R * TOP_K].view(np.float32).reshape(R, TOP_K)[:n]
    return logits, a[:n].copy(), ids.copy(), vals.copy()


def _bad_rows(top: Top, ref: np.ndarray) -> int:
    logits, am, ids, vals = _rows_out(top, ref.shape[0])
    bad = mismatches(logits, ref) + int((am != np.argmax(ref, axis=1)).sum())
    for i, row in enumerate(ref):
        want_i, want_v = ref_topk(row, TOP_K)
        bad += int((ids[i] != want_i).sum()) + mismatches(vals[i], want_v)
    return bad


def _verify_prog(n_layers: int, t: int, pos0: int, row: int = 0, n: int | None = None) -> np.ndarray:
    prog = itf.program(n_layers, t, pos0)
    prog[-1] = itf.descriptor(itf.OP_HEAD, 0, t, pos0, 0, row, t - row if n is None else n)
    return prog


@pytest.mark.parametrize("case,threads", [(CASES[0], False), (CASES[3], False), (CASES[3], True)],
                         ids=lambda c: case_id(c) if isinstance(c, tuple) else ("threaded" if c else "seq"))
def test_verify_call_bit_exact_on_the_top(case: tuple, threads: bool, tmp_path: Path) -> None:
    """A prefill of R rows with the head over all R in the same start, then a verify call of 5 rows at the
    next position and a head over rows 1..3 of it: every row's logits, argmax and top-K bit-exact against
    the golden model's rows, the KV cache too, no head-FIFO word left (the head fetched its rows once per
    OP_HEAD: the fetchers push exactly what the lanes pop). Threaded: every process of the top (fetchers,
    engine, the head's lane dots, unpacking, scoring) in its own thread over FIFOs of their declared depths,
    no deadlock."""
    top = make_top(tmp_path, *case, threads=threads)
    cfg = top.qm.config
    left0 = fifo_leftovers(top)
    gm = GoldenModel(top.qm, top.numerics)
    cache = gm.new_cache(MAX_CTX)
    rng = np.random.default_rng(7)
    prompt = rng.integers(0, cfg.vocab_size, R)
    ref = gm.forward(prompt, cache, all_logits=True)
    top.region("h")[:R * cfg.hidden_size] = top.qm.embed_rows(prompt).ravel()
    _run(top, _verify_prog(cfg.n_layers, R, 0))
    assert status(top)[0] == itf.ST_OK
    bad = [_bad_rows(top, ref)]
    drafts = rng.integers(0, cfg.vocab_size, 5)
    ref2 = gm.forward(drafts, cache, all_logits=True)
    top.region("h")[:5 * cfg.hidden_size] = top.qm.embed_rows(drafts).ravel()
    _run(top, _verify_prog(cfg.n_layers, 5, R))
    bad.append(_bad_rows(top, ref2))
    _run(top, np.stack([itf.descriptor(itf.OP_HEAD, 0, 5, R, 0, 1, 3)]))  # head alone: rows 1..3
    bad.append(_bad_rows(top, ref2[1:4]))
    kv_bad = kv_mismatches(top, cache, R + 5)
    left = fifo_leftovers(top) - left0
    print(f"{cfg.name}: verify-call row mismatches {bad}, KV {kv_bad}, FIFO words left {left}")
    assert sum(bad) == 0 and kv_bad == 0 and left == 0
    if threads:
        top.lib.edgellm_csim_deadlocks.restype = ctypes.c_longlong
        assert top.lib.edgellm_csim_deadlocks() == 0


def test_verify_call_rows_are_checked(tmp_path: Path) -> None:
    """More rows than the head has lanes, or rows past the block: nothing runs, the status names D_N_ROWS;
    the host's check (bounds.check_program) refuses the same descriptors first."""
    top = make_top(tmp_path, *CASES[3])
    cfg = top.qm.config
    for d in (itf.descriptor(itf.OP_HEAD, 0, MAX_T, 0, 0, 0, R + 1),
              itf.descriptor(itf.OP_HEAD, 0, MAX_T, 0, 0, MAX_T - 2, 3)):
        _run(top, np.stack([itf.descriptor(itf.OP_LAYER, 0, 1, 0), d]))
        st = status(top)
        assert st == (itf.STATUS["ST_LIMIT"], itf.status_field(itf.SW_DESC, 1, itf.D_N_ROWS),
                      int(d[itf.D_N_ROWS])), st
        assert np.isnan(top.region("logits")).all()
        lim = bounds.Limits(cfg.n_layers, MAX_T, MAX_CTX, cfg.hidden_size, cfg.q_size, cfg.kv_size,
                            cfg.ffn_size, cfg.head_dim, cfg.vocab_size, bool(cfg.subln), 2, 16, TOP_K,
                            top.ddr.size)
        with pytest.raises(bounds.BoundsError, match="descriptor 0 field D_N_ROWS"):
            bounds.check_program(d[None], top.plan.regions["program"].offset, lim)
    ok = itf.descriptor(itf.OP_HEAD, 0, MAX_T, 0, 0, MAX_T - R, R)
    bounds.check_program(ok[None], top.plan.regions["program"].offset, lim)


# ---- the Session on the emulator bus (the Python model of the top, tests/helpers.py) -----------------

@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("spec_hw") / "p", random_model(TINY, seed=3), max_t=4,
                         max_ctx=48)


def _session(proj: Path) -> Session:
    p, dev = emulator_for(proj)
    return Session(p, dev)


def test_verify_is_one_start(proj: Path) -> None:
    s = _session(proj)
    s.forward(np.array([1, 2, 3]))
    for t in (1, 2, 4):
        starts = s.driver.starts
        rows = s.verify(np.arange(t) + 5)
        assert rows.shape == (t, TINY.vocab_size)
        assert s.driver.starts == starts + 1  # layers and the head over all t rows: one start
        s.rewind(3)
    with pytest.raises(EdgeLLMError, match="verify block of 5 tokens"):
        s.verify(np.arange(5))


def test_verify_argmax_is_the_rows_argmax(proj: Path) -> None:
    """verify_argmax (greedy verification: the LM head's argmax of every row, no logits read) gives
    np.argmax of verify's rows, through one start."""
    s, ref = _session(proj), _session(proj)
    for x in (s, ref):
        x.forward(np.array([1, 2, 3]))
    for t in (1, 3, 4):
        starts = s.driver.starts
        got = s.verify_argmax(np.arange(t) + 5)
        assert s.driver.starts == starts + 1
        assert got == np.argmax(ref.verify(np.arange(t) + 5), axis=1).tolist()
        s.rewind(3), ref.rewind(3)


def test_speculative_greedy_same_text_fewer_starts(proj: Path) -> None:
    """Greedy lookup speculation on the emulator: the same tokens as plain decode, fewer accelerator starts
    than plain decode, and exactly one start per pass (prefill blocks, verify passes, plain steps): no
    per-row head starts."""
    prompt = np.array([7, 8, 9, 10, 7, 8, 9, 10, 7, 8])
    params = SamplingParams(max_new_tokens=24, stop_at_eos=False)
    plain_s = _session(proj)
    plain = generate(plain_s, prompt, params)
    fast_s = _session(proj)

    def no_logits(*_: object) -> None:
        raise AssertionError("greedy speculation read the logits")

    for name in ("read_logits", "read_logits_rows"):  # greedy: every token from the head's argmax rows
        setattr(fast_s.driver, name, no_logits)
    fast = generate(fast_s, prompt, params, speculate=SpecConfig("lookup", k_max=3, ngram_min=1))
    st = fast.speculation
    assert list(fast.tokens) == list(plain.tokens)
    assert st.verify_passes > 0 and st.accepted > 0
    prefill = -(-len(prompt) // 4)
    assert fast_s.driver.starts == prefill + st.verify_passes + st.plain_passes
    assert fast_s.driver.starts < plain_s.driver.starts
    print(f"starts: plain {plain_s.driver.starts}, speculative {fast_s.driver.starts} "
          f"({st.verify_passes} verify, {st.plain_passes} plain, {st.accepted} accepted)")


def test_sampled_lookup_with_top_k_reads_no_logits(proj: Path) -> None:
    """Lookup speculation sampled with a top-k filter within the head's k replays every verify row from its
    top-k (Session.verify_top) and plain steps from forward_top: the same tokens as plain sampled decode
    with the same seed, no logits read."""
    prompt = np.array([7, 8, 9, 10, 7, 8, 9, 10, 7, 8])
    s = _session(proj)
    params = SamplingParams(max_new_tokens=20, stop_at_eos=False, temperature=3.0,
                            top_k=min(4, s.head_top_k), seed=5)
    plain = generate(s, prompt, params).tokens
    fast_s = _session(proj)

    def no_logits(*_: object) -> None:
        raise AssertionError("sampled speculation with top-k read the logits")

    for name in ("read_logits", "read_logits_rows"):
        setattr(fast_s.driver, name, no_logits)
    fast = generate(fast_s, prompt, params, speculate=SpecConfig("lookup", k_max=3, ngram_min=1))
    assert list(fast.tokens) == list(plain) and fast.speculation.verify_passes > 0
    assert len(set(plain)) > 1


def test_all_logits_is_one_start_per_block(proj: Path) -> None:
    """Teacher-forced eval (forward(all_logits=True)) runs each block as a verify pass: 6 tokens in blocks
    of 4 and 2 rows are two starts, every row's logits the golden model's."""
    from edgellm.models.backend import GoldenBackend

    s = _session(proj)
    g = GoldenBackend(random_model(TINY, seed=3), s.project.numerics)  # the project's model (proj)
    ids = np.array([4, 9, 2, 33, 7, 1])
    rows = s.forward(ids, all_logits=True)
    assert s.driver.starts == 2
    want = g.forward(ids, all_logits=True)
    assert np.array_equal(rows.view(np.uint32), np.asarray(want, np.float32).view(np.uint32))
