"""Weight format (compiler/packing.py) and the TLMM engine (hw/include/edgellm/tlmm.h) in C simulation.

Integer outputs must equal numpy's exact int matmul; float outputs must equal
models.numerics.dequantize(models.numerics.int_matmul(...)) bit for bit.
"""

import ctypes
import math

import numpy as np
import pytest

from edgellm.compiler import packing
from edgellm.compiler.cost import tlmm as cost_tlmm
from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32
CI, F, P = ctypes.c_int, ctypes.c_float, csim.ptr
R_OF = {"a": 16, "b": 8, "g2": 4, "g4": 8,  # rows per tile of the testbench configs (hw/tb/tlmm_tb.cpp)
        "l1": 16, "l2": 8, "l3": 4, "l4": 8, "l5": 16,
        "d1": 16, "d2": 8, "d3": 4, "d4": 8, "d5": 5, "d6": 3, "d7": 16}
GUARD = 64  # output elements either side of y that the engine must never write


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "tlmm_tb.cpp"], "tlmm_tb")


def _tern(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.integers(-1, 2, (n, k)).astype(np.int8)


def _x(rng: np.random.Generator, t: int, k: int) -> np.ndarray:
    return rng.integers(-128, 128, (t, k)).astype(np.int8)


def _guarded(t: int, n: int, dtype: type, fill: object) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, its [t, n] view at offset GUARD): GUARD untouchable elements either side."""
    buf = np.full(t * n + 2 * GUARD, fill, dtype)
    return buf, buf[GUARD:GUARD + t * n]


def _check_guards(buf: np.ndarray, fill: object) -> None:
    """No write outside y (masked token lanes, padding rows of a tail tile, phases past the end)."""
    edge = np.r_[buf[:GUARD], buf[-GUARD:]]
    assert (edge.view(np.uint32) == np.array([fill], buf.dtype).view(np.uint32)[0]).all(), "write outside y"


def _run_int(lib: ctypes.CDLL, cfg: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    (t, k), n = x.shape, w.shape[0]
    img = packing.pack_ternary(w, R_OF[cfg])
    buf, acc = _guarded(t, n, np.int32, 0x5A5A5A5A)
    getattr(lib, f"tb_tlmm_{cfg}_int")(P(np.ascontiguousarray(x)), CI(t), P(img), CI(n), CI(k), P(acc))
    _check_guards(buf, 0x5A5A5A5A)
    return acc.reshape(t, n)


def _run_f32(lib: ctypes.CDLL, cfg: str, x: np.ndarray, qs: np.ndarray, w: np.ndarray, ws: F32) -> np.ndarray:
    (t, k), n = x.shape, w.shape[0]
    img = packing.pack_ternary(w, R_OF[cfg])
    buf, y = _guarded(t, n, F32, np.nan)
    getattr(lib, f"tb_tlmm_{cfg}")(P(x), P(qs), CI(t), P(img), CI(n), CI(k), F(ws), P(y))
    _check_guards(buf, np.nan)
    return y.reshape(t, n)


# ---- weight format ---------------------------------------------------------------------------

@pytest.mark.parametrize("n,k,r", [(1, 1, 1), (37, 100, 16), (16, 2560, 16), (5, 7, 8), (64, 6912, 32),
                                   (21, 688, 8), (3, 16384, 16), (100, 15, 7)])
def test_pack_round_trip(n: int, k: int, r: int) -> None:
    w = _tern(np.random.default_rng(n * k), n, k)
    img = packing.pack_ternary(w, r)
    assert img.dtype == np.uint8 and img.size == packing.packed_size(n, k, r)
    assert img.size % r == 0
    assert np.array_equal(packing.unpack_ternary(img, n, k, r), w)
    assert img[:n * packing.row_bytes(k)].max() <= 242


def test_layout_offsets_match_the_documented_formula() -> None:
    n, k, r = 11, 23, 4  # 2 full tiles + a tail tile of 3 rows; 5 bytes per row (2 pad trits)
    w = _tern(np.random.default_rng(5), n, k)
    img = packing.pack_ternary(w, r)
    nb = packing.row_bytes(k)
    codes = np.ones((n, nb * 5), np.int64)
    codes[:, :k] = w + 1
    for row in range(n):
        t, rr = divmod(row, r)
        rt = min(r, n - t * r)
        for b in range(nb):
            want = sum(int(codes[row, 5 * b + i]) * 3 ** i for i in range(5))
            assert img[t * r * nb + b * rt + rr] == want


def test_bits_per_weight() -> None:
    shapes = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912), (4096, 1536), (8640, 3200),
              (14336, 4096), (256, 256), (16, 257), (48, 16384), (17, 300)]
    for n, k in shapes:
        for r in (8, 16, 32):
            bpw = packing.bits_per_weight(n, k, r)
            assert bpw == 8 * packing.packed_size(n, k, r) / (n * k)
            if k >= 256 and n >= r:
                assert 1.6 <= bpw <= 1.7, (n, k, r, bpw)
    print("bits/weight (R=16):", {f"{n}x{k}": round(packing.bits_per_weight(n, k, 16), 4) for n, k in shapes})
    assert packing.bits_per_weight(2560, 2560, 16) == 1.6
    assert packing.bits_per_weight(2560, 6912, 16) == pytest.approx(1.60069, abs=1e-5)


def test_pack_rejects_bad_input() -> None:
    with pytest.raises(EdgeLLMError):
        packing.pack_ternary(np.full((2, 5), 2, np.int8), 4)
    with pytest.raises(EdgeLLMError):
        packing.pack_ternary(np.zeros(5, np.int8), 4)
    with pytest.raises(EdgeLLMError):
        packing.packed_size(4, 5, 4, align=6)
    with pytest.raises(EdgeLLMError):
        packing.unpack_ternary(np.zeros(3, np.uint8), 4, 5, 4)


def test_decode_all_bytes_matches_python(lib: ctypes.CDLL) -> None:
    b = np.arange(256, dtype=np.uint8)
    trits = np.empty((256, 5), np.int8)
    lib.tb_decode_bytes(P(b), CI(256), P(trits))
    ref = packing.unpack_ternary(b, 256, 5, 1)
    assert np.array_equal(trits, ref)


def test_group_indices(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(2)
    w = _tern(rng, 1, 15 * 200)
    img = packing.pack_ternary(w, 1)
    idx = np.empty(1000, np.int32)
    lib.tb_chunk_indices3(P(img), CI(200), P(idx))
    c = (w[0] + 1).astype(np.int32).reshape(-1, 3)
    assert np.array_equal(idx, 9 * c[:, 0] + 3 * c[:, 1] + c[:, 2])
    zero = packing.pack_ternary(np.zeros((1, 15), np.int8), 1)
    lib.tb_chunk_indices3(P(zero), CI(1), P(idx))
    assert (idx[:5] == 13).all()


# ---- TLMM engine -------------------------------------------------------------------------------

def test_accumulator_widths(lib: ctypes.CDLL) -> None:
    out = np.empty(4, np.int32)
    lib.tb_tlmm_widths(P(out))
    # G=3: |entry| <= 384 -> 10 bits; T=5: 1920 -> 12 bits; K_MAX=16384: 2^21 -> 23 bits; 8192 -> 22
    assert out.tolist() == [10, 12, 23, 22]


SHAPES = [  # (cfg, n_out, k, n_tok)
    ("a", 40, 100, 1), ("a", 32, 2560, 1), ("a", 37, 2560, 3), ("a", 16, 6912, 1), ("a", 9, 688, 16),
    ("a", 33, 16384, 2), ("a", 48, 301, 17), ("a", 20, 2560, 128),
    ("b", 24, 688, 128), ("b", 13, 100, 130), ("b", 8, 2560, 16), ("b", 3, 8192, 1),
    ("g2", 13, 301, 3), ("g2", 16, 2560, 2), ("g4", 19, 299, 5), ("g4", 24, 2560, 1),
]


LANE_CFG = {  # name -> (R, TP, OL, MAX_TOK, CPC); hw/tb/tlmm_tb.cpp
    "a": (16, 1, 1, 16, 1), "l1": (16, 2, 4, 8, 1), "l2": (8, 4, 16, 12, 2), "l3": (4, 4, 1, 8, 1),
    "l4": (8, 2, 16, 4, 1), "l5": (16, 1, 16, 16, 1),
    # DSP token lanes: a DSP lane is just another token lane, so the same loop bounds
    "d1": (16, 2, 4, 8, 1), "d2": (8, 3, 8, 12, 2), "d3": (4, 2, 1, 8, 1), "d4": (8, 2, 16, 4, 1),
    "d5": (5, 2, 2, 8, 1), "d6": (3, 4, 4, 8, 3), "d7": (16, 2, 8, 4, 5)}
DSP_CFG = {  # name -> (G, T, DL, K_MAX); the last DL of the TP token lanes are DSP lanes (tlmm.h)
    "d1": (3, 5, 1, 16384), "d2": (3, 10, 2, 4096), "d3": (2, 5, 1, 4096), "d4": (4, 5, 1, 4096),
    "d5": (3, 5, 1, 4096), "d6": (3, 15, 3, 4096), "d7": (4, 25, 1, 8192)}
# n_tok in {1, 2, 3, 5, 17} (17 spans several token blocks), k not a multiple of G*T, most n_out not of R
LANE_SHAPES = [  # (cfg, n_out, k, n_tok)
    ("l1", 37, 301, 5), ("l1", 21, 1000, 17), ("l1", 16, 77, 1), ("l1", 40, 2560, 3),
    ("l2", 13, 301, 17), ("l2", 24, 688, 5), ("l2", 9, 29, 2), ("l2", 3, 1000, 3),
    ("l3", 13, 301, 3), ("l3", 7, 51, 17), ("l3", 18, 1001, 5), ("l3", 5, 11, 1),
    ("l4", 19, 299, 5), ("l4", 8, 2561, 2), ("l4", 11, 21, 17), ("l4", 17, 333, 1),
    ("l5", 45, 1000, 3), ("l5", 33, 4001, 2), ("l5", 20, 95, 17),
]
# DSP lanes: partial last token groups, several token blocks, tail tiles, n_out < R, odd R (d5, d6)
DSP_SHAPES = [  # (cfg, n_out, k, n_tok)
    ("d1", 37, 301, 5), ("d1", 21, 1000, 17), ("d1", 16, 77, 1), ("d1", 40, 2560, 4),
    ("d2", 13, 301, 17), ("d2", 24, 688, 5), ("d2", 9, 29, 2), ("d2", 3, 1000, 13),
    ("d3", 13, 301, 3), ("d3", 7, 51, 17), ("d3", 18, 1001, 6),
    ("d4", 19, 299, 5), ("d4", 8, 2561, 2), ("d4", 11, 21, 17),
    ("d5", 13, 301, 7), ("d5", 5, 1000, 17), ("d5", 7, 33, 2), ("d5", 4, 100, 3),
    ("d6", 10, 301, 7), ("d6", 3, 2000, 17), ("d6", 8, 44, 3), ("d6", 2, 15, 4),
    ("d7", 37, 1000, 5), ("d7", 16, 8192, 3), ("d7", 21, 99, 1),
]


@pytest.mark.parametrize("cfg,n,k,t,mul", [(*s, 7) for s in SHAPES] + [(*s, 11) for s in LANE_SHAPES]
                         + [(*s, 13) for s in DSP_SHAPES])
def test_int_exact_random(lib: ctypes.CDLL, cfg: str, n: int, k: int, t: int, mul: int) -> None:
    """Every engine config, token lanes (LANE_SHAPES) and DSP lanes (DSP_SHAPES) included, exact on random
    weights and inputs."""
    rng = np.random.default_rng(n * mul + k + t)
    w, x = _tern(rng, n, k), _x(rng, t, k)
    acc = _run_int(lib, cfg, x, w)
    ref = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    m = int((acc != ref).sum())
    print(f"tlmm[{cfg}] int n={n} k={k} t={t}: {m} mismatches")
    assert m == 0


@pytest.mark.parametrize("k", [100, 2560, 16384])
def test_int_adversarial(lib: ctypes.CDLL, k: int) -> None:
    n = 20
    w = np.zeros((n, k), np.int8)
    w[0], w[1], w[3], w[4] = 1, -1, 1, -1  # rows 2 and 5..19 stay all-zero
    w[6:] = _tern(np.random.default_rng(k), n - 6, k)
    x = np.stack([np.full(k, 127), np.full(k, -128), np.zeros(k), np.r_[np.full(k - 1, -128), 127]]
                 ).astype(np.int8)
    acc = _run_int(lib, "a", x, w)
    ref = (x.astype(np.int64) @ w.astype(np.int64).T)
    m = int((acc != ref).sum())
    print(f"tlmm adversarial k={k}: {m} mismatches, extremes {ref.min()} .. {ref.max()}")
    assert m == 0
    assert ref[1, 1] == 128 * k and ref[1, 0] == -128 * k  # the widest values the accumulator must hold
    assert not acc[2].any() and not acc[:, 2].any()


@pytest.mark.parametrize("cfg,n,k,t", [("a", 37, 2560, 3), ("a", 16, 6912, 1), ("a", 40, 100, 16),
                                       ("b", 24, 688, 128), ("a", 20, 16384, 2)])
def test_f32_bit_exact(lib: ctypes.CDLL, cfg: str, n: int, k: int, t: int) -> None:
    rng = np.random.default_rng(n + k + t)
    w = _tern(rng, n, k)
    xf = (rng.standard_normal((t, k)) * rng.uniform(0.1, 20, (t, 1))).astype(F32)
    x, qs = nx.quantize(xf)
    ws = F32(rng.uniform(0.5, 3.0))
    y = _run_f32(lib, cfg, x, qs, w, ws)
    ref = nx.dequantize(nx.int_matmul(x, w), qs, ws)
    m = int((y.view(np.uint32) != ref.view(np.uint32)).sum())
    print(f"tlmm[{cfg}] f32 n={n} k={k} t={t}: {m} bit mismatches")
    assert m == 0


def test_wide_port_equals_byte_port(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(9)
    n, k, t = 45, 1000, 2  # tail tile of 13 rows read through whole 128-bit beats
    w = _tern(rng, n, k)
    x, qs = nx.quantize(rng.standard_normal((t, k)).astype(F32))
    img = packing.pack_ternary(w, 16)
    y = np.empty((t, n), F32)
    rc = lib.tb_tlmm_a_wide(P(x), P(qs), CI(t), P(img), ctypes.c_long(img.size), CI(n), CI(k), F(1.5), P(y))
    assert rc == 0
    ref = nx.dequantize(nx.int_matmul(x, w), qs, F32(1.5))
    assert int((y.view(np.uint32) != ref.view(np.uint32)).sum()) == 0


def test_corrupted_image_is_detected(lib: ctypes.CDLL) -> None:
    """The comparison can fail: one changed byte changes exactly one row's accumulators."""
    rng = np.random.default_rng(4)
    n, k, t = 20, 300, 2
    w, x = _tern(rng, n, k), _x(rng, t, k)
    img = packing.pack_ternary(w, 16)
    img[16 * 7 + 3] = (int(img[16 * 7 + 3]) + 1) % 243  # tile 0, byte column 7, row 3
    acc = np.empty((t, n), np.int32)
    lib.tb_tlmm_a_int(P(x), CI(t), P(img), CI(n), CI(k), P(acc))
    bad = (acc != nx.int_matmul(x, w)).any(axis=0)
    assert bad.tolist() == [i == 3 for i in range(n)]


