// The element-wise engine's passes over DDR operands (elementwise.h ew_engine inlines them), on
// (pointer, element offset) pairs: a plain array (testbenches, offset 0) or the top's data / act beats
// (maxi.h: ap_uint<B>, never cast). Each pass moves one whole data beat of its DDR operand per iteration
// (X = the beat's fields of the operand's type: PortBeat, 4 f32 or 16 int8 at 128 bits; plain arrays as
// 128-bit beats), X unrolled lanes guarded by < n, at II = X / VEC (1 when VEC >= X): a port moves one
// beat per cycle, and a row of whole beats costs ceil(n / X) * II = n / VEC cycles (n / X when VEC >= X:
// the data port's rate, as compiler/cost/elementwise.py charges every DDR pass). The elements are
// independent, so the width never changes a result. Callers partition the on-chip rows cyclic by VEC.
//   rmsnorm_scale    y = (x * r) * g (g: gamma from DDR, a beat per iteration), the absmax fused
//   quantize_store   q = quant_round(x, qs) to DDR (int8: a beat of X = 16 per iteration, any start:
//                    RowStore merges the partly covered edge beats)
//   rope_row         y = rope(x) to DDR (this position's tables on chip), a beat per iteration
//   ew_row_in        a table row (any start) from DDR into an on-chip array, a beat per iteration
// rmsnorm and quantize: the unfused reference forms (numerics testbench).
#pragma once

#include <cstdint>

#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

// Initiation interval of a pass that moves one beat of X fields per iteration at VEC elements per cycle.
template <int X, int VEC>
struct BeatII {
  enum { value = X > VEC ? X / VEC : 1 };
};

// RMSNorm's scale pass with the absmax fused: y[i] = (x[i] * r) * g[g_off + i] (y may be x: in place);
// returns max |y[i]| (absmax's rule: X lane maxima). One beat of g per iteration: ceil(n / X) * II cycles.
template <int VEC = 1, class PG>
f32 rmsnorm_scale(const f32 *x, const PG *g, long g_off, f32 r, int n, f32 *y) {
#pragma HLS INLINE
  enum { X = PortBeat<f32, PG>::E, kII = BeatII<X, VEC>::value, kChunks = kMaxVec / X };
  f32 m[X];
#pragma HLS ARRAY_PARTITION variable = m complete
  for (int j = 0; j < X; j++) m[j] = 0.0f;
  const int chunks = (n + X - 1) / X;
  EDGELLM_EW_LOOP(chunks * kII);
rmsnorm_scale:
  for (int c = 0; c < chunks; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
#pragma HLS PIPELINE II = kII
    f32 gb[X];
#pragma HLS ARRAY_PARTITION variable = gb complete
    chunk_get_upto<X>(g, g_off, c, n, gb);
    for (int j = 0; j < X; j++) {
#pragma HLS UNROLL
      const int i = c * X + j;
      if (i < n) {
        const f32 v = (x[i] * r) * gb[j];
        y[i] = v;
        m[j] = abs_max_step(m[j], v);
      }
    }
  }
  return max_tree<X>(m);
}

// RMSNorm: y = (x * (1 / sqrt(sum(x*x)/n + eps))) * g. Cycles: sum of squares (lane_sum with
// LaneUnits<LANES, VEC> adders, the contract's NORM_LANES order) + the scale pass.
template <int LANES, int VEC = 1>
void rmsnorm(const f32 *x, const f32 *g, f32 eps, int n, f32 *y) {
  const f32 r = rms_inv(reduce_sumsq<LANES, VEC>(x, n), n, eps);
  rmsnorm_scale<VEC>(x, g, 0L, r, n, y);
}

// Round + clamp + store: q[q_off + i] = quant_round(x[i], qs) for i < n, one whole int8 beat per
// iteration (X = 16 at 128 bits) at any start q_off (RowStore: the edge beats a row covers partly keep
// the other fields; plain arrays element by element). Cycles: the beats the row touches * II (ceil(n / X)
// * II for a row starting on a beat).
template <int VEC = 1, class PQ>
void quantize_store(const f32 *x, f32 qs, int n, PQ *q, long q_off) {
#pragma HLS INLINE
  enum { X = PortBeat<int8_t, PQ>::E, kII = BeatII<X, VEC>::value, kChunks = kMaxVec / X + 1 };
  RowStore<int8_t, PQ, 8 * X> st;
#pragma HLS ARRAY_PARTITION variable = st.v complete
  st.open(q, q_off, n);
  const int nb = st.beats();
  EDGELLM_EW_LOOP(nb * kII);
quant_round:
  for (int j = 0; j < nb; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
#pragma HLS PIPELINE II = kII
    for (int i = 0; i < X; i++) {
#pragma HLS UNROLL
      const int k = st.index(j, i);
      st.v[i] = k >= 0 && k < n ? quant_round(x[k], qs) : (int8_t)0;
    }
    st.put(q, j);
  }
}

