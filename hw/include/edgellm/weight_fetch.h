// The weight fetcher's per-kernel halves: what each weight port pushes into its FIFO for one TLMM
// linear (tlmm_fetch_port) and for the int8 LM head (lm_fetch_rows), in exactly the order the
// kernel's loaders pop it. The program walker that calls them is top_fetch.h fetch_program.
//
// Why: the engine runs a layer's phases one after another (linears, element-wise stages, attention),
// but the weight ports have nothing to do outside the linears. A fetcher process beside the engine
// (top.h, DATAFLOW) walks the same descriptor program and streams the weights of the whole call
// through per-port FIFOs of fetch_depth words. It only waits when a FIFO is full, so while the engine
// runs attention or a norm, the next linears' weights keep arriving; the engine's tile loaders then
// take kFetchBeats byte columns per cycle from the FIFO (weight_buffer.h), faster than one HP port
// delivers, and drain it. Deadlock-free: the engine pops every FIFO in the order the fetcher pushed.
//
// TLMM (tlmm.h TlmmBody): for each token block of MAX_TOK tokens, for each tile, port P's share
// (port_slice_beats), packed kFetchBeats beats per word (low beat first, the last word of a share
// zero-padded). LM head (lm_head.h lm_dot_blocks): for each token block, for each block of rows, port
// P's row (lm_block_row: its share of each cycle of rows; none past the vocabulary), ceil(hidden / P) beats.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/lm_head.h"
#include "edgellm/tlmm.h"
#include "edgellm/weight_buffer.h"

namespace edgellm {

// Port P's share of every tile of one linear (n_out x k, the tiled image at w: the top's R-byte beat
// pointer, one beat per iteration; testbenches: bytes), for n_tok tokens: the beats tlmm_matmul's
// port-P loader reads, kFetchBeats per FIFO word.
template <class CFG, int P, class WT>
void tlmm_fetch_port(const WT *w, int n_out, int k, int n_tok, hls::stream<typename CFG::fword_t> &fifo) {
#pragma HLS INLINE off
  typedef typename CFG::fword_t word_t;
  const int R = CFG::R;
  enum { kMaxBlocks = (CFG::MAX_TOK + 1023) / CFG::MAX_TOK, kMaxTiles = CFG::TILES_MAX,
         kMaxBeats = CFG::CPP_MAX };
  const int nb = (k + kTritsPerByte - 1) / kTritsPerByte;
  const int unit = port_unit<CFG>(nb);
  const int ntiles = (n_out + R - 1) / R;
fetch_blocks:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
  fetch_tiles:
    for (int i = 0; i < ntiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTiles
      const int rows_i = n_out - i * R < R ? n_out - i * R : R;
      long first;
      int count;
      port_slice_beats<CFG, P>(i, rows_i, nb, unit, first, count);
      word_t wd = 0;
      int h = 0;
    fetch_beats:
      for (int j = 0; j < count; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBeats
        wd.range(8 * R * (h + 1) - 1, 8 * R * h) = read_beat<R>(w, first + j);
        if (h == kFetchBeats - 1 || j == count - 1) {
          fifo.write(wd);
          wd = 0;
          h = 0;
        } else {
          h++;
        }
      }
    }
  }
}

// Port PORT's rows of the int8 LM head ([vocab][hidden] at w: the top's P-byte beat pointer, hidden a
// multiple of P, one beat per iteration; testbenches: bytes) for n_tok tokens: the beats lm_head's
// port-PORT row loader reads.
template <class CFG, int PORT, class WT>
void lm_fetch_rows(const WT *w, int n_tok, int vocab, int hidden, hls::stream<typename CFG::beat_t> &fifo) {
#pragma HLS INLINE off
  enum { kBeats = CFG::BEATS_MAX, kMaxBlk = CFG::NBLK_MAX, kMaxBlocks = (CFG::MAX_TOK + 127) / CFG::MAX_TOK };
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = CFG::blocks(vocab);
lm_fetch_tok:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
  lm_fetch_blk:
    for (int b = 0; b < nblk; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlk
      const int v = lm_block_row<CFG>(b, PORT);
      if (v >= 0 && v < vocab) {
      lm_fetch_beats:
        for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
          fifo.write(lm_read_beat<CFG::P>(w, v, j, hidden));
        }
      }
    }
  }
}

}  // namespace edgellm
