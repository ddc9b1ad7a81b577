"""The low-bit weight gearbox's host side (runtime/lowbit_gear.py, compiler/packing_gear.py): which shares
gear, the words each port carries, the port images and their inverse, the memory plan's port offsets and the
image read back (the C-simulated gearbox: tests/test_hw_lowbit_layer_top.py test_weight_gearbox)."""

from __future__ import annotations

import numpy as np
import pytest
from shared_lowbit import mixed_model

from edgellm.compiler import interface as itf
from edgellm.compiler.design import DesignParams
from edgellm.compiler.memory_plan_lowbit import LowbitEncoder, decode_record, image_from_buffer, record
from edgellm.compiler.packing_gear import WORD, gear_ports, lane_images
from edgellm.errors import EdgeLLMError
from edgellm.runtime.lowbit_gear import Gear, gear_of, gear_of_design


@pytest.mark.parametrize("shares, lanes, gear", [
    ((9, 7, 7, 9), 4, Gear(8, 1, 1)),  # KV260 / ZCU104's rate shares
    ((10, 6, 7, 9), 4, Gear(8, 2, 1)),
    ((9, 7, 7, 9), 2, Gear()),  # a 2-port engine
    ((), 4, Gear()),  # equal shares
    ((7, 9, 9, 7), 4, Gear()),  # ports 1 and 2 faster: not the pattern
    ((9, 7, 8, 8), 4, Gear()),  # only one pair unequal
    ((9, 7, 7, 8), 4, Gear()),  # not a whole cycle
])
def test_gear_of(shares: tuple[int, ...], lanes: int, gear: Gear) -> None:
    assert gear_of(shares, lanes) == gear


def test_words_per_port_follow_the_shares() -> None:
    """Over whole cycles port p carries s_p words a cycle; a pass's words per port add up to 4 x nb; a
    partial cycle gives only the beats past C - k."""
    g = gear_of((9, 7, 7, 9), 4)
    assert [g.port_beats(p, 80) for p in range(4)] == [90, 70, 70, 90]
    for nb in range(1, 40):
        assert sum(g.port_beats(p, nb) for p in range(4)) == 4 * nb
        assert g.kept(1, nb) == sum(not g.donated(1, i) for i in range(nb))
    assert g.kept(1, 7) == 7 and g.kept(1, 8) == 7 and g.kept(1, 15) == 14


@pytest.mark.parametrize("gear", [Gear(8, 1, 1), Gear(5, 2, 1), Gear(3, 1, 2)])
@pytest.mark.parametrize("nb", [1, 7, 8, 13, 40])
def test_port_images_and_back(gear: Gear, nb: int) -> None:
    """Port 0: each beat's lane-0 word, then lane 1's word on its given beats (port 3: lane 3, lane 2);
    ports 1 and 2: their lanes' other words; lane_images inverts it."""
    rng = np.random.default_rng(nb)
    lanes = [rng.integers(0, 256, nb * WORD, dtype=np.uint8) for _ in range(4)]
    ports = gear_ports(lanes, gear)
    w = [x.reshape(-1, WORD) for x in lanes]
    p0, j = ports[0].reshape(-1, WORD), 0
    for i in range(nb):
        assert (p0[j] == w[0][i]).all()
        j += 1
        if gear.donated(1, i):
            assert (p0[j] == w[1][i]).all()
            j += 1
    assert j == len(p0)
    assert (ports[2].reshape(-1, WORD) == w[2][[not gear.donated(2, i) for i in range(nb)]]).all()
    back = lane_images([np.concatenate([x, np.full(3 * WORD, 0xA5, np.uint8)]) for x in ports], gear, nb)
    assert all((a == b).all() for a, b in zip(back, lanes, strict=True))
    with pytest.raises(EdgeLLMError, match="port 1's image"):
        lane_images([ports[0], ports[1][:-WORD], ports[2], ports[3]], gear, nb)


def test_memory_plan_offsets_and_read_back() -> None:
    """The encoder lays the port images one after another, each 64-byte padded (LB_PORT1_OFF ..: no
    padding to the longest image, so a geared linear takes the bytes of its words and no more), and
    image_from_buffer reads the same LowbitImage back under the gearbox (and garbage without it)."""
    qm = mixed_model(False, seed=3).model
    gear = Gear(8, 1, 1)
    enc = LowbitEncoder(128, 512, gear)
    lin = qm.layers[0].gate
    blob = enc(lin)
    img, offsets = enc.pending[0]
    nb = img.data.size // 64
    sizes = [-(-gear.port_beats(u, nb) * WORD // 64) * 64 for u in range(4)]
    assert offsets == [0, *np.cumsum(sizes).tolist()] and blob.size == sum(sizes)
    assert blob.size < 4 * sizes[0] and blob.size - img.data.size < 4 * 64  # the words, 64-byte padded
    fields = decode_record(record(img, offsets, None))  # the record's words as the read-back sees them
    assert [fields[f] for f in itf.LB_PORT_OFF] == offsets[1:4]
    out, k = lin.shape
    back = image_from_buffer(blob, 0, fields, out, k, 128, 512, gear)
    assert (back.data == img.data).all()
    assert not (image_from_buffer(blob, 0, fields, out, k, 128, 512).data == img.data).all()


def test_design_gear_fields() -> None:
    """design.lowbit_gear builds the shares' gearbox; shares that do not gear are refused (the design and a
    manifest's design record); no gearbox without the flag."""
    p = DesignParams(matmul="lowbit", lowbit_ports=4, port_shares=(9, 7, 7, 9), lowbit_gear=True)
    assert p.gear == Gear(8, 1, 1) and p.replace(lowbit_gear=False).gear == Gear()
    with pytest.raises(EdgeLLMError, match="give no gearbox"):
        DesignParams(matmul="lowbit", lowbit_ports=4, port_shares=(8, 8, 8, 7), lowbit_gear=True)
    d = p.to_dict()
    assert gear_of_design(d) == Gear(8, 1, 1)
    with pytest.raises(EdgeLLMError, match="manifest: design.lowbit_gear is true .* give no gearbox"):
        gear_of_design({**d, "port_shares": [7, 9, 9, 7]})
    assert gear_of_design({**d, "lowbit_gear": False}) == Gear()


def test_the_search_gears_and_its_reference_does_not() -> None:
    """On the KV260 the low-bit search gears its 4-port engine (9:7:7:9: the linears stream at the shares'
    13.69 GB/s, not the lockstep 12.74) and decodes faster than the same search without the gearbox
    (estimate(gear=False): bench/lowbit_projections.py's reference column)."""
    from edgellm.boards import load_board
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.compiler.cost import lowbit_run as lr
    from edgellm.compiler.cost import lowbit_search as ls
    from edgellm.models.config import PRESETS

    board = load_board("kv260")
    src = le.from_preset(PRESETS["qwen2.5-0.5b"], "Q4_0")
    e, ref = le.estimate(src, board), le.estimate(src, board, gear=False)
    assert e.engine.gear == Gear(8, 1, 1) and not ref.engine.gear.active
    central = board.with_scenario("central")
    rates = [lr.engine_bandwidth(central, ls.design(central, x.engine, x.vector)).weights / 1e9
             for x in (e, ref)]
    assert [round(r, 2) for r in rates] == [13.69, 12.74]
    assert e.decode["central"] > ref.decode["central"] and e.bound == ref.bound
