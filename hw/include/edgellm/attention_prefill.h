// Fused causal prefill attention (GQA, online softmax) and the attention core shared with decode.
//
// Numerics (docs/numerics.md, numpy twin models/numerics.py:attention), per query row:
//   keys in blocks of kv_block aligned to absolute position 0; for each block with a visible key:
//     s_j  = reduce_sum<dot_lanes>(q * k_j) * scale            (products in fp32, lane order)
//     mb   = max(m, max_j s_j)   (visible j only)
//     c    = started ? exp(m - mb) : 0;  l = l * c;  o = o * c
//     for visible j ascending: p = exp(s_j - mb); l = l + p; o = o + p * v_j
//     m = mb
//   out = o / l
//
// Hardware schedule: queries are taken in blocks of BQ tokens; a block and one KV head form
// R = bq * group "rows" that share every K/V tile: the tiles 0 .. (last position of the block) are
// streamed from DDR once per (query block, KV head) by a reader process (DATAFLOW), tiles beyond the
// block's last query are never read, and only tiles that reach past the block's first query
// position (the diagonal) evaluate the causal mask. The row loop is the innermost pipelined loop
// (padded to min_rows iterations), so the loop-carried fp32 adds of l and o for one row are
// min_rows cycles apart and the pipeline runs at II=1 with each row's order unchanged.
//
// The KV cache element type KT (f32, or f16 bit patterns; kv_cache.h) is deduced from the cache
// pointers: the reader widens each element exactly to f32 (kv_elem<KT>::load), so everything after
// it, and the numerics, are the same for both.
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/numerics.h"
#include "hls_stream.h"

