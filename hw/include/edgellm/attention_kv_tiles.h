// The attention core's K/V tile streaming (attention_core.h: the core that reads the tiles; the reader
// processes that feed the streams: attention_layer.h): the copy phases of a job, each stream's walk
// over one tile half, and the copy step / copy_rest that the core's pipelined loops carry. Sizing and
// tile keys: attention_plan.h.
//
// K/V ping-pong: the K and V tiles are double-buffered (kt/vt[2], tile t in half t & 1). The K
// stream runs one tile ahead of the V stream: copy phase u moves K of tile u and V of tile u - 1
// into their halves (beat pairs while both have beats left, then the one left alone). Phase 0 (K
// of tile 0) rides inside the q load loop, phase st + 1 inside stage st's pass: each iteration
// also copies a pair when one is waiting (non-blocking, so a slow reader never stalls the
// arithmetic), and a copy_rest loop finishes what is left (blocking). Stage st reads K half st & 1
// and V half (st - 1) & 1 and writes the others, hence the DEPENDENCE false on kt / vt; per bank
// one read and one write per cycle (a dual-port RAM). The reader writes K and V beats in pairs, so
// the V stream holds up to one tile while the core reads K ahead (attention_layer.h sizes it).
// Chosen over a separate DATAFLOW copy process with a PIPO: no nested region inside the job loop,
// no block handshakes per tile, the core stays one function with one call site, and the copy
// needs no resources beyond the second half.
#pragma once

#include "edgellm/attention_plan.h"
#include "edgellm/dep_check.h"
#include "edgellm/numerics.h"
#include "hls_stream.h"

namespace edgellm {

// One stream's part of a copy phase: n beats of one tile into half `half` of its ping-pong, in
// (key, tile head, beat) order, `done` of them copied, (j, h, b) the next.
struct attn_walk {
  int n, done, half, j, h, b;
};

// Copy phase u of a job whose tiles run t0 .. n_tiles - 1 (u = t0 .. n_tiles + 1; t0 > 0: a job that
// resumes after tile t0 - 1, attention_core.h): K of tile u (none from u == n_tiles) and V of tile u - 1
// (none when u == t0 or u > n_tiles), each into the half of its tile's parity. The K stream runs one tile
// ahead of the V stream: tile t is scored one stage before it is accumulated.
struct attn_copy {
  attn_walk k, v;
};

template <class C>
inline attn_copy attn_copy_phase(int u, int t0, int n_tiles, int n_keys, int th, int nb) {
  const int nk = u < n_tiles ? attn_tile_keys<C>(n_keys, u) : 0;
  const int nv = u > t0 && u <= n_tiles ? attn_tile_keys<C>(n_keys, u - 1) : 0;
  attn_copy c = {{nk * th * nb, 0, u & 1, 0, 0, 0}, {nv * th * nb, 0, (u - 1) & 1, 0, 0, 0}};
  return c;
}

// Store one beat at the walk's position and advance it.
template <class C, int TH>
inline void attn_walk_put(attn_walk &w, const f32_beat<C::mem_lanes> &bt, int th, int nb,
                          f32 buf[2][C::kv_block][TH][C::dkv]) {
#pragma HLS INLINE
  const int ML = C::mem_lanes;
  for (int i = 0; i < ML; i++) {
#pragma HLS UNROLL
    if (w.b * ML + i < C::dkv) {
      buf[w.half][w.j][w.h][w.b * ML + i] = bt.v[i];
      EDGELLM_DEP_W(buf, buf[w.half][w.j][w.h][w.b * ML + i]);
    }
  }
  w.done++;
  if (++w.b == nb) {
    w.b = 0;
    if (++w.h == th) {
      w.h = 0;
      w.j++;
    }
  }
}

// One copy step: while both streams have beats left it moves one K and one V beat together, then
// the one left alone; (wait, or every stream it reads holds a beat). Inlined into the pipelined
// loops that carry the copy. Pairing keeps the K/V skew at one tile (the V stream's depth).
template <class C, int TH>
inline void attn_copy_step(attn_copy &c, bool wait, int th, int nb, f32 kt[2][C::kv_block][TH][C::dkv],
                           f32 vt[2][C::kv_block][TH][C::dkv], hls::stream<f32_beat<C::mem_lanes> > &ks,
                           hls::stream<f32_beat<C::mem_lanes> > &vs) {
#pragma HLS INLINE
  const bool kl = c.k.done < c.k.n, vl = c.v.done < c.v.n;
  if ((kl || vl) && (wait || ((!kl || !ks.empty()) && (!vl || !vs.empty())))) {
    if (kl) {
      attn_walk_put<C, TH>(c.k, ks.read(), th, nb, kt);
      EDGELLM_ATTN_BEAT();
    }
    if (vl) {
      attn_walk_put<C, TH>(c.v, vs.read(), th, nb, vt);
      EDGELLM_ATTN_BEAT();
    }
  }
}

// The rest of a copy phase, one step per cycle, waiting on the streams (nothing when the passes
// that carried it got every beat).
template <class C, int TH>
inline void attn_copy_rest(attn_copy &c, int th, int nb, f32 kt[2][C::kv_block][TH][C::dkv],
                           f32 vt[2][C::kv_block][TH][C::dkv], hls::stream<f32_beat<C::mem_lanes> > &ks,
                           hls::stream<f32_beat<C::mem_lanes> > &vs) {
#pragma HLS INLINE
  const int lk = c.k.n - c.k.done, lv = c.v.n - c.v.done;
  const int left = lk > lv ? lk : lv;
  EDGELLM_ATTN_LOOP(left);
  EDGELLM_DEP_LOOP("attn_copy_rest");
  EDGELLM_DEP_CLAIM(kt, 0);
  EDGELLM_DEP_CLAIM(vt, 0);
copy_rest:
  for (int it = 0; it < left; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::kv_block * TH * C::beats_max
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = kt inter false
#pragma HLS DEPENDENCE variable = vt inter false
    EDGELLM_DEP_ITER(it);
    attn_copy_step<C, TH>(c, true, th, nb, kt, vt, ks, vs);
  }
}

}  // namespace edgellm
