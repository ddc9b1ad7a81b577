// KV cache in DDR: layout, addressing and the write performed after the K/V projections + RoPE.
//
// Layout (one region for K and one for V, identical shape; numpy twin: golden.KVCache):
//
//   cache[layer][pos][kv_head][head_dim]        element type KT, C order
//   element (l, p, h, i) at offset ((l * max_ctx + p) * n_kv + h) * head_dim + i
//
// so one position of one layer is n_kv * head_dim contiguous elements (a single AXI burst in the
// decode kernel), and the keys of one KV head form a stride-(n_kv*head_dim) sequence of rows of
// head_dim elements (prefill reads them per KV head). The attention kernels receive the pointer to
// the layer's slice (cache + layer * max_ctx * n_kv * head_dim). Positions 0..length-1 are valid;
// the layer writes positions pos0..pos0+T-1 before attention reads 0..pos0+T-1.
//
// The element type KT is the numerics plan's kv_dtype (layer_traits::kv_t): f32 (writing is an
// exact copy) or f16 (binary16 bit patterns: numerics_scalar.h f32_to_f16, round to nearest even, on
// write; exact f16_to_f32 widening when the attention kernels read). kv_elem<KT> does both.
#pragma once

#include <cstdint>

#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

// Offset in elements of (layer, pos, kv_head, 0).
inline long kv_offset(int layer, int pos, int kv_head, int max_ctx, int n_kv, int head_dim) {
  return ((long)layer * max_ctx + pos) * (long)n_kv * head_dim + (long)kv_head * head_dim;
}

// Elements in one layer's K (or V) slice.
inline long kv_layer_size(int max_ctx, int n_kv, int head_dim) {
  return (long)max_ctx * n_kv * head_dim;
}

// A run of n f32 values at element s_off of src copied as KT to element d_off of dst (kv_elem<KT>::store),
// one destination beat per cycle (the data port's DB bits: E = DB / bits(KT) fields; both offsets and n
// whole beats): f32 one source beat per destination beat (II 1); f16 two source beats per destination
// beat (II 2: the act port still moves one beat a cycle). Cycles n / (DB / 32) either way.
template <int DB, class KT>
struct KvRowCopy;
template <int DB>
struct KvRowCopy<DB, f32> {
  enum { E = DB / 32 };
  template <class PS, class PD>
  static void run(const PS *src, long s_off, PD *dst, long d_off, long n) {
#pragma HLS INLINE
    enum { kMax = (1L << 24) / E };
  kv_copy_f32:
    for (long c = 0; c < n / E; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
#pragma HLS PIPELINE II = 1
      f32 v[E];
#pragma HLS ARRAY_PARTITION variable = v complete
      chunk_get<E>(src, s_off, c, v);
      chunk_put<E>(dst, d_off, c, v);
    }
  }
};
template <int DB>
struct KvRowCopy<DB, f16> {
  enum { E = DB / 16, ES = DB / 32 };
  template <class PS, class PD>
  static void run(const PS *src, long s_off, PD *dst, long d_off, long n) {
#pragma HLS INLINE
    enum { kMax = (1L << 24) / E };
  kv_copy_f16:
    for (long c = 0; c < n / E; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMax
#pragma HLS PIPELINE II = 2
      f32 a[ES], b[ES];
      f16 v[E];
#pragma HLS ARRAY_PARTITION variable = a complete
#pragma HLS ARRAY_PARTITION variable = b complete
#pragma HLS ARRAY_PARTITION variable = v complete
      chunk_get<ES>(src, s_off, 2 * c, a);
      chunk_get<ES>(src, s_off, 2 * c + 1, b);
      for (int i = 0; i < ES; i++) {
#pragma HLS UNROLL
        v[i] = kv_elem<f16>::store(a[i]);
        v[ES + i] = kv_elem<f16>::store(b[i]);
      }
      chunk_put<E>(dst, d_off, c, v);
    }
  }
};

// Write T new positions of one layer: the rows k, v ([T][row_len] f32 at element offsets k_src, v_src of
// ks / vs) into positions pos0 .. pos0 + T - 1 of the layer's K and V slices (element offsets k_dst /
// v_dst of kd / vd), each value narrowed to KT on the way. The rows of consecutive tokens and positions
// are contiguous on both sides, so K is one run of T * row_len values (one burst, KvRowCopy) and V
// another: 2 * T * row_len / (DB / 32) cycles. row_len: a multiple of the data beat's KT fields.
template <int DB, class KT, class PS, class PD>
void kv_cache_write(const PS *ks, long k_src, const PS *vs, long v_src, int t_len, int pos0, int row_len,
                    PD *kd, long k_dst, PD *vd, long v_dst) {
  const long n = (long)t_len * row_len, at = (long)pos0 * row_len;
  KvRowCopy<DB, KT>::run(ks, k_src, kd, k_dst + at, n);
  KvRowCopy<DB, KT>::run(vs, v_src, vd, v_dst + at, n);
}

}  // namespace edgellm
