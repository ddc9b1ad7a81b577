"""`edgellm estimate` for a low-bit model (issue 17 #8): a GGUF file of the llama/qwen2 architectures,
a GPTQ directory, or a preset with --weights, projected through the low-bit engine's cost model
(compiler/cost/lowbit.py: its design search, decode / TTFT, the model's own DDR bound, resources)
instead of as if its linears were ternary.

The tensor types are the checkpoint's own (a GGUF's per-tensor types, read from its header; GPTQ's bits
and group size), or llama.cpp's mix for the preset's shapes (cost/lowbit_mix.llama_cpp_mix). A float linear
in a GGUF is quantized to Q8_0 at load (models/loaders/gguf_llama.py), so it streams as Q8_0.
Ranges as compiler/estimate.py's: low = the low bandwidth at 80% of the clock, high = the high bandwidth.
Every figure is projected. The design is the one `edgellm compile` builds (compile_design): one engine
instance (BUILT_ENGINES), its LowbitConfig, the vector engines and the LM head as built, the int8 per-row
head (lm_head.h at P = 16 bytes a port beat over the weight ports; cost/lowbit.py prices it with
cost/lm_head.py: bytes, time, resources). with_lowbit_head (`edgellm estimate --lowbit-head`) instead
projects the checkpoint's quantized head on the low-bit engine (a float head as Q8_0): a projection of an
option that compile refuses (LOWBIT_HEAD_NOTE).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgellm.boards import SCENARIOS, Board
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.cost.lowbit_mix import llama_cpp_mix
from edgellm.compiler.packing_lowbit import ParamCodec
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import LB_MAX_GROUP

# --weights choices for a preset (lower case, as the CLI takes them) -> llama.cpp file type
WEIGHTS = {"q4_0": "Q4_0", "q4_k_m": "Q4_K_M", "q2_k": "Q2_K"}
FLOAT_TYPES = ("F32", "F16", "BF16")
FLOAT_AS = "Q8_0"  # what a float linear or head streams as (the loader's requantization)
PROMPT = 128
BUILT_ENGINES = (1,)  # lowbit_mm engine instances the generated top builds (one, over its 1, 2 or 4 ports)
BUILT_NOTE = ("edgellm compile builds this design (one low-bit engine and the int8 per-row LM head, "
              "C-simulated bit-exact); its speed and resources are projected, not synthesized or measured")
FLOAT_HEAD_NOTE = f"the float LM head: int8 per row as built ({FLOAT_AS} with --lowbit-head)"
LOWBIT_HEAD_NOTE = ("--lowbit-head: the LM head is projected as {fmt} on the low-bit engine, a projection "
                    "only: edgellm compile builds the int8 per-row head and refuses a low-bit head")


@dataclass(frozen=True)
class LowbitSource:
    """A low-bit model to project: its shapes, its tensor formats, what they came from."""

    cfg: ModelConfig
    model: cl.LowbitModel
    weights: str  # "GGUF file", "GPTQ 4-bit g128", "llama.cpp Q4_K_M mix (preset)"
    notes: tuple[str, ...] = ()


def mix_text(m: cl.LowbitModel) -> str:
    """'112 Q4_0 + int8 head (file: Q6_K)' style: the linears' formats by count, then the head as priced
    (with lowbit_head: '+ Q6_K head on the low-bit engine')."""
    counts = Counter(f.name for layer in m.layers for f in layer.values())
    body = " + ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    if m.lowbit_head:
        return f"{body} + {m.head.name} head on the low-bit engine"
    return f"{body} + int8 head (file: {m.head.name})"


def notes(src: LowbitSource) -> tuple[str, ...]:
    """The notes estimate and compile print under the table: the source's, then BUILT_NOTE for the design
    compile builds (not with a low-bit head: its LOWBIT_HEAD_NOTE says compile refuses it)."""
    return src.notes if src.model.lowbit_head else (*src.notes, BUILT_NOTE)


def with_lowbit_head(src: LowbitSource) -> LowbitSource:
    """src with its head projected as its own format on the low-bit engine (--lowbit-head), noted."""
    return dataclasses.replace(src, model=dataclasses.replace(src.model, lowbit_head=True),
                               notes=(*src.notes, LOWBIT_HEAD_NOTE.format(fmt=src.model.head.name)))


def _format(kind: str, n_in: int, what: str) -> cl.TensorFormat:
    name = FLOAT_AS if kind in FLOAT_TYPES else kind
    if name not in cl.FORMATS:
        supported = ", ".join([*(f for f in cl.FORMATS if not f.startswith("GPTQ")), *FLOAT_TYPES])
        raise EdgeLLMError(f"{what}: tensor type {kind} has no low-bit engine format "
                           f"(supported: {supported})")
    return cl.fit(cl.FORMATS[name], n_in)


def from_gguf(path: Path) -> LowbitSource | None:
    """A llama/qwen2 GGUF's tensor types as engine formats (None for another architecture: ternary)."""
    from edgellm.models.loaders.gguf_llama import LINEARS, LOWBIT_ARCHS
    from edgellm.models.loaders.gguf_loader import GGUFFile, gguf_config

    g = GGUFFile(path)
    if g.meta_str("general.architecture") not in LOWBIT_ARCHS:
        return None
    cfg = gguf_config(g)
    sh, layers, floats = cfg.linear_shapes(), [], []

    def kind(name: str) -> str:
        t = g.tensors.get(name)
        if t is None:
            raise EdgeLLMError(f"{path}: missing tensor {name}")
        if t.tensor_type.name in FLOAT_TYPES:
            floats.append(name)
        return t.tensor_type.name

    for i in range(cfg.n_layers):
        layers.append({n: _format(kind(f"blk.{i}.{gn}.weight"), sh[n][1], f"{path}: tensor blk.{i}.{gn}")
                       for n, gn in LINEARS.items()})
    notes = (f"{len(floats)} float linear(s) ({floats[0]}{', ...' if len(floats) > 1 else ''}) projected as "
             f"{FLOAT_AS}, as the loader quantizes them",) if floats else ()
    head_name = "token_embd.weight" if cfg.tied_embeddings else "output.weight"
    n_float = len(floats)
    head = _format(kind(head_name), cfg.hidden_size, f"{path}: tensor {head_name}")
    if len(floats) > n_float:  # a float head: int8 per row as built, Q8_0 only under --lowbit-head
        notes += (FLOAT_HEAD_NOTE,)
    return LowbitSource(cfg, cl.LowbitModel(tuple(layers), head), "the GGUF file's tensor types", notes)


