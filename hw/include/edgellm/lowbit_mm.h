// Low-bit matmul engine: b-bit group-quantized weights (b = 2..8, groups of G = 16..256 inputs) times
// int8 activations, W{b}A8 (docs/numerics.md "W{b}A8"; numpy twin models/lowbit.py lowbit_linear;
// the stream: compiler/packing_lowbit.py; docs/hls.md "Low-bit linears (issue 17)").
//
// Bit-serial table lookup, after T-MAC (Wei et al., "T-MAC: CPU Renaissance via Table Lookup for
// Low-Bit LLM Deployment on Edge", EuroSys 2025): a weight code c = sum_b 2^b c_b, so
//     P = sum_i c_i q_i = sum_b 2^b sum_j T_j[nibble_b,j]      T_j[e] = sum_{u<4, e bit u} q[4j + u]
// one 16-entry table per 4 activations, shared by every bit plane and every output row of the tile.
// Unlike T-MAC the tables are exact integers (|T| <= 512, 11 bits): no table quantization, P is exact.
//
// The stream is a sequence of blocks (tile of R output rows, super-block of SB groups), each a
// parameter block P_i (the R rows' records) and a code block C_i, in the order P_0, P_1, C_0, P_2, C_1,
// ... (packing_lowbit.py). P_0 is read and decoded first; then each block is one pipelined loop
// (lb_block), one beat per iteration at most: P_{i+1}'s beats into an on-chip ping-pong buffer, then C_i's
// code beats: per group, at its first beat, every token's G / 4 tables (and S); per beat and token lane
// BW / 4 lookups (RL = BW / G rows' plane words per beat, or one row over G / BW beats), P[t][lane]
// += (sum) << b; after a row set's last plane its RL accumulators take the contract's step
//     acc = (acc + s * float(P)) + m * float(S)      (sequential over groups, no FMA)
// while RD decoders turn SL sub-scales each of P_{i+1}'s records per iteration into the other s / m
// buffers (s = d * sc; m = dm * mc or -(s * mc), packing's f32 order); a block shorter than
// ceil(R / RD) x ceil(SB / SL) iterations idles until its R records are decoded. At a tile's end y = acc / qs, one output per iteration. An engine beat of BW bits
// is one 128-bit beat from each of BW / 128 weight sources (the stream split by 128-bit columns): weight
// port pointers or weight FIFOs (lowbit_source.h, which also reads x and qs and writes y: plain arrays or
// the top's act beats). Finally y[t][o] = acc / qs[t] (+ bias[o], one f32 add, when the linear has one). Every integer is exact (|P| < 2^24, models/lowbit.py P_BOUND), every
// float op one binary32 rounding in the contract's order, so C simulation equals lowbit_linear bit for
// bit (tests/test_hw_lowbit.py).
//
// The accumulator of row r is updated once per R / RL * bits * (G / BW rounded up) * token blocks iterations
// of the block loop; the DEPENDENCE claim (kLbFaddChain = 8 iterations, the fmul + two fadds of the
// step) holds when R * bits / RL >= 8, which LowbitConfig's R >= BW / 4 guarantees for every G and
// b >= 2 (G 16: RL = BW / 16, 4 row sets x 2 planes). C simulation with EDGELLM_CHECK_DEPS checks it.
//
// The tensor and configuration types, the stream's sizes and iteration counts and one parameter record's
// decode: lowbit_format.h; this header: the engine's loops.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/dep_check.h"
#include "edgellm/lowbit_format.h"
#include "edgellm/lowbit_source.h"
#include "edgellm/numerics.h"

namespace edgellm {

// C simulation only: iterations of the engine's pipelined loops, per loop kind (compiler/cost/lowbit.py
// counts the same; tests/test_lowbit_cost.py compares them).
enum LbLoop { kLbActs, kLbParams, kLbDecode, kLbBlock, kLbOut, kLbLoops };
#ifndef __SYNTHESIS__
inline long *lb_iters() {
  static long n[kLbLoops] = {0, 0, 0, 0, 0};
  return n;
}
#define EDGELLM_LB_COUNT(kind) (::edgellm::lb_iters()[kind]++)
#else
#define EDGELLM_LB_COUNT(kind) ((void)0)
#endif

typedef ap_int<12> lb_tab_t;  // one table entry: a sum of <= 4 int8 (|T| <= 512)
const int kLbFaddChain = 8;  // iterations the accumulator step (fmul, fadd, fadd) may take

// A parameter block's beats into pbuf: one beat per iteration.
template <class C, class WS>
void lb_read_params(WS *w0, WS *w1, WS *w2, WS *w3, long &pos, int nbeats, typename C::beat_t pbuf[C::PB_MAX]) {
params:
  for (int b = 0; b < nbeats; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::PB_MAX
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbParams);
    pbuf[b] = lb_read<C>(w0, w1, w2, w3, pos + b);
  }
  pos += nbeats;
}

