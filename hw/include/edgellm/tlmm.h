// TeLLMe-style table-lookup ternary matmul (TLMM): y[t][n] = dequantize(sum_k x[t][k] * W[n][k]).
//
// Activations come in groups of G int8 values. For every group the engine builds, online, the
// table of its 3^G signed sums sum_j (c_j - 1) * x_j, storing only entries 0 .. (3^G-1)/2 (the
// last one is the all-zero group: 13 for G = 3); entry i >= half is -table[3^G-1-i]. Each group of
// G ternary weights is an index into its group's table (weight_codec.h). Per cycle ("step") the
// engine handles T groups (T tables, G*T activations) for R output rows: R*T lookups, R*T*G MACs.
//
// Configuration (TlmmConfig):
//   G        activations per group; tables have 3^G entries (default 3, TeLLMe's choice)
//   T        tables per cycle, a multiple of 5 (a chunk of G weight bytes holds 5 groups)
//   R        output rows per cycle = tile height = bytes per weight beat (AXI width 8*R bits)
//   K_MAX    largest reduction length; N_MAX largest n_out (trip counts only)
//   MAX_TOK  tokens whose activations are held on chip: each weight tile is fetched once and used
//            for all tokens of a block, so weights stream ceil(n_tok / MAX_TOK) times (decode: 1)
//   STORAGE  kStorageUram / kStorageBram / kStorageLutram for the weight tiles and activations
//   NPORTS   weight m_axi ports streamed concurrently (1..4): port p loads its own contiguous run of
//            every tile's byte columns into its own buffer bank (weight_buffer.h); tlmm_matmul takes
//            one pointer per port (distinct m_axi arguments), all holding the same image address
//
// Accumulator widths (x in [-128, 127], w in {-1, 0, 1}, so |w * x| <= 128):
//   table entry   |sum of G terms|  <= 128 G         (G = 3: 384     -> 10 bits signed)
//   one step      |sum of T entries| <= 128 G T      (G = 3, T = 5: 1920 -> 12 bits)
//   accumulator   |sum over k < K|  <= 128 K_MAX    (K_MAX = 16384 = 2^14: 2^21 -> 23 bits)
// SignedBits<v> = clog2(v + 1) + 1 holds [-v, v]; ACC_BITS <= 32 (K_MAX < 2^24) for int32 output.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/numerics.h"
#include "edgellm/weight_buffer.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

template <int G_, int T_, int R_, int K_MAX_, int N_MAX_, int MAX_TOK_, int STORAGE_ = kStorageUram,
          int NPORTS_ = 1>
