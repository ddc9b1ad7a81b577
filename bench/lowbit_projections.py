"""Projected decode tok/s and TTFT(128) of low-bit GGUF models on a board through the low-bit engine
(hw/include/edgellm/lowbit_mm.h; cost: compiler/cost/lowbit.py; docs/performance.md "Low-bit models").

Which tensor type each tensor has follows llama.cpp's quantizer (compiler/cost/lowbit.py
llama_cpp_mix: src/llama-quant.cpp's llama_tensor_get_type rules for Q4_0 / Q4_K_M / Q2_K, with its
K-quant fallbacks); the design is compiler/cost/lowbit.py search's (engines x ports, token lanes, record
decoders, vector engines' size: the highest decode rate within the board's routing headroom).
Central (low-high) as `edgellm estimate` states them (compiler/estimate.py scenarios: low = the low
bandwidth at 80% of the clock, high = the high bandwidth). Every figure is a projection.
Usage: python bench/lowbit_projections.py [--board kv260]
"""

from __future__ import annotations

import argparse
import itertools

from edgellm.boards import SCENARIOS, load_board
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.estimate import scenarios
from edgellm.models.config import PRESETS

MODELS = ("llama-3.2-1b", "qwen2.5-0.5b")
FILE_TYPES = ("Q4_0", "Q4_K_M")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="kv260")
    a = ap.parse_args()
    board = load_board(a.board)
    print(f"board {board.name}, {board.pl_clock_mhz:g} MHz; all figures projected (compiler/cost/lowbit.py)")
    print(f"{'model':14} {'file':7} {'bpw':>5} {'MB/tok':>7} {'engine':>30} {'decode tok/s (low-high)':>24} "
          f"{'DDR bound (low-high)':>20} {'ratio':>6} {'TTFT(128) (low-high)':>22}")
    for name, ftype in itertools.product(MODELS, FILE_TYPES):
        cfg = PRESETS[name]
        m = cl.llama_cpp_mix(cfg, ftype)
        eng, vec = cl.search(cfg, board.with_scenario("central"), m)
        sc = scenarios(board, cl.design(board, eng, vec))  # estimate's ends: low = low bandwidth, 80% clock
        r = {s: cl.project(cfg, board.with_scenario(s), m, eng, vec, sc[s].clock_mhz) for s in SCENARIOS}
        c = r["central"]
        wbytes = m.weight_bytes(cfg, eng.rows, eng.beat_bits)
        params = (sum(o * i for o, i in cfg.linear_shapes().values()) * cfg.n_layers
                  + cfg.vocab_size * cfg.hidden_size)
        desc = (f"E{eng.engines}x{eng.ports}p TP{eng.token_lanes} RD{eng.record_decoders} R{eng.rows} "
                f"A{vec[0]} V{vec[2]}")
        print(f"{name:14} {ftype:7} {8 * wbytes / params:5.2f} {wbytes / 1e6:7.1f} {desc:>30} "
              f"{c['decode']:7.2f} ({r['low']['decode']:5.2f}-{r['high']['decode']:5.2f})      "
              f"{c['bound']:5.1f} ({r['low']['bound']:4.1f}-{r['high']['bound']:4.1f}) "
              f"{c['decode'] / c['bound']:6.1%} "
              f"{c['ttft']:6.3f}s ({r['high']['ttft']:.3f}-{r['low']['ttft']:.3f})")


if __name__ == "__main__":
    main()
