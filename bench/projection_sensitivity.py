"""How the projection of a design moves with the bandwidth it gets and the clock it closes at.

For the DSE's design of a model on a board (or the design it would choose under --lut-cap / --clock),
prints decode tok/s (at 128 cached tokens) and TTFT(128):

- at the board's three named bandwidth scenarios (low, central, high; boards/*.toml) and at 250, 225 and
  200 MHz (the board's PL clock and 90% / 80% of it);
- with every central bandwidth figure of the board (DDR ceiling, shared-XPI share, CCI stream, lone
  stream) scaled by 0.7 .. 1.3, at the design's clock, with the weight streams' resulting GB/s.

All figures are projections of the performance model (docs/performance.md), not measurements. Usage:
python bench/projection_sensitivity.py [--preset bitnet_b1_58-large] [--board kv260] [--lut-cap 0.75]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from edgellm.boards import SCENARIOS, Board, load_board
from edgellm.compiler import dse
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import DesignParams
from edgellm.models.config import PRESETS, ModelConfig

CLOCK_FRACTIONS = (1.0, 0.9, 0.8)
SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


def scaled(board: Board, k: float) -> Board:
    """The board at its central scenario with every bandwidth figure times k (the DDR ceiling at most the
    peak)."""
    def x3(v: tuple[float, float, float] | None, most: float | None = None) -> tuple | None:
        if v is None:
            return None
        c = v[1] * k if most is None else min(most, v[1] * k)
        return (c, c, c)

    return dataclasses.replace(board.with_scenario("central"), ddr_pl_fraction=x3(board.ddr_pl_fraction, 1.0),
                               shared_path_gbps=x3(board.shared_path_gbps),
                               cci_stream_gbps=x3(board.cci_stream_gbps),
                               port_stream_gbps=x3(board.port_stream_gbps))


def point(cfg: ModelConfig, board: Board, p: DesignParams) -> tuple[float, float, float]:
    """(weight GB/s, decode tok/s, TTFT(128) s) of p on board."""
    return (cost_ddr.bandwidth(board, p).weights / 1e9, cost_model.decode_step(cfg, board, p).tokens_per_s,
            cost_model.prefill(cfg, board, p, 128).seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bitnet_b1_58-large", choices=sorted(PRESETS))
    ap.add_argument("--board", default="kv260")
    ap.add_argument("--lut-cap", type=float, default=None)
    ap.add_argument("--clock", type=float, default=None, help="the DSE's clock (default: the board's)")
    a = ap.parse_args()
    cfg, board = PRESETS[a.preset], load_board(a.board)
    t0 = time.perf_counter()
    limits = {} if a.lut_cap is None else {"lut": a.lut_cap}
    p = dse.explore(cfg, board, DesignParams(), limits, clock_mhz=a.clock).params
    print(f"{cfg.name} on {board.name}: G{p.group_size} T{p.tables} R{p.rows} TP{p.token_lanes} "
          f"(DSP {p.dsp_lanes}) OL{p.out_lanes} {p.weight_ports} weight ports, LM head lanes {p.head_lanes}, "
          f"{p.clock_mhz:g} MHz "
          f"(DSE {time.perf_counter() - t0:.0f} s). Projected, not measured.")
    print("\nnamed scenarios x clock: weight GB/s, decode tok/s, TTFT(128) s")
    print(f"{'':>9}" + "".join(f"{f * p.clock_mhz:>26.0f} MHz" for f in CLOCK_FRACTIONS))
    for s in SCENARIOS:
        cells = [point(cfg, board.with_scenario(s), p.replace(clock_mhz=round(f * p.clock_mhz, 1)))
                 for f in CLOCK_FRACTIONS]
        print(f"{s:>9}" + "".join(f"{g:>10.2f} {d:>7.1f} {t:>8.3f}    " for g, d, t in cells))
    print(f"\ncentral bandwidth figures x k, at {p.clock_mhz:g} MHz:")
    print(f"{'k':>6} {'weight GB/s':>12} {'decode tok/s':>13} {'TTFT(128) s':>12} {'DDR bound':>10}")
    for k in SCALES:
        b = scaled(board, k)
        g, d, t = point(cfg, b, p)
        bound = cost_ddr.ddr_bound_tokens_per_s(cfg, b, p)
        print(f"{k:>6.1f} {g:>12.2f} {d:>13.1f} {t:>12.3f} {bound:>10.1f}")


if __name__ == "__main__":
    main()
