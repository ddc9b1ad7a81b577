// The TLMM engine's compute: one weight tile against a block of tokens (compute_tile, one pipelined
// loop; tlmm.h header comment: the table lanes, the DSP lanes, the output phases and their cycles), and
// the table lane's primitives (build_table, table_lookup, group_trits).
#pragma once

#include <ap_int.h>

#include <cassert>
#include <cstdint>

#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm_config.h"
#include "edgellm/weight_buffer.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// Table of one activation group: tab[e] = sum_j (d_j(e) - 1) * x_j for e = 0 .. (3^G-1)/2, where
// d_0 .. d_{G-1} are the base-3 digits of e, most significant first.
template <int G, class TAB>
void build_table(const ap_int<8> xs[G], TAB tab[GroupIndex<G>::kHalf + 1]) {
#pragma HLS INLINE
table_entries:
  for (int e = 0; e <= GroupIndex<G>::kHalf; e++) {
#pragma HLS UNROLL
    TAB s = 0;
    int v = e;
    for (int j = G - 1; j >= 0; j--) {
#pragma HLS UNROLL
      int d = v % 3;
      v /= 3;
      if (d == 0) s -= xs[j];
      if (d == 2) s += xs[j];
    }
    tab[e] = s;
  }
}

// Look up group index idx in a half table: entries above the zero group are negations.
template <int G, class TAB>
TAB table_lookup(const TAB tab[GroupIndex<G>::kHalf + 1], typename GroupIndex<G>::type idx) {
#pragma HLS INLINE
  const unsigned i = (unsigned)idx;  // index arithmetic on plain integers (< 3^G)
  const bool neg = i > (unsigned)GroupIndex<G>::kHalf;
  const unsigned j = neg ? (unsigned)GroupIndex<G>::kEntries - 1u - i : i;
  const TAB v = tab[j];
  return neg ? TAB(-(int)v) : v;
}

// The G ternary weights of group index idx (weight_codec.h: idx = sum_j c_j * 3^(G-1-j)):
// w[j] = c_j - 1, the weight of activation j of the group (the order build_table pairs them in).
template <int G>
void group_trits(typename GroupIndex<G>::type idx, ap_int<2> w[G]) {
#pragma HLS INLINE
  unsigned v = (unsigned)idx;  // < 3^G: constant divisions on <= 7 bits, LUT logic
group_digits:
  for (int j = G - 1; j >= 0; j--) {
#pragma HLS UNROLL
    w[j] = (int)(v % 3u) - 1;
    v /= 3u;
  }
}

// Where compute_tile writes its dequantized outputs, OL a cycle (slot u at element at[u], written when
// ok[u]): a plain array element by element; a beat pointer whole beats, each assembled from E / OL
// cycles' outputs and written on its last. The beat form needs OL to divide R (a cycle's slots are one
// lane's consecutive rows) and E (whole beats), rows in whole beats (rows_t, row0, n_out multiples of E).
template <class PY, int OL, int R>
struct TlmmOut {
  f32 v[OL];
  void put(PY *y, const long at[OL], const bool ok[OL]) {
    for (int u = 0; u < OL; u++) {
      if (ok[u]) y[at[u]] = v[u];
    }
  }
};
template <int B, int OL, int R>
struct TlmmOut<ap_uint<B>, OL, R> {
  enum { E = Beat<f32, B>::E };
  static_assert(E % OL == 0 && R % OL == 0, "OL outputs a cycle: one lane's rows, whole beats");
  f32 v[OL];
  ap_uint<B> cur;
  void put(ap_uint<B> *y, const long at[OL], const bool ok[OL]) {
#pragma HLS INLINE
    for (int u = 0; u < OL; u++) {
#pragma HLS UNROLL
      lane_set<f32>(cur, (int)((at[0] + u) % E), v[u]);
    }
    if (ok[0] && (at[0] + OL) % E == 0) y[(at[0] + OL) / E - 1] = cur;  // the beat's last outputs: one write
  }
};

// compute_tile's three parts, each INLINE (one pipelined loop, as one function): the outputs of the
// previous token group, then the step's table lanes and DSP lanes.

