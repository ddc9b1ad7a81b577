"""The low-bit engine's weight gearbox (hw/include/edgellm/lowbit_gear.h; docs/hls.md "Weight gearbox").

The engine pops one 128-bit word of each of its four lanes a beat (lowbit_source.h lb_read), so with every
lane on its own weight port the ports stream equal shares, and where the board gives two ports a faster
path than the other two (KV260 / ZCU104: HP0 and HP3, rate shares 9:7:7:9) the engine runs at four times
the slowest port's rate. The gearbox lets the fast ports carry part of the slow lanes: in every cycle of
C engine beats, port 0 carries the last k1 beats' words of lane 1 as well as its own lane 0, port 3 the
last k2 beats' of lane 2; ports 1 and 2 carry the rest of their lanes. The fetchers split port 0's and
port 3's images into the lane FIFO and a side FIFO (lowbit_policy.h fetch), and a merge process per
geared lane puts the words back in beat order (lb_lane_merge), so the engine's stream is unchanged.

Shares s0:s1:s2:s3 (design.port_shares) gear when s0 + s1 + s2 + s3 = 4 C and port 0 has exactly what
lane 1 lacks (s0 - C = C - s1 > 0) and port 3 what lane 2 lacks (s3 - C = C - s2 > 0); any other pattern
(ports 1 / 2 faster, one pair unequal) is not geared and the engine keeps equal shares. Pure Python:
the board-side bounds check (runtime/bounds_lowbit.py) sizes the port images with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.errors import EdgeLLMError

GEAR_LANES = 4  # the gearbox serves 4-port engines (BW 512): lanes 1 and 2 take words from ports 0 and 3


@dataclass(frozen=True)
class Gear:
    """cycle C (engine beats; 0: no gearbox), k1 / k2: the last beats of every cycle whose lane-1 / lane-2
    word port 0 / port 3 carries."""

    cycle: int = 0
    k1: int = 0
    k2: int = 0

    @property
    def active(self) -> bool:
        return self.cycle > 0

    def given(self, lane: int) -> int:
        """Beats per cycle whose word of `lane` another port carries (lane 1: port 0, lane 2: port 3)."""
        return (self.k1 if lane == 1 else self.k2 if lane == 2 else 0) if self.active else 0

    def recipient(self, port: int) -> int:
        """The lane whose words `port` carries besides its own (-1: none)."""
        lane = {0: 1, 3: 2}.get(port, -1)
        return lane if lane >= 0 and self.given(lane) else -1

    def donated(self, lane: int, beat: int) -> bool:
        """Whether `lane`'s word of engine beat `beat` (of a pass) travels on its donor port."""
        k = self.given(lane)
        return k > 0 and beat % self.cycle >= self.cycle - k

    def kept(self, lane: int, nb: int) -> int:
        """Words of `lane` its own port carries in a pass of nb engine beats."""
        k = self.given(lane)
        if not k:
            return nb
        return nb // self.cycle * (self.cycle - k) + min(nb % self.cycle, self.cycle - k)

    def port_beats(self, port: int, nb: int) -> int:
        """Words port `port` streams for a pass of nb engine beats: its lane's kept words and the words
        of the lane it carries part of."""
        r = self.recipient(port)
        return self.kept(port, nb) + (nb - self.kept(r, nb) if r >= 0 else 0)


NO_GEAR = Gear()  # no gearbox: every lane on its own port


def gear_of(shares: tuple[int, ...] | list[int], lanes: int) -> Gear:
    """The gearbox for weight ports of these rate shares feeding a `lanes`-lane engine: Gear() (none)
    unless lanes is GEAR_LANES and the shares take the pattern the module docstring names."""
    if lanes != GEAR_LANES or len(shares) != GEAR_LANES or sum(shares) % GEAR_LANES:
        return Gear()
    s0, s1, s2, s3 = (int(s) for s in shares)
    c = sum(shares) // GEAR_LANES
    k1, k2 = s0 - c, s3 - c
    if k1 <= 0 or k2 <= 0 or c - s1 != k1 or c - s2 != k2 or k1 >= c or k2 >= c:
        return Gear()
    return Gear(c, k1, k2)


def gear_of_design(design: dict) -> Gear:
    """The gearbox a manifest's design record builds (design.lowbit_gear over design.port_shares and
    design.lowbit_ports); Gear() when it builds none; EdgeLLMError when lowbit_gear names shares that do not
    gear (a manifest no compile writes)."""
    if not design.get("lowbit_gear"):
        return Gear()
    g = gear_of(tuple(design.get("port_shares") or ()), int(design.get("lowbit_ports") or 0))
    if not g.active:
        raise EdgeLLMError(f"manifest: design.lowbit_gear is true but port_shares "
                           f"{design.get('port_shares')} over {design.get('lowbit_ports')} lowbit_ports give "
                           "no gearbox")
    return g
