// The low-bit engine's (lowbit_mm.h) float steps: a row set's staged P, s, m and float(S) (LbStageArrays,
// written by lb_codes at the row set's last plane) and the drain that steps FU of its rows per iteration and token
// lane from there (LbDrain, lb_drain), so FU float step units serve the BW / G rows a beat finishes
// (docs/hls.md "Float steps").
#pragma once

#include <cstdint>

#include "edgellm/dep_check.h"
#include "edgellm/lowbit_banks.h"
#include "edgellm/lowbit_format.h"
#include "edgellm/numerics.h"

namespace edgellm {

// The float steps' staging: a row set's rl rows latched at its last plane (lb_codes: each token's P and
// float(S), the rows' s and m) and stepped FU rows per iteration from there (lb_drain). Plain arrays,
// partitioned where lb_blocks declares them: token lane u's token slot tb (token tb * TP + u).
template <class C>
struct LbStageArrays {
  typedef int32_t p_t[C::TP][C::TD][C::LANES];  // P of a token's lane l
  typedef f32 sum_t[C::TP][C::TD];              // float(S): a token's activation sum of the group
  typedef f32 sm_t[C::LANES];                   // the lanes' rows' s (or m) of the group (every token's)
};

// The drain of the latest staged row set: steps j < n done of n = nfc x token blocks (chunk c of FU rows,
// token block tb: chunk-major), rows r0 .. r0 + rl - 1 of acc[par] (first: from 0), its last step at
// iteration `end`.
struct LbDrain {
  int j, n, c, tb, r0, par;
  bool first;
  long end;
};

// One drain step (every iteration while one is pending, after the iteration's staging) of a call of n_tok
// tokens in n_tb token blocks, rl rows a row set: chunk dr.c's FU rows of token block dr.tb take the
// contract's step from the stage,
//     acc = (acc + s * float(P)) + m * float(S)
// token block tb's P staged at least tb iterations after token block 0's (chunk-major: step j takes token
// block j % n_tb, staged by then). A row set's next staging comes bits x wpp x n_tb iterations after this
// one, and its nfc x n_tb steps are done by then when nfc = ceil(rl / FU) <= bits x wpp (lb_float_steps).
// Float unit f steps the rows r % FU == f (its accumulator bank; lowbit_banks.h lb_unit_lane).
template <class C>
inline void lb_drain(int n_tok, int n_tb, int rl, const typename LbStageArrays<C>::p_t &st_p,
                     const typename LbStageArrays<C>::sum_t &st_sum, const typename LbStageArrays<C>::sm_t &st_s,
                     const typename LbStageArrays<C>::sm_t &st_m, LbDrain &dr, typename LbBanks<C>::acc_t &acc) {
#pragma HLS INLINE
  if (dr.j >= dr.n) return;
  for (int u = 0; u < C::TP; u++) {
#pragma HLS UNROLL
    const int t = dr.tb * C::TP + u;
    if (t >= n_tok) continue;
    int32_t pv[C::LANES];  // the token's staged P, each lane read once
#pragma HLS ARRAY_PARTITION variable = pv complete
    for (int l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
      pv[l] = st_p[u][dr.tb][l];
    }
    for (int f = 0; f < C::FU; f++) {
#pragma HLS UNROLL
      const int l = lb_unit_lane<C>(dr.r0, rl, dr.c, f);
      if (l < 0) continue;
      const int r = dr.r0 + l;
      f32 &cell = acc[dr.par][u][dr.tb][f][r / C::FU];
      f32 a = 0.0f;
      if (!dr.first) {
        EDGELLM_DEP_R(acc, cell);
        a = cell;
      }
      const f32 sp = st_s[l] * (f32)pv[l];
      const f32 ms = st_m[l] * st_sum[u][dr.tb];
      cell = (a + sp) + ms;
      EDGELLM_DEP_W(acc, cell);
    }
  }
  dr.j++;
  if (++dr.tb == n_tb) dr.tb = 0, dr.c++;
}

}  // namespace edgellm