// Group g-1's outputs, slots i*OL .. i*OL+OL-1 (lane-major) of its TP*R results, dequantized per output:
// at the phase's first cycle from acc (the group just stepped), then from the shift register sh.
template <class CFG, bool DEQ, class PY>
void tile_group_outputs(const typename CFG::acc_t acc[CFG::GROUP_OUTS], typename CFG::acc_t sh[CFG::GROUP_OUTS],
                        f32 qsh[CFG::TP], const f32 qbuf[][CFG::GROUPS_MAX], const long loff[CFG::TP],
                        TlmmOut<PY, CFG::OL, CFG::R> &wout, bool first, int g, int i, int nt, int rows_t, long yg,
                        f32 wscale, PY *yf, long y_off, int32_t *yi) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  const int R = CFG::R, TP = CFG::TP, OL = CFG::OL, NO = CFG::GROUP_OUTS;
  acc_t src[NO];
#pragma HLS ARRAY_PARTITION variable = src complete
load_shift:
  for (int u = 0; u < NO; u++) {
#pragma HLS UNROLL
    src[u] = first ? acc[u] : sh[u];
  }
  if (DEQ) {
  load_scales:
    for (int l = 0; l < TP; l++) {
#pragma HLS UNROLL
      if (first) qsh[l] = qbuf[l][g - 1];
    }
  }
  long at[OL];
  bool ok[OL];
#pragma HLS ARRAY_PARTITION variable = at complete
#pragma HLS ARRAY_PARTITION variable = ok complete
write_outs:
  for (int u = 0; u < OL; u++) {
#pragma HLS UNROLL
    const int o = i * OL + u;
    const int l = o / R, r = o % R;
    ok[u] = o < NO && (g - 1) * TP + l < nt && r < rows_t;
    at[u] = yg + loff[l] + r;
    const int32_t a = (int32_t)src[u];
    if (DEQ) {
      wout.v[u] = dequantize(a, qsh[l], wscale);
      at[u] += y_off;
    } else if (ok[u]) {
      yi[at[u]] = a;
    }
  }
  if (DEQ) wout.put(yf, at, ok);
shift_outs:
  for (int u = 0; u < NO; u++) {
#pragma HLS UNROLL
    sh[u] = u + OL < NO ? src[u + OL] : acc_t(0);
  }
}

// Step i of a token group, table lanes: the step's weight bytes from the banks (column c on), each table
// lane's T tables from its activations (xbuf row xrow), every row's group indices (shared by the TP
// lanes) looked up into acc; for the DSP lanes (DL > 0) the rows' trits wt, decoded once.
template <class CFG>
void tile_table_lanes(const typename CFG::beat_t b0[][CFG::BEATS_PER_STEP],
                      const typename CFG::beat_t b1[][CFG::BEATS_PER_STEP],
                      const typename CFG::beat_t b2[][CFG::BEATS_PER_STEP],
                      const typename CFG::beat_t b3[][CFG::BEATS_PER_STEP],
                      const typename CFG::xchunk_t xbuf[][CFG::XROWS][CFG::CPC], const int s0[kMaxWeightPorts],
                      const int bound[kMaxWeightPorts], int c, int nb, int i, int xrow, bool first,
                      typename CFG::acc_t acc[CFG::GROUP_OUTS], ap_int<2> wt[2 * CFG::PAIRS][CFG::STEP_K]) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::psum_t psum_t;
  const int G = CFG::G, R = CFG::R, CPC = CFG::CPC, TAB_N = CFG::TAB_N, BPS = CFG::BEATS_PER_STEP;
  const int TL = CFG::TABLE_LANES;
  uint8_t wbytes[BPS][R];  // byte r of beat j = row r's byte of column c + j
#pragma HLS ARRAY_PARTITION variable = wbytes complete dim = 0
step_beats:
  for (int j = 0; j < BPS; j++) {
    word_bytes<R>(bank_beat<CFG>(b0, b1, b2, b3, c + j, nb, i, s0, bound, j), wbytes[j]);
  }
  typename CFG::tab_t tab[TL][CFG::T][TAB_N];
