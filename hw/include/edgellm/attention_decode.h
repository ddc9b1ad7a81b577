// Decode attention: one new token (all query heads) against the layer's KV cache in DDR.
//
// Same numerics as prefill (attention_prefill.h header comment) with one query at position pos
// seeing keys 0..pos. There is no score buffer over the context: keys arrive in tiles of kv_block
// positions x n_kv heads (one contiguous DDR burst per position, layout in kv_cache.h) and the
// online softmax keeps only m, l and o per head, so the context is bounded by max_ctx alone. All
// query heads are the rows of one pass (row h reads tile head h / group), which interleaves
// independent heads in the pipelined key loop: each K/V tile is read from DDR exactly once per
// token. Lanes, operators and cycles: attention_prefill.h header; for decode, with R = n_heads,
// nr = max(n_heads, min_rows), nc = ceil(d / dot_lanes), nb = ceil(d / mem_lanes), n = pos + 1:
//   2 n_heads d + n n_kv nb + 2 n nc nr + ceil(n / kv_block) n_heads nc  cycles (+ pipeline fills).
// attention_decode_ports feeds the same core through a merge of one merged beat per cycle, so its
// K/V load term is the same when the ports keep up.
#pragma once

#include "edgellm/attention_prefill.h"

namespace edgellm {

// Compute process of decode: load the token's query heads (one element per cycle), attend,
// normalize and store. Cycles: attention_prefill.h header with R = n_heads, th = n_kv,
// n_keys = pos + 1.
template <class C>
void attn_decode_compute(const f32 *q, f32 *out, int pos, int n_heads, int grp, int n_kv, int d,
                         f32 scale, hls::stream<f32_beat<C::mem_lanes> > &ks,
                         hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ROWS = C::heads_max;
  f32 qb[ROWS][C::dp];
#pragma HLS ARRAY_PARTITION variable = qb dim = 2 cyclic factor = C::dot_lanes
  int row_pos[ROWS], row_kv[ROWS];
  long row_out[ROWS];
  // (head, element) flattened; head h reads KV head h / grp
  int h = 0, kv = 0, g = 0, i = 0;
dec_load_q:
  for (int it = 0; it < n_heads * d; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::heads_max * C::d_max
#pragma HLS PIPELINE II = 1
    qb[h][i] = q[(long)h * d + i];
    if (i == 0) {
      row_pos[h] = pos;
      row_kv[h] = kv;
      row_out[h] = (long)h * d;
    }
    if (++i == d) {
      i = 0;
      h++;
      if (++g == grp) {
        g = 0;
        kv++;
      }
    }
  }
  attn_rows<C, ROWS, C::kv_heads_max>(qb, row_pos, row_kv, row_out, n_heads, pos, n_kv, pos + 1, d,
                                      scale, ks, vs, out);
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

// Reader of weight port p of NP (decode over the weight ports): KV heads p, p + NP, ... of every
// position 0..n_pos-1, as attn_kv_reader's beats. p >= NP (an unused slot) reads nothing.
template <class C, class KT>
void attn_kv_port_reader(const KT *k_layer, const KT *v_layer, int n_pos, int p, int np, int n_kv,
                         int d, hls::stream<f32_beat<C::mem_lanes> > &ks,
                         hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ML = C::mem_lanes;
  const int nb = (d + ML - 1) / ML;
  const int h0 = p < np ? p : n_kv;
prd_pos:
  for (int pp = 0; pp < n_pos; pp++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx
  prd_head:
    for (int hh = h0; hh < n_kv; hh += np) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::kv_heads_max
    prd_beat:
      for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::beats_max
#pragma HLS PIPELINE II = 1
        long base = ((long)pp * n_kv + hh) * d + (long)b * ML;
        f32_beat<ML> kb, vb;
        read_kv_beat<ML, KT>(k_layer, v_layer, base, b, d, kb, vb);
        ks.write(kb);
        vs.write(vb);
      }
    }
  }
}

