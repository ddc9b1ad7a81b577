// The attention core's row state between the two parts of a job (attention_core.h attn_rows, `save` and
// `key0`; the sequential schedule's attention beside the k and v linears, layer_schedule.h): a saved part
// stores each row's (l, m) after its unnormalized o rows, a resumed one loads o, l and m back.
#pragma once

#include "edgellm/attention_plan.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

// A resumed job's row state (attn_rows with key0 > 0): o from its saved rows (per token a run of nh rows
// of d floats at o_off, one beat of QL per cycle), l and m from each row's lm_beats beats [l, m, 0 ..] at
// lm_off (lm_stride elements per token), and the block max of tile t0 - 1 (the score half's base on tile
// t0) = m.
template <class C, int ROWS, class PO>
void attn_load_state(const PO *out, long o_off, const PO *lm, long lm_off, long stride, long lm_stride, int nt,
                     int nh, int nq, int t0, f32 o[ROWS][C::dp], f32 l[ROWS], f32 m[ROWS], f32 mx[2][ROWS]) {
#pragma HLS INLINE
  const int QL = C::ql, LB = C::lm_beats, hp = (t0 - 1) & 1;
  EDGELLM_ATTN_LOOP(nt * nh * (nq + LB));
load_state_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::bq
  load_state:
    for (int j = 0; j < nh * (nq + LB); j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS * (C::dp / C::ql + C::lm_beats)
#pragma HLS PIPELINE II = 1
      f32 v[QL];
#pragma HLS ARRAY_PARTITION variable = v complete
      if (j < nh * nq) {  // o rows
        chunk_get<QL>(out, o_off + t * stride, j, v);
        const int r = t * nh + j / nq, i0 = (j % nq) * QL;
        for (int k = 0; k < QL; k++) {
#pragma HLS UNROLL
          o[r][i0 + k] = v[k];
        }
      } else {  // beat b of row g's (l, m)
        const int jj = j - nh * nq, g = jj / LB, b = jj % LB, r = t * nh + g;
        chunk_get<QL>(lm, lm_off + t * lm_stride, jj, v);
        for (int k = 0; k < QL; k++) {
#pragma HLS UNROLL
          if (b * QL + k == 0) l[r] = v[k];
          if (b * QL + k == 1) m[r] = v[k], mx[hp][r] = v[k];
        }
      }
    }
  }
}

// A saved job's (l, m): lm_beats beats [l, m, 0 ..] per row at lm_off, lm_stride elements per token.
template <class C, int ROWS, class PO>
void attn_store_lm(PO *lm, long lm_off, long lm_stride, int nt, int nh, const f32 l[ROWS], const f32 m[ROWS]) {
#pragma HLS INLINE
  const int QL = C::ql, LB = C::lm_beats;
  EDGELLM_ATTN_LOOP(nt * nh * LB);
store_lm:
  for (int j = 0; j < nt * nh * LB; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS * C::lm_beats
#pragma HLS PIPELINE II = 1
    const int r = j / LB, b = j % LB;
    f32 v[QL];
#pragma HLS ARRAY_PARTITION variable = v complete
    for (int k = 0; k < QL; k++) {
#pragma HLS UNROLL
      v[k] = b * QL + k == 0 ? l[r] : b * QL + k == 1 ? m[r] : 0.0f;
    }
    chunk_put<QL>(lm, lm_off + (r / nh) * lm_stride, (r % nh) * LB + b, v);
  }
}

}  // namespace edgellm
