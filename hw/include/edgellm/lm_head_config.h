// The fabric LM head's configuration (lm_head.h: what the head computes, its structure and cycles): the
// port and row limits, LmHeadConfig, and the packet the dot processes hand the scoring process
// (LmDotPacket). Neighbours: lm_head_load.h (rows into banks / from the head FIFOs), lm_head_dot.h and
// lm_head_lanes.h (the dot processes), lm_head_score.h (logits, argmax, top-k).
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/port_shares.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

const int kMaxHeadPorts = facts::kMaxStreamPorts;  // weight ports the head can stream from
// Rows the multi-row head scores in one pass over its weights: from the head FIFOs with MAX_TOK > 1, each
// fetched beat is dotted with every row's beat in the same cycle (token lanes, lm_dot_lanes;
// runtime/layout.py HEAD_ROWS_MAX, the generated config's head MAX_TOK at most this).
const int kHeadRowsMax = facts::kHeadRowsMax;

// Rows go to the ports in blocks: per block each port streams at most one row, and the dot loop takes
// beat j of every block row in the same cycle. With equal shares (SHARE0..3 = 1) block b holds rows
// b*NPORTS .. b*NPORTS + NPORTS - 1, row v on port v % NPORTS. With shares s_p (port_shares.h, the TLMM's
// own), blocks come in cycles of ROUNDS = max s_p blocks covering SHARE_SUM rows: in round r of a cycle the
// ports with s_p > r read one row each, consecutive rows in port order (lm_block_row), so port p reads s_p
// rows of every SHARE_SUM and every block's rows, and the blocks, follow the vocabulary in order.
template <int P_, int HID_MAX_, int V_MAX_, int MAX_TOK_, int K_TOP_ = facts::kTopKMax, int NPORTS_ = 1,
          int S0_ = 1, int S1_ = 1, int S2_ = 1, int S3_ = 1>
struct LmHeadConfig {
  static constexpr int P = P_;              // int8 MACs per cycle and port = bytes per weight beat
  static constexpr int HID_MAX = HID_MAX_;  // largest hidden size
  static constexpr int V_MAX = V_MAX_;      // largest vocabulary (trip counts only)
  static constexpr int MAX_TOK = MAX_TOK_;  // tokens per call
  static constexpr int K_TOP = K_TOP_;      // top-k capacity
  static constexpr int NPORTS = NPORTS_;    // weight ports streaming rows concurrently (rows per block)
  static constexpr int SHARE0 = S0_, SHARE1 = S1_, SHARE2 = S2_, SHARE3 = S3_;  // rows a cycle per port
  static constexpr int share(int p) { return port_share(p, SHARE0, SHARE1, SHARE2, SHARE3); }
  static constexpr int SHARE_SUM = port_share_prefix(NPORTS, SHARE0, SHARE1, SHARE2, SHARE3);  // rows a cycle
  static constexpr int ROUNDS = port_share_max(NPORTS, SHARE0, SHARE1, SHARE2, SHARE3);     // blocks a cycle
  static constexpr int NBLK_MAX = (V_MAX + SHARE_SUM - 1) / SHARE_SUM * ROUNDS;  // blocks of V_MAX rows
  // blocks of a vocabulary of `vocab` rows (the last cycle's rows past it are not read)
  static int blocks(int vocab) { return (vocab + SHARE_SUM - 1) / SHARE_SUM * ROUNDS; }
  static_assert(P >= 1 && P <= 128, "P must be 1..128");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxHeadPorts, "NPORTS must be 1..4");
  static_assert(SHARE0 >= 1 && SHARE1 >= 1 && SHARE2 >= 1 && SHARE3 >= 1 && SHARE_SUM <= facts::kMaxPortShares,
                "head port shares must be positive, at most kMaxPortShares rows a cycle");
  static_assert(K_TOP >= 1 && K_TOP <= facts::kTopKMax, "K_TOP must be 1..64 (facts::kTopKMax)");
  static constexpr int BEATS_MAX = (HID_MAX + P - 1) / P;
  static constexpr int ACC_BITS = SignedBits<128LL * 128 * HID_MAX>::value;
  static_assert(ACC_BITS <= 32, "HID_MAX too large for an int32 accumulator");
  typedef ap_uint<8 * P> beat_t;
  typedef ap_int<ACC_BITS> acc_t;
};

// The row port p reads in block blk (see LmHeadConfig), -1 when the port sits the block out (a round past
// its share). Equal shares: blk * NPORTS + p.
template <class CFG>
inline int lm_block_row(int blk, int p) {
#pragma HLS INLINE
  const int c = blk / CFG::ROUNDS, r = blk - c * CFG::ROUNDS;
  int v = c * CFG::SHARE_SUM;
  for (int q = 0; q < CFG::NPORTS; q++) {
#pragma HLS UNROLL
    const int s = CFG::share(q);
    v += (s < r ? s : r) + (q < p && s > r ? 1 : 0);  // rows of the cycle's earlier rounds, then this one's
  }
  return r < CFG::share(p) ? v : -1;
}

// Whether port p reads a row of the vocabulary in block blk.
template <class CFG>
inline bool lm_block_has_row(int blk, int p, int vocab) {
#pragma HLS INLINE
  const int v = lm_block_row<CFG>(blk, p);
  return v >= 0 && v < vocab;
}

// What the dot process hands the scoring process: the exact dot products of token t with the rows of
// block blk (port p's row lm_block_row(blk, p) in acc[p]; a port without a row carries 0 or stale sums,
// which the scoring process skips).
template <class CFG>
struct LmDotPacket {
  typename CFG::acc_t acc[CFG::NPORTS];
  int32_t blk;
  int32_t t;
};

}  // namespace edgellm
