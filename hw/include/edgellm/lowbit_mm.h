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
// ... (packing_lowbit.py). P_0 is read and decoded first; then every block of the call runs in ONE
// pipelined loop (lb_blocks; no pipeline refill between blocks or tiles), one beat per iteration at most.
// Block i's iterations (lb_block_iters of them): P_{i+1}'s beats into an on-chip ping-pong buffer, then
// C_i's code beats: per beat and token lane the group's tables (and S) built from the activation banks,
// BW / 4 lookups and an adder tree (lowbit_lookup.h; RL = BW / G rows' plane words per beat, or one row
// over G / BW beats), P[t][lane] += (sum) << b; after a row set's last plane its RL accumulators take the contract's step
//     acc = (acc + s * float(P)) + m * float(S)      (sequential over groups from acc = 0, no FMA)
// on FU float step units a token lane (LowbitConfig FU): the row set's P, s, m (fetched FU rows an
// iteration over its first planes) and float(S) are staged and its rows stepped FU per iteration over the
// following iterations (lb_drain), done before the row set's next step (bits x plane beats iterations
// later: lb_float_steps), while RD decoders turn SL sub-scales each of P_{i+1}'s records per iteration
// into the other half of the s / m banks (lowbit_decode.h) (s = d * sc; m = dm * mc
// or -(s * mc), packing's f32 order); a block shorter than ceil(R / RD) x ceil(SB / SL) iterations idles
// until its R records are decoded. The per-block state (block and iteration, ping-pong side, the code
// beat's position, the decoders' record and chunk) is carried in counters stepped once per iteration
// (lb_advance). Tile t accumulates into acc[t & 1]; from kLbFaddChain iterations after its last block
// iteration (or its last float step, if later) on, the same loop writes one of its outputs per iteration,
// y = acc / qs (+ bias[o], one f32 add, when the linear has one), while tile t + 1's blocks run; tile
// t + 2 starts once they are all out (output-only iterations until then), and after the last block the
// loop drains the outputs left. An engine beat of BW bits is one 128-bit beat from each of BW / 128 weight
// sources (the stream split by 128-bit columns): weight port pointers or weight FIFOs (lowbit_source.h,
// which also reads x and qs and writes y: plain arrays or the top's act beats). Every integer is exact
// (|P| < 2^24, models/lowbit.py P_BOUND), every float op one binary32 rounding in the contract's order, so
// C simulation equals lowbit_linear bit for bit (tests/test_hw_lowbit.py).
//
// The accumulator of row r is updated once per R / RL * bits * (G / BW rounded up) * token blocks iterations
// of a block; between blocks the gap only grows (P beats, decode-only iterations, waits). The drain steps
// a (token, row) at the same offset after its row set's staging in every group, so its steps are as far
// apart as the stagings. The DEPENDENCE claim (kLbFaddChain = 8 iterations, the fmul + two fadds of the
// step) holds when R * bits / RL >= 8, which LowbitConfig's R >= BW / 4 guarantees for every G and b >= 2
// (G 16: RL = BW / 16, 4 row sets x 2 planes); an output reads acc[t & 1] at least kLbFaddChain iterations
// after tile t's last step, and tile t + 2 writes it only after the last of those reads. C simulation with
// EDGELLM_CHECK_DEPS checks the claim over the whole loop, outputs included.
//
// Every on-chip store is split into banks each access addresses statically (lowbit_banks.h: activations,
// s / m, accumulators; docs/hls.md "Banks"). The tensor and configuration types and the stream's sizes and
// iteration counts: lowbit_format.h; a parameter record's decode: lowbit_decode.h; the lookups:
// lowbit_lookup.h; the float steps' stage and drain: lowbit_steps.h; this header: the engine's loops.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/dep_check.h"
#include "edgellm/lowbit_banks.h"
#include "edgellm/lowbit_decode.h"
#include "edgellm/lowbit_format.h"
#include "edgellm/lowbit_lookup.h"
#include "edgellm/lowbit_source.h"
#include "edgellm/lowbit_steps.h"
#include "edgellm/numerics.h"

