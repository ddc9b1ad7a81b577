// edgellm numerics contract, C++ side (docs/numerics.md; numpy twin: models/numerics.py).
//
// Every function is a fixed sequence of IEEE-754 binary32 operations. Built with
// -ffp-contract=off (no FMA contraction) and without -ffast-math, C simulation reproduces the
// golden model bit for bit. Constants are written as (float)<double literal>, which rounds the
// same way numpy's np.float32(<python float>) does. Synthesizable: no libm transcendental is used
// except sqrt (IEEE correctly rounded in both C and Vitis HLS's hls::sqrt for float).
#pragma once

#include <cmath>
#include <cstdint>

#include "edgellm/hw_facts.h"

// Storage of the element-wise row buffers (elementwise.h): bram (default) or uram, chosen per design
// by the compiler (edgellm_config.h defines EDGELLM_ACT_STORAGE before including the kernels). A
// BIND_STORAGE impl must be a literal, so the pragma is built with _Pragma from the macro (the Vitis
// HLS idiom for parameterized pragmas).
#ifndef EDGELLM_ACT_STORAGE
#define EDGELLM_ACT_STORAGE bram
#endif
#define EDGELLM_PRAGMA_STR(x) _Pragma(#x)
#define EDGELLM_PRAGMA(x) EDGELLM_PRAGMA_STR(x)
#define EDGELLM_ACT_BIND(var, kind) \
  EDGELLM_PRAGMA(HLS BIND_STORAGE variable = var type = kind impl = EDGELLM_ACT_STORAGE)

