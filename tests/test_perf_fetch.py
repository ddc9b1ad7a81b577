"""The weight fetcher's fluid FIFO model (compiler/cost_fetch.py) and its use by the performance,
resource and design-space models."""

from __future__ import annotations

import random

import pytest

from edgellm.boards import load_board
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import tlmm as cost_tlmm
from edgellm.compiler.cost.fetch import Phase, simulate
from edgellm.compiler.cost.memory import uram_for
from edgellm.compiler.cost.resource_model import estimate_resources, fetch_fifos
from edgellm.compiler.design import FETCH_BEATS, DesignParams
from edgellm.compiler.packing import packed_size
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS

LARGE = PRESETS["bitnet_b1_58-large"]
KV260 = load_board("kv260")
# the KV260 design the DSE chose before the fetcher (G2 T20 R16, 4 ports, LUTRAM banks)
KV260_DESIGN = DesignParams(group_size=2, tables=20, rows=16, attn_lanes=16, attn_kv_block=8, ew_vec=2,
                            ew_lanes=16, weight_buffer="lutram", prefill_token_block=16)


def brute_force(phases: list[Phase], rate: float, capacity: float, dt: float) -> float:
    """Discrete-time simulation (step dt) of the same FIFO: each step the producer offers up to
    rate * dt (less the phase's other DDR traffic while the phase's nominal seconds last, never more than
    the program's bytes left), the consumer takes up to its nominal rate * dt of what is there, and the
    level is capped at capacity."""
    left = sum(ph.nbytes for ph in phases)
    level = t = 0.0
    for ph in phases:
        b0, steps = rate - ph.ddr_share_bytes / ph.seconds, round(ph.seconds / dt)
        if ph.nbytes == 0:
            for _ in range(steps):
                gain = min(b0 * dt, capacity - level, left)
                level, left = level + gain, left - gain
                t += dt
            continue
        r, rem, k = ph.nbytes / ph.seconds, ph.nbytes, 0
        while rem > 1e-9 * ph.nbytes:  # (relative: the byte counts carry rounding)
            b, k = (b0 if k < steps else rate), k + 1
            made = min(b * dt, max(left, rem - level))
            cons = min(r * dt, level + made, rem)
            new = level + made - cons
            if new > capacity:  # the producer stops when the FIFO is full
                made -= new - capacity
                new = capacity
            level, left, rem = new, left - made, rem - cons
            t += dt
    return t


def random_program(rng: random.Random, rate: float, n: int = 12) -> list[Phase]:
    phases = []
    for _ in range(n):
        s = rng.uniform(0.2, 2.0)
        if rng.random() < 0.45:  # a gap, sometimes with other DDR traffic (attention's K/V reads)
            share = rng.uniform(0, 0.9 * rate * s) if rng.random() < 0.5 else 0.0
            phases.append(Phase(0, s, share))
        else:  # a linear, at a rate below or above the producer's
            share = rng.uniform(0, 0.5 * rate * s) if rng.random() < 0.2 else 0.0
            phases.append(Phase(rng.uniform(0.1, 3.0) * rate * s, s, share))
    return phases


def test_matches_brute_force_simulation() -> None:
    rng = random.Random(7)
    dt = 1e-3
    for _ in range(25):
        rate = rng.uniform(0.5, 3.0)
        phases = random_program(rng, rate)
        cap = rng.choice([0.0, rng.uniform(0.1, 2.0), rng.uniform(2.0, 20.0), 1e9])
        fluid = simulate(phases, rate, cap).seconds
        brute = brute_force(phases, rate, cap, dt)
        # each phase is off by at most one step (the last, partial one), each step by at most dt
        assert fluid == pytest.approx(brute, abs=2 * dt * len(phases)), (phases, cap)


def test_monotone_in_capacity_and_bounds() -> None:
    rng = random.Random(11)
    for _ in range(40):
        rate = rng.uniform(0.5, 3.0)
        phases = random_program(rng, rate)
        times = [simulate(phases, rate, c).seconds for c in (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 1e9)]
        assert all(a >= b - 1e-12 for a, b in zip(times, times[1:], strict=False)), times
        total = sum(ph.nbytes for ph in phases)
        nominal = sum(ph.seconds for ph in phases)
        for t in times:
            assert t >= total / rate - 1e-9 and t >= nominal - 1e-9
        # no FIFO: every linear its time, or the producer's rate left while its other traffic lasts and
        # then the whole rate or the linear's own, whichever is less; gaps as they are
        unbuffered = sum(ph.seconds + max(0.0, ph.nbytes - (rate * ph.seconds - ph.ddr_share_bytes))
                         / min(rate, ph.nbytes / ph.seconds) if ph.nbytes else ph.seconds for ph in phases)
        assert times[0] == pytest.approx(unbuffered, rel=1e-12)
        res = simulate(phases, rate, 3.0)
        assert res.stall == pytest.approx(res.seconds - nominal, abs=1e-9) and res.stall >= 0