namespace edgellm {

// Attention sizing. Runtime sizes (head_dim, heads, T, context) must not exceed these maxima.
template <int D_MAX, int DOT_LANES, int KV_BLOCK, int BQ, int HEADS_MAX, int KV_HEADS_MAX,
          int GROUP_MAX, int MAX_CTX, int MAX_T = 1024, int MIN_ROWS = 8, int MEM_LANES = 16>
struct attn_config {
  static const int d_max = D_MAX;            // largest head_dim
  static const int dot_lanes = DOT_LANES;    // NumericsPlan.dot_lanes (power of two)
  static const int kv_block = KV_BLOCK;      // NumericsPlan.kv_block
  static const int bq = BQ;                  // prefill queries per block
  static const int heads_max = HEADS_MAX;    // query heads
  static const int kv_heads_max = KV_HEADS_MAX;
  static const int group_max = GROUP_MAX;    // query heads per KV head
  static const int max_ctx = MAX_CTX;        // KV positions
  static const int max_t = MAX_T;            // prefill tokens per call (trip counts)
  static const int min_rows = MIN_ROWS;      // >= fp32 add latency: rows interleaved per key
  static const int mem_lanes = MEM_LANES;    // floats per DDR beat (16 = 512-bit AXI)
  static const int beats_max = (D_MAX + MEM_LANES - 1) / MEM_LANES;
  static_assert(DOT_LANES >= 1 && (DOT_LANES & (DOT_LANES - 1)) == 0, "dot_lanes: power of two");
  static_assert(KV_BLOCK >= 1 && BQ >= 1 && MIN_ROWS >= 1 && MEM_LANES >= 1, "sizes positive");
  static_assert(GROUP_MAX <= HEADS_MAX && KV_HEADS_MAX <= HEADS_MAX, "head counts");
};

template <int ML>
struct f32_beat {
  f32 v[ML];
};

// Beat b of one cached K row and V row starting at element `base` (head_dim d): ML widened values
// each, zero past d. Shared by the prefill and decode K/V readers.
template <int ML, class KT>
inline void read_kv_beat(const KT *k_layer, const KT *v_layer, long base, int b, int d, f32_beat<ML> &kb,
                         f32_beat<ML> &vb) {
  for (int i = 0; i < ML; i++) {
#pragma HLS UNROLL
    bool in = b * ML + i < d;
    kb.v[i] = in ? kv_elem<KT>::load(k_layer[base + i]) : 0.0f;
    vb.v[i] = in ? kv_elem<KT>::load(v_layer[base + i]) : 0.0f;
  }
}

// max that propagates NaN from either side, like np.maximum.
inline f32 max_nan(f32 a, f32 b) { return (a > b || a != a) ? a : b; }

// reduce_sum<LANES>(a * b) over n <= D_MAX elements, fully unrolled (one dot per cycle):
// lane j accumulates products j, j+LANES, ... from 0.0f over ceil(n/LANES) chunks, then a tree.
template <int LANES, int D_MAX>
f32 dot_lanes(const f32 a[D_MAX], const f32 b[D_MAX], int n) {
#pragma HLS INLINE
  const int CH = (D_MAX + LANES - 1) / LANES;
  int nch = (n + LANES - 1) / LANES;
  if (nch < 1) nch = 1;
  f32 acc[LANES];
#pragma HLS ARRAY_PARTITION variable = acc complete
  for (int j = 0; j < LANES; j++) {
#pragma HLS UNROLL
    acc[j] = 0.0f;
  }
  for (int c = 0; c < CH; c++) {
#pragma HLS UNROLL
    for (int j = 0; j < LANES; j++) {
#pragma HLS UNROLL
      const int i = c * LANES + j;
      f32 prod = (i < D_MAX && i < n) ? a[i] * b[i] : 0.0f;
      if (c < nch) acc[j] = acc[j] + prod;
    }
  }
  for (int h = LANES / 2; h >= 1; h /= 2) {
#pragma HLS UNROLL
    for (int j = 0; j < h; j++) {
#pragma HLS UNROLL
      acc[j] = acc[j] + acc[j + h];
    }
  }
  return acc[0];
}

// Reader process: streams K and V rows of head_dim elements, positions 0..n_pos-1, KV heads
// kvh0..kvh0+th-1 of each position, as beats of mem_lanes floats (widened from KT, zero padded).
template <class C, class KT>
void attn_kv_reader(const KT *k_layer, const KT *v_layer, int n_pos, int kvh0, int th, int n_kv,
                    int d, hls::stream<f32_beat<C::mem_lanes> > &ks,
                    hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ML = C::mem_lanes;
  const int nb = (d + ML - 1) / ML;
rd_pos:
  for (int p = 0; p < n_pos; p++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx
  rd_head:
    for (int hh = 0; hh < th; hh++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_heads_max
    rd_beat:
      for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::beats_max
#pragma HLS PIPELINE II = 1
        long base = ((long)p * n_kv + kvh0 + hh) * d + (long)b * ML;
        f32_beat<ML> kb, vb;
        read_kv_beat<ML, KT>(k_layer, v_layer, base, b, d, kb, vb);
        ks.write(kb);
        vs.write(vb);
      }
    }
  }
}

