// The multi-row LM head's dot process (lm_head.h overview; issue 18's verify call): token lanes from the
// head FIFOs (lm_dot_lanes: every popped beat against MAX_TOK rows in the same cycle), the unpacking
// into per-row packets (lm_unlane) and the region joining them (lm_dot_rows). The one-token dot
// processes and dot_beat: lm_head_dot.h; the FIFO pops: lm_head_load.h; the scoring: lm_head_score.h.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/dataflow.h"
#include "edgellm/lm_head_config.h"
#include "edgellm/lm_head_dot.h"
#include "edgellm/lm_head_load.h"

namespace edgellm {

// What the lane dot process hands the unpacking process: the exact dot products of every token lane
// (row t of the call, t < MAX_TOK) with the rows of block blk (port p's row lm_block_row(blk, p) in
// acc[t][p]; a port without a row carries 0, lanes past the call's rows are never read).
template <class CFG>
struct LmLanePacket {
  typename CFG::acc_t acc[CFG::MAX_TOK][CFG::NPORTS];
  int32_t blk;
};

// Dot process of the multi-row head straight from the top's head FIFOs, token lanes: ONE pipelined loop
// over (block, beat), nblk * nbeats iterations at II 1 as lm_dot_fifo, beat j of port p's row of block b
// popped once and dotted in the same cycle with beat j of every row t < MAX_TOK (MAX_TOK x NPORTS x P
// int8 MACs, MAX_TOK x NPORTS accumulators), so up to MAX_TOK rows cost one pass over the head's
// weights. Each row's beats sit in their own memory (qbuf partitioned by row, lm_head_block). The last
// beat of a block writes one lane packet (all rows' sums of the block).
template <class CFG, class W>
void lm_dot_lanes(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                  const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int vocab, int hidden,
                  hls::stream<LmLanePacket<CFG> > &lanes) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, L = CFG::MAX_TOK, kMaxIter = CFG::NBLK_MAX * CFG::BEATS_MAX };
  static_assert(CFG::MAX_TOK >= 1 && CFG::MAX_TOK <= kHeadRowsMax, "token lanes: 1 .. kHeadRowsMax rows");
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = CFG::blocks(vocab);
  acc_t acc[L][kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = acc dim = 0 type = complete
  for (int t = 0; t < L; t++) {
#pragma HLS UNROLL
    for (int p = 0; p < kMaxHeadPorts; p++) {
#pragma HLS UNROLL
      acc[t][p] = 0;
    }
  }
  int b = 0, j = 0;
lm_dot_lanes_loop:
  for (int i = 0; i < nblk * nbeats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxIter
    const bool first = j == 0;  // a block's first beat restarts the sums
    beat_t r[kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = r complete
    lm_pop_block_beats<CFG>(s0, s1, s2, s3, b, vocab, r);
    for (int t = 0; t < L; t++) {
#pragma HLS UNROLL
      if (t < nt) {  // lanes past the call's rows stay idle
        for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
          acc[t][p] = (first ? acc_t(0) : acc[t][p]) + dot_beat<CFG::P, CFG::ACC_BITS>(r[p], qbuf[t][j]);
        }
      }
    }
    if (j == nbeats - 1) {
      LmLanePacket<CFG> pk;
      for (int t = 0; t < L; t++) {
#pragma HLS UNROLL
        for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
          pk.acc[t][p] = acc[t][p];
        }
      }
      pk.blk = b;
      lanes.write(pk);
      j = 0;
      b++;
    } else {
      j++;
    }
  }
}

// Unpacking process: each lane packet into the nt per-row packets lm_score takes (block-major, then row,
// as lm_dot_blocks writes them), one packet per cycle; so the scoring is the single-row head's, row by
// row, in increasing v.
template <class CFG>
void lm_unlane(hls::stream<LmLanePacket<CFG> > &lanes, int nt, int vocab, hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, kMaxIter = CFG::NBLK_MAX * CFG::MAX_TOK };
  const int nblk = CFG::blocks(vocab);
  typename CFG::acc_t la[CFG::MAX_TOK][CFG::NPORTS];  // the block's lane sums, registers
#pragma HLS ARRAY_PARTITION variable = la dim = 0 type = complete
  int32_t blk = 0;
  int t = 0;
lm_unlane_rows:
  for (int i = 0; i < nblk * nt; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxIter
    if (t == 0) {
      const LmLanePacket<CFG> lp = lanes.read();
      for (int r = 0; r < CFG::MAX_TOK; r++) {
#pragma HLS UNROLL
        for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
          la[r][p] = lp.acc[r][p];
        }
      }
      blk = lp.blk;
    }
    LmDotPacket<CFG> pk;
    for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
      pk.acc[p] = la[t][p];
    }
    pk.blk = blk;
    pk.t = t;
    dots.write(pk);
    t = t == nt - 1 ? 0 : t + 1;
  }
}

// The multi-row dot process: lane dots and unpacking, joined by a FIFO of lane packets (a block's worth
// of slack on each side).
template <class CFG, class W>
void lm_dot_rows(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                 const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int vocab, int hidden,
                 hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
  enum { kDepth = 2 };
  hls::stream<LmLanePacket<CFG> > lanes("lm_lanes");
#pragma HLS STREAM variable = lanes depth = kDepth
  EDGELLM_DEPTH(lanes, kDepth);
  EDGELLM_PROCESS(lm_dot_lanes<CFG>(s0, s1, s2, s3, qbuf, nt, vocab, hidden, lanes));
  EDGELLM_PROCESS(lm_unlane<CFG>(lanes, nt, vocab, dots));
  EDGELLM_JOIN;
}

}  // namespace edgellm
