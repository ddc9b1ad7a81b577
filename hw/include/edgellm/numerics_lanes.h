// edgellm numerics contract, C++ side: the lane reductions (docs/numerics.md "Reductions"; numpy twin:
// models/numerics.py) -- the pipelined adds' latencies, the element-wise engine's C-simulation loop
// trace, LaneUnits, the LaneRing delay line, lane_tree, lane_sum, RowFuse, max_tree and absmax. The
// scalar functions they build on are numerics_scalar.h's; numerics.h includes both.
#pragma once

#include "edgellm/hw_facts.h"
#include "edgellm/numerics_scalar.h"

namespace edgellm {

// Largest vector length the element-wise primitives see (FFN width of supported models); it only
// bounds LOOP_TRIPCOUNT for HLS reports.
const int kMaxVec = 16384;

// Cycles a pipelined fp32 add needs before its result can feed the next add into the same lane
// (Vitis HLS fadd at 250 MHz is 4-7 stages; kept at 8 so the schedule has slack).
const int kAddLatency = facts::kAddLatency;
// Cycles a recurrence through memory of a multiply then an add (y = y * c + p * v: the array's read,
// fmul 3-4 and fadd 4-7 stages at 250 MHz, the write) needs before the same element is updated again;
// kept at 16 so the schedule has slack. The attention core's o and l updates are such recurrences.
const int kMulAddLatency = facts::kMulAddLatency;

#ifndef __SYNTHESIS__
// C simulation only: trip counts of the pipelined loops the element-wise engine runs (elementwise.h
// ew_engine: its producing passes and RoPE table loop, and rmsnorm_scale, quantize_store, rope_row and
// lane_tree's levels below): iters = iterations (tree's included), loops = loop entries, tree = the
// lane_tree iterations alone; for tests/test_hw_elementwise.py to hold against the compiler's
// compiler/cost/elementwise.stage_counts. Read and reset by hw/tb/elementwise_tb.cpp tb_ew_trace.
struct ew_trace_t {
  long iters, loops, tree;
};
inline ew_trace_t &ew_trace() {
  static ew_trace_t t = {0, 0, 0};
  return t;
}
#define EDGELLM_EW_LOOP(n) (ew_trace().iters += (n), ew_trace().loops++)
#define EDGELLM_EW_TREE(n) (ew_trace().iters += (n), ew_trace().tree += (n), ew_trace().loops++)
#else
#define EDGELLM_EW_LOOP(n) ((void)0)
#define EDGELLM_EW_TREE(n) ((void)0)
#endif

// Adders of a lane reduction taking up to VEC elements per cycle: as many as keep every lane's
// consecutive adds kAddLatency cycles apart (one lane is hit every LANES / U cycles), so U <= LANES /
// kAddLatency, and at least 1 (then a lane is revisited sooner and the loop's II grows).
template <int LANES, int VEC>
struct LaneUnits {
  enum { kByLatency = LANES / kAddLatency > 1 ? LANES / kAddLatency : 1 };
  enum { value = VEC < kByLatency ? VEC : kByLatency };
};

// A lane reduction's accumulators as a delay line: LANES lanes in ROT = LANES / U sets of U lanes,
// lane i % LANES taking element i (the contract's lane). Iteration c adds its U consecutive elements
// c*U .. c*U + U - 1 into the U accumulators at the head of the line (positions 0 .. U-1, which hold
// the lanes of set c % ROT: (c % ROT) * U + u) and rotates the line by U, so those sums re-enter at the
// tail and are back at the head ROT iterations later. Every register is read and written at a fixed
// position (no index multiplexer, no dependence claim on registers): a lane's add feeds its next add
// through ROT register stages, ROT iterations later, so the loop keeps II = 1 when ROT >= kAddLatency
// (LaneUnits) and each lane sums its elements in index order from 0.0f. After a multiple of ROT
// iterations (iters() pads the loop) position k holds lane k again, ready for lane_tree.
template <int LANES, int U>
struct LaneRing {
  static_assert(U >= 1 && LANES % U == 0, "U divides LANES");
  enum { ROT = LANES / U };
  // Iterations of a loop over `chunks` chunks of U elements, padded to whole rotations.
  static int iters(int chunks) {
#pragma HLS INLINE
    return (chunks + ROT - 1) / ROT * ROT;
  }
  static void clear(f32 *acc) {
#pragma HLS INLINE
    for (int j = 0; j < LANES; j++) acc[j] = 0.0f;
  }
  // The head's accumulator u (u: an unrolled constant) takes v.
  static void add(f32 *acc, int u, f32 v) {
#pragma HLS INLINE
    acc[u] = acc[u] + v;
  }
  // End of an iteration: the line moves by U (the head's sets to the tail).
  static void rotate(f32 *acc) {
#pragma HLS INLINE
    f32 head[U];
    for (int u = 0; u < U; u++) head[u] = acc[u];
    for (int j = 0; j + U < LANES; j++) acc[j] = acc[j + U];
    for (int u = 0; u < U; u++) acc[LANES - U + u] = head[u];
  }
};

// One level of the contract's halving tree: dst[j] = src[j] + src[j + H] for j < H, one add per cycle
// (pipelined), then the next level on dst. Each level reads one register array and writes another,
// so no register is read after an add of the same loop wrote it (II = 1); the levels are distinct
// functions of the template (no recursion at run time).
template <int H>
struct LaneTreeLevel {
  static f32 run(const f32 *src) {
#pragma HLS INLINE
    f32 dst[H];
#pragma HLS ARRAY_PARTITION variable = dst complete
    EDGELLM_EW_TREE(H);
  tree:
    for (int j = 0; j < H; j++) {
#pragma HLS PIPELINE II = 1
      dst[j] = src[j] + src[j + H];
    }
    return LaneTreeLevel<H / 2>::run(dst);
  }
};
template <>
struct LaneTreeLevel<0> {
  static f32 run(const f32 *src) {
#pragma HLS INLINE
    return src[0];
  }
};

// The contract's halving tree over the lanes (acc[j] += acc[j + h], h = LANES/2 .. 1); returns
// acc[0] (acc itself is left as it was). Level h pipelined: sum over h of (h + kAddLatency) =
// LANES - 1 + log2(LANES) * kAddLatency.
template <int LANES>
inline f32 lane_tree(const f32 *acc) {
#pragma HLS INLINE
  static_assert(LANES >= 1 && (LANES & (LANES - 1)) == 0, "LANES: a power of two");
  return LaneTreeLevel<LANES / 2>::run(acc);
}

// Lane reduction: lane j sums x[j], x[j+L], ... (squared when SQUARE) in order from 0.0f; then
// lanes halve pairwise. LANES must be a power of two. n may be any length >= 0 (missing elements
// count as 0.0f; a lane starts at +0.0f and a sum of finite terms from +0.0f is never -0.0f, so
// not adding them is the same). Hardware: U = LaneUnits<LANES, VEC> adders (and multipliers when
// SQUARE) take U consecutive elements per cycle into a LaneRing (element i into lane i % LANES -- the
// contract's per-lane order). Cycles: ceil(ceil(n / U) / ROT) * ROT, ROT = LANES / U (II = 1 when
// ROT >= kAddLatency; the loop pads to whole rotations) + the halving tree, level h pipelined: sum
// over h of (h + kAddLatency) = LANES - 1 + log2(LANES) * kAddLatency.
// The element-wise stages do not run this pass: they feed the same lanes from inside the pass that
// produces the row (RowFuse below).
template <int LANES, bool SQUARE, int VEC = LANES>
f32 lane_sum(const f32 *x, int n) {
  enum { U = LaneUnits<LANES, VEC>::value };
  typedef LaneRing<LANES, U> RING;
  static_assert(LANES >= 1 && (LANES & (LANES - 1)) == 0, "LANES: a power of two");
  static_assert(VEC >= 1 && (VEC & (VEC - 1)) == 0, "VEC: a power of two");
  f32 acc[LANES];
#pragma HLS ARRAY_PARTITION variable = acc complete
  RING::clear(acc);
  const int iters = RING::iters((n + U - 1) / U);
chunk_loop:
  for (int c = 0; c < iters; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxVec / U
#pragma HLS PIPELINE II = 1
    for (int u = 0; u < U; u++) {
#pragma HLS UNROLL
      const int i = c * U + u;
      if (i < n) {
        const f32 v = x[i];
        RING::add(acc, u, SQUARE ? v * v : v);
      }
    }
    RING::rotate(acc);
  }
  return lane_tree<LANES>(acc);
}

template <int LANES, int VEC = LANES>
f32 reduce_sum(const f32 *x, int n) {
  return lane_sum<LANES, false, VEC>(x, n);
}

// Sum of squares with the same lane order as reduce_sum(x*x).
template <int LANES, int VEC = LANES>
f32 reduce_sumsq(const f32 *x, int n) {
  return lane_sum<LANES, true, VEC>(x, n);
}

// Max over W lane maxima (exact in any order).
template <int W>
inline f32 max_tree(f32 *m) {
#pragma HLS INLINE
  for (int h = W / 2; h >= 1; h /= 2) {
    for (int j = 0; j < h; j++) m[j] = m[j + h] > m[j] ? m[j + h] : m[j];
  }
  return m[0];
}

// Reductions fused into a pass that produces a row y[i] = f(i) in index order, W consecutive
// elements per cycle (iteration c: elements c*W .. c*W + W - 1), so the row costs no pass of its own:
//   sum of squares: SS when W is a LaneUnits width (W <= LANES / kAddLatency, or 1): W adders, element
//     i into lane i % LANES in index order from 0.0f through a LaneRing (the loop runs iters()
//     iterations: whole rotations), then lane_tree -- exactly lane_sum<LANES, true>'s order, at II = 1
//     with no dependence claim. A wider W (no SS) carries no sum of squares.
//   absmax: W lane maxima, then max_tree (absmax below; exact in any order).
// Use: f32 acc[ACC], m[W] (partitioned complete); clear(); per iteration add(...) for each of its
// elements then next(); finish().
// II: the loop's initiation interval (the element-wise engine's passes take one data beat of W elements
// per iteration at II = beat / width, ew_fused.h ew_fused_pass): a lane's adds are then ROT * II
// cycles apart, so a ring of ROT = LANES / W sets carries the sum of squares whenever W divides LANES
// (ROT * II >= kAddLatency keeps the II; LaneUnits widths at II = 1 are the classic case).
template <int LANES, int W, int II = 1>
struct RowFuse {
  static_assert(LANES >= 1 && (LANES & (LANES - 1)) == 0, "LANES: a power of two");
  static_assert(W >= 1 && (W & (W - 1)) == 0, "W: a power of two");
  enum { SS = LaneUnits<LANES, W>::value == W || (II > 1 && LANES % W == 0), ROT = SS ? LANES / W : 1,
         ACC = SS ? LANES : W };
  typedef LaneRing<ACC, W> RING;  // SS: LANES lanes in ROT sets of W; otherwise unused (ROT = 1)
  // Iterations of the pass over `chunks` chunks: whole rotations when it carries the sum of squares.
  static int iters(int chunks, bool ss_en) {
#pragma HLS INLINE
    return SS && ss_en ? RING::iters(chunks) : chunks;
  }
  static void clear(f32 *acc, f32 *m) {
#pragma HLS INLINE
    RING::clear(acc);
    for (int u = 0; u < W; u++) m[u] = 0.0f;
  }
  // Element c*W + u of this iteration, value v: its square into its lane (the ring's head accumulator
  // u) when ss_en (SS only), |v| into m[u] when am_en.
  static void add(f32 *acc, f32 *m, int u, f32 v, bool ss_en, bool am_en) {
#pragma HLS INLINE
    if (SS && ss_en) RING::add(acc, u, v * v);
    if (am_en) m[u] = abs_max_step(m[u], v);
  }
  // End of an iteration: the ring rotates (SS).
  static void next(f32 *acc) {
#pragma HLS INLINE
    if (SS) RING::rotate(acc);
  }
  // ss: the sum of squares (0.0f without SS); amax: the absmax (0.0f when nothing was added).
  static void finish(f32 *acc, f32 *m, bool ss_en, f32 &ss, f32 &amax) {
    ss = (SS && ss_en) ? lane_tree<ACC>(acc) : 0.0f;  // no tree when the pass carries no sum of squares
    amax = max_tree<W>(m);
  }
};

// The passes the element-wise engine runs over DDR (rmsnorm_scale, quantize_store, rope_row: one
// data beat per iteration) are in ew_passes.h; with rms_inv (numerics_scalar.h), lane_tree and
// max_tree they are inlined into the engine (elementwise.h ew_engine), so its operator limits
// (EwBudget) cover them and one set of units serves every stage.
// absmax below is VEC-wide (VEC: power of two, 1 = one element per cycle): an outer loop over
// ceil(n / VEC) chunks at II=1, an inner fully unrolled loop over the chunk's j < VEC lanes, element
// c*VEC + j guarded by < n. The elements are independent, so the width never changes a result.

// max(|x[i]|) over i < n, from 0.0f (NaN never wins a comparison): VEC lane maxima, then a max
// over the lanes (max is exact in any order; the docs/numerics.md contract). Cycles ceil(n / VEC).
template <int VEC = 1>
f32 absmax(const f32 *x, int n) {
  enum { kChunks = kMaxVec / VEC };
  f32 m[VEC];
#pragma HLS ARRAY_PARTITION variable = m complete
  for (int j = 0; j < VEC; j++) m[j] = 0.0f;
  const int chunks = (n + VEC - 1) / VEC;
quant_max:
  for (int c = 0; c < chunks; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
#pragma HLS PIPELINE II = 1
    for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
      const int i = c * VEC + j;
      if (i < n) m[j] = abs_max_step(m[j], x[i]);
    }
  }
  return max_tree<VEC>(m);
}

}  // namespace edgellm
