// LM head on the fabric: int8 x int8 GEMV (vocab x hidden) with exact accumulation, logits as
// models/golden.py lm_head computes them, plus argmax and top-k without writing logits to DDR.
//
//   acc[t][v]    = sum_i q[t][i] * W[v][i]                       exact (ACC_BITS, int32)
//   logit[t][v]  = ((f32)acc / qs[t]) * row_scale[v]              two fp32 ops, in that order
//   argmax[t]    = lowest v of the largest logit                  (np.argmax on finite logits)
//   top-k[t]     = the k largest logits, descending; ties by lower v (k <= K_TOP <= 64)
//
// W is the Int8Head matrix, row-major [vocab][hidden] int8 in DDR, read in beats of P bytes
// (P MACs per cycle). With a wide ap_uint<8*P> port, hidden must be a multiple of P; the byte
// pointer form accepts any hidden. Each weight row is fetched once for all tokens of a call:
// token 0 is computed while the row streams in (decode: one pass at II=1), later tokens reuse the
// row from an on-chip buffer.
//
// Accumulator: |q * w| <= 128 * 128 = 2^14, so |acc| <= 2^14 * HID_MAX (HID_MAX = 16384: 2^28,
// 30 bits signed); ACC_BITS <= 32 requires HID_MAX < 2^17.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/numerics.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

template <int P_, int HID_MAX_, int V_MAX_, int MAX_TOK_, int K_TOP_ = 64>
struct LmHeadConfig {
  static constexpr int P = P_;              // int8 MACs per cycle = bytes per weight beat
  static constexpr int HID_MAX = HID_MAX_;  // largest hidden size
  static constexpr int V_MAX = V_MAX_;      // largest vocabulary (trip counts only)
  static constexpr int MAX_TOK = MAX_TOK_;  // tokens per call
  static constexpr int K_TOP = K_TOP_;      // top-k capacity
  static_assert(P >= 1 && P <= 128, "P must be 1..128");
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
  ap_uint<8 * P> b = 0;
  for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
    int i = j * P + l;
    b.range(8 * l + 7, 8 * l) = (uint8_t)(i < hidden ? w[(long)v * hidden + i] : (int8_t)0);
  }
  return b;
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
  ap_int<BITS> s = 0;
  for (int l = 0; l < P; l++) {
#pragma HLS UNROLL
    ap_int<8> x = a.range(8 * l + 7, 8 * l);
    ap_int<8> y = b.range(8 * l + 7, 8 * l);
    s += ap_int<16>(x * y);
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

// One block of nt <= MAX_TOK tokens (see lm_head).
template <class CFG, class WT>
void lm_head_block(const int8_t *q, const f32 *qs, int nt, const WT *w, const f32 *row_scale, int vocab,
                   int hidden, bool write_logits, f32 *logits, int32_t *argmax, int k, int32_t *top_idx,
                   f32 *top_val) {
  enum { P = CFG::P, K = CFG::K_TOP, kBeats = CFG::BEATS_MAX, kMaxTok = CFG::MAX_TOK, kMaxV = CFG::V_MAX };
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::acc_t acc_t;
  static beat_t qbuf[CFG::MAX_TOK][CFG::BEATS_MAX];
  static beat_t row[CFG::BEATS_MAX];
  f32 tv[CFG::MAX_TOK][K], bestv[CFG::MAX_TOK];
  int32_t ti[CFG::MAX_TOK][K], besti[CFG::MAX_TOK];
#pragma HLS ARRAY_PARTITION variable = tv dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ti dim = 2 type = complete
#pragma HLS BIND_STORAGE variable = qbuf type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = row type = ram_2p impl = bram
  const int nbeats = (hidden + P - 1) / P;
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
lm_rows:
  for (int v = 0; v < vocab; v++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxV
    const f32 rs = row_scale[v];
  lm_tok:
    for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
      acc_t acc = 0;
    lm_dot:
      for (int j = 0; j < nbeats; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
        beat_t b;
        if (t == 0) {  // the row streams in while token 0 uses it
          b = lm_read_beat<P>(w, v, j, hidden);
          row[j] = b;
        } else {
          b = row[j];
        }
        acc += dot_beat<P, CFG::ACC_BITS>(b, qbuf[t][j]);
      }
      f32 logit = ((f32)(int32_t)acc / qs[t]) * rs;
      if (write_logits) logits[(long)t * vocab + v] = logit;
      if (besti[t] < 0 || logit > bestv[t]) {
        bestv[t] = logit;
        besti[t] = v;
      }
      topk_insert<K>(tv[t], ti[t], logit, v);
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

// q: int8 [n_tok][hidden] with per-token scales qs; w: [vocab][hidden]; row_scale: [vocab].
// write_logits: logits[n_tok][vocab]; always: argmax[n_tok], top_idx/top_val[n_tok][k] (k <= K_TOP;
// slots beyond vocab get index -1 and value 0). Tokens go in blocks of MAX_TOK; W streams once per
// block.
template <class CFG, class WT>
void lm_head(const int8_t *q, const f32 *qs, int n_tok, const WT *w, const f32 *row_scale, int vocab,
             int hidden, bool write_logits, f32 *logits, int32_t *argmax, int k, int32_t *top_idx,
             f32 *top_val) {
  enum { kMaxBlocks = (CFG::MAX_TOK + 127) / CFG::MAX_TOK };  // pragma constant: 128 tokens
lm_blocks:
  for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
    const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
    lm_head_block<CFG>(q + (long)t0 * hidden, qs + t0, nt, w, row_scale, vocab, hidden, write_logits,
                       logits + (long)t0 * vocab, argmax + t0, k, top_idx + (long)t0 * k,
                       top_val + (long)t0 * k);
  }
}

}  // namespace edgellm