#pragma HLS ARRAY_PARTITION variable = tab complete dim = 0
tables:
  for (int l = 0; l < TL; l++) {
    for (int cc = 0; cc < CPC; cc++) {
      uint8_t xb[CFG::CHUNK_K];
      word_bytes<CFG::CHUNK_K>(xbuf[l][xrow][cc], xb);
      for (int q = 0; q < kTritsPerByte; q++) {
        ap_int<8> xs[G];
        for (int j = 0; j < G; j++) xs[j] = (int8_t)xb[q * G + j];
        build_table<G>(xs, tab[l][cc * kTritsPerByte + q]);
      }
    }
  }
rows:
  for (int r = 0; r < R; r++) {
    typename CFG::idx_t idx[CPC][kTritsPerByte];
    for (int cc = 0; cc < CPC; cc++) {
      uint8_t bytes[G];
      for (int j = 0; j < G; j++) bytes[j] = wbytes[cc * G + j][r];
      chunk_indices_u<G>(bytes, idx[cc]);
    }
    if (CFG::DL > 0) {  // the row's trits, decoded once for all DSP lanes
    row_trits:
      for (int cc = 0; cc < CPC; cc++) {
        for (int q = 0; q < kTritsPerByte; q++) {
          ap_int<2> w[G];
          group_trits<G>(idx[cc][q], w);
          for (int j = 0; j < G; j++) wt[r][cc * CFG::CHUNK_K + q * G + j] = w[j];
        }
      }
    }
  table_lanes:
    for (int l = 0; l < TL; l++) {
      psum_t ps = 0;
      for (int cc = 0; cc < CPC; cc++) {
        for (int q = 0; q < kTritsPerByte; q++) {
          ps += table_lookup<G>(tab[l][cc * kTritsPerByte + q], idx[cc][q]);
        }
      }
      acc[l * R + r] = (first ? acc_t(0) : acc[l * R + r]) + ps;
    }
  }
}

// Step i of a token group, DSP lanes (TABLE_LANES .. TP-1): the row pairs' packed trits (from wt) times
// the lane's activations (xbuf row xrow) on DSP48E2 cascades, both rows' partial sums split from P into acc.
template <class CFG>
void tile_dsp_lanes(const ap_int<2> wt[2 * CFG::PAIRS][CFG::STEP_K],
                    const typename CFG::xchunk_t xbuf[][CFG::XROWS][CFG::CPC], int xrow, bool first,
                    typename CFG::acc_t acc[CFG::GROUP_OUTS]) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::psum_t psum_t;
  const int R = CFG::R, CPC = CFG::CPC, TL = CFG::TABLE_LANES, TP = CFG::TP, PAIRS = CFG::PAIRS;
  const int SK = CFG::STEP_K, S = CFG::DSP_SHIFT;
  // the row pairs' operands, shared by the DSP lanes: D = w[2p] * 2^S and A = w[2p+1], the two
  // trits' codes sign-extended and shifted (wiring); the DSP48E2 pre-adder forms D + A
  typename CFG::dsp_a_t dhi[PAIRS][SK], alo[PAIRS][SK];
#pragma HLS ARRAY_PARTITION variable = dhi complete dim = 0
#pragma HLS ARRAY_PARTITION variable = alo complete dim = 0
  // w * 2^S as a multiply by the constant: the same bits (wiring once synthesized), while a left shift of
  // a negative trit is undefined behaviour in C++14 for the C simulation's int64_t operands (UBSan,
  // edgellm csim --sanitize)
  const typename CFG::dsp_a_t two_s = typename CFG::dsp_a_t(1) << S;
pack_pairs:
  for (int p = 0; p < PAIRS; p++) {
    for (int j = 0; j < SK; j++) {
      dhi[p][j] = typename CFG::dsp_a_t(wt[2 * p][j]) * two_s;
      alo[p][j] = 2 * p + 1 < R ? typename CFG::dsp_a_t(wt[2 * p + 1][j]) : typename CFG::dsp_a_t(0);
    }
  }