struct TlmmConfig {
  static constexpr int G = G_;
  static constexpr int T = T_;
  static constexpr int R = R_;
  static constexpr int K_MAX = K_MAX_;
  static constexpr int N_MAX = N_MAX_;
  static constexpr int MAX_TOK = MAX_TOK_;
  static constexpr int STORAGE = STORAGE_;
  static constexpr int NPORTS = NPORTS_;
  static_assert(G >= 1 && G <= 4, "G must be 1..4");
  static_assert(T >= 5 && T % 5 == 0, "T must be a positive multiple of 5");
  static_assert(R >= 1 && R <= 128, "R must be 1..128 (beat of 8*R bits)");
  static_assert(K_MAX >= 1 && N_MAX >= 1 && MAX_TOK >= 1, "maxima must be positive");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxWeightPorts, "NPORTS must be 1..kMaxWeightPorts (4)");
  static constexpr int CPC = T / 5;                 // chunks (G byte columns = 5 groups) per step
  static constexpr int CHUNK_K = kTritsPerByte * G;  // activations per chunk
  static constexpr int STEP_K = G * T;              // activations per step
  static constexpr int BEATS_PER_STEP = G * CPC;    // byte columns per step
  static constexpr int NB_MAX = (K_MAX + kTritsPerByte - 1) / kTritsPerByte;
  static constexpr int NSTEP_MAX = (NB_MAX + BEATS_PER_STEP - 1) / BEATS_PER_STEP;
  static constexpr int TILES_MAX = (N_MAX + R - 1) / R;
  static constexpr int CPP_MAX = (NB_MAX + NPORTS - 1) / NPORTS;  // byte columns per port and tile
  // steps a port's run of columns touches: one port holds them all; otherwise a run of CPP_MAX columns
  // starting anywhere in a step spans at most ceil((CPP_MAX - 1) / BPS) + 1 steps
  static constexpr int BANK_ROWS =
      NPORTS == 1 ? NSTEP_MAX : (CPP_MAX + BEATS_PER_STEP - 2) / BEATS_PER_STEP + 1;
  static constexpr int TAB_N = GroupIndex<G>::kHalf + 1;  // stored table entries
  static constexpr int TAB_BITS = SignedBits<128LL * G>::value;
  static constexpr int PSUM_BITS = SignedBits<128LL * G * T>::value;
  static constexpr int ACC_BITS = SignedBits<128LL * K_MAX>::value;
  static_assert(ACC_BITS <= 32, "K_MAX too large for an int32 accumulator");
  typedef ap_uint<8 * R> beat_t;          // one byte column of a tile: byte r = row r
  typedef ap_uint<8 * CHUNK_K> xchunk_t;  // one chunk of one token's activations
  typedef ap_int<TAB_BITS> tab_t;
  typedef ap_int<PSUM_BITS> psum_t;
  typedef ap_int<ACC_BITS> acc_t;
  typedef typename GroupIndex<G>::type idx_t;
};

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

// Activation block -> xbuf[t * NSTEP_MAX + s][c]: chunk c of step s of token t, zero beyond k.
template <class CFG>
void load_acts(const int8_t *x, int n_tok, int k, int nsteps, typename CFG::xchunk_t xbuf[][CFG::CPC]) {
#pragma HLS INLINE off
  enum { kMaxElems = CFG::MAX_TOK * CFG::NSTEP_MAX * CFG::STEP_K };  // pragma constant
  typename CFG::xchunk_t cw = 0;
  int pos = 0, c = 0, s = 0, t = 0, col = 0;
load_x:
  for (int i = 0; i < n_tok * nsteps * CFG::STEP_K; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxElems
    int8_t v = col < k ? x[(long)t * k + col] : (int8_t)0;
    cw.range(8 * pos + 7, 8 * pos) = (uint8_t)v;
    col++;
    if (pos == CFG::CHUNK_K - 1) {
      xbuf[t * CFG::NSTEP_MAX + s][c] = cw;
      pos = 0;
      if (c == CFG::CPC - 1) {
        c = 0;
        if (s == nsteps - 1) {
          s = 0;
          t++;
          col = 0;
        } else {
          s++;
        }
      } else {
        c++;
      }
    } else {
      pos++;
    }
  }
}

