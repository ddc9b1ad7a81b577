// LM head on the fabric: int8 x int8 GEMV (vocab x hidden) with exact accumulation, logits as
// models/golden.py lm_head computes them, plus argmax and top-k without writing logits to DDR.
//
//   acc[t][v]    = sum_i q[t][i] * W[v][i]                       exact (ACC_BITS, int32)
//   logit[t][v]  = ((f32)acc / qs[t]) * row_scale[v]              two fp32 ops, in that order
//   argmax[t]    = lowest v of the largest logit                  (np.argmax on finite logits)
//   top-k[t]     = the k largest logits, descending; ties by lower v (k <= K_TOP <= 64)
//
// W is the Int8Head matrix, row-major [vocab][hidden] int8 in DDR, read in beats of P bytes. With
// NPORTS weight ports the rows go in blocks of at most NPORTS: with equal shares row v = b*NPORTS + p of
// block b is read by port p; with the TLMM's port shares SHARE0..3 port p reads s_p of every SHARE_SUM
// consecutive rows, a cycle of ROUNDS = max s_p blocks, the ports with rows left each taking the next row
// in port order (lm_head_config.h lm_block_row: every block's rows and the blocks follow the vocabulary in
// order, so the scoring below sees increasing v) -- one contiguous burst of `hidden` bytes per port and
// block -- into its own bank (the
// loaders are the processes of a DATAFLOW region, as the TLMM's, weight_buffer.h), so the ports
// stream concurrently. The dot loop reads beat j of every bank in the same cycle: NPORTS rows at P
// MACs each, NPORTS * P MACs per cycle. Banks are ping-ponged: block b+1 loads while block b is
// computed (for all tokens of the call). With a wide ap_uint<8*P> port, hidden must be a multiple
// of P; the byte pointer form accepts any hidden. Each weight row is fetched once per call (per
// MAX_TOK tokens).
//
// Structure of one call (per MAX_TOK tokens): load the tokens and their scales, then one DATAFLOW
// region of three processes joined by a FIFO of packets (block b, token t, the NPORTS exact
// accumulators) and a FIFO of row scales:
//   lm_dot_blocks  the row loaders and the dot loop above; per block one pipelined loop over
//                  (token, beat), nt * nbeats iterations at II 1, a packet at each token's last beat
//   lm_scales      row_scale[0 .. vocab) from DDR, one per cycle (the only DDR read of the region
//                  besides the weights)
//   lm_score       one pipelined loop over rows in packet order (block-major, then token, then p),
//                  so every token takes its rows in increasing v exactly as a serial loop would:
//                  the logit (fdiv then fmul, pipelined), its DDR write, the argmax and top-k update
//                  (it writes DDR and reads none, so no dependence through memory needs a claim).
// Scoring therefore overlaps the next dot products and row loads; results do not depend on NPORTS.
// Its only row-to-row dependence is the token's argmax / top-k update (K fp32 compares, then a
// select per slot), so its II per row, II_s, is that update's latency: 1 as targeted (PIPELINE
// II = 1), 2 where compare + select do not close in one cycle at the clock (C simulation cannot tell;
// the synthesis report can). It keeps up with the dot process when NPORTS * II_s <= nbeats (a token's
// NPORTS rows per nbeats dot cycles; e.g. 4 <= 96 at hidden 1536, P 16); below that (tiny hidden)
// the FIFO back-pressures the dot loop and a block costs nt * NPORTS * II_s instead.
//
// Cycles, with nbeats = ceil(hidden / P), nblk = ceil(vocab / SHARE_SUM) * ROUNDS (equal shares:
// ceil(vocab / NPORTS)), nt <= MAX_TOK tokens, and
// the tool's pipeline depths: D_q (token load), D_r (a row burst's read latency), D_d (dot loop:
// bank read, P products, adder tree, accumulate, packet write), D_s (scoring: fdiv + fmul +
// compare/select + logit write), D_o (output loop); c (1-2) the block loop's control per iteration:
//   load(block)    L = nbeats + D_r                   (all ports concurrently; a port's DDR rate
//                                                     below a beat a cycle stretches it: with shares
//                                                     the faster ports carry the rows of the later
//                                                     rounds, compiler/cost/lm_head.py)
//   dots(block)    C = nt * nbeats + D_d              (scoring hidden behind it when it keeps up)
//   block, steady  max(L, C) + c
//   call           nt + nt * nbeats + 2 D_q                            token scales, token load
//                + L + (nblk - 1) * (max(L, C) + c) + C               ping-ponged blocks
//                + NPORTS * II_s + D_s                                 scoring of the last packet
//                + nt * (min(k, K_TOP) + D_o)                          argmax / top-k out
// lm_head: the call's cycles summed over its ceil(n_tok / MAX_TOK) token blocks.
// From the top's head FIFOs with MAX_TOK == 1 (the generated top), the dot process is lm_dot_fifo: no
// banks, one loop over (block, beat), so a call's dots take nblk * nbeats + D_d cycles when the
// fetchers keep up (else the rows' DDR time).
// The multi-row head (issue 18's verify call): from the head FIFOs with 1 < MAX_TOK <= kHeadRowsMax
// (runtime/layout.py HEAD_ROWS_MAX) the dot process is lm_dot_rows, token lanes: the same one loop over
// (block, beat) as lm_dot_fifo, each popped beat dotted with beat j of every row in the same cycle
// (MAX_TOK x NPORTS x P int8 MACs, MAX_TOK x NPORTS accumulators), a lane packet per block unpacked into
// per-row packets (lm_unlane) for the scoring process above. nt <= MAX_TOK rows cost ONE pass over the
// head's weights: dots nblk * nbeats + D_d cycles as for one row, the scoring nt * NPORTS * II_s per block
// (hidden behind the dots when nt * NPORTS * II_s <= nbeats), out nt * (min(k, K_TOP) + D_o). Per row the
// results are the single-row head's bit for bit (the same exact sums, the same scoring order).
//
// Accumulator: |q * w| <= 128 * 128 = 2^14, so |acc| <= 2^14 * HID_MAX (HID_MAX = 16384: 2^28,
// 30 bits signed); ACC_BITS <= 32 requires HID_MAX < 2^17.
//
// Files: lm_head_config.h (LmHeadConfig, the packet type), lm_head_load.h (row beats, the per-port bank
// loaders, the FIFO pops), lm_head_dot.h (dot_beat, lm_dot_blocks, lm_dot_fifo), lm_head_lanes.h (the
// token lanes: lm_dot_rows), lm_head_score.h (lm_scales, lm_score, top-k); this header assembles them
// (LmDots, lm_head_stream, lm_head_block, lm_head) and includes them all.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/dataflow.h"
#include "edgellm/lm_head_config.h"
#include "edgellm/lm_head_dot.h"
#include "edgellm/lm_head_lanes.h"
#include "edgellm/lm_head_load.h"
#include "edgellm/lm_head_score.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// The dot process of lm_head_stream for a row source: banks (lm_dot_blocks) from memory, or from the
// head FIFOs: lm_dot_fifo when one token is compiled, the token lanes (lm_dot_rows: every fetched beat
// against MAX_TOK rows in the same cycle) for the multi-row head.
template <class CFG, class WT>
struct LmDots {
  static void run(WT *w0, WT *w1, WT *w2, WT *w3, const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt,
                  int vocab, int hidden, hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE
    lm_dot_blocks<CFG>(w0, w1, w2, w3, qbuf, nt, vocab, hidden, dots);
  }
};
template <class CFG, class W>
struct LmDots<CFG, hls::stream<W> > {
  static void run(hls::stream<W> *w0, hls::stream<W> *w1, hls::stream<W> *w2, hls::stream<W> *w3,
                  const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int vocab, int hidden,
                  hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE
    if (CFG::MAX_TOK == 1) {
      (void)nt;  // == 1
      lm_dot_fifo<CFG>(w0, w1, w2, w3, qbuf, vocab, hidden, dots);
    } else {
      lm_dot_rows<CFG>(w0, w1, w2, w3, qbuf, nt, vocab, hidden, dots);  // token lanes: one pass for nt rows
    }
  }
};

