"""The verification ladder for a compiled project (docs/runtime.md, "edgellm verify").

device (emulator = C simulation of the project's HLS, or the board) vs golden: bit for bit on every
per-layer stage (step mode, one descriptor per start, DESC_TAPS), the logits, the fabric's argmax
and top-k, and the greedy continuation. onnxruntime vs golden (runtime/verify_onnx.py): every layer
teacher-forced, float stages to float noise and int8 codes equal or an explained rounding flip; the
logits; the same greedy tokens. The QuantModel comes from the manifest's model_source when it exists (then the
weight image is also checked to decode to it), else it is rebuilt from weights.bin + embed.bin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime.driver import TAP_STAGES, Driver
from edgellm.runtime.generation import check_prompt
from edgellm.runtime.project import Project

STAGES = (*TAP_STAGES, "h_out")


@dataclass
class Row:
    """One comparison: pair, stage, error figures and verdict."""

    pair: str
    stage: str
    max_abs: float | None = None
    max_ulp: int | None = None
    exact: bool | None = None
    ok: bool = True
    note: str = ""


@dataclass
class Report:
    """Everything verify found; ok is False when any row failed."""

    project: str
    device: str
    prompt_ids: list[int]
    rows: list[Row] = field(default_factory=list)
    tokens: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All rows passed."""
        return all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"project": self.project, "device": self.device, "prompt_ids": self.prompt_ids,
                "ok": self.ok, "tokens": self.tokens, "notes": self.notes,
                "rows": [r.__dict__ for r in self.rows]}


