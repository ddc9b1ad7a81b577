// Fused streaming element-wise stages around the ternary linears (numerics contract: numerics.h).
//
// Before a linear:  x -> RMSNorm(g) -> per-token absmax int8 (q, qs)           norm_quantize_tokens
// After a linear (input: exact int32 accumulators of tlmm_matmul_int, dequantized here with the
// contract's dequantize; or fp32 outputs of tlmm_matmul, taken as they are):
//   dequantize + RoPE per head (positions pos0 + t, host tables)              dequant_rope_tokens
//   dequantize gate/up + act(g) * u (ReLU^2 or SiLU) + SubLN + quantize         glu_norm_quantize_tokens
//   dequantize + residual add (+ the next block's RMSNorm + quantize)           residual_norm_quantize_tokens
// Each stage works token by token on on-chip rows: the intermediate vectors never go back to DDR.
// Every float operation is a numerics.h function in the contract's order, so each stage equals the
// golden model (models/golden.py) bit for bit.
//
// Shared rows. The stages run one after another, never concurrently, so they share one set of rows,
// EwRows<E>: 3 fp32 rows r0, r1, r2 and 1 int8 row q, E::N_BUF elements each, declared ONCE by the
// caller with EDGELLM_EW_ROWS (decoder_layer.h decoder_layer; top.h edgellm_top_impl: one set for
// every layer and the final norm): EDGELLM_ACT_BIND (r0 ram_t2p: RoPE reads an element and its
// partner per bank per cycle; r1, r2, q ram_2p) and ARRAY_PARTITION cyclic factor E::PART; they are
// passed by reference to every stage. In hardware: 3 fp32 + 1 int8 memories of N_BUF elements in
// PART banks for the whole design (it was 12 fp32 + 3 int8, one set per stage function). Use per
// stage (a row is written before it is read within a token; nothing carries over between tokens
// or stages):
//   stage                    r0                 r1          r2                     q
//   norm_quantize            x                  -           rmsnorm(x)             quantize(.)
//   dequant_rope             dequantize(acc)    -           -                      -
//   glu_norm_quantize        g, then act(g)*u   u           rmsnorm(f, sub_g)      quantize(.)
//   residual_norm_quantize   dequantize(acc)    new h       rmsnorm(h, g)          quantize(.)
// RMSNorm gammas are not buffered: the scale pass reads g straight from its DDR pointer, VEC
// elements per cycle (numerics.h rmsnorm: y = (x * r) * g); a disabled norm reads no gamma.
//
// Width: every element pass handles E::VEC consecutive elements per cycle (an outer chunk loop at
// II=1 over ceil(n / VEC) chunks, an unrolled inner loop over the VEC lanes, guarded by < n). The
// DDR-facing passes (reading linear outputs, h, gammas and RoPE tables; writing q, h, out, taps)
// move VEC consecutive elements per iteration, so HLS widens their m_axi bursts. Rows are
// partitioned cyclic by VEC (PART; the RMSNorm sum of squares reads at most VEC elements per cycle,
// numerics.h LaneUnits). Element-wise results do not depend on VEC; the reductions keep the
// contract's order (sum of squares: lane_sum<LANES>'s per-lane order; absmax: VEC lane maxima,
// exact in any order).
//
// Cycles per token (c(m) = ceil(m / VEC), s(m) = ceil(m / U) + the halving tree, U = LaneUnits<LANES,
// VEC> (numerics.h lane_sum); pipeline fill left out; no per-call pass: there is no gamma load).
// DDR passes move at most the m_axi width per cycle (128 bits: 4 fp32), which the performance model
// applies; [ddr] marks the passes that touch DDR (the scale pass reads gamma there):
//   norm_quantize (norm)     load c(n) [ddr] + sumsq s(n) + scale c(n) [ddr: g] + absmax c(n)
//                            + round c(n) + store c(n) [ddr]
//   norm_quantize (no norm)  load c(n) [ddr] + absmax c(n) + round c(n) + store c(n) [ddr]
//   dequant_rope             load c(n) [ddr] + tables c(HEAD_DIM/2) [ddr] + rope/out c(n) [ddr]
//                            (n = heads*HEAD_DIM)
//   glu_norm_quantize        load g c(n) [ddr] + load u c(n) [ddr] + act c(n) [ddr when tapped]
//                            [+ sumsq s(n) + scale c(n) [ddr: sub_g] if sub_norm]
//                            + absmax c(n) + round c(n) + store c(n) [ddr]
//   residual_norm_quantize   load c(n) [ddr] + add c(n) [ddr: h] [+ sumsq s(n) + scale c(n) [ddr: g]
//                            + absmax c(n) + round c(n) + store c(n) [ddr] if next_norm]
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

// The rows every stage works on (see the header), declared once by the caller with EDGELLM_EW_ROWS
// and passed by reference to the stages (which run one at a time).
template <class E>
struct EwRows {
  f32 r0[E::N_BUF];    // first input row (x / dequantized linear output / g -> f); RoPE's source
  f32 r1[E::N_BUF];    // second row (u / the new h)
  f32 r2[E::N_BUF];    // normalized row (rmsnorm output)
  int8_t q[E::N_BUF];  // quantized row before it goes to DDR
};

