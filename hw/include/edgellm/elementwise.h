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
//
// Width: every element pass handles E::VEC consecutive elements per cycle (an outer chunk loop at
// II=1 over ceil(n / VEC) chunks, an unrolled inner loop over the VEC lanes, guarded by < n). The
// DDR-facing passes (reading linear outputs, h, gammas and RoPE tables; writing q, h, out, taps)
// move VEC consecutive elements per iteration, so HLS widens their m_axi bursts. Row buffers are
// partitioned cyclic by VEC (PART; the RMSNorm sum of squares reads at most VEC elements per cycle,
// numerics.h LaneUnits). Element-wise results do not depend on VEC; the reductions keep the
// contract's order (sum of squares: lane_sum<LANES>'s per-lane order; absmax: VEC lane maxima,
// exact in any order).
//
// Cycles per token (c(m) = ceil(m / VEC), s(m) = ceil(m / U) + the halving tree, U = LaneUnits<LANES,
// VEC> (numerics.h lane_sum); pipeline fill and the per-call gamma load c(n) left out). DDR passes
// move at most the m_axi width per cycle (128 bits: 4 fp32), which the performance model applies:
//   norm_quantize (norm)     load c(n) + sumsq s(n) + scale c(n) + absmax c(n) + round c(n) + store c(n)
//   norm_quantize (no norm)  load c(n) + absmax c(n) + round c(n) + store c(n)
//   dequant_rope             load c(n) + tables c(HEAD_DIM/2) + rope/out c(n)          (n = heads*HEAD_DIM)
//   glu_norm_quantize        load g c(n) + load u c(n) + act c(n) [+ sumsq s(n) + scale c(n) if sub_norm]
//                            + absmax c(n) + round c(n) + store c(n)
//   residual_norm_quantize   load c(n) + add c(n) [+ sumsq s(n) + scale c(n) + absmax c(n)
//                            + round c(n) + store c(n) if next_norm]
#pragma once

#include <cstdint>

#include "edgellm/numerics.h"

namespace edgellm {

enum GateAct { kActRelu2 = 0, kActSilu = 1 };  // same values as the layer's ACT_RELU2 / ACT_SILU

// N_MAX: longest row (floats per on-chip buffer); LANES: RMSNorm lanes (NumericsPlan.norm_lanes);
// MAX_TOK: tokens per call (trip counts only); VEC: elements per cycle of every element pass.
template <int N_MAX_, int LANES_, int MAX_TOK_ = 128, int VEC_ = 1>
struct EwConfig {
  static_assert(VEC_ >= 1 && VEC_ <= 64 && (VEC_ & (VEC_ - 1)) == 0, "VEC: a power of two in 1..64");
  static_assert(LANES_ >= 1 && (LANES_ & (LANES_ - 1)) == 0, "LANES: a power of two");
  static constexpr int N_MAX = N_MAX_;
  static constexpr int LANES = LANES_;
  static constexpr int MAX_TOK = MAX_TOK_;
  static constexpr int VEC = VEC_;
  static constexpr int PART = VEC_;  // banks of the row buffers (lane_sum reads <= VEC per cycle)
  static constexpr int N_BUF = (N_MAX_ + PART - 1) / PART * PART;  // N_MAX rounded up to whole banks
};

// One linear-output element: an exact accumulator is dequantized, an fp32 value (already
// dequantized by tlmm_matmul, or any fp32 activation) is taken as it is.
inline f32 linear_value(int32_t acc, f32 qs, f32 wscale) { return dequantize(acc, qs, wscale); }
inline f32 linear_value(f32 y, f32, f32) { return y; }

// One linear-output row (IN = int32_t or f32) into an on-chip buffer. Cycles ceil(n / VEC).
template <int N_MAX, int VEC = 1, class IN>
void load_linear_row(const IN *src, f32 qs, f32 wscale, int n, f32 *buf) {
#pragma HLS INLINE off
  enum { kChunks = (N_MAX + VEC - 1) / VEC };
  const int chunks = (n + VEC - 1) / VEC;
ew_load:
  for (int c = 0; c < chunks; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
    for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
      const int i = c * VEC + j;
      if (i < n) buf[i] = linear_value(src[i], qs, wscale);
    }
  }
}

