// attention_layer: the single attention entry, decode (t_len == 1), short multi-row calls (speculative
// decoding's verify call) and prefill through ONE attn_rows core (attention_core.h); the K/V readers.
//
// Structure (one DATAFLOW region, entered once per call):
//   attn_kv_port_reader x4   cached-style calls (attn_plan_of: t_len x group <= rows_max, decode
//                            included): per job, port p streams positions p, p + KVP, ... of those
//                            earlier calls wrote (< kv_old), the job's KV heads of each (nothing in
//                            prefill-style calls, nothing for p >= KVP)
//   attn_kv_source           walks the job list: cached-style merges the port streams back into
//                            (position, head, beat) order, then this call's positions from k_layer /
//                            v_layer (data port); prefill reads the job's KV head of positions 0 ..
//                            last query straight from k_layer / v_layer (data port)
//   attn_layer_compute       walks the same job list: the job's row table, then the core
//                            (attn_rows<C, rows_max, kv_heads_max>, which loads the query rows)
//                            from its one call site
// so Vitis HLS builds one instance of each process, hence one core, whatever t_len is, provided
// the caller has one attention_layer call site for both cases (decoder_layer: not
// attention_prefill and attention_decode_ports side by side, which would be two).
//
#pragma once

#include "edgellm/attention_core.h"
#include "edgellm/dataflow.h"

namespace edgellm {

// Positions 0 .. n - 1 of a cached-style call (attn_plan) of t_len tokens at pos0 that come over the
// K/V ports: those before kv_old (written by earlier calls; the rest this call wrote through k_layer /
// v_layer, and reads through them: an m_axi argument never reads what another wrote in the same call),
// every one for kv_old < 0 (testbenches).
inline int attn_port_positions(int pos0, int t_len, int kv_old) {
#pragma HLS INLINE
  return kv_old < 0 || kv_old > pos0 ? pos0 + t_len : kv_old;
}

// Fields of beat j of a K or V row of d elements of KT at element off: the beat off / E + j whole
// (beat pointers: an m_axi argument), or the row's fields of those positions from a plain array
// (testbenches; the others 0). E: KT fields per beat (KvBeat).
template <class KT, class P>
struct KvBeat;
template <class KT, int B>
struct KvBeat<KT, ap_uint<B> > {
  enum { E = Beat<KT, B>::E };
  static void fields(const ap_uint<B> *m, long off, int, int j, KT f[E]) {
#pragma HLS INLINE
    const ap_uint<B> b = m[off / E + j];
    for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
      f[i] = lane_get<KT>(b, i);
    }
  }
};
template <class KT>
struct KvBeat<KT, KT> {
  enum { E = 16 / (int)sizeof(KT) };  // as a 128-bit beat
  static void fields(const KT *p, long off, int d, int j, KT f[E]) {
    for (int i = 0; i < E; i++) {
      const long k = (off / E + j) * E + i - off;  // the field's index in the row
      f[i] = k >= 0 && k < d ? p[off + k] : (KT)0;
    }
  }
};

