"""Projected decode tok/s and TTFT(128) of low-bit GGUF models on a board through the low-bit engine
(hw/include/edgellm/lowbit_mm.h; cost: compiler/cost/lowbit.py; docs/performance.md "Low-bit models").

Which tensor type each tensor has follows llama.cpp's quantizer (src/llama-quant.cpp,
llama_tensor_get_type, as of 2025): for the file types below, every linear takes the file type's
default type except
  - the LM head (the token embedding of a tied model) is Q6_K, or Q8_0 when the hidden size is not a
    multiple of the default type's block (256 for K-quants);
  - Q4_K_M: attn_v and ffn_down are Q6_K in the layers where use_more_bits(i, n) holds:
    i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2;
  - Q2_K: attn_v is Q4_K (GQA >= 4) or Q3_K, ffn_down and attn_output Q3_K;
  - a K-quant tensor whose input size is not a multiple of 256 falls back: Q4_K -> Q5_0,
    Q5_K -> Q5_1, Q6_K -> Q8_0 (Qwen2.5-0.5B's hidden size 896 does so).
For each model and file type a small search picks the engines (E), the weight ports each reads at
once (beats of 128 x ports bits), token lanes (TP) and record decoders (RD): the highest decode rate,
then the lowest TTFT(128), then the fewest LUTs, among those whose resources (engines, element-wise
engine, attention, AXI, platform) fit the board's routing headroom.
Central (low-high) as `edgellm estimate` states them (compiler/estimate.py scenarios: low = the low
bandwidth at 80% of the clock, high = the high bandwidth). Every figure is a projection.
Usage: python bench/lowbit_projections.py [--board kv260]
"""

from __future__ import annotations

import argparse
import itertools

from edgellm.boards import SCENARIOS, Board, load_board
from edgellm.compiler.cost import axi as cost_axi
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import resource_model
from edgellm.compiler.cost.memory import total_of
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import fits_board, scenarios
from edgellm.models.config import PRESETS, ModelConfig

MODELS = ("llama-3.2-1b", "qwen2.5-0.5b")
FILE_TYPES = ("Q4_0", "Q4_K_M")
DEFAULT = {"Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K"}
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
BLOCK = {"Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32, "Q8_0": 32, "Q2_K": 256, "Q3_K": 256, "Q4_K": 256,
         "Q5_K": 256, "Q6_K": 256}


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _fit(name: str, n_in: int) -> str:
    if n_in % BLOCK[name] == 0:
        return name
    if name not in FALLBACK:
        raise SystemExit(f"error: no fallback for {name} at input size {n_in}")
    return FALLBACK[name]


def gguf_mix(cfg: ModelConfig, ftype: str) -> cl.LowbitModel:
    """The tensor types llama.cpp gives a model at `ftype` (module docstring), as engine formats."""
    base = DEFAULT[ftype]
    sh = cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        t = dict.fromkeys(sh, base)
        if ftype == "Q4_K_M" and use_more_bits(i, cfg.n_layers):
            t["v"] = t["down"] = "Q6_K"
        if ftype == "Q2_K":
            t["v"] = "Q4_K" if cfg.n_heads // cfg.n_kv_heads >= 4 else "Q3_K"
            t["down"] = t["o"] = "Q3_K"
        layers.append({n: cl.fit(cl.FORMATS[_fit(t[n], sh[n][1])], sh[n][1]) for n in sh})
    head = "Q8_0" if cfg.hidden_size % BLOCK[base] else "Q6_K"
    return cl.LowbitModel(tuple(layers), cl.fit(cl.FORMATS[_fit(head, cfg.hidden_size)], cfg.hidden_size))


# (attention lanes, K/V tile, element-wise vector) of the vector engines the search may pair with the
# low-bit engines (DesignParams fields; the ternary DSE's defaults last)
VECTOR = ((4, 8, 1), (4, 8, 2), (8, 16, 2), (16, 32, 4))


def _design(board: Board, eng: cl.LowbitEngine, vec: tuple[int, int, int] = VECTOR[-1],
            clock_mhz: float | None = None) -> DesignParams:
    return DesignParams(clock_mhz=clock_mhz or board.pl_clock_mhz, weight_ports=eng.engines * eng.ports,
                        prefill_token_block=eng.max_tokens, attn_lanes=vec[0], attn_kv_block=vec[1],
                        ew_vec=vec[2])


def fits(cfg: ModelConfig, board: Board, eng: cl.LowbitEngine, vec: tuple[int, int, int]) -> bool:
    p = _design(board, eng, vec)
    ew, attn = resource_model.vector_kernels(cfg, p)
    total = total_of([cl.resources(eng), ew, attn, cost_axi.resources(p), resource_model.PLATFORM])
    return not fits_board(total, board)


def project(cfg: ModelConfig, board: Board, m: cl.LowbitModel, eng: cl.LowbitEngine,
            vec: tuple[int, int, int], clock_mhz: float | None = None) -> dict[str, float]:
    p = _design(board, eng, vec, clock_mhz)
    dec = cl.run_seconds(cfg, board, m, eng, p, 1, p.decode_context)
    pre = cl.run_seconds(cfg, board, m, eng, p, 128, 0)
    return {"decode": 1.0 / sum(dec.values()), "ttft": sum(pre.values()),
            "bound": cl.ddr_bound_tokens_per_s(cfg, board, m, p, eng)}


def choose(cfg: ModelConfig, board: Board, m: cl.LowbitModel) -> tuple[cl.LowbitEngine, tuple[int, int, int]]:
    """The engine configuration the search picks (module docstring), central scenario."""
    groups = [f.group for layer in m.layers for f in layer.values()] + [m.head.group]
    best = None
    ports = min(4, len(board.hp_port_names))
    shapes = [(e, w) for e in (1, 2, 4) for w in (1, 2, 4) if e * w <= ports]
    for (e, w), tp, rd, vec in itertools.product(shapes, (1, 2, 4, 8), (1, 2, 4), VECTOR):
        eng = cl.LowbitEngine(rows=max(32, 32 * w), max_tokens=max(8, tp), max_group=max(groups),
                              token_lanes=tp, engines=e, max_k=8192, ports=w, record_decoders=rd)
        if not fits(cfg, board, eng, vec):
            continue
        r = project(cfg, board, m, eng, vec)
        key = (-round(r["decode"], 2), round(r["ttft"], 3), cl.resources(eng).lut)
        if best is None or key < best[0]:
            best = (key, (eng, vec))
    if best is None:
        raise SystemExit(f"error: no low-bit engine configuration fits {board.name}")
    return best[1]


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
        m = gguf_mix(cfg, ftype)
        eng, vec = choose(cfg, board.with_scenario("central"), m)
        sc = scenarios(board, _design(board, eng, vec))  # estimate's ends: low = low bandwidth, 80% clock
        r = {s: project(cfg, board.with_scenario(s), m, eng, vec, sc[s].clock_mhz) for s in SCENARIOS}
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