// A block's R records: RD decoders, decoder k on record r0 + k, SL sub-scales (chunk c) per iteration;
// lb_decode_iters(d, R, RD, SL) iterations.
template <class C>
void lb_decode_all(const typename C::beat_t pbuf[C::PB_MAX], const LowbitTensor &d, f32 s[C::R][kLbMaxSb],
                   f32 m[C::R][kLbMaxSb]) {
  const int nch = lb_record_chunks(d, C::SL), n_it = lb_decode_iters(d, C::R, C::RD, C::SL);
  int r0 = 0, c = 0;
decode_all:
  for (int it = 0; it < n_it; it++) {
#pragma HLS LOOP_TRIPCOUNT min = C::R / C::RD max = C::R / C::RD * kLbMaxSb / C::SL
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbDecode);
    for (int k = 0; k < C::RD; k++) {
#pragma HLS UNROLL
      if (r0 + k < C::R) lb_record_at<C>(pbuf, d, r0 + k, c, s[r0 + k], m[r0 + k]);
    }
    if (++c == nch) c = 0, r0 += C::RD;
  }
}

// The activations on chip: n_tok rows of k int8 (token t's at element x_off + t * k of x), 16 per
// iteration (lb_get16), and each token's scale (element qs_off + t of qs) with its first chunk.
template <class C, class PX, class PS>
void lb_load_acts(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, int k,
                  int8_t xrow[C::MAXT][C::MAXK], f32 qsv[C::MAXT]) {
acts:
  for (int i = 0; i < n_tok * (k / 16); i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::MAXT * C::MAXK / 16
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbActs);
    const int t = i / (k / 16), c = i % (k / 16);
    int8_t v[16];
    lb_get16(x, x_off + (long)t * k + 16 * c, v);
    for (int u = 0; u < 16; u++) {
#pragma HLS UNROLL
      xrow[t][16 * c + u] = v[u];
    }
    if (c == 0) qsv[t] = mget<f32>(qs, qs_off + t);
  }
}

// Token t's tables for group g (tbl[j][e], j < G / 4, all at once) and the group's activation sum.
template <class C>
inline int32_t lb_tables(const int8_t xrow[C::MAXT][C::MAXK], int t, int g, int group,
                         lb_tab_t tbl[C::MAXG / 4][16]) {
#pragma HLS INLINE
  int32_t acc = 0;
  for (int j = 0; j < C::MAXG / 4; j++) {
#pragma HLS UNROLL
    if (j < group / 4) {
      int32_t a[4];
      for (int u = 0; u < 4; u++) a[u] = xrow[t][g * group + 4 * j + u];
      for (int e = 0; e < 16; e++) {
        tbl[j][e] = (lb_tab_t)(((e & 1) ? a[0] : 0) + ((e & 2) ? a[1] : 0) + ((e & 4) ? a[2] : 0) +
                               ((e & 8) ? a[3] : 0));
      }
      acc += a[0] + a[1] + a[2] + a[3];
    }
  }
  return acc;
}

// Block i's on-chip state: this block's scales and mins (s, m), the next block's parameter buffer and
// the s / m it decodes into; `more`: there is a next block.
template <class C>
struct LbBlockIo {
  const f32 (*s)[kLbMaxSb];
  const f32 (*m)[kLbMaxSb];
  typename C::beat_t *pnext;
  f32 (*sn)[kLbMaxSb];
  f32 (*mn)[kLbMaxSb];
  bool more;
};

