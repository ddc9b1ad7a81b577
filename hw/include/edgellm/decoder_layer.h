// One BitNet decoder layer composed from the kernels: exactly models/golden.py GoldenModel.layer.
//
//   x = rmsnorm(h, attn_norm); (x8, qs) = quantize(x)
//   q, k, v = ternary linears of x8                       -> rope(q), rope(k)    [taps q_rope k_rope v]
//   cache[pos0 .. pos0+T) = k, v ; a = attention(q, cache[0 .. pos0+T))         [tap attn]
//   a = rmsnorm(a, attn_sub_norm) if SUBLN ; h = h + o_proj(quantize(a))         [tap h_attn]
//   x = rmsnorm(h, ffn_norm); g, u = gate, up of quantize(x); f = act(g) * u     [tap ffn_act]
//   f = rmsnorm(f, ffn_sub_norm) if SUBLN ; h = h + down(quantize(f))            [tap h_out = h]
//
// Every float op is the contract's (numerics.h); a ternary linear is MM::run (exact integer
// accumulation, then dequantize(acc, qs, wscale)), a policy so the layer runs on the TLMM engine or
// on the plain reference matmul (pack2_matmul). Activations between stages live in a DDR scratch area
// (layer_scratch), element-wise stages stream rows through on-chip buffers with II=1 loops.
// T == 1 uses the single-query decode attention kernel, T > 1 the fused prefill kernel.
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/attention_decode.h"
#include "edgellm/attention_prefill.h"
#include "edgellm/kv_cache.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm.h"

namespace edgellm {

enum { ACT_RELU2 = 0, ACT_SILU = 1 };

constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Compile-time shape of one layer (generated per model by the compiler).
template <int HIDDEN, int N_HEADS, int N_KV, int HEAD_DIM, int FFN, int ACT, bool SUBLN,
          int NORM_LANES, int DOT_LANES, int KV_BLOCK, int MAX_T, int MAX_CTX, int BQ = 8>
struct layer_config {
  static const int hidden = HIDDEN, n_heads = N_HEADS, n_kv = N_KV, head_dim = HEAD_DIM;
  static const int ffn = FFN, act = ACT, norm_lanes = NORM_LANES, max_t = MAX_T, max_ctx = MAX_CTX;
  static const bool subln = SUBLN;
  static const int q_size = N_HEADS * HEAD_DIM, kv_size = N_KV * HEAD_DIM;
  static const int k_max = cmax(HIDDEN, cmax(q_size, FFN));  // widest linear input / row
  typedef attn_config<HEAD_DIM, DOT_LANES, KV_BLOCK, BQ, N_HEADS, N_KV, N_HEADS / N_KV, MAX_CTX,
                      MAX_T>
      attn;
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
  static const long q = 0;                                    // [T][q_size]
  static const long k = q + (long)C::max_t * C::q_size;       // [T][kv_size]
  static const long v = k + (long)C::max_t * C::kv_size;      // [T][kv_size]
  static const long attn = v + (long)C::max_t * C::kv_size;   // [T][q_size]
  static const long g = attn + (long)C::max_t * C::q_size;    // [T][ffn]
  static const long u = g + (long)C::max_t * C::ffn;          // [T][ffn]  (f = act(g)*u in place)
  static const long y = u + (long)C::max_t * C::ffn;          // [T][hidden]
  static const long qs = y + (long)C::max_t * C::hidden;      // [T]
  static const long floats = qs + C::max_t;
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
// cycle), kept as the cross-check for the TLMM engine and as a fallback policy.
template <int K_MAX>  // K_MAX: largest k and n_out
struct pack2_matmul {
  static void run(const int8_t *x, const f32 *qs, int n_tok, const uint8_t *w, int n_out, int k,
                  f32 wscale, f32 *y) {
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
          uint8_t byte = w[(long)n * kb + b];
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
};

// The TLMM engine as the layer's matmul policy: weights in the tiled 5-trits/byte image
// (compiler/packing.py pack_ternary with rows_per_tile = TCFG::R), one image per linear.
template <class TCFG>
struct tlmm_mm {
  static void run(const int8_t *x, const f32 *qs, int n_tok, const uint8_t *w, int n_out, int k,
                  f32 wscale, f32 *y) {
    tlmm_matmul<TCFG>(x, qs, n_tok, w, n_out, k, wscale, y);
  }
};

// Rows of x (T x N): optional RMSNorm with g, then per-token absmax int8 -> x8 (T x N), qs (T).
template <class C, int N>
void norm_quant_rows(const f32 *x, const f32 *g, bool norm, f32 eps, int t_len, int8_t *x8,
                     f32 *qs) {
  f32 gb[N], row[N], nrm[N];
  int8_t q8[N];
  if (norm) {
  nq_load_g:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
      gb[i] = g[i];
    }
  }
nq_tok:
  for (int t = 0; t < t_len; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_t
  nq_load:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
      row[i] = x[(long)t * N + i];
    }
    if (norm) {
      rmsnorm<C::norm_lanes>(row, gb, eps, N, nrm);
    } else {
      for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        nrm[i] = row[i];
      }
    }
    qs[t] = quantize(nrm, N, q8);
  nq_store:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
      x8[(long)t * N + i] = q8[i];
    }
  }
}

