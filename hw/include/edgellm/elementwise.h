// Fused streaming element-wise stages around the ternary linears (numerics contract: numerics.h).
//
// Before a linear:  x -> RMSNorm(g) -> per-token absmax int8 (q, qs)           norm_quantize_tokens
// After a linear (input: exact int32 accumulators of tlmm_matmul_int, dequantized here with the
// contract's dequantize; or fp32 outputs of tlmm_matmul, taken as they are):
//   dequantize + RoPE per head (positions pos0 + t, host tables)              dequant_rope_tokens
//   dequantize gate/up + act(g) * u (ReLU^2 or SiLU) + SubLN + quantize         glu_norm_quantize_tokens
//   dequantize + residual add (+ the next block's RMSNorm + quantize)           residual_norm_quantize_tokens
// Each stage works token by token on on-chip row buffers (N_MAX floats, bound to BRAM): the
// intermediate vectors never go back to DDR. Every float operation is a numerics.h function in the
// contract's order, so each stage equals the golden model (models/golden.py) bit for bit.
#pragma once

#include <cstdint>

#include "edgellm/numerics.h"

namespace edgellm {

enum GateAct { kActRelu2 = 0, kActSilu = 1 };  // same values as the layer's ACT_RELU2 / ACT_SILU

// N_MAX: longest row (floats per on-chip buffer); LANES: RMSNorm lanes (NumericsPlan.norm_lanes);
// MAX_TOK: tokens per call (trip counts only).
template <int N_MAX_, int LANES_, int MAX_TOK_ = 128>
struct EwConfig {
  static constexpr int N_MAX = N_MAX_;
  static constexpr int LANES = LANES_;
  static constexpr int MAX_TOK = MAX_TOK_;
};

// One linear-output row into an on-chip buffer: exact accumulators are dequantized ...
template <int N_MAX>
void load_linear_row(const int32_t *acc, f32 qs, f32 wscale, int n, f32 *buf) {
#pragma HLS INLINE off
  enum { kMax = N_MAX };
ew_dequant:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
    buf[i] = dequantize(acc[i], qs, wscale);
  }
}

// ... and fp32 rows (already dequantized by tlmm_matmul, or any fp32 activation) are copied.
template <int N_MAX>
void load_linear_row(const f32 *y, f32 qs, f32 wscale, int n, f32 *buf) {
#pragma HLS INLINE off
  enum { kMax = N_MAX };
  (void)qs;
  (void)wscale;
ew_copy:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
    buf[i] = y[i];
  }
}

template <int N_MAX>
void store_q_row(const int8_t *qb, int n, int8_t *q) {
  enum { kMax = N_MAX };
ew_store_q:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
    q[i] = qb[i];
  }
}

// (a) q[t], qs[t] = quantize(rmsnorm(x[t], g)) (norm = false: quantize(x[t])), x: [n_tok][n] fp32.
// With norm = true and g = the SubLN gamma this is also the SubLN + quantize before o_proj.
template <class E>
void norm_quantize_tokens(const f32 *x, const f32 *g, bool norm, f32 eps, int n_tok, int n, int8_t *q,
                          f32 *qs) {
  enum { N_MAX = E::N_MAX, kMaxTok = E::MAX_TOK };
  f32 gb[N_MAX], xb[N_MAX], yb[N_MAX];
  int8_t qb[N_MAX];
#pragma HLS BIND_STORAGE variable = xb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = yb type = ram_2p impl = bram
ew_nq_gamma:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
    gb[i] = norm ? g[i] : 1.0f;
  }
ew_nq_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX>(x + (long)t * n, 1.0f, 1.0f, n, xb);
    if (norm) {
      rmsnorm<E::LANES>(xb, gb, eps, n, yb);
      qs[t] = quantize(yb, n, qb);
    } else {
      qs[t] = quantize(xb, n, qb);
    }
    store_q_row<N_MAX>(qb, n, q + (long)t * n);
  }
}