// Per-token absmax int8: qs = 127 / max(absmax, 1e-5); q = clamp(rint(x * qs), -128, 127).
// Cycles: absmax ceil(n / VEC) + the round pass. (The element-wise stages fuse the absmax into the pass
// that produces x and call quantize_store directly.)
template <int VEC = 1>
f32 quantize(const f32 *x, int n, int8_t *q) {
  const f32 qs = quant_scale(absmax<VEC>(x, n));
  quantize_store<VEC>(x, qs, n, q, 0L);
  return qs;
}

// Rotate-half RoPE of a row of n / D heads of D values, out of place (y must not alias x), with
// this position's tables (D/2 each): for i < D/2 within a head, y[i] = x[i]*cos[i] - x[i+D/2]*sin[i]
// and y[i+D/2] = x[i+D/2]*cos[i] + x[i]*sin[i] (the contract's rope, same operations in the same
// order), y at element y_off of PY (a row starting on a beat), one beat of X outputs per iteration.
// Each output reads its element and its partner: x wants two read ports per bank. With D and VEC
// powers of two the partner of lane j sits in bank j (VEC <= D/2) or in a fixed other bank (VEC >= D),
// so cyclic partitions of x (by VEC) and of the tables (by min(VEC, D/2)) serve the beat's elements in
// II cycles. Cycles ceil(n / X) * II.
template <int D, int VEC = 1, class PY>
void rope_row(const f32 *x, const f32 *cos_t, const f32 *sin_t, int n, PY *y, long y_off) {
#pragma HLS INLINE
  enum { H = D / 2, X = PortBeat<f32, PY>::E, kII = BeatII<X, VEC>::value, kChunks = kMaxVec / X };
  const int chunks = (n + X - 1) / X;
  EDGELLM_EW_LOOP(chunks * kII);
rope_loop:
  for (int c = 0; c < chunks; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
#pragma HLS PIPELINE II = kII
    f32 v[X];
#pragma HLS ARRAY_PARTITION variable = v complete
    for (int j = 0; j < X; j++) {
#pragma HLS UNROLL
      const int i = c * X + j;
      const int r = i % D, k = r % H;
      f32 o = 0.0f;
      if (i < n) {
        // the rotation partner read once, at a selected index: two reads of x per lane (i and its
        // partner, both in lane j's bank when X divides H), not a select between two reads, which the
        // tool may schedule both of (three reads of a two-port bank: II > 1)
        const f32 p = x[r < H ? i + H : i - H];
        const f32 a = x[i] * cos_t[k], b = p * sin_t[k];
        o = r < H ? a - b : a + b;
      }
      v[j] = o;
    }
    chunk_put_upto<X>(y, y_off, c, n, v);
  }
}

// dst[0 .. n) <- elements [off, off + n) (n <= N) of a table row at any start, one beat per iteration at
// II = X / VEC: the beats the row touches (row_beats), each field placed at its row index. Plain arrays:
// ceil(n / X) chunks of X elements (a 128-bit beat's), the same loop. Cycles: beats * II.
template <int N, int VEC, int B>
void ew_row_in(const ap_uint<B> *m, long off, int n, f32 dst[N]) {
#pragma HLS INLINE
  enum { X = Beat<f32, B>::E, kII = BeatII<X, VEC>::value, kBeats = (N + X - 1) / X + 1 };
  const long b0 = off / X;
  const int s = (int)(off % X), nb = row_beats<f32, B>(off, n);
  EDGELLM_EW_LOOP(nb * kII);
ew_row_in_beats:
  for (int j = 0; j < nb; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
#pragma HLS PIPELINE II = kII
    const ap_uint<B> b = m[b0 + j];
    for (int i = 0; i < X; i++) {
#pragma HLS UNROLL
      const int k = j * X + i - s;
      if (k >= 0 && k < n) dst[k] = lane_get<f32>(b, i);
    }
  }
}
template <int N, int VEC>
void ew_row_in(const f32 *p, long off, int n, f32 dst[N]) {
#pragma HLS INLINE
  enum { X = PortBeat<f32, f32>::E, kII = BeatII<X, VEC>::value, kBeats = (N + X - 1) / X };
  const int nb = (n + X - 1) / X;
  EDGELLM_EW_LOOP(nb * kII);
ew_row_in_plain:
  for (int c = 0; c < nb; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
#pragma HLS PIPELINE II = kII
    f32 v[X];
    chunk_get_upto<X>(p, off, c, n, v);
    for (int i = 0; i < X; i++) {
#pragma HLS UNROLL
      if (c * X + i < n) dst[c * X + i] = v[i];
    }
  }
}

}  // namespace edgellm
