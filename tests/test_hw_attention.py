"""C simulation of the prefill and decode attention kernels vs models.numerics.attention, bit for bit,
with an f32 KV cache and with an f16 one (binary16 elements widened on read, as the golden model)."""

import ctypes
import re

import numpy as np
import pytest
from shared_fixtures import attn_scale, head_ports, kv_cache, mismatches, nan_like, run_attention_layer

from edgellm.compiler.cost import attention as cost_attention
from edgellm.hw import csim
from edgellm.models import numerics as nx

F32 = np.float32
# (d_max, dot_lanes, kv_block) instantiated in hw/tb/attention_tb.cpp
CONFIGS = {(128, 64, 16), (128, 64, 32), (128, 128, 16), (128, 128, 32), (256, 32, 16), (256, 256, 16),
           (128, 8, 16), (128, 16, 16), (128, 16, 32), (128, 32, 16), (128, 8, 4)}
CONFIGS_F16 = {(128, 64, 16), (128, 64, 32), (128, 128, 16), (128, 128, 32), (128, 8, 16),
               (128, 16, 16), (128, 16, 32), (128, 32, 16), (128, 8, 4)}  # f16-cache kernels
KV_DTYPES = ("f32", "f16")


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "attention_tb.cpp"], "attention_tb")


def _kernel(lib: ctypes.CDLL, kind: str, d_max: int, lanes: int, kvb: int, f16: bool = False):
    assert (d_max, lanes, kvb) in (CONFIGS_F16 if f16 else CONFIGS)
    return getattr(lib, f"tb_{kind}{'16' if f16 else ''}_d{d_max}_l{lanes}_b{kvb}")


def run_prefill(lib, q, k, v, pos0, d_max, lanes, kvb) -> tuple[np.ndarray, np.ndarray]:
    """(C-sim output, numpy reference) for queries q (T, H, D) at pos0 over cache k, v."""
    t_len, n_h, d = q.shape
    n_kv = k.shape[1]
    out = np.full_like(q, np.nan)
    _kernel(lib, "prefill", d_max, lanes, kvb, k.dtype == np.float16)(
        csim.ptr(q), csim.ptr(k), csim.ptr(v), csim.ptr(out), ctypes.c_int(t_len), ctypes.c_int(pos0),
        ctypes.c_int(n_h), ctypes.c_int(n_kv), ctypes.c_int(d), attn_scale(d))
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=kvb)
    s = pos0 + t_len
    with np.errstate(over="ignore", invalid="ignore"):  # masked keys' discarded exp may overflow
        return out, nx.attention(q, nx.kv_load(k[:s]), nx.kv_load(v[:s]), pos0, plan)


def run_decode(lib, q, k, v, pos, d_max, lanes, kvb) -> tuple[np.ndarray, np.ndarray]:
    """(C-sim output, numpy reference) for one token q (H, D) at position pos."""
    n_h, d = q.shape
    n_kv = k.shape[1]
    out = np.full_like(q, np.nan)
    _kernel(lib, "decode", d_max, lanes, kvb, k.dtype == np.float16)(
        csim.ptr(q), csim.ptr(k), csim.ptr(v), csim.ptr(out), ctypes.c_int(pos), ctypes.c_int(n_h),
        ctypes.c_int(n_kv), ctypes.c_int(d), attn_scale(d))
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=kvb)
    with np.errstate(over="ignore", invalid="ignore"):
        return out, nx.attention(q[None], nx.kv_load(k[:pos + 1]), nx.kv_load(v[:pos + 1]), pos, plan)[0]


@pytest.mark.parametrize("kv", KV_DTYPES)
@pytest.mark.parametrize("kvb", [16, 32])
@pytest.mark.parametrize("d", [64, 96])
@pytest.mark.parametrize("heads", [(4, 2), (4, 4)])
def test_prefill_bit_exact(lib: ctypes.CDLL, heads: tuple[int, int], d: int, kvb: int, kv: str) -> None:
    n_h, n_kv = heads
    lanes = 1 << (d - 1).bit_length()
    rng = np.random.default_rng(d * 100 + kvb + n_kv)
    total = 0
    for t_len in (1, 7, 16, 33, 128):
        for pos0 in (0, 5, 40):
            q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
            k, v = kv_cache(rng, pos0 + t_len, n_kv, d, kv=kv)
            out, ref = run_prefill(lib, q, k, v, pos0, 128, lanes, kvb)
            mism = mismatches(out, ref)
            print(f"prefill {kv} H={n_h}/{n_kv} d={d} kv_block={kvb} T={t_len} pos0={pos0}: "
                  f"{mism} mismatches of {ref.size}")
            total += mism
    assert total == 0


