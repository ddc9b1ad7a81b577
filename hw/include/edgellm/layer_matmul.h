// The decoder layer's matmul policies (decoder_layer.h linear_job runs MM::run through mm_linear): the
// plain reference matmul on pack2 rows (pack2_matmul), the TLMM engine (tlmm_mm), each with its
// fetcher form (MM::fetch, top_fetch.h); mm_linear hands a linear to a ternary policy or, with its
// record and bias, to the low-bit one (lowbit_policy.h, mm_is_lowbit).
#pragma once

#include <cstdint>

#include "edgellm/layer_config.h"
#include "edgellm/lowbit_policy.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm.h"
#include "edgellm/weight_fetch.h"

namespace edgellm {

// Reference ternary linear on models/weights.pack2 rows ((n_out, ceil(k/4)) bytes, 2-bit codes
// t+1, low bits first): exact int32 accumulation, then dequantize. A plain loop (one MAC per
// cycle), kept as the cross-check for the TLMM engine and as a fallback policy. It reads its bytes
// through the first weight port (a pointer), or from the first weight FIFO (word_t = one byte; fetch
// pushes them in the same order: every row again for every token).
template <int K_MAX>  // K_MAX: largest k and n_out
struct pack2_matmul {
  typedef ap_uint<8> word_t;
  // weight ports (FIFOs) it reads; tokens it runs together; bytes per weight-port beat (0: any)
  enum { kPorts = 1, kTokenLanes = 1, kBeatBytes = 0 };
  static uint8_t next_byte(const uint8_t *w, long i) { return w[i]; }
  static uint8_t next_byte(hls::stream<word_t> *s, long) { return (uint8_t)s->read(); }
  // x, qs, y: (pointer, element offset) pairs (plain arrays, or the act port's beats): a token's int8 row
  // comes on chip first (row_load), its scale and every output are one element access each.
  template <class WS, class PX, class PS, class PY>
  static void run(const PX *xp, long x_off, const PS *qs, long qs_off, int n_tok, WS *w0, WS *, WS *, WS *,
                  long w_off, int n_out, int k, f32 wscale, PY *y, long y_off) {
    const int kb = (k + 3) / 4;
    // the token's row, input i in bank i % 4: the byte loop reads its four codes' inputs, one from each bank
    int8_t x[4][(K_MAX + 3) / 4];
#pragma HLS ARRAY_PARTITION variable = x complete dim = 1
  p2_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
    p2_x:
      for (int i = 0; i < k; i++) {  // one element a cycle (a reference policy's rate), one bank written
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX
#pragma HLS PIPELINE II = 1
        x[i % 4][i / 4] = mget<int8_t>(xp, x_off + (long)t * k + i);
      }
      const f32 qt = mget<f32>(qs, qs_off + t);
    p2_row:
      for (int n = 0; n < n_out; n++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX
        int32_t acc = 0;
      p2_byte:
        for (int b = 0; b < kb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = (K_MAX + 3) / 4
#pragma HLS PIPELINE II = 1
          uint8_t byte = next_byte(w0, w_off + (long)n * kb + b);
          for (int i = 0; i < 4; i++) {
            int idx = b * 4 + i;
            int code = (byte >> (2 * i)) & 3;
            if (idx < k) acc += (code - 1) * (int32_t)x[i][b];
          }
        }
        mput<f32>(y, y_off + (long)t * n_out + n, dequantize(acc, qt, wscale));
      }
    }
  }
  // Port P's FIFO for one linear at byte offset base of the weight port w (beats of any width: one beat
  // read per byte, the reference policy's rate; only port 0 carries anything).
  template <int P, class WB>
  static void fetch(const WB *w, long base, int n_out, int k, int n_tok, hls::stream<word_t> &fifo) {
    if (P != 0) return;
    const long nbytes = (long)n_out * ((k + 3) / 4);
  p2_fetch_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
    p2_fetch:
      for (long i = 0; i < nbytes; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX * ((K_MAX + 3) / 4)
        fifo.write(mget<uint8_t>(w, base + i));
      }
    }
  }
};