// nseg consecutive K or V segments of d elements of KT (heads: each its own chunks) from element off of
// kv into s as chunks of mem_lanes widened floats (a segment's last chunk zero past d): the beats the
// range touches, one per cycle (the range's first beat + j, read whole), each field placed by its
// segment and index (the start's shift sh = off % E). A chunk is written once its last field is in,
// the oldest first, one per cycle: a short last chunk of a segment can complete in the same beat as the
// one before it and follows on the next cycle (or after the loop). A beat touches at most three chunks
// and one may wait, so four chunk buffers (chunk number mod 4). Counters only: no division in the loop.
template <class C, class KT, class P>
void attn_kv_segs(const P *kv, long off, int nseg, int d, hls::stream<f32_beat<C::mem_lanes> > &s) {
#pragma HLS INLINE
  typedef KvBeat<KT, P> KB;
  enum { ML = C::mem_lanes, E = KB::E, kSpan = (C::kv_heads_max * C::d_max + E - 1) / E + 1 };
  static_assert(E <= ML, "a beat ends at most two chunks");
  const int nb = (d + ML - 1) / ML;
  f32_beat<ML> w[4];
#pragma HLS ARRAY_PARTITION variable = w complete dim = 0
  for (int b = 0; b < 4; b++) {
#pragma HLS UNROLL
    for (int i = 0; i < ML; i++) {
#pragma HLS UNROLL
      w[b].v[i] = 0.0f;
    }
  }
  const int sh = (int)(off % E), nspan = (sh + nseg * d - 1) / E + 1;
  int e0 = -sh, seg = 0, gbase = 0;  // lane 0 of the beat: index in segment seg; seg's first chunk number
  int gc = 0, sc = 0, cc = 0;        // the chunk to write next: number, segment, index in the segment
kv_segs:
  for (int j = 0; j < nspan; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kSpan
#pragma HLS PIPELINE II = 1
    KT f[E];
#pragma HLS ARRAY_PARTITION variable = f complete
    KB::fields(kv, off, nseg * d, j, f);
    for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
      const bool wrap = e0 + i >= d;  // the next segment's (d >= E: at most one wrap per beat)
      const int e = wrap ? e0 + i - d : e0 + i;
      const int g = (wrap ? gbase + nb : gbase) + e / ML;  // ML: a power of two
      if (e >= 0 && (wrap ? seg + 1 : seg) < nseg) w[g & 3].v[e % ML] = kv_elem<KT>::load(f[i]);
    }
    const int last = ((cc + 1) * ML < d ? (cc + 1) * ML : d) - 1;  // chunk gc's last field in segment sc
    const int rel = (sc - seg) * d + last - e0;                     // ... from lane 0 of this beat
    if (gc < nseg * nb && rel < E) {
      s.write(w[gc & 3]);
      for (int i = 0; i < ML; i++) {
#pragma HLS UNROLL
        w[gc & 3].v[i] = 0.0f;
      }
      gc++;
      if (++cc == nb) cc = 0, sc++;
    }
    e0 += E;
    if (e0 >= d) e0 -= d, seg++, gbase += nb;
  }
kv_segs_tail:  // the last chunk when it completed in the same beat as the one before it
  for (int t = 0; t < 2; t++) {
    if (gc < nseg * nb) {
      s.write(w[gc & 3]);
      gc++;
    }
  }
}

// Reader of weight port p of NP (cached-style calls, attn_plan): per job, the positions pp = p, p + NP,
// ... of those the K/V ports carry (attn_port_positions), each position's K row of the job's th heads
// (contiguous: one burst) then its V row (attn_kv_segs: one beat per cycle), as chunks of mem_lanes
// widened floats per head. kp, vp: the K and V slices seen through the port (the same m_axi argument
// at two element offsets, or two arrays). Prefill-style calls and p >= NP read nothing.
template <class C, class KT, class P>
void attn_kv_port_reader(const P *kp, long k_off, const P *vp, long v_off, int t_len, int pos0, int kv_old,
                         int p, int np, int n_heads, int n_kv, int d, int key0, int key_end,
                         hls::stream<f32_beat<C::mem_lanes> > &ks, hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const attn_plan pl = attn_plan_of<C>(t_len, n_heads, n_kv);
  const int ported = attn_port_positions(pos0, t_len, kv_old);
  const int n_pos = pl.cached && p < np ? (key_end >= 0 && key_end < ported ? key_end : ported) : 0;
  const int first = key0 + (p - key0 % np + np) % np;  // the first of p, p + np, ... from key0
  const int mine = n_pos > first ? (n_pos - 1 - first) / np + 1 : 0;  // ... below n_pos
  const int n_jobs = mine ? pl.n_jobs : 0;
  int t0 = 0, kvh = 0;
prd_job:
  for (int jn = 0; jn < n_jobs; jn++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::kv_heads_max
    const attn_job j = attn_job_at<C>(pl, t_len, pos0, n_heads, n_kv, t0, kvh);
  prd_pos:
    for (int i = 0; i < mine; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::max_ctx
      const long row = ((long)(first + i * np) * n_kv + j.kvh0) * d;
      attn_kv_segs<C, KT>(kp, k_off + row, j.th, d, ks);
      attn_kv_segs<C, KT>(vp, v_off + row, j.th, d, vs);
    }
    attn_next_job<C>(pl, n_kv, t0, kvh);
  }
}