namespace edgellm {

// C simulation only: iterations of the engine's pipelined loops, per loop kind (compiler/cost/lowbit.py
// counts the same; tests/test_lowbit_cost.py compares them): the activations, P_0's beats and its
// decode, and the block loop's iterations split in two: kLbBlock those running a block iteration,
// kLbOut the output-only ones (tile t + 2 waiting for tile t's outputs, the drain after the last block).
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

const int kLbFaddChain = 8;  // iterations the accumulator step (fmul, fadd, fadd) may take

// A parameter block's beats into pbuf: one beat per iteration.
template <class C, class WS>
void lb_read_params(WS *w0, WS *w1, WS *w2, WS *w3, long &pos, int nbeats,
                    typename C::beat_t pbuf[C::NW][C::PBD]) {
params:
  for (int b = 0; b < nbeats; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::PB_MAX
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbParams);
    pbuf[b % C::NW][b / C::NW] = lb_read<C>(w0, w1, w2, w3, pos + b);
  }
  pos += nbeats;
}

// RD decoders' chunk c of the records r0 .. r0 + RD - 1 of a parameter block on chip into half par of the
// s / m banks (lowbit_banks.h lb_scales_put).
template <class C>
inline void lb_decode_chunk(const typename C::beat_t pbuf[C::NW][C::PBD], const LowbitTensor &d, int ci, int r0,
                            int c, int par, typename LbBanks<C>::scales_t &s, typename LbBanks<C>::scales_t &m) {
#pragma HLS INLINE
  f32 sv[C::RD][C::SL], mv[C::RD][C::SL];
  for (int k = 0; k < C::RD; k++) {
#pragma HLS UNROLL
    lb_record_at<C>(pbuf, d, ci, r0 + k < C::R ? r0 + k : 0, c, sv[k], mv[k]);
  }
  lb_scales_put<C>(s, m, par, r0, c, sv, mv);
}

// A block's R records into half 0: RD decoders, decoder k on record r0 + k, SL sub-scales (chunk c) per
// iteration; lb_decode_iters(d, R, RD, SL) iterations.
template <class C>
void lb_decode_all(const typename C::beat_t pbuf[C::NW][C::PBD], const LowbitTensor &d, int ci,
                   typename LbBanks<C>::scales_t &s, typename LbBanks<C>::scales_t &m) {
  const int nch = lb_record_chunks(d, C::SL), n_it = lb_decode_iters(d, C::R, C::RD, C::SL);
  int r0 = 0, c = 0;
decode_all:
  for (int it = 0; it < n_it; it++) {
#pragma HLS LOOP_TRIPCOUNT min = C::R / C::RD max = C::R / C::RD * ((C::MAXSB + C::SL - 1) / C::SL)
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbDecode);
    lb_decode_chunk<C>(pbuf, d, ci, r0, c, 0, s, m);
    if (++c == nch) c = 0, r0 += C::RD;
  }
}

// The activations on chip: n_tok rows of k int8 (token t's at element x_off + t * k of x), 16 per
// iteration (lb_get16) into their banks (lb_acts_put), and each token's scale (element qs_off + t of qs)
// with its first chunk.
template <class C, class PX, class PS>
void lb_load_acts(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, int k,
                  typename LbBanks<C>::acts_t &acts, f32 qsv[C::MAXT]) {
acts:
  for (int i = 0; i < n_tok * (k / 16); i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::MAXT * C::MAXK / 16
#pragma HLS PIPELINE II = 1
    EDGELLM_LB_COUNT(kLbActs);
    const int t = i / (k / 16), c = i % (k / 16);
    int8_t v[16];
    lb_get16(x, x_off + (long)t * k + 16 * c, v);
    lb_acts_put<C>(acts, t, c, v);
    if (c == 0) qsv[t] = mget<f32>(qs, qs_off + t);
  }
}

// One call's block loop shape (lb_blocks): n_tok tokens in n_tb token blocks of TP; rl rows per code beat
// (wpp beats a plane, group-size choice ga, nfc chunks of FU float steps), nsets row sets of a tile, nch
// chunks a record; n_blk blocks, nsbr a tile's; pbeats beats of a parameter block, len_more / len_last
// iterations of a block followed by another / of the last block (lb_block_iters).
struct LbShape {
  int n_tok, n_tb, rl, wpp, ga, nfc, nsets, nch, nsbr, n_blk, tiles, pbeats, len_more, len_last, ci;
};