// The streaming region of one block of tokens: the dot process, the scale process and the scoring
// process run concurrently, joined by a FIFO of (block, token, NPORTS accumulators) packets and one
// of row scales. Of the data port's areas the scale process only reads (row_scale) and the scoring
// process only writes (logits, argmax, top-k); qs is on chip (lm_head_block).
template <class CFG, class WT, class PR, class PL, class PA, class PV>
void lm_head_stream(const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], const f32 qs[CFG::MAX_TOK], int nt,
                    WT *w0, WT *w1, WT *w2, WT *w3, const PR *row_scale, int vocab, int hidden,
                    bool write_logits, PL *logits, PA *argmax, int k, PA *top_idx, PV *top_val, LmHeadAt at) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
  enum { kDepth = 2 * CFG::MAX_TOK, kScaleDepth = 2 * CFG::NPORTS };  // a block's packets / scales of slack
  hls::stream<LmDotPacket<CFG> > dots("lm_dots");
#pragma HLS STREAM variable = dots depth = kDepth
  EDGELLM_DEPTH(dots, kDepth);
  hls::stream<f32> scales("lm_scales");
#pragma HLS STREAM variable = scales depth = kScaleDepth
  EDGELLM_DEPTH(scales, kScaleDepth);
  EDGELLM_PROCESS(LmDots<CFG, WT>::run(w0, w1, w2, w3, qbuf, nt, vocab, hidden, dots));
  EDGELLM_PROCESS(lm_scales<CFG>(row_scale, vocab, scales, at.row_scale));
  EDGELLM_PROCESS(lm_score<CFG>(dots, scales, qs, nt, vocab, write_logits, logits, argmax, k, top_idx, top_val,
                                at));
  EDGELLM_JOIN;
}

