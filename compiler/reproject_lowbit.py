"""A compiled low-bit project re-projected through the low-bit engine's cost model (compiler/cost/lowbit.py),
not the ternary one: `edgellm estimate DIR [--check]`, `edgellm report DIR` and `edgellm build`'s
re-projection (compiler/reproject.py).

The model's tensor formats are the ones compile projected (lowbit_estimate.LowbitSource: a GGUF's tensor
types, GPTQ's bits and group, the head as the projection streams it), which the manifest records as
weights.lowbit_model (model_record, written by compiler/manifest.py); the design is the manifest's
(lowbit_estimate.estimate_design). Every figure is projected, not measured.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgellm.boards import SCENARIOS, Board
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.lowbit_estimate import LowbitEstimate, LowbitSource
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import LB_GROUPS

MODEL_KEY = "lowbit_model"  # manifest["weights"][MODEL_KEY]
PROMPT = 128  # TTFT prompt (compiler/reproject.py PROMPT)


def model_record(src: LowbitSource) -> dict[str, Any]:
    """The manifest's record of the formats compile projected: the distinct formats (TensorFormat
    fields), each layer's linears and the checkpoint's head as indices into them, whether the head is
    priced on the low-bit engine (lowbit_head; compile builds the int8 head: False), what they came from,
    the notes."""
    formats: list[cl.TensorFormat] = []

    def index(f: cl.TensorFormat) -> int:
        if f not in formats:
            formats.append(f)
        return formats.index(f)

    layers = [{n: index(f) for n, f in layer.items()} for layer in src.model.layers]
    head = index(src.model.head)
    return {"weights": src.weights, "notes": list(src.notes),
            "formats": [dataclasses.asdict(f) for f in formats], "layers": layers, "head": head,
            "lowbit_head": src.model.lowbit_head}


def _int(v: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def _format(d: Any, i: int) -> cl.TensorFormat:
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("dper"), bool):
        raise ValueError(f"formats[{i}] is not {{name, bits, group, sb, record_bits, dper}}")
    group = _int(d.get("group"), 16, 256, f"formats[{i}].group")
    if group not in LB_GROUPS:
        raise ValueError(f"formats[{i}].group must be one of {LB_GROUPS}, got {group}")
    return cl.TensorFormat(d["name"], _int(d.get("bits"), 1, 8, f"formats[{i}].bits"), group,
                           _int(d.get("sb"), 1, 256, f"formats[{i}].sb"),
                           _int(d.get("record_bits"), 1, cl.MAX_RECORD_BITS, f"formats[{i}].record_bits"),
                           d["dper"])


def _parse(rec: Any, cfg: ModelConfig) -> LowbitSource:
    if not isinstance(rec, dict) or not isinstance(rec.get("formats"), list) \
            or not isinstance(rec.get("layers"), list):
        raise ValueError("not {weights, notes, formats, layers, head}")
    formats = [_format(d, i) for i, d in enumerate(rec["formats"])]

    def fmt(v: Any, what: str) -> cl.TensorFormat:
        return formats[_int(v, 0, len(formats) - 1, what)]

    names = set(cfg.linear_shapes())
    if len(rec["layers"]) != cfg.n_layers:
        raise ValueError(f"{len(rec['layers'])} layers, the model has {cfg.n_layers}")
    layers = []
    for i, layer in enumerate(rec["layers"]):
        if not isinstance(layer, dict) or set(layer) != names:
            raise ValueError(f"layers[{i}] must name the linears {', '.join(sorted(names))}")
        layers.append({n: fmt(layer[n], f"layers[{i}].{n}") for n in cfg.linear_shapes()})
    notes, lowbit_head = rec.get("notes", []), rec.get("lowbit_head", False)
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes) \
            or not isinstance(rec.get("weights"), str) or not isinstance(lowbit_head, bool):
        raise ValueError("weights must be a string, notes a list of strings, lowbit_head true or false")
    model = cl.LowbitModel(tuple(layers), fmt(rec.get("head"), "head"), lowbit_head)
    return LowbitSource(cfg, model, rec["weights"], tuple(notes))


def source_from_manifest(m: dict[str, Any], cfg: ModelConfig, where: str) -> LowbitSource:
    """The LowbitSource a low-bit project's manifest records (weights.lowbit_model); EdgeLLMError in one
    line when it has none (compiled before edgellm recorded it) or it is malformed."""
    weights = m.get("weights")
    rec = weights.get(MODEL_KEY) if isinstance(weights, dict) else None
    if rec is None:
        raise EdgeLLMError(f"{where}: no weights.{MODEL_KEY} (the tensor formats a low-bit design is "
                           "re-projected with; recompile the project with this edgellm)")
    try:
        return _parse(rec, cfg)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise EdgeLLMError(f"{where}: bad weights.{MODEL_KEY} ({' '.join(str(e).split())[:200]})") from None


def speeds(src: LowbitSource, board: Board, e: LowbitEstimate, mhz: float) -> dict[str, dict[str, float]]:
    """Projected decode tok/s and TTFT(PROMPT) s of the low-bit design of e run at mhz, at each bandwidth
    scenario (compiler/reproject.py speeds' shape)."""
    out: dict[str, dict[str, float]] = {"decode_tok_s": {}, f"ttft_{PROMPT}_s": {}}
    for s in SCENARIOS:
        r = ls.project(src.cfg, board.with_scenario(s), src.model, e.engine, e.vector, mhz)
        out["decode_tok_s"][s] = r["decode"]
        out[f"ttft_{PROMPT}_s"][s] = r["ttft"]
    return out

