"""The weight ports' images of a low-bit tensor under the gearbox (runtime/lowbit_gear.py; the fetchers
that split and merge them: hw/include/edgellm/lowbit_gear.h): from the engine's lane images
(packing_lowbit.port_images: lane u = 128-bit column u of every engine beat) and back.

Port 0 carries, beat by beat, lane 0's word and, on the beats lane 1 gives it, lane 1's word right after;
port 3 likewise lane 3 and lane 2's given words; ports 1 and 2 their lanes' other words in order.
"""

from __future__ import annotations

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.lowbit_gear import GEAR_LANES, Gear

WORD = 16  # bytes of a weight-port word (one 128-bit beat)


def _given_mask(gear: Gear, lane: int, nb: int) -> np.ndarray:
    beats = np.arange(nb)
    k = gear.given(lane)
    return (beats % gear.cycle >= gear.cycle - k) if k else np.zeros(nb, bool)


def gear_ports(lanes: list[np.ndarray], gear: Gear) -> list[np.ndarray]:
    """The ports' byte images of the lanes' byte images (each nb words) under `gear` (the lanes
    themselves when it is inactive)."""
    if not gear.active:
        return lanes
    if len(lanes) != GEAR_LANES:
        raise EdgeLLMError(f"weight gearbox: {GEAR_LANES} lanes, got {len(lanes)}")
    nb = lanes[0].size // WORD
    words = [np.asarray(x, np.uint8).reshape(nb, WORD) for x in lanes]
    out = []
    for p in range(GEAR_LANES):
        r = gear.recipient(p)
        if r >= 0:  # beat-major: own word, then the recipient's word of the beats it gives
            pair = np.stack([words[p], words[r]], axis=1)
            keep = np.stack([np.ones(nb, bool), _given_mask(gear, r, nb)], axis=1)
            out.append(np.ascontiguousarray(pair[keep]).reshape(-1))
        else:
            out.append(np.ascontiguousarray(words[p][~_given_mask(gear, p, nb)]).reshape(-1))
    for p, x in enumerate(out):
        assert x.size == WORD * gear.port_beats(p, nb)
    return out


def lane_images(ports: list[np.ndarray], gear: Gear, nb: int) -> list[np.ndarray]:
    """The inverse of gear_ports: the lanes' byte images (nb words each) from the ports' images (each
    at least gear.port_beats words; EdgeLLMError when one is shorter)."""
    if not gear.active:
        return [np.asarray(x, np.uint8)[:nb * WORD] for x in ports]
    for p, x in enumerate(ports):
        if x.size < WORD * gear.port_beats(p, nb):
            raise EdgeLLMError(f"weight gearbox: port {p}'s image holds {x.size // WORD} words of the "
                               f"{gear.port_beats(p, nb)} it carries")
    lanes = [np.zeros((nb, WORD), np.uint8) for _ in range(GEAR_LANES)]
    for p in range(GEAR_LANES):
        x = np.asarray(ports[p], np.uint8)[:WORD * gear.port_beats(p, nb)].reshape(-1, WORD)
        r = gear.recipient(p)
        if r >= 0:
            given = _given_mask(gear, r, nb)
            keep = np.stack([np.ones(nb, bool), given], axis=1).reshape(-1)
            slot = np.cumsum(keep) - 1  # position of every (beat, own / given) word in the port's image
            own_at = slot.reshape(nb, 2)[:, 0]
            lanes[p][:] = x[own_at]
            lanes[r][given] = x[slot.reshape(nb, 2)[given, 1]]
        else:
            lanes[p][~_given_mask(gear, p, nb)] = x
    return [lane.reshape(-1) for lane in lanes]
