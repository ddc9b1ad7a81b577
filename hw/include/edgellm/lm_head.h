// LM head on the fabric: int8 x int8 GEMV (vocab x hidden) with exact accumulation, logits as
// models/golden.py lm_head computes them, plus argmax and top-k without writing logits to DDR.
//
//   acc[t][v]    = sum_i q[t][i] * W[v][i]                       exact (ACC_BITS, int32)
//   logit[t][v]  = ((f32)acc / qs[t]) * row_scale[v]              two fp32 ops, in that order
//   argmax[t]    = lowest v of the largest logit                  (np.argmax on finite logits)
//   top-k[t]     = the k largest logits, descending; ties by lower v (k <= K_TOP <= 64)
//
// W is the Int8Head matrix, row-major [vocab][hidden] int8 in DDR, read in beats of P bytes. With
// NPORTS weight ports the rows go in blocks of NPORTS: row v = b*NPORTS + p of block b is read by
// port p -- one contiguous burst of `hidden` bytes per port and block -- into its own bank (the
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
// Cycles, with nbeats = ceil(hidden / P), nblk = ceil(vocab / NPORTS), nt <= MAX_TOK tokens, and
// the tool's pipeline depths: D_q (token load), D_r (a row burst's read latency), D_d (dot loop:
// bank read, P products, adder tree, accumulate, packet write), D_s (scoring: fdiv + fmul +
// compare/select + logit write), D_o (output loop); c (1-2) the block loop's control per iteration:
//   load(block)    L = nbeats + D_r                   (all ports concurrently)
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
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/dataflow.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
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

// Running top-k of one token: sorted descending, ties by lower index; idx -1 marks an empty slot.
// Insert (val, idx) with idx increasing over calls: it goes after every entry >= val.
template <int K>
void topk_insert(f32 val[K], int32_t idx[K], f32 v, int32_t i) {
#pragma HLS INLINE
  bool ge[K];
  for (int j = 0; j < K; j++) {
#pragma HLS UNROLL
    ge[j] = idx[j] >= 0 && val[j] >= v;
  }
  for (int j = K - 1; j >= 0; j--) {
#pragma HLS UNROLL
    if (!ge[j]) {
      if (j > 0 && !ge[j - 1]) {
        val[j] = val[j - 1];
        idx[j] = idx[j - 1];
      } else {
        val[j] = v;
        idx[j] = i;
      }
    }
  }
}

// Port PORT's row of block `blk` (row v = blk * NPORTS + PORT; nothing past the vocabulary) into
// its bank: one burst of nbeats beats.
template <class CFG, int PORT, class WT>
void lm_load_row(WT *w, int blk, int vocab, int hidden, typename CFG::beat_t bank[]) {
#pragma HLS INLINE off
  enum { kBeats = CFG::BEATS_MAX };  // pragma constant
  const int v = blk * CFG::NPORTS + PORT;
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  if (v < vocab) {
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

// What the dot process hands the scoring process: the exact dot products of token t with the
// NPORTS rows of block blk (row v = blk * NPORTS + p in acc[p]; rows past the vocabulary carry 0).
template <class CFG>
struct LmDotPacket {
  typename CFG::acc_t acc[CFG::NPORTS];
  int32_t blk;
  int32_t t;
};

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

// Dot process: every block of the vocabulary against the nt tokens in qbuf, packets in (block,
// token) order. Banks are ping-ponged: iteration b loads block b (all ports at once) into one bank
// set while block b - 1's dot products run from the other. The two call sites of the loader and of
// the dot loop are in exclusive branches and share one instance each (ALLOCATION).
template <class CFG, class WT>
void lm_dot_blocks(WT *w0, WT *w1, WT *w2, WT *w3,
                   const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int vocab, int hidden,
                   hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, kMaxBlk = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS };
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
  const int nblk = (vocab + NP - 1) / NP;
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

// Scale process: the row scales row_scale[0 .. vocab) (element offset rs_off) in order into the scoring
// process's FIFO, one beat of E scales per E cycles (one scale per cycle; the last beat read whole, the
// scales past the vocabulary dropped). The scoring process takes block b's NPORTS scales with the
// block's first token and keeps them for the others, so the scoring loop only writes DDR: a loop that
// reads one DDR area and writes another through one m_axi port would need a dependence claim the tool
// does not take on bundled arguments (UG1399: DEPENDENCE on m_axi arguments bundled with others is not
// supported).
template <class CFG, class PR>
void lm_scales(const PR *row_scale, int vocab, hls::stream<f32> &scales, long rs_off = 0) {
#pragma HLS INLINE off
  enum { E = PortBeat<f32, PR>::E, kMaxBeats = (CFG::V_MAX + E - 1) / E };
lm_scale_beats:
  for (int b = 0; b < (vocab + E - 1) / E; b++) {
#pragma HLS PIPELINE II = E
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBeats
    f32 v[E];
#pragma HLS ARRAY_PARTITION variable = v complete
    chunk_get_upto<E>(row_scale, rs_off, b, vocab, v);
    for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
      if (b * E + i < vocab) scales.write(v[i]);
    }
  }
}

// Where the scoring process writes token t's logit of row v (token t's row `row` elements after token
// t - 1's; 0: vocab): a plain array element by element; a beat pointer (rows in increasing v per token)
// one whole beat per E rows, each token's beat assembled on chip (one RowStore per token, ROWS of them),
// its last beat merged with what the buffer held past the vocabulary. With several tokens their rows must
// not share a beat (the top: row a multiple of every data beat, runtime/layout.py logits_row).
template <class PL, int ROWS = 1>
struct LmLogits {
  long off, row;
  void open(PL *, long off_, int vocab_, long row_, int) { off = off_, row = row_ ? row_ : vocab_; }
  void put(PL *logits, int t, int v, f32 x) { logits[off + (long)t * row + v] = x; }
  void close(PL *) {}
};
template <int B, int ROWS>
struct LmLogits<ap_uint<B>, ROWS> {
  enum { E = Beat<f32, B>::E };
  RowStore<f32, ap_uint<B>, B> st[ROWS];
  void open(ap_uint<B> *m, long off_, int vocab_, long row_, int nt) {
    const long row = row_ ? row_ : vocab_;
  lm_logits_open:
    for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS
      st[t].open(m, off_ + (long)t * row, vocab_);
    }
  }
  void put(ap_uint<B> *m, int t, int v, f32 x) {
#pragma HLS INLINE
    const int j = (v + st[t].s) / E, i = (v + st[t].s) % E;
    st[t].v[i] = x;
    if (i == E - 1 || v == st[t].n - 1) st[t].put(m, j);  // a whole beat (one write per E rows of a token)
  }
  void close(ap_uint<B> *) {}
};