// All tokens of the block against one weight tile (rows row0 .. row0+rows_t-1) held in banks
// b0 .. b{NPORTS-1} (port p: byte columns [p*cpp, (p+1)*cpp), see weight_buffer.h).
template <class CFG, bool DEQ>
void compute_tile(const typename CFG::beat_t b0[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b1[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b2[][CFG::BEATS_PER_STEP],
                  const typename CFG::beat_t b3[][CFG::BEATS_PER_STEP],
                  const typename CFG::xchunk_t xbuf[][CFG::CPC], int nt, int t0, int nsteps, int nb, int cpp,
                  int row0, int rows_t, int n_out, const f32 *qs, f32 wscale, f32 *yf, int32_t *yi) {
#pragma HLS INLINE off
  const int G = CFG::G, R = CFG::R, CPC = CFG::CPC, TAB_N = CFG::TAB_N, BPS = CFG::BEATS_PER_STEP;
  enum { kMaxTok = CFG::MAX_TOK, kMaxSteps = CFG::NSTEP_MAX };  // pragma constants
  int s0[kMaxWeightPorts], bound[kMaxWeightPorts];  // first step and end column of each port's run
#pragma HLS ARRAY_PARTITION variable = s0 complete
#pragma HLS ARRAY_PARTITION variable = bound complete
port_runs:
  for (int p = 0; p < kMaxWeightPorts; p++) {
#pragma HLS UNROLL
    s0[p] = p * cpp / BPS;
    bound[p] = (p + 1) * cpp;
  }
  typename CFG::acc_t acc[R];
#pragma HLS ARRAY_PARTITION variable = acc complete
tokens:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    for (int r = 0; r < R; r++) {
#pragma HLS UNROLL
      acc[r] = 0;
    }
    int c = 0;  // first byte column of step s
  steps:
    for (int s = 0; s < nsteps; s++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxSteps
      uint8_t wbytes[BPS][R];  // byte r of beat j = row r's byte of column c + j
#pragma HLS ARRAY_PARTITION variable = wbytes complete dim = 0
    step_beats:
      for (int j = 0; j < BPS; j++) {
        word_bytes<R>(bank_beat<CFG>(b0, b1, b2, b3, c + j, nb, s, s0, bound, j), wbytes[j]);
      }
      c += BPS;
      typename CFG::tab_t tab[CFG::T][TAB_N];
#pragma HLS ARRAY_PARTITION variable = tab complete dim = 0
    tables:
      for (int c = 0; c < CPC; c++) {
        uint8_t xb[CFG::CHUNK_K];
        word_bytes<CFG::CHUNK_K>(xbuf[t * CFG::NSTEP_MAX + s][c], xb);
        for (int q = 0; q < kTritsPerByte; q++) {
          ap_int<8> xs[G];
          for (int j = 0; j < G; j++) xs[j] = (int8_t)xb[q * G + j];
          build_table<G>(xs, tab[c * kTritsPerByte + q]);
        }
      }
    rows:
      for (int r = 0; r < R; r++) {
        typename CFG::psum_t ps = 0;
        for (int c = 0; c < CPC; c++) {
          uint8_t bytes[G];
          for (int j = 0; j < G; j++) bytes[j] = wbytes[c * G + j][r];
          typename CFG::idx_t idx[kTritsPerByte];
          chunk_indices_u<G>(bytes, idx);
          for (int q = 0; q < kTritsPerByte; q++) ps += table_lookup<G>(tab[c * kTritsPerByte + q], idx[q]);
        }
        acc[r] += ps;
      }
    }
  outputs:
    for (int r = 0; r < R; r++) {
#pragma HLS PIPELINE II = 1
      if (r < rows_t) {
        long o = (long)(t0 + t) * n_out + row0 + r;
        int32_t a = (int32_t)acc[r];
        if (DEQ) {
          yf[o] = dequantize(a, qs[t0 + t], wscale);
        } else {
          yi[o] = a;
        }
      }
    }
  }
}

// The engine body, run on the buffers TlmmBuffers<STORAGE> declares: ping banks p0..p3, pong
// banks q0..q3 (only the first NPORTS of each are used), the activation block xbuf.
template <class CFG, bool DEQ, class WT>
struct TlmmBody {
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::xchunk_t xchunk_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  static void run(beat_t p0[][BPS], beat_t p1[][BPS], beat_t p2[][BPS], beat_t p3[][BPS], beat_t q0[][BPS],
                  beat_t q1[][BPS], beat_t q2[][BPS], beat_t q3[][BPS], xchunk_t xbuf[][CFG::CPC],
                  const int8_t *x, const f32 *qs, int n_tok, const WT *w0, const WT *w1, const WT *w2,
                  const WT *w3, int n_out, int k, f32 wscale, f32 *yf, int32_t *yi) {
    const int R = CFG::R;
    // pragma constants (trip-count hint: a 1024-token prompt)
    enum { kMaxBlocks = (CFG::MAX_TOK + 1023) / CFG::MAX_TOK, kMaxTiles = CFG::TILES_MAX };
    const int nb = (k + kTritsPerByte - 1) / kTritsPerByte;
    const int nsteps = (nb + BPS - 1) / BPS;
    const int cpp = cols_per_port<CFG>(nb);
    const int ntiles = (n_out + R - 1) / R;
  token_blocks:
    for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
      const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
      load_acts<CFG>(x + (long)t0 * k, nt, k, nsteps, xbuf);
      TileLoader<CFG>::run(w0, w1, w2, w3, 0, n_out < R ? n_out : R, nb, cpp, p0, p1, p2, p3);
    tiles:
      for (int i = 0; i < ntiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTiles
        const int nxt = i + 1;
        const int rows_i = n_out - i * R < R ? n_out - i * R : R;
        const int rows_n = n_out - nxt * R < R ? n_out - nxt * R : R;
        // Load tile i+1 into one bank set (all ports at once) while tile i is computed from the other.
        if ((i & 1) == 0) {
          if (nxt < ntiles) TileLoader<CFG>::run(w0, w1, w2, w3, nxt, rows_n, nb, cpp, q0, q1, q2, q3);
          compute_tile<CFG, DEQ>(p0, p1, p2, p3, xbuf, nt, t0, nsteps, nb, cpp, i * R, rows_i, n_out, qs,
                                 wscale, yf, yi);
        } else {
          if (nxt < ntiles) TileLoader<CFG>::run(w0, w1, w2, w3, nxt, rows_n, nb, cpp, p0, p1, p2, p3);
          compute_tile<CFG, DEQ>(q0, q1, q2, q3, xbuf, nt, t0, nsteps, nb, cpp, i * R, rows_i, n_out, qs,
                                 wscale, yf, yi);
        }
      }
    }
  }
};