// Merge of the port streams into attn_kv_reader's order (position, head, beat): head h comes from
// port h % np, so the compute sees exactly the single-port sequence.
template <class C>
void attn_kv_merge(int n_pos, int n_kv, int np, int d, hls::stream<f32_beat<C::mem_lanes> > &k0,
                   hls::stream<f32_beat<C::mem_lanes> > &v0, hls::stream<f32_beat<C::mem_lanes> > &k1,
                   hls::stream<f32_beat<C::mem_lanes> > &v1, hls::stream<f32_beat<C::mem_lanes> > &k2,
                   hls::stream<f32_beat<C::mem_lanes> > &v2, hls::stream<f32_beat<C::mem_lanes> > &k3,
                   hls::stream<f32_beat<C::mem_lanes> > &v3, hls::stream<f32_beat<C::mem_lanes> > &ks,
                   hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int nb = (d + C::mem_lanes - 1) / C::mem_lanes;
mrg_pos:
  for (int pp = 0; pp < n_pos; pp++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx
    int p = 0;
  mrg_head:
    for (int h = 0; h < n_kv; h++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_heads_max
    mrg_beat:
      for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::beats_max
#pragma HLS PIPELINE II = 1
        f32_beat<C::mem_lanes> kb, vb;
        if (p == 0) {
          kb = k0.read();
          vb = v0.read();
        } else if (p == 1) {
          kb = k1.read();
          vb = v1.read();
        } else if (p == 2) {
          kb = k2.read();
          vb = v2.read();
        } else {
          kb = k3.read();
          vb = v3.read();
        }
        ks.write(kb);
        vs.write(vb);
      }
      p = p + 1 == np ? 0 : p + 1;
    }
  }
}

// Decode attention with the K/V cache read over NP (1..4) m_axi ports (the weight ports, idle during
// attention; every pointer pair addresses the same cache slice): port p streams KV heads p, p + NP,
// ... concurrently with the others; a merge process restores the single-reader order, so the
// arithmetic is attention_decode's exactly. k1..k3 / v1..v3 beyond NP are never dereferenced.
template <class C, int NP, class KT>
void attention_decode_ports(const f32 *q, const KT *k0, const KT *k1, const KT *k2, const KT *k3,
                            const KT *v0, const KT *v1, const KT *v2, const KT *v3, f32 *out, int pos,
                            int n_heads, int n_kv, int head_dim, f32 scale) {
  static_assert(NP >= 1 && NP <= 4, "NP: 1..4 K/V read ports");
#pragma HLS DATAFLOW
#ifndef __SYNTHESIS__
  assert(head_dim >= 1 && head_dim <= C::d_max && n_heads <= C::heads_max);
  assert(n_kv >= 1 && n_kv <= C::kv_heads_max && n_heads % n_kv == 0);
  assert(pos >= 0 && pos < C::max_ctx);
#endif
  typedef f32_beat<C::mem_lanes> B;
  hls::stream<B> pk0("dec_pk0"), pv0("dec_pv0"), pk1("dec_pk1"), pv1("dec_pv1");
  hls::stream<B> pk2("dec_pk2"), pv2("dec_pv2"), pk3("dec_pk3"), pv3("dec_pv3");
#pragma HLS STREAM variable = pk0 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pv0 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pk1 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pv1 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pk2 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pv2 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pk3 depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = pv3 depth = C::kv_block * C::beats_max
  hls::stream<B> ks("dec_ks"), vs("dec_vs");
#pragma HLS STREAM variable = ks depth = C::kv_block * C::kv_heads_max * C::beats_max
#pragma HLS STREAM variable = vs depth = C::kv_block * C::kv_heads_max * C::beats_max
  attn_kv_port_reader<C>(k0, v0, pos + 1, 0, NP, n_kv, head_dim, pk0, pv0);
  attn_kv_port_reader<C>(k1, v1, pos + 1, 1, NP, n_kv, head_dim, pk1, pv1);
  attn_kv_port_reader<C>(k2, v2, pos + 1, 2, NP, n_kv, head_dim, pk2, pv2);
  attn_kv_port_reader<C>(k3, v3, pos + 1, 3, NP, n_kv, head_dim, pk3, pv3);
  attn_kv_merge<C>(pos + 1, n_kv, NP, head_dim, pk0, pv0, pk1, pv1, pk2, pv2, pk3, pv3, ks, vs);
  attn_decode_compute<C>(q, out, pos, n_heads, n_heads / n_kv, n_kv, head_dim, scale, ks, vs);
}

}  // namespace edgellm