def test_prefetch_hides_a_gap_and_ddr_share_slows_it() -> None:
    # a 1 s gap then a linear of 4 bytes in 1 s at 2 bytes/s: 2 bytes prefetched, the rest in 1 s
    prog = [Phase(0, 1.0), Phase(4.0, 1.0)]
    assert simulate(prog, 2.0, 0.0).seconds == pytest.approx(3.0)
    assert simulate(prog, 2.0, 1e9).seconds == pytest.approx(2.0)
    assert simulate(prog, 2.0, 1.0).seconds == pytest.approx(2.5)  # capacity caps the prefetch
    assert simulate(prog, 2.0, 1e9).stall == pytest.approx(0.0)
    # other DDR traffic of 1 byte during the gap leaves 1 byte/s for the producer
    shared = [Phase(0, 1.0, 1.0), Phase(4.0, 1.0)]
    assert simulate(shared, 2.0, 1e9).seconds == pytest.approx(2.5)
    assert simulate(shared, 2.0, 1e9).stall == pytest.approx(0.5)
    # the producer never runs ahead of the program: nothing to prefetch for a later gap
    assert simulate([Phase(1.0, 1.0), Phase(0, 5.0)], 1.0, 1e9).seconds == pytest.approx(6.0)
    # a linear held up past its other traffic (5 bytes in its 1 s: none left for the producer) gets the
    # whole rate after it: 4 bytes at 2 bytes/s; one that needs fewer bytes a second than the producer
    # offers takes them at its own rate (2 bytes at 1 byte/s) and leaves the rest in the FIFO
    assert simulate([Phase(4.0, 1.0, 5.0)], 2.0, 0.0).seconds == pytest.approx(3.0)
    assert simulate([Phase(2.0, 2.0, 4.0), Phase(0, 1.0)], 2.0, 1e9).seconds == pytest.approx(5.0)


def test_elementwise_gaps_sum_to_layer_cycles() -> None:
    for cfg in (LARGE, PRESETS["bitnet-b1.58-2B-4T"]):
        for tokens in (1, 16):
            p = KV260_DESIGN
            assert sum(cost_model.elementwise_gaps(cfg, p, tokens)) == cost_elementwise.layer_cycles(
                cfg, p, tokens)


def test_decode_deep_fifo_faster_than_shallow() -> None:
    shallow = cost_model.decode_step(LARGE, KV260, KV260_DESIGN.replace(fetch_depth=2))
    deep = cost_model.decode_step(LARGE, KV260, KV260_DESIGN.replace(fetch_depth=8192))
    assert deep.seconds < 0.95 * shallow.seconds
    assert deep.detail["stall"] < shallow.detail["stall"]
    # never faster than streaming the weights once at the fetcher's rate, plus the LM head
    bw = cost_ddr.bandwidth(KV260, KV260_DESIGN)
    image = sum(packed_size(o, i, 16) for o, i in LARGE.linear_shapes().values())  # the encoder's bytes
    assert deep.parts["layers"] >= deep.detail["fetch"] == pytest.approx(LARGE.n_layers * image / bw.weights)
    assert cost_model.fetch_capacity_bytes(KV260, KV260_DESIGN.replace(fetch_depth=8192)) == (
        4 * 8192 * FETCH_BEATS * 16)
    # the tile banks fill from the FIFOs two columns per port and cycle (BEATS_PER_STEP = 8 here)
    assert cost_tlmm.fifo_tile_load_cycles(1536, KV260_DESIGN, 4) == 39  # ceil(ceil(308 / 4) / 2)
    assert cost_tlmm.fifo_tile_load_cycles(1536, KV260_DESIGN.replace(group_size=1, tables=5), 4) == 77


def test_fetch_depth_validated() -> None:
    for bad in (0, 1, 3, 1000, 131072):
        with pytest.raises(EdgeLLMError, match="fetch_depth"):
            DesignParams(fetch_depth=bad)
    assert DesignParams(fetch_depth=2).fetch_depth == 2


def test_fetch_resources() -> None:
    """Per port: a 2R-byte-wide FIFO (URAM from 1024 words where the board has URAM, else BRAM),
    walker + loader mux LUTs; its own entry in the resource report."""
    p = KV260_DESIGN.replace(fetch_depth=8192)
    assert fetch_fifos(KV260, p).uram == 4 * uram_for(256, 8192) == 32
    assert fetch_fifos(KV260, p.replace(fetch_depth=512)).bram36 == 4 * 4 * 1
    assert fetch_fifos(load_board("ultra96v2"), p.replace(weight_ports=2)).bram36 == 2 * 4 * 16
    assert fetch_fifos(KV260, p.replace(fetch_depth=16)).lut > 0  # 16 x 256 bits: distributed RAM
    res = estimate_resources(LARGE, KV260, p)
    assert res["fetch"].uram == 32 and res["fetch"].lut > 4 * 600
    assert res["total"].uram == sum(r.uram for k, r in res.items() if k != "total")
    assert estimate_resources(LARGE, KV260, p.replace(overlap=False))["fetch"].lut == 0


def test_decode_key_covers_what_decode_reads() -> None:
    """dse.decode_key leaves out the storage kinds: decode and prefill must not read them."""
    from edgellm.compiler.dse import decode_key

    p = KV260_DESIGN.replace(fetch_depth=4096)
    for q in (p.replace(weight_buffer="uram"), p.replace(act_buffer="uram"), p.replace(weight_buffer="bram")):
        assert decode_key(q) == decode_key(p)
        for f in (cost_model.decode_step, lambda *a: cost_model.prefill(*a, 32)):
            assert f(LARGE, KV260, q).seconds == f(LARGE, KV260, p).seconds
    assert decode_key(p) != decode_key(p.replace(fetch_depth=512))
