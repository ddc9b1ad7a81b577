// One BitNet decoder layer composed from the kernels: exactly models/golden.py GoldenModel.layer.
//
//   x = rmsnorm(h, attn_norm); (x8, qs) = quantize(x)
//   q, k, v = ternary linears of x8                       -> rope(q), rope(k)    [taps q_rope k_rope v]
//   cache[pos0 .. pos0+T) = k, v (as C::kv_t); a = attention(q, cache[0 .. pos0+T))  [tap attn]
//   a = rmsnorm(a, attn_sub_norm) if SUBLN ; h = h + o_proj(quantize(a))         [tap h_attn]
//   x = rmsnorm(h, ffn_norm); g, u = gate, up of quantize(x); f = act(g) * u     [tap ffn_act]
//   f = rmsnorm(f, ffn_sub_norm) if SUBLN ; h = h + down(quantize(f))            [tap h_out = h]
//
// Every float op is the contract's (numerics.h). A ternary linear is MM::run (exact integer
// accumulation, then dequantize(acc, qs, wscale)): a policy, so the layer runs on the TLMM engine
// (tlmm_mm) or on the plain reference matmul (pack2_matmul). The element-wise work between the
// linears is elementwise.h's fused token-streaming stages (norm+quantize, RoPE, GLU+SubLN+quantize,
// residual+next norm+quantize), all run by ONE element-wise engine (ew_engine, one call site in
// decoder_layer_ports: one module with one set of fp32 units); rows go through on-chip buffers, one
// shared set (elementwise.h EwRows: one fp32 row) that the caller declares once (EDGELLM_EW_ROWS) and
// every stage of every layer uses in turn; only linear outputs, the attention input/output, the KV
// cache and the norm gammas (read by the RMSNorm scale pass) touch DDR (scratch area layer_scratch).
// One attention core (attention_layer) serves both: T == 1 runs the decode job, T > 1 the prefill jobs.
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/attention_decode.h"
#include "edgellm/attention_prefill.h"
#include "edgellm/elementwise.h"
#include "edgellm/kv_cache.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm.h"
#include "edgellm/weight_fetch.h"