// Where the block loop is in the stream: block i (tile, super-block kb), its iteration `it` of len; the
// code beat's position (token block tb, 128-bit part wv, plane b, row set ri, group gi; gi == sb: the
// block's codes are done) and P_{i+1}'s decoders (records r0 .. r0 + RD - 1, chunk ch).
struct LbPos {
  int i, tile, kb, it, len, tb, wv, b, ri, gi, r0, ch;
};

// The output side of the block loop: tile ot's output of token tok, row r next; `done` tiles whose blocks
// have all run, the latest of them readable from iteration `ready` on.
struct LbOutPos {
  int ot, tok, r, done;
  long ready;
};

// Block q.i's position after its iteration q.it: the code beat's counters (innermost first: token block,
// 128-bit part, plane, row set, group), the decoders' record and chunk, and at the block's end the next
// block's first iteration. Returns true when that iteration was its tile's last.
inline bool lb_advance(const LowbitTensor &d, const LbShape &sh, int rd, LbPos &q) {
#pragma HLS INLINE
  if (q.it >= (q.i + 1 < sh.n_blk ? sh.pbeats : 0)) {
    if (++q.ch == sh.nch) q.ch = 0, q.r0 += rd;
    if (q.gi < d.sb && ++q.tb == sh.n_tb) {
      q.tb = 0;
      if (++q.wv == sh.wpp) {
        q.wv = 0;
        if (++q.b == d.bits) {
          q.b = 0;
          if (++q.ri == sh.nsets) q.ri = 0, q.gi++;
        }
      }
    }
  }
  if (++q.it < q.len) return false;
  const bool tile_end = q.kb == sh.nsbr - 1;
  q.i++, q.it = 0, q.tb = 0, q.wv = 0, q.b = 0, q.ri = 0, q.gi = 0, q.r0 = 0, q.ch = 0;
  if (tile_end) q.kb = 0, q.tile++;
  else q.kb++;
  q.len = q.i + 1 < sh.n_blk ? sh.len_more : sh.len_last;
  return tile_end;
}

// One code beat's work for token block q.tb: each token's tables for the group, built from its activation
// banks (every iteration: the adders are there anyway, and nothing is stored or chosen); the beat's lane
// sums (lowbit_lookup.h), P[t][lane] += sum << b, and after a row set's last plane its rows' P and the tokens'
// float(S) into the stage. At token block 0, plane beat si < nfc of a row set fetches chunk si of its rows'
// s and m (FU rows, lb_scales_fetch: nfc <= bits x wpp by lb_float_steps), the last plane stages them and
// arms the drain of the row set (lb_drain steps it, from this iteration on: 0 at the tile's first group,
// the contract's acc = 0 + ...).
template <class C>
inline void lb_codes(const LowbitTensor &d, const LbShape &sh, const LbPos &q, long it,
                     const typename LbBanks<C>::acts_t &acts, const typename C::beat_t &beat, int cur,
                     const typename LbBanks<C>::scales_t &s, const typename LbBanks<C>::scales_t &m,
                     typename LbBanks<C>::lanes_t &p, typename LbStageArrays<C>::p_t &st_p,
                     typename LbStageArrays<C>::sum_t &st_sum, typename LbStageArrays<C>::sm_t &st_s,
                     typename LbStageArrays<C>::sm_t &st_m, typename LbStageArrays<C>::sm_t &nx_s,
                     typename LbStageArrays<C>::sm_t &nx_m, LbDrain &dr) {
#pragma HLS INLINE
  const bool last = q.b == d.bits - 1 && q.wv == sh.wpp - 1;  // the row set's last plane: stage it
  for (int u = 0; u < C::TP; u++) {
#pragma HLS UNROLL
    const int t = q.tb * C::TP + u;
    if (t >= sh.n_tok) continue;
    lb_tab_t tt[C::MAXG / 4][16];  // built every iteration from the activation banks (nothing stored)
    int8_t a[C::MAXG];
#pragma HLS ARRAY_PARTITION variable = tt complete dim = 0
#pragma HLS ARRAY_PARTITION variable = a complete
    lb_group_acts<C>(acts, u, q.tb, q.kb * d.sb + q.gi, d.group, sh.ga, a);
    const int32_t sum = lb_tables<C>(a, d.group, tt);
    int32_t lane[C::LANES];
#pragma HLS ARRAY_PARTITION variable = lane complete
    lb_lane_sums<C>(tt, beat, sh.ga, q.wv, lane);
    for (int l = 0; l < C::LANES; l++) {
      const int32_t pv = p[u][q.tb][l] + lane[l] * (1 << q.b);
      if (last) st_p[u][q.tb][l] = pv;
      p[u][q.tb][l] = last ? 0 : pv;
    }
    if (last) st_sum[u][q.tb] = (f32)sum;
  }
  if (q.tb != 0) return;
  const int si = q.b * sh.wpp + q.wv, r0 = q.ri * sh.rl;  // the row set's plane beat; its first row
  if (si < sh.nfc) lb_scales_fetch<C>(s, m, cur, r0, sh.rl, si, q.gi, nx_s, nx_m);  // FU rows' s and m
  if (last) {
    for (int l = 0; l < C::LANES; l++) st_s[l] = nx_s[l], st_m[l] = nx_m[l];
    const LbDrain a = {0, sh.nfc * sh.n_tb, 0, 0, q.ri * sh.rl, q.tile & 1, q.kb == 0 && q.gi == 0,
                       it + sh.nfc * sh.n_tb - 1};
    dr = a;
  }
}