// Scoring process: one row per iteration of one pipelined loop (target II 1), rows in packet order,
// so each token sees its rows in increasing v: logit = ((f32)acc / qs[t]) * row_scale[v] (the
// scale from the scale process's FIFO), the logit to DDR, then the token's argmax and top-k
// insertion (topk_insert). The only dependence from row to row is that update (the K compares and
// selects on the token's slots); the divide and multiply are pipelined ahead of it. It reads no
// DDR (qs is the caller's on-chip copy). Then argmax and the first k top-k slots of every token.
// logits, argmax, top_idx, top_val at element offsets at.logits .. at.top_val (LmHeadAt); beat pointers
// take one token a call (the top's).
struct LmHeadAt {
  long q, qs, row_scale, logits, argmax, top_idx, top_val;  // element offsets of each operand
  long logits_row;  // elements from one token's logits to the next (0: vocab; the top: layout.logits_row)
};

template <class CFG, class PL, class PA, class PV>
void lm_score(hls::stream<LmDotPacket<CFG> > &dots, hls::stream<f32> &scales, const f32 qs[CFG::MAX_TOK], int nt,
              int vocab, bool write_logits, PL *logits, PA *argmax, int k, PA *top_idx, PV *top_val,
              LmHeadAt at = LmHeadAt()) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, K = CFG::K_TOP, kMaxTok = CFG::MAX_TOK,
         kMaxRows = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS * CFG::NPORTS * CFG::MAX_TOK };
  f32 tv[CFG::MAX_TOK][K], bestv[CFG::MAX_TOK], qsl[CFG::MAX_TOK], scl[kMaxHeadPorts];
  int32_t ti[CFG::MAX_TOK][K], besti[CFG::MAX_TOK];
#pragma HLS ARRAY_PARTITION variable = tv dim = 0 type = complete
#pragma HLS ARRAY_PARTITION variable = ti dim = 0 type = complete
#pragma HLS ARRAY_PARTITION variable = bestv dim = 0 type = complete
#pragma HLS ARRAY_PARTITION variable = besti dim = 0 type = complete
#pragma HLS ARRAY_PARTITION variable = qsl dim = 0 type = complete
#pragma HLS ARRAY_PARTITION variable = scl dim = 0 type = complete
lm_score_init:
  for (int t = 0; t < nt; t++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    qsl[t] = qs[t];
    besti[t] = -1;
    bestv[t] = 0.0f;
    for (int j = 0; j < K; j++) {
#pragma HLS UNROLL
      ti[t][j] = -1;
      tv[t][j] = 0.0f;
    }
  }
  const int nrows = (vocab + NP - 1) / NP * NP * nt;
  LmDotPacket<CFG> pk;
  pk.blk = 0;
  pk.t = 0;
  for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
    pk.acc[p] = 0;
  }
  for (int p = 0; p < kMaxHeadPorts; p++) {
#pragma HLS UNROLL
    scl[p] = 0.0f;
  }
  int p = 0;
  LmLogits<PL, CFG::MAX_TOK> lo;
  lo.open(logits, at.logits, vocab, at.logits_row, nt);
