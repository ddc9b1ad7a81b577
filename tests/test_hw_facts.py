"""runtime/layout.py is the one source of the hardware facts: hw_facts.h is generated from it (the
repository's copy and every project's), and the kernels' own values, exported by hw/tb/hw_facts_tb.cpp
where the kernels use them, equal Python's."""

from __future__ import annotations

import ctypes

import pytest

from edgellm.hw import csim
from edgellm.runtime import layout

# the kernel-side name (hw_facts_tb.cpp) -> the layout constant it must equal
EXPECT = {
    "kMaxWeightPorts": layout.MAX_STREAM_PORTS, "kMaxHeadPorts": layout.MAX_STREAM_PORTS,
    "kFetchBeats": layout.FETCH_BEATS, "kHeadFifoDepth": layout.HEAD_FIFO_DEPTH,
    "kAddLatency": layout.ADD_LATENCY, "kMulAddLatency": layout.MUL_ADD_LATENCY,
    "DSP_CHAIN": layout.DSP_CHAIN,
    "attn.min_rows": layout.ATTN_MIN_ROWS, "attn.mem_lanes": layout.ATTN_MEM_LANES,
    "layer.attn.min_rows": layout.ATTN_MIN_ROWS, "layer.attn.mem_lanes": layout.ATTN_MEM_LANES,
    "LmHeadConfig.K_TOP (default: the bound)": layout.K_TOP_MAX,
    "kHeadRowsMax": layout.HEAD_ROWS_MAX,
    "lowbit.BW (default: one port's beat)": layout.LB_BEAT_BITS, "lowbit.MAXG (default)": layout.LB_MAX_GROUP,
    "lowbit.SL (default: a whole record)": layout.LB_MAX_SB, "kLbMaxRecordBits": layout.LB_MAX_RECORD_BITS,
    "lowbit.PORTS (default)": 1,
}


def test_repository_header_is_generated() -> None:
    """hw/include/edgellm/hw_facts.h is exactly layout.c_header() (regenerate it after editing layout.py)."""
    assert (csim.INCLUDE_DIR / "edgellm" / "hw_facts.h").read_text() == layout.c_header()


def test_header_carries_every_fact() -> None:
    text = layout.c_header()
    for c, py, _ in layout.C_FACTS:
        assert f"const int {c} = {getattr(layout, py)};" in text


def test_kernels_use_the_facts() -> None:
    lib = csim.load([csim.TB_DIR / "hw_facts_tb.cpp"], "hw_facts_tb")
    lib.tb_fact_name.restype = ctypes.c_char_p
    lib.tb_fact_value.restype = ctypes.c_long
    got, i = {}, 0
    while (name := lib.tb_fact_name(ctypes.c_int(i))) is not None:
        got[name.decode()] = lib.tb_fact_value(ctypes.c_int(i))
        i += 1
    assert got == EXPECT


@pytest.mark.parametrize("max_t", [1, 16])
def test_tap_and_scratch_layout(max_t: int) -> None:
    """The layout's offsets: consecutive [max_t][width] rows in layer_taps / layer_scratch order."""
    from edgellm.models.config import ModelConfig

    c = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344, vocab_size=300,
                    max_context=64, name="lay")
    taps = layout.tap_layout(c, max_t)
    assert list(taps) == ["q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act"]
    assert [w for _, w in taps.values()] == [128, 64, 64, 128, 128, 344]
    assert [o for o, _ in taps.values()] == [m * max_t for m in (0, 128, 192, 256, 384, 512)]
    assert layout.tap_floats(c, max_t) == 856 * max_t
    s = layout.scratch_offsets(c, max_t)
    assert s["y"] == (3 * 128 + 3 * 64 + 2 * 344) * max_t and s["qs_b"] == s["qs_a"] + max_t
    assert layout.layer_buffer_sizes(c, max_t) == (s["floats"], 344 * max_t, 856 * max_t)