def reference_prompt(project_dir: str | Path, vocab_size: int) -> list[int] | None:
    """reference/golden.json's prompt_ids (None when the file or the key is absent); EdgeLLMError naming
    the file when it is unreadable, not a JSON object, or its ids are not integers in [0, vocab_size).
    The deployed board script reads the reference prompt through this too."""
    path = Path(project_dir) / "reference" / "golden.json"
    if not path.exists():
        return None
    if not path.is_file():
        raise EdgeLLMError(f"{path}: not a regular file")
    try:
        data = jsonfile.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgeLLMError(f"{path}: cannot read the reference prompt ({e})") from None
    if not isinstance(data, dict):
        raise EdgeLLMError(f"{path}: not a JSON object")
    ids = data.get("prompt_ids")
    if ids is None:
        return None
    if (not isinstance(ids, list) or not ids
            or not all(type(t) is int and 0 <= t < vocab_size for t in ids)):
        raise EdgeLLMError(f"{path}: prompt_ids must be a non-empty list of token ids in [0, {vocab_size})")
    return list(ids)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units of last place between two float32 arrays (0 = bit-identical)."""
    def ordered(x: np.ndarray) -> np.ndarray:
        i = np.ascontiguousarray(x, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    if a.size == 0:
        return 0
    return int(np.abs(ordered(a) - ordered(b)).max())


def compare(pair: str, stage: str, got: np.ndarray, want: np.ndarray, tol: float | None = None) -> Row:
    """Row for got vs want: exact when tol is None, else max |err| <= tol."""
    g = np.asarray(got, np.float32).reshape(-1)
    w = np.asarray(want, np.float32).reshape(-1)
    if g.shape != w.shape:
        return Row(pair, stage, ok=False, note=f"shape {g.size} vs {w.size}")
    exact = bool(np.array_equal(g.view(np.uint32), w.view(np.uint32)))
    err = float(np.abs(g.astype(np.float64) - w).max()) if g.size else 0.0
    ok = exact if tol is None else bool(err <= tol)
    return Row(pair, stage, err, ulp_distance(g, w), exact, ok, "" if tol is None else f"tol {tol:.2e}")


def model_from_image(p: Project) -> Any:
    """Rebuild the QuantModel the device computes with from weights.bin and embed.bin."""
    from edgellm.compiler.packing import packed_size, unpack_ternary
    from edgellm.models.weights import Int8Head, Layer, QuantModel, TernaryLinear

    c, img = p.config, p.image()
    m = p.manifest
    rows = (m.get("weights") or {}).get("rows_per_tile") or (m.get("design") or {}).get("rows")
    if not rows:
        raise EdgeLLMError("manifest records no weights.rows_per_tile: cannot decode the weight image")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:  # design.rows is not schema-checked
        raise EdgeLLMError(f"manifest's rows per tile must be a positive integer, got {rows!r}: cannot "
                           "decode the weight image")
    built = (m.get("design") or {}).get("rows" if (m.get("design") or {}).get("matmul", "tlmm") == "tlmm"
                                        else "lowbit_rows")
    if built is not None and built != rows:  # the engine reads its tiles at the design's rows
        raise EdgeLLMError(f"manifest's weights.rows_per_tile {rows} is not its design's rows {built!r}: "
                           "cannot decode the weight image")
    hdr = {k: int(v) for k, v in zip(itf.HEADER_WORDS, img[p.iface.hdr_off:][:itf.HDR_WORDS * 4]
                                      .view(np.uint32), strict=False)}
    def f32(off: int, n: int) -> np.ndarray:
        return img[off:off + 4 * n].view(np.float32).copy()
    def par(fo: int, n: int) -> np.ndarray:
        return f32(hdr["HDR_PARAMS"] + 4 * fo, n)
    layers = []
    lowbit = hdr["HDR_LB_TABLE"] != 0
    for i in range(c.n_layers):
        ld = img[hdr["HDR_LAYER_TABLE"] + 4 * i * itf.LD_WORDS:][:4 * itf.LD_WORDS].view(np.uint32)
        lin: dict[str, Any] = {}
        for j, n in enumerate(itf.LINEAR_ORDER):
            o, k = c.linear_shapes()[n]
            off = hdr["HDR_WEIGHTS"] + int(ld[itf.LD_W_OFF + j])
            if lowbit:
                ro = hdr["HDR_LB_TABLE"] + 4 * (7 * i + j) * itf.LB_WORDS
                rec = img[ro:ro + 4 * itf.LB_WORDS].view(np.uint32)
                lin[n], bo = _lowbit_linear(img, off, rec, o, k, m.get("design") or {})
                if bo is not None:
                    lin[f"{n}_bias"] = par(bo, o)
                continue
            w = unpack_ternary(img[off:off + packed_size(o, k, int(rows))], o, k, int(rows))
            lin[n] = TernaryLinear.from_ternary(w, float(ld[itf.LD_W_SCALE + j:][:1].view(np.float32)[0]))
        po = [int(x) for x in ld[itf.LD_P_OFF:itf.LD_P_OFF + 4]]
        layers.append(Layer(attn_norm=par(po[0], c.hidden_size), ffn_norm=par(po[1], c.hidden_size),
                            attn_sub_norm=par(po[2], c.q_size) if c.subln else None,
                            ffn_sub_norm=par(po[3], c.ffn_size) if c.subln else None, **lin))
    hw = img[hdr["HDR_HEAD_W"]:hdr["HDR_HEAD_W"] + c.vocab_size * c.hidden_size].view(np.int8)
    head = Int8Head(hw.reshape(c.vocab_size, c.hidden_size).copy(), f32(hdr["HDR_HEAD_SCALE"], c.vocab_size))
    qm = QuantModel(c, np.array(p.embed_table()), layers, par(hdr["HDR_FINAL_NORM"], c.hidden_size), head,
                    meta={"source": f"rebuilt from {p.weights_path}"})
    qm.validate()
    return qm


def _lowbit_linear(img: np.ndarray, off: int, rec: np.ndarray, n_out: int, n_in: int,
                   design: dict[str, Any]) -> tuple[Any, int | None]:
    """A low-bit linear from its port images at off and its low-bit table record (the design's R and
    beat): (LowBitLinear, its bias's float offset in the params area or None)."""
    from edgellm.compiler.memory_plan_lowbit import decode_record, image_from_buffer
    from edgellm.compiler.packing_lowbit import unpack_lowbit
    from edgellm.models.weights import LowBitLinear
    from edgellm.runtime.lowbit_gear import gear_of_design

    f = decode_record(rec)
    rows, ports = design.get("lowbit_rows"), design.get("lowbit_ports")
    if not rows or not ports:
        raise EdgeLLMError("manifest records no design.lowbit_rows / lowbit_ports: cannot decode the "
                           "low-bit weight image")
    q = unpack_lowbit(image_from_buffer(img, off, f, n_out, n_in, int(rows), 128 * int(ports),
                                        gear_of_design(design)))
    bias = None if f["LB_BIAS_OFF"] == itf.LB_NO_BIAS else f["LB_BIAS_OFF"]
    return LowBitLinear(q, "image"), bias


def _same_linear(x: Any, y: Any) -> bool:
    """Two linears (ternary or low-bit) hold the same numbers."""
    from edgellm.models.weights import LowBitLinear

    if isinstance(x, LowBitLinear) or isinstance(y, LowBitLinear):
        if not (isinstance(x, LowBitLinear) and isinstance(y, LowBitLinear)):
            return False
        a, b = x.quant, y.quant
        return (a.bits, a.group) == (b.bits, b.group) and np.array_equal(a.codes, b.codes) and all(
            np.array_equal(getattr(a, n).view(np.uint32), getattr(b, n).view(np.uint32))
            for n in ("scales", "mins"))
    return np.array_equal(x.dense(), y.dense()) and np.float32(x.scale) == np.float32(y.scale)


def image_matches(a: Any, b: Any) -> str | None:
    """None when two QuantModels hold the same numbers, else the first difference."""
    if a.config.to_dict() != b.config.to_dict():
        return "model config"
    for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=True)):
        for n, lin in la.linears().items():
            if not _same_linear(lin, lb.linears()[n]):
                return f"layers.{i}.{n}"
        for n in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm", "q_bias", "k_bias", "v_bias"):
            x, y = getattr(la, n), getattr(lb, n)
            if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
                return f"layers.{i}.{n}"
    if not np.array_equal(a.final_norm, b.final_norm):
        return "final_norm"
    ha, hb = a.lm_head, b.lm_head
    if not (np.array_equal(ha.w, hb.w) and np.array_equal(ha.row_scale, hb.row_scale)):
        return "lm_head"
    ids = np.arange(a.config.vocab_size)
    if not np.array_equal(a.embed_rows(ids), b.embed_rows(ids)):
        return "embed"
    return None


