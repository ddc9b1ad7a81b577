"""The memory plan: the accelerator's DDR buffer laid out (header, weights, params, tables, KV cache,
activations, scratch, program) and its static image built (what weights.bin holds), from the
QuantModel's weights and the design's sizes. Not a graph pass: it reads no IR.

Every region starts on a 4 KiB boundary (AXI bursts never cross 4 KiB) and every item on
`align` bytes (the widest AXI port's beat). The static part [0, static_bytes) is written once
by the host; the rest is zero-initialized working memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.models.numerics import rope_tables
from edgellm.models.weights import QuantModel, TernaryLinear
from edgellm.runtime.layout import head_rows, logits_row

PAGE = 4096
Encoder = Callable[[TernaryLinear], np.ndarray]  # -> uint8 bytes of one matrix in DDR


@dataclass
class Region:
    """A named byte range of the buffer."""

    name: str
    offset: int
    size: int
    static: bool  # part of weights.bin


@dataclass
class MemoryPlan:
    """The buffer layout and its static image."""

    regions: dict[str, Region] = field(default_factory=dict)
    header: np.ndarray | None = None  # uint32[HDR_WORDS]
    static_bytes: int = 0
    total_bytes: int = 0
    image: np.ndarray | None = None  # uint8[static_bytes]
    weight_bytes: int = 0  # encoded ternary matrices only
    ternary_weights: int = 0
    head_rows: int = 1  # rows OP_HEAD scores in one pass: the logits / argmax regions' rows

    def to_dict(self) -> dict:
        """JSON-able summary for the manifest."""
        return {"regions": {k: {"offset": r.offset, "size": r.size, "static": r.static}
                            for k, r in self.regions.items()},
                "static_bytes": self.static_bytes, "total_bytes": self.total_bytes,
                "header": [int(x) for x in self.header] if self.header is not None else None}


def _pad(n: int, a: int) -> int:
    return -(-n // a) * a


class _Layout:
    def __init__(self) -> None:
        self.off = 0
        self.regions: dict[str, Region] = {}

    def region(self, name: str, size: int, static: bool) -> int:
        self.off = _pad(self.off, PAGE)
        self.regions[name] = Region(name, self.off, size, static)
        self.off += size
        return self.regions[name].offset


def _norm(qm: QuantModel, i: int, name: str) -> np.ndarray | None:
    """Layer i's norm gain `name` (interface.NORM_ORDER); the SubLN gains only for SubLN models."""
    if name.endswith("_sub_norm") and not qm.config.subln:
        return None
    return getattr(qm.layers[i], name)