// RoPE of every head of every token (x: [T][heads][head_dim]) with the table row of pos0 + t.
template <class C>
void rope_rows(f32 *x, int heads, const f32 *cos_tab, const f32 *sin_tab, int t_len, int pos0) {
  const int D = C::head_dim, H2 = C::head_dim / 2;
  f32 cb[H2], sb[H2], hb[D];
rope_tok:
  for (int t = 0; t < t_len; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_t
  rope_tab:
    for (int i = 0; i < H2; i++) {
#pragma HLS PIPELINE II = 1
      cb[i] = cos_tab[(long)(pos0 + t) * H2 + i];
      sb[i] = sin_tab[(long)(pos0 + t) * H2 + i];
    }
  rope_head:
    for (int h = 0; h < heads; h++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::n_heads
      f32 *row = x + ((long)t * heads + h) * D;
      for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        hb[i] = row[i];
      }
      rope<D>(hb, cb, sb);
      for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        row[i] = hb[i];
      }
    }
  }
}

// h = h + y over n <= MAXN floats.
template <long MAXN>
void residual_add(f32 *h, const f32 *y, long n) {
res_add:
  for (long i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAXN
#pragma HLS PIPELINE II = 1
    h[i] = h[i] + y[i];
  }
}

// u <- act(g) * u over n <= MAXN floats (the gated FFN activation, in place in u).
template <int ACT, long MAXN>
void gated_act(const f32 *g, f32 *u, long n) {
ffn_act:
  for (long i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAXN
#pragma HLS PIPELINE II = 1
    f32 a = ACT == ACT_RELU2 ? relu2(g[i]) : silu(g[i]);
    u[i] = a * u[i];
  }
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

// One decoder layer on h [t_len][hidden] (in place) at positions pos0 .. pos0+t_len-1.
//   w, d:          weight image and this layer's descriptor; params: float area (norm vectors)
//   cos_tab, sin_tab: rope_tables(head_dim, max_ctx) [max_ctx][head_dim/2]
//   k_layer, v_layer: this layer's KV cache slice (kv_cache.h), positions < pos0 already valid
//   eps, attn_scale: rms_eps and float(1/sqrt(head_dim)) from the host
//   fs, x8: scratch (layer_scratch<C>); taps: layer_taps<C> area written when tap_en
template <class C, class MM>
void decoder_layer(f32 *h, int t_len, int pos0, const uint8_t *w, const layer_desc &d,
                   const f32 *params, const f32 *cos_tab, const f32 *sin_tab, f32 *k_layer,
                   f32 *v_layer, f32 eps, f32 attn_scale, f32 *fs, int8_t *x8, f32 *taps,
                   bool tap_en) {
  typedef layer_scratch<C> S;
  typedef layer_taps<C> TP;
  const int H = C::hidden, Q = C::q_size, KV = C::kv_size, F = C::ffn;
#ifndef __SYNTHESIS__
  assert(t_len >= 1 && t_len <= C::max_t && pos0 >= 0 && pos0 + t_len <= C::max_ctx);
#endif
  f32 *qs = fs + S::qs;
  // attention block
  norm_quant_rows<C, H>(h, params + d.p_off[NORM_ATTN], true, eps, t_len, x8, qs);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_Q], Q, H, d.w_scale[LIN_Q], fs + S::q);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_K], KV, H, d.w_scale[LIN_K], fs + S::k);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_V], KV, H, d.w_scale[LIN_V], fs + S::v);
  rope_rows<C>(fs + S::q, C::n_heads, cos_tab, sin_tab, t_len, pos0);
  rope_rows<C>(fs + S::k, C::n_kv, cos_tab, sin_tab, t_len, pos0);
  if (tap_en) {
    copy_f32<(long)C::max_t * Q>(fs + S::q, taps + TP::q_rope, (long)t_len * Q);
    copy_f32<(long)C::max_t * KV>(fs + S::k, taps + TP::k_rope, (long)t_len * KV);
    copy_f32<(long)C::max_t * KV>(fs + S::v, taps + TP::v, (long)t_len * KV);
  }
  kv_cache_write<C::max_t, C::kv_size>(fs + S::k, fs + S::v, t_len, pos0, KV, k_layer, v_layer);
  if (t_len == 1) {
    attention_decode<typename C::attn>(fs + S::q, k_layer, v_layer, fs + S::attn, pos0, C::n_heads,
                                       C::n_kv, C::head_dim, attn_scale);
  } else {
    attention_prefill<typename C::attn>(fs + S::q, k_layer, v_layer, fs + S::attn, t_len, pos0,
                                        C::n_heads, C::n_kv, C::head_dim, attn_scale);
  }
  if (tap_en) copy_f32<(long)C::max_t * Q>(fs + S::attn, taps + TP::attn, (long)t_len * Q);
  norm_quant_rows<C, Q>(fs + S::attn, params + d.p_off[NORM_ATTN_SUB], C::subln, eps, t_len, x8,
                        qs);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_O], H, Q, d.w_scale[LIN_O], fs + S::y);
  residual_add<(long)C::max_t * H>(h, fs + S::y, (long)t_len * H);
  if (tap_en) copy_f32<(long)C::max_t * H>(h, taps + TP::h_attn, (long)t_len * H);
  // FFN block
  norm_quant_rows<C, H>(h, params + d.p_off[NORM_FFN], true, eps, t_len, x8, qs);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_GATE], F, H, d.w_scale[LIN_GATE], fs + S::g);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_UP], F, H, d.w_scale[LIN_UP], fs + S::u);
  gated_act<C::act, (long)C::max_t * F>(fs + S::g, fs + S::u, (long)t_len * F);
  if (tap_en) copy_f32<(long)C::max_t * F>(fs + S::u, taps + TP::ffn_act, (long)t_len * F);
  norm_quant_rows<C, F>(fs + S::u, params + d.p_off[NORM_FFN_SUB], C::subln, eps, t_len, x8, qs);
  MM::run(x8, qs, t_len, w + d.w_off[LIN_DOWN], H, F, d.w_scale[LIN_DOWN], fs + S::y);
  residual_add<(long)C::max_t * H>(h, fs + S::y, (long)t_len * H);
}

}  // namespace edgellm