namespace edgellm {

typedef float f32;

const f32 kRintMagic = (f32)12582912.0;  // 1.5 * 2^23
const f32 kLog2e = (f32)1.44269504088896341;
const f32 kLn2Hi = (f32)0.693359375;  // Cody-Waite: k * kLn2Hi exact for |k| < 2^11
const f32 kLn2Lo = (f32)-2.12194440e-4;
const f32 kExpLo = (f32)-87.0;
const f32 kExpHi = (f32)88.0;
const f32 kQmax = (f32)127.0;
const f32 kAbsmaxFloor = (f32)1e-5;
// Largest vector length the element-wise primitives see (FFN width of supported models); it only
// bounds LOOP_TRIPCOUNT for HLS reports.
const int kMaxVec = 16384;

// Round half to even for |x| < 2^22: the addition rounds in the FPU's default mode.
inline f32 rint_f(f32 x) {
  f32 t = x + kRintMagic;
  return t - kRintMagic;
}

inline f32 float_from_bits(uint32_t b) {
  union { uint32_t u; f32 f; } v;
  v.u = b;
  return v.f;
}

inline f32 pos_inf() { return float_from_bits(0x7f800000u); }

inline uint32_t bits_from_float(f32 x) {
  union { uint32_t u; f32 f; } v;
  v.f = x;
  return v.u;
}

// IEEE binary16 storage (the f16 KV cache): a bit pattern, never computed with. Conversions are
// integer bit manipulation only (no _Float16, no hls::half), so C simulation and synthesis agree.
typedef uint16_t f16;

// f32 -> f16, round to nearest even; |x| >= 65520 -> +/-inf; results below 2^-14 are binary16
// subnormals (ties to even down to 2^-25, which rounds to +/-0); NaN keeps the top 10 payload bits
// (forced nonzero). Bit for bit numpy's astype(np.float16) (npy_floatbits_to_halfbits).
inline f16 f32_to_f16(f32 x) {
  const uint32_t u = bits_from_float(x);
  const uint32_t sgn = (u >> 16) & 0x8000u;
  const uint32_t e = u & 0x7f800000u;  // exponent field in place
  const uint32_t m = u & 0x007fffffu;
  if (e >= 0x47800000u) {  // |x| >= 2^16, inf or NaN
    if (e == 0x7f800000u && m != 0) {
      uint32_t h = 0x7c00u + (m >> 13);
      if (h == 0x7c00u) h = 0x7c01u;  // keep it a NaN
      return (f16)(sgn | h);
    }
    return (f16)(sgn | 0x7c00u);
  }
  if (e <= 0x38000000u) {  // |x| < 2^-14 (exponent <= -15): binary16 subnormal or zero
    if (e < 0x33000000u) return (f16)sgn;  // |x| < 2^-25: rounds to zero
    const uint32_t sh = 113u - (e >> 23);  // 1 .. 11
    uint32_t sig = (0x00800000u | m) >> sh;
    // round half to even: add half an ulp unless an exact tie with an even result; the bits the
    // shift dropped (within the low 11 of m) break ties upward
    if ((sig & 0x3fffu) != 0x1000u || (m & 0x7ffu) != 0) sig += 0x1000u;
    return (f16)(sgn | (sig >> 13));  // a carry into the exponent gives the right normal
  }
  uint32_t sig = m;
  if ((sig & 0x3fffu) != 0x1000u) sig += 0x1000u;  // round half to even
  // exponent rebias 127 -> 15; a rounding carry increments the exponent (up to inf: correct)
  return (f16)(sgn | (((e - 0x38000000u) >> 13) + (sig >> 13)));
}

// f16 -> f32, exact (every binary16 value, subnormals and NaN payloads included, is a binary32).
inline f32 f16_to_f32(f16 h) {
  const uint32_t sgn = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = h & 0x7c00u;
  uint32_t m = h & 0x03ffu;
  if (e == 0x7c00u) return float_from_bits(sgn | 0x7f800000u | (m << 13));  // inf, NaN
  if (e != 0) return float_from_bits(sgn | (((e >> 10) + 112u) << 23) | (m << 13));
  if (m == 0) return float_from_bits(sgn);  // +/-0
  // subnormal m * 2^-24: normalize (m < 2^10, so at most 10 shifts)
  uint32_t ex = 113u;
f16_norm:
  for (int i = 0; i < 10; i++) {
    if ((m & 0x0400u) == 0) {
      m <<= 1;
      ex--;
    }
  }
  return float_from_bits(sgn | (ex << 23) | ((m & 0x03ffu) << 13));
}

// KV cache element traits: the stored type T, how a value is written (narrowed) and read (widened).
template <class T>
struct kv_elem;
template <>
struct kv_elem<f32> {
  static f32 store(f32 x) { return x; }
  static f32 load(f32 x) { return x; }
};
template <>
struct kv_elem<f16> {
  static f16 store(f32 x) { return f32_to_f16(x); }
  static f32 load(f16 b) { return f16_to_f32(b); }
};

// The contract's exp: clamp, k = rint(x*log2e), r = (x - k*ln2hi) - k*ln2lo,
// p = Horner(1/720, 1/120, 1/24, 1/6, 1/2, 1, 1), result = p * 2^k.
inline f32 exp_f(f32 x) {
  if (x < kExpLo) return 0.0f;
  if (x > kExpHi) return pos_inf();
  f32 k = rint_f(x * kLog2e);
  f32 r = x - k * kLn2Hi;
  r = r - k * kLn2Lo;
  f32 p = (f32)(1.0 / 720);
  p = p * r + (f32)(1.0 / 120);
  p = p * r + (f32)(1.0 / 24);
  p = p * r + (f32)(1.0 / 6);
  p = p * r + (f32)0.5;
  p = p * r + (f32)1.0;
  p = p * r + (f32)1.0;
  int ki = (int)k;  // in [-126, 127] after the clamp
  f32 scale = float_from_bits((uint32_t)(ki + 127) << 23);
  return p * scale;
}

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

// m = max(m, |x|) (NaN never wins a comparison; |-0| compares equal to 0 and does not win).
inline f32 abs_max_step(f32 m, f32 x) {
  const f32 a = x < 0.0f ? -x : x;
  return a > m ? a : m;
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
// data beat per iteration) are in ew_passes.h; with rms_inv, lane_tree and max_tree they are inlined
// into the engine (elementwise.h ew_engine), so its operator limits (EwBudget) cover them and one set
// of units serves every stage.
// absmax below is VEC-wide (VEC: power of two, 1 = one element per cycle): an outer loop over
// ceil(n / VEC) chunks at II=1, an inner fully unrolled loop over the chunk's j < VEC lanes, element
// c*VEC + j guarded by < n. The elements are independent, so the width never changes a result.

// RMSNorm's scalar: r = 1 / sqrt(ss / n + eps) (two divisions: in the element-wise engine they share
// its dividers, elementwise.h EwBudget).
inline f32 rms_inv(f32 ss, int n, f32 eps) {
#pragma HLS INLINE
  const f32 ms = ss / (f32)n;
  return 1.0f / std::sqrt(ms + eps);
}

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

// Per-token quantization scale from the row's absmax: qs = 127 / max(absmax, 1e-5).
inline f32 quant_scale(f32 amax) { return kQmax / (amax > kAbsmaxFloor ? amax : kAbsmaxFloor); }

// q = clamp(rint(x * qs), -128, 127) as int8.
inline int8_t quant_round(f32 x, f32 qs) {
  f32 v = rint_f(x * qs);
  v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
  return (int8_t)v;
}

// Dequantize an exact integer accumulator: y = float(acc) / (qs * wscale).
inline f32 dequantize(int32_t acc, f32 qs, f32 wscale) { return (f32)acc / (qs * wscale); }

inline f32 relu2(f32 x) {
  f32 r = x > 0.0f ? x : 0.0f;
  return r * r;
}

inline f32 silu(f32 x) { return x / (1.0f + exp_f(-x)); }

}  // namespace edgellm