@dataclass
class _Packed:
    """The layers' weights packed in order: the encoded matrices (each padded to `align`), the fp32
    parameters (norm gains, low-bit records' floats), and the per-layer table rows that point into them."""

    align: int
    blobs: list[np.ndarray] = field(default_factory=list)
    w_cursor: int = 0  # bytes of the weights region
    ternary: int = 0  # weights encoded
    floats: list[np.ndarray] = field(default_factory=list)
    f_cursor: int = 0  # floats of the params region
    ld_rows: list[np.ndarray] = field(default_factory=list)
    lb_rows: list[np.ndarray] = field(default_factory=list)

    def add_floats(self, a: np.ndarray) -> int:
        """Append fp32 values (padded to `align` bytes); their float offset in the params region."""
        o = self.f_cursor
        a = np.asarray(a, np.float32).ravel()
        self.floats.append(a)
        pad = _pad(a.size, self.align // 4) - a.size
        if pad:
            self.floats.append(np.zeros(pad, np.float32))
        self.f_cursor += a.size + pad
        return o

    def add_matrix(self, b: np.ndarray) -> int:
        """Append one encoded matrix (padded to `align` bytes); its byte offset in the weights region."""
        o = self.w_cursor
        self.blobs.append(b)
        padded = _pad(b.size, self.align)
        if padded > b.size:
            self.blobs.append(np.zeros(padded - b.size, np.uint8))
        self.w_cursor += padded
        return o


def _pack_layers(qm: QuantModel, encode: Encoder, align: int) -> _Packed:
    """Every layer's linears (interface.LINEAR_ORDER, through `encode`), norm gains (NORM_ORDER), its
    layer_desc row and, for a low-bit encoder (memory_plan_lowbit.LowbitEncoder), its low-bit table rows
    (plan_memory adds the final norm's gain after them, the last of the params)."""
    pk = _Packed(align)
    lowbit = getattr(encode, "lowbit", False)
    for i in range(qm.config.n_layers):
        w_off, w_scale = [], []
        for n in itf.LINEAR_ORDER:
            lin: TernaryLinear = qm.layers[i].linears()[n]
            w_off.append(pk.add_matrix(np.ascontiguousarray(encode(lin), dtype=np.uint8).ravel()))
            w_scale.append(1.0 if lowbit else float(lin.scale))
            pk.ternary += lin.shape[0] * lin.shape[1]
        p_off = []
        for n in itf.NORM_ORDER:
            gain = _norm(qm, i, n)
            p_off.append(pk.add_floats(gain) if gain is not None else 0)
        pk.ld_rows.append(itf.layer_desc(w_off, w_scale, p_off))
        if lowbit:
            pk.lb_rows.append(encode.layer_records(qm.layers[i], pk.add_floats))
    return pk


def plan_memory(qm: QuantModel, encode: Encoder, max_t: int, max_ctx: int, scratch_floats: int,
                scratch_i8: int, tap_floats: int, align: int = 64, top_k: int = 8,
                kv_elem_bytes: int = 4, *, head_lanes: int) -> MemoryPlan:
    """Lay out the buffer for the model's weights with the given encoder: the layers packed
    (_pack_layers), the regions laid out in order (static first: header, tables, weights, params, RoPE
    tables, LM head; then the working memory), the header pointing at them, the static image written.
    kv_elem_bytes: KV cache element size, NumericsPlan.kv_elem_bytes (4: f32, 2: f16). head_lanes: the
    design's LM-head token lanes (DesignParams.head_lanes): the logits / argmax regions hold
    layout.head_rows(max_t, head_lanes) rows (MemoryPlan.head_rows)."""
    c = qm.config
    if max_ctx > c.max_context:
        raise EdgeLLMError(f"max_ctx {max_ctx} exceeds the model's context {c.max_context}")
    if kv_elem_bytes not in (2, 4):
        raise EdgeLLMError(f"KV cache element size {kv_elem_bytes} bytes: expected 4 (f32) or 2 (f16)")
    pk = _pack_layers(qm, encode, align)
    final_norm = pk.add_floats(qm.final_norm)
    head = qm.lm_head
    cos, sin = rope_tables(c.head_dim, max_ctx, c.rope_theta, c.rope_freq_factors)

    lay = _Layout()
    hdr_off = lay.region("header", itf.HDR_WORDS * 4, True)
    table = lay.region("layer_table", c.n_layers * itf.LD_WORDS * 4, True)
    lb_table = lay.region("lowbit_table", c.n_layers * 7 * itf.LB_WORDS * 4, True) if pk.lb_rows else 0
    weights = lay.region("weights", pk.w_cursor, True)
    params = lay.region("params", pk.f_cursor * 4, True)
    cos_off = lay.region("rope_cos", cos.nbytes, True)
    sin_off = lay.region("rope_sin", sin.nbytes, True)
    head_w = lay.region("head_w", head.w.nbytes, True)
    head_s = lay.region("head_scale", head.row_scale.nbytes, True)
    static_end = _pad(lay.off, PAGE)
    kv_bytes = c.n_layers * max_ctx * c.kv_size * kv_elem_bytes
    k_off = lay.region("k_cache", kv_bytes, False)
    v_off = lay.region("v_cache", kv_bytes, False)
    h_off = lay.region("h", max_t * c.hidden_size * 4, False)
    sf = lay.region("scratch_f", scratch_floats * 4, False)
    si = lay.region("scratch_i8", scratch_i8, False)
    taps = lay.region("taps", max(tap_floats, 1) * 4, False)
    rows = head_rows(max_t, head_lanes)  # OP_HEAD scores up to this many rows in one pass (head lanes)
    logits = lay.region("logits", rows * logits_row(c.vocab_size) * 4, False)
    amax = lay.region("argmax", rows * (4 + top_k * 8), False)  # argmax [rows], ids, values [rows][k]
    lay.region("program", (c.n_layers + 1) * itf.DESC_WORDS * 4, False)
    total = _pad(lay.off, PAGE)

    hdr = itf.header({
        "HDR_N_LAYERS": c.n_layers, "HDR_MAX_T": max_t, "HDR_MAX_CTX": max_ctx,
        "HDR_EPS_BITS": itf.f32_bits(c.rms_eps),
        "HDR_ATTN_SCALE_BITS": itf.f32_bits(1.0 / np.sqrt(c.head_dim)),
        "HDR_LAYER_TABLE": table, "HDR_WEIGHTS": weights, "HDR_PARAMS": params,
        "HDR_COS": cos_off, "HDR_SIN": sin_off, "HDR_K_CACHE": k_off, "HDR_V_CACHE": v_off,
        "HDR_H": h_off, "HDR_SCRATCH_F": sf, "HDR_SCRATCH_I8": si, "HDR_TAPS": taps,
        "HDR_FINAL_NORM": final_norm, "HDR_HEAD_W": head_w, "HDR_HEAD_SCALE": head_s,
        "HDR_LOGITS": logits, "HDR_ARGMAX": amax, "HDR_TOPK": top_k, "HDR_LB_TABLE": lb_table})
    if total >= 1 << 32:
        raise EdgeLLMError(f"accelerator buffer of {total / 2**30:.2f} GiB exceeds the 4 GiB "
                           "that 32-bit descriptor offsets address")
    img = np.zeros(static_end, np.uint8)
    for off, a in ((hdr_off, hdr), (table, np.concatenate(pk.ld_rows)),
                   (lb_table, np.concatenate(pk.lb_rows) if pk.lb_rows else None),
                   (params, np.concatenate(pk.floats) if pk.floats else None), (cos_off, cos),
                   (sin_off, sin), (head_w, head.w), (head_s, head.row_scale.astype(np.float32))):
        if a is not None:
            b = np.ascontiguousarray(a).view(np.uint8).ravel()
            img[off:off + b.size] = b
    o = weights
    for b in pk.blobs:  # one matrix at a time (no second copy of every weight)
        img[o:o + b.size] = b
        o += b.size
    return MemoryPlan(lay.regions, hdr, static_end, total, img, pk.w_cursor, pk.ternary, rows)