@pytest.mark.parametrize("d_max,lanes,d", [(256, 32, 96), (256, 256, 256)])
def test_prefill_lane_chunks_and_head_dim_256(lib: ctypes.CDLL, d_max: int, lanes: int, d: int) -> None:
    """dot_lanes < head_dim (several lane chunks) and the largest head_dim."""
    rng = np.random.default_rng(lanes)
    q = rng.standard_normal((21, 4, d)).astype(F32)
    k, v = kv_cache(rng, 3 + 21, 1, d)
    out, ref = run_prefill(lib, q, k, v, 3, d_max, lanes, 16)
    mism = mismatches(out, ref)
    print(f"prefill MQA d={d} dot_lanes={lanes}: {mism} mismatches of {ref.size}")
    assert mism == 0


@pytest.mark.parametrize("kv", KV_DTYPES)
@pytest.mark.parametrize("heads", [(2, 1), (2, 2)])
def test_decode_bit_exact(lib: ctypes.CDLL, heads: tuple[int, int], kv: str) -> None:
    n_h, n_kv = heads
    d, ctx = 64, 4096
    rng = np.random.default_rng(n_h + 7 * n_kv)
    k, v = kv_cache(rng, ctx, n_kv, d, extra=0, kv=kv)
    total = 0
    for pos in (0, 1, 15, 16, 17, 1000, 4095):
        kp, vp = k.copy(), v.copy()
        kp[pos + 1:] = np.nan  # positions after the token are not written yet
        vp[pos + 1:] = np.nan
        q = (rng.standard_normal((n_h, d)) * 2).astype(F32)
        out, ref = run_decode(lib, q, kp, vp, pos, 128, 64, 16)
        mism = mismatches(out, ref)
        print(f"decode {kv} H={n_h}/{n_kv} pos={pos} ctx={ctx}: {mism} mismatches of {ref.size}")
        total += mism
    assert total == 0


@pytest.mark.parametrize(("n_ports", "kv", "lanes", "d"),
                         [(1, "f32", 64, 64), (2, "f32", 64, 64), (3, "f32", 64, 64), (4, "f32", 64, 64),
                          (4, "f16", 64, 64), (3, "f32", 16, 64), (4, "f16", 16, 40)])
@pytest.mark.parametrize("heads", [(8, 8), (8, 2), (4, 1)])
def test_decode_over_ports_bit_exact(lib: ctypes.CDLL, heads: tuple[int, int], n_ports: int, kv: str,
                                     lanes: int, d: int) -> None:
    """attention_decode_ports: port p gets its own copy of the cache in which only positions pp with
    pp % n_ports == p are valid (the rest NaN; a port reads whole positions, every KV head, one burst
    each): the output is bit-identical to the reference and to the one-port kernel. Ports rotated by
    one: it is not. dot_lanes 16: head_dim over 4 (or 3) chunks."""
    n_h, n_kv = heads
    rng = np.random.default_rng(n_h + 3 * n_kv + 11 * n_ports)
    k, v = kv_cache(rng, 300, n_kv, d, extra=3, kv=kv)
    suffix = ("_16" if kv == "f16" else "") + ("_l16" if lanes == 16 else "")
    fn = getattr(lib, f"tb_decode_ports{n_ports}{suffix}")

    def port_bufs(shift: int) -> list[np.ndarray]:
        bufs = []
        for p in range(4):
            kp, vp = np.full_like(k, np.nan), np.full_like(v, np.nan)
            if p < n_ports:  # positions pp % n_ports == p (+ shift)
                own = (p + shift) % n_ports
                kp[own::n_ports], vp[own::n_ports] = k[own::n_ports], v[own::n_ports]
            bufs += [kp, vp]
        return bufs

    total, rotated = 0, 0
    for pos in (0, 15, 16, 17, 299):
        q = (rng.standard_normal((n_h, d)) * 2).astype(F32)
        one, ref = run_decode(lib, q, k, v, pos, 128, lanes, 16)  # one-port kernel, numpy reference
        for shift in (0, 1):
            b = port_bufs(shift)
            out = np.full_like(q, np.nan)
            ks, vs = (csim.ptr(x) for x in b[0::2]), (csim.ptr(x) for x in b[1::2])
            fn(csim.ptr(q), *ks, *vs, csim.ptr(out), ctypes.c_int(pos), ctypes.c_int(n_h), ctypes.c_int(n_kv),
               ctypes.c_int(d), attn_scale(d))
            if shift == 0:
                total += mismatches(out, ref) + mismatches(out, one)
            else:
                rotated += mismatches(out, ref)
    print(f"decode over {n_ports} ports {kv} H={n_h}/{n_kv} d={d} dot_lanes={lanes}: {total} mismatches; "
          f"rotated ports {rotated}")
    assert total == 0
    if n_ports > 1:
        assert rotated > 0