def gptq_format(bits: int, group: int, n_in: int) -> cl.TensorFormat:
    """GPTQ at `bits` and engine group `group`: one f16 scale and a bits-wide zero per group, as many
    groups a record as fit 256 inputs (cost/lowbit FORMATS' GPTQ4 generalised)."""
    sb = max(1, LB_MAX_GROUP // group)
    return cl.fit(cl.TensorFormat(f"GPTQ{bits}", bits, group, sb, sb * (16 + bits), True), n_in)


def from_gptq(path: Path) -> LowbitSource:
    """A GPTQ directory (its config.json only): every linear GPTQ{bits} at its group size; the float LM
    head's format Q8_0 (what --lowbit-head projects; as built it is the int8 head)."""
    from edgellm.models.loaders.common import model_config_from_hf, read_config
    from edgellm.models.loaders.gptq import BITS, MODEL_TYPES, _group, quant_config

    raw = read_config(path)
    where = str(path / "config.json")
    qc = quant_config(path, raw) or {}
    bits, group = qc.get("bits"), qc.get("group_size", 128)
    if raw.get("model_type") not in MODEL_TYPES or bits not in BITS or isinstance(group, bool) \
            or not isinstance(group, int):
        raise EdgeLLMError(f"{where}: GPTQ model_type {raw.get('model_type')!r}, bits {bits!r}, "
                           f"group_size {group!r} (supported: {', '.join(MODEL_TYPES)}; bits "
                           f"{', '.join(map(str, BITS))})")
    cfg = model_config_from_hf(raw, where, subln=False, name=path.name, default_theta=10000.0,
                               qkv_bias=raw["model_type"] == "qwen2")
    sh = cfg.linear_shapes()
    layer = {n: gptq_format(bits, _group(group, k, where)[1], k) for n, (_, k) in sh.items()}
    head = cl.fit(cl.FORMATS[FLOAT_AS], cfg.hidden_size)
    return LowbitSource(cfg, cl.LowbitModel(tuple(dict(layer) for _ in range(cfg.n_layers)), head),
                        f"GPTQ {bits}-bit, group {group}",
                        (FLOAT_HEAD_NOTE,))


def from_preset(cfg: ModelConfig, weights: str) -> LowbitSource:
    """A preset's shapes with llama.cpp's tensor types for file type `weights` (WEIGHTS key)."""
    key = weights.lower()
    if key not in WEIGHTS:
        raise EdgeLLMError(f"--weights {weights!r}: one of {', '.join(WEIGHTS)}")
    if cfg.subln or cfg.act != "silu":
        raise EdgeLLMError(f"--weights: {cfg.name} is a BitNet-architecture model (ternary); low-bit weights "
                           "apply to llama / qwen2 shapes (e.g. llama-3.2-1b, qwen2.5-0.5b)")
    return LowbitSource(cfg, llama_cpp_mix(cfg, WEIGHTS[key]),
                        f"llama.cpp's {WEIGHTS[key]} mix (src/llama-quant.cpp rules)")


def from_path(path: Path) -> LowbitSource | None:
    """The low-bit source of a checkpoint (None: a ternary checkpoint, estimated as before)."""
    from edgellm.models.loaders import detect_format

    fmt = detect_format(path)
    if fmt == "gguf":
        return from_gguf(path)
    return from_gptq(path) if fmt == "gptq" else None


@dataclass
class LowbitEstimate:
    """One low-bit model on one board: the searched design and its projections (all projected)."""

    board: str
    engine: cl.LowbitEngine
    vector: tuple[int, ...]
    clock: dict[str, float]  # scenario -> MHz
    decode: dict[str, float]  # scenario -> tok/s
    bound: dict[str, float]  # scenario -> the model's DDR bound, tok/s
    ttft: dict[str, float]  # scenario -> TTFT(PROMPT) s
    weight_bytes: int  # streamed per decode step: the linears and the head
    bits_per_weight: float  # streamed bits per weight of the linears (the head not included)
    resources: dict[str, float]
    utilization: dict[str, float]
    assumptions: dict[str, str] = field(default_factory=dict)
    head_bytes: int = 0  # the head's share of weight_bytes (int8 rows + row scales, or its low-bit stream)
    head: str = "int8 per-row"  # the head as priced: "int8 per-row" or "<format> on the low-bit engine"

    def record(self) -> dict[str, Any]:
        e, glu = self.engine, self.vector[3] if len(self.vector) > 3 else 0
        return {"board": self.board, "label": "projected (compiler/cost/lowbit.py), not measured",
                "design": {"engines": e.engines, "ports_per_engine": e.ports, "token_lanes": e.token_lanes,
                           "record_decoders": e.record_decoders, "scale_lanes": e.scale_lanes,
                           "float_units": e.fu, "max_sb": e.max_sb, "min_group": e.min_group, "rows": e.rows,
                           "max_tokens": e.max_tokens, "max_group": e.max_group, "fetch_depth": e.fetch_depth,
                           "head_port_shares": list(e.head_shares), "weight_gear": e.gear.active,
                           "attn_lanes": self.vector[0], "attn_kv_block": self.vector[1],
                           "ew_vec": self.vector[2], "ew_glu_vec": glu},
                "projected_decode_tok_s": self.decode, "ddr_bound_tok_s": self.bound,
                "decode_over_bound": self.decode["central"] / self.bound["central"],
                f"projected_ttft_{PROMPT}_s": self.ttft, "clock_mhz": self.clock,
                "weight_stream_bytes_per_token": self.weight_bytes, "bits_per_weight": self.bits_per_weight,
                "lm_head": {"priced_as": self.head, "bytes_per_token": self.head_bytes},
                "resources": self.resources, "utilization": self.utilization, "assumptions": self.assumptions}


def estimate(src: LowbitSource, board: Board, clock_mhz: float | None = None,
             limits: dict[str, float] | None = None, gear: bool = True) -> LowbitEstimate:
    """cost/lowbit_search.search's design for the board at `clock_mhz` (default the board's PL clock; the
    low end at 80% of it) under `limits` (utilization fractions replacing estimate.UTIL_LIMITS' entries:
    `edgellm estimate --lut-cap`), projected at each end of the range (EdgeLLMError when no engine
    configuration fits, or for a clock or limit out of range, as the ternary DSE's explore refuses them).
    gear False: no weight gearbox (the lockstep engine at equal shares; a reference, compile always gears
    where the shares allow)."""
    from edgellm.compiler.dse import check_clock_and_limits  # it imports the cost modules

    check_clock_and_limits(clock_mhz, limits)
    eng, vec = ls.search(src.cfg, board.with_scenario("central"), src.model, BUILT_ENGINES,
                         clock_mhz=clock_mhz, limits=limits, gear=gear)
    return _projected(src, board, eng, vec, clock_mhz)


def _projected(src: LowbitSource, board: Board, eng: cl.LowbitEngine, vec: tuple[int, ...],
               clock_mhz: float | None = None) -> LowbitEstimate:
    """The design (eng, vec at clock_mhz, default the board's) projected at each end of the range, its
    resources (cost/lowbit.total_resources, the LM head's included) and streamed bytes."""
    from edgellm.compiler.cost.memory import KINDS
    from edgellm.compiler.estimate import scenarios

    cfg, m = src.cfg, src.model
    p = ls.design(board, eng, vec, clock_mhz)
    sc = scenarios(board, p)
    r = {s: ls.project(cfg, board.with_scenario(s), m, eng, vec, sc[s].clock_mhz) for s in SCENARIOS}
    total = ls.total_resources(cfg, board, m, eng, vec, p)
    lin, head = m.linear_bytes(cfg, eng.rows, eng.beat_bits), m.head_bytes(cfg, eng.rows, eng.beat_bits)
    params = sum(o * i for o, i in cfg.linear_shapes().values()) * cfg.n_layers
    return LowbitEstimate(
        board.name, eng, vec, {s: sc[s].clock_mhz for s in SCENARIOS},
        {s: r[s]["decode"] for s in SCENARIOS}, {s: r[s]["bound"] for s in SCENARIOS},
        {s: r[s]["ttft"] for s in SCENARIOS}, lin + head, 8 * lin / params,
        {k: float(getattr(total, k)) for k in KINDS}, total.utilization(board),
        {s: sc[s].assumes for s in SCENARIOS}, head,
        f"{m.head.name} on the low-bit engine" if m.lowbit_head else "int8 per-row")


def from_model(qm: Any, weights: str = "the model's low-bit linears") -> LowbitSource:
    """A loaded all-low-bit QuantModel's linears as engine formats (a LowBitLinear's source when it names
    one of cost/lowbit.FORMATS, else GPTQ-style at its bits and group); the head: the int8 head as built
    (its format Q8_0 for --lowbit-head)."""
    from edgellm.models.weights import LowBitLinear

    cfg = qm.config
    layers = []
    for L in qm.layers:
        fmts = {}
        for n, lin in L.linears().items():
            if not isinstance(lin, LowBitLinear):
                raise EdgeLLMError(f"{cfg.name}: linear {n} is not low-bit")
            fmts[n] = (cl.fit(cl.FORMATS[lin.source], lin.shape[1]) if lin.source in cl.FORMATS
                       else gptq_format(lin.bits, lin.group, lin.shape[1]))
        layers.append(fmts)
    return LowbitSource(cfg, cl.LowbitModel(tuple(layers), cl.fit(cl.FORMATS[FLOAT_AS], cfg.hidden_size)),
                        weights)


def compile_design(src: LowbitSource, board: Board, max_group: int, max_context: int = 0,
                   clock_mhz: float | None = None, limits: dict[str, float] | None = None
                   ) -> tuple[LowbitEstimate, Any]:
    """The estimate of src on board and the DesignParams `edgellm compile` builds from its design: the
    engine's LowbitConfig (R, TP, ports, RD, SL, FU, MAXSB, MING: the model's narrowest group; MAXG =
    max_group, the model's widest group), its ports as the weight ports, its MAXT as the prefill token
    block, the weight FIFOs' depth the search chose, the vector engines, the central clock. clock_mhz and
    limits steer the search as estimate()'s do (compile --clock, --lut-cap: the same design `edgellm
    estimate` prints with them)."""
    if src.model.lowbit_head:
        raise EdgeLLMError("a low-bit LM head is a projection only (estimate --lowbit-head): compile builds "
                           "the int8 per-row head")
    e = estimate(src, board, clock_mhz, limits)
    g = e.engine
    p = ls.design(board, g, e.vector, e.clock["central"])
    return e, p.replace(matmul="lowbit", lowbit_rows=g.rows, lowbit_token_lanes=g.token_lanes,
                        lowbit_ports=g.ports, lowbit_decoders=g.record_decoders, lowbit_max_group=max_group,
                        lowbit_scale_lanes=g.scale_lanes, lowbit_float_units=g.float_units,
                        lowbit_max_sb=g.max_sb, lowbit_min_group=g.min_group, max_context=max_context)


def estimate_design(src: LowbitSource, board: Board, p: Any) -> LowbitEstimate:
    """The estimate of a compiled low-bit design (a manifest's DesignParams p, matmul 'lowbit') as estimate()
    projects it, without the search: p's engine (R, TP, ports, RD, SL, FU, MAXSB, MING; weight_ports /
    lowbit_ports engines; MAXT its prefill token block; MAXG and MAXK the model's, as search sizes them; its
    weight FIFOs' fetch_depth; its ports' shares of the head's rows), its vector engines and its clock (low:
    80% of it). `edgellm estimate DIR` and
    `edgellm report DIR` re-project with it."""
    if getattr(p, "matmul", "tlmm") != "lowbit":
        raise EdgeLLMError("estimate_design: not a low-bit design (design.matmul is not 'lowbit')")
    eng = cl.LowbitEngine(rows=p.lowbit_rows, max_tokens=p.prefill_token_block,
                          max_group=src.model.max_group(), token_lanes=p.lowbit_token_lanes,
                          engines=max(1, p.weight_ports // p.lowbit_ports), max_k=cl.model_max_k(src.cfg),
                          ports=p.lowbit_ports, record_decoders=p.lowbit_decoders,
                          scale_lanes=p.lowbit_scale_lanes, float_units=p.lowbit_float_units,
                          max_sb=p.lowbit_max_sb, min_group=p.lowbit_min_group, fetch_depth=p.fetch_depth,
                          codecs=_codec_shapes(p.lowbit_codecs) or src.model.codecs(),
                          head_shares=p.port_shares, geared=p.lowbit_gear)
    vec = (p.attn_lanes, p.attn_kv_block, p.ew_vec) + ((p.ew_glu_vec,) if p.ew_glu_vec else ())
    return _projected(src, board, eng, vec, p.clock_mhz)


def _codec_shapes(words: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, int], ...]:
    """The decoder's pricing shapes (record bits, groups a record) of a design's listed codecs
    (design.lowbit_codecs: ParamCodec.as_words rows, as the engine decodes them)."""
    return tuple(sorted((ParamCodec(*w).superblock_bits, w[0]) for w in words))


def _ranged(d: dict[str, float], fmt: str, unit: str = "") -> str:
    a, b = sorted((d["low"], d["high"]))
    return f"{fmt.format(d['central'])}{unit} ({fmt.format(a)}-{fmt.format(b)}{unit})"


def _gear_text(g: cl.LowbitEngine) -> str:
    """The weight gearbox in words ("": none)."""
    if not g.gear.active:
        return ""
    return (f"; gearbox: the engine's streams at {':'.join(map(str, g.head_shares))} shares (port 0 carries "
            f"lane 1's last {g.gear.k1} of every {g.gear.cycle} beats, port 3 lane 2's last {g.gear.k2})")


def rows(src: LowbitSource, e: LowbitEstimate, board: Board) -> list[tuple[str, str]]:
    """(label, value) rows of one low-bit estimate, every speed labelled projected."""
    g = e.engine
    res = [(k.upper() if k != "bram36" else "BRAM36",
            f"{e.resources[k]:,.0f} / {board.resource(k):,} ({e.utilization[k]:.0%})")
           for k in ("lut", "ff", "dsp", "bram36", "uram")]
    return [
        ("weights", f"{src.weights}: {mix_text(src.model)}"),
        ("streamed", f"{e.bits_per_weight:.2f} bits/weight (linears), {e.weight_bytes / 1e6:.1f} MB per "
                     "token"),
        ("LM head (projected)", f"{e.head}, {e.head_bytes / 1e6:.1f} MB per token "
                                f"({e.head_bytes / e.weight_bytes:.0%})"
                                + (f", rows at {':'.join(map(str, g.head_shares))} port shares"
                                   if g.head_shares and not src.model.lowbit_head else "")),
        *res,
        ("low-bit engine", f"{g.engines} x {g.ports} ports ({g.beat_bits}-bit beats), {g.token_lanes} "
                           f"token lane(s), {g.record_decoders} record decoder(s) x {g.scale_lanes} scale "
                           f"lanes, {g.fu} float step(s) a token lane, R={g.rows}, "
                           f"{e.clock['central']:g} MHz"),
        ("weight FIFOs", f"{g.fetch_depth} x 128-bit words per port (the fetchers prefetch across the vector "
                         "stages)" + _gear_text(g)),
        ("vector engines", f"attention {e.vector[0]} lanes (K/V tile {e.vector[1]}), "
                           f"element-wise {e.vector[2]}"
                           + (f" (GLU {e.vector[3]})" if len(e.vector) > 3 else "")),
        (f"decode tok/s (projected, {ls.design(board, g).decode_context} ctx)", _ranged(e.decode, "{:.1f}")),
        ("model's DDR bound tok/s (projected)", _ranged(e.bound, "{:.1f}")),
        ("decode / DDR bound", f"{e.decode['central'] / e.bound['central']:.1%}"),
        (f"TTFT {PROMPT} tokens (projected)", _ranged(e.ttft, "{:.3f}", " s")),
    ]