// The TLMM engine as the layer's matmul policy: weights in the tiled 5-trits/byte image
// (compiler/packing.py pack_ternary with rows_per_tile = TCFG::R), one image per linear at byte
// offset w_off from the weight ports w0 .. w3 (one m_axi port each, the first TCFG::NPORTS stream
// concurrently; the host gives them all the same address).
// From weight FIFOs (top.h, weight_fetch.h) the image offset is the fetcher's business: run pops.
template <class TCFG>
struct tlmm_mm {
  typedef typename TCFG::fword_t word_t;
  // weight ports (FIFOs) it reads; token lanes; bytes per weight-port beat (one byte column of a tile)
  enum { kPorts = TCFG::NPORTS, kTokenLanes = TCFG::TP, kBeatBytes = TCFG::R };
  // x, qs, y: (pointer, element offset) pairs (plain arrays, or the act port's beats: TlmmAt)
  template <class PX, class PS, class PY>
  static void run(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, const uint8_t *w0,
                  const uint8_t *w1, const uint8_t *w2, const uint8_t *w3, long w_off, int n_out, int k,
                  f32 wscale, PY *y, long y_off) {
    const TlmmAt at = {x_off, qs_off, y_off};
    tlmm_matmul<TCFG>(x, qs, n_tok, w0 + w_off, w1 + w_off, w2 + w_off, w3 + w_off, n_out, k, wscale, y, at);
  }
  template <class PX, class PS, class PY>
  static void run(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, hls::stream<word_t> *w0,
                  hls::stream<word_t> *w1, hls::stream<word_t> *w2, hls::stream<word_t> *w3, long, int n_out,
                  int k, f32 wscale, PY *y, long y_off) {
    const TlmmAt at = {x_off, qs_off, y_off};
    tlmm_matmul<TCFG>(x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y, at);
  }
  // Port P's FIFO for one linear at byte offset base (a multiple of R: the memory plan aligns every
  // matrix) of the weight port w, R-byte beats (weight_fetch.h tlmm_fetch_port).
  template <int P>
  static void fetch(const ap_uint<8 * TCFG::R> *w, long base, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo) {
    if (P < TCFG::NPORTS) {
      tlmm_fetch_port<TCFG, P < TCFG::NPORTS ? P : 0>(w + base / TCFG::R, n_out, k, n_tok, fifo);
    }
  }
};

// One linear of a layer on the matmul policy MM: a ternary policy gets the image offset and the scale
// (MM::run's ternary form); the low-bit one also the linear's record and its bias, read through fs (the
// linear job's float view: the top's act port, which sees the params area at element at_params; a
// testbench gives fs and the params one array with at.params their distance).
template <class MM, int LB = mm_is_lowbit<MM>::value>
struct mm_linear {
  template <class WS, class PF, class PX>
  static void run(PX *x8, long x_off, PF *fs, long qs_off, int n, WS *w0, WS *w1, WS *w2, WS *w3,
                  const layer_desc &d, int lin, int out, int in, long, long y_off) {
#pragma HLS INLINE
    MM::run(x8, x_off, fs, qs_off, n, w0, w1, w2, w3, d.w_off[lin], out, in, d.w_scale[lin], fs, y_off);
  }
};
template <class MM>
struct mm_linear<MM, 1> {
  template <class WS, class PF, class PX>
  static void run(PX *x8, long x_off, PF *fs, long qs_off, int n, WS *w0, WS *w1, WS *w2, WS *w3,
                  const layer_desc &d, int lin, int out, int in, long at_params, long y_off) {
#pragma HLS INLINE
    const long bias = d.lb[lin].bias < 0 ? -1L : at_params + d.lb[lin].bias;
    MM::run(x8, x_off, fs, qs_off, n, w0, w1, w2, w3, d.w_off[lin], d.lb[lin], out, in, fs, bias, fs, y_off);
  }
};

}  // namespace edgellm
