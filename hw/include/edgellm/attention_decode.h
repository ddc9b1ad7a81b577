// Decode attention: one new token (all query heads) against the layer's KV cache in DDR.
//
// Same numerics as prefill (attention_prefill.h header comment) with one query at position pos
// seeing keys 0..pos. There is no score buffer over the context: keys arrive in tiles of kv_block
// positions x n_kv heads (one contiguous DDR burst per position, layout in kv_cache.h) and the
// online softmax keeps only m, l and o per head, so the context is bounded by max_ctx alone. All
// query heads are the rows of one pass (row h reads tile head h / group), which interleaves
// independent heads in the pipelined key loop: each K/V tile is read from DDR exactly once per
// token.
#pragma once

#include "edgellm/attention_prefill.h"

namespace edgellm {

template <class C>
void attn_decode_compute(const f32 *q, f32 *out, int pos, int n_heads, int grp, int n_kv, int d,
                         f32 scale, hls::stream<f32_beat<C::mem_lanes> > &ks,
                         hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ROWS = C::heads_max, D = C::d_max;
  f32 qb[ROWS][D], ob[ROWS][D];
#pragma HLS ARRAY_PARTITION variable = qb dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = ob dim = 2 complete
  int row_pos[ROWS], row_kv[ROWS];
dec_load_q:
  for (int h = 0; h < n_heads; h++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::heads_max
    for (int i = 0; i < d; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::d_max
#pragma HLS PIPELINE II = 1
      qb[h][i] = q[(long)h * d + i];
    }
    row_pos[h] = pos;
    row_kv[h] = h / grp;
  }
  attn_rows<C, ROWS, C::kv_heads_max>(qb, row_pos, row_kv, n_heads, n_kv, pos + 1, d, scale, ks,
                                      vs, ob);
dec_store_o:
  for (int h = 0; h < n_heads; h++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::heads_max
    for (int i = 0; i < d; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::d_max
#pragma HLS PIPELINE II = 1
      out[(long)h * d + i] = ob[h][i];
    }
  }
}

// Decode attention.
//   q:       [n_heads][head_dim]  the token's roped queries at position pos
//   k_layer, v_layer: this layer's cache slice [pos][n_kv][head_dim] of KT (f32 or f16, widened on
//            read; kv_cache.h), positions 0..pos written
//   out:     [n_heads][head_dim]
//   scale:   float(1/sqrt(head_dim)) from the host
template <class C, class KT>
void attention_decode(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int pos,
                      int n_heads, int n_kv, int head_dim, f32 scale) {
#pragma HLS DATAFLOW
#ifndef __SYNTHESIS__
  assert(head_dim >= 1 && head_dim <= C::d_max && n_heads <= C::heads_max);
  assert(n_kv >= 1 && n_kv <= C::kv_heads_max && n_heads % n_kv == 0);
  assert(pos >= 0 && pos < C::max_ctx);
#endif
  hls::stream<f32_beat<C::mem_lanes> > ks("dec_ks"), vs("dec_vs");
#pragma HLS STREAM variable = ks depth = C::kv_block * C::kv_heads_max * C::beats_max
#pragma HLS STREAM variable = vs depth = C::kv_block * C::kv_heads_max * C::beats_max
  attn_kv_reader<C>(k_layer, v_layer, pos + 1, 0, n_kv, n_kv, head_dim, ks, vs);
  attn_decode_compute<C>(q, out, pos, n_heads, n_heads / n_kv, n_kv, head_dim, scale, ks, vs);
}

}  // namespace edgellm