# ---- token lanes (TP) and outputs per cycle (OL) ------------------------------------------------

def tile_iters(nt: int, nsteps: int, tp: int, r: int, ol: int) -> int:
    """Iterations of compute_tile's loop: the compiler's performance model itself
    (compiler/cost_tlmm.tlmm_tile_iters), so the test ties the model to the C++ loop bound."""
    return cost_tlmm.tlmm_tile_iters(nt, nsteps, tp, r, ol)




def test_lane_config_numbers_and_cycle_formula(lib: ctypes.CDLL) -> None:
    """The engine's loop bounds are the documented formulas (the performance model mirrors them)."""
    for cfg, (r, tp, ol, max_tok, cpc) in LANE_CFG.items():
        out = np.zeros(12, np.int32)
        getattr(lib, f"tb_tlmm_{cfg}_cfg")(P(out))
        w = -(-tp * r // ol)
        assert out[[0, 1, 2, 3, 6, 7]].tolist() == [r, tp, ol, w, cpc, max_tok], cfg
        dl = DSP_CFG[cfg][2] if cfg in DSP_CFG else 0
        assert out[[8, 9, 10]].tolist() == [dl, tp - dl, (r + 1) // 2], cfg  # DL, TABLE_LANES, PAIRS
        for nsteps in (1, 2, 7, 35, 200):
            assert out[4] % (max_tok // tp) == 0  # XROWS = MAX_TOK / TP * NSTEP_MAX
            for nt in range(1, max_tok + 1):
                got = getattr(lib, f"tb_tlmm_{cfg}_tile_iters")(CI(nt), CI(nsteps))
                assert got == tile_iters(nt, nsteps, tp, r, ol), (cfg, nt, nsteps)
                assert getattr(lib, f"tb_tlmm_{cfg}_act_iters")(CI(nt), CI(nsteps)) == nt * nsteps * cpc
    # k = 2560 on T = 25 (35 steps), R = 16, a 16-token block: the old engine took nt * (nsteps + R + fill)
    # = 816 + 16 fills per tile; TP=1/OL=1 now overlaps the writes (nt * nsteps + R), TP=4/OL=4 takes 156
    assert tile_iters(16, 35, 1, 16, 1) == 16 * 35 + 16
    assert tile_iters(16, 35, 4, 16, 4) == 4 * 35 + 16
    assert tile_iters(1, 35, 4, 16, 4) == 35 + 4  # decode: the masked lanes cost nothing
    assert tile_iters(5, 3, 4, 16, 1) == 3 + 64 + 16  # output-bound: W = 64 > nsteps, last group 1 lane


@pytest.mark.parametrize("cfg,n,k,t", LANE_SHAPES + DSP_SHAPES)
def test_lanes_f32_bit_exact(lib: ctypes.CDLL, cfg: str, n: int, k: int, t: int) -> None:
    rng = np.random.default_rng(n * 13 + k + t)
    w = _tern(rng, n, k)
    xf = (rng.standard_normal((t, k)) * rng.uniform(0.1, 20, (t, 1))).astype(F32)
    x, qs = nx.quantize(xf)
    ws = F32(rng.uniform(0.5, 3.0))
    y = _run_f32(lib, cfg, x, qs, w, ws)
    ref = nx.dequantize(nx.int_matmul(x, w), qs, ws)
    m = int((y.view(np.uint32) != ref.view(np.uint32)).sum())
    print(f"tlmm[{cfg}] f32 n={n} k={k} t={t}: {m} bit mismatches")
    assert m == 0


@pytest.mark.parametrize("cfg", ["l2", "l3"])
def test_lanes_int_adversarial(lib: ctypes.CDLL, cfg: str) -> None:
    """Widest accumulators (|acc| = 128 k at k = K_MAX) in every lane of a partial last group."""
    n, k = 11, 4096
    w = np.zeros((n, k), np.int8)
    w[0], w[1], w[3] = 1, -1, 1
    w[4:] = _tern(np.random.default_rng(k), n - 4, k)
    x = np.stack([np.full(k, 127), np.full(k, -128), np.zeros(k), np.full(k, -128), np.full(k, 127)]
                 ).astype(np.int8)  # 5 tokens: a full group of 4 + one masked-lane group
    acc = _run_int(lib, cfg, x, w)
    ref = x.astype(np.int64) @ w.astype(np.int64).T
    assert ref[1, 1] == 128 * k and ref[3, 0] == -128 * k
    assert int((acc != ref).sum()) == 0


@pytest.mark.parametrize("cfg,tok", [("l2", 2), ("d2", 2), ("d2", 0), ("d6", 3), ("d5", 1)])
def test_lanes_tokens_are_not_mixed(lib: ctypes.CDLL, cfg: str, tok: int) -> None:
    """The comparison can fail: changing one token changes exactly that token's outputs (d2 token 2, d6
    token 3 and d5 token 1 run on DSP lanes, d2 token 0 on a table lane beside them)."""
    rng = np.random.default_rng(8)
    n, k, t = 13, 301, 5
    w, x = _tern(rng, n, k), _x(rng, t, k)
    base = _run_int(lib, cfg, x, w)
    x2 = x.copy()
    x2[tok] = np.clip(x2[tok].astype(np.int16) + 1, -128, 127).astype(np.int8)
    diff = (_run_int(lib, cfg, x2, w) != base).any(axis=1)
    assert diff.tolist() == [i == tok for i in range(t)]


# ---- DSP token lanes (tlmm_traits DL): packed row-pair MAC chains (tlmm.h header) -------------------

def _dsp_shift(g: int, t: int) -> int:
    """tlmm.h DSP_SHIFT = PSUM_BITS = SignedBits<128 G T>: clog2(v + 1) + 1 = v.bit_length() + 1."""
    return (128 * g * t).bit_length() + 1


def _dsp_tokens(t: int, tp: int, dl: int) -> np.ndarray:
    """Tokens of a block that run on DSP lanes (lane t % TP >= TP - DL; MAX_TOK is a multiple of TP)."""
    return np.flatnonzero(np.arange(t) % tp >= tp - dl)


def _stress_weights(n: int, k: int, r: int, seed: int) -> np.ndarray:
    """Row pairs (rows 2p, 2p+1 of each tile; the last row of an odd-R tile is alone) cycle through
    sign patterns: both +1, both -1, opposite signs, one row zero, alternating along k in and out of
    phase, random."""
    rng = np.random.default_rng(seed)
    alt = np.where(np.arange(k) % 2 == 0, 1, -1)
    pats = [(1, 1), (-1, -1), (1, -1), (-1, 1), (0, -1), (1, 0), (alt, alt), (alt, -alt), (None, None)]
    w = np.empty((n, k), np.int8)
    for row in range(n):
        tile, rr = divmod(row, r)
        pat = pats[(tile * ((r + 1) // 2) + rr // 2) % len(pats)][rr % 2]
        w[row] = rng.integers(-1, 2, k) if pat is None else pat
    return w


def _stress_acts(k: int, tp: int, seed: int) -> np.ndarray:
    """Activation patterns (all -128, all 127, alternating -128 / 127, random), each in all TP lanes (one
    token group each), then one more all -128 token: a last group of one lane."""
    rng = np.random.default_rng(seed)
    alt = np.where(np.arange(k) % 2 == 0, -128, 127)
    pats = [np.full(k, -128), np.full(k, 127), alt, rng.integers(-128, 128, k)]
    return np.stack([p for p in pats for _ in range(tp)] + [pats[0]]).astype(np.int8)


def _pair_step_sums(x: np.ndarray, w: np.ndarray, r: int, sk: int) -> tuple[np.ndarray, ...]:
    """Per token, row pair and step of sk activations: H = w[2p] . x and L = w[2p+1] . x (zero where row
    2p+1 is missing: odd R, or past n), and the pairs' two row numbers (-1: missing)."""
    (t, k), n = x.shape, w.shape[0]
    ns = -(-k // sk)
    pairs = [(tile * r + 2 * p, tile * r + 2 * p + 1 if 2 * p + 1 < r and tile * r + 2 * p + 1 < n else -1)
             for tile in range(-(-n // r)) for p in range((r + 1) // 2) if tile * r + 2 * p < n]
    r0, r1 = np.array(pairs).T
    xp = np.zeros((t, ns * sk), np.int64)
    xp[:, :k] = x
    wp = np.zeros((n + 1, ns * sk), np.int64)  # row n: the zero row of a missing r1
    wp[:n, :k] = w
    xs = xp.reshape(t, ns, sk)
    h = np.einsum("tsj,psj->tps", xs, wp[r0].reshape(-1, ns, sk))
    lo = np.einsum("tsj,psj->tps", xs, wp[np.where(r1 < 0, n, r1)].reshape(-1, ns, sk))
    return h, lo, r0, r1


def _accs_from_fields(h: np.ndarray, lo: np.ndarray, r0: np.ndarray, r1: np.ndarray, n: int) -> np.ndarray:
    """Accumulators of the rows from per-step fields (sum over steps)."""
    acc = np.zeros((h.shape[0], n), np.int64)
    acc[:, r0] = h.sum(-1)
    acc[:, r1[r1 >= 0]] = lo.sum(-1)[:, r1 >= 0]
    return acc


def _sext(v: np.ndarray, bits: int) -> np.ndarray:
    """The low `bits` bits of v, sign-extended."""
    m = v & ((1 << bits) - 1)
    return np.where(m >= 1 << (bits - 1), m - (1 << bits), m)


# How the packed sum P = H * 2^S + L is unpacked: tlmm.h's extraction and plausible mistakes of it.
UNPACK = {
    "tlmm.h": lambda p, s: ((p >> s) + ((p >> (s - 1)) & 1), _sext(p, s)),  # H = floor(P / 2^S) + [L < 0]
    "H = P >> S (floor, no borrow from L)": lambda p, s: (p >> s, _sext(p, s)),
    "L not sign-extended": lambda p, s: ((p - _sext(p, s)) >> s, p & ((1 << s) - 1)),
    "L field S-1 bits": lambda p, s: ((p - _sext(p, s - 1)) >> (s - 1) >> 1, _sext(p, s - 1)),
    "L field S+1 bits": lambda p, s: ((p - _sext(p, s + 1)) >> s, _sext(p, s + 1)),
}


def test_dsp_lane_packing_constants(lib: ctypes.CDLL) -> None:
    """DSP_SHIFT S = PSUM_BITS = SignedBits<128 G T>: one step's |partial sum| <= 128 G T <= 2^(S-1) - 1,
    P = H 2^S + L fits 2S <= 48 bits and the A operand w 2^S + w' (|.| <= 2^S + 1) 27 bits."""
    for cfg, (g, t, dl, _) in DSP_CFG.items():
        out = np.zeros(12, np.int32)
        getattr(lib, f"tb_tlmm_{cfg}_cfg")(P(out))
        s = _dsp_shift(g, t)
        assert out[[8, 11]].tolist() == [dl, s], cfg
        v = 128 * g * t
        assert v <= 2 ** (s - 1) - 1 and v * (2 ** s + 1) < 2 ** (2 * s - 1) and 2 * s <= 48
        assert 2 ** s + 1 <= 2 ** 26 - 1
    assert [_dsp_shift(3, 5), _dsp_shift(3, 15), _dsp_shift(4, 25)] == [12, 14, 15]


@pytest.mark.parametrize("short", [0, 7])
@pytest.mark.parametrize("cfg", list(DSP_CFG))
def test_dsp_lanes_stress(lib: ctypes.CDLL, cfg: str, short: int) -> None:
    """DSP lanes at the packing's bounds, bit-exact (int and f32): k = K_MAX (short = 0) or K_MAX - 7 (a
    partial last step), all -128 / all 127 / alternating activations in every lane against row pairs
    of equal, opposite, zero, alternating and random signs, a tail tile and a one-lane last group. The
    inputs must reach the corners: |H| = |L| = 128 G T in one step, L < 0 with H odd; each mistaken
    unpacking of UNPACK would change some DSP-lane output on them (a mutation check of the inputs)."""
    g, tt, dl, kmax = DSP_CFG[cfg]
    r, tp = R_OF[cfg], LANE_CFG[cfg][1]
    k, n = kmax - short, 2 * r + (r + 1) // 2
    w, x = _stress_weights(n, k, r, k + r), _stress_acts(k, tp, k)
    acc = _run_int(lib, cfg, x, w)
    ref = x.astype(np.int64) @ w.astype(np.int64).T
    assert np.abs(ref).max() == 128 * k  # the accumulator's widest value
    m = int((acc != ref).sum())
    qs = np.random.default_rng(k).uniform(0.01, 2.0, len(x)).astype(F32)
    y = _run_f32(lib, cfg, x, qs, w, F32(0.75))
    want = nx.dequantize(nx.int_matmul(x, w), qs, F32(0.75))
    mf = int((y.view(np.uint32) != want.view(np.uint32)).sum())
    print(f"tlmm[{cfg}] DSP stress n={n} k={k} t={len(x)}: {m} int mismatches, {mf} f32 bit mismatches")
    assert m == 0 and mf == 0
    dsp = _dsp_tokens(len(x), tp, dl)
    h, lo, r0, r1 = _pair_step_sums(x[dsp], w, r, g * tt)
    v, s = 128 * g * tt, _dsp_shift(g, tt)
    assert (np.abs(h) == v).any() and (np.abs(lo) == v).any()
    assert ((lo < 0) & (h % 2 == 1)).any()
    packed = h * 2 ** s + lo
    assert np.abs(packed).max() < 2 ** (2 * s - 1) <= 2 ** 47
    assert (UNPACK["tlmm.h"](packed, s)[0] == (packed - _sext(packed, s)) >> s).all()  # = (P - L) >> S
    for name, unpack in UNPACK.items():
        got = _accs_from_fields(*unpack(packed, s), r0, r1, n)
        assert (got == ref[dsp]).all() == (name == "tlmm.h"), name


@pytest.mark.parametrize("cfg,lanes", [("d1", "l1"), ("d4", "l4")])
def test_dsp_lanes_equal_table_lanes(lib: ctypes.CDLL, cfg: str, lanes: str) -> None:
    """A DSP lane is just another token lane: the same G/T/R/TP/OL with DL = 1 and DL = 0 give the same
    float bits on every token (lane 1 is the DSP lane of d1 and d4, the table lane of l1 and l4)."""
    rng = np.random.default_rng(21)
    n, k, t = 2 * R_OF[cfg] + 5, 777, 7
    w = _tern(rng, n, k)
    x, qs = nx.quantize((rng.standard_normal((t, k)) * 4).astype(F32))
    a, b = _run_f32(lib, cfg, x, qs, w, F32(1.25)), _run_f32(lib, lanes, x, qs, w, F32(1.25))
    assert (a.view(np.uint32) == b.view(np.uint32)).all()


# ---- several weight ports (hw/tb/tlmm_ports_tb.cpp) ------------------------------------------------

PORT_CFG = {  # name -> (R, ports); hw/tb/tlmm_ports_tb.cpp
    "a1": (16, 1), "a2": (16, 2), "a3": (16, 3), "a4": (16, 4), "b2": (8, 2), "b3": (8, 3), "c4": (16, 4),
    "g2x4": (4, 4), "g4x3": (8, 3), "c4l": (16, 4), "b3l": (8, 3), "g2x2l": (4, 2), "a1l": (16, 1),
    "c4s": (16, 4), "c4ls": (16, 4), "a4s": (16, 4), "b3s": (8, 3)}
# the tlmm_ports_tb.cpp configurations' SHARE0 .. SHARE3
SHARES = {"c4s": (9, 7, 7, 9), "c4ls": (9, 7, 7, 9), "a4s": (3, 1, 2, 5), "b3s": (2, 1, 3)}
BASE_OF = {"a": ("a1", "a2", "a3", "a4"), "b": ("b2", "b3"), "g2": ("g2x4",), "g4": ("g4x3",)}
CHEAP = {("a", 40, 100, 1), ("a", 37, 2560, 3), ("a", 16, 6912, 1), ("a", 48, 301, 17), ("a", 33, 16384, 2)}
PORT_SHAPES = [(p, n, k, t) for c, n, k, t in SHAPES for p in BASE_OF[c]
               if p not in ("a3", "a4") or (c, n, k, t) in CHEAP]
PORT_SHAPES += [("c4", 40, 100, 1), ("c4", 37, 128, 3), ("c4", 45, 344, 2), ("c4", 21, 2560, 1),
                ("c4", 16, 4096, 4), ("c4", 3, 7, 2)]
# token lanes with several ports (c4l: TP 4 / OL 4, b3l: TP 2 / OL 1, g2x2l: TP 4 / OL 16, a1l: TP 2 / OL 16)
LANE_PORT_SHAPES = [("c4l", 37, 2560, 17), ("c4l", 45, 344, 5), ("c4l", 21, 1001, 3), ("c4l", 16, 4096, 2),
                    ("c4l", 3, 7, 1), ("b3l", 13, 301, 17), ("b3l", 24, 8191, 3), ("b3l", 9, 100, 5),
                    ("g2x2l", 13, 301, 17), ("g2x2l", 7, 1001, 5), ("g2x2l", 18, 52, 2),
                    ("a1l", 37, 2560, 5), ("a1l", 21, 301, 3), ("a1l", 40, 100, 1)]
PORT_SHAPES += LANE_PORT_SHAPES
# unequal port shares: runs that straddle steps, tail tiles, ports left with no columns (tiny k)
SHARE_PORT_SHAPES = [("c4s", 40, 100, 1), ("c4s", 37, 2560, 3), ("c4s", 21, 2560, 1), ("c4s", 3, 7, 2),
                     ("c4ls", 37, 2560, 17), ("c4ls", 21, 1001, 3), ("a4s", 37, 2560, 3),
                     ("a4s", 48, 301, 17), ("a4s", 5, 7, 1), ("b3s", 13, 301, 17), ("b3s", 24, 8191, 3)]
PORT_SHAPES += SHARE_PORT_SHAPES


@pytest.fixture(scope="module")
def plib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "tlmm_ports_tb.cpp"], "tlmm_ports_tb")


def _port_images(w: np.ndarray, cfg: str, seed: int) -> list[np.ndarray]:
    """One image per port (4 pointers): port p's copy holds only p's share (packing.port_slices), the
    rest is random garbage; pointers beyond the configured ports get all-garbage images."""
    r, nports = PORT_CFG[cfg]
    img = packing.pack_ternary(w, r)
    rng = np.random.default_rng(seed)
    out = [rng.integers(0, 256, img.size).astype(np.uint8) for _ in range(4)]
    for p, ranges in enumerate(packing.port_slices(*w.shape, r, nports, SHARES.get(cfg))):
        for a, b in ranges:
            out[p][a:b] = img[a:b]
    return out


def _run_ports_int(plib: ctypes.CDLL, cfg: str, x: np.ndarray, imgs: list[np.ndarray], n: int) -> np.ndarray:
    t, k = x.shape
    buf, acc = _guarded(t, n, np.int32, 0x5A5A5A5A)
    x = np.ascontiguousarray(x)
    getattr(plib, f"tb_tlmm_{cfg}_int")(P(x), CI(t), *map(P, imgs), CI(n), CI(k), P(acc))
    _check_guards(buf, 0x5A5A5A5A)
    return acc.reshape(t, n)


def test_ports_lane_tile_iters(plib: ctypes.CDLL) -> None:
    """CfgC4L (T=25, R=16, TP=4, OL=4): the loop bound is the documented formula."""
    for nt in range(1, 17):
        for nsteps in (1, 4, 16, 35, 274):
            assert plib.tb_tlmm_c4l_tile_iters(CI(nt), CI(nsteps)) == tile_iters(nt, nsteps, 4, 16, 4)


def test_ports_config_numbers(plib: ctypes.CDLL) -> None:
    out = np.zeros(13, np.int32)
    plib.tb_tlmm_ports_cfg(P(out))
    # CfgA4: R 16, 3 beats/step, 4 ports, ceil(3277/4) = 820 columns per port, (820+1)//3 + 1 = 274 bank
    # rows; CfgC4: 15 beats/step, ceil(820/4) = 205 columns, (205+13)//15 + 1 = 15 rows; CfgA1: all 1093 steps
    # CfgC4S (9:7:7:9): 32 units of ceil(820/32) = 26 columns, the largest share 9 x 26 = 234 columns,
    # (234+13)//15 + 1 = 17 rows; CfgA4S (3:1:2:5): 5 x ceil(3277/11) = 5 x 298 = 1490 columns
    assert out.tolist() == [16, 3, 4, 820, 274, 15, 205, 15, 1093, 32, 234, 17, 1490]


@pytest.mark.parametrize("n,k,r,nports", [(40, 100, 16, 4), (37, 2560, 16, 3), (13, 301, 8, 2), (5, 7, 4, 4),
                                          (45, 1000, 16, 4), (16, 6912, 16, 4), (2560, 2560, 16, 4),
                                          (6912, 2560, 16, 4), (2560, 6912, 16, 4), (37, 128, 16, 4)])
def test_port_slices_partition_the_image(n: int, k: int, r: int, nports: int) -> None:
    sl = packing.port_slices(n, k, r, nports)
    used = np.zeros(n * packing.row_bytes(k), np.int32)
    for ranges in sl:
        assert len(ranges) == math.ceil(n / r)  # one contiguous range (one burst) per tile
        for a, b in ranges:
            assert a <= b
            used[a:b] += 1
    assert (used == 1).all()  # every byte of the matrix read by exactly one port
    share = [sum(b - a for a, b in ranges) for ranges in sl]
    cpp = math.ceil(packing.row_bytes(k) / nports)
    assert max(share) <= math.ceil(n / r) * r * cpp  # ceil(NB / ports) columns per tile at most
    print(f"{n}x{k} R={r}, {nports} ports: bytes per port {share}, "
          f"busiest / ideal {max(share) * nports / sum(share):.4f}")


@pytest.mark.parametrize("nb,shares", [(820, (9, 7, 7, 9)), (7, (9, 7, 7, 9)), (3277, (3, 1, 2, 5)),
                                       (61, (2, 1, 3)), (820, (1, 1, 1, 1)), (10, (1, 1, 1, 1))])
def test_port_columns_partition_a_tile(nb: int, shares: tuple[int, ...]) -> None:
    """Each port's run follows the one before it, the runs cover the tile's nb columns once, each is at most
    its share of ceil(nb / sum) columns; equal shares are the ceil(nb / ports) split."""
    cols = packing.port_columns(nb, shares)
    unit = math.ceil(nb / sum(shares))
    assert cols[0][0] == 0 and cols[-1][1] == nb
    assert all(a[1] == b[0] for a, b in zip(cols, cols[1:], strict=False))
    assert all(c1 - c0 <= s * unit for (c0, c1), s in zip(cols, shares, strict=True))
    if len(set(shares)) == 1:
        cpp = math.ceil(nb / len(shares))
        assert cols == [(min(p * cpp, nb), min((p + 1) * cpp, nb)) for p in range(len(shares))]


@pytest.mark.parametrize("cfg,n,k,t", PORT_SHAPES)
def test_ports_int_exact_each_port_own_share(plib: ctypes.CDLL, cfg: str, n: int, k: int, t: int) -> None:
    """Bit-exact with each port reading a copy where every other port's share is garbage."""
    rng = np.random.default_rng(n * 7 + k + t)
    w, x = _tern(rng, n, k), _x(rng, t, k)
    acc = _run_ports_int(plib, cfg, x, _port_images(w, cfg, n + k), n)
    ref = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    m = int((acc != ref).sum())
    print(f"tlmm[{cfg}] int n={n} k={k} t={t}, poisoned ports: {m} mismatches")
    assert m == 0


@pytest.mark.parametrize("cfg,n,k,t", PORT_SHAPES)
def test_ports_fifo_path_exact(plib: ctypes.CDLL, cfg: str, n: int, k: int, t: int) -> None:
    """The engine fed by weight FIFOs (weight_fetch.h tlmm_fetch_port per port, then the FIFO loaders of
    weight_buffer.h, two columns per word): bit-exact with each port's fetcher reading a copy where every
    other port's share is garbage, and every fetched word consumed (tail tiles, token blocks, lanes)."""
    rng = np.random.default_rng(n * 5 + k + t)
    w, x = _tern(rng, n, k), _x(rng, t, k)
    imgs = _port_images(w, cfg, n + k + 1)
    buf, acc = _guarded(t, n, np.int32, 0x5A5A5A5A)
    fn = getattr(plib, f"tb_tlmm_{cfg}_fifo")
    fn.restype = ctypes.c_long
    left = fn(P(np.ascontiguousarray(x)), CI(t), *map(P, imgs), CI(n), CI(k), P(acc))
    _check_guards(buf, 0x5A5A5A5A)
    ref = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    m = int((acc.reshape(t, n) != ref).sum())
    print(f"tlmm[{cfg}] via FIFOs n={n} k={k} t={t}: {m} mismatches, {left} words left over")
    assert m == 0 and left == 0


@pytest.mark.parametrize("cfg", ["a2", "a3", "a4"])
@pytest.mark.parametrize("k", [100, 2560, 16384])
def test_ports_int_adversarial(plib: ctypes.CDLL, cfg: str, k: int) -> None:
    n = 20
    w = np.zeros((n, k), np.int8)
    w[0], w[1], w[3], w[4] = 1, -1, 1, -1
    w[6:] = _tern(np.random.default_rng(k), n - 6, k)
    x = np.stack([np.full(k, 127), np.full(k, -128), np.zeros(k), np.r_[np.full(k - 1, -128), 127]]
                 ).astype(np.int8)
    acc = _run_ports_int(plib, cfg, x, _port_images(w, cfg, k), n)
    ref = x.astype(np.int64) @ w.astype(np.int64).T
    m = int((acc != ref).sum())
    print(f"tlmm[{cfg}] adversarial k={k}, poisoned ports: {m} mismatches")
    assert m == 0


@pytest.mark.parametrize("cfg,n,k,t", [("a2", 37, 2560, 3), ("a4", 16, 6912, 1), ("a3", 40, 100, 16),
                                       ("b3", 24, 688, 128), ("a4", 20, 16384, 2), *LANE_PORT_SHAPES,
                                       ("c4s", 37, 2560, 3), ("c4ls", 21, 1001, 3), ("b3s", 24, 688, 128)])
def test_ports_f32_bit_exact(plib: ctypes.CDLL, cfg: str, n: int, k: int, t: int) -> None:
    rng = np.random.default_rng(n + k + t)
    w = _tern(rng, n, k)
    xf = (rng.standard_normal((t, k)) * rng.uniform(0.1, 20, (t, 1))).astype(F32)
    x, qs = nx.quantize(xf)
    ws = F32(rng.uniform(0.5, 3.0))
    buf, y = _guarded(t, n, F32, np.nan)
    imgs = _port_images(w, cfg, k)  # kept alive across the call
    getattr(plib, f"tb_tlmm_{cfg}")(P(x), P(qs), CI(t), *map(P, imgs), CI(n), CI(k), F(ws), P(y))
    _check_guards(buf, np.nan)
    y = y.reshape(t, n)
    ref = nx.dequantize(nx.int_matmul(x, w), qs, ws)
    m = int((y.view(np.uint32) != ref.view(np.uint32)).sum())
    print(f"tlmm[{cfg}] f32 n={n} k={k} t={t}, poisoned ports: {m} bit mismatches")
    assert m == 0


def test_ports_wide_beats(plib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(9)
    n, k, t = 45, 1000, 2  # tail tile of 13 rows: its port shares start mid-beat
    w = _tern(rng, n, k)
    x, qs = nx.quantize(rng.standard_normal((t, k)).astype(F32))
    imgs = _port_images(w, "a4", 1)
    y = np.empty((t, n), F32)
    rc = plib.tb_tlmm_a4_wide(P(x), P(qs), CI(t), *map(P, imgs), ctypes.c_long(imgs[0].size), CI(n), CI(k),
                              F(1.5), P(y))
    assert rc == 0
    ref = nx.dequantize(nx.int_matmul(x, w), qs, F32(1.5))
    assert int((y.view(np.uint32) != ref.view(np.uint32)).sum()) == 0


@pytest.mark.parametrize("cfg,n,k", [("a4", 37, 2560), ("a3", 45, 1000), ("b2", 13, 100), ("g2x4", 13, 301),
                                     ("c4", 37, 128), ("c4l", 37, 2560), ("g2x2l", 13, 301),
                                     ("c4s", 37, 2560), ("a4s", 37, 2560), ("b3s", 13, 301)])
def test_every_port_carries_its_share(plib: ctypes.CDLL, cfg: str, n: int, k: int) -> None:
    """The poisoned comparison can fail: garbage on any one port, or ports swapped, changes the result
    (so every port's share is really read through that port)."""
    rng = np.random.default_rng(3)
    w, x = _tern(rng, n, k), _x(rng, 2, k)
    ref = nx.int_matmul(x, w)
    imgs = _port_images(w, cfg, 0)
    nports = PORT_CFG[cfg][1]
    assert not (_run_ports_int(plib, cfg, x, imgs, n) != ref).any()
    bad = []
    for p in range(nports):
        junk = list(imgs)
        junk[p] = np.random.default_rng(p + 100).integers(0, 256, imgs[p].size).astype(np.uint8)
        bad.append(int((_run_ports_int(plib, cfg, x, junk, n) != ref).sum()))
    swapped = [imgs[1], imgs[0], *imgs[2:]]
    n_swap = int((_run_ports_int(plib, cfg, x, swapped, n) != ref).sum())
    print(f"tlmm[{cfg}] {n}x{k}: mismatches with port p garbage {bad}, ports 0/1 swapped {n_swap}")
    assert all(b > 0 for b in bad) and n_swap > 0


def test_the_activation_row_is_priced() -> None:
    """load_acts' activation row (tlmm.h: kPart explicit banks of block RAM, written one aligned data beat a
    cycle by row_load_banked, read CK = 5 G bytes a cycle): its banks, the beat's rotation (16 fields,
    16:1) and the chunk's choice among the banks (CK bytes, kPart:1) are part of the engine's resources;
    G 4 (CK 20) takes 32 banks, G 3 (CK 15) 16."""
    from edgellm.boards import load_board
    from edgellm.compiler.cost.memory import mux_luts
    from edgellm.compiler.design import DesignParams
    from edgellm.models.config import PRESETS

    ct = cost_tlmm

    cfg = PRESETS["bitnet_b1_58-large"]
    g3, g4 = DesignParams(group_size=3, tables=10), DesignParams(group_size=4, tables=10)
    assert ct.act_row(cfg, g3).lut == 16 * 8 * mux_luts(16) + 15 * 8 * mux_luts(16)
    assert ct.act_row(cfg, g4).lut == 16 * 8 * mux_luts(16) + 20 * 8 * mux_luts(32)
    assert ct.act_row(cfg, g3).bram36 == 16 * 0.5 and ct.act_row(cfg, g4).bram36 == 32 * 0.5
    assert ct.resources(cfg, load_board("kv260"), g3).lut >= ct.act_row(cfg, g3).lut