namespace edgellm {

enum { ACT_RELU2 = kActRelu2, ACT_SILU = kActSilu };

constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Compile-time shape of one layer (generated per model by the compiler).
// KV_T: the KV cache element type (numerics plan kv_dtype): f32, or f16 (binary16 bit patterns).
// EW_VEC: elements per cycle of the fused element-wise stages and the KV cache write (EwConfig VEC:
// a power of two, 1..64); EW_GLU_VEC: of the GLU act(g) * u pass (EwConfig GLU_VEC, <= EW_VEC).
template <int HIDDEN, int N_HEADS, int N_KV, int HEAD_DIM, int FFN, int ACT, bool SUBLN,
          int NORM_LANES, int DOT_LANES, int KV_BLOCK, int MAX_T, int MAX_CTX, int BQ = 8,
          class KV_T = f32, int EW_VEC = 1, int EW_GLU_VEC = EW_VEC>
struct layer_config {
  typedef KV_T kv_t;
  static const int hidden = HIDDEN, n_heads = N_HEADS, n_kv = N_KV, head_dim = HEAD_DIM;
  static const int ffn = FFN, act = ACT, norm_lanes = NORM_LANES, max_t = MAX_T, max_ctx = MAX_CTX;
  static const bool subln = SUBLN;
  static const int q_size = N_HEADS * HEAD_DIM, kv_size = N_KV * HEAD_DIM;
  static const int k_max = cmax(HIDDEN, cmax(q_size, FFN));  // widest linear input / row
  typedef attn_config<HEAD_DIM, DOT_LANES, KV_BLOCK, BQ, N_HEADS, N_KV, N_HEADS / N_KV, MAX_CTX,
                      MAX_T>
      attn;
  typedef EwConfig<k_max, NORM_LANES, MAX_T, EW_VEC, EW_GLU_VEC> ew;
};

// Where one layer's parameters are: byte offsets of the seven encoded ternary matrices in the
// weight image, their scales, and float offsets of the norm vectors in the parameter area.
enum { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, N_LIN };
enum { NORM_ATTN = 0, NORM_FFN, NORM_ATTN_SUB, NORM_FFN_SUB, N_NORM };
struct layer_desc {
  long w_off[N_LIN];
  f32 w_scale[N_LIN];
  long p_off[N_NORM];
};

// Scratch maps for up to max_t tokens: float area (offsets in floats) and the int8 area
// (bytes8 bytes: [T][width] quantized activations of the linear being fed).
template <class C>
struct layer_scratch {
  static const long q_lin = 0;                                   // [T][q_size] q before RoPE
  static const long k_lin = q_lin + (long)C::max_t * C::q_size;  // [T][kv_size] k before RoPE
  static const long q = k_lin + (long)C::max_t * C::kv_size;     // [T][q_size]
  static const long k = q + (long)C::max_t * C::q_size;          // [T][kv_size]
  static const long v = k + (long)C::max_t * C::kv_size;         // [T][kv_size]
  static const long attn = v + (long)C::max_t * C::kv_size;      // [T][q_size]
  static const long g = attn + (long)C::max_t * C::q_size;       // [T][ffn]
  static const long u = g + (long)C::max_t * C::ffn;             // [T][ffn]
  static const long y = u + (long)C::max_t * C::ffn;             // [T][hidden]
  static const long qs_a = y + (long)C::max_t * C::hidden;       // [T] scales of x8 (ping)
  static const long qs_b = qs_a + C::max_t;                      // [T] (pong)
  static const long floats = qs_b + C::max_t;
  static const long bytes8 = (long)C::max_t * C::k_max;
};

// Tap map (offsets in floats) when tap_en: q_rope, k_rope, v, attn, h_attn, ffn_act (h_out = h).
template <class C>
struct layer_taps {
  static const long q_rope = 0;
  static const long k_rope = q_rope + (long)C::max_t * C::q_size;
  static const long v = k_rope + (long)C::max_t * C::kv_size;
  static const long attn = v + (long)C::max_t * C::kv_size;
  static const long h_attn = attn + (long)C::max_t * C::q_size;
  static const long ffn_act = h_attn + (long)C::max_t * C::hidden;
  static const long floats = ffn_act + (long)C::max_t * C::ffn;
};

// Reference ternary linear on models/weights.pack2 rows ((n_out, ceil(k/4)) bytes, 2-bit codes
// t+1, low bits first): exact int32 accumulation, then dequantize. A plain loop (one MAC per
// cycle), kept as the cross-check for the TLMM engine and as a fallback policy. It reads its bytes
// through the first weight port (a pointer), or from the first weight FIFO (word_t = one byte; fetch
// pushes them in the same order: every row again for every token).
template <int K_MAX>  // K_MAX: largest k and n_out
struct pack2_matmul {
  typedef ap_uint<8> word_t;
  enum { kPorts = 1 };  // weight ports (FIFOs) it reads
  static uint8_t next_byte(const uint8_t *w, long i) { return w[i]; }
  static uint8_t next_byte(hls::stream<word_t> *s, long) { return (uint8_t)s->read(); }
  template <class WS>
  static void run(const int8_t *x, const f32 *qs, int n_tok, WS *w0, WS *, WS *, WS *, long w_off, int n_out,
                  int k, f32 wscale, f32 *y) {
    const int kb = (k + 3) / 4;
  p2_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
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
            if (idx < k) acc += (code - 1) * (int32_t)x[(long)t * k + idx];
          }
        }
        y[(long)t * n_out + n] = dequantize(acc, qs[t], wscale);
      }
    }
  }
  // Port P's FIFO for one linear (only port 0 carries anything).
  template <int P>
  static void fetch(const uint8_t *w, long w_off, int n_out, int k, int n_tok, hls::stream<word_t> &fifo) {
    if (P != 0) return;
    const long nbytes = (long)n_out * ((k + 3) / 4);
  p2_fetch_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
    p2_fetch:
      for (long i = 0; i < nbytes; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX * ((K_MAX + 3) / 4)
        fifo.write(w[w_off + i]);
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
  enum { kPorts = TCFG::NPORTS };  // weight ports (FIFOs) it reads
  static void run(const int8_t *x, const f32 *qs, int n_tok, const uint8_t *w0, const uint8_t *w1,
                  const uint8_t *w2, const uint8_t *w3, long w_off, int n_out, int k, f32 wscale, f32 *y) {
    tlmm_matmul<TCFG>(x, qs, n_tok, w0 + w_off, w1 + w_off, w2 + w_off, w3 + w_off, n_out, k, wscale, y);
  }
  static void run(const int8_t *x, const f32 *qs, int n_tok, hls::stream<word_t> *w0, hls::stream<word_t> *w1,
                  hls::stream<word_t> *w2, hls::stream<word_t> *w3, long, int n_out, int k, f32 wscale,
                  f32 *y) {
    tlmm_matmul<TCFG>(x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y);
  }
  // Port P's FIFO for one linear (weight_fetch.h tlmm_fetch_port).
  template <int P>
  static void fetch(const uint8_t *w, long w_off, int n_out, int k, int n_tok, hls::stream<word_t> &fifo) {
    if (P < TCFG::NPORTS) tlmm_fetch_port<TCFG, P < TCFG::NPORTS ? P : 0>(w + w_off, n_out, k, n_tok, fifo);
  }
};

// Shape of linear i (LIN_Q .. LIN_DOWN) of a layer: outputs and inputs (the engine and the fetcher
// both take them from here).
template <class C>
int lin_out(int i) {
#pragma HLS INLINE
  return i == LIN_Q ? C::q_size : i == LIN_K || i == LIN_V ? C::kv_size : i == LIN_GATE || i == LIN_UP ? C::ffn
                                                                                                     : C::hidden;
}
template <class C>
int lin_in(int i) {
#pragma HLS INLINE
  return i == LIN_O ? C::q_size : i == LIN_DOWN ? C::ffn : C::hidden;
}

// dst <- src over n <= MAXN floats (taps).
template <long MAXN>
void copy_f32(const f32 *src, f32 *dst, long n) {
copy_loop:
  for (long i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAXN
#pragma HLS PIPELINE II = 1
    dst[i] = src[i];
  }
}

// The layer's element-wise jobs in order, each run by the one engine call of decoder_layer_ports
// after the work that feeds it (the step before it names that work).
enum {
  EW_ATTN_NORM = 0,  // x8, qs_a = quantize(rmsnorm(h, attn_norm))
  EW_ROPE_Q,         // after q, k, v = linears of x8: q = rope(q_lin)
  EW_ROPE_K,         // k = rope(k_lin)
  EW_ATTN_SUB,       // after the K/V cache write and attention: x8, qs_a = quantize(rmsnorm(attn, sub))
  EW_RES_ATTN,       // after o_proj: h += y; x8, qs_b = quantize(rmsnorm(h, ffn_norm))
  EW_GLU,            // after gate, up: f = act(g) * u; x8, qs_a = quantize(rmsnorm(f, ffn_sub))
  EW_RES_FFN,        // after down: h += y
  EW_STEPS
};

// One decoder layer on h [t_len][hidden] (in place) at positions pos0 .. pos0+t_len-1.
//   w0 .. w3, d:   the weights, as the image through the four weight ports (const uint8_t pointers,
//                  MM::run adds d.w_off) or as the four weight FIFOs the top's fetcher fills (WS =
//                  hls::stream<MM::word_t>: MM::run pops them), and this layer's descriptor;
//                  params: float area (norm vectors)
//   cos_tab, sin_tab: rope_tables(head_dim, max_ctx) [max_ctx][head_dim/2]
//   k_layer, v_layer: this layer's KV cache slice of C::kv_t (kv_cache.h), positions < pos0 valid
//   eps, attn_scale: rms_eps and float(1/sqrt(head_dim)) from the host
//   kr0 .. kr3, vr0 .. vr3: the same K/V slice seen through the K/V ports (top.h kv0 .. kv3, in the
//                  weight ports' bundles): decode attention
//                  (t_len == 1) reads the cache over the first KVP of them concurrently
//                  (attention_decode_ports); writes and prefill use k_layer / v_layer (data port)
//   fs, x8: scratch (layer_scratch<C>); taps: layer_taps<C> area written when tap_en
//   rows:          the element-wise stages' shared rows (declared once by the caller with
//                  EDGELLM_EW_ROWS; the stages run one after another)
//   norm_only:     run the first element-wise job alone (x8, qs_a = quantize(rmsnorm(h[0 .. t_len),
//                  params + d.p_off[NORM_ATTN]))): the top's final norm before the LM head goes
//                  through the same engine call (top.h run_desc)
// The element-wise work is ONE call of ew_engine<E, C::act, C::head_dim, f32> (elementwise.h) in a
// loop over the EW_STEPS jobs, so the layer (and the top, through it) builds one element-wise module:
// each step first runs the linears / attention that feed its job, then the job (its operands chosen
// by the step: muxes).
template <class C, class MM, int KVP, class WS>
void decoder_layer_ports(f32 *h, int t_len, int pos0, WS *w0, WS *w1, WS *w2, WS *w3, const layer_desc &d,
                         const f32 *params, const f32 *cos_tab, const f32 *sin_tab,
                         typename C::kv_t *k_layer, typename C::kv_t *v_layer,
                         const typename C::kv_t *kr0, const typename C::kv_t *kr1,
                         const typename C::kv_t *kr2, const typename C::kv_t *kr3,
                         const typename C::kv_t *vr0, const typename C::kv_t *vr1,
                         const typename C::kv_t *vr2, const typename C::kv_t *vr3, f32 eps,
                         f32 attn_scale, f32 *fs, int8_t *x8, f32 *taps, bool tap_en,
                         EwRows<typename C::ew> &rows, bool norm_only = false) {
  typedef layer_scratch<C> S;
  typedef layer_taps<C> TP;
  typedef typename C::ew E;
  const int H = C::hidden, Q = C::q_size, KV = C::kv_size, F = C::ffn, D = C::head_dim;
#ifndef __SYNTHESIS__
  assert(t_len >= 1 && t_len <= C::max_t && pos0 >= 0 && pos0 + t_len <= C::max_ctx);
#endif
  f32 *qs_a = fs + S::qs_a, *qs_b = fs + S::qs_b;
  const int n_steps = norm_only ? 1 : (int)EW_STEPS;
layer_steps:
  for (int s = 0; s < n_steps; s++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = EW_STEPS
    // the work feeding job s
    if (s == EW_ROPE_Q) {
      MM::run(x8, qs_a, t_len, w0, w1, w2, w3, d.w_off[LIN_Q], lin_out<C>(LIN_Q), lin_in<C>(LIN_Q),
              d.w_scale[LIN_Q], fs + S::q_lin);
      MM::run(x8, qs_a, t_len, w0, w1, w2, w3, d.w_off[LIN_K], lin_out<C>(LIN_K), lin_in<C>(LIN_K),
              d.w_scale[LIN_K], fs + S::k_lin);
      MM::run(x8, qs_a, t_len, w0, w1, w2, w3, d.w_off[LIN_V], lin_out<C>(LIN_V), lin_in<C>(LIN_V),
              d.w_scale[LIN_V], fs + S::v);
    } else if (s == EW_ATTN_SUB) {
      if (tap_en) {
        copy_f32<(long)C::max_t * Q>(fs + S::q, taps + TP::q_rope, (long)t_len * Q);
        copy_f32<(long)C::max_t * KV>(fs + S::k, taps + TP::k_rope, (long)t_len * KV);
        copy_f32<(long)C::max_t * KV>(fs + S::v, taps + TP::v, (long)t_len * KV);
      }
      kv_cache_write<C::max_t, C::kv_size, typename C::kv_t, E::VEC>(fs + S::k, fs + S::v, t_len, pos0, KV,
                                                                  k_layer, v_layer);
      // one attention core for prefill (t_len > 1, K/V over the data port) and decode (t_len == 1, K/V
      // over the first KVP weight ports)
      attention_layer<typename C::attn, KVP>(fs + S::q, k_layer, v_layer, kr0, kr1, kr2, kr3, vr0, vr1, vr2,
                                             vr3, fs + S::attn, t_len, pos0, C::n_heads, C::n_kv, D,
                                             attn_scale);
      if (tap_en) copy_f32<(long)C::max_t * Q>(fs + S::attn, taps + TP::attn, (long)t_len * Q);
    } else if (s == EW_RES_ATTN) {
      MM::run(x8, qs_a, t_len, w0, w1, w2, w3, d.w_off[LIN_O], lin_out<C>(LIN_O), lin_in<C>(LIN_O),
              d.w_scale[LIN_O], fs + S::y);
    } else if (s == EW_GLU) {
      if (tap_en) copy_f32<(long)C::max_t * H>(h, taps + TP::h_attn, (long)t_len * H);
      MM::run(x8, qs_b, t_len, w0, w1, w2, w3, d.w_off[LIN_GATE], lin_out<C>(LIN_GATE), lin_in<C>(LIN_GATE),
              d.w_scale[LIN_GATE], fs + S::g);
      MM::run(x8, qs_b, t_len, w0, w1, w2, w3, d.w_off[LIN_UP], lin_out<C>(LIN_UP), lin_in<C>(LIN_UP),
              d.w_scale[LIN_UP], fs + S::u);
    } else if (s == EW_RES_FFN) {
      MM::run(x8, qs_a, t_len, w0, w1, w2, w3, d.w_off[LIN_DOWN], lin_out<C>(LIN_DOWN), lin_in<C>(LIN_DOWN),
              d.w_scale[LIN_DOWN], fs + S::y);
    }
    // job s's operands (linear outputs arrive dequantized, fp32: scales 1)
    int mode = kEwNorm, n = H;
    const f32 *a = h, *b = fs + S::u, *qs_in = qs_a, *g = params + d.p_off[NORM_ATTN];
    bool norm = true;
    f32 *out = fs + S::q, *qs_out = qs_a;
    switch (s) {
      case EW_ROPE_Q:
        mode = kEwRope, n = Q, a = fs + S::q_lin;
        break;
      case EW_ROPE_K:
        mode = kEwRope, n = KV, a = fs + S::k_lin, out = fs + S::k;
        break;
      case EW_ATTN_SUB:
        n = Q, a = fs + S::attn, g = params + d.p_off[NORM_ATTN_SUB], norm = C::subln;
        break;
      case EW_RES_ATTN:
        mode = kEwResidual, a = fs + S::y, g = params + d.p_off[NORM_FFN], qs_out = qs_b;
        break;
      case EW_GLU:
        mode = kEwGlu, n = F, a = fs + S::g, qs_in = qs_b, g = params + d.p_off[NORM_FFN_SUB];
        norm = C::subln;
        break;
      case EW_RES_FFN:
        mode = kEwResidual, a = fs + S::y, norm = false, qs_out = qs_b;
        break;
      default:  // EW_ATTN_NORM
        break;
    }
    ew_engine<E, C::act, C::head_dim, f32>(mode, a, b, qs_in, 1.0f, 1.0f, norm, g, eps, t_len, n, pos0,
                                           cos_tab, sin_tab, h, out, x8, qs_out, tap_en && s == EW_GLU,
                                           taps + TP::ffn_act, rows);
  }
}

// K/V read through k_layer / v_layer alone (one port); declares the element-wise rows itself.
template <class C, class MM>
void decoder_layer(f32 *h, int t_len, int pos0, const uint8_t *w0, const uint8_t *w1,
                   const uint8_t *w2, const uint8_t *w3, const layer_desc &d, const f32 *params,
                   const f32 *cos_tab, const f32 *sin_tab, typename C::kv_t *k_layer,
                   typename C::kv_t *v_layer, f32 eps, f32 attn_scale, f32 *fs, int8_t *x8, f32 *taps,
                   bool tap_en) {
  typedef typename C::ew E;
  EDGELLM_EW_ROWS(E, rows)
  decoder_layer_ports<C, MM, 1>(h, t_len, pos0, w0, w1, w2, w3, d, params, cos_tab, sin_tab, k_layer,
                                v_layer, k_layer, k_layer, k_layer, k_layer, v_layer, v_layer, v_layer,
                                v_layer, eps, attn_scale, fs, x8, taps, tap_en, rows);
}

// Single weight pointer (testbenches): every weight port reads through w.
template <class C, class MM, class... A>
void decoder_layer(f32 *h, int t_len, int pos0, const uint8_t *w, const layer_desc &d, A... rest) {
  edgellm::decoder_layer<C, MM>(h, t_len, pos0, w, w, w, w, d, rest...);
}

}  // namespace edgellm
