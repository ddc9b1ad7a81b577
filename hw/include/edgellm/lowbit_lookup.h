// The low-bit engine's (lowbit_mm.h) table lookup: a token's tables for a group (lb_tables: one 16-entry
// table per 4 activations, after T-MAC) and a code beat's lane sums (lb_lane_sums: BW / 4 lookups, an adder
// tree, each row's sum taken at the tree level of the tensor's group). The tables repeat a group narrower
// than MAXG over the MAXG window (lowbit_banks.h lb_group_acts), so lookup n reads table n % (MAXG / 4)
// for every group size (part wv of the group's beats when MAXG > BW); only each lane's tap depends on the
// group-size choice ga, among NG candidates (MING .. MAXG): a model with one group size builds one tap per
// lane (docs/hls.md "Low-bit lookups").
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/lowbit_banks.h"
#include "edgellm/lowbit_format.h"

namespace edgellm {

// The tables tbl[j][e] = sum of the activations a[4j + u] whose bit u is set in e (j < MAXG / 4: the group's
// G / 4 tables, repeated) and the group's activation sum (of a[i], i < group).
template <class C>
inline int32_t lb_tables(const int8_t a[C::MAXG], int group, lb_tab_t tbl[C::MAXG / 4][16]) {
#pragma HLS INLINE
  int32_t acc = 0;
  for (int j = 0; j < C::MAXG / 4; j++) {
#pragma HLS UNROLL
    const int32_t a0 = a[4 * j], a1 = a[4 * j + 1], a2 = a[4 * j + 2], a3 = a[4 * j + 3];
    for (int e = 0; e < 16; e++) {
#pragma HLS UNROLL
      tbl[j][e] = (lb_tab_t)(((e & 1) ? a0 : 0) + ((e & 2) ? a1 : 0) + ((e & 4) ? a2 : 0) + ((e & 8) ? a3 : 0));
    }
    if (4 * j < group) acc += a0 + a1 + a2 + a3;
  }
  return acc;
}

// One code beat against a token's tables: lookup n reads table n % (MAXG / 4) of its nibble (wv * NIB + n,
// part wv of the group's beats, when MAXG > BW), the lookups are summed by an adder tree, and lane l takes
// the tree's node l at the level of G / 4 lookups (the whole beat: one row, when G >= BW). Lanes past the
// tensor's BW / G rows are 0.
template <class C>
inline void lb_lane_sums(const lb_tab_t tbl[C::MAXG / 4][16], const typename C::beat_t &beat, int ga, int wv,
                         int32_t lane[C::LANES]) {
#pragma HLS INLINE
  int32_t lv[C::LOG_NIB + 1][C::NIB];
  for (int n = 0; n < C::NIB; n++) {
#pragma HLS UNROLL
    const int nib = (int)beat.range(4 * n + 3, 4 * n);
    lb_tab_t v = 0;
    if (C::MAXG <= C::BW) {
      v = tbl[n % (C::MAXG / 4)][nib];
    } else {
      for (int w = 0; w < C::MAXG / C::BW; w++) {
#pragma HLS UNROLL
        if (wv == w) v = tbl[w * C::NIB + n][nib];
      }
    }
    lv[0][n] = v;
  }
  for (int k = 1; k <= C::LOG_NIB; k++) {
#pragma HLS UNROLL
    for (int i = 0; i < C::NIB / 2; i++) {
#pragma HLS UNROLL
      if (i < (C::NIB >> k)) lv[k][i] = lv[k - 1][2 * i] + lv[k - 1][2 * i + 1];
    }
  }
  for (int l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
    int32_t s = 0;
    for (int c = 0; c < C::NG; c++) {
#pragma HLS UNROLL
      const int g = C::MING << c;
      const int lev = g <= C::BW ? C::LOG_MING4 + c : C::LOG_NIB;
      if (c == ga && l < (C::NIB >> lev)) s = lv[lev][l];
    }
    lane[l] = s;
  }
}

}  // namespace edgellm