// The attention core: n_rows query rows (row r at absolute position row_pos[r], reading tile head
// row_kv[r]) against keys 0..n_keys-1 arriving from the reader as tiles of kv_block positions x th
// heads. Writes ob[r][0..d) = o / l. ROWS: row capacity; TH: tile heads capacity.
template <class C, int ROWS, int TH>
void attn_rows(const f32 qb[ROWS][C::d_max], const int row_pos[ROWS], const int row_kv[ROWS],
               int n_rows, int th, int n_keys, int d, f32 scale,
               hls::stream<f32_beat<C::mem_lanes> > &ks, hls::stream<f32_beat<C::mem_lanes> > &vs,
               f32 ob[ROWS][C::d_max]) {
  const int D = C::d_max, KB = C::kv_block, ML = C::mem_lanes;
  f32 m[ROWS], l[ROWS], mx[ROWS];
  bool started[ROWS];
  f32 o[ROWS][D];
#pragma HLS ARRAY_PARTITION variable = o dim = 2 complete
  f32 kt[KB][TH][D], vt[KB][TH][D];
#pragma HLS ARRAY_PARTITION variable = kt dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = vt dim = 3 complete
  f32 s_tile[ROWS][KB];
#pragma HLS BIND_STORAGE variable = s_tile type = ram_2p impl = lutram
  const int nb = (d + ML - 1) / ML;
  const int nr = n_rows < C::min_rows ? C::min_rows : n_rows;  // padded row loop
  int first_pos = row_pos[0];
init_rows:
  for (int r = 0; r < n_rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS
#pragma HLS PIPELINE II = 1
    m[r] = -pos_inf();
    l[r] = 0.0f;
    started[r] = false;
    first_pos = row_pos[r] < first_pos ? row_pos[r] : first_pos;
    for (int i = 0; i < D; i++) o[r][i] = 0.0f;
  }
  const int n_tiles = (n_keys + KB - 1) / KB;
tile_loop:
  for (int tile = 0; tile < n_tiles; tile++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx / C::kv_block
    const int b0 = tile * KB;
    const int nk = n_keys - b0 < KB ? n_keys - b0 : KB;
    const bool diag = b0 + nk - 1 > first_pos;  // some key is after some row's position
  load_tile:
    for (int j = 0; j < nk; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_block
      for (int hh = 0; hh < th; hh++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TH
        for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::beats_max
#pragma HLS PIPELINE II = 1
          f32_beat<ML> kb = ks.read(), vb = vs.read();
          for (int i = 0; i < ML; i++) {
#pragma HLS UNROLL
            if (b * ML + i < D) {
              kt[j][hh][b * ML + i] = kb.v[i];
              vt[j][hh][b * ML + i] = vb.v[i];
            }
          }
        }
      }
    }
    for (int r = 0; r < n_rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS
      mx[r] = m[r];
    }
  score_key:
    for (int j = 0; j < nk; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_block
    score_row:
      for (int r = 0; r < nr; r++) {
#pragma HLS LOOP_TRIPCOUNT min = C::min_rows max = ROWS
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = mx inter false
        if (r < n_rows) {
          f32 s = dot_lanes<C::dot_lanes, D>(qb[r], kt[j][row_kv[r]], d) * scale;
          s_tile[r][j] = s;
          bool valid = !diag || b0 + j <= row_pos[r];
          if (valid) mx[r] = max_nan(mx[r], s);
        }
      }
    }
  rescale:
    for (int r = 0; r < n_rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS
#pragma HLS PIPELINE II = 1
      if (b0 <= row_pos[r]) {  // the block has a visible key for this row
        f32 c = started[r] ? exp_f(m[r] - mx[r]) : 0.0f;
        l[r] = l[r] * c;
        for (int i = 0; i < D; i++) o[r][i] = o[r][i] * c;
        m[r] = mx[r];
        started[r] = true;
      }
    }
  acc_key:
    for (int j = 0; j < nk; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_block
    acc_row:
      for (int r = 0; r < nr; r++) {
#pragma HLS LOOP_TRIPCOUNT min = C::min_rows max = ROWS
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = o inter false
#pragma HLS DEPENDENCE variable = l inter false
        if (r < n_rows && (!diag || b0 + j <= row_pos[r])) {
          f32 p = exp_f(s_tile[r][j] - m[r]);
          l[r] = l[r] + p;
          for (int i = 0; i < D; i++) {
            if (i < d) o[r][i] = o[r][i] + p * vt[j][row_kv[r]][i];
          }
        }
      }
    }
  }
normalize:
  for (int r = 0; r < n_rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS
#pragma HLS PIPELINE II = 1
    for (int i = 0; i < D; i++) ob[r][i] = o[r][i] / l[r];
  }
}