// One block of nt <= MAX_TOK tokens (see lm_head): load the tokens and their scales (token t's int8 row
// of hidden bytes at element at.q + t * hidden of q: its beats one per cycle (row_load_banked), packed into
// P-byte head beats on chip), then the streaming region.
template <class CFG, class PQ, class PS, class WT, class PR, class PL, class PA, class PV>
void lm_head_block(const PQ *q, const PS *qs, int nt, WT *w0, WT *w1, WT *w2, WT *w3, const PR *row_scale,
                   int vocab, int hidden, bool write_logits, PL *logits, PA *argmax, int k, PA *top_idx,
                   PV *top_val, LmHeadAt at) {
  enum { P = CFG::P, kBeats = CFG::BEATS_MAX, kMaxTok = CFG::MAX_TOK,
         QE = PortBeat<int8_t, PQ>::E, kPart = P > QE ? P : QE };
  typedef typename CFG::beat_t beat_t;
  static beat_t qbuf[CFG::MAX_TOK][CFG::BEATS_MAX];
#pragma HLS BIND_STORAGE variable = qbuf type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = qbuf dim = 1 type = complete  // one memory per row: token lanes
  static f32 qsb[CFG::MAX_TOK];
lm_load_qs:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    qsb[t] = mget<f32>(qs, at.qs + t);
  }
  const int nbeats = (hidden + P - 1) / P;
  enum { kRow = CFG::BEATS_MAX * P };
  int8_t row[kPart][(kRow + kPart - 1) / kPart];  // byte e in bank e % kPart (row_load_banked)
#pragma HLS ARRAY_PARTITION variable = row dim = 1 type = complete
lm_load_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    row_load_banked<kRow, kPart>(q, at.q + (long)t * hidden, hidden, row);
  lm_load_q:
    for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
      uint8_t by[P];
#pragma HLS ARRAY_PARTITION variable = by complete
      for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
        const int e = j * P + l;  // bank l when kPart == P
        by[l] = e < hidden ? (uint8_t)row[e % kPart][e / kPart] : (uint8_t)0;
      }
      qbuf[t][j] = bytes_word<P>(by);
    }
  }
  lm_head_stream<CFG>(qbuf, qsb, nt, w0, w1, w2, w3, row_scale, vocab, hidden, write_logits, logits, argmax, k,
                      top_idx, top_val, at);
}

// q: int8 [n_tok][hidden] with per-token scales qs; w0 .. w3: [vocab][hidden], one pointer per
// weight port, all at the head's address (port p reads the rows lm_block_row gives it: v % NPORTS == p
// with equal shares; pointers p >= NPORTS are never dereferenced); row_scale: [vocab]. write_logits: logits[n_tok][vocab];
// always: argmax[n_tok], top_idx/top_val[n_tok][k] (k <= K_TOP; slots beyond vocab get index -1 and
// value 0). logits must not overlap row_scale. Tokens go in blocks of MAX_TOK; W streams once per
// block. Operands at element offsets `at` (LmHeadAt; zero for plain arrays): the top passes its data
// and act beat pointers (one token).
template <class CFG, class PQ, class PS, class WT, class PR, class PL, class PA, class PV>
void lm_head(const PQ *q, const PS *qs, int n_tok, WT *w0, WT *w1, WT *w2, WT *w3, const PR *row_scale,
             int vocab, int hidden, bool write_logits, PL *logits, PA *argmax, int k, PA *top_idx, PV *top_val,
             LmHeadAt at = LmHeadAt()) {
  enum { kMaxBlocks = (CFG::MAX_TOK + 127) / CFG::MAX_TOK };  // pragma constant: 128 tokens
lm_blocks:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
    const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
    LmHeadAt b = at;
    b.q += (long)t0 * hidden, b.qs += t0, b.argmax += t0;
    b.logits += (long)t0 * (at.logits_row ? at.logits_row : vocab);
    b.top_idx += (long)t0 * k, b.top_val += (long)t0 * k;
    lm_head_block<CFG>(q, qs, nt, w0, w1, w2, w3, row_scale, vocab, hidden, write_logits, logits, argmax, k,
                       top_idx, top_val, b);
  }
}

// Single-pointer form: every port reads the head through w.
template <class CFG, class WT>
void lm_head(const int8_t *q, const f32 *qs, int n_tok, WT *w, const f32 *row_scale, int vocab, int hidden,
             bool write_logits, f32 *logits, int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  lm_head<CFG>(q, qs, n_tok, w, w, w, w, row_scale, vocab, hidden, write_logits, logits, argmax, k, top_idx,
               top_val);
}

}  // namespace edgellm
