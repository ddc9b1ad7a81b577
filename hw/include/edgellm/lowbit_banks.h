// The low-bit engine's (lowbit_mm.h) on-chip stores, each split into banks that every access of the block
// loop addresses statically, so a bank sees at most one write and the reads its memory has ports for in an
// iteration (a runtime index into a partitioned dimension would make Vitis HLS wire every bank to every
// access and serialize them; docs/hls.md "Low-bit banks"). Plain arrays (LbBanks' types), partitioned
// where lowbit_mm.h declares them:
//   acts    token t's input i: token lane t % TP, bank i % MAXG, word (t / TP) * XD + i / MAXG
//   s, m    row r's sub-scale j of half `par`: bank r % FU, sub-bank j % SLB,
//           word (par * R / FU + r / FU) * SMS + j / SLB (a decoder's SL sub-scales: SL sub-banks; float unit
//           f's rows in bank f: a row set's s / m are fetched FU rows an iteration, lb_scales_fetch); block
//           RAM (one write and one read an iteration; LUTs are the scarcer resource on every board)
//   acc     token t's accumulator of row r in tile parity par: [par][t % TP][t / TP][r % FU][r / FU]
//           (float unit f owns the rows r % FU == f)
// The group-size choice ga (lowbit_format.h lb_group_choice) picks, from a few static candidates, which bank
// holds what: a row set of rl = BW / G rows starts at a multiple of rl, a group of G inputs at a multiple of
// G, so the activations' selection is a mux over MAXG / G banks.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/dep_check.h"
#include "edgellm/lowbit_format.h"
#include "edgellm/numerics.h"

