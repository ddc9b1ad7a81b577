"""The TLMM weight ports' shares of a tile (DesignParams.port_shares, tlmm_config.h SHARE0..3): the DSE
gives them in proportion to the ports' rates (cost/ddr.rate_shares), the model prices the port that
finishes its share last, and the generated configuration carries them (docs/weight_format.md "Ports").
The C simulation of unequal shares is tests/test_hw_tlmm.py's (c4s, a4s, b3s, c4ls)."""

from __future__ import annotations

import pytest

from edgellm.boards import load_board
from edgellm.compiler.codegen_config import tlmm_fields
from edgellm.compiler.cost import ddr
from edgellm.compiler.cost.tlmm import fifo_tile_load_cycles, port_run_cols
from edgellm.compiler.design import DesignParams, shares_for, stream_ports
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS

KV260 = load_board("kv260")
P4 = DesignParams(rows=16, weight_ports=4)


def test_rate_shares_follow_the_ports_paths() -> None:
    """KV260 / ZCU104: HP1 and HP2 share XPI 4 (3.185 GB/s each, central), HP0 and HP3 are alone on
    theirs (3.85): 9 : 7 : 7 : 9 of 32 units. Equal rates give () (equal shares): the Ultra96-V2's and
    PYNQ-Z2's ports on paths of their own, or ports slower than every path (R = 4: 1 GB/s each)."""
    assert ddr.rate_shares(KV260, P4) == (9, 7, 7, 9)
    assert ddr.rate_shares(load_board("zcu104"), P4) == (9, 7, 7, 9)
    assert ddr.rate_shares(load_board("ultra96v2"), P4.replace(weight_ports=2)) == ()
    assert ddr.rate_shares(load_board("pynq_z2"), P4.replace(port_width_bits=64)) == ()
    assert ddr.rate_shares(KV260, P4.replace(rows=4)) == ()
    assert ddr.rate_shares(KV260, P4.replace(weight_ports=1)) == ()


def test_the_port_finishing_last_sets_the_pace() -> None:
    """Equal shares: four times the slowest stream (12.74 GB/s central); 9:7:7:9: HP0/HP3 at 3.85 x 32 / 9
    = 13.69 (central), the DDR ceiling at the low end, 3.94 x 32 / 9 at the high end (the shares are
    built for the central rates, so there HP0/HP3 finish last while XPI 4 could give more)."""
    shared = P4.replace(port_shares=(9, 7, 7, 9))
    assert ddr.bandwidth(KV260, P4).weights == pytest.approx(4 * 3.185e9)
    assert ddr.bandwidth(KV260, shared).weights == pytest.approx(3.85e9 * 32 / 9)
    assert ddr.bandwidth(KV260.with_scenario("low"), shared).weights == pytest.approx(12.73e9, rel=1e-3)
    assert ddr.bandwidth(KV260.with_scenario("high"), shared).weights == pytest.approx(3.94e9 * 32 / 9)
    # shares against the rates are worse than equal ones: HP1/HP2 would carry the most
    assert ddr.bandwidth(KV260, P4.replace(port_shares=(7, 9, 9, 7))).weights < 12.74e9


def test_the_busiest_port_loads_the_tile() -> None:
    """A tile's load from the FIFOs takes the largest run (two columns a cycle): 2560 inputs = 512 byte
    columns; equal: 128 a port, 64 cycles; 9:7:7:9: 9 x ceil(512 / 32) = 144, 72 cycles."""
    p = DesignParams(group_size=3, tables=25, rows=16, weight_ports=4)
    assert port_run_cols(512, p, 4) == 128 and fifo_tile_load_cycles(2560, p, 4) == 64
    ps = p.replace(port_shares=(9, 7, 7, 9))
    assert port_run_cols(512, ps, 4) == 144 and fifo_tile_load_cycles(2560, ps, 4) == 72


def test_shares_reach_the_generated_configuration() -> None:
    """tlmm_cfg names SHARE0..3 when the design lists shares, none (the base's equal shares) otherwise;
    a list for another number of ports is one error line."""
    cfg = PRESETS["bitnet_b1_58-large"]
    names = {f[0]: f[1] for f in tlmm_fields(cfg, P4.replace(port_shares=(9, 7, 7, 9)), 16, 4)}
    assert [names[f"SHARE{i}"] for i in range(4)] == [9, 7, 7, 9]
    assert not any(f[0].startswith("SHARE") for f in tlmm_fields(cfg, P4, 16, 4))
    with pytest.raises(EdgeLLMError, match="lists 4 shares for the TLMM's 2 weight ports"):
        tlmm_fields(cfg, P4.replace(port_shares=(9, 7, 7, 9)), 16, 2)
    assert shares_for(P4, stream_ports(KV260, P4)) == (1, 1, 1, 1) and shares_for(P4, 3) == (1, 1, 1)


@pytest.mark.parametrize("bad", [(0, 1), (1,) * 5, (40, 40), (True, 1), "9,7,7,9"])
def test_bad_shares_are_refused(bad: object) -> None:
    with pytest.raises(EdgeLLMError, match="port_shares must be"):
        DesignParams(port_shares=bad)  # type: ignore[arg-type]


def test_the_dse_builds_rate_shares() -> None:
    """compile's design for the KV260 carries the board's rate shares; the manifest's JSON list reads back
    as the tuple."""
    from edgellm.compiler import dse

    p = dse.explore(PRESETS["bitnet_b1_58-large"], KV260, DesignParams()).params
    assert p.port_shares == ddr.rate_shares(KV260, p) == (9, 7, 7, 9)
    assert DesignParams(**{**p.to_dict(), "port_shares": [9, 7, 7, 9]}) == p
