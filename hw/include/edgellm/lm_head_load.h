// The LM head's weight rows (lm_head.h overview): beats of a row from a byte pointer, a wide port or the
// port's head FIFO (lm_read_beat), the per-port row loaders of a block into its banks (lm_load_row,
// LmRowLoader, lm_load_block: the banked dot process, lm_head_dot.h) and a block's beats popped from the
// head FIFOs in one cycle (lm_pop_block_beats: lm_dot_fifo, lm_head_dot.h, and the token lanes,
// lm_head_lanes.h). Configuration: lm_head_config.h.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/lm_head_config.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// Beat j of row v from a byte pointer: bytes v*hidden + j*P .. (lanes past the row end are 0).
template <int P>
ap_uint<8 * P> lm_read_beat(const int8_t *w, int v, int j, int hidden) {
#pragma HLS INLINE
  uint8_t by[P];
#pragma HLS ARRAY_PARTITION variable = by complete
  for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
    int i = j * P + l;
    by[l] = (uint8_t)(i < hidden ? w[(long)v * hidden + i] : (int8_t)0);
  }
  return bytes_word<P>(by);
}

// Beat j of row v from a wide port (hidden % P == 0).
template <int P>
ap_uint<8 * P> lm_read_beat(const ap_uint<8 * P> *w, int v, int j, int hidden) {
#pragma HLS INLINE
  return w[(long)v * (hidden / P) + j];
}

// The next beat of a row from the port's head FIFO (weight_fetch.h lm_fetch_rows pushes the beats
// lm_load_row reads, in the same order).
template <int P>
ap_uint<8 * P> lm_read_beat(hls::stream<ap_uint<8 * P> > *s, int v, int j, int hidden) {
#pragma HLS INLINE
  (void)v;
  (void)j;
  (void)hidden;
  return s->read();
}

// Port PORT's row of block `blk` (lm_block_row; none when the port sits the block out or past the
// vocabulary) into its bank: one burst of nbeats beats.
template <class CFG, int PORT, class WT>
void lm_load_row(WT *w, int blk, int vocab, int hidden, typename CFG::beat_t bank[]) {
#pragma HLS INLINE off
  enum { kBeats = CFG::BEATS_MAX };  // pragma constant
  const int v = lm_block_row<CFG>(blk, PORT);
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  if (v >= 0 && v < vocab) {
  lm_load_beats:
    for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
      bank[j] = lm_read_beat<CFG::P>(w, v, j, hidden);
    }
  }
}

// Load block `blk` over NPORTS ports concurrently: port p fills bank p. One specialization per port
// count, so each DATAFLOW region is straight-line calls on distinct ports and distinct banks (INLINE
// off: a region the tool inlined would run its loaders one after another). lm_load_block is the one
// function the dot process calls (one instance: ALLOCATION in lm_dot_blocks).
template <class CFG, int NP = CFG::NPORTS>
struct LmRowLoader;

template <class CFG>
struct LmRowLoader<CFG, 1> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(WT *w0, WT *, WT *, WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t[], beat_t[], beat_t[]) {
#pragma HLS INLINE
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
  }
};

template <class CFG>
struct LmRowLoader<CFG, 2> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *, WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t[], beat_t[]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
    lm_load_row<CFG, 1>(w1, blk, vocab, hidden, b1);
  }
};

template <class CFG>
struct LmRowLoader<CFG, 3> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *w2, WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t b2[], beat_t[]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
    lm_load_row<CFG, 1>(w1, blk, vocab, hidden, b1);
    lm_load_row<CFG, 2>(w2, blk, vocab, hidden, b2);
  }
};

template <class CFG>
struct LmRowLoader<CFG, 4> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *w2, WT *w3, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t b2[], beat_t b3[]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
    lm_load_row<CFG, 1>(w1, blk, vocab, hidden, b1);
    lm_load_row<CFG, 2>(w2, blk, vocab, hidden, b2);
    lm_load_row<CFG, 3>(w3, blk, vocab, hidden, b3);
  }
};

// Rows bank p holds: BEATS_MAX for the NPORTS banks in use, 1 for the unused placeholders.
template <class CFG, int PORT>
struct LmBankDepth {
  static constexpr int value = PORT < CFG::NPORTS ? CFG::BEATS_MAX : 1;
};

// Block `blk`'s rows into banks b0 .. b{NPORTS-1} (LmRowLoader), nothing past the last block.
template <class CFG, class WT>
void lm_load_block(WT *w0, WT *w1, WT *w2, WT *w3, int blk, int nblk, int vocab, int hidden,
                   typename CFG::beat_t b0[], typename CFG::beat_t b1[], typename CFG::beat_t b2[],
                   typename CFG::beat_t b3[]) {
#pragma HLS INLINE off
  if (blk < nblk) LmRowLoader<CFG>::run(w0, w1, w2, w3, blk, vocab, hidden, b0, b1, b2, b3);
}

// Beat j of every port's row of block blk, popped from the head FIFOs in one cycle; a port without a row
// in the block (past its share, or past the vocabulary: lm_block_has_row) is not fetched (its FIFO is not
// read) and dots as 0. Both dot processes (one token, token lanes) take their beats through it.
template <class CFG, class W, class B>
inline void lm_pop_block_beats(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                               int blk, int vocab, B r[kMaxHeadPorts]) {
#pragma HLS INLINE
  enum { NP = CFG::NPORTS };
  r[0] = lm_block_has_row<CFG>(blk, 0, vocab) ? s0->read() : B(0);
  r[1] = NP > 1 && lm_block_has_row<CFG>(blk, 1, vocab) ? s1->read() : B(0);
  r[2] = NP > 2 && lm_block_has_row<CFG>(blk, 2, vocab) ? s2->read() : B(0);
  r[3] = NP > 3 && lm_block_has_row<CFG>(blk, 3, vocab) ? s3->read() : B(0);
}

}  // namespace edgellm
