"""How close the prefill schedules come to the perfect-overlap bound of TTFT(128).

For designs that fit a board under the routing headroom and keep decode at or above a floor, prints:

- `sequential`: TTFT(128) as projected with the engines one after another (prefill_pipeline off);
- `pipelined`: the same design with the two-half prefill pipeline (decoder_layer.h layer_slot_run:
  the TLMM on one half of a block while the element-wise engine and attention work on the other);
- `overlap bound`: load + max(TLMM, element-wise + attention) + LM head + host, from the sequential
  projection's parts (the vector work the lesser of the two schedules'): what a perfect overlap of the
  engines (no slot imbalance, weights streamed once per block) would reach. A lower bound for any
  schedule of these engines, not a projection.

Over the DSE's choice and over a grid around it (tables, attention lanes, element-wise and GLU widths,
output lanes; the DSE's G, R, token and DSP lanes, memories, fetch depth 4096). Usage:
python bench/ttft_bounds.py [--preset bitnet_b1_58-large] [--board kv260] [--decode-floor 60]
"""

from __future__ import annotations

import argparse
import itertools
import time

from edgellm.boards import load_board
from edgellm.compiler import dse
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.resource_model import estimate_resources
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import fits_board
from edgellm.models.config import PRESETS, ModelConfig

TOKENS = 128


def split(cfg: ModelConfig, board, p: DesignParams) -> dict[str, float]:
    """TTFT(128) of p as built, sequential and pipelined, the sequential parts and the overlap bound (s)."""
    built = cost_model.prefill(cfg, board, p, TOKENS).seconds
    seq = cost_model.prefill(cfg, board, p.replace(prefill_pipeline=False), TOKENS)
    piped = cost_model.prefill(cfg, board, p.replace(prefill_pipeline=True), TOKENS)
    d = seq.detail
    # the vector engines' lesser work of the two schedules: the pipeline's halves may be short calls whose
    # attention runs cached-style (compiler/cost/attention.py plan), cheaper than whole blocks'
    v = min(d, piped.detail, key=lambda x: x["elementwise"] + x["attention"])
    rest = seq.parts["lm_head"] + seq.parts["host"]
    return {"built": built, "sequential": seq.seconds, "pipelined": piped.seconds, "tlmm": d["compute"],
            "elementwise": v["elementwise"], "attention": v["attention"], "load": d["load"],
            "bound": d["load"] + max(d["compute"], v["elementwise"] + v["attention"]) + rest}


def row(name: str, p: DesignParams, s: dict[str, float], decode: float, lut: float) -> str:
    design = (f"G{p.group_size} T{p.tables} R{p.rows} TP{p.token_lanes}(DSP {p.dsp_lanes}) OL{p.out_lanes} "
              f"A{p.attn_lanes} VEC{p.ew_vec} GLU{p.glu_vec}")
    return (f"{name:<22} {design:<46} decode {decode:5.1f} tok/s  LUT {lut:4.0%}  sequential "
            f"{s['sequential']:.3f} s (TLMM {s['tlmm']:.3f} + element-wise {s['elementwise']:.3f} "
            f"+ attention {s['attention']:.3f})  pipelined {s['pipelined']:.3f} s  "
            f"overlap bound {s['bound']:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bitnet_b1_58-large", choices=sorted(PRESETS))
    ap.add_argument("--board", default="kv260")
    ap.add_argument("--decode-floor", type=float, default=60.0, help="least projected decode tok/s kept")
    a = ap.parse_args()
    cfg, board = PRESETS[a.preset], load_board(a.board)
    t0 = time.perf_counter()
    chosen = dse.explore(cfg, board)
    p0 = chosen.params
    print(f"{cfg.name} on {board.name}: projections of the performance model, not measurements")
    print(row("DSE choice", p0, split(cfg, board, p0), chosen.estimate.decode_tok_s,
              chosen.estimate.resources["total"].lut / board.lut))
    best: dict[str, tuple[float, str]] = {}
    n = 0
    for t, a_l, (vec, glu), ol in itertools.product((5, 10, 15, 20, 25, 30), (2, 4, 8, 16, 32),
                                                    ((1, 0), (2, 0), (2, 1), (4, 0), (4, 1), (4, 2)),
                                                    (1, 2, 4)):
        p = p0.replace(tables=t, attn_lanes=a_l, ew_vec=vec, ew_glu_vec=glu, ew_lanes=max(16, 8 * vec),
                       out_lanes=ol, fetch_depth=4096, prefill_pipeline=True)
        res = estimate_resources(cfg, board, p)["total"]
        if fits_board(res, board):
            continue
        dec = cost_model.decode_step(cfg, board, p).tokens_per_s
        if dec < a.decode_floor:
            continue
        n += 1
        s = split(cfg, board, p)
        line = row("", p, s, dec, res.lut / board.lut)
        for key in ("pipelined", "bound"):
            if key not in best or s[key] < best[key][0]:
                best[key] = (s[key], line)
    for key, label in (("pipelined", "grid best pipelined"), ("bound", "grid best bound")):
        if key in best:
            print(label + best[key][1][len(label):])
    print(f"{n} grid designs fit {board.name} with decode >= {a.decode_floor:g} tok/s "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