def device_taps(drv: Driver, p: Project, ids: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """Step mode over the prompt: per layer and stage (T, width) taps, last-token logits, top-k."""
    mt, nl = p.iface.max_t, p.config.n_layers
    parts: dict[str, list[np.ndarray]] = {}
    logits, topk = None, None
    for b in range(0, len(ids), mt):
        block = ids[b:b + mt]
        t = len(block)
        drv.write_h(p.embed_rows(np.asarray(block)))
        for i in range(nl):
            drv.run_layer(i, t, b, taps=True)
            for s, a in drv.read_taps(t).items():
                parts.setdefault(f"L{i}.{s}", []).append(a)
            parts.setdefault(f"L{i}.h_out", []).append(drv.read_h(t))
        logits = drv.run_head(t, b, t - 1)
        topk = drv.read_topk()
    return {k: np.concatenate(v) for k, v in parts.items()}, logits, topk


def greedy(backend: Any, prompt: list[int], n: int,
           first: np.ndarray | None = None) -> tuple[list[int], list[np.ndarray]]:
    """n greedy tokens and each step's logits (prefill the prompt unless first logits are given)."""
    logits = first if first is not None else np.asarray(backend.forward(np.array(prompt)))[-1]
    toks, rows = [], [np.asarray(logits, np.float32).reshape(-1)]
    for k in range(n):
        toks.append(int(np.argmax(rows[-1])))
        if k + 1 < n:
            rows.append(np.asarray(backend.forward(np.array(toks[-1:])), np.float32).reshape(-1))
    return toks, rows


def run_verify(p: Project, device: Any, prompt_ids: list[int], new_tokens: int = 8, onnx: bool = True,
               timeout_s: float = 60.0, on_stage: Callable[[str, int, int], None] | None = None) -> Report:
    """Run the ladder; see the module docstring. on_stage(what, done, total) is told each rung as it
    starts (progress lines)."""
    stage = on_stage or (lambda what, done, total: None)
    total = 5 if onnx else 4
    from edgellm.models.golden import GoldenModel
    from edgellm.runtime.session import Session

    if not prompt_ids or len(prompt_ids) + new_tokens > p.iface.max_ctx:
        raise EdgeLLMError(f"prompt of {len(prompt_ids)} tokens + {new_tokens} new tokens must fit the "
                           f"KV cache of {p.iface.max_ctx}")
    prompt_ids = check_prompt(prompt_ids, p.iface.max_ctx, p.config.vocab_size)
    rep = Report(str(p.path), device.name, list(prompt_ids))
    qm = _model(p, rep)
    gm = GoldenModel(qm, p.numerics)
    taps: dict[str, np.ndarray] = {}
    cache = gm.new_cache(p.iface.max_ctx)
    stage("golden forward over the prompt, every stage tapped", 0, total)
    g_logits = gm.forward(np.array(prompt_ids), cache, tap=lambda n, a: taps.__setitem__(n, a),
                          all_logits=False)[0]
    drv = Driver(p, device, timeout_s)
    stage("device in step mode, every layer and stage tapped", 1, total)
    d_taps, d_logits, d_top = device_taps(drv, p, prompt_ids)
    pair = "device vs golden"
    for i in range(p.config.n_layers):
        for s in STAGES:
            rep.rows.append(compare(pair, f"L{i}.{s}", d_taps[f"L{i}.{s}"], taps[f"L{i}.{s}"]))
    rep.rows.append(compare(pair, "logits", d_logits, g_logits))
    order = np.argsort(-g_logits, kind="stable")[:p.iface.top_k]
    ok_top = d_top.argmax == int(order[0]) and np.array_equal(d_top.ids, order)
    rep.rows.append(Row(pair, f"argmax/top-{p.iface.top_k}", exact=ok_top, ok=ok_top,
                        note=f"argmax {d_top.argmax} vs {int(order[0])}"))
    stage(f"golden greedy {new_tokens} tokens", 2, total)
    g_toks, g_rows = greedy(_GoldenState(gm, cache), prompt_ids, new_tokens, g_logits)
    stage(f"device greedy {new_tokens} tokens", 3, total)
    sess = Session(p, device, driver=drv)
    d_toks, d_rows = greedy(sess, prompt_ids, new_tokens)
    rep.tokens.update(golden=g_toks, device=d_toks)
    worst = max((compare(pair, "", a, b) for a, b in zip(d_rows, g_rows, strict=True)),
                key=lambda r: (not r.exact, r.max_ulp or 0))
    rep.rows.append(Row(pair, f"greedy {new_tokens} tokens", worst.max_abs, worst.max_ulp, worst.exact,
                        bool(worst.exact) and d_toks == g_toks, _agree(d_toks, g_toks)))
    if onnx:
        stage("onnxruntime vs golden", 4, total)
        from edgellm.runtime.verify_onnx import onnx_rows  # it imports this module

        onnx_rows(p, qm, prompt_ids, new_tokens, g_logits, g_toks, rep, gm, taps)
    return rep


class _GoldenState:
    """The golden model with an existing cache, as a forward()-only engine."""

    def __init__(self, gm: Any, cache: Any) -> None:
        self.gm, self.cache = gm, cache

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        return self.gm.forward(tokens, self.cache, all_logits=False)


def _agree(a: list[int], b: list[int]) -> str:
    same = sum(x == y for x, y in zip(a, b, strict=False))
    return f"token agreement {same}/{max(len(a), len(b))}"


def _source_path(src: str) -> Path:
    """The checkpoint a manifest's model_source names (the shipped tiny model is recorded by name:
    models/shipped.py); the board's runtime copy has no models/shipped.py and no shipped model."""
    try:
        from edgellm.models.shipped import source_path
    except ImportError:
        return Path(src)
    return source_path(src)


def _source_available(src: Any) -> bool:
    """Whether the manifest's model_source names a checkpoint here (a hand-edited number names none: it
    was a TypeError from Path)."""
    if not isinstance(src, str) or not src:
        return False
    try:
        return _source_path(src).exists()
    except (OSError, ValueError):
        return False


def _model(p: Project, rep: Report) -> Any:
    rebuilt = model_from_image(p)
    src = p.manifest.get("model_source")
    if not _source_available(src):
        rep.notes.append(f"model source {src!r} not available: golden runs on the model rebuilt "
                         "from weights.bin")
        return rebuilt
    from edgellm.models.loaders import load_model

    qm, _ = load_model(_source_path(src))
    diff = image_matches(rebuilt, qm)
    rep.rows.append(Row("image vs source", "weights.bin decoded", exact=diff is None, ok=diff is None,
                        note="identical" if diff is None else f"first difference: {diff}"))
    return qm
