// attention_layer: the single attention entry, decode (t_len == 1) and prefill (t_len > 1) through
// ONE attn_rows core; the decode-side K/V port readers; the decode wrappers.
//
// Structure (one DATAFLOW region, entered once per call):
//   attn_kv_port_reader x4   decode only: port p streams KV heads p, p + KVP, ... of positions
//                            0..pos (nothing in prefill, nothing for p >= KVP)
//   attn_kv_source           walks the job list: decode merges the port streams back into
//                            (position, head, beat) order; prefill reads the job's KV head of
//                            positions 0 .. last query straight from k_layer / v_layer (data port)
//   attn_layer_compute       walks the same job list: the job's row table, then the core
//                            (attn_rows<C, rows_max, kv_heads_max>, which loads the query rows)
//                            from its one call site
// so Vitis HLS builds one instance of each process, hence one core, whatever t_len is, provided
// the caller has one attention_layer call site for both cases (decoder_layer: not
// attention_prefill and attention_decode_ports side by side, which would be two).
//
// Decode numerics are prefill's (attention_prefill.h header comment) with one query at position
// pos seeing keys 0..pos. There is no score buffer over the context: keys arrive in tiles of
// kv_block positions x n_kv heads (one contiguous DDR burst per position, layout in kv_cache.h) and
// the online softmax keeps only m, l and o per head, so the context is bounded by max_ctx alone. All
// query heads are the rows of the one decode job (row h reads tile head h / group), which
// interleaves independent heads in the pipelined key loop: each K/V tile is read from DDR exactly
// once per token. Cycles (attention_prefill.h header, decode job) with R = n_heads, th = n_kv,
// nr = max(n_heads, min_rows, ceil(mac_span / nc)), nc = ceil(d / dot_lanes), nb = ceil(d / mem_lanes),
// nq = ceil(d / min(dot_lanes, data_lanes)), n = pos + 1 keys in tiles t of nk_t keys (0 outside
// the tiles), c_t = nk_t n_kv nb:
//   n_heads + 2 n_heads nq + max(0, c_0 - n_heads nq)
//     + sum_{st=0..tiles} max(max(nk_st, nk_{st-1}) nc nr, c_{st+1}, c_st)  cycles (+ pipeline fills),
// the copy terms holding when the KVP ports keep up with one merged beat pair per cycle (tile st is
// scored while tile st - 1 is accumulated, K copied one tile ahead of V: attention_prefill.h).
#pragma once

#include "edgellm/attention_prefill.h"
#include "edgellm/dataflow.h"

