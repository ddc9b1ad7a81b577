// The accelerator's engine side (top.h runs it as one process of the top's DATAFLOW region beside the
// weight fetchers, top_fetch.h): the compile-time configuration of the whole accelerator (top_config),
// one descriptor's work (run_desc: a decoder layer, or the final norm and the LM head) and the program
// (engine_program: the header and every descriptor checked first, program_check.h, then descriptor by
// descriptor over the data port, the weight and head FIFOs and the K/V ports). docs/hls.md "The top
// function".
#pragma once

#include <cstdint>

#include "edgellm/csim_progress.h"
#include "edgellm/decoder_layer.h"
#include "edgellm/interface.h"
#include "edgellm/lm_head.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/program_check.h"
#include "edgellm/top_program.h"

namespace edgellm {

// FETCH_DEPTH: words per weight FIFO (design.fetch_depth).
template <class LAYER, class MM, class HEAD, int N_LAYERS, int VOCAB, int FETCH_DEPTH = 512>
struct top_config {
  typedef LAYER layer;
  typedef MM mm;
  typedef HEAD head;
  static const int n_layers = N_LAYERS;
  static const int vocab = VOCAB;
  static const int max_desc = N_LAYERS + 1;  // one forward pass (trip counts only)
  static const int fetch_depth = FETCH_DEPTH;
  static const int fetch_ports = cmax(MM::kPorts, HEAD::NPORTS);  // weight ports with a fetcher
  typedef typename MM::word_t word_t;    // weight FIFO word
  typedef typename HEAD::beat_t hbeat_t;  // LM-head FIFO word
  // The weight ports' (and K/V ports') beat: one byte column of a TLMM tile = one LM-head beat (P = R);
  // low-bit: one 128-bit beat of a port's image (P = 16)
  typedef typename HEAD::beat_t wbeat_t;
  // The data and act ports' beat (design.data_port_width_bits)
  typedef typename LAYER::dbeat_t dbeat_t;
  static_assert(FETCH_DEPTH >= 2, "FETCH_DEPTH: at least 2 words");
  // (a low-bit design: 16-byte beats, so its LM head has P = 16)
  static_assert(MM::kBeatBytes == 0 || MM::kBeatBytes == HEAD::P, "weight ports: matmul beat = LM-head beat");
  static_assert(LAYER::hidden % HEAD::P == 0, "the LM head's rows are whole weight-port beats");
};

// OP_LAYER (head = false): this layer's table entry -> layer_desc, then the decoder layer.
// OP_HEAD (head = true): quantize(rmsnorm(H[row], final_norm)) -> int8 LM head -> logits, argmax,
// top-k. The final norm is the decoder layer's first element-wise job alone (decoder_layer_ports
// norm_only, on the row H[row] with the final norm as its gamma), so the layers and the head share
// the one element-wise engine call; the quantized row and its scale go through the layer scratch (x8
// area, qs_a slot). The linears pop their tiles from the weight FIFOs wq0 .. wq3, the head its rows
// from hq0 .. hq3 (the fetchers push them: fetch_program); decode attention reads KV head h of the
// cache over kv{h % HEAD::NPORTS}.
template <class TC>
void run_desc(typename TC::dbeat_t *act, hls::stream<typename TC::word_t> *wq0, hls::stream<typename TC::word_t> *wq1,
              hls::stream<typename TC::word_t> *wq2, hls::stream<typename TC::word_t> *wq3,
              hls::stream<typename TC::hbeat_t> *hq0, hls::stream<typename TC::hbeat_t> *hq1,
              hls::stream<typename TC::hbeat_t> *hq2, hls::stream<typename TC::hbeat_t> *hq3,
              const typename TC::wbeat_t *kv0, const typename TC::wbeat_t *kv1, const typename TC::wbeat_t *kv2,
              const typename TC::wbeat_t *kv3, typename TC::dbeat_t *data, const uint32_t hdr[HDR_WORDS],
              uint32_t layer,
              int t_len, int pos0, bool taps, bool head, int row, EwRows<typename TC::layer::ew> &rows) {
  typedef typename TC::layer C;
  typedef layer_scratch<C> S;
  const int H = C::hidden;
  layer_desc d;
  if (head) {
    for (int i = 0; i < N_LIN; i++) {
      d.w_off[i] = 0;
      d.w_scale[i] = 1.0f;
    }
    for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)hdr[HDR_FINAL_NORM];
  } else {
    uint32_t ld[LD_WORDS];
    read_words<LD_WORDS>(data, hdr[HDR_LAYER_TABLE] + layer * (uint32_t)(LD_WORDS * 4), ld);
    for (int i = 0; i < N_LIN; i++) {
      d.w_off[i] = (long)ld[LD_W_OFF + i];
      d.w_scale[i] = float_from_bits(ld[LD_W_SCALE + i]);
    }
    for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)ld[LD_P_OFF + i];
    lb_records<TC>::load(data, hdr, layer, d);
  }
  typedef typename C::kv_t KT;  // KV cache element (f32 or f16)
  const long kv_slice = (long)layer * C::max_ctx * C::kv_size;  // elements
  // Every operand is a region of the data or act beats at an element offset of its own type (maxi.h: the
  // ports are never cast; every region starts on a data beat, program_check.h). The layer scratch goes
  // through act alone, for the linear and the vector jobs and the LM head: each of its bytes is written
  // and read within a call through one m_axi argument (docs/hls.md, "The m_axi channel rule"); data
  // carries h, the parameters, the K/V cache writes and reads, taps and the head's outputs.
  LayerAt at;
  at.h = (long)(hdr[HDR_H] / 4) + (long)row * H, at.params = hdr[HDR_PARAMS] / 4, at.cos = hdr[HDR_COS] / 4;
  at.sin = hdr[HDR_SIN] / 4, at.fs = hdr[HDR_SCRATCH_F] / 4, at.x8 = hdr[HDR_SCRATCH_I8];
  at.taps = hdr[HDR_TAPS] / 4;
  // the layer's K/V slices in KT elements: written and (prefill, this call's positions) read through
  // data, earlier calls' positions read through the K/V ports kv0..kv3 (decode)
  const long k_off = (long)(hdr[HDR_K_CACHE] / sizeof(KT)) + kv_slice;
  const long v_off = (long)(hdr[HDR_V_CACHE] / sizeof(KT)) + kv_slice;
  decoder_layer_ports<C, typename TC::mm, TC::head::NPORTS>(
      data, t_len, pos0, wq0, wq1, wq2, wq3, d, data, data, data, data, data, data, data, kv0, kv1, kv2, kv3, kv0,
      kv1, kv2, kv3, k_off, v_off, float_from_bits(hdr[HDR_EPS_BITS]), float_from_bits(hdr[HDR_ATTN_SCALE_BITS]),
      act, act, data, taps, rows, head, act, act, at);
  if (!head) return;
  // the head over the t_len rows just normed (x8 rows hidden apart, their scales at qs_a): argmax [R], ids
  // [R][k], values [R][k] with R = HEAD::MAX_TOK; logits rows logits_row apart (no two share a data beat)
  enum { R = TC::head::MAX_TOK, VR = (TC::vocab + facts::kLogitsRowAlign - 1) / facts::kLogitsRowAlign *
                                     facts::kLogitsRowAlign };
  const int k = (int)hdr[HDR_TOPK];
  LmHeadAt ha;
  ha.q = at.x8, ha.qs = at.fs + S::qs_a, ha.row_scale = hdr[HDR_HEAD_SCALE] / 4, ha.logits = hdr[HDR_LOGITS] / 4;
  ha.argmax = hdr[HDR_ARGMAX] / 4, ha.top_idx = ha.argmax + R, ha.top_val = ha.argmax + R + (long)R * k;
  ha.logits_row = VR;
  lm_head<typename TC::head>(act, act, t_len, hq0, hq1, hq2, hq3, data, TC::vocab, H, true, data, data, k, data,
                             data, ha);
}