// The core's K/V stream, job by job (attn_job), in (position, tile head, chunk) order. Cached-style
// calls (decode, short multi-row calls: attn_plan): the positions the ports carry (attn_port_positions)
// merged from the port streams (position pp from port pp % np), one K and one V chunk per cycle; then the
// later ones (this call's) from kd / vd (the data port: the argument that wrote them), per position its
// K row then its V row, the job's th heads each. Prefill: the job's KV head of every position from kd /
// vd, per position its K row then its V row (attn_kv_segs, one head).
template <class C, class KT, class P>
void attn_kv_source(const P *kd, long k_off, const P *vd, long v_off, int t_len, int pos0, int kv_old,
                    int n_heads, int n_kv, int np, int d, int key0, int key_end,
                    hls::stream<f32_beat<C::mem_lanes> > &k0,
                    hls::stream<f32_beat<C::mem_lanes> > &v0, hls::stream<f32_beat<C::mem_lanes> > &k1,
                    hls::stream<f32_beat<C::mem_lanes> > &v1, hls::stream<f32_beat<C::mem_lanes> > &k2,
                    hls::stream<f32_beat<C::mem_lanes> > &v2, hls::stream<f32_beat<C::mem_lanes> > &k3,
                    hls::stream<f32_beat<C::mem_lanes> > &v3, hls::stream<f32_beat<C::mem_lanes> > &ks,
                    hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ML = C::mem_lanes;
  const int nb = (d + ML - 1) / ML;
  const attn_plan pl = attn_plan_of<C>(t_len, n_heads, n_kv);
  const int n_ported = pl.cached ? attn_port_positions(pos0, t_len, kv_old) : 0;  // from the port streams
  int t0 = 0, kvh = 0;
src_job:
  for (int jn = 0; jn < pl.n_jobs; jn++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::jobs_max
    const attn_job j = attn_job_at<C>(pl, t_len, pos0, n_heads, n_kv, t0, kvh);
    const int stop = key_end >= 0 ? key_end : j.n_keys;  // the part's keys: key0 .. stop - 1
    const int n_port = n_ported < stop ? n_ported : stop;
    int hh = 0, b = 0, port = key0 % np;  // position pp's chunk (head hh, chunk b) from port pp % np
  src_merge:
    for (int it = 0; it < (n_port > key0 ? n_port - key0 : 0) * j.th * nb; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::max_ctx * C::kv_heads_max * C::beats_max
#pragma HLS PIPELINE II = 1
      f32_beat<ML> kb, vb;
      if (port == 0) {
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
        if (++hh == j.th) {
          hh = 0;
          port = port + 1 == np ? 0 : port + 1;
        }
      }
    }
  src_pos:
    for (int pp = n_port > key0 ? n_port : key0; pp < stop; pp++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::max_ctx
      const long row = ((long)pp * n_kv + j.kvh0) * d;  // the job's th heads of position pp: contiguous
      attn_kv_segs<C, KT>(kd, k_off + row, j.th, d, ks);
      attn_kv_segs<C, KT>(vd, v_off + row, j.th, d, vs);
    }
    attn_next_job<C>(pl, n_kv, t0, kvh);
  }
}