namespace edgellm {

// Positions 0 .. n - 1 of a decode call at pos0 that come over the K/V ports: those before kv_old
// (written by earlier calls; the rest this call wrote through k_layer / v_layer, and reads through
// them: an m_axi argument never reads what another wrote in the same call), every one for kv_old < 0.
inline int attn_port_positions(int pos0, int kv_old) {
#pragma HLS INLINE
  return kv_old < 0 || kv_old > pos0 ? pos0 + 1 : kv_old;
}

// Reader of weight port p of NP (decode only): KV heads p, p + NP, ... < n_kv of the positions the
// K/V ports carry (attn_port_positions), as beats of mem_lanes widened floats, (position, head,
// beat) order in one pipelined loop. Prefill (t_len > 1) and p >= NP read nothing.
template <class C, class KT>
void attn_kv_port_reader(const KT *k_layer, const KT *v_layer, int t_len, int pos0, int kv_old, int p, int np,
                         int n_kv, int d, hls::stream<f32_beat<C::mem_lanes> > &ks,
                         hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ML = C::mem_lanes;
  const int nb = (d + ML - 1) / ML;
  const int nh = t_len == 1 && p < np && p < n_kv ? (n_kv - 1 - p) / np + 1 : 0;  // heads of port p
  const int n_pos = attn_port_positions(pos0, kv_old);
  int pp = 0, hi = 0, hh = p, b = 0;
prd_beat:
  for (int it = 0; it < n_pos * nh * nb; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::max_ctx * C::kv_heads_max * C::beats_max
#pragma HLS PIPELINE II = 1
    const long base = ((long)pp * n_kv + hh) * d + (long)b * ML;
    f32_beat<ML> kb, vb;
    read_kv_beat<ML, KT>(k_layer, v_layer, base, b, d, kb, vb);
    ks.write(kb);
    vs.write(vb);
    if (++b == nb) {
      b = 0;
      hh += np;
      if (++hi == nh) {
        hi = 0;
        hh = p;
        pp++;
      }
    }
  }
}

// The core's K/V stream, job by job (attn_job), one beat of K and V per cycle in (position, tile
// head, beat) order. Decode: head h from port h % np (the single-reader order restored, so the
// arithmetic does not depend on np) for the positions the ports carry (attn_port_positions), the
// later ones (this call's) from k_layer / v_layer. Prefill: the job's KV head from k_layer / v_layer.
template <class C, class KT>
void attn_kv_source(const KT *k_layer, const KT *v_layer, int t_len, int pos0, int kv_old, int n_heads,
                    int n_kv, int np, int d, hls::stream<f32_beat<C::mem_lanes> > &k0,
                    hls::stream<f32_beat<C::mem_lanes> > &v0, hls::stream<f32_beat<C::mem_lanes> > &k1,
                    hls::stream<f32_beat<C::mem_lanes> > &v1, hls::stream<f32_beat<C::mem_lanes> > &k2,
                    hls::stream<f32_beat<C::mem_lanes> > &v2, hls::stream<f32_beat<C::mem_lanes> > &k3,
                    hls::stream<f32_beat<C::mem_lanes> > &v3, hls::stream<f32_beat<C::mem_lanes> > &ks,
                    hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ML = C::mem_lanes;
  const int nb = (d + ML - 1) / ML;
  const bool dec = t_len == 1;
  const int n_ported = dec ? attn_port_positions(pos0, kv_old) : 0;  // positions from the port streams
  const int n_jobs = attn_n_jobs<C>(t_len, n_kv);
  int t0 = 0, kvh = 0;
src_job:
  for (int jn = 0; jn < n_jobs; jn++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::jobs_max
    const attn_job j = attn_job_at<C>(t_len, pos0, n_heads, n_kv, t0, kvh);
    int pp = 0, hh = 0, b = 0, port = 0;
  src_beat:
    for (int it = 0; it < j.n_keys * j.th * nb; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx * C::kv_heads_max * C::beats_max
#pragma HLS PIPELINE II = 1
      f32_beat<ML> kb, vb;
      if (pp >= n_ported) {
        const long base = ((long)pp * n_kv + j.kvh0 + hh) * d + (long)b * ML;
        read_kv_beat<ML, KT>(k_layer, v_layer, base, b, d, kb, vb);
      } else if (port == 0) {
        kb = k0.read();
        vb = v0.read();
      } else if (port == 1) {
        kb = k1.read();
        vb = v1.read();
      } else if (port == 2) {
        kb = k2.read();
        vb = v2.read();
      } else {
        kb = k3.read();
        vb = v3.read();
      }
      ks.write(kb);
      vs.write(vb);
      if (++b == nb) {
        b = 0;
        port = port + 1 == np ? 0 : port + 1;
        if (++hh == j.th) {
          hh = 0;
          port = 0;
          pp++;
        }
      }
    }
    attn_next_job<C>(n_kv, t0, kvh);
  }
}

// Compute process: for each job, the table of its rows (one row per cycle), then the core from its
// one call site (rows_max rows, kv_heads_max tile heads) loads the query rows, attends, normalizes
// and stores.
template <class C>
void attn_layer_compute(const f32 *q, f32 *out, int t_len, int pos0, int n_heads, int n_kv, int d,
                        f32 scale, hls::stream<f32_beat<C::mem_lanes> > &ks,
                        hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ROWS = C::rows_max;
  int row_pos[ROWS], row_kv[ROWS];
  long row_out[ROWS];
  const int grp = n_heads / n_kv;
  const int n_jobs = attn_n_jobs<C>(t_len, n_kv);
  int t0 = 0, kvh = 0;
job:
  for (int jn = 0; jn < n_jobs; jn++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::jobs_max
    const attn_job j = attn_job_at<C>(t_len, pos0, n_heads, n_kv, t0, kvh);
    // (token, head) flattened; row r = t * nh + g at q / out element base, tile head kv = g / grp
    EDGELLM_ATTN_LOOP(j.nt * j.nh);
    int t = 0, g = 0, gk = 0, kv = 0;
  rows:
    for (int r = 0; r < j.nt * j.nh; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::rows_max
#pragma HLS PIPELINE II = 1
      row_pos[r] = pos0 + j.t0 + t;
      row_kv[r] = kv;
      row_out[r] = ((long)(j.t0 + t) * n_heads + j.h0 + g) * d;
      if (++gk == grp) {
        gk = 0;
        kv++;
      }
      if (++g == j.nh) {
        g = 0;
        gk = 0;
        kv = 0;
        t++;
      }
    }
    attn_rows<C, ROWS, C::kv_heads_max>(q, row_pos, row_kv, row_out, j.nt * j.nh, pos0 + j.t0, j.th,
                                        j.n_keys, d, scale, ks, vs, out);
    attn_next_job<C>(n_kv, t0, kvh);
  }
}

// Attention of one layer, decode (t_len == 1) or causal prefill (t_len > 1), on the one core.
//   q:       [t_len][n_heads][head_dim]  roped queries at positions pos0 .. pos0+t_len-1
//   k_layer, v_layer: this layer's cache slice [pos][n_kv][head_dim] of KT (kv_cache.h), positions
//            0 .. pos0+t_len-1 written: prefill reads K/V here (the data port)
//   kr0..kr3, vr0..vr3: the same slice seen through the K/V ports (top.h kv0..kv3, in the weight
//            ports' bundles): decode reads KV head h over port h % KVP (1..4) concurrently;
//            pointers beyond KVP are never dereferenced
//   out:     [t_len][n_heads][head_dim]
//   scale:   float(1/sqrt(head_dim)) from the host
//   kv_old:  decode reads positions 0 .. kv_old - 1 over the K/V ports (earlier calls wrote them) and
//            kv_old .. pos0 over k_layer / v_layer (the argument this call wrote them through:
//            decoder_layer passes its call's first position); -1: every position over the ports
// Query head h reads KV head h / (n_heads / n_kv). KT (f32 or f16) is deduced from the pointers.
template <class C, int KVP, class KT>
void attention_layer(const f32 *q, const KT *k_layer, const KT *v_layer, const KT *kr0, const KT *kr1,
                     const KT *kr2, const KT *kr3, const KT *vr0, const KT *vr1, const KT *vr2,
                     const KT *vr3, f32 *out, int t_len, int pos0, int n_heads, int n_kv, int head_dim,
                     f32 scale, int kv_old) {
  static_assert(KVP >= 1 && KVP <= 4, "KVP: 1..4 K/V read ports");
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
#ifndef __SYNTHESIS__
  assert(head_dim >= 1 && head_dim <= C::d_max && n_heads <= C::heads_max);
  assert(n_kv >= 1 && n_kv <= C::kv_heads_max && n_heads % n_kv == 0);
  assert(n_heads / n_kv <= C::group_max && t_len >= 1 && t_len <= C::max_t);
  assert(pos0 >= 0 && pos0 + t_len <= C::max_ctx);
#endif
  typedef f32_beat<C::mem_lanes> B;
  hls::stream<B> pk0("attn_pk0"), pv0("attn_pv0"), pk1("attn_pk1"), pv1("attn_pv1");
  hls::stream<B> pk2("attn_pk2"), pv2("attn_pv2"), pk3("attn_pk3"), pv3("attn_pv3");
#pragma HLS STREAM variable = pk0 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pk0, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pv0 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pv0, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pk1 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pk1, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pv1 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pv1, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pk2 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pk2, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pv2 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pv2, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pk3 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pk3, C::kv_block * C::beats_max);
#pragma HLS STREAM variable = pv3 depth = C::kv_block * C::beats_max
  EDGELLM_DEPTH(pv3, C::kv_block * C::beats_max);
  // The source writes K and V beats in pairs; the core takes K one tile ahead of V (copy phase u:
  // K of tile u, V of tile u - 1), so vs holds up to one whole tile while K is read: one tile plus
  // one position of beats keeps the source writing (no deadlock with any reader speed).
  hls::stream<B> ks("attn_ks"), vs("attn_vs");
#pragma HLS STREAM variable = ks depth = C::kv_block * C::kv_heads_max * C::beats_max
  EDGELLM_DEPTH(ks, C::kv_block * C::kv_heads_max * C::beats_max);
#pragma HLS STREAM variable = vs depth = (C::kv_block + 1) * C::kv_heads_max * C::beats_max
#ifdef EDGELLM_CSIM_VS_DEPTH  // tests/test_csim_threads.py: too shallow for the K/V skew, it must deadlock
  EDGELLM_DEPTH(vs, EDGELLM_CSIM_VS_DEPTH);
#else
  EDGELLM_DEPTH(vs, (C::kv_block + 1) * C::kv_heads_max * C::beats_max);
#endif
  EDGELLM_PROCESS(attn_kv_port_reader<C>(kr0, vr0, t_len, pos0, kv_old, 0, KVP, n_kv, head_dim, pk0, pv0));
  EDGELLM_PROCESS(attn_kv_port_reader<C>(kr1, vr1, t_len, pos0, kv_old, 1, KVP, n_kv, head_dim, pk1, pv1));
  EDGELLM_PROCESS(attn_kv_port_reader<C>(kr2, vr2, t_len, pos0, kv_old, 2, KVP, n_kv, head_dim, pk2, pv2));
  EDGELLM_PROCESS(attn_kv_port_reader<C>(kr3, vr3, t_len, pos0, kv_old, 3, KVP, n_kv, head_dim, pk3, pv3));
  EDGELLM_PROCESS(attn_kv_source<C>(k_layer, v_layer, t_len, pos0, kv_old, n_heads, n_kv, KVP, head_dim, pk0,
                                    pv0, pk1, pv1, pk2, pv2, pk3, pv3, ks, vs));
  EDGELLM_PROCESS(attn_layer_compute<C>(q, out, t_len, pos0, n_heads, n_kv, head_dim, scale, ks, vs));
  EDGELLM_JOIN;
}

// Decode attention with the K/V cache on one pointer pair (attention_layer, t_len = 1).
//   q: [n_heads][head_dim] at position pos; k_layer, v_layer: positions 0..pos written;
//   out: [n_heads][head_dim]
template <class C, class KT>
void attention_decode(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int pos,
                      int n_heads, int n_kv, int head_dim, f32 scale) {
  attention_layer<C, 1>(q, k_layer, v_layer, k_layer, k_layer, k_layer, k_layer, v_layer, v_layer,
                        v_layer, v_layer, out, 1, pos, n_heads, n_kv, head_dim, scale);
}

// Decode attention with the K/V cache read over NP (1..4) m_axi ports (attention_layer, t_len = 1;
// every pointer pair addresses the same cache slice): KV head h over port h % NP. k1..k3 / v1..v3
// beyond NP are never dereferenced.
template <class C, int NP, class KT>
void attention_decode_ports(const f32 *q, const KT *k0, const KT *k1, const KT *k2, const KT *k3,
                            const KT *v0, const KT *v1, const KT *v2, const KT *v3, f32 *out, int pos,
                            int n_heads, int n_kv, int head_dim, f32 scale) {
  attention_layer<C, NP>(q, k0, v0, k0, k1, k2, k3, v0, v1, v2, v3, out, 1, pos, n_heads, n_kv,
                         head_dim, scale);
}

}  // namespace edgellm
