"""hw/include/edgellm/interface.h and compiler/interface.py describe the same interface."""

import ctypes

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.hw import csim


def test_constants_agree() -> None:
    lib = csim.load([csim.TB_DIR / "interface_tb.cpp"], "interface_tb")
    out = np.zeros(64, np.uint32)
    n = lib.tb_interface_constants(csim.ptr(out), ctypes.c_int(64))
    expect = [itf.MAGIC, itf.INTERFACE_VERSION, itf.HDR_WORDS, itf.LD_W_OFF, itf.LD_W_SCALE,
              itf.LD_P_OFF, itf.LD_WORDS, itf.D_OP, itf.D_LAYER, itf.D_T_LEN, itf.D_POS0,
              itf.D_FLAGS, itf.D_ROW, itf.DESC_WORDS, itf.OP_LAYER, itf.OP_HEAD, itf.DESC_TAPS,
              itf.HDR["HDR_TOPK"], itf.HDR["HDR_LOGITS"], itf.HDR["HDR_LAYER_TABLE"], itf.D_N_ROWS,
              itf.HDR["HDR_LB_TABLE"], itf.LB_WORDS, itf.LB_NO_BIAS, *(itf.LB[f] for f in itf.LB_FIELDS)]
    assert list(out[:n]) == expect
    assert [lib.tb_header_index(ctypes.c_int(i)) for i in range(len(itf.HEADER_WORDS))] == \
        list(range(len(itf.HEADER_WORDS)))
    assert len(itf.HEADER_WORDS) <= itf.HDR_WORDS


def test_program_layout() -> None:
    p = itf.program(3, t_len=16, pos0=0)
    assert p.shape == (4, itf.DESC_WORDS)
    assert list(p[:3, itf.D_OP]) == [itf.OP_LAYER] * 3 and p[3, itf.D_OP] == itf.OP_HEAD
    assert p[3, itf.D_ROW] == 15 and list(p[:3, itf.D_LAYER]) == [0, 1, 2]
