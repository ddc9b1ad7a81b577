// The LM head's one-token dot processes (lm_head.h overview): the exact int8 beat product (dot_beat), the
// banked dot process from memory (lm_dot_block, lm_dot_blocks: ping-ponged banks filled by
// lm_head_load.h's loaders) and the one from the top's head FIFOs (lm_dot_fifo). The multi-row head's
// token lanes: lm_head_lanes.h; the scoring process that takes the packets: lm_head_score.h.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/lm_head_config.h"
#include "edgellm/lm_head_load.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// Exact dot product of P int8 pairs.
template <int P, int BITS>
ap_int<BITS> dot_beat(ap_uint<8 * P> a, ap_uint<8 * P> b) {
#pragma HLS INLINE
  uint8_t ab[P], bb[P];
#pragma HLS ARRAY_PARTITION variable = ab complete
#pragma HLS ARRAY_PARTITION variable = bb complete
  word_bytes<P>(a, ab);
  word_bytes<P>(b, bb);
  ap_int<BITS> s = 0;
  for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
    s += ap_int<16>((int16_t)((int8_t)ab[l] * (int8_t)bb[l]));
  }
  return s;
}

// All tokens against the rows of block `blk` held in banks b0 .. b{NPORTS-1}: NPORTS dot products
// per cycle (beat j of every bank with beat j of the token) in ONE pipelined loop over (token,
// beat), nt * nbeats iterations at II 1; the last beat of token t writes its packet (blk, t, acc).
template <class CFG>
void lm_dot_block(const typename CFG::beat_t b0[], const typename CFG::beat_t b1[],
                  const typename CFG::beat_t b2[], const typename CFG::beat_t b3[],
                  const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int blk, int nbeats,
                  hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, kMaxIter = CFG::MAX_TOK * CFG::BEATS_MAX };
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  acc_t acc[kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = acc complete
  for (int p = 0; p < kMaxHeadPorts; p++) {
#pragma HLS UNROLL
    acc[p] = 0;
  }
  int t = 0, j = 0;
lm_dot:
  for (int i = 0; i < nt * nbeats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxIter
    const beat_t q = qbuf[t][j];
    const acc_t zero = 0;
    const bool first = j == 0;  // a token's first beat restarts the sums
    acc[0] = (first ? zero : acc[0]) + dot_beat<CFG::P, CFG::ACC_BITS>(b0[j], q);
    if (NP > 1) acc[1] = (first ? zero : acc[1]) + dot_beat<CFG::P, CFG::ACC_BITS>(b1[j], q);
    if (NP > 2) acc[2] = (first ? zero : acc[2]) + dot_beat<CFG::P, CFG::ACC_BITS>(b2[j], q);
    if (NP > 3) acc[3] = (first ? zero : acc[3]) + dot_beat<CFG::P, CFG::ACC_BITS>(b3[j], q);
    if (j == nbeats - 1) {
      LmDotPacket<CFG> pk;
      for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
        pk.acc[p] = acc[p];
      }
      pk.blk = blk;
      pk.t = t;
      dots.write(pk);
      j = 0;
      t++;
    } else {
      j++;
    }
  }
}

// Dot process: every block of the vocabulary against the nt tokens in qbuf, packets in (block,
// token) order. Banks are ping-ponged: iteration b loads block b (all ports at once) into one bank
// set while block b - 1's dot products run from the other. The two call sites of the loader and of
// the dot loop are in exclusive branches and share one instance each (ALLOCATION).
template <class CFG, class WT>
void lm_dot_blocks(WT *w0, WT *w1, WT *w2, WT *w3,
                   const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int vocab, int hidden,
                   hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { kMaxBlk = CFG::NBLK_MAX };
  typedef typename CFG::beat_t beat_t;
  static beat_t ping0[LmBankDepth<CFG, 0>::value], ping1[LmBankDepth<CFG, 1>::value];
  static beat_t ping2[LmBankDepth<CFG, 2>::value], ping3[LmBankDepth<CFG, 3>::value];
  static beat_t pong0[LmBankDepth<CFG, 0>::value], pong1[LmBankDepth<CFG, 1>::value];
  static beat_t pong2[LmBankDepth<CFG, 2>::value], pong3[LmBankDepth<CFG, 3>::value];
#pragma HLS BIND_STORAGE variable = ping0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping3 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong3 type = ram_s2p impl = lutram
#pragma HLS ALLOCATION function instances = lm_load_block<CFG, WT> limit = 1
#pragma HLS ALLOCATION function instances = lm_dot_block<CFG> limit = 1
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = CFG::blocks(vocab);
lm_blocks:
  for (int b = 0; b <= nblk; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = kMaxBlk + 1
    // Block b into one bank set (all ports at once) while block b - 1 is computed from the other.
    if ((b & 1) == 0) {
      lm_load_block<CFG>(w0, w1, w2, w3, b, nblk, vocab, hidden, ping0, ping1, ping2, ping3);
      if (b > 0) lm_dot_block<CFG>(pong0, pong1, pong2, pong3, qbuf, nt, b - 1, nbeats, dots);
    } else {
      lm_load_block<CFG>(w0, w1, w2, w3, b, nblk, vocab, hidden, pong0, pong1, pong2, pong3);
      lm_dot_block<CFG>(ping0, ping1, ping2, ping3, qbuf, nt, b - 1, nbeats, dots);
    }
  }
}

// Dot process straight from the top's head FIFOs (weight_fetch.h lm_fetch_rows), one token
// (MAX_TOK == 1): ONE pipelined loop over (block, beat), nblk * nbeats iterations at II 1, beat j of
// port p's row of block b popped and multiplied in the same cycle; no banks, and no pipeline drain
// between blocks (the fetcher keeps the rows coming). A port without a row in the block (its share
// done, or past the vocabulary) is not read and dots as 0 (lm_score skips it). Packets as lm_dot_blocks.
template <class CFG, class W>
void lm_dot_fifo(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                 const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int vocab, int hidden,
                 hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, kMaxIter = CFG::NBLK_MAX * CFG::BEATS_MAX };
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = CFG::blocks(vocab);
  acc_t acc[kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = acc complete
  int b = 0, j = 0;
lm_dot_fifo_loop:
  for (int i = 0; i < nblk * nbeats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxIter
    const beat_t q = qbuf[0][j];
    const bool first = j == 0;  // a block's first beat restarts the sums
    beat_t r[kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = r complete
    lm_pop_block_beats<CFG>(s0, s1, s2, s3, b, vocab, r);
    for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
      acc[p] = (first ? acc_t(0) : acc[p]) + dot_beat<CFG::P, CFG::ACC_BITS>(r[p], q);
    }
    if (j == nbeats - 1) {
      LmDotPacket<CFG> pk;
      for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
        pk.acc[p] = acc[p];
      }
      pk.blk = b;
      pk.t = 0;
      dots.write(pk);
      j = 0;
      b++;
    } else {
      j++;
    }
  }
}

}  // namespace edgellm