dsp_lanes:
  for (int l = TL; l < TP; l++) {
#pragma HLS EXPRESSION_BALANCE off
    typename CFG::dsp_b_t xv[SK];  // the lane's G*T activations of the step
#pragma HLS ARRAY_PARTITION variable = xv complete
    for (int cc = 0; cc < CPC; cc++) {
      uint8_t xb[CFG::CHUNK_K];
      word_bytes<CFG::CHUNK_K>(xbuf[l][xrow][cc], xb);
      for (int j = 0; j < CFG::CHUNK_K; j++) xv[cc * CFG::CHUNK_K + j] = (int8_t)xb[j];
    }
  dsp_pairs:
    for (int p = 0; p < PAIRS; p++) {
      // P = sum_j a_j * x_j: DSP_CHAINS linear chains of DSP_CHAIN terms in ascending j (one
      // DSP48E2 per term, PCOUT -> PCIN), then a balanced tree of DSP adders over the chains
      typename CFG::dsp_p_t part[CFG::DSP_CHAINS];
#pragma HLS ARRAY_PARTITION variable = part complete
    dsp_chains:
      for (int c = 0; c < CFG::DSP_CHAINS; c++) {
        typename CFG::dsp_p_t pc = 0;
      dsp_chain:
        for (int u = 0; u < CFG::DSP_CHAIN; u++) {
          const int j = c * CFG::DSP_CHAIN + u;
          if (j < SK) {
            const typename CFG::dsp_a_t a = dhi[p][j] + alo[p][j];  // pre-adder: |a| <= 2^S + 1
            const typename CFG::dsp_m_t m = a * xv[j];
#pragma HLS BIND_OP variable = a op = add impl = dsp
#pragma HLS BIND_OP variable = m op = mul impl = dsp
            pc = pc + m;
          }
        }
        part[c] = pc;
      }
    dsp_tree:  // level w adds part[c + w] into part[c]: ceil(log2(DSP_CHAINS)) levels of DSP adders
      for (int w = 1; w < CFG::DSP_CHAINS; w *= 2) {
        for (int c = 0; c + w < CFG::DSP_CHAINS; c += 2 * w) {
          const typename CFG::dsp_p_t t = part[c] + part[c + w];
#pragma HLS BIND_OP variable = t op = add impl = dsp
          part[c] = t;
        }
      }
      const typename CFG::dsp_p_t pc = part[0];
      // L = the low S bits sign-extended (row 2p+1); H = (P - L) >> S = floor(P / 2^S) + [L < 0]
      // (row 2p): an S-bit increment by P's bit S-1, L's sign
#ifndef __SYNTHESIS__
      assert(pc < (typename CFG::dsp_p_t(1) << 47) && pc >= -(typename CFG::dsp_p_t(1) << 47));
#endif
      const psum_t lo = psum_t(pc);
      const psum_t hi = psum_t(psum_t(pc >> S) + (((pc >> (S - 1)) & 1) != 0 ? 1 : 0));
      acc[l * R + 2 * p] = (first ? acc_t(0) : acc[l * R + 2 * p]) + hi;
      if (2 * p + 1 < R) acc[l * R + 2 * p + 1] = (first ? acc_t(0) : acc[l * R + 2 * p + 1]) + lo;
    }
  }
}

