"""The host's half of the accelerator's bounds checks and of its status protocol (interface.h).

The top checks every header, layer-table and descriptor field against the buffer size the host
writes into HDR_BUF_BYTES and against its compiled configuration before it uses one
(hw/include/edgellm/program_check.h), and reports the first bad one in the header's status words.
The driver runs the same checks, in the same order, before it starts the accelerator (on a board
these fields become DMA addresses), and turns the top's status words into one EdgeLLMError line
naming the field. numpy only (runs on the board).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.runtime.layout import (
    HEAD_ROWS_MAX,
    LB_BEAT_BITS,
    LB_FLOAT_UNITS,
    LB_MAX_GROUP,
    LB_MAX_SB,
    LB_MIN_GROUP,
    head_rows,
    logits_row,
)
from edgellm.runtime.lowbit_gear import Gear, gear_of_design

N_LIN = len(itf.LINEAR_ORDER)
LB_PORT_BEAT = LB_BEAT_BITS // 8  # bytes of a low-bit weight port's beat (lowbit_source.h kLbBeatBits / 8)
MAX_BUFFER = 1 << 32  # 32-bit offsets: the accelerator addresses at most 4 GiB
REASONS = {
    "ST_MISMATCH": "does not match the compiled design",
    "ST_RANGE": "points outside the {buf}-byte buffer",
    "ST_ALIGN": "is not aligned to its port's beat (regions: the data beat, weights: the weight beat, the "
                "program: 4 bytes)",
    "ST_LIMIT": "exceeds what the compiled design runs",
    "ST_FLOAT": "is not a finite float (eps and scales: > 0)",
    "ST_OPCODE": "is not a known opcode or flag",
}
HOST_REGIONS = (("HDR_H", "h"), ("HDR_LOGITS", "logits"), ("HDR_ARGMAX", "argmax"), ("HDR_TAPS", "taps"),
                ("HDR_K_CACHE", "k_cache"), ("HDR_V_CACHE", "v_cache"))
CODE_NAMES = {v: k for k, v in itf.STATUS.items()}
DESC_NAMES = ("D_OP", "D_LAYER", "D_T_LEN", "D_POS0", "D_FLAGS", "D_ROW", "D_N_ROWS")
REG_NAMES = ("hdr_off", "prog_off", "n_desc")
POINTERS = itf.status_field(itf.SW_REG, 0, itf.REG_POINTERS)
FLOAT_FIELDS = {itf.status_field(itf.SW_HEADER, 0, itf.HDR[w])
                for w in ("HDR_EPS_BITS", "HDR_ATTN_SCALE_BITS")}


class BoundsError(EdgeLLMError):
    """A header, layer-table or descriptor field the accelerator must not be given."""


@dataclass(frozen=True)
class Limits:
    """What the compiled accelerator was built for (the project's config) and its buffer size."""

    n_layers: int
    max_t: int
    max_ctx: int
    hidden: int
    q_size: int
    kv_size: int
    ffn: int
    head_dim: int
    vocab: int
    subln: bool
    kv_bytes: int  # bytes per KV cache element
    rows_per_tile: int  # R of the tiled ternary encoding (1: the smallest extent, when unknown)
    k_top: int  # top-k capacity (LmHeadConfig K_TOP)
    buf_bytes: int
    data_beat: int = 16  # bytes of a data / act port beat (design.data_port_width_bits / 8)
    head_lanes: int = HEAD_ROWS_MAX  # the compiled head's token lanes (Interface.head_rows)
    lowbit_rows: int = 0  # a low-bit design's R (design.lowbit_rows); 0: a ternary design
    lowbit_beat_bits: int = LB_BEAT_BITS  # its engine beat BW (128 x design.lowbit_ports)
    lowbit_max_group: int = LB_MAX_GROUP  # its MAXG (design.lowbit_max_group)
    lowbit_float_units: int = LB_FLOAT_UNITS[-1]  # its FU (design.lowbit_float_units; min(FU, BW/MING) built)
    lowbit_max_sb: int = LB_MAX_SB  # its MAXSB (design.lowbit_max_sb)
    lowbit_min_group: int = LB_MIN_GROUP  # its MING (design.lowbit_min_group)
    lowbit_codecs: tuple[tuple[int, ...], ...] = ()  # the codecs it decodes (design.lowbit_codecs); (): any
    lowbit_gear: Gear = Gear()  # its weight gearbox (design.lowbit_gear: the ports' image lengths)

    @classmethod
    def of(cls, project: Any, buf_bytes: int) -> Limits:
        """The limits of a Project (runtime/project.py) over a buffer of buf_bytes."""
        c, m = project.config, project.manifest
        rows = (m.get("weights") or {}).get("rows_per_tile") or (m.get("design") or {}).get("rows") or 1
        d = m.get("design") or {}
        beat = int(d.get("data_port_width_bits") or 128) // 8
        lb = (int(d["lowbit_rows"]), LB_BEAT_BITS * int(d["lowbit_ports"]), int(d["lowbit_max_group"]),
              int(d.get("lowbit_float_units", LB_FLOAT_UNITS[-1])), int(d.get("lowbit_max_sb", LB_MAX_SB)),
              int(d.get("lowbit_min_group", LB_MIN_GROUP)),
              tuple(tuple(int(v) for v in c) for c in d.get("lowbit_codecs") or ()), gear_of_design(d)) \
            if d.get("matmul") == "lowbit" \
            else (0, LB_BEAT_BITS, LB_MAX_GROUP, LB_FLOAT_UNITS[-1], LB_MAX_SB, LB_MIN_GROUP, (), Gear())
        return cls(c.n_layers, project.iface.max_t, project.iface.max_ctx, c.hidden_size, c.q_size,
                   c.kv_size, c.ffn_size, c.head_dim, c.vocab_size, bool(c.subln),
                   int(project.numerics.kv_elem_bytes), int(rows), max(int(project.iface.top_k), 1),
                   int(buf_bytes), beat, int(project.iface.head_rows), *lb)

    @property
    def head_rows(self) -> int:
        """Rows one OP_HEAD scores in one pass (the compiled head's MAX_TOK: its lanes, at most max_t)."""
        return head_rows(self.max_t, self.head_lanes)

    @property
    def image_beat(self) -> int:
        """Bytes a linear's image starts on: the TLMM's R-byte beat, or a low-bit port's 16-byte beat."""
        return LB_PORT_BEAT if self.lowbit_rows else self.rows_per_tile

    @property
    def weight_beat(self) -> int:
        """Bytes a weight region must start on: the data beat and the weight ports' (R bytes; low-bit:
        the LM head's 16-byte P)."""
        return max(self.data_beat, self.image_beat)

    def matrix_bytes(self, n_out: int, k: int) -> int:
        """Bytes of an encoded n_out x k matrix the TLMM reads (program_check.h mm_image; a low-bit
        design: one beat, its port images are checked with its record, check_lowbit)."""
        if self.lowbit_rows:
            return LB_PORT_BEAT
        raw = n_out * -(-k // 5)
        return -(-raw // self.rows_per_tile) * self.rows_per_tile

    def linear_shape(self, i: int) -> tuple[int, int]:
        """(outputs, inputs) of linear i in LINEAR_ORDER (decoder_layer.h lin_out / lin_in)."""
        out = {"q": self.q_size, "k": self.kv_size, "v": self.kv_size, "gate": self.ffn, "up": self.ffn}
        inp = {"o": self.q_size, "down": self.ffn}
        n = itf.LINEAR_ORDER[i]
        return out.get(n, self.hidden), inp.get(n, self.hidden)

    def norm_len(self, i: int) -> int:
        """Floats of norm gain i in NORM_ORDER."""
        return {2: self.q_size, 3: self.ffn}.get(i, self.hidden)

    def header_regions(self, top_k: int) -> list[tuple[str, int, int]]:
        """(header word, bytes the kernels touch there, the beat it must start on) in program_check.h's
        order: every region on a data beat, the weights and the LM head's rows also on a weight beat."""
        mt, h, v = self.max_t, self.hidden, self.vocab
        kv = self.n_layers * self.max_ctx * self.kv_size * self.kv_bytes
        rope = 4 * self.max_ctx * (self.head_dim // 2)
        q, k, f = self.q_size, self.kv_size, self.ffn
        scratch = mt * (3 * q + 3 * k + 2 * f + h) + 2 * mt  # layer_scratch<C>::floats
        taps = mt * (2 * q + 2 * k + h + f)  # layer_taps<C>::floats
        db, wb = self.data_beat, self.weight_beat
        return [("HDR_LAYER_TABLE", self.n_layers * itf.LD_WORDS * 4, db), ("HDR_PARAMS", 4, db),
                ("HDR_COS", rope, db), ("HDR_SIN", rope, db), ("HDR_K_CACHE", kv, db),
                ("HDR_V_CACHE", kv, db), ("HDR_H", 4 * h * mt, db), ("HDR_SCRATCH_F", 4 * scratch, db),
                ("HDR_TAPS", 4 * taps, db), ("HDR_HEAD_SCALE", 4 * v, db),
                ("HDR_LOGITS", 4 * logits_row(v) * self.head_rows, db),
                ("HDR_ARGMAX", self.head_rows * (4 + 8 * top_k), db), ("HDR_WEIGHTS", 1, wb),
                ("HDR_SCRATCH_I8", mt * max(h, q, f), db), ("HDR_HEAD_W", v * h, wb),
                *([("HDR_LB_TABLE", self.n_layers * N_LIN * itf.LB_WORDS * 4, db)] * bool(self.lowbit_rows))]


class _Check:
    """First failure wins, as program_check.h's CheckResult."""

    def __init__(self, buf: int) -> None:
        self.buf = buf
        self.code, self.field, self.value = itf.ST_OK, 0, 0

    def fail(self, code: str, field: int, value: int) -> None:
        if self.code == itf.ST_OK:
            self.code, self.field, self.value = itf.STATUS[code], field, int(value) & 0xFFFFFFFF

    def span(self, field: int, value: int, start: int, nbytes: int, align: int) -> None:
        if start + nbytes > self.buf:  # outside is the first thing to say about an offset
            self.fail("ST_RANGE", field, value)
        if start % align:
            self.fail("ST_ALIGN", field, value)

    def raise_if_bad(self, what: str) -> None:
        if self.code != itf.ST_OK:
            raise BoundsError(f"{describe(self.code, self.field, self.value, self.buf)}; {what}")


def _finite(bits: int, positive: bool) -> bool:
    fin = ((bits >> 23) & 0xFF) != 0xFF
    if not positive:
        return fin
    return fin and not bits >> 31 and (bits & 0x7FFFFFFF) != 0


def check_header(hdr: np.ndarray, hdr_off: int, lim: Limits) -> None:
    """The header (uint32[HDR_WORDS] at hdr_off) as program_check.h checks it; BoundsError naming the
    first bad field. Once it passes, the layer table lies inside the buffer (check_layers)."""
    h = [int(x) for x in hdr]
    ck = _Check(lim.buf_bytes)
    hf = lambda w: itf.status_field(itf.SW_HEADER, 0, itf.HDR[w])  # noqa: E731
    for w, want in (("HDR_MAGIC", itf.MAGIC), ("HDR_VERSION", itf.INTERFACE_VERSION),
                    ("HDR_N_LAYERS", lim.n_layers), ("HDR_MAX_T", lim.max_t), ("HDR_MAX_CTX", lim.max_ctx)):
        if h[itf.HDR[w]] != want:
            ck.fail("ST_MISMATCH", hf(w), h[itf.HDR[w]])
    top_k = h[itf.HDR["HDR_TOPK"]]
    if top_k > lim.k_top:
        ck.fail("ST_LIMIT", hf("HDR_TOPK"), top_k)
    if hdr_off + 4 * itf.HDR_WORDS > lim.buf_bytes:
        ck.fail("ST_RANGE", hf("HDR_BUF_BYTES"), lim.buf_bytes)
    for w in ("HDR_EPS_BITS", "HDR_ATTN_SCALE_BITS"):
        if not _finite(h[itf.HDR[w]], True):
            ck.fail("ST_FLOAT", hf(w), h[itf.HDR[w]])
    for w, nbytes, align in lim.header_regions(top_k):
        ck.span(hf(w), h[itf.HDR[w]], h[itf.HDR[w]], nbytes, align)
    params = h[itf.HDR["HDR_PARAMS"]]
    fn = h[itf.HDR["HDR_FINAL_NORM"]]
    ck.span(hf("HDR_FINAL_NORM"), fn, params + 4 * fn, 4 * lim.hidden, lim.data_beat)
    ck.raise_if_bad("weights.bin's header is refused (the accelerator would be given it)")


def check_regions(hdr: np.ndarray, regions: dict[str, tuple[int, int]]) -> None:
    """The header's offsets of the regions the host reads and writes equal the manifest's (the host
    puts H and reads logits, argmax, taps where the manifest says; the top where the header says)."""
    for word, name in HOST_REGIONS:
        got, want = int(hdr[itf.HDR[word]]), regions.get(name, (None, 0))[0]
        if want is not None and got != want:
            raise BoundsError(f"header field {word} = {got} does not match the manifest's {name!r} region at "
                              f"{want}; weights.bin's header is refused")


def check_layers(table: np.ndarray, hdr: np.ndarray, lim: Limits) -> None:
    """The layer table (uint32[n_layers, LD_WORDS]) of a checked header, as program_check.h checks it."""
    table = np.asarray(table, np.uint32).reshape(-1, itf.LD_WORDS)
    if table.shape[0] != lim.n_layers:
        raise BoundsError(f"layer table of {table.shape[0]} rows; the design has {lim.n_layers} layers")
    ck = _Check(lim.buf_bytes)
    wbase, pbase = int(hdr[itf.HDR["HDR_WEIGHTS"]]), int(hdr[itf.HDR["HDR_PARAMS"]])
    for layer in range(lim.n_layers):
        ld = [int(x) for x in table[layer]]
        for i in range(len(itf.LINEAR_ORDER)):
            off, sc = ld[itf.LD_W_OFF + i], ld[itf.LD_W_SCALE + i]
            ck.span(itf.status_field(itf.SW_LAYER, layer, itf.LD_W_OFF + i), off, wbase + off,
                    lim.matrix_bytes(*lim.linear_shape(i)), lim.image_beat)
            if not _finite(sc, False):
                ck.fail("ST_FLOAT", itf.status_field(itf.SW_LAYER, layer, itf.LD_W_SCALE + i), sc)
        for i in range(len(itf.NORM_ORDER)):
            if i < 2 or lim.subln:
                off = ld[itf.LD_P_OFF + i]
                ck.span(itf.status_field(itf.SW_LAYER, layer, itf.LD_P_OFF + i), off, pbase + 4 * off,
                        4 * lim.norm_len(i), lim.data_beat)
    ck.raise_if_bad("weights.bin's layer table is refused (the accelerator would be given it)")


def check_program(prog: np.ndarray, prog_off: int, lim: Limits) -> None:
    """A descriptor program (n, DESC_WORDS) at prog_off as program_check.h checks it."""
    ck = _Check(lim.buf_bytes)
    n = int(prog.shape[0])
    if prog_off % 4:
        ck.fail("ST_ALIGN", itf.status_field(itf.SW_REG, 0, itf.REG_PROG_OFF), prog_off)
    if prog_off + 4 * itf.DESC_WORDS * n > lim.buf_bytes:
        ck.fail("ST_RANGE", itf.status_field(itf.SW_REG, 0, itf.REG_N_DESC), n)
    for i in range(n if ck.code == itf.ST_OK else 0):
        d = [int(x) for x in prog[i]]
        f = lambda w, i=i: itf.status_field(itf.SW_DESC, i, w)  # noqa: E731
        if d[itf.D_OP] == itf.OP_LAYER:
            if d[itf.D_LAYER] >= lim.n_layers:
                ck.fail("ST_LIMIT", f(itf.D_LAYER), d[itf.D_LAYER])
            if not 1 <= d[itf.D_T_LEN] <= lim.max_t:
                ck.fail("ST_LIMIT", f(itf.D_T_LEN), d[itf.D_T_LEN])
            if d[itf.D_POS0] + d[itf.D_T_LEN] > lim.max_ctx:
                ck.fail("ST_LIMIT", f(itf.D_POS0), d[itf.D_POS0])
        elif d[itf.D_OP] == itf.OP_HEAD:
            n_rows = max(d[itf.D_N_ROWS], 1)  # 0: one row
            if d[itf.D_ROW] >= lim.max_t:
                ck.fail("ST_LIMIT", f(itf.D_ROW), d[itf.D_ROW])
            if d[itf.D_N_ROWS] > lim.head_rows or d[itf.D_ROW] + n_rows > lim.max_t:
                ck.fail("ST_LIMIT", f(itf.D_N_ROWS), d[itf.D_N_ROWS])
        else:
            ck.fail("ST_OPCODE", f(itf.D_OP), d[itf.D_OP])
        if d[itf.D_FLAGS] & ~itf.DESC_TAPS:
            ck.fail("ST_OPCODE", f(itf.D_FLAGS), d[itf.D_FLAGS])
        if ck.code != itf.ST_OK:
            break
    ck.raise_if_bad("the descriptor program is refused")


def field_name(field: int) -> str:
    """Human name of a HDR_STATUS_FIELD value."""
    where, index, word = field >> 24, (field >> 8) & 0xFFFF, field & 0xFF
    if where == itf.SW_HEADER and word < len(itf.HEADER_WORDS):
        return f"header field {itf.HEADER_WORDS[word]}"
    if where == itf.SW_LAYER and itf.LD_WORDS <= word < itf.LD_WORDS + N_LIN * itf.LB_WORDS:
        i, w = divmod(word - itf.LD_WORDS, itf.LB_WORDS)
        name = itf.LB_FIELDS[w] if w < len(itf.LB_FIELDS) else f"word {w}"
        return f"layer {index} low-bit record of {itf.LINEAR_ORDER[i]} field {name}"
    if where == itf.SW_LAYER and word < itf.LD_WORDS:
        if word < itf.LD_W_SCALE:
            return f"layer {index} table field w_off[{itf.LINEAR_ORDER[word]}]"
        if word < itf.LD_P_OFF:
            return f"layer {index} table field w_scale[{itf.LINEAR_ORDER[word - itf.LD_W_SCALE]}]"
        if word - itf.LD_P_OFF < len(itf.NORM_ORDER):
            return f"layer {index} table field p_off[{itf.NORM_ORDER[word - itf.LD_P_OFF]}]"
    if where == itf.SW_DESC and word < len(DESC_NAMES):
        return f"descriptor {index} field {DESC_NAMES[word]}"
    if where == itf.SW_REG and word < len(REG_NAMES):
        return f"register {REG_NAMES[word]}"
    return f"field 0x{field:08x}"


def describe(code: int, field: int, value: int, buf: int) -> str:
    """One line: which field, its value, what is wrong with it."""
    if field == POINTERS:
        return "the m_axi pointer registers do not all see the header (each must hold the buffer's address)"
    name = CODE_NAMES.get(code, f"status {code}")
    reason = REASONS.get(name, f"was refused ({name})").format(buf=buf)
    shown = f"{value}"
    if name == "ST_FLOAT" or field in FLOAT_FIELDS or ((field >> 24) == itf.SW_LAYER
                                                      and itf.LD_W_SCALE <= field & 0xFF < itf.LD_P_OFF):
        shown = f"0x{value:08x} ({float(np.uint32(value).view(np.float32))!r})"
    return f"{field_name(field)} = {shown} {reason}"


def status_error(words: np.ndarray, buf: int) -> str | None:
    """The error the top's status words (HDR_STATUS, HDR_STATUS_FIELD, HDR_STATUS_VALUE) report, or
    None for ST_OK."""
    code, field, value = (int(x) for x in words[:3])
    if code == itf.ST_OK:
        return None
    if code == itf.ST_NONE:
        return ("the accelerator finished without writing its status word (HDR_STATUS): it did not run "
                "the program (a weight port that does not see the header?) or its HLS predates the status "
                "protocol (recompile the project)")
    return f"the accelerator refused the program: {describe(code, field, value, buf)}"
