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
// stream concurrently. The compute reads beat j of every bank in the same cycle: NPORTS rows at P
// MACs each, NPORTS * P MACs per cycle. Banks are ping-ponged: block b+1 loads while block b is
// computed (for all tokens of the call). Logits, argmax and top-k then take the block's rows in
// increasing v, so results do not depend on NPORTS. With a wide ap_uint<8*P> port, hidden must be
// a multiple of P; the byte pointer form accepts any hidden. Each weight row is fetched once per
// call (per MAX_TOK tokens).
//
// Accumulator: |q * w| <= 128 * 128 = 2^14, so |acc| <= 2^14 * HID_MAX (HID_MAX = 16384: 2^28,
// 30 bits signed); ACC_BITS <= 32 requires HID_MAX < 2^17.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/numerics.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

const int kMaxHeadPorts = 4;  // weight ports the head can stream from (weight_buffer.h kMaxWeightPorts)

template <int P_, int HID_MAX_, int V_MAX_, int MAX_TOK_, int K_TOP_ = 64, int NPORTS_ = 1>
struct LmHeadConfig {
  static constexpr int P = P_;              // int8 MACs per cycle and port = bytes per weight beat
  static constexpr int HID_MAX = HID_MAX_;  // largest hidden size
  static constexpr int V_MAX = V_MAX_;      // largest vocabulary (trip counts only)
  static constexpr int MAX_TOK = MAX_TOK_;  // tokens per call
  static constexpr int K_TOP = K_TOP_;      // top-k capacity
  static constexpr int NPORTS = NPORTS_;    // weight ports streaming rows concurrently (rows per block)
  static_assert(P >= 1 && P <= 128, "P must be 1..128");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxHeadPorts, "NPORTS must be 1..4");
  static_assert(K_TOP >= 1 && K_TOP <= 64, "K_TOP must be 1..64");
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
void lm_load_row(const WT *w, int blk, int vocab, int hidden, typename CFG::beat_t bank[]) {
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
// count, so each DATAFLOW region is straight-line calls on distinct ports and distinct banks.
template <class CFG, int NP = CFG::NPORTS>
struct LmRowLoader;

template <class CFG>
struct LmRowLoader<CFG, 1> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(const WT *w0, const WT *, const WT *, const WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t[], beat_t[], beat_t[]) {
#pragma HLS INLINE
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
  }
};

template <class CFG>
struct LmRowLoader<CFG, 2> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(const WT *w0, const WT *w1, const WT *, const WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t[], beat_t[]) {
#pragma HLS DATAFLOW
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
    lm_load_row<CFG, 1>(w1, blk, vocab, hidden, b1);
  }
};