// Declares the stages' shared rows `rows` (EwRows<E>; E: an EwConfig type name, not a dependent
// `typename C::ew`: typedef it first) with their storage and banking: r0 true dual port (RoPE reads
// two addresses per bank per cycle), r1, r2 and q simple dual port (at most one read and one write
// per bank per cycle), all bound to EDGELLM_ACT_STORAGE and cyclic by E::PART. Once per call site.
#define EDGELLM_EW_ROWS(E, rows)                                                                  \
  ::edgellm::EwRows<E> rows;                                                                      \
  EDGELLM_ACT_BIND(rows.r0, ram_t2p)                                                              \
  EDGELLM_ACT_BIND(rows.r1, ram_2p)                                                               \
  EDGELLM_ACT_BIND(rows.r2, ram_2p)                                                               \
  EDGELLM_ACT_BIND(rows.q, ram_2p)                                                                \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = rows.r0 type = cyclic factor = E::PART)           \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = rows.r1 type = cyclic factor = E::PART)           \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = rows.r2 type = cyclic factor = E::PART)           \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = rows.q type = cyclic factor = E::PART)

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

// (q, return qs) = quantize(rmsnorm(x, g)) when norm, else quantize(x); g: the gamma's DDR pointer
// (read by the scale pass only when norm); y: scratch row.
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
// Rows: x -> r0, rmsnorm -> r2, q.
template <class E>
void norm_quantize_tokens(const f32 *x, const f32 *g, bool norm, f32 eps, int n_tok, int n, int8_t *q,
                          f32 *qs, EwRows<E> &rows) {
  enum { N_MAX = E::N_MAX, VEC = E::VEC, kMaxTok = E::MAX_TOK };
ew_nq_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(x + (long)t * n, 1.0f, 1.0f, n, rows.r0);
    qs[t] = norm_quantize_row<E>(rows.r0, g, norm, eps, n, rows.r2, rows.q);
    store_q_row<N_MAX, VEC>(rows.q, n, q + (long)t * n);
  }
}

// (b1) out[t] = rope(dequantize(acc[t])) for each of n_heads heads of HEAD_DIM; tables are
// rope_tables(HEAD_DIM, max_pos): [max_pos][HEAD_DIM/2], row pos0 + t for token t. The rotation
// is computed on the way out (rope_row reads r0, writes out), so it costs no extra pass. r0 must be
// true dual port (each output reads its element and its rotation partner).
template <class E, int HEAD_DIM, class IN>
void dequant_rope_tokens(const IN *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                         const f32 *cos_tab, const f32 *sin_tab, f32 *out, EwRows<E> &rows) {
  enum {
    N_MAX = E::N_MAX, VEC = E::VEC, kMaxTok = E::MAX_TOK, H2 = HEAD_DIM / 2,
    TAB_PART = VEC < H2 ? VEC : H2, kTabChunks = (H2 + VEC - 1) / VEC
  };
  static_assert(HEAD_DIM >= 2 && (HEAD_DIM & (HEAD_DIM - 1)) == 0, "HEAD_DIM: a power of two");
  const int n = n_heads * HEAD_DIM;
  f32 cb[H2], sb[H2];  // this position's table rows (HEAD_DIM / 2 each)
#pragma HLS ARRAY_PARTITION variable = cb type = cyclic factor = TAB_PART
#pragma HLS ARRAY_PARTITION variable = sb type = cyclic factor = TAB_PART
ew_rope_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    load_linear_row<N_MAX, VEC>(acc + (long)t * n, qs[t], wscale, n, rows.r0);
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
    rope_row<HEAD_DIM, VEC>(rows.r0, cb, sb, n, out + (long)t * n);
  }
}

// (b2) f = act(dequantize(g_acc)) * dequantize(u_acc) (tap_en: also written to f_tap); then
// SubLN rmsnorm(f, sub_g) when sub_norm, and quantize -> q, qs_out for the down projection.
// Rows: g -> r0 (then f in place), u -> r1, SubLN -> r2, q.
template <class E, int ACT, class IN>
void glu_norm_quantize_tokens(const IN *g_acc, const IN *u_acc, const f32 *qs, f32 g_scale, f32 u_scale,
                              bool sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q,
                              f32 *qs_out, bool tap_en, f32 *f_tap, EwRows<E> &rows) {
  enum {
    N_MAX = E::N_MAX, VEC = E::VEC, kMaxTok = E::MAX_TOK, kChunks = (E::N_MAX + E::VEC - 1) / E::VEC
  };
  f32 *gb = rows.r0, *ub = rows.r1;
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
    qs_out[t] = norm_quantize_row<E>(gb, sub_g, sub_norm, eps, n, rows.r2, rows.q);
    store_q_row<N_MAX, VEC>(rows.q, n, q + (long)t * n);
  }
}

// (b3) h[t] = h[t] + dequantize(acc[t]) (residual, in place); then, when next_norm, the next
// block's input q, qs_out = quantize(rmsnorm(h[t], g)) from the on-chip copy of the new h.
// Rows: dequantized acc -> r0, new h -> r1, rmsnorm -> r2, q.
template <class E, class IN>
void residual_norm_quantize_tokens(const IN *acc, const f32 *qs, f32 wscale, f32 *h, bool next_norm,
                                   const f32 *g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out,
                                   EwRows<E> &rows) {
  enum {
    N_MAX = E::N_MAX, VEC = E::VEC, kMaxTok = E::MAX_TOK, kChunks = (E::N_MAX + E::VEC - 1) / E::VEC
  };
  f32 *yb = rows.r0, *hb = rows.r1;
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
      qs_out[t] = norm_quantize_row<E>(hb, g, true, eps, n, rows.r2, rows.q);
      store_q_row<N_MAX, VEC>(rows.q, n, q + (long)t * n);
    }
  }
}

}  // namespace edgellm