// Compute process: for each job, the table of its rows (one row per cycle), then the core from its
// one call site (rows_max rows, kv_heads_max tile heads) loads the query rows, attends, normalizes
// and stores (q and out: [t_len][n_heads][d] at element offsets q_off, o_off).
template <class C, class PQ, class PO>
void attn_layer_compute(const PQ *q, long q_off, PO *out, long o_off, int t_len, int pos0, int n_heads,
                        int n_kv, int d, f32 scale, int key0, int key_end, long lm_off,
                        hls::stream<f32_beat<C::mem_lanes> > &ks, hls::stream<f32_beat<C::mem_lanes> > &vs) {
  const int ROWS = C::rows_max;
  int row_pos[ROWS], row_kv[ROWS];
  const int grp = n_heads / n_kv;
  const attn_plan pl = attn_plan_of<C>(t_len, n_heads, n_kv);
  int t0 = 0, kvh = 0;
job:
  for (int jn = 0; jn < pl.n_jobs; jn++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::jobs_max
    const attn_job j = attn_job_at<C>(pl, t_len, pos0, n_heads, n_kv, t0, kvh);
    // (token, head) flattened; row r = t * nh + g, tile head kv = g / grp
    EDGELLM_ATTN_LOOP(j.nt * j.nh);
    int t = 0, g = 0, gk = 0, kv = 0;
  rows:
    for (int r = 0; r < j.nt * j.nh; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::rows_max
#pragma HLS PIPELINE II = 1
      row_pos[r] = pos0 + j.t0 + t;
      row_kv[r] = kv;
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
    const long base = ((long)j.t0 * n_heads + j.h0) * d;  // the job's first row
    const long lm_base = ((long)j.t0 * n_heads + j.h0) * C::lm_row;  // ... its saved (l, m)
    attn_rows<C, ROWS, C::kv_heads_max>(q, q_off + base, row_pos, row_kv, j.nt, j.nh, (long)n_heads * d,
                                        pos0 + j.t0, j.th, key_end >= 0 ? key_end : j.n_keys, d, scale, ks, vs,
                                        out, o_off + base, key0, key_end >= 0, out, lm_off + lm_base,
                                        (long)n_heads * C::lm_row);
    attn_next_job<C>(pl, n_kv, t0, kvh);
  }
}

// Attention of one layer, decode (t_len == 1) or causal multi-row (t_len > 1), on the one core.
//   q, q_off:   [t_len][n_heads][head_dim] roped queries at positions pos0 .. pos0+t_len-1 (elements)
//   kd, vd, k_off, v_off: this layer's cache slice [pos][n_kv][head_dim] of KT (kv_cache.h) for K and
//               V, positions 0 .. pos0+t_len-1 written: prefill reads K/V here (the data port; in the
//               top one beat pointer at two element offsets)
//   kp0..kp3, vp0..vp3: the same slices seen through the K/V ports (top.h kv0..kv3, in the weight
//               ports' bundles), at the same offsets: cached-style calls (attn_plan_of) read position
//               pp over port pp % KVP (1..4) concurrently; pointers beyond KVP are never dereferenced
//   out, o_off: [t_len][n_heads][head_dim]
//   scale:      float(1/sqrt(head_dim)) from the host
//   kv_old:     cached-style calls read positions 0 .. kv_old - 1 over the K/V ports (earlier calls
//               wrote them) and kv_old .. pos0 + t_len - 1 over kd / vd (the argument this call wrote
//               them through: decoder_layer passes its call's first position); -1: every position over
//               the ports (testbenches). Prefill-style calls read every position over kd / vd.
//   key0, key_end, lm_off: the call's part (attn_part): key_end < 0 and key0 = 0, the whole call; a
//               cached-style call in two parts: (0, k) the keys 0 .. k - 1 (earlier calls', k a K/V block
//               boundary <= pos0), each row's state saved (o unnormalized into out, (l, m) at element
//               lm_off of out: attn_config lm_row floats per row, [t_len][n_heads] rows), then (k, -1) the
//               rest from that state, normalized: bit-exact with the whole call (attention_core.h)
// Pointers: the top's m_axi beats (ap_uint<B>, never cast: KT given explicitly) or plain arrays of f32
// (q, out) and KT (K/V) in testbenches. Query head h reads KV head h / (n_heads / n_kv). head_dim: a
// multiple of the q / out beat's floats (C::ql).
template <class C, int KVP, class KT, class PQ, class PD, class PP, class PO>
void attention_kv(const PQ *q, long q_off, const PD *kd, const PD *vd, const PP *kp0, const PP *kp1,
                  const PP *kp2, const PP *kp3, const PP *vp0, const PP *vp1, const PP *vp2, const PP *vp3,
                  long k_off, long v_off, PO *out, long o_off, int t_len, int pos0, int n_heads, int n_kv,
                  int head_dim, f32 scale, int kv_old, int key0 = 0, int key_end = -1, long lm_off = 0) {
  static_assert(KVP >= 1 && KVP <= 4, "KVP: 1..4 K/V read ports");
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
#ifndef __SYNTHESIS__
  assert(head_dim >= 1 && head_dim <= C::d_max && n_heads <= C::heads_max && head_dim % C::ql == 0);
  assert(n_kv >= 1 && n_kv <= C::kv_heads_max && n_heads % n_kv == 0);
  assert(n_heads / n_kv <= C::group_max && t_len >= 1 && t_len <= C::max_t);
  assert(pos0 >= 0 && pos0 + t_len <= C::max_ctx);
  // a part (attn_part): cached-style, block-aligned, the saved part's keys all earlier calls'
  assert(key0 % C::kv_block == 0 && (key_end < 0 || key_end % C::kv_block == 0));
  assert((key0 == 0 && key_end < 0) ||
         (attn_plan_of<C>(t_len, n_heads, n_kv).cached && key0 <= pos0 && key_end <= pos0 &&
          (key_end < 0 || (key0 == 0 && key_end > 0))));
#endif
  typedef f32_beat<C::mem_lanes> B;
  hls::stream<B> pk0("attn_pk0"), pv0("attn_pv0"), pk1("attn_pk1"), pv1("attn_pv1");
  hls::stream<B> pk2("attn_pk2"), pv2("attn_pv2"), pk3("attn_pk3"), pv3("attn_pv3");
  // A port writes a position's K row (every head) before its V row, and the merge takes them in K/V
  // pairs: a port's K stream holds a position's chunks (and a position more of slack).
#pragma HLS STREAM variable = pk0 depth = C::port_depth
  EDGELLM_DEPTH(pk0, C::port_depth);
#pragma HLS STREAM variable = pv0 depth = C::port_depth
  EDGELLM_DEPTH(pv0, C::port_depth);
#pragma HLS STREAM variable = pk1 depth = C::port_depth
  EDGELLM_DEPTH(pk1, C::port_depth);
#pragma HLS STREAM variable = pv1 depth = C::port_depth
  EDGELLM_DEPTH(pv1, C::port_depth);
#pragma HLS STREAM variable = pk2 depth = C::port_depth
  EDGELLM_DEPTH(pk2, C::port_depth);
#pragma HLS STREAM variable = pv2 depth = C::port_depth
  EDGELLM_DEPTH(pv2, C::port_depth);
#pragma HLS STREAM variable = pk3 depth = C::port_depth
  EDGELLM_DEPTH(pk3, C::port_depth);
#pragma HLS STREAM variable = pv3 depth = C::port_depth
  EDGELLM_DEPTH(pv3, C::port_depth);
  // The source writes a position's K chunks, then its V chunks; the core takes K one tile ahead of V
  // (copy phase u: K of tile u, V of tile u - 1), so vs holds up to one whole tile while K is read: one
  // tile plus one position of chunks keeps the source writing (no deadlock with any reader speed).
  hls::stream<B> ks("attn_ks"), vs("attn_vs");
#pragma HLS STREAM variable = ks depth = C::kv_block * C::kv_heads_max * C::beats_max
  EDGELLM_DEPTH(ks, C::kv_block * C::kv_heads_max * C::beats_max);
#pragma HLS STREAM variable = vs depth = (C::kv_block + 1) * C::kv_heads_max * C::beats_max
#ifdef EDGELLM_CSIM_VS_DEPTH  // tests/test_csim_threads.py: too shallow for the K/V skew, it must deadlock
  EDGELLM_DEPTH(vs, EDGELLM_CSIM_VS_DEPTH);
#else
  EDGELLM_DEPTH(vs, (C::kv_block + 1) * C::kv_heads_max * C::beats_max);
#endif
  EDGELLM_PROCESS(attn_kv_port_reader<C, KT>(kp0, k_off, vp0, v_off, t_len, pos0, kv_old, 0, KVP, n_heads,
                                             n_kv, head_dim, key0, key_end, pk0, pv0));
  EDGELLM_PROCESS(attn_kv_port_reader<C, KT>(kp1, k_off, vp1, v_off, t_len, pos0, kv_old, 1, KVP, n_heads,
                                             n_kv, head_dim, key0, key_end, pk1, pv1));
  EDGELLM_PROCESS(attn_kv_port_reader<C, KT>(kp2, k_off, vp2, v_off, t_len, pos0, kv_old, 2, KVP, n_heads,
                                             n_kv, head_dim, key0, key_end, pk2, pv2));
  EDGELLM_PROCESS(attn_kv_port_reader<C, KT>(kp3, k_off, vp3, v_off, t_len, pos0, kv_old, 3, KVP, n_heads,
                                             n_kv, head_dim, key0, key_end, pk3, pv3));
  EDGELLM_PROCESS(attn_kv_source<C, KT>(kd, k_off, vd, v_off, t_len, pos0, kv_old, n_heads, n_kv, KVP,
                                        head_dim, key0, key_end, pk0, pv0, pk1, pv1, pk2, pv2, pk3, pv3, ks, vs));
  EDGELLM_PROCESS(attn_layer_compute<C>(q, q_off, out, o_off, t_len, pos0, n_heads, n_kv, head_dim, scale, key0,
                                        key_end, lm_off, ks, vs));
  EDGELLM_JOIN;
}

// attention_kv on plain arrays (testbenches): q, the K/V slice through k_layer / v_layer (data port
// view) and kr0..kr3 / vr0..vr3 (the K/V ports' views), out.
template <class C, int KVP, class KT>
void attention_layer(const f32 *q, const KT *k_layer, const KT *v_layer, const KT *kr0, const KT *kr1,
                     const KT *kr2, const KT *kr3, const KT *vr0, const KT *vr1, const KT *vr2,
                     const KT *vr3, f32 *out, int t_len, int pos0, int n_heads, int n_kv, int head_dim,
                     f32 scale, int kv_old = -1, int key0 = 0, int key_end = -1, long lm_off = 0) {
  attention_kv<C, KVP, KT>(q, 0, k_layer, v_layer, kr0, kr1, kr2, kr3, vr0, vr1, vr2, vr3, 0, 0, out, 0, t_len,
                           pos0, n_heads, n_kv, head_dim, scale, kv_old, key0, key_end, lm_off);
}

// The split point of a cached-style call of t_len tokens at pos0 (decoder_layer.h: attention over the
// keys before it runs beside the layer's k and v linears): the last K/V block boundary <= pos0; 0 (no
// split) for prefill-style calls.
template <class C>
inline int attn_split_key(int t_len, int pos0, int n_heads, int n_kv) {
#pragma HLS INLINE
  return attn_plan_of<C>(t_len, n_heads, n_kv).cached ? pos0 / C::kv_block * C::kv_block : 0;
}

}  // namespace edgellm
