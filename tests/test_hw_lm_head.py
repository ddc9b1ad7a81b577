"""C simulation of the fabric LM head (hw/include/edgellm/lm_head.h) against models/golden.py lm_head."""

import ctypes

import numpy as np
import pytest
from shared_fixtures import HEAD_SHARES, head_outputs, head_port_copies, head_port_rows, head_topk

from edgellm.hw import csim
from edgellm.models import numerics as nx
from edgellm.models.golden import lm_head as golden_lm_head
from edgellm.models.weights import Int8Head

F32 = np.float32
CI, P = ctypes.c_int, csim.ptr


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lm_head_tb.cpp"], "lm_head_tb")


def _run(lib: ctypes.CDLL, x: np.ndarray, head: Int8Head, k: int, wide: bool = False
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, hidden = x.shape
    vocab = head.w.shape[0]
    logits, am, ti, tv = head_outputs(t, vocab, k)
    w = np.ascontiguousarray(head.w)
    rs = np.ascontiguousarray(head.row_scale, dtype=F32)
    if wide:
        rc = lib.tb_lm_head_wide(P(x), CI(t), P(w), P(rs), CI(vocab), CI(hidden), P(logits), P(am), CI(k),
                                 P(ti), P(tv))
    else:
        rc = lib.tb_lm_head(P(x), CI(t), P(w), P(rs), CI(vocab), CI(hidden), CI(1), P(logits), P(am), CI(k),
                            P(ti), P(tv))
    assert rc == 0
    return logits, am, ti, tv


def _check(x: np.ndarray, head: Int8Head, k: int, out: tuple, tag: str) -> None:
    logits, am, ti, tv = out
    ref = golden_lm_head(x, head)
    m = int((logits.view(np.uint32) != ref.view(np.uint32)).sum())
    am_bad = int((am != np.argmax(ref, axis=1)).sum())
    top_ref = head_topk(ref, k)
    top_bad = int((ti != top_ref).sum())
    tv_bad = int((tv.view(np.uint32) != np.take_along_axis(ref, top_ref, 1).view(np.uint32)).sum())
    print(f"lm_head {tag}: logits {m} bit mismatches, argmax {am_bad}, top-k idx {top_bad}, vals {tv_bad}")
    assert m == 0 and am_bad == 0 and top_bad == 0 and tv_bad == 0


@pytest.mark.parametrize("vocab,hidden,t,k", [(1000, 256, 1, 64), (517, 100, 5, 10), (300, 2560, 9, 1),
                                              (70, 4096, 2, 64)])
def test_lm_head_random(lib: ctypes.CDLL, vocab: int, hidden: int, t: int, k: int) -> None:
    rng = np.random.default_rng(vocab + hidden)
    head = Int8Head.quantize(rng.standard_normal((vocab, hidden)).astype(F32))
    x = (rng.standard_normal((t, hidden)) * 2).astype(F32)
    _check(x, head, k, _run(lib, x, head, k), f"v={vocab} h={hidden} t={t} k={k}")


def test_lm_head_wide_port(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(1)
    head = Int8Head.quantize(rng.standard_normal((333, 512)).astype(F32))
    x = rng.standard_normal((3, 512)).astype(F32)
    _check(x, head, 20, _run(lib, x, head, 20, wide=True), "wide port")


def test_lm_head_extremes_and_ties(lib: ctypes.CDLL) -> None:
    """Saturated int8 (all -128 / +127), zero rows and duplicated rows (exact ties in logits)."""
    hidden, vocab = 4096, 96
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (vocab, hidden)).astype(np.int8)
    w[0] = -128
    w[1] = 127
    w[2] = 0
    w[10:40] = w[5]  # 31 identical rows -> identical logits
    rs = rng.uniform(0.001, 0.01, vocab).astype(F32)
    rs[10:40] = rs[5]
    head = Int8Head(w, rs)
    x = np.stack([np.full(hidden, -3.0), np.full(hidden, 2.0), np.zeros(hidden),
                  rng.standard_normal(hidden)]).astype(F32)
    x[3, ::2] = -x[3, 1::2]
    _check(x, head, 64, _run(lib, x, head, 64), "extremes/ties")
    acc = nx.quantize(x)[0][:1].astype(np.int64) @ w[:1].astype(np.int64).T
    assert acc[0, 0] == 127 * 128 * hidden  # quantize never yields -128: the widest value here


def test_topk_network_ties(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(3)
    for case in range(4):
        n = [10, 200, 1000, 64][case]
        logits = rng.integers(-5, 5, n).astype(F32) * F32(0.5)  # many exact ties
        if case == 3:
            logits[:] = 0.0
            logits[::3] = -0.0  # -0.0 == 0.0: a tie, ordered by index
        k = [10, 64, 33, 64][case]
        am = np.zeros(1, np.int32)
        ti = np.zeros(k, np.int32)
        tv = np.zeros(k, F32)
        lib.tb_topk(P(logits), CI(n), CI(k), P(am), P(ti), P(tv))
        assert am[0] == np.argmax(logits)
        assert np.array_equal(ti, head_topk(logits[None], k)[0])


def test_vocab_smaller_than_k(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(4)
    head = Int8Head.quantize(rng.standard_normal((5, 64)).astype(F32))
    x = rng.standard_normal((1, 64)).astype(F32)
    logits, am, ti, tv = _run(lib, x, head, 8)
    assert ti[0, 5:].tolist() == [-1, -1, -1] and (tv[0, 5:] == 0).all()
    assert np.array_equal(ti[0, :5], head_topk(golden_lm_head(x, head), 5)[0])


# ---- several weight ports: port p reads rows v with v % nports == p (equal shares), or its share of every
# cycle of rows (configurations 49: 4 ports 9:7:7:9, 31: 2 ports 3:1, 213: 3 ports 2:1:3; HEAD_SHARES) -----

SHARED = [1, 2, 4, 49, 31, 213]  # head configurations (HEAD_SHARES ids)

def _run_ports(lib: ctypes.CDLL, nports: int, x: np.ndarray, head: Int8Head, k: int, copies: list[np.ndarray],
               wide: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, hidden = x.shape
    vocab = head.w.shape[0]
    logits, am, ti, tv = head_outputs(t, vocab, k)
    rs = np.ascontiguousarray(head.row_scale, dtype=F32)
    ws = [P(c) for c in copies]
    if wide:
        assert nports == 4
        rc = lib.tb_lm_head_wide4(P(x), CI(t), *ws, P(rs), CI(vocab), CI(hidden), P(logits), P(am), CI(k),
                                  P(ti), P(tv))
    else:
        rc = lib.tb_lm_head_ports(CI(nports), P(x), CI(t), *ws, P(rs), CI(vocab), CI(hidden), P(logits),
                                  P(am), CI(k), P(ti), P(tv))
    assert rc == 0
    return logits, am, ti, tv


@pytest.mark.parametrize("nports", SHARED)
@pytest.mark.parametrize("vocab,hidden,t,k", [(1001, 256, 1, 64), (517, 100, 5, 10), (3, 64, 2, 3)])
def test_lm_head_ports_each_reads_its_rows(lib: ctypes.CDLL, nports: int, vocab: int, hidden: int, t: int,
                                           k: int) -> None:
    """Bit-exact with each port reading a copy in which every other port's rows are garbage
    (vocab 1001 / 517 / 3: the last block or cycle is partial; 3 rows: some ports read nothing)."""
    rng = np.random.default_rng(vocab * nports + hidden)
    head = Int8Head.quantize(rng.standard_normal((vocab, hidden)).astype(F32))
    x = (rng.standard_normal((t, hidden)) * 2).astype(F32)
    copies = head_port_copies(head.w, nports, vocab + t)
    out = _run_ports(lib, nports, x, head, k, copies)
    _check(x, head, k, out, f"{nports} ports v={vocab} h={hidden} t={t}")


def test_lm_head_ports_wide(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(6)
    head = Int8Head.quantize(rng.standard_normal((259, 512)).astype(F32))
    x = rng.standard_normal((2, 512)).astype(F32)
    copies = head_port_copies(head.w, 4, 9)
    _check(x, head, 16, _run_ports(lib, 4, x, head, 16, copies, wide=True), "4 wide ports")


@pytest.mark.parametrize("nports", [2, 4, 49])
def test_every_head_port_carries_its_rows(lib: ctypes.CDLL, nports: int) -> None:
    """The poisoned comparison can fail: garbage in one port's own rows, or two ports swapped, changes
    the logits (so every port's rows really come through that port)."""
    rng = np.random.default_rng(nports)
    head = Int8Head.quantize(rng.standard_normal((200, 128)).astype(F32))
    x = rng.standard_normal((1, 128)).astype(F32)
    ref = golden_lm_head(x, head)
    rows = head_port_rows(200, nports)
    for p in range(len(HEAD_SHARES[nports])):
        copies = head_port_copies(head.w, nports, p)
        copies[p][rows[p]] = rng.integers(-128, 128, copies[p][rows[p]].shape).astype(np.int8)
        logits = _run_ports(lib, nports, x, head, 4, copies)[0]
        assert (logits != ref).any(), f"port {p} of {nports}: its rows are not read through it"
    copies = head_port_copies(head.w, nports, 1)
    copies[0], copies[1] = copies[1], copies[0]
    assert (_run_ports(lib, nports, x, head, 4, copies)[0] != ref).any()


# ---- the streaming region: dot process -> (block, token, NP accumulators) FIFO -> scoring process -----

@pytest.mark.parametrize("nports", SHARED)
@pytest.mark.parametrize("vocab,hidden,t", [(103, 100, 3), (9, 48, 4), (2, 16, 1)])
def test_dot_process_packets(lib: ctypes.CDLL, nports: int, vocab: int, hidden: int, t: int) -> None:
    """The dot process alone: one packet per (block, token), block-major, tokens in order within a block
    (blocks: packing.head_block_rows's, whole cycles of rounds), accumulators exactly q @ W.T (int64
    reference), every row of the vocabulary covered once."""
    rng = np.random.default_rng(100 * nports + vocab)
    w = rng.integers(-128, 128, (vocab, hidden)).astype(np.int8)
    x = (rng.standard_normal((t, hidden)) * 2).astype(F32)
    copies = head_port_copies(w, nports, vocab)
    shares = HEAD_SHARES[nports]
    nblk = -(-vocab // sum(shares)) * max(shares)
    acc = np.full((t, vocab), -(2**31), np.int32)  # sentinel: a row never written stays at INT32_MIN
    order = np.full((nblk * t, 2), -1, np.int32)
    n = lib.tb_lm_dot(CI(nports), P(x), CI(t), *[P(c) for c in copies], CI(vocab), CI(hidden), P(acc),
                      P(order), CI(nblk * t))
    assert n == nblk * t
    want = [(b, k) for b in range(nblk) for k in range(t)]
    assert [tuple(r) for r in order.tolist()] == want
    q = nx.quantize(x)[0].astype(np.int64)  # (t, hidden)
    ref = q @ w.astype(np.int64).T  # (t, vocab)
    assert np.array_equal(acc.astype(np.int64), ref)


def _run_score(lib: ctypes.CDLL, nports: int, acc: np.ndarray, qs: np.ndarray, rs: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, vocab = acc.shape
    logits, am, ti, tv = head_outputs(t, vocab, k)
    rc = lib.tb_lm_score(CI(nports), P(np.ascontiguousarray(acc, np.int32)), P(qs), CI(t), P(rs), CI(vocab),
                         P(logits), P(am), CI(k), P(ti), P(tv))
    assert rc == 0
    return logits, am, ti, tv


@pytest.mark.parametrize("nports", SHARED)
@pytest.mark.parametrize("vocab,t,k", [(101, 4, 64), (7, 3, 5), (130, 1, 64)])
def test_score_process_ties_across_blocks(lib: ctypes.CDLL, nports: int, vocab: int, t: int, k: int) -> None:
    """The scoring process alone on accumulators with exact ties spread over many blocks (vocab not a
    multiple of nports, more tied rows than top-k slots): logits bit-exact with ((f32)acc / qs) * rs,
    argmax and top-k as np.argmax / a stable descending sort."""
    rng = np.random.default_rng(vocab * 10 + nports)
    acc = rng.integers(-3, 4, (t, vocab)).astype(np.int32)  # (t, vocab): 7 values -> ties in every block
    acc[0, 1::3] = 3  # token 0: the top value in a third of the rows (> 64 tied for vocab 130)
    qs = rng.uniform(0.5, 2.0, t).astype(F32)
    rs = np.full(vocab, F32(0.01), F32)
    logits, am, ti, tv = _run_score(lib, nports, acc, qs, rs, k)
    ref = (acc.astype(F32) / qs[:, None]) * rs[None, :]
    assert ref.dtype == F32
    assert np.array_equal(logits.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(am, np.argmax(ref, axis=1))
    kk = min(k, vocab)
    top = head_topk(ref, kk)
    assert np.array_equal(ti[:, :kk], top)
    assert np.array_equal(tv[:, :kk].view(np.uint32), np.take_along_axis(ref, top, 1).view(np.uint32))
    assert (ti[:, kk:] == -1).all() and (tv[:, kk:] == 0).all()


@pytest.mark.parametrize("nports", SHARED)
def test_lm_head_ties_across_blocks_multi_token(lib: ctypes.CDLL, nports: int) -> None:
    """Whole head, vocab 203 (not a multiple of 2 or 4), 6 tokens (two MAX_TOK=4 blocks of tokens), 70
    identical rows spread over the vocabulary (ties across blocks and ports, more than the 64 top-k
    slots), the largest logit of token 0 also tied with the last row of the partial last block."""
    vocab, hidden, t, k = 203, 96, 6, 64
    rng = np.random.default_rng(11 + nports)
    x = rng.standard_normal((t, hidden)).astype(F32)
    w = rng.integers(-60, 61, (vocab, hidden)).astype(np.int8)
    rs = rng.uniform(0.001, 0.01, vocab).astype(F32)
    tied = np.sort(rng.choice(vocab - 1, 69, replace=False))
    tied = np.append(tied, vocab - 1)  # (70,) row indices, the last row included
    w[tied] = np.where(x[0] >= 0, 127, -127).astype(np.int8)  # token 0's best possible row
    rs[tied] = F32(0.02)
    head = Int8Head(w, rs)
    copies = head_port_copies(head.w, nports, 5)
    out = _run_ports(lib, nports, x, head, k, copies)
    _check(x, head, k, out, f"ties across blocks, {nports} ports")
    assert out[1][0] == tied[0] and out[2][0].tolist() == tied[:k].tolist()


def test_scoring_is_a_pipelined_process() -> None:
    """lm_head*.h structure: the scoring (topk_insert) lives in the pipelined row loop of the scoring
    process, which runs beside the dot process in a DATAFLOW region joined by the packet stream. The dot
    process is LmDots: the banked lm_dot_blocks from memory, lm_dot_fifo (one pipelined loop) from the
    top's head FIFOs."""
    # the head's headers (lm_head.h and the lm_head_*.h it includes), one text
    src = "\n".join(h.read_text() for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("lm_head*.h")))
    region = src[src.index("void lm_head_stream("):]
    region = region[:region.index("\n}\n")]
    assert "#pragma HLS DATAFLOW" in region and "LmDots<CFG, WT>::run(" in region
    assert "lm_score<CFG>(" in region
    fifo = src[src.index("lm_dot_fifo_loop:"):]
    fifo = fifo[:fifo.index("\n}\n")]
    assert "#pragma HLS PIPELINE II = 1" in fifo
    assert fifo.count("for (") == 3  # the loop + 2 unrolled over the ports
    assert fifo.count("#pragma HLS UNROLL") == 2
    rows = src[src.index("lm_score_rows:"):]
    rows = rows[:rows.index("\nlm_out:")]
    assert "#pragma HLS PIPELINE II = 1" in rows and "topk_insert<K>(" in rows
    assert src.count("topk_insert<K>(") == 1  # nowhere else