// q[i] = qb[i] for i < n (on-chip -> DDR). Cycles ceil(n / VEC).
template <int N_MAX, int VEC = 1>
void store_q_row(const int8_t *qb, int n, int8_t *q) {
  enum { kChunks = (N_MAX + VEC - 1) / VEC };
  const int chunks = (n + VEC - 1) / VEC;
ew_store_q:
  for (int c = 0; c < chunks; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
    for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
      const int i = c * VEC + j;
      if (i < n) q[i] = qb[i];
    }
  }
}

// gb[i] = use ? g[i] : 1.0f for i < n (a gamma vector, once per call). Cycles ceil(n / VEC).
template <int N_MAX, int VEC = 1>
void load_gamma(const f32 *g, bool use, int n, f32 *gb) {
  enum { kChunks = (N_MAX + VEC - 1) / VEC };
  const int chunks = (n + VEC - 1) / VEC;
ew_gamma:
  for (int c = 0; c < chunks; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
    for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
      const int i = c * VEC + j;
      if (i < n) gb[i] = use ? g[i] : 1.0f;
    }
  }
}

// (q, return qs) = quantize(rmsnorm(x, g)) when norm, else quantize(x); y: scratch row.
template <class E>
f32 norm_quantize_row(const f32 *x, const f32 *g, bool norm, f32 eps, int n, f32 *y, int8_t *q) {
  if (norm) {
    rmsnorm<E::LANES, E::VEC>(x, g, eps, n, y);
    return quantize<E::VEC>(y, n, q);
  }
  return quantize<E::VEC>(x, n, q);
}

// (a) q[t], qs[t] = quantize(rmsnorm(x[t], g)) (norm = false: quantize(x[t])), x: [n_tok][n] fp32.
// With norm = true and g = the SubLN gamma this is also the SubLN + quantize before o_proj.
template <class E>
void norm_quantize_tokens(const f32 *x, const f32 *g, bool norm, f32 eps, int n_tok, int n, int8_t *q,
                          f32 *qs) {
  enum { N_MAX = E::N_MAX, N_BUF = E::N_BUF, VEC = E::VEC, PART = E::PART, kMaxTok = E::MAX_TOK };
  f32 gb[N_BUF], xb[N_BUF], yb[N_BUF];
  int8_t qb[N_BUF];
#pragma HLS BIND_STORAGE variable = xb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = yb type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = xb type = cyclic factor = PART
#pragma HLS ARRAY_PARTITION variable = yb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = gb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = qb type = cyclic factor = VEC
  load_gamma<N_MAX, VEC>(g, norm, n, gb);
ew_nq_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(x + (long)t * n, 1.0f, 1.0f, n, xb);
    qs[t] = norm_quantize_row<E>(xb, gb, norm, eps, n, yb, qb);
    store_q_row<N_MAX, VEC>(qb, n, q + (long)t * n);
  }
}

// (b1) out[t] = rope(dequantize(acc[t])) for each of n_heads heads of HEAD_DIM; tables are
// rope_tables(HEAD_DIM, max_pos): [max_pos][HEAD_DIM/2], row pos0 + t for token t. The rotation
// is computed on the way out (rope_row reads buf, writes out), so it costs no extra pass.
template <class E, int HEAD_DIM, class IN>
void dequant_rope_tokens(const IN *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                         const f32 *cos_tab, const f32 *sin_tab, f32 *out) {
  enum {
    N_MAX = E::N_MAX, N_BUF = E::N_BUF, VEC = E::VEC, kMaxTok = E::MAX_TOK, H2 = HEAD_DIM / 2,
    TAB_PART = VEC < H2 ? VEC : H2, kTabChunks = (H2 + VEC - 1) / VEC
  };
  static_assert(HEAD_DIM >= 2 && (HEAD_DIM & (HEAD_DIM - 1)) == 0, "HEAD_DIM: a power of two");
  const int n = n_heads * HEAD_DIM;
  f32 buf[N_BUF], cb[H2], sb[H2];
  // two reads per bank per cycle (an element and its rotation partner): true dual port
#pragma HLS BIND_STORAGE variable = buf type = ram_t2p impl = bram
#pragma HLS ARRAY_PARTITION variable = buf type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = cb type = cyclic factor = TAB_PART
#pragma HLS ARRAY_PARTITION variable = sb type = cyclic factor = TAB_PART
ew_rope_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(acc + (long)t * n, qs[t], wscale, n, buf);
  ew_rope_tab:
    for (int c = 0; c < kTabChunks; c++) {
#pragma HLS PIPELINE II = 1
      for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
        const int i = c * VEC + j;
        if (i < H2) {
          cb[i] = cos_tab[(long)(pos0 + t) * H2 + i];
          sb[i] = sin_tab[(long)(pos0 + t) * H2 + i];
        }
      }
    }
    rope_row<HEAD_DIM, VEC>(buf, cb, sb, n, out + (long)t * n);
  }
}