template <class CFG>
struct LmRowLoader<CFG, 3> {
  typedef typename CFG::beat_t beat_t;
  template <class WT>
  static void run(const WT *w0, const WT *w1, const WT *w2, const WT *, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t b2[], beat_t[]) {
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
  static void run(const WT *w0, const WT *w1, const WT *w2, const WT *w3, int blk, int vocab, int hidden,
                  beat_t b0[], beat_t b1[], beat_t b2[], beat_t b3[]) {
#pragma HLS DATAFLOW
    lm_load_row<CFG, 0>(w0, blk, vocab, hidden, b0);
    lm_load_row<CFG, 1>(w1, blk, vocab, hidden, b1);
    lm_load_row<CFG, 2>(w2, blk, vocab, hidden, b2);
    lm_load_row<CFG, 3>(w3, blk, vocab, hidden, b3);
  }
};

// All tokens against the rows of block `blk` held in banks b0 .. b{NPORTS-1}: NPORTS dot products
// per cycle (beat j of every bank with beat j of the token), then the rows' logits in increasing v
// into each token's running argmax (bestv, besti) and top-k (tv, ti).
template <class CFG>
void lm_compute_block(const typename CFG::beat_t b0[], const typename CFG::beat_t b1[],
                      const typename CFG::beat_t b2[], const typename CFG::beat_t b3[],
                      const typename CFG::beat_t qbuf[][CFG::BEATS_MAX], int nt, int blk, int vocab,
                      int nbeats, const f32 *qs, const f32 *row_scale, bool write_logits, f32 *logits,
                      f32 tv[][CFG::K_TOP], int32_t ti[][CFG::K_TOP], f32 bestv[], int32_t besti[]) {
#pragma HLS INLINE off
  enum { NP = CFG::NPORTS, K = CFG::K_TOP, kBeats = CFG::BEATS_MAX, kMaxTok = CFG::MAX_TOK };
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
lm_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    acc_t acc[kMaxHeadPorts];
#pragma HLS ARRAY_PARTITION variable = acc complete
    for (int p = 0; p < kMaxHeadPorts; p++) {
#pragma HLS UNROLL
      acc[p] = 0;
    }
  lm_dot:
    for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
      const beat_t q = qbuf[t][j];
      acc[0] += dot_beat<CFG::P, CFG::ACC_BITS>(b0[j], q);
      if (NP > 1) acc[1] += dot_beat<CFG::P, CFG::ACC_BITS>(b1[j], q);
      if (NP > 2) acc[2] += dot_beat<CFG::P, CFG::ACC_BITS>(b2[j], q);
      if (NP > 3) acc[3] += dot_beat<CFG::P, CFG::ACC_BITS>(b3[j], q);
    }
  lm_block_rows:
    for (int p = 0; p < NP; p++) {
      const int v = blk * NP + p;
      if (v < vocab) {
        f32 logit = ((f32)(int32_t)acc[p] / qs[t]) * row_scale[v];
        if (write_logits) logits[(long)t * vocab + v] = logit;
        if (besti[t] < 0 || logit > bestv[t]) {
          bestv[t] = logit;
          besti[t] = v;
        }
        topk_insert<K>(tv[t], ti[t], logit, v);
      }
    }
  }
}

// Rows bank p holds: BEATS_MAX for the NPORTS banks in use, 1 for the unused placeholders.
template <class CFG, int PORT>
struct LmBankDepth {
  static constexpr int value = PORT < CFG::NPORTS ? CFG::BEATS_MAX : 1;
};

// One block of nt <= MAX_TOK tokens (see lm_head).
template <class CFG, class WT>
void lm_head_block(const int8_t *q, const f32 *qs, int nt, const WT *w0, const WT *w1, const WT *w2,
                   const WT *w3, const f32 *row_scale, int vocab, int hidden, bool write_logits, f32 *logits,
                   int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  enum { P = CFG::P, K = CFG::K_TOP, NP = CFG::NPORTS, kBeats = CFG::BEATS_MAX, kMaxTok = CFG::MAX_TOK,
         kMaxBlk = (CFG::V_MAX + CFG::NPORTS - 1) / CFG::NPORTS };
  typedef typename CFG::beat_t beat_t;
  static beat_t qbuf[CFG::MAX_TOK][CFG::BEATS_MAX];
  static beat_t ping0[LmBankDepth<CFG, 0>::value], ping1[LmBankDepth<CFG, 1>::value];
  static beat_t ping2[LmBankDepth<CFG, 2>::value], ping3[LmBankDepth<CFG, 3>::value];
  static beat_t pong0[LmBankDepth<CFG, 0>::value], pong1[LmBankDepth<CFG, 1>::value];
  static beat_t pong2[LmBankDepth<CFG, 2>::value], pong3[LmBankDepth<CFG, 3>::value];
#pragma HLS BIND_STORAGE variable = qbuf type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = ping0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping3 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong3 type = ram_s2p impl = lutram
  f32 tv[CFG::MAX_TOK][K], bestv[CFG::MAX_TOK];
  int32_t ti[CFG::MAX_TOK][K], besti[CFG::MAX_TOK];
#pragma HLS ARRAY_PARTITION variable = tv dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ti dim = 2 type = complete
  const int nbeats = (hidden + P - 1) / P;
  const int nblk = (vocab + NP - 1) / NP;
lm_init:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    besti[t] = -1;
    bestv[t] = 0.0f;
    for (int j = 0; j < K; j++) {
#pragma HLS UNROLL
      ti[t][j] = -1;
      tv[t][j] = 0.0f;
    }
  lm_load_q:
    for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
      qbuf[t][j] = lm_read_beat<P>(q, t, j, hidden);
    }
  }
  LmRowLoader<CFG>::run(w0, w1, w2, w3, 0, vocab, hidden, ping0, ping1, ping2, ping3);