// Compute process of one (query block, KV head): load the block's rows, attend, store.
template <class C>
void attn_prefill_compute(const f32 *q, f32 *out, int t0, int bq, int pos0, int kvh, int grp,
                          int n_heads, int d, f32 scale, hls::stream<f32_beat<C::mem_lanes> > &ks,
                          hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ROWS = C::bq * C::group_max, D = C::d_max;
  f32 qb[ROWS][D], ob[ROWS][D];
#pragma HLS ARRAY_PARTITION variable = qb dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = ob dim = 2 complete
  int row_pos[ROWS], row_kv[ROWS];
  int r = 0;
load_q:
  for (int t = 0; t < bq; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::bq
    for (int g = 0; g < grp; g++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::group_max
      const long base = ((long)(t0 + t) * n_heads + kvh * grp + g) * d;
      for (int i = 0; i < d; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::d_max
#pragma HLS PIPELINE II = 1
        qb[r][i] = q[base + i];
      }
      row_pos[r] = pos0 + t0 + t;
      row_kv[r] = 0;
      r++;
    }
  }
  attn_rows<C, ROWS, 1>(qb, row_pos, row_kv, bq * grp, 1, pos0 + t0 + bq, d, scale, ks, vs, ob);
  r = 0;
store_o:
  for (int t = 0; t < bq; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::bq
    for (int g = 0; g < grp; g++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::group_max
      const long base = ((long)(t0 + t) * n_heads + kvh * grp + g) * d;
      for (int i = 0; i < d; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::d_max
#pragma HLS PIPELINE II = 1
        out[base + i] = ob[r][i];
      }
      r++;
    }
  }
}

// One (query block, KV head): K/V reader and compute run concurrently.
template <class C, class KT>
void attn_prefill_group(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int t0,
                        int bq, int pos0, int kvh, int grp, int n_heads, int n_kv, int d,
                        f32 scale) {
#pragma HLS DATAFLOW
  hls::stream<f32_beat<C::mem_lanes> > ks("attn_ks"), vs("attn_vs");
#pragma HLS STREAM variable = ks depth = C::kv_block * C::beats_max
#pragma HLS STREAM variable = vs depth = C::kv_block * C::beats_max
  attn_kv_reader<C>(k_layer, v_layer, pos0 + t0 + bq, kvh, 1, n_kv, d, ks, vs);
  attn_prefill_compute<C>(q, out, t0, bq, pos0, kvh, grp, n_heads, d, scale, ks, vs);
}

// Causal prefill attention.
//   q:       [t_len][n_heads][head_dim]   queries at absolute positions pos0 .. pos0+t_len-1
//   k_layer, v_layer: this layer's cache slice [pos][n_kv][head_dim] of KT (kv_cache.h), positions
//            0 .. pos0+t_len-1 already written
//   out:     [t_len][n_heads][head_dim]
//   scale:   float(1/sqrt(head_dim)) (double, rounded once), from the host
// Query head h reads KV head h / (n_heads / n_kv).
template <class C, class KT>
void attention_prefill(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int t_len,
                       int pos0, int n_heads, int n_kv, int head_dim, f32 scale) {
  const int grp = n_heads / n_kv;
#ifndef __SYNTHESIS__
  assert(head_dim >= 1 && head_dim <= C::d_max && n_kv >= 1 && n_heads % n_kv == 0);
  assert(grp <= C::group_max && n_kv <= C::kv_heads_max && t_len >= 1 && t_len <= C::max_t);
  assert(pos0 >= 0 && pos0 + t_len <= C::max_ctx);
#endif
qblock:
  for (int t0 = 0; t0 < t_len; t0 += C::bq) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_t / C::bq
    const int bq = t_len - t0 < C::bq ? t_len - t0 : C::bq;
  kv_head:
    for (int kvh = 0; kvh < n_kv; kvh++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::kv_heads_max
      attn_prefill_group<C>(q, k_layer, v_layer, out, t0, bq, pos0, kvh, grp, n_heads, n_kv,
                            head_dim, scale);
    }
  }
}

}  // namespace edgellm