// (b2) f = act(dequantize(g_acc)) * dequantize(u_acc) (tap_en: also written to f_tap); then
// SubLN rmsnorm(f, sub_g) when sub_norm, and quantize -> q, qs_out for the down projection.
template <class E, int ACT, class IN>
void glu_norm_quantize_tokens(const IN *g_acc, const IN *u_acc, const f32 *qs, f32 g_scale, f32 u_scale,
                              bool sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q,
                              f32 *qs_out, bool tap_en, f32 *f_tap) {
  enum {
    N_MAX = E::N_MAX, N_BUF = E::N_BUF, VEC = E::VEC, PART = E::PART, kMaxTok = E::MAX_TOK,
    kChunks = (E::N_MAX + E::VEC - 1) / E::VEC
  };
  f32 gb[N_BUF], ub[N_BUF], nb[N_BUF], sg[N_BUF];
  int8_t qb[N_BUF];
#pragma HLS BIND_STORAGE variable = gb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = ub type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = nb type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = gb type = cyclic factor = PART
#pragma HLS ARRAY_PARTITION variable = ub type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = nb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = sg type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = qb type = cyclic factor = VEC
  load_gamma<N_MAX, VEC>(sub_g, sub_norm, n, sg);
  const int chunks = (n + VEC - 1) / VEC;
ew_glu_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(g_acc + (long)t * n, qs[t], g_scale, n, gb);
    load_linear_row<N_MAX, VEC>(u_acc + (long)t * n, qs[t], u_scale, n, ub);
  ew_glu_act:
    for (int c = 0; c < chunks; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
      for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
        const int i = c * VEC + j;
        if (i < n) {
          f32 a = ACT == kActRelu2 ? relu2(gb[i]) : silu(gb[i]);
          f32 f = a * ub[i];
          gb[i] = f;
          if (tap_en) f_tap[(long)t * n + i] = f;
        }
      }
    }
    qs_out[t] = norm_quantize_row<E>(gb, sg, sub_norm, eps, n, nb, qb);
    store_q_row<N_MAX, VEC>(qb, n, q + (long)t * n);
  }
}

// (b3) h[t] = h[t] + dequantize(acc[t]) (residual, in place); then, when next_norm, the next
// block's input q, qs_out = quantize(rmsnorm(h[t], g)) from the on-chip copy of the new h.
template <class E, class IN>
void residual_norm_quantize_tokens(const IN *acc, const f32 *qs, f32 wscale, f32 *h, bool next_norm,
                                   const f32 *g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out) {
  enum {
    N_MAX = E::N_MAX, N_BUF = E::N_BUF, VEC = E::VEC, PART = E::PART, kMaxTok = E::MAX_TOK,
    kChunks = (E::N_MAX + E::VEC - 1) / E::VEC
  };
  f32 yb[N_BUF], hb[N_BUF], nb[N_BUF], gb[N_BUF];
  int8_t qb[N_BUF];
#pragma HLS BIND_STORAGE variable = yb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = hb type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = nb type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = yb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = hb type = cyclic factor = PART
#pragma HLS ARRAY_PARTITION variable = nb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = gb type = cyclic factor = VEC
#pragma HLS ARRAY_PARTITION variable = qb type = cyclic factor = VEC
  load_gamma<N_MAX, VEC>(g, next_norm, n, gb);
  const int chunks = (n + VEC - 1) / VEC;
ew_res_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(acc + (long)t * n, qs[t], wscale, n, yb);
  ew_res_add:
    for (int c = 0; c < chunks; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
      for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
        const int i = c * VEC + j;
        if (i < n) {
          f32 v = h[(long)t * n + i] + yb[i];
          hb[i] = v;
          h[(long)t * n + i] = v;
        }
      }
    }
    if (next_norm) {
      qs_out[t] = norm_quantize_row<E>(hb, gb, true, eps, n, nb, qb);
      store_q_row<N_MAX, VEC>(qb, n, q + (long)t * n);
    }
  }
}

}  // namespace edgellm