// The engine: the program, descriptor by descriptor, over the data port, the FIFOs and the K/V
// ports. One set of element-wise rows (EwRows) serves every layer and the final norm.
template <class TC>
void engine_program(const typename TC::wbeat_t *kv0, const typename TC::wbeat_t *kv1,
                    const typename TC::wbeat_t *kv2, const typename TC::wbeat_t *kv3, typename TC::dbeat_t *data,
                    typename TC::dbeat_t *act, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                    hls::stream<typename TC::word_t> &wq0, hls::stream<typename TC::word_t> &wq1, hls::stream<typename TC::word_t> &wq2,
                    hls::stream<typename TC::word_t> &wq3, hls::stream<typename TC::hbeat_t> &hq0,
                    hls::stream<typename TC::hbeat_t> &hq1, hls::stream<typename TC::hbeat_t> &hq2,
                    hls::stream<typename TC::hbeat_t> &hq3) {
#pragma HLS INLINE off
  typedef typename TC::layer C;
  typedef typename C::ew E;
  enum { kMaxDesc = TC::max_desc };
  EDGELLM_EW_ROWS(E, rows)
  uint32_t hdr[HDR_WORDS];
  read_header(data, hdr_off, hdr);
  // every field checked before use (program_check.h); the result goes to the header's status words
  const CheckResult chk = check_program<TC>(data, hdr_off, prog_off, n_desc, hdr);
  report_status(data, hdr_off, chk);
  if (chk.code != ST_OK) return;
program:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[DESC_WORDS];
    read_words<DESC_WORDS>(data, prog_off + i * (uint32_t)(DESC_WORDS * 4), d);
    const int what = desc_action<TC>(d, i, true);
    const bool head = what == ACT_HEAD;
    // one call for both ops (the layers and the head's final norm share the element-wise engine)
    if (what != ACT_SKIP) {
      run_desc<TC>(act, &wq0, &wq1, &wq2, &wq3, &hq0, &hq1, &hq2, &hq3, kv0, kv1, kv2, kv3, data, hdr,
                   head ? 0u : d[D_LAYER], head ? (d[D_N_ROWS] ? (int)d[D_N_ROWS] : 1) : (int)d[D_T_LEN],
                   head ? 0 : (int)d[D_POS0],
                   !head && (d[D_FLAGS] & DESC_TAPS) != 0, head, head ? (int)d[D_ROW] : 0, rows);
    }
    EDGELLM_CSIM_DESC_DONE();  // C simulation: a descriptor done (csim_progress.h); nothing synthesized
  }
}

}  // namespace edgellm
