// The element-wise engine's fused producing passes (elementwise.h ew_engine inlines them; testbenches
// call them directly): one data beat of their DDR operands per iteration (ew_fused_pass), the row's
// sum of squares or absmax carried in the same loop (numerics_lanes.h RowFuse):
//   ew_load_pass       row = linear_value(a) (a linear output, x or h) from DDR
//   ew_glu_pass        row = act(row) * linear_value(u), u from DDR, the f tap to DDR
//   ew_residual_pass   h += row in DDR, row = the new h
// On (pointer, element offset) pairs: plain arrays (testbenches) or the top's data / act beats (maxi.h).
#pragma once

#include <cstdint>

#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

enum GateAct { kActRelu2 = 0, kActSilu = 1 };  // same values as the layer's ACT_RELU2 / ACT_SILU

// One linear-output element: an exact accumulator is dequantized, an fp32 value (already
// dequantized by tlmm_matmul, or any fp32 activation) is taken as it is.
inline f32 linear_value(int32_t acc, f32 qs, f32 wscale) { return dequantize(acc, qs, wscale); }
inline f32 linear_value(f32 y, f32, f32) { return y; }

// Fused producing passes. Each writes a row in index order and carries the reductions the next pass
// needs (numerics_lanes.h RowFuse): the sum of squares when ss_en (W = U = LaneUnits<LANES, VEC>: the
// contract's lane order) or the absmax when am_en. ss and amax come back through the references (0.0f
// when not carried). The engine picks the width W: U when the pass carries the sum of squares, else VEC
// (one loop when U = VEC). Inlined into the engine (its operator limits cover them); testbenches also
// call them directly.

// The skeleton every producing pass shares: one data beat of its DDR operands per iteration (X = the
// beat's 32-bit fields: PortBeat, 4 at 128 bits; plain arrays as 128-bit beats), X unrolled lanes guarded
// by < n, at II = X / W (II = 1 when W >= X: a pass never moves more than a beat per port and cycle), so
// the row costs ceil(n / X) * II = n / W cycles for rows of whole beats, as before the ports were beats.
// Per iteration op.load(c) reads beat c of the pass's DDR inputs (in the padding iterations of the lane
// ring, the last beat again: every read unconditional), lane u's value v = op(u, i) goes into the
// reductions (RowFuse<LANES, X, II>: the ring takes X lanes per iteration, a lane's adds LANES / X * II =
// LANES / W >= kAddLatency cycles apart), and op.store(c) writes the pass's DDR outputs of beat c (not in
// the padding iterations).
template <class E, int W, int X, class OP>
void ew_fused_pass(OP &op, int n, bool ss_en, bool am_en, f32 &ss, f32 &amax) {
#pragma HLS INLINE
  enum { kII = X > W ? X / W : 1 };
  static_assert(E::LANES % X == 0, "NORM_LANES: a multiple of the data beat's 32-bit fields (the lane ring takes "
                                   "one beat per iteration)");
  typedef RowFuse<E::LANES, X, kII> RF;
  enum { kRot = RF::ROT, kChunks = ((E::N_MAX + X - 1) / X + kRot - 1) / kRot * kRot };
  f32 acc[RF::ACC], m[X];
#pragma HLS ARRAY_PARTITION variable = acc complete
#pragma HLS ARRAY_PARTITION variable = m complete
  RF::clear(acc, m);
  const int nb = (n + X - 1) / X;
  const int iters = RF::iters(nb, ss_en);  // whole rotations of the lane ring
  EDGELLM_EW_LOOP(iters * kII);
ew_fused:
  for (int c = 0; c < iters; c++) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
    op.load(c < nb ? c : nb - 1);
    for (int u = 0; u < X; u++) {
#pragma HLS UNROLL
      const int i = c * X + u;
      if (i < n) RF::add(acc, m, u, op(u, i), ss_en, am_en);
    }
    if (c < nb) op.store(c);
    RF::next(acc);
  }
  RF::finish(acc, m, ss_en, ss, amax);
}

// row[i] = linear_value(src[off + i], qs, ws): the row loaded from DDR (with neither reduction it is the
// plain load of a linear output, W = VEC). PA: a plain IN array or the act port's beats (maxi.h).
template <class IN, class PA>
struct EwLoadOp {
  enum { X = PortBeat<IN, PA>::E };
  const PA *src;
  long off;
  int n;
  f32 qs, ws, *row;
  IN b[X];  // this iteration's beat
  void load(int c) {
#pragma HLS INLINE
    chunk_get_upto<X>(src, off, c, n, b);
  }
  f32 operator()(int u, int i) {
#pragma HLS INLINE
    const f32 v = linear_value(b[u], qs, ws);
    row[i] = v;
    return v;
  }
  void store(int) {}
};

