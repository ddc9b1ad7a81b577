"""The m_axi beat helpers (hw/include/edgellm/maxi.h) and the kernels on beat pointers: C simulation with
every port an ap_uint<B> pointer into one byte buffer, against the plain-pointer forms and the numpy
reference, bit for bit (issue 21 #6, #11)."""

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

from edgellm.boards import load_board
from edgellm.compiler.codegen_hls import generate_hls
from edgellm.compiler.design import DesignParams
from edgellm.compiler.hls_tcl import AxiSettings
from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig

F32 = np.float32

TB = r"""
#include <cstring>

#include "edgellm/attention_decode.h"
#include "edgellm/maxi.h"

using namespace edgellm;

// RowStore / row_load / chunk / element helpers on 128-bit beats against the plain forms: every start
// 0..39 and length 0..69 of int8 rows, f32 chunks and single elements; returns the mismatches.
extern "C" long tb_maxi_helpers() {
  long bad = 0;
  static uint8_t buf[512], ref[512];
  for (int off = 0; off < 40; off++) {
    for (int n = 0; n < 70; n++) {
      for (int i = 0; i < 512; i++) buf[i] = ref[i] = (uint8_t)(i * 7 + 3);
      int8_t src[80];
      for (int i = 0; i < 80; i++) src[i] = (int8_t)(i * 13 - 50 + off);
      ap_uint<128> *m = reinterpret_cast<ap_uint<128> *>(buf);
      RowStore<int8_t, ap_uint<128>, 128> st;
      st.open(m, off, n);
      for (int j = 0; j < st.beats(); j++) {
        for (int i = 0; i < 16; i++) {
          const int k = st.index(j, i);
          st.v[i] = k >= 0 && k < n ? src[k] : (int8_t)0;
        }
        st.put(m, j);
      }
      int8_t *pr = reinterpret_cast<int8_t *>(ref);
      RowStore<int8_t, int8_t, 128> sp;
      sp.open(pr, off, n);
      for (int j = 0; j < sp.beats(); j++) {
        for (int i = 0; i < 16; i++) {
          const int k = sp.index(j, i);
          sp.v[i] = k >= 0 && k < n ? src[k] : (int8_t)0;
        }
        sp.put(pr, j);
      }
      bad += std::memcmp(buf, ref, 512) != 0;
      int8_t d1[80] = {0}, d2[80] = {0};
      row_load<80>(reinterpret_cast<const ap_uint<128> *>(buf), off, n, d1);
      row_load<80>(reinterpret_cast<const int8_t *>(buf), off, n, d2);
      bad += std::memcmp(d1, d2, 80) != 0;
      // the banked form (F = 16 and 32 banks): the row's elements [0, n) equal the plain ones
      int8_t b16[16][5], b32[32][3], p16[16][5];
      row_load_banked<80, 16>(reinterpret_cast<const ap_uint<128> *>(buf), off, n, b16);
      row_load_banked<80, 32>(reinterpret_cast<const ap_uint<128> *>(buf), off, n, b32);
      row_load_banked<80, 16>(reinterpret_cast<const int8_t *>(buf), off, n, p16);
      for (int e = 0; e < n; e++) {
        bad += b16[e % 16][e / 16] != d2[e];
        bad += b32[e % 32][e / 32] != d2[e];
        bad += p16[e % 16][e / 16] != d2[e];
      }
    }
  }
  static float f[64];
  for (int i = 0; i < 64; i++) f[i] = (float)i * 1.5f - 7.0f;
  const ap_uint<128> *fm = reinterpret_cast<const ap_uint<128> *>(f);
  for (int i = 0; i < 64; i++) bad += mget<f32>(fm, i) != f[i];
  for (int c = 0; c < 15; c++) {
    f32 a[4], b[4];
    chunk_get<4>(fm, 4, c, a);
    chunk_get<4>((const f32 *)f, 4, c, b);
    bad += std::memcmp(a, b, sizeof a) != 0;
  }
  ap_uint<128> *wm = reinterpret_cast<ap_uint<128> *>(f);
  mput<f32>(wm, 6, -2.0f);
  bad += f[6] != -2.0f || f[5] != 0.5f || f[7] != 3.5f;
  const f32 w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  chunk_put<4>(wm, 8, 2, w);
  bad += f[16] != 1.0f || f[19] != 4.0f || f[15] != 15.5f || f[20] != 23.0f;
  return bad;
}

struct cfg_fields : attn_config_base {
  static const int d_max = 128, dot_lanes = 16, kv_block = 16, bq = 8, heads_max = 16, kv_heads_max = 8;
  static const int group_max = 8, max_ctx = 512, max_t = 64;
};
typedef attn_traits<cfg_fields> cfg;

// attention_kv with every pointer an ap_uint<128> beat pointer into buf: q at element q_off (f32), out at
// o_off, K and V (KT) at k_off / v_off, the four K/V ports the same buffer (decode spreads positions
// over them).
template <class KT>
static void attn_beats(uint8_t *buf, long q_off, long k_off, long v_off, long o_off, int t_len, int pos0,
                       int n_heads, int n_kv, int d, float scale) {
  const ap_uint<128> *r = reinterpret_cast<const ap_uint<128> *>(buf);
  ap_uint<128> *w = reinterpret_cast<ap_uint<128> *>(buf);
  attention_kv<cfg, 4, KT>(r, q_off, r, r, r, r, r, r, r, r, r, r, k_off, v_off, w, o_off, t_len, pos0,
                           n_heads, n_kv, d, scale, -1);
}
extern "C" void tb_attn_beats_f32(uint8_t *buf, long q_off, long k_off, long v_off, long o_off, int t_len,
                                  int pos0, int n_heads, int n_kv, int d, float scale) {
  attn_beats<f32>(buf, q_off, k_off, v_off, o_off, t_len, pos0, n_heads, n_kv, d, scale);
}
extern "C" void tb_attn_beats_f16(uint8_t *buf, long q_off, long k_off, long v_off, long o_off, int t_len,
                                  int pos0, int n_heads, int n_kv, int d, float scale) {
  attn_beats<f16>(buf, q_off, k_off, v_off, o_off, t_len, pos0, n_heads, n_kv, d, scale);
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    src = Path(tmp_path_factory.mktemp("maxi")) / "maxi_tb.cpp"
    src.write_text(TB)
    return csim.load([src], "maxi_tb")


def test_beat_helpers_equal_the_plain_accesses(lib: ctypes.CDLL) -> None:
    """RowStore (rows written at any start: whole beats, the partly covered edge beats merged with what
    the buffer held) and row_load (rows read at any start; also into 16 or 32 explicit banks, one aligned
    block a cycle: row_load_banked) on beats equal the plain element accesses, and so do the element and
    chunk reads and writes."""
    lib.tb_maxi_helpers.restype = ctypes.c_long
    assert lib.tb_maxi_helpers() == 0


def _place(buf: np.ndarray, elem_off: int, a: np.ndarray) -> None:
    """a's bytes into buf at element offset elem_off (of a's dtype)."""
    raw = np.ascontiguousarray(a).view(np.uint8).ravel()
    start = elem_off * a.dtype.itemsize
    buf[start:start + raw.size] = raw


@pytest.mark.parametrize("kv", ["f32", "f16"])
@pytest.mark.parametrize(("n_h", "n_kv", "d"), [(4, 2, 100), (8, 8, 96), (8, 1, 36), (2, 2, 128)])
def test_attention_on_beat_ports_bit_exact(lib: ctypes.CDLL, kv: str, n_h: int, n_kv: int, d: int) -> None:
    """Prefill and decode with q, out and the K/V cache read through ap_uint<128> beat pointers of one
    buffer: a K/V row of d = 100 f16 values (200 bytes) starts every other head mid-beat and its last
    chunk (100 % 16 = 4 floats) is shorter than a beat's 8 fields, so it completes in the beat that ends
    the chunk before it; decode spreads the positions over four K/V ports. Bit-exact with the contract."""
    rng = np.random.default_rng(d * 7 + n_h + (kv == "f16"))
    fn = getattr(lib, f"tb_attn_beats_{kv}")
    esz = 4 if kv == "f32" else 2
    for t_len, pos0 in ((11, 5), (1, 0), (1, 37), (9, 40)):
        s = pos0 + t_len
        q = (rng.standard_normal((t_len, n_h, d)) * 2).astype(F32)
        k = rng.standard_normal((s, n_kv, d)).astype(F32)
        v = rng.standard_normal((s, n_kv, d)).astype(F32)
        kc, vc = nx.kv_store(k, kv), nx.kv_store(v, kv)
        buf = np.full(1 << 20, 0xFF, np.uint8)  # NaN everywhere nothing was placed
        q_off, o_off = 4096 // 4, (1 << 18) // 4  # floats (regions of 256 KiB, beat-aligned)
        k_off, v_off = (2 << 18) // esz, (3 << 18) // esz  # KV elements
        _place(buf, q_off, q)
        _place(buf, k_off, kc)
        _place(buf, v_off, vc)
        offs = (ctypes.c_long(x) for x in (q_off, k_off, v_off, o_off))
        shape = (ctypes.c_int(x) for x in (t_len, pos0, n_h, n_kv, d))
        fn(csim.ptr(buf), *offs, *shape, ctypes.c_float(F32(1.0 / np.sqrt(d))))
        out = buf[4 * o_off:4 * o_off + q.nbytes].view(F32).reshape(q.shape)
        plan = nx.NumericsPlan(dot_lanes=16, kv_block=16)
        with np.errstate(over="ignore", invalid="ignore"):
            ref = nx.attention(q, nx.kv_load(kc), nx.kv_load(vc), pos0, plan)
        bad = int((out.view(np.uint32) != ref.view(np.uint32)).sum())
        print(f"{kv} H={n_h}/{n_kv} d={d} T={t_len} pos0={pos0}: {bad} mismatches")
        assert bad == 0
        assert (buf[4 * o_off + q.nbytes:4 * o_off + q.nbytes + 64] == 0xFF).all()  # nothing past out


def _gen(tmp: Path, design: DesignParams, **cfg: int) -> Path:
    mc = ModelConfig(name="mx", **{**dict(hidden_size=128, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=344,
                                          vocab_size=300, max_context=64), **cfg})
    generate_hls(tmp / "hls", mc, nx.NumericsPlan.for_head_dim(mc.head_dim), design, "tlmm", max_t=16,
                 max_ctx=64, top_k=8, board=load_board("kv260"), total_bytes=1 << 20)
    return tmp / "hls"


@pytest.mark.parametrize("rows", [8, 16, 32])
def test_interface_pragmas_carry_the_axi_settings(tmp_path: Path, rows: int) -> None:
    """Every INTERFACE m_axi pragma of top.cpp carries AxiSettings' numbers for its bundle: the widen limit
    (the weight bundles: 8R, their arguments' ap_uint<8R> beat; the data bundle: its port width), the
    burst lengths, outstanding transactions and latency, and its depth in the argument's elements; every
    argument (weight, K/V, data and act) is a beat pointer and top.cpp casts nothing."""
    design = DesignParams(rows=rows, weight_ports=2)
    hls = _gen(tmp_path, design)
    top = (hls / "top.cpp").read_text()
    axi = AxiSettings.for_design(design)
    assert axi.weight_width_bits == 8 * rows
    pat = r"#pragma HLS INTERFACE m_axi port = (\w+) bundle = (\w+) offset = slave depth = (\d+) (.*)"
    prag = re.findall(pat, top)
    assert sorted(p for p, *_ in prag) == ["act", "data", "kv0", "kv1", "w0", "w1"]
    for port, bundle, depth, opts in prag:
        weight = bundle != "data"
        width = 8 * rows if weight else design.data_port_width_bits
        assert int(depth) == (1 << 20) // (width // 8), port
        assert opts.strip() == axi.bundle_options(weight), port
        assert f"max_widen_bitwidth = {width} " in opts and "max_read_burst_length = 64" in opts
        assert "num_read_outstanding = 4" in opts and "latency = 64" in opts
    for p in ("w0", "w1", "kv0", "kv1"):
        assert f"const edgellm_cfg::wbeat_t *{p}" in top
    for p in ("data", "act"):
        assert f"edgellm_cfg::dbeat_t *{p}" in top
    assert "reinterpret_cast" not in top and "(const uint8_t *)" not in top
    tcl = (hls / "run_hls.tcl").read_text()
    assert f"config_interface -m_axi_max_widen_bitwidth {max(8 * rows, 128)}" in tcl
    assert f"config_interface -m_axi_alignment_byte_size {max(rows, 16)}" in tcl


def test_codegen_refuses_rows_that_are_not_whole_beats(tmp_path: Path) -> None:
    """Shapes the generated engine cannot stream in whole beats are refused with one line: a hidden size
    that is no multiple of the weight ports' beat (the LM head's rows), an FFN size no multiple of the
    data beat's floats."""
    with pytest.raises(EdgeLLMError, match=r"hidden size 40 must be a multiple of the weight ports' beat"):
        _gen(tmp_path / "a", DesignParams(rows=16), hidden_size=40, n_heads=2, n_kv_heads=1)
    with pytest.raises(EdgeLLMError, match=r"FFN size 98 must be a multiple of 4"):
        _gen(tmp_path / "b", DesignParams(rows=16), ffn_size=98)
    # the element-wise sum of squares takes a data beat of floats per iteration into its lanes
    mc = ModelConfig(name="mx", hidden_size=128, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=344,
                     vocab_size=300, max_context=64)
    with pytest.raises(EdgeLLMError, match=r"RMSNorm lanes 2 must be a multiple of 4"):
        generate_hls(tmp_path / "c", mc, nx.NumericsPlan(norm_lanes=2), DesignParams(rows=16, ew_lanes=2),
                     "tlmm", max_t=16, max_ctx=64, top_k=8, board=load_board("kv260"))
