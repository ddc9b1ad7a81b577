// The fabric LM head's configuration (lm_head.h: what the head computes, its structure and cycles): the
// port and row limits, LmHeadConfig, and the packet the dot processes hand the scoring process
// (LmDotPacket). Neighbours: lm_head_load.h (rows into banks / from the head FIFOs), lm_head_dot.h and
// lm_head_lanes.h (the dot processes), lm_head_score.h (logits, argmax, top-k).
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

const int kMaxHeadPorts = facts::kMaxStreamPorts;  // weight ports the head can stream from
// Rows the multi-row head scores in one pass over its weights: from the head FIFOs with MAX_TOK > 1, each
// fetched beat is dotted with every row's beat in the same cycle (token lanes, lm_dot_lanes;
// runtime/layout.py HEAD_ROWS_MAX, the generated config's head MAX_TOK at most this).
const int kHeadRowsMax = facts::kHeadRowsMax;

template <int P_, int HID_MAX_, int V_MAX_, int MAX_TOK_, int K_TOP_ = facts::kTopKMax, int NPORTS_ = 1>
struct LmHeadConfig {
  static constexpr int P = P_;              // int8 MACs per cycle and port = bytes per weight beat
  static constexpr int HID_MAX = HID_MAX_;  // largest hidden size
  static constexpr int V_MAX = V_MAX_;      // largest vocabulary (trip counts only)
  static constexpr int MAX_TOK = MAX_TOK_;  // tokens per call
  static constexpr int K_TOP = K_TOP_;      // top-k capacity
  static constexpr int NPORTS = NPORTS_;    // weight ports streaming rows concurrently (rows per block)
  static_assert(P >= 1 && P <= 128, "P must be 1..128");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxHeadPorts, "NPORTS must be 1..4");
  static_assert(K_TOP >= 1 && K_TOP <= facts::kTopKMax, "K_TOP must be 1..64 (facts::kTopKMax)");
  static constexpr int BEATS_MAX = (HID_MAX + P - 1) / P;
  static constexpr int ACC_BITS = SignedBits<128LL * 128 * HID_MAX>::value;
  static_assert(ACC_BITS <= 32, "HID_MAX too large for an int32 accumulator");
  typedef ap_uint<8 * P> beat_t;
  typedef ap_int<ACC_BITS> acc_t;
};

// What the dot process hands the scoring process: the exact dot products of token t with the
// NPORTS rows of block blk (row v = blk * NPORTS + p in acc[p]; rows past the vocabulary carry 0).
template <class CFG>
struct LmDotPacket {
  typename CFG::acc_t acc[CFG::NPORTS];
  int32_t blk;
  int32_t t;
};

}  // namespace edgellm