// (b1) out[t] = rope(dequantize(acc[t])) for each of n_heads heads of HEAD_DIM; tables are
// rope_tables(HEAD_DIM, max_pos): [max_pos][HEAD_DIM/2], row pos0 + t for token t.
template <class E, int HEAD_DIM, class IN>
void dequant_rope_tokens(const IN *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                         const f32 *cos_tab, const f32 *sin_tab, f32 *out) {
  enum { N_MAX = E::N_MAX, kMaxTok = E::MAX_TOK, kMaxHeads = E::N_MAX / HEAD_DIM, H2 = HEAD_DIM / 2 };
  const int n = n_heads * HEAD_DIM;
  f32 buf[N_MAX], cb[H2], sb[H2];
#pragma HLS BIND_STORAGE variable = buf type = ram_2p impl = bram
ew_rope_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX>(acc + (long)t * n, qs[t], wscale, n, buf);
  ew_rope_tab:
    for (int i = 0; i < H2; i++) {
#pragma HLS PIPELINE II = 1
      cb[i] = cos_tab[(long)(pos0 + t) * H2 + i];
      sb[i] = sin_tab[(long)(pos0 + t) * H2 + i];
    }
  ew_rope_head:
    for (int h = 0; h < n_heads; h++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxHeads
      rope<HEAD_DIM>(buf + h * HEAD_DIM, cb, sb);
    }
  ew_rope_out:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
      out[(long)t * n + i] = buf[i];
    }
  }
}

// (b2) f = act(dequantize(g_acc)) * dequantize(u_acc) (tap_en: also written to f_tap); then
// SubLN rmsnorm(f, sub_g) when sub_norm, and quantize -> q, qs_out for the down projection.
template <class E, int ACT, class IN>
void glu_norm_quantize_tokens(const IN *g_acc, const IN *u_acc, const f32 *qs, f32 g_scale, f32 u_scale,
                              bool sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q,
                              f32 *qs_out, bool tap_en, f32 *f_tap) {
  enum { N_MAX = E::N_MAX, kMaxTok = E::MAX_TOK };
  f32 gb[N_MAX], ub[N_MAX], nb[N_MAX], sg[N_MAX];
  int8_t qb[N_MAX];
#pragma HLS BIND_STORAGE variable = gb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = ub type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = nb type = ram_2p impl = bram
ew_glu_gamma:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
    sg[i] = sub_norm ? sub_g[i] : 1.0f;
  }
ew_glu_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX>(g_acc + (long)t * n, qs[t], g_scale, n, gb);
    load_linear_row<N_MAX>(u_acc + (long)t * n, qs[t], u_scale, n, ub);
  ew_glu_act:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
      f32 a = ACT == kActRelu2 ? relu2(gb[i]) : silu(gb[i]);
      f32 f = a * ub[i];
      gb[i] = f;
      if (tap_en) f_tap[(long)t * n + i] = f;
    }
    if (sub_norm) {
      rmsnorm<E::LANES>(gb, sg, eps, n, nb);
      qs_out[t] = quantize(nb, n, qb);
    } else {
      qs_out[t] = quantize(gb, n, qb);
    }
    store_q_row<N_MAX>(qb, n, q + (long)t * n);
  }
}

// (b3) h[t] = h[t] + dequantize(acc[t]) (residual, in place); then, when next_norm, the next
// block's input q, qs_out = quantize(rmsnorm(h[t], g)) from the on-chip copy of the new h.
template <class E, class IN>
void residual_norm_quantize_tokens(const IN *acc, const f32 *qs, f32 wscale, f32 *h, bool next_norm,
                                   const f32 *g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out) {
  enum { N_MAX = E::N_MAX, kMaxTok = E::MAX_TOK };
  f32 yb[N_MAX], hb[N_MAX], nb[N_MAX], gb[N_MAX];
  int8_t qb[N_MAX];
#pragma HLS BIND_STORAGE variable = yb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = hb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = nb type = ram_2p impl = bram
ew_res_gamma:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
    gb[i] = next_norm ? g[i] : 1.0f;
  }
ew_res_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX>(acc + (long)t * n, qs[t], wscale, n, yb);
  ew_res_add:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
      f32 v = h[(long)t * n + i] + yb[i];
      hb[i] = v;
      h[(long)t * n + i] = v;
    }
    if (next_norm) {
      rmsnorm<E::LANES>(hb, gb, eps, n, nb);
      qs_out[t] = quantize(nb, n, qb);
      store_q_row<N_MAX>(qb, n, q + (long)t * n);
    }
  }
}

}  // namespace edgellm
