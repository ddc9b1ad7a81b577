"""Python twin of hw/include/edgellm/interface.h: header, layer-descriptor and descriptor layouts.

tests/test_interface.py compiles the C header and checks every constant against this module.
"""

from __future__ import annotations

import numpy as np

MAGIC = 0x4C4C4745
INTERFACE_VERSION = 5  # 2: the status protocol (HDR_BUF_BYTES, HDR_STATUS ..); 3: OP_HEAD over D_N_ROWS rows;
# 4: HDR_LB_TABLE (the low-bit linears' records); 5: their per-port image offsets (LB_PORT1_OFF ..)

HEADER_WORDS = [
    "HDR_MAGIC", "HDR_VERSION", "HDR_N_LAYERS", "HDR_MAX_T", "HDR_MAX_CTX", "HDR_EPS_BITS",
    "HDR_ATTN_SCALE_BITS", "HDR_LAYER_TABLE", "HDR_WEIGHTS", "HDR_PARAMS", "HDR_COS", "HDR_SIN",
    "HDR_K_CACHE", "HDR_V_CACHE", "HDR_H", "HDR_SCRATCH_F", "HDR_SCRATCH_I8", "HDR_TAPS",
    "HDR_FINAL_NORM", "HDR_HEAD_W", "HDR_HEAD_SCALE", "HDR_LOGITS", "HDR_ARGMAX", "HDR_TOPK", "HDR_LB_TABLE",
    "HDR_BUF_BYTES", "HDR_STATUS", "HDR_STATUS_FIELD", "HDR_STATUS_VALUE",
]
HDR = {name: i for i, name in enumerate(HEADER_WORDS)}
HDR_WORDS = 32
LD_W_OFF, LD_W_SCALE, LD_P_OFF, LD_WORDS = 0, 7, 14, 20
# The low-bit table (interface.h LbWord): one record of LB_WORDS words per (layer, linear)
LB_FIELDS = ("LB_BITS", "LB_GROUP", "LB_SB", "LB_DB", "LB_SCB", "LB_SC_OFF", "LB_MMODE", "LB_DMB", "LB_MCB",
             "LB_MC_OFF", "LB_MZ", "LB_DPER", "LB_BIAS_OFF", "LB_PORT1_OFF", "LB_PORT2_OFF", "LB_PORT3_OFF")
LB_PORT_OFF = ("LB_PORT1_OFF", "LB_PORT2_OFF", "LB_PORT3_OFF")  # ports 1 .. 3: bytes from port 0's image
LB = {name: i for i, name in enumerate(LB_FIELDS)}
LB_WORDS = 16
LB_NO_BIAS = 0xFFFFFFFF
D_OP, D_LAYER, D_T_LEN, D_POS0, D_FLAGS, D_ROW, D_N_ROWS, DESC_WORDS = 0, 1, 2, 3, 4, 5, 6, 8
OP_LAYER, OP_HEAD = 1, 2
DESC_TAPS = 1
# The status protocol (interface.h): HDR_STATUS codes, HDR_STATUS_FIELD = where << 24 | index << 8 | word
STATUS = {"ST_NONE": 0, "ST_OK": 1, "ST_MISMATCH": 2, "ST_RANGE": 3, "ST_ALIGN": 4, "ST_LIMIT": 5,
          "ST_FLOAT": 6, "ST_OPCODE": 7}
ST_NONE, ST_OK = STATUS["ST_NONE"], STATUS["ST_OK"]
SW_HEADER, SW_LAYER, SW_DESC, SW_REG = 1, 2, 3, 4
REG_HDR_OFF, REG_PROG_OFF, REG_N_DESC, REG_POINTERS = 0, 1, 2, 3
LINEAR_ORDER = ("q", "k", "v", "o", "gate", "up", "down")
NORM_ORDER = ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm")


def status_field(where: int, index: int, word: int) -> int:
    """HDR_STATUS_FIELD of a field: where << 24 | index << 8 | word (interface.h status_field)."""
    return where << 24 | (index & 0xFFFF) << 8 | (word & 0xFF)


def f32_bits(x: float) -> int:
    """The uint32 bit pattern of float32(x)."""
    return int(np.array([x], np.float32).view(np.uint32)[0])


def header(fields: dict[str, int]) -> np.ndarray:
    """uint32[HDR_WORDS] from a {HDR_*: value} dict (magic and version filled in)."""
    h = np.zeros(HDR_WORDS, np.uint32)
    h[HDR["HDR_MAGIC"]] = MAGIC
    h[HDR["HDR_VERSION"]] = INTERFACE_VERSION
    for k, v in fields.items():
        h[HDR[k]] = np.uint32(v)
    return h


def layer_desc(w_off: list[int], w_scale: list[float], p_off: list[int]) -> np.ndarray:
    """uint32[LD_WORDS]: 7 weight byte offsets, 7 scale bit patterns, 4 float offsets."""
    d = np.zeros(LD_WORDS, np.uint32)
    d[LD_W_OFF:LD_W_OFF + 7] = w_off
    d[LD_W_SCALE:LD_W_SCALE + 7] = [f32_bits(s) for s in w_scale]
    d[LD_P_OFF:LD_P_OFF + 4] = p_off
    return d


def descriptor(op: int, layer: int = 0, t_len: int = 0, pos0: int = 0, flags: int = 0,
               row: int = 0, n_rows: int = 0) -> np.ndarray:
    """uint32[DESC_WORDS]. n_rows (OP_HEAD): rows row .. row + n_rows - 1 in one head pass (0: one row)."""
    d = np.zeros(DESC_WORDS, np.uint32)
    d[[D_OP, D_LAYER, D_T_LEN, D_POS0, D_FLAGS, D_ROW, D_N_ROWS]] = [op, layer, t_len, pos0, flags, row,
                                                                   n_rows]
    return d


def program(n_layers: int, t_len: int, pos0: int, taps: bool = False) -> np.ndarray:
    """The descriptor program of one forward pass over t_len tokens at pos0: every layer, then
    the LM head on the last token. Shape (n_layers + 1, DESC_WORDS)."""
    flags = DESC_TAPS if taps else 0
    rows = [descriptor(OP_LAYER, i, t_len, pos0, flags) for i in range(n_layers)]
    rows.append(descriptor(OP_HEAD, 0, t_len, pos0, flags, row=t_len - 1))
    return np.stack(rows)
