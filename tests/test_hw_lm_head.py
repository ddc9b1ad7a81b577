"""C simulation of the fabric LM head (hw/include/edgellm/lm_head.h) against models/golden.py lm_head."""

import ctypes

import numpy as np
import pytest

from edgellm.hw import csim
from edgellm.models import numerics as nx
from edgellm.models.golden import lm_head as golden_lm_head
from edgellm.models.weights import Int8Head

F32 = np.float32
CI, P = ctypes.c_int, csim.ptr


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lm_head_tb.cpp"], "lm_head_tb")


def _ref_topk(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits per row, descending, ties by lower index."""
    v = logits.shape[-1]
    order = np.stack([np.lexsort((np.arange(v), -row)) for row in logits])
    return order[:, :k]


def _run(lib: ctypes.CDLL, x: np.ndarray, head: Int8Head, k: int, wide: bool = False
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, hidden = x.shape
    vocab = head.w.shape[0]
    logits = np.full((t, vocab), np.nan, F32)
    am = np.full(t, -7, np.int32)
    ti = np.full((t, k), -7, np.int32)
    tv = np.full((t, k), np.nan, F32)
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
    top_ref = _ref_topk(ref, k)
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
        assert np.array_equal(ti, _ref_topk(logits[None], k)[0])


def test_vocab_smaller_than_k(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(4)
    head = Int8Head.quantize(rng.standard_normal((5, 64)).astype(F32))
    x = rng.standard_normal((1, 64)).astype(F32)
    logits, am, ti, tv = _run(lib, x, head, 8)
    assert ti[0, 5:].tolist() == [-1, -1, -1] and (tv[0, 5:] == 0).all()
    assert np.array_equal(ti[0, :5], _ref_topk(golden_lm_head(x, head), 5)[0])


# ---- several weight ports: port p reads rows v with v % nports == p --------------------------------

def _port_copies(w: np.ndarray, nports: int, seed: int) -> list[np.ndarray]:
    """Four head copies (one per pointer): copy p holds only the rows port p reads (v % nports == p),
    every other byte is random garbage; pointers beyond nports get all-garbage copies."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(4):
        c = rng.integers(-128, 128, w.shape).astype(np.int8)
        if p < nports:
            c[p::nports] = w[p::nports]
        out.append(np.ascontiguousarray(c))
    return out


def _run_ports(lib: ctypes.CDLL, nports: int, x: np.ndarray, head: Int8Head, k: int, copies: list[np.ndarray],
               wide: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, hidden = x.shape
    vocab = head.w.shape[0]
    logits = np.full((t, vocab), np.nan, F32)
    am = np.full(t, -7, np.int32)
    ti = np.full((t, k), -7, np.int32)
    tv = np.full((t, k), np.nan, F32)
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


@pytest.mark.parametrize("nports", [1, 2, 4])
@pytest.mark.parametrize("vocab,hidden,t,k", [(1001, 256, 1, 64), (517, 100, 5, 10), (3, 64, 2, 3)])
def test_lm_head_ports_each_reads_its_rows(lib: ctypes.CDLL, nports: int, vocab: int, hidden: int, t: int,
                                           k: int) -> None:
    """Bit-exact with each port reading a copy in which every other port's rows are garbage
    (vocab 1001 / 517 / 3: the last block is partial; 3 < 4 ports: some ports read nothing)."""
    rng = np.random.default_rng(vocab * nports + hidden)
    head = Int8Head.quantize(rng.standard_normal((vocab, hidden)).astype(F32))
    x = (rng.standard_normal((t, hidden)) * 2).astype(F32)
    copies = _port_copies(head.w, nports, vocab + t)
    out = _run_ports(lib, nports, x, head, k, copies)
    _check(x, head, k, out, f"{nports} ports v={vocab} h={hidden} t={t}")


def test_lm_head_ports_wide(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(6)
    head = Int8Head.quantize(rng.standard_normal((259, 512)).astype(F32))
    x = rng.standard_normal((2, 512)).astype(F32)
    copies = _port_copies(head.w, 4, 9)
    _check(x, head, 16, _run_ports(lib, 4, x, head, 16, copies, wide=True), "4 wide ports")


@pytest.mark.parametrize("nports", [2, 4])
def test_every_head_port_carries_its_rows(lib: ctypes.CDLL, nports: int) -> None:
    """The poisoned comparison can fail: garbage in one port's own rows, or two ports swapped, changes
    the logits (so every port's rows really come through that port)."""
    rng = np.random.default_rng(nports)
    head = Int8Head.quantize(rng.standard_normal((200, 128)).astype(F32))
    x = rng.standard_normal((1, 128)).astype(F32)
    ref = golden_lm_head(x, head)
    for p in range(nports):
        copies = _port_copies(head.w, nports, p)
        copies[p][p::nports] = rng.integers(-128, 128, copies[p][p::nports].shape).astype(np.int8)
        logits = _run_ports(lib, nports, x, head, 4, copies)[0]
        assert (logits != ref).any(), f"port {p} of {nports}: its rows are not read through it"
    copies = _port_copies(head.w, nports, 1)
    copies[0], copies[1] = copies[1], copies[0]
    assert (_run_ports(lib, nports, x, head, 4, copies)[0] != ref).any()