// All tokens of the block against one weight tile (rows row0 .. row0+rows_t-1) held in banks
// b0 .. b{NPORTS-1} (port p: its share of `unit`-column units, weight_buffer.h / port_cols).
//
// One pipelined loop of tlmm_tile_iters(nt, nsteps) iterations, in phases: phase g < ng runs the
// nsteps steps of token group g (all TP lanes at once into acc) and, if g >= 1, writes group g-1's
// TP*R results OL per cycle (W cycles); phase g lasts max(nsteps, W) (phase 0: nsteps, nothing to
// write); phase ng only writes the last group's nl lanes (WL cycles). Outputs go lane-major (slot
// o = lane*R + r) through a shift register `sh`, loaded from acc when a phase starts and shifted by
// OL per cycle, so output slot u of a cycle is always sh[u] (no wide multiplexers).
template <class CFG, bool DEQ, class PY>
void compute_tile(const typename CFG::beat_t b0[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b1[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b2[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b3[][CFG::BEATS_PER_STEP],
                  const typename CFG::xchunk_t xbuf[][CFG::XROWS][CFG::CPC],
                  const f32 qbuf[][CFG::GROUPS_MAX], int nt, int t0, int nsteps, int nb, int unit, int row0,
                  int rows_t, int n_out, f32 wscale, PY *yf, long y_off, int32_t *yi) {
#pragma HLS INLINE off
  typedef typename CFG::acc_t acc_t;
  const int R = CFG::R, BPS = CFG::BEATS_PER_STEP, PAIRS = CFG::PAIRS, SK = CFG::STEP_K;
  const int TP = CFG::TP, OL = CFG::OL, NO = CFG::GROUP_OUTS, W = CFG::WRITE_ITERS;
  enum { kMaxIters = CFG::TILE_ITERS_MAX };  // pragma constant
  int s0[kMaxWeightPorts], bound[kMaxWeightPorts];  // first step and end column of each port's run
#pragma HLS ARRAY_PARTITION variable = s0 complete
#pragma HLS ARRAY_PARTITION variable = bound complete
port_runs:
  for (int p = 0; p < kMaxWeightPorts; p++) {
#pragma HLS UNROLL
    s0[p] = CFG::share_prefix(p) * unit / BPS;
    bound[p] = CFG::share_prefix(p + 1) * unit;
  }
  long loff[TP];  // output offset of lane l relative to lane 0
#pragma HLS ARRAY_PARTITION variable = loff complete
lane_offsets:
  for (int l = 0; l < TP; l++) {
#pragma HLS UNROLL
    loff[l] = (long)l * n_out;
  }
  acc_t acc[NO];  // acc[l*R + r]: lane l, row r of the group being stepped
  acc_t sh[NO];   // output shift register: the previous group's results, slot i*OL + u at sh[u]
  f32 qsh[TP];    // the previous group's activation scales
#pragma HLS ARRAY_PARTITION variable = acc complete
#pragma HLS ARRAY_PARTITION variable = sh complete
#pragma HLS ARRAY_PARTITION variable = qsh complete
init_regs:
  for (int u = 0; u < NO; u++) {
#pragma HLS UNROLL
    acc[u] = 0;
    sh[u] = 0;
  }
init_scales:
  for (int l = 0; l < TP; l++) {
#pragma HLS UNROLL
    qsh[l] = (f32)1.0f;
  }
  const int ng = (nt + TP - 1) / TP;
  const int wfull = nsteps > W ? nsteps : W;
  int g = 0, i = 0, len = nsteps;            // phase (= the group stepped), iteration in it, its length
  int c = 0, xr = 0;                         // first byte column of step i; xbuf row of group g
  long yg = (long)(t0 - TP) * n_out + row0;  // output offset of group g-1, lane 0, row 0
  TlmmOut<PY, OL, R> wout;                   // the outputs' beat (beat pointers)
#pragma HLS ARRAY_PARTITION variable = wout.v complete
tile_iters:
  for (int it = 0; it < tlmm_tile_iters<CFG>(nt, nsteps); it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxIters
    const bool first = i == 0;
    // ---- outputs of group g-1 (phases 1 .. ng, their first W cycles)
    if (g > 0 && i < W) {
      tile_group_outputs<CFG, DEQ>(acc, sh, qsh, qbuf, loff, wout, first, g, i, nt, rows_t, yg, wscale, yf,
                                   y_off, yi);
    }
    // ---- step i of group g: the table lanes' T tables each; the R rows' indices shared by the TP
    // lanes (table lanes look them up, DSP lanes get them as packed trits)
    if (g < ng && i < nsteps) {
      ap_int<2> wt[2 * PAIRS][SK];  // DSP lanes: weight of row r, step activation j (row R of odd R unused)
#pragma HLS ARRAY_PARTITION variable = wt complete dim = 0
      tile_table_lanes<CFG>(b0, b1, b2, b3, xbuf, s0, bound, c, nb, i, xr + i, first, acc, wt);
      if (CFG::DL > 0) tile_dsp_lanes<CFG>(wt, xbuf, xr + i, first, acc);
    }
    // ---- next iteration: the next step, or the next phase
    if (i == len - 1) {
      i = 0;
      c = 0;
      g++;
      xr += CFG::NSTEP_MAX;
      yg += (long)TP * n_out;
      len = wfull;  // (the last phase, WL long, simply ends with the loop)
    } else {
      i++;
      c += BPS;
    }
  }
}

}  // namespace edgellm