namespace edgellm {

typedef ap_int<12> lb_tab_t;  // one table entry: a sum of <= 4 int8 (|T| <= 512)

// The stores' types; lanes (a token's P accumulators, one a row lane) are indexed [token lane][token slot]
// like acc.
template <class C>
struct LbBanks {
  typedef int8_t acts_t[C::TP][C::MAXG][C::TD * C::XD];
  typedef f32 scales_t[C::FU][C::SLB][C::SMD];
  typedef f32 acc_t[2][C::TP][C::TD][C::FU][C::AD];
  typedef int32_t lanes_t[C::TP][C::TD][C::LANES];
};

// Sixteen activations (inputs 16c .. 16c + 15 of token t) into their banks: bank b takes v[b % 16] when
// 16c lands on its 16-bank slice (static source, a write enable a bank).
template <class C>
inline void lb_acts_put(typename LbBanks<C>::acts_t &acts, int t, int c, const int8_t v[16]) {
#pragma HLS INLINE
  const int slice = C::MAXG > 16 ? c % (C::MAXG / 16) : 0, word = (t / C::TP) * C::XD + 16 * c / C::MAXG;
  for (int b = 0; b < C::MAXG; b++) {
#pragma HLS UNROLL
    if (b / 16 == slice) acts[t % C::TP][b][word] = v[b % 16];
  }
}

// Group g's G inputs of token lane u's token block tb, repeated over the MAXG window (a[i] = input i % G of
// the group, so table j of a group of G is also table j + G / 4, .., and lookup n of a beat can read table
// n % (MAXG / 4) whatever G is: lowbit_lookup.h): every bank read once at the group's word, then input
// i % G from bank (g * G) % MAXG + i % G (a multiple of G: one of MAXG / G choices).
template <class C>
inline void lb_group_acts(const typename LbBanks<C>::acts_t &acts, int u, int tb, int g, int group, int ga,
                          int8_t a[C::MAXG]) {
#pragma HLS INLINE
  const long first = (long)g * group;
  const int word = tb * C::XD + (int)(first / C::MAXG), off = (int)(first % C::MAXG);
  int8_t v[C::MAXG];
  for (int b = 0; b < C::MAXG; b++) {
#pragma HLS UNROLL
    v[b] = acts[u][b][word];
  }
  for (int i = 0; i < C::MAXG; i++) {
#pragma HLS UNROLL
    int8_t x = 0;
    for (int c = 0; c < C::NG; c++) {
#pragma HLS UNROLL
      const int gc = C::MING << c;
      for (int k = 0; k < C::MAXG / C::MING; k++) {
#pragma HLS UNROLL
        if (c == ga && k * gc < C::MAXG && off == k * gc) x = v[k * gc + i % gc];
      }
    }
    a[i] = x;
  }
}

// Chunk c of the records r0 .. r0 + RD - 1 (decoder k's sub-scales c * SL + u in sv[k][u], mv[k][u]) into
// half par: bank b takes decoder b % RD's (r0 is a multiple of RD, RD divides FU) when its row lands
// there, sub-bank u sub-scale u of the chunk.
template <class C>
inline void lb_scales_put(typename LbBanks<C>::scales_t &s, typename LbBanks<C>::scales_t &m, int par, int r0,
                          int c, const f32 sv[C::RD][C::SL], const f32 mv[C::RD][C::SL]) {
#pragma HLS INLINE
  for (int b = 0; b < C::FU; b++) {
#pragma HLS UNROLL
    const int k = b % C::RD, r = r0 + k;
    if (r >= C::R || r % C::FU != b) continue;
    const int word = (par * (C::R / C::FU) + r / C::FU) * C::SMS + c;
    for (int u = 0; u < C::SLB; u++) {
#pragma HLS UNROLL
      if (c * C::SL + u >= C::MAXSB) continue;
      s[b][u][word] = sv[k][u], m[b][u][word] = mv[k][u];
      EDGELLM_DEP_W(s, s[b][u][word]);
      EDGELLM_DEP_W(m, m[b][u][word]);
    }
  }
}

// The lane of a row set (rows r0 .. r0 + rl - 1, r0 a multiple of rl) float unit f serves in chunk c: lane
// c * FU + f, or, when the set is narrower than the units (rl < FU, possible only for groups wider than
// BW / FU), lane f - r0 % FU; -1 when it serves none. Unit f's rows are the rows r % FU == f.
template <class C>
inline int lb_unit_lane(int r0, int rl, int c, int f) {
#pragma HLS INLINE
  const bool narrow = C::BW / C::MAXG < C::FU && rl < C::FU;
  const int l = narrow ? f - r0 % C::FU : c * C::FU + f;
  return l >= 0 && l < rl ? l : -1;
}

// Chunk c of a row set's s and m of group gi (half par) into the lanes its FU rows take (nx_s / nx_m):
// bank f read once, for the row unit f serves (lb_unit_lane).
template <class C>
inline void lb_scales_fetch(const typename LbBanks<C>::scales_t &s, const typename LbBanks<C>::scales_t &m,
                            int par, int r0, int rl, int c, int gi, f32 nx_s[C::LANES], f32 nx_m[C::LANES]) {
#pragma HLS INLINE
  const int sub = gi % C::SLB;
  for (int f = 0; f < C::FU; f++) {
#pragma HLS UNROLL
    const int l = lb_unit_lane<C>(r0, rl, c, f);
    if (l < 0) continue;
    const int word = (par * (C::R / C::FU) + (r0 + l) / C::FU) * C::SMS + gi / C::SLB;
    nx_s[l] = s[f][sub][word], nx_m[l] = m[f][sub][word];
    EDGELLM_DEP_R(s, s[f][sub][word]);
    EDGELLM_DEP_R(m, m[f][sub][word]);
  }
}

// Token t's accumulator of row r in tile parity par (the outputs' read: any bank).
template <class C>
inline f32 &lb_acc_at(typename LbBanks<C>::acc_t &acc, int par, int t, int r) {
#pragma HLS INLINE
  return acc[par][t % C::TP][t / C::TP][r % C::FU][r / C::FU];
}

}  // namespace edgellm
