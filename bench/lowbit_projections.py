"""Projected decode tok/s and TTFT(128) of low-bit GGUF models on a board, for the design `edgellm compile`
builds (hw/include/edgellm/lowbit_mm.h + lm_head.h; cost: compiler/cost/lowbit.py through
compiler/lowbit_estimate.py, as `edgellm estimate --preset NAME --weights TYPE` prints it;
docs/performance.md "Low-bit models").

Which tensor type each tensor has follows llama.cpp's quantizer (compiler/cost/lowbit_mix.py
llama_cpp_mix: src/llama-quant.cpp's llama_tensor_get_type rules for Q4_0 / Q4_K_M / Q2_K, with its
K-quant fallbacks); the design is compiler/cost/lowbit_search.py search's over the one engine instance
compile builds (lowbit_estimate.BUILT_ENGINES: ports, token lanes, record decoders, vector engines' size,
the weight fetchers' FIFO depth F: the highest decode rate within the board's routing headroom; decode as
built, the fetchers prefetching across the vector stages: compiler/cost/lowbit_run.py) with the int8
per-row LM head compile builds
(cost/lm_head.py at P = 16 bytes a port beat). --lowbit-head projects the file's quantized head on the
low-bit engine instead (an option compile refuses). Central (low-high) as `edgellm estimate` states them
(compiler/estimate.py scenarios: low = the low bandwidth at 80% of the clock, high = the high bandwidth).
Every figure is a projection. The last column is the reference searched in the same run: the same
model and board without the weight gearbox (the engine's four ports in lockstep at equal shares,
docs/hls.md "Weight gearbox"), its decode over the same DDR bound.
Usage: python bench/lowbit_projections.py [--board kv260] [--lowbit-head]
"""

from __future__ import annotations

import argparse
import itertools

from edgellm.boards import load_board
from edgellm.compiler import lowbit_estimate as le
from edgellm.models.config import PRESETS

MODELS = ("llama-3.2-1b", "qwen2.5-0.5b")
FILE_TYPES = ("Q4_0", "Q4_K_M")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="kv260")
    ap.add_argument("--lowbit-head", action="store_true",
                    help="project the file's quantized LM head on the low-bit engine (compile refuses it)")
    a = ap.parse_args()
    board = load_board(a.board)
    head = "the file's head on the low-bit engine (projection only)" if a.lowbit_head else "int8 per-row head"
    print(f"board {board.name}, {board.pl_clock_mhz:g} MHz, {head}; all figures projected "
          "(compiler/cost/lowbit.py)")
    print(f"{'model':14} {'file':7} {'bpw':>5} {'MB/tok':>7} {'head MB':>8} {'engine, FIFO words':>31} "
          f"{'decode tok/s (low-high)':>24} {'DDR bound (low-high)':>20} {'ratio':>6} "
          f"{'TTFT(128) (low-high)':>22} {'no gearbox':>11}")
    for name, ftype in itertools.product(MODELS, FILE_TYPES):
        src = le.from_preset(PRESETS[name], ftype)
        src = le.with_lowbit_head(src) if a.lowbit_head else src
        e, ref = le.estimate(src, board), le.estimate(src, board, gear=False)
        g, vec = e.engine, e.vector
        d, bd, t = e.decode, e.bound, e.ttft
        glu = f"/{vec[3]}" if len(vec) > 3 else ""
        desc = (f"{g.ports}p TP{g.token_lanes} RD{g.record_decoders} R{g.rows} A{vec[0]} V{vec[2]}{glu} "
                f"F{g.fetch_depth}")
        print(f"{name:14} {ftype:7} {e.bits_per_weight:5.2f} {e.weight_bytes / 1e6:7.1f} "
              f"{e.head_bytes / 1e6:8.1f} {desc:>31} "
              f"{d['central']:7.2f} ({d['low']:5.2f}-{d['high']:5.2f})      "
              f"{bd['central']:5.1f} ({bd['low']:4.1f}-{bd['high']:4.1f}) "
              f"{d['central'] / bd['central']:6.1%} "
              f"{t['central']:6.3f}s ({t['high']:.3f}-{t['low']:.3f}) "
              f"{ref.decode['central'] / ref.bound['central']:10.1%}")


if __name__ == "__main__":
    main()
