"""C simulation of the multi-row LM head (lm_head.h lm_dot_rows: token lanes from the head FIFOs, issue 18)
against models/golden.py lm_head and the single-row head the top builds (lm_dot_fifo), row by row.

The testbench (hw/tb/lm_head_rows_tb.cpp) runs the fetchers (weight_fetch.h lm_fetch_rows, port p reading
its own copy of the head in which the other ports' rows are garbage) and the head as one DATAFLOW region
over FIFOs of the top's depth, sequentially and threaded (bounded FIFOs, deadlocks detected)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from shared_fixtures import head_outputs, head_port_copies, head_port_rows, head_topk

from edgellm.hw import csim
from edgellm.models.golden import lm_head as golden_lm_head
from edgellm.models.weights import Int8Head
from edgellm.runtime import layout

F32 = np.float32
CI, P = ctypes.c_int, csim.ptr
KMAX = layout.HEAD_ROWS_MAX


def _load(threads: bool) -> ctypes.CDLL:
    lib = csim.load([csim.TB_DIR / "lm_head_rows_tb.cpp"], "lm_head_rows_tb", threads=threads)
    lib.tb_beats.restype = ctypes.c_long
    lib.tb_left.restype = ctypes.c_long
    lib.tb_deadlocks.restype = ctypes.c_longlong
    return lib


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return _load(False)


def _run(lib: ctypes.CDLL, rows: int, nports: int, x: np.ndarray, head: Int8Head, k: int,
         copies: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    t, hidden = x.shape
    vocab = head.w.shape[0]
    logits, am, ti, tv = head_outputs(t, vocab, k)
    rs = np.ascontiguousarray(head.row_scale, dtype=F32)
    x = np.ascontiguousarray(x, F32)
    rc = lib.tb_lm_head_rows(CI(rows), CI(nports), P(x), CI(t), *[P(c) for c in copies], P(rs), CI(vocab),
                             CI(hidden), P(logits), P(am), CI(k), P(ti), P(tv))
    assert rc == 0
    assert lib.tb_left() == 0, "the head left fetched beats in its FIFOs"
    return logits, am, ti, tv, [lib.tb_beats(CI(p)) for p in range(4)]


def _check_golden(x: np.ndarray, head: Int8Head, k: int, out: tuple, tag: str) -> None:
    logits, am, ti, tv = out[:4]
    ref = golden_lm_head(x, head)
    top = head_topk(ref, min(k, ref.shape[1]))
    kk = top.shape[1]
    bad = {"logits": int((logits.view(np.uint32) != ref.view(np.uint32)).sum()),
           "argmax": int((am != np.argmax(ref, axis=1)).sum()),
           "top idx": int((ti[:, :kk] != top).sum()),
           "top val": int((tv[:, :kk].view(np.uint32)
                           != np.take_along_axis(ref, top, 1).view(np.uint32)).sum())}
    print(f"multi-row head {tag}: {bad}")
    assert not any(bad.values())
    assert (ti[:, kk:] == -1).all() and (tv[:, kk:] == 0).all()


def _case(seed: int, vocab: int, hidden: int, t: int) -> tuple[Int8Head, np.ndarray]:
    rng = np.random.default_rng(seed)
    head = Int8Head.quantize(rng.standard_normal((vocab, hidden)).astype(F32))
    x = (rng.standard_normal((t, hidden)) * 2).astype(F32)
    return head, x


def test_kmax_is_the_layout_fact(lib: ctypes.CDLL) -> None:
    assert lib.tb_head_rows_max() == KMAX >= 2


@pytest.mark.parametrize("nports", [1, 2, 4, 49, 213])  # 49: 9:7:7:9 over 4 ports, 213: 2:1:3 (HEAD_SHARES)
@pytest.mark.parametrize("vocab,hidden,t,k", [(1001, 256, KMAX, 64), (517, 96, 5, 10), (3, 64, 2, 3),
                                              (203, 160, 1, 8)])
def test_rows_bit_exact_golden_and_single_row(lib: ctypes.CDLL, nports: int, vocab: int, hidden: int, t: int,
                                              k: int) -> None:
    """Every row's logits, argmax and top-K equal golden's and the single-row head's (one row a pass) bit
    for bit; the rows are fetched once for all t rows (each port pushes its rows' beats once), the
    single-row head fetches them t times."""
    head, x = _case(vocab * nports + hidden + t, vocab, hidden, t)
    copies = head_port_copies(head.w, nports, vocab + t)
    multi = _run(lib, KMAX, nports, x, head, k, copies)
    _check_golden(x, head, k, multi, f"{nports} ports v={vocab} h={hidden} t={t} k={k}")
    single = _run(lib, 1, nports, x, head, k, copies)
    for a, b in zip(multi[:4], single[:4], strict=True):
        assert np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
    nbeats = hidden // 16
    rows = head_port_rows(vocab, nports)
    once = [len(rows[p]) * nbeats if p < len(rows) else 0 for p in range(4)]
    assert multi[4] == once
    assert single[4] == [t * n for n in once]


def test_more_rows_than_lanes_take_more_passes(lib: ctypes.CDLL) -> None:
    """A head with 3 token lanes given 7 rows: three passes (ceil(7 / 3)), each fetching the rows once, and
    still bit-exact per row (the partial last pass of one row included)."""
    vocab, hidden, t, k = 301, 128, 7, 16
    head, x = _case(5, vocab, hidden, t)
    copies = head_port_copies(head.w, 2, 6)
    out = _run(lib, 3, 2, x, head, k, copies)
    _check_golden(x, head, k, out, "3 lanes, 7 rows")
    assert out[4][:2] == [3 * len(range(p, vocab, 2)) * (hidden // 16) for p in range(2)]


def test_ties_across_blocks_and_rows(lib: ctypes.CDLL) -> None:
    """70 identical rows spread over the vocabulary (ties across blocks and ports, more than 64 top-k
    slots) for KMAX rows, two of them equal (their results must be equal too): argmax and top-K by lowest
    index, as golden and the sampler order them."""
    vocab, hidden, k = 203, 96, 64
    rng = np.random.default_rng(11)
    x = rng.standard_normal((KMAX, hidden)).astype(F32)
    x[3] = x[0]
    w = rng.integers(-60, 61, (vocab, hidden)).astype(np.int8)
    rs = rng.uniform(0.001, 0.01, vocab).astype(F32)
    tied = np.append(np.sort(rng.choice(vocab - 1, 69, replace=False)), vocab - 1)
    w[tied] = np.where(x[0] >= 0, 127, -127).astype(np.int8)
    rs[tied] = F32(0.02)
    head = Int8Head(w, rs)
    out = _run(lib, KMAX, 4, x, head, k, head_port_copies(w, 4, 5))
    _check_golden(x, head, k, out, "ties")
    assert out[1][0] == tied[0] and out[2][0].tolist() == tied[:k].tolist()
    assert out[2][3].tolist() == out[2][0].tolist()


def test_a_wrong_row_is_seen(lib: ctypes.CDLL) -> None:
    """The comparison can fail: garbage in port 1's own rows changes the logits of every row."""
    head, x = _case(9, 64, 64, 4)
    copies = head_port_copies(head.w, 2, 1)
    copies[1][1::2] = np.random.default_rng(2).integers(-128, 128, copies[1][1::2].shape).astype(np.int8)
    logits = _run(lib, KMAX, 2, x, head, 4, copies)[0]
    ref = golden_lm_head(x, head)
    assert all((logits[r] != ref[r]).any() for r in range(4))


def test_threaded_fifos_of_the_tops_depth() -> None:
    """Threaded C simulation: fetchers, lane dots, unpacking and scoring run concurrently over bounded FIFOs
    (the head FIFOs at the top's HEAD_FIFO_DEPTH): no deadlock, same bits (49: 9:7:7:9 shares, the faster
    ports running ahead through the cycle's last rounds)."""
    lib = _load(True)
    for nports, vocab, hidden, t in [(4, 259, 512, KMAX), (1, 77, 64, 3), (2, 10, 32, 6), (49, 301, 256, 2)]:
        head, x = _case(nports + vocab, vocab, hidden, t)
        out = _run(lib, KMAX, nports, x, head, 8, head_port_copies(head.w, nports, 3))
        _check_golden(x, head, 8, out, f"threaded {nports} ports t={t}")
    assert lib.tb_deadlocks() == 0


def test_token_lanes_structure() -> None:
    """lm_head*.h: the lane dot loop pops each port once per iteration at II 1 and dots the beat with every
    row in unrolled lanes; from the FIFOs with MAX_TOK > 1 LmDots runs lm_dot_rows (not the banks)."""
    # the head's headers (lm_head.h and the lm_head_*.h it includes), one text
    src = "\n".join(h.read_text() for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("lm_head*.h")))
    loop = src[src.index("lm_dot_lanes_loop:"):]
    loop = loop[:loop.index("\n}\n")]
    assert "#pragma HLS PIPELINE II = 1" in loop
    assert loop.count("lm_pop_block_beats<CFG>(s0, s1, s2, s3,") == 1  # one pop of every port per iteration
    pop = src[src.index("inline void lm_pop_block_beats("):]
    pop = pop[:pop.index("\n}\n")]
    for p in range(4):
        assert pop.count(f"s{p}->read()") == 1
    assert loop.count("lanes.write(") == 1
    spec = src[src.index("struct LmDots<CFG, hls::stream<W> >"):]
    spec = spec[:spec.index("\n};\n")]
    assert "lm_dot_rows<CFG>(" in spec and "lm_dot_blocks" not in spec
