"""What TTFT(128) the present engines could reach with a prefill pipeline that is NOT built.

The engine as built runs, per prefill token block and layer, the TLMM linears, the element-wise
stages and attention one after another (docs/performance.md). This analysis prints, for designs that
fit a board under the routing headroom and keep decode at or above a floor:

- `built`: TTFT(128) as the performance model projects the generated hardware (perf_model.prefill);
- `overlap bound`: the same design if a perfect block-level pipeline hid the vector engines (element-
  wise + attention) behind the TLMM or the other way round: load + max(TLMM, element-wise +
  attention) + LM head + host. It is a lower bound for any schedule of these engines (no fills, no
  imbalance between blocks), not a projection of a design edgellm generates.

Both over the DSE's choice and over a grid of designs (G 3, T, R 16, attention lanes, element-wise and
GLU widths, output lanes; fetch depth 4096, the DSE's memories), so the best `overlap bound` shows
which LUT split a pipelined design would want. Usage:
python bench/ttft_bounds.py [--preset bitnet_b1_58-large] [--board kv260] [--decode-floor 60]
"""

from __future__ import annotations

import argparse
import itertools
import time

from edgellm.boards import load_board
from edgellm.compiler import dse, perf_model
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import fits_board
from edgellm.compiler.resource_model import estimate_resources
from edgellm.models.config import PRESETS, ModelConfig

TOKENS = 128


def split(cfg: ModelConfig, board, p: DesignParams) -> dict[str, float]:
    """TTFT(128) as built, its parts, and the overlap bound (seconds)."""
    pf = perf_model.prefill(cfg, board, p, TOKENS)
    d = pf.detail
    rest = pf.parts["lm_head"] + pf.parts["host"]
    return {"built": pf.seconds, "tlmm": d["compute"], "elementwise": d["elementwise"],
            "attention": d["attention"], "load": d["load"],
            "bound": d["load"] + max(d["compute"], d["elementwise"] + d["attention"]) + rest}


def row(name: str, p: DesignParams, s: dict[str, float], decode: float, lut: float) -> str:
    design = (f"G{p.group_size} T{p.tables} R{p.rows} OL{p.out_lanes} A{p.attn_lanes} VEC{p.ew_vec} "
              f"GLU{p.glu_vec}")
    return (f"{name:<24} {design:<34} decode {decode:5.1f} tok/s  LUT {lut:4.0%}  built {s['built']:.3f} s "
            f"(TLMM {s['tlmm']:.3f} + element-wise {s['elementwise']:.3f} + attention {s['attention']:.3f})"
            f"  overlap bound {s['bound']:.3f} s")


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
        p = p0.replace(group_size=3, tables=t, rows=16, attn_lanes=a_l, ew_vec=vec, ew_glu_vec=glu,
                       ew_lanes=max(16, 8 * vec), out_lanes=ol, fetch_depth=4096, token_lanes=1)
        res = estimate_resources(cfg, board, p)["total"]
        if fits_board(res, board):
            continue
        dec = perf_model.decode_step(cfg, board, p).tokens_per_s
        if dec < a.decode_floor:
            continue
        n += 1
        s = split(cfg, board, p)
        line = row("", p, s, dec, res.lut / board.lut)
        for key in ("built", "bound"):
            if key not in best or s[key] < best[key][0]:
                best[key] = (s[key], line)
    for key, label in (("built", "grid best as built"), ("bound", "grid best bound")):
        if key in best:
            print(label + best[key][1][len(label):])
    print(f"{n} grid designs fit {board.name} with decode >= {a.decode_floor:g} tok/s "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