def _adversarial(rng: np.random.Generator, case: str, s: int, n_kv: int, d: int):
    """K, V (s, n_kv, d) and a query direction for a stress case."""
    k = rng.standard_normal((s, n_kv, d)).astype(F32)
    v = rng.standard_normal((s, n_kv, d)).astype(F32)
    if case == "underflow":  # scores in the hundreds: most exp(s - m) underflow to 0
        k *= F32(40.0)
    elif case == "equal":  # every key identical: equal scores
        k[:] = k[:1]
    elif case == "rising":  # every block raises the max by a lot: c = exp(m - m') underflows
        k = np.repeat(rng.standard_normal((1, n_kv, d)).astype(F32), s, 0)
        k *= (np.arange(s, dtype=F32) * F32(4.0))[:, None, None]
    elif case == "zero":  # q = 0 makes all scores +0.0
        pass
    return k, v


@pytest.mark.parametrize("kv", KV_DTYPES)
@pytest.mark.parametrize("case", ["underflow", "equal", "rising", "zero"])
def test_adversarial_prefill_and_decode(lib: ctypes.CDLL, case: str, kv: str) -> None:
    rng = np.random.default_rng(len(case))
    d, n_h, n_kv = 64, 4, 2
    pos0, t_len = 11, 40
    k, v = _adversarial(rng, case, 1200, n_kv, d)
    q = rng.standard_normal((t_len, n_h, d)).astype(F32)
    if case in ("rising", "underflow"):
        q = np.abs(q) * F32(3.0)
        k = np.abs(k)
    if case == "zero":
        q[:] = 0.0
    k, v = nx.kv_store(k, kv), nx.kv_store(v, kv)
    out, ref = run_prefill(lib, q, k, v, pos0, 128, 64, 16)
    m1 = mismatches(out, ref)
    qd = q[0]
    out_d, ref_d = run_decode(lib, qd, k, v, 1100, 128, 64, 32)
    m2 = mismatches(out_d, ref_d)
    print(f"adversarial {case} {kv}: prefill {m1} of {ref.size}, decode {m2} of {ref_d.size} mismatches; "
          f"finite {np.isfinite(ref).all() and np.isfinite(ref_d).all()}")
    assert np.isfinite(ref).all() and np.isfinite(ref_d).all()
    assert m1 == 0 and m2 == 0


