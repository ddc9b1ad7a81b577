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
// The element type KT is the numerics plan's kv_dtype (layer_config::kv_t): f32 (writing is an
// exact copy) or f16 (binary16 bit patterns: numerics.h f32_to_f16, round to nearest even, on
// write; exact f16_to_f32 widening when the attention kernels read). kv_elem<KT> does both.
#pragma once

#include <cstdint>

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

// Write T new positions of one layer: k, v are [T][n_kv*head_dim] (contiguous rows, as the
// projections produce them); k_layer/v_layer point at the layer's slice. One burst per position,
// VEC consecutive elements per cycle (row_len need not be a multiple of VEC): ceil(row_len / VEC)
// cycles per position. Each value is narrowed to KT on the way (kv_elem<KT>::store).
template <int MAX_T, int ROW_MAX, class KT, int VEC = 1>
void kv_cache_write(const f32 *k, const f32 *v, int t_len, int pos0, int row_len, KT *k_layer,
                    KT *v_layer) {
  static_assert(VEC >= 1 && (VEC & (VEC - 1)) == 0, "VEC: a power of two");
  enum { kChunks = (ROW_MAX + VEC - 1) / VEC };
  const int chunks = (row_len + VEC - 1) / VEC;
kv_write_tok:
  for (int t = 0; t < t_len; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_T
    long base = (long)(pos0 + t) * row_len;
  kv_write_row:
    for (int c = 0; c < chunks; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
#pragma HLS PIPELINE II = 1
      for (int j = 0; j < VEC; j++) {
#pragma HLS UNROLL
        const int i = c * VEC + j;
        if (i < row_len) {
          k_layer[base + i] = kv_elem<KT>::store(k[(long)t * row_len + i]);
          v_layer[base + i] = kv_elem<KT>::store(v[(long)t * row_len + i]);
        }
      }
    }
  }
}

}  // namespace edgellm