// One output of tile o.ot: y[tok][row] = acc / qs[tok] (+ bias[row]), in row order along each token (the
// LbOut / LbBias beat assembly); rows past n_out (a partial last tile) are skipped.
template <class C, class PY, class PB>
inline void lb_emit(const LowbitTensor &d, const LbShape &sh, const LbAt &at, typename LbBanks<C>::acc_t &acc,
                    const f32 qsv[C::MAXT], PY *y, const PB *bias, LbOut<PY> &wout, LbBias<PB> &bin,
                    LbOutPos &o) {
#pragma HLS INLINE
  const int row = o.ot * C::R + o.r;
  if (row < d.n_out) {
    const f32 &cell = lb_acc_at<C>(acc, o.ot & 1, o.tok, o.r);
    EDGELLM_DEP_R(acc, cell);
    f32 v = cell / qsv[o.tok];
    if (at.bias >= 0) v = v + bin.get(bias, at.bias + row);
    wout.put(y, at.y + (long)o.tok * d.n_out + row, v);
  }
  if (++o.r == C::R) {
    o.r = 0;
    if (++o.tok == sh.n_tok) o.tok = 0, o.ot++;
  }
}

// Every block of the call as one pipelined loop, one beat per iteration at most. A block iteration of
// block i (tile, kb): first P_{i+1}'s beats into pbuf[cur ^ 1], then C_i's code beats (lb_codes with
// half cur of the s / m banks, staging each row set's float steps) while RD decoders turn P_{i+1}'s
// records into half cur ^ 1, chunk by chunk (done kLbScaleLag iterations before the block ends:
// lb_block_iters); every iteration (output-only ones too) takes one drain step if one is pending
// (lb_drain: FU float steps per token lane). Tile t accumulates into acc[t & 1]; its outputs go out one per
// iteration (lb_emit) from kLbFaddChain iterations after its last block iteration or its last drain step,
// whichever is later, on, while tile t + 1's blocks run; tile t + 2 waits (output-only iterations) until
// they are all out, and the loop ends when the last tile's are.
template <class C, class WS, class PY, class PB>
void lb_blocks(WS *w0, WS *w1, WS *w2, WS *w3, long pos, const LowbitTensor &d, const LbShape &sh,
               const typename LbBanks<C>::acts_t &acts, const f32 qsv[C::MAXT],
               typename C::beat_t (&pbuf)[2][C::NW][C::PBD], typename LbBanks<C>::scales_t &s,
               typename LbBanks<C>::scales_t &m, typename LbBanks<C>::acc_t &acc, PY *y, const PB *bias,
               const LbAt &at) {
  typename LbBanks<C>::lanes_t p;
  typename LbStageArrays<C>::p_t st_p;
  typename LbStageArrays<C>::sum_t st_sum;
  typename LbStageArrays<C>::sm_t st_s, st_m, nx_s, nx_m;  // staged, and being fetched
#pragma HLS ARRAY_PARTITION variable = p complete dim = 0
#pragma HLS ARRAY_PARTITION variable = st_p complete dim = 1
#pragma HLS ARRAY_PARTITION variable = st_p complete dim = 3
#pragma HLS ARRAY_PARTITION variable = st_sum complete dim = 0
#pragma HLS ARRAY_PARTITION variable = st_s complete dim = 0
#pragma HLS ARRAY_PARTITION variable = st_m complete dim = 0
#pragma HLS ARRAY_PARTITION variable = nx_s complete dim = 0
#pragma HLS ARRAY_PARTITION variable = nx_m complete dim = 0
  for (int t = 0; t < sh.n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::MAXT
    for (int l = 0; l < C::LANES; l++) p[t % C::TP][t / C::TP][l] = 0;
  }
  typename C::beat_t beat = 0;
  LbPos q = {0, 0, 0, 0, sh.n_blk > 1 ? sh.len_more : sh.len_last, 0, 0, 0, 0, 0, 0, 0};
  LbOutPos o = {0, 0, 0, 0, 0};
  LbDrain dr = {0, 0, 0, 0, 0, 0, false, -1};
  LbOut<PY> wout;
  LbBias<PB> bin;
  EDGELLM_DEP_LOOP("lb_blocks.run");
  EDGELLM_DEP_CLAIM(acc, kLbFaddChain);
  EDGELLM_DEP_CLAIM(s, kLbScaleLag);
  EDGELLM_DEP_CLAIM(m, kLbScaleLag);
run:
  for (long it = 0; o.ot < sh.tiles; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 * C::R / C::LANES max = 131072 / C::R * C::MAXK / 256 * 8 * C::R
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = kLbFaddChain true
#pragma HLS DEPENDENCE variable = s inter RAW distance = kLbScaleLag true
#pragma HLS DEPENDENCE variable = m inter RAW distance = kLbScaleLag true
    EDGELLM_DEP_ITER(it);
    const bool blk = q.i < sh.n_blk && o.ot >= q.tile - 1;  // acc[tile & 1] free: tile - 2's outputs out
    const bool emit = o.ot < o.done && (o.ot + 1 < o.done || it >= o.ready);
    EDGELLM_LB_COUNT(blk ? kLbBlock : kLbOut);
    if (emit) lb_emit<C>(d, sh, at, acc, qsv, y, bias, wout, bin, o);
    bool tile_end = false;
    if (blk) {
      const bool more = q.i + 1 < sh.n_blk;
      const int cur = q.i & 1, pb = more ? sh.pbeats : 0;
      const bool codes_it = q.it >= pb && q.gi < d.sb;
      typename C::beat_t in = 0;
      if (q.it < pb || (codes_it && q.tb == 0)) in = lb_read<C>(w0, w1, w2, w3, pos++);  // one beat at most
      if (q.it < pb) {
        pbuf[cur ^ 1][q.it % C::NW][q.it / C::NW] = in;  // P_{i+1}
      } else {
        // chunk ch of P_{i+1}'s records r0 .. r0 + RD - 1 (none past R, none after the last block)
        lb_decode_chunk<C>(pbuf[cur ^ 1], d, sh.ci, more ? q.r0 : C::R, q.ch, cur ^ 1, s, m);
        if (codes_it) {
          if (q.tb == 0) beat = in;
          lb_codes<C>(d, sh, q, it, acts, beat, cur, s, m, p, st_p, st_sum, st_s, st_m, nx_s, nx_m,
                      dr);
        }
      }
      tile_end = lb_advance(d, sh, C::RD, q);
    }
    lb_drain<C>(sh.n_tok, sh.n_tb, sh.rl, st_p, st_sum, st_s, st_m, dr, acc);
    if (tile_end) o.done++, o.ready = (dr.end > it ? dr.end : it) + kLbFaddChain;
  }
}