lm_blocks:
  for (int b = 0; b < nblk; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlk
    // Load block b+1 into one bank set (all ports at once) while block b is computed from the other.
    if ((b & 1) == 0) {
      if (b + 1 < nblk) LmRowLoader<CFG>::run(w0, w1, w2, w3, b + 1, vocab, hidden, pong0, pong1, pong2, pong3);
      lm_compute_block<CFG>(ping0, ping1, ping2, ping3, qbuf, nt, b, vocab, nbeats, qs, row_scale, write_logits,
                            logits, tv, ti, bestv, besti);
    } else {
      if (b + 1 < nblk) LmRowLoader<CFG>::run(w0, w1, w2, w3, b + 1, vocab, hidden, ping0, ping1, ping2, ping3);
      lm_compute_block<CFG>(pong0, pong1, pong2, pong3, qbuf, nt, b, vocab, nbeats, qs, row_scale, write_logits,
                            logits, tv, ti, bestv, besti);
    }
  }
lm_out:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    argmax[t] = besti[t];
    for (int j = 0; j < K; j++) {
#pragma HLS PIPELINE II = 1
      if (j < k) {
        top_idx[t * k + j] = ti[t][j];
        top_val[t * k + j] = ti[t][j] >= 0 ? tv[t][j] : 0.0f;
      }
    }
  }
}

// q: int8 [n_tok][hidden] with per-token scales qs; w0 .. w3: [vocab][hidden], one pointer per
// weight port, all at the head's address (port p reads rows v with v % NPORTS == p; pointers
// p >= NPORTS are never dereferenced); row_scale: [vocab]. write_logits: logits[n_tok][vocab];
// always: argmax[n_tok], top_idx/top_val[n_tok][k] (k <= K_TOP; slots beyond vocab get index -1 and
// value 0). Tokens go in blocks of MAX_TOK; W streams once per block.
template <class CFG, class WT>
void lm_head(const int8_t *q, const f32 *qs, int n_tok, const WT *w0, const WT *w1, const WT *w2, const WT *w3,
             const f32 *row_scale, int vocab, int hidden, bool write_logits, f32 *logits, int32_t *argmax,
             int k, int32_t *top_idx, f32 *top_val) {
  enum { kMaxBlocks = (CFG::MAX_TOK + 127) / CFG::MAX_TOK };  // pragma constant: 128 tokens
lm_blocks:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
    const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
    lm_head_block<CFG>(q + (long)t0 * hidden, qs + t0, nt, w0, w1, w2, w3, row_scale, vocab, hidden,
                       write_logits, logits + (long)t0 * vocab, argmax + t0, k, top_idx + (long)t0 * k,
                       top_val + (long)t0 * k);
  }
}

// Single-pointer form: every port reads the head through w.
template <class CFG, class WT>
void lm_head(const int8_t *q, const f32 *qs, int n_tok, const WT *w, const f32 *row_scale, int vocab, int hidden,
             bool write_logits, f32 *logits, int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  enum { kMaxBlocks = (CFG::MAX_TOK + 127) / CFG::MAX_TOK };  // pragma constant: 128 tokens
lm_blocks_1:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
    const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
    lm_head_block<CFG>(q + (long)t0 * hidden, qs + t0, nt, w, w, w, w, row_scale, vocab, hidden, write_logits,
                       logits + (long)t0 * vocab, argmax + t0, k, top_idx + (long)t0 * k, top_val + (long)t0 * k);
  }
}

}  // namespace edgellm