def test_comparison_detects_a_different_order(lib: ctypes.CDLL) -> None:
    """The bitwise check is sharp: a kernel built for kv_block 32 differs from the kv_block 16 contract."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((33, 4, 64)).astype(F32)
    k, v = kv_cache(rng, 40 + 33, 2, 64)
    out32, _ = run_prefill(lib, q, k, v, 40, 128, 64, 32)
    _, ref16 = run_prefill(lib, q, k, v, 40, 128, 64, 16)
    mism = mismatches(out32, ref16)
    print(f"kv_block 32 kernel vs kv_block 16 contract: {mism} mismatches of {ref16.size}")
    assert mism > 0
    assert np.allclose(out32, ref16, rtol=1e-4, atol=1e-5)


# (dot_lanes, head_dim, kv_block): the head dimension over ceil(head_dim / dot_lanes) lane chunks,
# head_dim 40 and 96 not multiples of the lanes (or of the 16-float DDR beat)
NARROW = [(8, 64, 16), (16, 96, 32), (32, 128, 16), (16, 40, 16), (8, 128, 16), (32, 96, 16), (16, 128, 16),
          (8, 64, 4)]  # K/V tiles of 4 keys: the low-bit search's small-tile vector engines


@pytest.mark.parametrize("kv", KV_DTYPES)
@pytest.mark.parametrize(("lanes", "d", "kvb"), NARROW)
def test_prefill_narrow_lanes_bit_exact(lib: ctypes.CDLL, lanes: int, d: int, kvb: int, kv: str) -> None:
    """Prefill with dot_lanes < head_dim, GQA and MHA, across the diagonal and several tiles."""
    rng = np.random.default_rng(lanes * 1000 + d + kvb)
    total = 0
    for (n_h, n_kv), t_len, pos0 in (((4, 2), 1, 0), ((4, 2), 13, 5), ((2, 2), 33, 40), ((8, 1), 9, 17)):
        q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
        k, v = kv_cache(rng, pos0 + t_len, n_kv, d, kv=kv)
        out, ref = run_prefill(lib, q, k, v, pos0, 128, lanes, kvb)
        mism = mismatches(out, ref)
        print(f"prefill {kv} dot_lanes={lanes} d={d} kv_block={kvb} H={n_h}/{n_kv} T={t_len} pos0={pos0}: "
              f"{mism} mismatches of {ref.size}")
        total += mism
    assert total == 0


@pytest.mark.parametrize("kv", KV_DTYPES)
@pytest.mark.parametrize(("lanes", "d", "kvb"), NARROW)
def test_decode_narrow_lanes_bit_exact(lib: ctypes.CDLL, lanes: int, d: int, kvb: int, kv: str) -> None:
    """Decode with dot_lanes < head_dim up to a long context (GQA 8/2 and MHA 2/2)."""
    rng = np.random.default_rng(lanes * 1000 + d + kvb + 1)
    total = 0
    for n_h, n_kv in ((8, 2), (2, 2)):
        k, v = kv_cache(rng, 1200, n_kv, d, extra=0, kv=kv)
        for pos in (0, kvb - 1, kvb, 1199):
            kp, vp = k.copy(), v.copy()
            kp[pos + 1:] = np.nan
            vp[pos + 1:] = np.nan
            q = (rng.standard_normal((n_h, d)) * 2).astype(F32)
            out, ref = run_decode(lib, q, kp, vp, pos, 128, lanes, kvb)
            mism = mismatches(out, ref)
            print(f"decode {kv} dot_lanes={lanes} d={d} H={n_h}/{n_kv} pos={pos}: "
                  f"{mism} mismatches of {ref.size}")
            total += mism
    assert total == 0


@pytest.mark.parametrize(("lanes", "other"), [(8, 16), (16, 8), (32, 128), (128, 32)])
def test_lane_count_is_visible_in_the_bits(lib: ctypes.CDLL, lanes: int, other: int) -> None:
    """The bitwise check sees the lane order: a dot_lanes=`lanes` kernel differs from the
    dot_lanes=`other` contract (same values within a tolerance), in prefill and in decode."""
    rng = np.random.default_rng(lanes + other)
    d, kvb = 96, 16
    q = rng.standard_normal((24, 4, d)).astype(F32)
    k, v = kv_cache(rng, 30 + 24, 2, d)
    out = run_prefill(lib, q, k, v, 30, 128, lanes, kvb)[0]
    ref = run_prefill(lib, q, k, v, 30, 128, other, kvb)[1]
    out_d = run_decode(lib, q[0], k, v, 53, 128, lanes, kvb)[0]
    ref_d = run_decode(lib, q[0], k, v, 53, 128, other, kvb)[1]
    m1, m2 = mismatches(out, ref), mismatches(out_d, ref_d)
    print(f"dot_lanes {lanes} kernel vs dot_lanes {other} contract: prefill {m1} of {ref.size}, "
          f"decode {m2} of {ref_d.size} mismatches")
    assert m1 > 0 and m2 > 0
    assert np.allclose(out, ref, rtol=1e-4, atol=1e-5) and np.allclose(out_d, ref_d, rtol=1e-4, atol=1e-5)


# attention_layer: cached-style calls (decode and short multi-row calls: positions < kv_old over the
# weight ports, the call's own over the data port) and prefill-style calls (K/V over the data port) on one
# core. Kernel suffix -> (n_ports, kv dtype, dot_lanes, bq); all kv_block 16, d_max 128; the core's rows
# (attn_config rows_max = max(bq x group_max, heads_max)): 64 for bq 8 (group_max 8), 16 for bq 2.
LAYER = {"1": (1, "f32", 64, 8), "2": (2, "f32", 64, 8), "3": (3, "f32", 64, 8), "4": (4, "f32", 64, 8),
         "1_16": (1, "f16", 64, 8), "4_16": (4, "f16", 64, 8), "3_l16": (3, "f32", 16, 8),
         "2_16_l16": (2, "f16", 16, 8), "2_q2": (2, "f32", 32, 2), "4_16_q2": (4, "f16", 32, 2)}
TB_ROWS = {8: 64, 2: 16}  # bq -> rows_max of the tb configs


def layer_views(k, v, t_len: int, pos0: int, n_h: int, n_ports: int, bq: int, shift: int = 0):
    """(data-port k, v, port views, cached) for one call with kv_old = pos0, each view holding only what
    its reader may read (the rest NaN): cached-style (cost_attention.plan, the hardware's rule) the data
    port the call's positions >= pos0 and the ports the earlier ones (port p: pp % n_ports == p + shift);
    prefill-style the data port every position, the ports nothing."""
    cached = cost_attention.plan(t_len, n_h, k.shape[1], TB_ROWS[bq], bq).cached
    if not cached:
        return k, v, [(nan_like(k), nan_like(v))] * 4, False
    kd, vd = k.copy(), v.copy()
    kd[:pos0], vd[:pos0] = np.nan, np.nan
    ko, vo = nan_like(k), nan_like(v)
    ko[:pos0], vo[:pos0] = k[:pos0], v[:pos0]
    return kd, vd, head_ports(ko, vo, n_ports, shift), True


def _layer_heads(bq: int) -> list[tuple[int, int]]:
    """(n_heads, n_kv): GQA, MHA and MQA within the config (group_max 8 for bq 8, 2 for bq 2)."""
    return [(4, 2), (4, 4), (8, 1), (8, 2)] if bq == 8 else [(4, 2), (2, 2), (16, 8), (8, 8)]


@pytest.mark.parametrize("suffix", sorted(LAYER))
def test_layer_prefill_bit_exact(lib: ctypes.CDLL, suffix: str) -> None:
    """attention_layer with t_len > 1: 1 < t_len < bq, t_len == bq, t_len > bq with a partial last block,
    pos0 > 0, head_dim above and below dot_lanes, cached-style (short) and prefill-style calls. Each view
    holds only what its reader may read (layer_views; the rest NaN): a short call reads the positions
    before pos0 over the weight ports (fails on the core that read every position over the data port)."""
    n_ports, kv, lanes, bq = LAYER[suffix]
    rng = np.random.default_rng(len(suffix) * 31 + n_ports)
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=16)
    heads = _layer_heads(bq)
    cases = [(heads[0], 64, 2, 0), (heads[1], 96, bq - 1 if bq > 2 else 3, 3), (heads[2], 40, bq, 16),
             (heads[3], 128, 3 * bq + 1, 21), (heads[0], 64, 33, 40)]
    cases += [((8, 8), 96, 5, 133), ((16, 8) if bq == 2 else heads[1], 64, 2, 47)]  # verify-like calls
    total, n_cached = 0, 0
    for (n_h, n_kv), d, t_len, pos0 in cases:
        q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
        k, v = kv_cache(rng, pos0 + t_len, n_kv, d, kv=kv)
        kd, vd, ports, cached = layer_views(k, v, t_len, pos0, n_h, n_ports, bq)
        out = run_attention_layer(lib, suffix, q, t_len, pos0, kd, vd, ports, kv_old=pos0)
        s = pos0 + t_len
        with np.errstate(over="ignore", invalid="ignore"):
            ref = nx.attention(q, nx.kv_load(k[:s]), nx.kv_load(v[:s]), pos0, plan)
        mism = mismatches(out, ref)
        print(f"layer{suffix} {'cached' if cached else 'prefill'} {kv} A={lanes} bq={bq} H={n_h}/{n_kv} "
              f"d={d} T={t_len} pos0={pos0}: {mism} mismatches of {ref.size}")
        total += mism
        n_cached += cached
    assert total == 0
    assert n_cached >= 2


@pytest.mark.parametrize("suffix", sorted(LAYER))
def test_layer_decode_bit_exact(lib: ctypes.CDLL, suffix: str) -> None:
    """attention_layer with t_len == 1 up to the 4096-position context: the data-port cache is all NaN
    (decode reads the weight ports only), port p holds only its positions pp % n_ports == p. Rotating the
    ports by one changes the result (when there is more than one port and position)."""
    n_ports, kv, lanes, bq = LAYER[suffix]
    rng = np.random.default_rng(len(suffix) * 17 + n_ports)
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=16)
    total, rotated = 0, 0
    for (n_h, n_kv), d, ctx in zip(_layer_heads(bq), (64, 96, 40, 128), (300, 4096, 40, 1100), strict=True):
        k, v = kv_cache(rng, ctx, n_kv, d, extra=0, kv=kv)
        nan = nan_like(k)
        ports, ports_rot = head_ports(k, v, n_ports), head_ports(k, v, n_ports, 1)
        for pos in sorted({0, 15, 16, 17, ctx // 2, ctx - 1}):
            q = (rng.standard_normal((1, n_h, d)) * 2).astype(F32)
            out = run_attention_layer(lib, suffix, q, 1, pos, nan, nan, ports)
            with np.errstate(over="ignore", invalid="ignore"):
                ref = nx.attention(q, nx.kv_load(k[:pos + 1]), nx.kv_load(v[:pos + 1]), pos, plan)
            mism = mismatches(out, ref)
            total += mism
            if n_ports > 1:
                rotated += mismatches(run_attention_layer(lib, suffix, q, 1, pos, nan, nan, ports_rot), ref)
        print(f"layer{suffix} decode {kv} A={lanes} H={n_h}/{n_kv} d={d} ctx={ctx}: "
              f"{total} mismatches so far")
    print(f"rotated ports: {rotated} mismatches")
    assert total == 0
    if n_ports > 1:
        assert rotated > 0


@pytest.mark.parametrize("suffix", ["1", "3", "3_l16", "2_16_l16", "4_16_q2"])
def test_layer_split_call_bit_exact(lib: ctypes.CDLL, suffix: str) -> None:
    """A cached-style call in two parts (attention_layer.h key0 / key_end, decoder_layer.h: the keys
    before the last K/V block boundary <= pos0 while the k and v linears run, then the rest from the saved
    row state): decode and verify-like calls, the split at, below and well below pos0, bit-exact with the
    reference and with the call in one part. The views hold only what each reader may read (the data
    port NaN before pos0): the first part reads the weight ports alone."""
    n_ports, kv, lanes, bq = LAYER[suffix]
    rng = np.random.default_rng(n_ports * 7 + lanes)
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=16)
    heads = _layer_heads(bq)
    cases = [(heads[0], 64, 1, 16), (heads[1], 96, 2, 40), (heads[3], 128, 3, 133), (heads[2], 40, 1, 300),
             (heads[0], 64, 2, 32), (heads[1], 96, 4, 17)]
    total, whole_diff, n = 0, 0, 0
    for (n_h, n_kv), d, t_len, pos0 in cases:
        if not cost_attention.plan(t_len, n_h, n_kv, TB_ROWS[bq], bq).cached:
            continue
        q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
        k, v = kv_cache(rng, pos0 + t_len, n_kv, d, kv=kv)
        kd, vd, ports, _ = layer_views(k, v, t_len, pos0, n_h, n_ports, bq)
        s = pos0 + t_len
        with np.errstate(over="ignore", invalid="ignore"):
            ref = nx.attention(q, nx.kv_load(k[:s]), nx.kv_load(v[:s]), pos0, plan)
        whole = run_attention_layer(lib, suffix, q, t_len, pos0, kd, vd, ports, kv_old=pos0)
        for split in sorted({pos0 // 16 * 16, 16}):
            if not 0 < split <= pos0:
                continue
            out = run_attention_layer(lib, suffix, q, t_len, pos0, kd, vd, ports, kv_old=pos0, split=split)
            total += mismatches(out, ref)
            whole_diff += mismatches(out, whole)
            n += 1
    print(f"layer{suffix}: {n} split calls, {total} mismatches against the reference, {whole_diff} against "
          "the whole call")
    assert n >= 6 and total == 0 and whole_diff == 0


@pytest.mark.parametrize("suffix", ["4", "2_16_l16", "4_16_q2"])
def test_layer_prefill_rows_equal_decode(lib: ctypes.CDLL, suffix: str) -> None:
    """One sequence through one kernel: a prefill of T tokens at pos0, then each of those tokens decoded
    alone at its position; every decode output equals the prefill's row, bit for bit (same core, same
    contract), and both equal the reference."""
    n_ports, kv, lanes, bq = LAYER[suffix]
    rng = np.random.default_rng(n_ports + lanes)
    n_h, n_kv = _layer_heads(bq)[3]
    d, pos0, t_len = 96, 29, 2 * bq + 3
    q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
    k, v = kv_cache(rng, pos0 + t_len, n_kv, d, extra=0, kv=kv)
    nan = nan_like(k)
    kd, vd, views, _ = layer_views(k, v, t_len, pos0, n_h, n_ports, bq)
    pre = run_attention_layer(lib, suffix, q, t_len, pos0, kd, vd, views, kv_old=pos0)
    ports = head_ports(k, v, n_ports)
    dec = np.stack([run_attention_layer(lib, suffix, q[t:t + 1], 1, pos0 + t, nan, nan, ports)[0]
                    for t in range(t_len)])
    plan = nx.NumericsPlan(dot_lanes=lanes, kv_block=16)
    ref = nx.attention(q, nx.kv_load(k), nx.kv_load(v), pos0, plan)
    m_pd, m_ref = mismatches(pre, dec), mismatches(pre, ref)
    print(f"layer{suffix}: prefill vs decode rows {m_pd}, prefill vs reference {m_ref} "
          f"mismatches of {ref.size}")
    assert m_pd == 0 and m_ref == 0


# The compute process's cycle formula (attention_core.h header comment), held against the C-simulation
# trace of its pipelined loops: rows + q load (with K of tile 0) + per stage max(pass scoring tile st and
# accumulating tile st - 1, copy of K of tile st + 1 and V of tile st) + store. MIN_ROWS 8, MEM_LANES 16,
# DATA_LANES 4 as in every tb config.
def job_cycles(rows: int, th: int, n_keys: int, d: int, lanes: int, kvb: int) -> tuple[int, int, int]:
    """(steady-state cycles = loop iterations, pipelined-loop entries, K/V beats) of one attn_rows job:
    the compiler's performance model itself (compiler/cost_attention.job_counts), so these trace tests
    tie the model to the C simulation's loop counts."""
    return cost_attention.job_counts(cost_attention.AttnCall(rows, th, n_keys), d, lanes, kvb)