// row[i] = act(row[i]) * linear_value(u_src[u_off + i], qs, us), in place over the gate row (u read
// straight from DDR, a beat per iteration), also written to tap[tap_off + i] when tap_en (a beat per
// iteration).
template <int ACT, class IN, class PA, class PD>
struct EwGluOp {
  enum { X = PortBeat<IN, PA>::E };
  static_assert((int)PortBeat<f32, PD>::E == (int)X, "u and the tap: one beat of 32-bit fields each");
  const PA *u_src;
  long u_off;
  int n;
  f32 qs, us, *row;
  bool tap_en;
  PD *tap;
  long tap_off;
  IN b[X];  // this iteration's beat of u
  f32 f[X];  // and of the tap
  void load(int c) {
#pragma HLS INLINE
    chunk_get_upto<X>(u_src, u_off, c, n, b);
  }
  f32 operator()(int u, int i) {
#pragma HLS INLINE
    const f32 a = ACT == kActRelu2 ? relu2(row[i]) : silu(row[i]);
    const f32 v = a * linear_value(b[u], qs, us);
    row[i] = v;
    f[u] = v;
    return v;
  }
  void store(int c) {
#pragma HLS INLINE
    if (tap_en) chunk_put_upto<X>(tap, tap_off, c, n, f);
  }
};

// h[off + i] = h[off + i] + row[i] (residual, in place in DDR: a beat read and written per iteration)
// and row[i] = the new h.
template <class PD>
struct EwResidualOp {
  enum { X = PortBeat<f32, PD>::E };
  PD *h;
  long off;
  int n;
  f32 *row;
  f32 b[X];  // this iteration's beat of h
  void load(int c) {
#pragma HLS INLINE
    chunk_get_upto<X>(h, off, c, n, b);
  }
  f32 operator()(int u, int i) {
#pragma HLS INLINE
    const f32 v = b[u] + row[i];
    b[u] = v;
    row[i] = v;
    return v;
  }
  void store(int c) {
#pragma HLS INLINE
    chunk_put_upto<X>(h, off, c, n, b);
  }
};

template <class E, int W, class IN, class PA>
void ew_load_pass(const PA *src, long off, f32 qs, f32 ws, int n, f32 *row, bool ss_en, bool am_en, f32 &ss,
                  f32 &amax) {
#pragma HLS INLINE
  typedef EwLoadOp<IN, PA> OP;
  OP op;
#pragma HLS ARRAY_PARTITION variable = op.b complete
  op.src = src, op.off = off, op.n = n, op.qs = qs, op.ws = ws, op.row = row;
  ew_fused_pass<E, W, OP::X>(op, n, ss_en, am_en, ss, amax);
}

template <class E, int W, int ACT, class IN, class PA, class PD>
void ew_glu_pass(const PA *u_src, long u_off, f32 qs, f32 us, int n, f32 *row, bool tap_en, PD *tap,
                 long tap_off, bool ss_en, bool am_en, f32 &ss, f32 &amax) {
#pragma HLS INLINE
  typedef EwGluOp<ACT, IN, PA, PD> OP;
  OP op;
#pragma HLS ARRAY_PARTITION variable = op.b complete
#pragma HLS ARRAY_PARTITION variable = op.f complete
  op.u_src = u_src, op.u_off = u_off, op.n = n, op.qs = qs, op.us = us, op.row = row, op.tap_en = tap_en;
  op.tap = tap, op.tap_off = tap_off;
  ew_fused_pass<E, W, OP::X>(op, n, ss_en, am_en, ss, amax);
}

// (+ sum of squares when ss_en; no absmax)
template <class E, int W, class PD>
void ew_residual_pass(PD *h, long off, int n, f32 *row, bool ss_en, f32 &ss) {
#pragma HLS INLINE
  typedef EwResidualOp<PD> OP;
  OP op;
#pragma HLS ARRAY_PARTITION variable = op.b complete
  op.h = h, op.off = off, op.n = n, op.row = row;
  f32 unused;
  ew_fused_pass<E, W, OP::X>(op, n, ss_en, false, ss, unused);
}

}  // namespace edgellm
