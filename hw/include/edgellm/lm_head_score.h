// The LM head's scoring side (lm_head.h overview): the running top-k insertion (topk_insert), the scale
// process (lm_scales), the logits' writer (LmLogits), the operand offsets (LmHeadAt) and the scoring
// process (lm_score: logit, argmax, top-k per row, in packet order). The packets come from the dot
// processes (lm_head_dot.h, lm_head_lanes.h); configuration: lm_head_config.h.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/lm_head_config.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

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

// Scale process: the row scales row_scale[0 .. vocab) (element offset rs_off) in order into the scoring
// process's FIFO, one beat of E scales per E cycles (one scale per cycle; the last beat read whole, the
// scales past the vocabulary dropped). The scoring process takes block b's rows' scales (in order: the
// blocks' rows follow the vocabulary, lm_block_row) with the block's first token and keeps them for the
// others, so the scoring loop only writes DDR: a loop that
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
  f32 fields[ROWS][1];  // unused: the beat form's, named here so lm_score's ARRAY_PARTITION names both
  long off, row;
  void open(PL *, long off_, int vocab_, long row_, int) { off = off_, row = row_ ? row_ : vocab_; }
  void put(PL *logits, int t, int v, f32 x) { logits[off + (long)t * row + v] = x; }
  void close(PL *) {}
};
template <int B, int ROWS>
struct LmLogits<ap_uint<B>, ROWS> {
  enum { E = Beat<f32, B>::E };
  RowStore<f32, ap_uint<B>, B> st[ROWS];  // each token's row state (its own fields unused: v below)
  f32 fields[ROWS][E];  // each token's beat being assembled: registers (lm_score partitions lo.fields)
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
    fields[t][i] = x;
    if (i == E - 1 || v == st[t].n - 1) st[t].put_fields(m, j, fields[t]);  // a whole beat per E rows
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
         kMaxRows = CFG::NBLK_MAX * CFG::NPORTS * CFG::MAX_TOK };
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
  const int nrows = CFG::blocks(vocab) * NP * nt;
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
#pragma HLS ARRAY_PARTITION variable = lo.fields dim = 0 type = complete
  lo.open(logits, at.logits, vocab, at.logits_row, nt);
lm_score_rows:
  for (int i = 0; i < nrows; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxRows
    if (p == 0) pk = dots.read();
    const int t = pk.t;
    const int v = lm_block_row<CFG>(pk.blk, p);
    if (v >= 0 && v < vocab) {
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

}  // namespace edgellm