// One block (tile, super-block kb) as one pipelined loop, one beat per iteration at most: first
// P_{i+1}'s beats into pnext, then per group gi, row set ri, plane b (and 128-bit half wv at G 256),
// token t: the tables at the group's first beat, 32 lookups, P[t][lane] += sum << b, the float step
// after a row set's last plane; and one record of P_{i+1} per iteration once it is on chip.
template <class C, class WS>
void lb_block(WS *w0, WS *w1, WS *w2, WS *w3, long &pos, const LowbitTensor &d, int n_tok, int kb,
              const int8_t xrow[C::MAXT][C::MAXK], const LbBlockIo<C> &io, f32 (&acc)[C::MAXT][C::R]) {
  static lb_tab_t tbl[C::MAXT][C::MAXG / 4][16];
  static int32_t ssum[C::MAXT];
  int32_t p[C::MAXT][C::LANES];
#pragma HLS ARRAY_PARTITION variable = tbl cyclic factor = C::TP dim = 1
#pragma HLS ARRAY_PARTITION variable = tbl complete dim = 2
#pragma HLS ARRAY_PARTITION variable = tbl complete dim = 3
#pragma HLS ARRAY_PARTITION variable = ssum complete dim = 1
#pragma HLS ARRAY_PARTITION variable = p cyclic factor = C::TP dim = 1
#pragma HLS ARRAY_PARTITION variable = p complete dim = 2
  const int rl = lb_lanes(d.group, C::BW), wpp = lb_plane_beats(d.group, C::BW), npl = d.group / 4;
  const int per_set = d.bits * wpp;                       // beats per row set
  const int n_tb = (n_tok + C::TP - 1) / C::TP;           // token blocks of TP lanes
  const int g_iters = C::R / rl * per_set * n_tb;         // one group's iterations
  const int pbeats = io.more ? lb_param_beats(d, C::R, C::BW) : 0;
  const int n_it = lb_block_iters(d, C::R, n_tb, io.more, C::BW, C::RD, C::SL);
  const int nch = lb_record_chunks(d, C::SL);
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::MAXT
    for (int l = 0; l < C::LANES; l++) p[t][l] = 0;
  }
  typename C::beat_t beat = 0;
  int r0 = 0, ch = 0;  // P_{i+1}'s decoders: records r0 .. r0 + RD - 1, chunk ch
  {
    EDGELLM_DEP_LOOP("lb_block.codes");
    EDGELLM_DEP_CLAIM(acc, kLbFaddChain);
  codes:
    for (int it = 0; it < n_it; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 * C::R / C::LANES max = kLbMaxSb * 8 * C::R * C::MAXT
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = kLbFaddChain true
      EDGELLM_DEP_ITER(it);
      EDGELLM_LB_COUNT(kLbBlock);
      const int c = it - pbeats;  // this block's code iteration (negative: P_{i+1}'s beat `it`)
      const bool codes_it = c >= 0 && c < d.sb * g_iters;
      const bool fresh = it < pbeats || (codes_it && c % n_tb == 0);  // one beat read at most
      typename C::beat_t in = 0;
      if (fresh) in = lb_read<C>(w0, w1, w2, w3, pos + (it < pbeats ? it : pbeats + c / n_tb));
      if (it < pbeats) {  // P_{i+1}
        io.pnext[it] = in;
        continue;
      }
      for (int k = 0; k < C::RD; k++) {  // chunk ch of its records r0 .. r0 + RD - 1
#pragma HLS UNROLL
        if (io.more && r0 + k < C::R) lb_record_at<C>(io.pnext, d, r0 + k, ch, io.sn[r0 + k], io.mn[r0 + k]);
      }
      if (++ch == nch) ch = 0, r0 += C::RD;
      if (!codes_it) continue;  // decode-only iterations of a short block
      const int gi = c / g_iters, cc = c % g_iters, bi = cc / n_tb, tb = cc % n_tb;
      const int ri = bi / per_set, b = (bi % per_set) / wpp, wv = bi % wpp;
      if (tb == 0) beat = in;
      const bool last = bi % per_set == per_set - 1;  // the row set's last plane: the float step
      for (int u = 0; u < C::TP; u++) {
#pragma HLS UNROLL
        const int t = tb * C::TP + u;
        if (t < n_tok) {
          if (bi == 0) ssum[t] = lb_tables<C>(xrow, t, kb * d.sb + gi, d.group, tbl[t]);
          int32_t lane[C::LANES];
          for (int l = 0; l < C::LANES; l++) lane[l] = 0;
          for (int n = 0; n < C::NIB; n++) {
            const int l = rl > 1 ? n / npl : 0;
            const int j = rl > 1 ? n % npl : wv * C::NIB + n;
            if (j < C::MAXG / 4) lane[l] += (int32_t)tbl[t][j][(int)beat.range(4 * n + 3, 4 * n)];
          }
          for (int l = 0; l < C::LANES; l++) {
            const int32_t pv = p[t][l] + lane[l] * (1 << b);
            if (last && l < rl) {
              const int r = ri * rl + l;
              EDGELLM_DEP_R(acc, acc[t][r]);
              const f32 sp = io.s[r][gi] * (f32)pv;
              const f32 ms = io.m[r][gi] * (f32)ssum[t];
              acc[t][r] = (acc[t][r] + sp) + ms;
              EDGELLM_DEP_W(acc, acc[t][r]);
            }
            p[t][l] = last ? 0 : pv;
          }
        }
      }
    }
  }
  pos += pbeats + d.sb * g_iters / n_tb;
}