lm_score_rows:
  for (int i = 0; i < nrows; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxRows
    if (p == 0) pk = dots.read();
    const int t = pk.t;
    const int v = pk.blk * NP + p;
    if (v < vocab) {
      if (t == 0) scl[p] = scales.read();  // the block's first token brings its rows' scales
      f32 logit = ((f32)(int32_t)pk.acc[p] / qsl[t]) * scl[p];
      if (write_logits) lo.put(logits, t, v, logit);
      if (besti[t] < 0 || logit > bestv[t]) {
        bestv[t] = logit;
        besti[t] = v;
      }
      topk_insert<K>(tv[t], ti[t], logit, v);
    }
    p = p == NP - 1 ? 0 : p + 1;
  }
  lo.close(logits);
  // argmax and the top-k slots: a few words a token, each its beat's read-modify-write (mput)
lm_out:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    mput<int32_t>(argmax, at.argmax + t, besti[t]);
  lm_out_k:
    for (int j = 0; j < K && j < k; j++) {
      mput<int32_t>(top_idx, at.top_idx + (long)t * k + j, ti[t][j]);
      mput<f32>(top_val, at.top_val + (long)t * k + j, ti[t][j] >= 0 ? tv[t][j] : 0.0f);
    }
  }
}

// Beat j of every port's row of the block starting at row v0, popped from the head FIFOs in one cycle;
// rows past the vocabulary are not fetched (their FIFOs are not read) and dot as 0. Both dot processes
// (one token, token lanes) take their beats through it.
template <int NP, class W, class B>
inline void lm_pop_block_beats(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                               int v0, int vocab, B r[kMaxHeadPorts]) {
#pragma HLS INLINE
  r[0] = s0->read();  // v0 < vocab for every block
  r[1] = NP > 1 && v0 + 1 < vocab ? s1->read() : B(0);
  r[2] = NP > 2 && v0 + 2 < vocab ? s2->read() : B(0);
  r[3] = NP > 3 && v0 + 3 < vocab ? s3->read() : B(0);
}

// Dot process straight from the top's head FIFOs (weight_fetch.h lm_fetch_rows), one token
// (MAX_TOK == 1): ONE pipelined loop over (block, beat), nblk * nbeats iterations at II 1, beat j of
// port p's row of block b popped and multiplied in the same cycle; no banks, and no pipeline drain
// between blocks (the fetcher keeps the rows coming). Rows past the vocabulary are not fetched and
// dot as 0 (lm_score ignores them). Packets as lm_dot_blocks.
template <class CFG, class W>
void lm_dot_fifo(hls::stream<W> *s0, hls::stream<W> *s1, hls::stream<W> *s2, hls::stream<W> *s3,
                 const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int vocab, int hidden,
                 hls::stream<LmDotPacket<CFG> > &dots) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, kMaxIter = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS * CFG::BEATS_MAX };
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = (vocab + NP - 1) / NP;
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
    lm_pop_block_beats<NP>(s0, s1, s2, s3, b * NP, vocab, r);
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

// What the lane dot process hands the unpacking process: the exact dot products of every token lane
// (row t of the call, t < MAX_TOK) with the NPORTS rows of block blk (row v = blk * NPORTS + p in
// acc[t][p]; rows past the vocabulary carry 0, lanes past the call's rows are never read).
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
  enum { NP = CFG::NPORTS, L = CFG::MAX_TOK,
         kMaxIter = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS * CFG::BEATS_MAX };
  static_assert(CFG::MAX_TOK >= 1 && CFG::MAX_TOK <= kHeadRowsMax, "token lanes: 1 .. kHeadRowsMax rows");
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  const int nbeats = (hidden + CFG::P - 1) / CFG::P;
  const int nblk = (vocab + NP - 1) / NP;
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
    lm_pop_block_beats<NP>(s0, s1, s2, s3, b * NP, vocab, r);
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
  enum { NP = CFG::NPORTS, kMaxIter = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS * CFG::MAX_TOK };
  const int nblk = (vocab + NP - 1) / NP;
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
// of hidden bytes at element at.q + t * hidden of q: its beats one per cycle (row_load), packed into
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
  int8_t row[CFG::BEATS_MAX * P];
#pragma HLS ARRAY_PARTITION variable = row type = cyclic factor = kPart
lm_load_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    row_load<CFG::BEATS_MAX * P>(q, at.q + (long)t * hidden, hidden, row);
  lm_load_q:
    for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
      uint8_t by[P];
#pragma HLS ARRAY_PARTITION variable = by complete
      for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
        by[l] = j * P + l < hidden ? (uint8_t)row[j * P + l] : (uint8_t)0;
      }
      qbuf[t][j] = bytes_word<P>(by);
    }
  }
  lm_head_stream<CFG>(qbuf, qsb, nt, w0, w1, w2, w3, row_scale, vocab, hidden, write_logits, logits, argmax, k,
                      top_idx, top_val, at);
}

// q: int8 [n_tok][hidden] with per-token scales qs; w0 .. w3: [vocab][hidden], one pointer per
// weight port, all at the head's address (port p reads rows v with v % NPORTS == p; pointers
// p >= NPORTS are never dereferenced); row_scale: [vocab]. write_logits: logits[n_tok][vocab];
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