// y[t][n] = dequantize(acc[t][n], qs[t], wscale) for t < n_tok, n < n_out; acc = x[t] . W[n].
// x: int8 [n_tok][k]; qs: [n_tok]; w0 .. w3: the tiled 5-trits/byte image of W (n_out, k) with
// rows_per_tile = CFG::R, one pointer per weight port, all at the image's address (uint8_t pointers,
// or ap_uint<8*R> beats on wide m_axi ports). Port p reads only its share of every tile (see
// weight_buffer.h); pointers p >= CFG::NPORTS are never dereferenced.
template <class CFG, class WT>
void tlmm_matmul(const int8_t *x, const f32 *qs, int n_tok, const WT *w0, const WT *w1, const WT *w2,
                 const WT *w3, int n_out, int k, f32 wscale, f32 *y) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, true, WT> >(
      x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y, (int32_t *)0);
}

// Single-pointer form: every port reads the image through w_enc.
template <class CFG, class WT>
void tlmm_matmul(const int8_t *x, const f32 *qs, int n_tok, const WT *w_enc, int n_out, int k, f32 wscale,
                 f32 *y) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, true, WT> >(
      x, qs, n_tok, w_enc, w_enc, w_enc, w_enc, n_out, k, wscale, y, (int32_t *)0);
}

// Integer-only variant: acc[t][n] = sum_k x[t][k] * W[n][k], exact int32 (one pointer per port).
template <class CFG, class WT>
void tlmm_matmul_int(const int8_t *x, int n_tok, const WT *w0, const WT *w1, const WT *w2, const WT *w3,
                     int n_out, int k, int32_t *acc) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, false, WT> >(
      x, (const f32 *)0, n_tok, w0, w1, w2, w3, n_out, k, (f32)0.0f, (f32 *)0, acc);
}

// Integer-only variant, single pointer.
template <class CFG, class WT>
void tlmm_matmul_int(const int8_t *x, int n_tok, const WT *w_enc, int n_out, int k, int32_t *acc) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, false, WT> >(
      x, (const f32 *)0, n_tok, w_enc, w_enc, w_enc, w_enc, n_out, k, (f32)0.0f, (f32 *)0, acc);
}

}  // namespace edgellm