// y (n_tok, n_out) = lowbit_linear(x, qs, W) (+ bias) for the tensor d whose stream starts at beat w_beat
// of the weight sources w0 .. w{PORTS-1} (pointers: packing_lowbit.port_images, port u holds 128-bit
// column u of every engine beat; or FIFOs: popped in order, w_beat ignored; the sources past PORTS are
// never read). x: int8 (n_tok, k), qs: (n_tok), y: f32 (n_tok, n_out), bias: f32 (n_out) or none, at the
// element offsets at (lowbit_source.h); n_tok <= MAXT; d.k <= MAXK; d.group <= MAXG. Blocks i = (tile,
// super-block) in stream order: P_0 up front, then per block one loop (lb_block) reading P_{i+1} and C_i.
template <class C, class WS, class PX, class PS, class PY, class PB>
void lowbit_mm_at(const LowbitTensor &d, WS *w0, WS *w1, WS *w2, WS *w3, long w_beat, const PX *x, const PS *qs,
                  int n_tok, PY *y, const PB *bias, const LbAt &at) {
  static int8_t xrow[C::MAXT][C::MAXK];
  static typename C::beat_t pbuf[2][C::PB_MAX];
  static f32 s[2][C::R][kLbMaxSb], m[2][C::R][kLbMaxSb];
  static f32 acc[C::MAXT][C::R];
  f32 qsv[C::MAXT];
#pragma HLS ARRAY_PARTITION variable = xrow cyclic factor = C::MAXG dim = 2
#pragma HLS ARRAY_PARTITION variable = pbuf cyclic factor = C::NW dim = 2
#pragma HLS ARRAY_PARTITION variable = acc cyclic factor = C::TP dim = 1
#pragma HLS ARRAY_PARTITION variable = acc cyclic factor = C::LANES dim = 2
  const int nsbr = d.k / d.group / d.sb, tiles = (d.n_out + C::R - 1) / C::R, n_blk = tiles * nsbr;
  long pos = w_beat;
  lb_load_acts<C>(x, at.x, qs, at.qs, n_tok, d.k, xrow, qsv);
  lb_read_params<C>(w0, w1, w2, w3, pos, lb_param_beats(d, C::R, C::BW), pbuf[0]);
  lb_decode_all<C>(pbuf[0], d, s[0], m[0]);
  LbOut<PY> wout;
  LbBias<PB> bin;
blocks:
  for (int i = 0; i < n_blk; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 131072 / C::R * C::MAXK / 256
    const int cur = i & 1, tile = i / nsbr, kb = i % nsbr;
    if (kb == 0) {
      for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::MAXT
        for (int r = 0; r < C::R; r++) acc[t][r] = 0.0f;
      }
    }
    const LbBlockIo<C> io = {s[cur], m[cur], pbuf[cur ^ 1], s[cur ^ 1], m[cur ^ 1], i + 1 < n_blk};
    lb_block<C>(w0, w1, w2, w3, pos, d, n_tok, kb, xrow, io, acc);
    if (kb == nsbr - 1) {
    out:
      for (int o = 0; o < n_tok * C::R; o++) {
#pragma HLS LOOP_TRIPCOUNT min = C::R max = C::R * C::MAXT
#pragma HLS PIPELINE II = 1
        EDGELLM_LB_COUNT(kLbOut);
        const int t = o / C::R, r = o % C::R, row = tile * C::R + r;
        if (row < d.n_out) {
          f32 v = acc[t][r] / qsv[t];
          if (at.bias >= 0) v = v + bin.get(bias, at.bias + row);
          wout.put(y, at.y + (long)t * d.n_out + row, v);
        }
      }
    }
  }
}

// The plain form (testbenches): pointer ports, plain arrays at offset 0, no bias.
template <class C>
void lowbit_mm(const LowbitTensor &d, const lb_beat_t *w0, const lb_beat_t *w1, const lb_beat_t *w2,
               const lb_beat_t *w3, long w_beat, const int8_t *x, const f32 *qs, int n_tok, f32 *y) {
  const LbAt at = {0, 0, 0, -1};
  lowbit_mm_at<C>(d, w0, w1, w2, w3, w_beat, x, qs, n_tok, y, (const f32 *)0, at);
}

}  // namespace edgellm