// y (n_tok, n_out) = lowbit_linear(x, qs, W) (+ bias) for the tensor d whose stream starts at beat w_beat
// of the weight sources w0 .. w{PORTS-1} (pointers: packing_lowbit.port_images, port u holds 128-bit
// column u of every engine beat; or FIFOs: popped in order, w_beat ignored; the sources past PORTS are
// never read). x: int8 (n_tok, k), qs: (n_tok), y: f32 (n_tok, n_out), bias: f32 (n_out) or none, at the
// element offsets at (lowbit_source.h); n_tok <= MAXT; d.k <= MAXK; MING <= d.group <= MAXG. The
// activations on chip, P_0 read and decoded, then every block (tile, super-block) in stream order and every
// output in one loop (lb_blocks).
template <class C, class WS, class PX, class PS, class PY, class PB>
void lowbit_mm_at(const LowbitTensor &d, WS *w0, WS *w1, WS *w2, WS *w3, long w_beat, const PX *x, const PS *qs,
                  int n_tok, PY *y, const PB *bias, const LbAt &at) {
  static typename LbBanks<C>::acts_t acts;
  static typename C::beat_t pbuf[2][C::NW][C::PBD];  // parameter blocks P_i, P_{i+1}: beat b in bank b % NW
  static typename LbBanks<C>::scales_t s, m;
  static typename LbBanks<C>::acc_t acc;  // tile t's accumulators: acc[t & 1]
  f32 qsv[C::MAXT];
#pragma HLS ARRAY_PARTITION variable = acts complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acts complete dim = 2
#pragma HLS ARRAY_PARTITION variable = pbuf complete dim = 2
#pragma HLS ARRAY_PARTITION variable = s complete dim = 1
#pragma HLS ARRAY_PARTITION variable = s complete dim = 2
#pragma HLS ARRAY_PARTITION variable = m complete dim = 1
#pragma HLS ARRAY_PARTITION variable = m complete dim = 2
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 4
#pragma HLS BIND_STORAGE variable = s type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = m type = ram_s2p impl = bram
  const int rl = lb_lanes(d.group, C::BW), n_tb = (n_tok + C::TP - 1) / C::TP;
  const int nsbr = d.k / d.group / d.sb, tiles = (d.n_out + C::R - 1) / C::R;
  const LbShape sh = {n_tok, n_tb, rl, lb_plane_beats(d.group, C::BW), lb_group_choice<C>(d.group),
                      (rl + C::FU - 1) / C::FU, C::R / rl, lb_record_chunks(d, C::SL), nsbr, tiles * nsbr, tiles,
                      lb_param_beats(d, C::R, C::BW), lb_block_iters(d, C::R, n_tb, true, C::BW, C::RD, C::SL),
                      lb_block_iters(d, C::R, n_tb, false, C::BW, C::RD, C::SL),
                      lb_codec_index<typename C::K>(d)};
  long pos = w_beat;
  lb_load_acts<C>(x, at.x, qs, at.qs, n_tok, d.k, acts, qsv);
  lb_read_params<C>(w0, w1, w2, w3, pos, sh.pbeats, pbuf[0]);
  lb_decode_all<C>(pbuf[0], d, sh.ci, s, m);
  lb_blocks<C>(w0, w1, w2, w3, pos, d, sh, acts, qsv, pbuf, s, m, acc, y, bias, at);
}

// The plain form (testbenches): pointer ports, plain arrays at offset 0, no bias.
template <class C>
void lowbit_mm(const LowbitTensor &d, const lb_beat_t *w0, const lb_beat_t *w1, const lb_beat_t *w2,
               const lb_beat_t *w3, long w_beat, const int8_t *x, const f32 *qs, int n_tok, f32 *y) {
  const LbAt at = {0, 0, 0, -1};
  lowbit_mm_at<C>(d, w0, w1, w2, w3, w_beat, x, qs, n_tok, y, (const f32 *)0, at);
}

}  // namespace edgellm