def former_job_cycles(rows: int, th: int, n_keys: int, d: int, lanes: int, kvb: int) -> int:
    """The serial core's formula: 2 R d + n_keys th nb + 2 n_keys nc nr + tiles R nc, with the row loop
    padded as the present core's (cost_attention.pass_rows: its o / l multiply-adds need the same
    distance; it used max(R, 8), too short for them when nc = 1)."""
    nc, nb = -(-d // lanes), -(-d // 16)
    nr = cost_attention.pass_rows(rows, nc)
    return 2 * rows * d + n_keys * th * nb + 2 * n_keys * nc * nr + -(-n_keys // kvb) * rows * nc


def call_jobs(t_len: int, pos0: int, n_h: int, n_kv: int, bq: int = 8) -> list[tuple[int, int, int]]:
    """(rows, tile heads, keys) of each job of one attention_layer call (the model's plan, TB_ROWS)."""
    return [(c.rows, c.tile_heads, c.keys)
            for c in cost_attention.call_jobs(t_len, pos0, n_h, n_kv, TB_ROWS[bq], bq)]


def _trace(lib: ctypes.CDLL, reset: bool = True) -> tuple[int, int, int]:
    t = np.zeros(3, np.int64)
    lib.tb_attn_trace(csim.ptr(t), ctypes.c_int(int(reset)))
    return int(t[0]), int(t[1]), int(t[2])


def test_cycle_formula_bitnet_large_decode() -> None:
    """The header's worked example: bitnet_b1_58-large decode at 129 keys."""
    assert job_cycles(16, 16, 129, 96, 16, 16)[0] == 15856  # 27568 before the score/accumulate overlap
    assert former_job_cycles(16, 16, 129, 96, 16, 16) == 41088


@pytest.mark.parametrize(("lanes", "d", "kvb"), [(64, 64, 16), (16, 96, 32), (8, 40, 16), (128, 128, 16),
                                                 (32, 96, 16), (128, 64, 32), (8, 64, 4)])
def test_trace_matches_cycle_formula(lib: ctypes.CDLL, lanes: int, d: int, kvb: int) -> None:
    """Decode and prefill through attention_prefill: the loops' trip counts and entries equal the header
    formula per job, the core reads exactly the beats the reader streams (every tile once, no tile past
    the last), compute-bound (A < d) and copy-bound (A >= d, many tile heads) tiles, bit-exact outputs."""
    rng = np.random.default_rng(lanes + d + kvb)
    _trace(lib)
    mism = 0
    for (n_h, n_kv), t_len, pos0 in (((8, 8), 1, 0), ((8, 8), 1, kvb), ((16, 8), 1, 3 * kvb + 4),
                                     ((4, 2), 1, 200), ((4, 2), 13, 5), ((8, 1), 9, 2 * kvb - 1),
                                     ((2, 2), 1 + kvb, 40)):
        q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
        k, v = kv_cache(rng, pos0 + t_len, n_kv, d)
        out, ref = run_prefill(lib, q, k, v, pos0, 128, lanes, kvb)
        mism += mismatches(out, ref)
        got = _trace(lib)
        want = np.sum([job_cycles(*j, d, lanes, kvb) for j in call_jobs(t_len, pos0, n_h, n_kv)], axis=0)
        former = sum(former_job_cycles(*j, d, lanes, kvb) for j in call_jobs(t_len, pos0, n_h, n_kv))
        print(f"A={lanes} d={d} kv_block={kvb} H={n_h}/{n_kv} T={t_len} pos0={pos0}: trace {got}, "
              f"formula {tuple(want)}, former serial core {former} cycles")
        assert got == tuple(want)
        assert want[0] < former
    assert mism == 0


def test_trace_layer_decode_over_ports(lib: ctypes.CDLL) -> None:
    """attention_layer decode over 3 ports and a prefill of two query blocks: trace equals the formula."""
    rng = np.random.default_rng(5)
    n_h, n_kv, d = 8, 2, 96
    k, v = kv_cache(rng, 70, n_kv, d, extra=0)
    nan = nan_like(k)
    _trace(lib)
    q = (rng.standard_normal((1, n_h, d)) * 2).astype(F32)
    run_attention_layer(lib, "3_l16", q, 1, 69, nan, nan, head_ports(k, v, 3))
    assert _trace(lib) == job_cycles(n_h, n_kv, 70, d, 16, 16)
    q = (rng.standard_normal((11, n_h, d)) * 2).astype(F32)
    run_attention_layer(lib, "3_l16", q, 11, 59, k, v, [(nan, nan)] * 4)
    want = np.sum([job_cycles(*j, d, 16, 16) for j in call_jobs(11, 59, n_h, n_kv)], axis=0)
    assert _trace(lib) == tuple(want)


def test_trace_split_call_matches_the_model(lib: ctypes.CDLL) -> None:
    """A decode call in two parts (split 64 of 70 keys) with a whole call between them (run_attention_layer):
    the trace is the model's two parts (cost_attention.job_counts over each part's keys plus part_counts'
    state loops: the first part's (l, m) store, the second's o and (l, m) load) and the whole call."""
    rng = np.random.default_rng(9)
    n_h, n_kv, d = 8, 2, 96
    k, v = kv_cache(rng, 70, n_kv, d, extra=0)
    nan = nan_like(k)
    q = (rng.standard_normal((1, n_h, d)) * 2).astype(F32)
    _trace(lib)
    run_attention_layer(lib, "3_l16", q, 1, 69, nan, nan, head_ports(k, v, 3), split=64)

    def part(keys: int, which: int) -> np.ndarray:
        steady, loops, beats = job_cycles(n_h, n_kv, keys, d, 16, 16)
        extra, more = cost_attention.part_counts(n_h, d, which)
        return np.array([steady + extra, loops + more, beats])

    want = part(64, cost_attention.FIRST) + part(70, cost_attention.WHOLE) + part(6, cost_attention.SECOND)
    assert _trace(lib) == tuple(int(x) for x in want)


def test_one_attention_core() -> None:
    """The HLS sources instantiate the core from exactly one call site (attention_layer's compute
    process), and every attention entry is a wrapper of attention_layer."""
    from edgellm.hw import synth_check

    calls, entries = [], {}
    for h in sorted((csim.INCLUDE_DIR / "edgellm").glob("*.h")):
        code = synth_check.strip_source(h.read_text())
        calls += [(h.name, code[:m.start()].count("\n") + 1) for m in re.finditer(r"\battn_rows\s*<", code)]
        for name in ("attention_prefill", "attention_decode", "attention_decode_ports"):
            m = re.search(rf"\bvoid\s+{name}\s*\([^)]*\)\s*\{{", code)
            if m:
                entries[name] = code[m.end():code.index("\n}", m.end())]
    print(f"attn_rows call sites: {calls}")
    assert len(calls) == 1 and calls[0][0] == "attention_layer.h"
    assert set(entries) == {"attention_prefill", "attention_decode", "attention_decode_ports"}
    for name, body in entries.items():
        assert re.fullmatch(r"\s*attention_layer\s*<[^;]*;\s*", body), (name, body)
