// TeLLMe-style table-lookup ternary matmul (TLMM): y[t][n] = dequantize(sum_k x[t][k] * W[n][k]).
//
// Activations come in groups of G int8 values. For every group the engine builds, online, the
// table of its 3^G signed sums sum_j (c_j - 1) * x_j, storing only entries 0 .. (3^G-1)/2 (the
// last one is the all-zero group: 13 for G = 3); entry i >= half is -table[3^G-1-i]. Each group of
// G ternary weights is an index into its group's table (weight_codec.h). Per cycle ("step") the
// engine handles T groups (T tables, G*T activations) of TP tokens ("token lanes") for R output
// rows: the R rows' weight bytes and index decode are shared by the lanes, so R*T*G*TP MACs per
// cycle. A table lane does them as R*T lookups into its own T tables; a DSP lane (below) as packed
// multiply-accumulate chains. Both compute the exact integer partial sum of each row and step, so
// everything after it (accumulators, output shift register, outputs, cycle counts) is lane-blind.
//
// Configuration, by name (the generated edgellm_config.h: struct tlmm_cfg : tlmm_config_base { static
// const int G = 3; ... }, typedef tlmm_traits<tlmm_cfg> tlmm; testbenches: the positional shorthand
// TlmmConfig<G, T, R, K_MAX, N_MAX, MAX_TOK, STORAGE, NPORTS, TP, OL, DL>):
//   G        activations per group; tables have 3^G entries (default 3, TeLLMe's choice)
//   T        tables per cycle and lane, a multiple of 5 (a chunk of G weight bytes holds 5 groups)
//   R        output rows per cycle = tile height = bytes per weight beat (AXI width 8*R bits)
//   K_MAX    largest reduction length; N_MAX largest n_out (trip counts only)
//   MAX_TOK  tokens whose activations are held on chip: each weight tile is fetched once and used
//            for all tokens of a block, so weights stream ceil(n_tok / MAX_TOK) times (decode: 1);
//            a multiple of TP
//   STORAGE  kStorageUram / kStorageBram / kStorageLutram for the weight tiles and activations
//   NPORTS   weight m_axi ports streamed concurrently (1..4): port p loads its own contiguous run of
//            every tile's byte columns into its own buffer bank (weight_buffer.h); tlmm_matmul takes
//            one pointer per port (distinct m_axi arguments), all holding the same image address
//   TP       token lanes: tokens t of a block go in groups of TP (lane t % TP, group t / TP); a last
//            partial group masks its missing lanes (they compute on stale activations, write nothing)
//   OL       outputs dequantized and written per cycle
//   DL       DSP token lanes, 0..TP-1: lanes TP-DL .. TP-1 (TABLE_LANES = TP - DL table lanes first;
//            lane 0, the decode lane, is always a table lane)
//
// DSP lanes. One DSP48E2 does two MACs: rows r0 = 2p and r1 = 2p+1 (a row pair, PAIRS = ceil(R/2);
// w[R] = 0 when R is odd) share activation x_j, so with S = DSP_SHIFT = PSUM_BITS and
//   a_j = w[r0][j] * 2^S + w[r1][j]   (27 bits, |a_j| <= 2^S + 1: the DSP48E2 pre-adder D + A with
//                                      D = w[r0][j] << S, A = w[r1][j], both the trits' 2-bit codes
//                                      sign-extended: wiring, no packing logic)
//   P   = sum_{j < G*T} a_j * x_j     (x_j: int8 on the 18-bit B operand; 27x18 -> 45-bit products)
//       = H * 2^S + L,  H = sum_j w[r0][j] x_j,  L = sum_j w[r1][j] x_j
// the pair's step sums come out of one 48-bit P. Exact: |H|, |L| <= 128 G T <= 2^(S-1) - 1 (the
// definition of PSUM_BITS), so L is the low S bits of P sign-extended, H = (P - L) >> S (computed as
// floor(P / 2^S) + [L < 0], an S-bit increment by P's bit S-1), and
// |P| <= (2^(S-1) - 1)(2^S + 1) < 2^(2S-1): P (and every partial sum of its terms, bounded the same
// way) fits 2S <= 48 bits (static_assert; S = 12 for G3 T5, 14 for G3 T15, 15 for G4 T25). The sum is
// DSP_CHAINS chains of DSP_CHAIN = 4 terms, each written linear in ascending j (P = P + a_j x_j,
// EXPRESSION_BALANCE off, products bound to DSPs) so Vitis can map it onto a PCOUT -> PCIN cascade
// (UG1399; not checked here: no Vitis), then a balanced tree over the chains of adders bound to DSPs
// (the DSP48E2's 48-bit ALU: DSP_CHAINS - 1 more DSPs per pair, no fabric carry chains). A single
// G*T-long cascade would be cheaper in LUTs but deepen the loop's pipeline by about G*T cycles, paid once
// per tile by every call, decode included (compiler/cost/tlmm.py dsp_lane_extra_depth). The weights are the
// trits of the group indices the table lanes decode (weight_codec.h: w = c_j - 1 pairs with activation j of
// the group), decoded once per row and step for all DSP lanes. Resources as modeled
// (compiler/cost/resource_model.py tlmm_dsp_lanes): PAIRS*G*T DSPs per DSP lane; shared by the DSP lanes
// the trit decode (R*T*2G LUT) and the operands' cascade skew (stage u of a chain takes its operands u
// cycles late: the pair's 4 trit-code bits in SRLs, 4 LUT per delayed stage); per DSP lane the activation
// skew (8 LUT per delayed stage), the chains' adder tree
// (DSP_CHAINS - 1 DSP adders per pair), the field extraction ((PSUM_BITS + 1) LUT per pair) and FF for
// the skewed activations and P.
//
// Cycle counts (loop trip counts, each loop pipelined at II = 1; "+ fill" = that loop's pipeline
// depth, paid once per loop invocation). nt = tokens of the block (<= MAX_TOK), nb = ceil(k / 5)
// byte columns, nsteps = ceil(nb / (G*T/5)), CPC = T / 5 chunks per step, ntiles = ceil(n_out / R):
//   load_acts (per block)  nt * nsteps * CPC           one chunk (5G activation bytes) per cycle
//   load_qs   (per block)  nt                          float variant only (one scale per cycle)
//   per tile (compute_tile, one loop `tile_iters`, tlmm_tile_iters()):
//       ng = ceil(nt / TP), nl = nt - (ng - 1) * TP (lanes of the last group, 1..TP),
//       W = ceil(TP * R / OL) (write cycles of a full group), WL = ceil(nl * R / OL) (of the last)
//       iters = nsteps + (ng - 1) * max(nsteps, W) + WL     + fill
//     (group g's steps run while group g-1's TP*R outputs are written, OL per cycle; the last
//     group's outputs drain after; decode, nt = 1: nsteps + ceil(R / OL))
//   per linear and block: the tile loads (TileLoader, weight_buffer.h: ceil(nb / NPORTS) beats per
//     port) overlap compute: max(acts, load(0)) + sum_{i>=1} max(load(i), iters) + iters, with
//     acts = load_acts + load_qs (both on the activation port).
//
// Accumulator widths (x in [-128, 127], w in {-1, 0, 1}, so |w * x| <= 128); every token lane has
// its own tables (table lanes) or P chains (DSP lanes), partial sums and accumulators, so TP and DL
// do not change any width:
//   table entry   |sum of G terms|  <= 128 G         (G = 3: 384     -> 10 bits signed)
//   one step      |sum of T entries| <= 128 G T      (G = 3, T = 5: 1920 -> 12 bits)
//   accumulator   |sum over k < K|  <= 128 K_MAX    (K_MAX = 16384 = 2^14: 2^21 -> 23 bits)
// SignedBits<v> = clog2(v + 1) + 1 holds [-v, v]; ACC_BITS <= 32 (K_MAX < 2^24) for int32 output.
// The shadow (output shift) register holds finished accumulators unchanged; dequantize is per output.
#pragma once

#include <ap_int.h>

#include <cassert>
#include <cstdint>

#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/weight_buffer.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// The optional fields' defaults; G, T, R, K_MAX, N_MAX and MAX_TOK have none (a named configuration
// that leaves one out does not compile).
struct tlmm_config_base {
  static const int STORAGE = kStorageUram;
  static const int NPORTS = 1;
  static const int TP = 1;
  static const int OL = 1;
  static const int DL = 0;
};

// A named TLMM configuration P (tlmm_config_base's fields by name) with its derived values.
template <class P>
struct tlmm_traits : P {
  static constexpr int G = P::G;
  static constexpr int T = P::T;
  static constexpr int R = P::R;
  static constexpr int K_MAX = P::K_MAX;
  static constexpr int N_MAX = P::N_MAX;
  static constexpr int MAX_TOK = P::MAX_TOK;
  static constexpr int STORAGE = P::STORAGE;
  static constexpr int NPORTS = P::NPORTS;
  static constexpr int TP = P::TP;
  static constexpr int OL = P::OL;
  static constexpr int DL = P::DL;
  static_assert(G >= 1 && G <= 4, "G must be 1..4");
  static_assert(T >= 5 && T % 5 == 0, "T must be a positive multiple of 5");
  static_assert(R >= 1 && R <= 128, "R must be 1..128 (beat of 8*R bits)");
  static_assert(K_MAX >= 1 && N_MAX >= 1 && MAX_TOK >= 1, "maxima must be positive");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxWeightPorts, "NPORTS must be 1..kMaxWeightPorts (4)");
  static_assert(TP >= 1 && TP <= 16, "TP (token lanes) must be 1..16");
  static_assert(MAX_TOK % TP == 0, "MAX_TOK (the token block) must be a multiple of TP");
  static_assert(OL >= 1 && OL <= TP * R, "OL (outputs per cycle) must be 1..TP*R");
  static_assert(DL >= 0 && DL < TP, "DL (DSP token lanes) must be 0..TP-1: lane 0 stays a table lane");
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
  static constexpr int GROUPS_MAX = MAX_TOK / TP;          // token groups of a block
  static constexpr int XROWS = GROUPS_MAX * NSTEP_MAX;     // rows of one lane of the activation block
  static constexpr int GROUP_OUTS = TP * R;                // outputs of one token group and tile
  static constexpr int WRITE_ITERS = (GROUP_OUTS + OL - 1) / OL;  // W: cycles to write them
  static constexpr int PHASE_MAX = NSTEP_MAX > WRITE_ITERS ? NSTEP_MAX : WRITE_ITERS;
  static constexpr int TILE_ITERS_MAX = NSTEP_MAX + (GROUPS_MAX - 1) * PHASE_MAX + WRITE_ITERS;
  static constexpr int TAB_N = GroupIndex<G>::kHalf + 1;  // stored table entries
  static constexpr int TAB_BITS = SignedBits<128LL * G>::value;
  static constexpr int PSUM_BITS = SignedBits<128LL * G * T>::value;
  static constexpr int ACC_BITS = SignedBits<128LL * K_MAX>::value;
  static_assert(ACC_BITS <= 32, "K_MAX too large for an int32 accumulator");
  // DSP token lanes (header comment): lanes TABLE_LANES .. TP-1; row pair p = rows 2p, 2p+1 packed
  // as one 27-bit A operand w[2p] * 2^DSP_SHIFT + w[2p+1] (a missing row 2p+1 = R, R odd, is zero)
  static constexpr int TABLE_LANES = TP - DL;
  static constexpr int PAIRS = (R + 1) / 2;
  static constexpr int DSP_SHIFT = PSUM_BITS;  // S: the low field holds one step's partial sum
  // a pair's G*T products as DSP_CHAINS cascades of at most DSP_CHAIN DSPs, summed by a DSP tree: a
  // short cascade keeps the step's latency (and so the loop's pipeline depth, paid once per tile even
  // in decode) near the table lanes'
  static constexpr int DSP_CHAIN = facts::kDspChain;
  static constexpr int DSP_CHAINS = (STEP_K + DSP_CHAIN - 1) / DSP_CHAIN;
  static_assert(DL == 0 || DSP_SHIFT + PSUM_BITS <= 48,
                "DSP lanes: the two packed partial sums (S + PSUM_BITS bits) must fit the 48-bit P");
  static_assert(DL == 0 || DSP_SHIFT + 2 <= 27, "DSP lanes: w * 2^S + w' must fit the 27-bit A operand");
  typedef ap_uint<8 * R> beat_t;          // one byte column of a tile: byte r = row r
  typedef ap_uint<8 * R * kFetchBeats> fword_t;  // one word of a weight FIFO (weight_fetch.h)
  typedef ap_uint<8 * CHUNK_K> xchunk_t;  // one chunk of one token's activations
  typedef ap_int<TAB_BITS> tab_t;
  typedef ap_int<PSUM_BITS> psum_t;
  typedef ap_int<ACC_BITS> acc_t;
  typedef typename GroupIndex<G>::type idx_t;
#ifdef __SYNTHESIS__
  typedef ap_int<27> dsp_a_t;  // DSP48E2 A operand (the 27-bit multiplier input): two packed trits
  typedef ap_int<18> dsp_b_t;  // B operand: one int8 activation, sign-extended
  typedef ap_int<45> dsp_m_t;  // the 27 x 18 product
  typedef ap_int<48> dsp_p_t;  // the P register / PCOUT -> PCIN cascade
#else
  // C simulation: the same values in native 64-bit integers (arbitrary-precision types made the DSP
  // lanes several times slower than the table lanes). Exact: the bounds above keep every operand and
  // sum inside the DSP widths (|a| <= 2^S + 1 < 2^26, |x| <= 128, |P| < 2^(2S-1) <= 2^47), so the
  // DSP's wrap-around never happens; compute_tile asserts |P| < 2^47 on every chain it simulates.
  typedef int64_t dsp_a_t;
  typedef int64_t dsp_b_t;
  typedef int64_t dsp_m_t;
  typedef int64_t dsp_p_t;
#endif
};

// Testbench shorthand: the fields in order (generated code names them; see tlmm_traits).
template <int G_, int T_, int R_, int K_MAX_, int N_MAX_, int MAX_TOK_, int STORAGE_ = kStorageUram,
          int NPORTS_ = 1, int TP_ = 1, int OL_ = 1, int DL_ = 0>
struct tlmm_params {
  static const int G = G_, T = T_, R = R_, K_MAX = K_MAX_, N_MAX = N_MAX_, MAX_TOK = MAX_TOK_;
  static const int STORAGE = STORAGE_, NPORTS = NPORTS_, TP = TP_, OL = OL_, DL = DL_;
};
template <int G_, int T_, int R_, int K_MAX_, int N_MAX_, int MAX_TOK_, int STORAGE_ = kStorageUram,
          int NPORTS_ = 1, int TP_ = 1, int OL_ = 1, int DL_ = 0>
using TlmmConfig = tlmm_traits<tlmm_params<G_, T_, R_, K_MAX_, N_MAX_, MAX_TOK_, STORAGE_, NPORTS_, TP_, OL_, DL_> >;

// Cycles (iterations of load_acts' loop) to load a block of nt tokens: one chunk per cycle.
template <class CFG>
int tlmm_act_iters(int nt, int nsteps) {
#pragma HLS INLINE
  return nt * nsteps * CFG::CPC;
}

// Iterations of compute_tile's loop for nt tokens: nsteps + (ng - 1) * max(nsteps, W) + WL
// (ng token groups; W, WL: write cycles of a full group and of the last one; header comment).
template <class CFG>
int tlmm_tile_iters(int nt, int nsteps) {
#pragma HLS INLINE
  const int ng = (nt + CFG::TP - 1) / CFG::TP;
  const int nl = nt - (ng - 1) * CFG::TP;
  const int wl = (nl * CFG::R + CFG::OL - 1) / CFG::OL;
  const int phase = nsteps > CFG::WRITE_ITERS ? nsteps : CFG::WRITE_ITERS;
  return nsteps + (ng - 1) * phase + wl;
}

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

// Activation block -> xbuf[t % TP][(t / TP) * NSTEP_MAX + s][c]: chunk c of step s of token t (lane
// t % TP, group t / TP), zero beyond k. Per token its int8 row (k bytes at element x_off + t * k of x)
// comes in one data beat per cycle (row_load: any start), then one whole chunk (CHUNK_K = 5G contiguous
// bytes) per cycle from that on-chip row: nt * (row beats + nsteps * CPC) cycles (tlmm_act_iters counts
// the chunks).
template <class CFG, class PX>
void load_acts(const PX *x, long x_off, int nt, int k, int nsteps,
               typename CFG::xchunk_t xbuf[][CFG::XROWS][CFG::CPC]) {
#pragma HLS INLINE off
  enum { CK = CFG::CHUNK_K, XE = PortBeat<int8_t, PX>::E, kRow = CFG::NSTEP_MAX * CFG::CPC * CK,
         kPart = CK > XE ? (CK > 16 ? 32 : 16) : XE, kChunks = CFG::NSTEP_MAX * CFG::CPC,
         kMaxTok = CFG::MAX_TOK };
  int8_t row[kRow];  // one token's activations (the chunk loop reads CK consecutive bytes a cycle)
#pragma HLS ARRAY_PARTITION variable = row type = cyclic factor = kPart
  int lane = 0, xr = 0;  // token t's lane and group row
load_x_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    row_load<kRow>(x, x_off + (long)t * k, k, row);
    int s = 0, c = 0, col = 0;  // step, chunk, column
  load_x:
    for (int i = 0; i < nsteps * CFG::CPC; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
      uint8_t by[CK];
#pragma HLS ARRAY_PARTITION variable = by complete
    chunk_bytes:
      for (int j = 0; j < CK; j++) {
#pragma HLS UNROLL
        by[j] = col + j < k ? (uint8_t)row[col + j] : (uint8_t)0;
      }
      xbuf[lane][xr + s][c] = bytes_word<CK>(by);
      col += CK;
      if (c == CFG::CPC - 1) {
        c = 0;
        s++;
      } else {
        c++;
      }
    }
    if (lane == CFG::TP - 1) {
      lane = 0;
      xr += CFG::NSTEP_MAX;
    } else {
      lane++;
    }
  }
}

// Activation scales of the block (element qs_off of qs) -> qbuf[t % TP][t / TP], one per token.
template <class CFG, class PS>
void load_qs(const PS *qs, long qs_off, int nt, f32 qbuf[][CFG::GROUPS_MAX]) {
#pragma HLS INLINE off
  enum { kMaxTok = CFG::MAX_TOK };  // pragma constant
  int lane = 0, grp = 0;
load_scales:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    qbuf[lane][grp] = mget<f32>(qs, qs_off + t);
    if (lane == CFG::TP - 1) {
      lane = 0;
      grp++;
    } else {
      lane++;
    }
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
pack_pairs:
  for (int p = 0; p < PAIRS; p++) {
    for (int j = 0; j < SK; j++) {
      dhi[p][j] = typename CFG::dsp_a_t(wt[2 * p][j]) << S;
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
// b0 .. b{NPORTS-1} (port p: byte columns [p*cpp, (p+1)*cpp), see weight_buffer.h).
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
                  const f32 qbuf[][CFG::GROUPS_MAX], int nt, int t0, int nsteps, int nb, int cpp, int row0,
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
    s0[p] = p * cpp / BPS;
    bound[p] = (p + 1) * cpp;
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

// The engine body, run on the buffers TlmmBuffers<STORAGE> declares: ping banks p0..p3, pong
// banks q0..q3 (only the first NPORTS of each are used), the activation block xbuf[TP][XROWS][CPC].
// Element offsets of the TLMM's activation operands: the int8 rows x, their scales qs, the outputs y.
struct TlmmAt {
  long x, qs, y;
};

template <class CFG, bool DEQ, class WT>
struct TlmmBody {
  typedef typename CFG::beat_t beat_t;
  typedef typename CFG::xchunk_t xchunk_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  template <class PX, class PS, class PY>
  static void run(beat_t p0[][BPS], beat_t p1[][BPS], beat_t p2[][BPS], beat_t p3[][BPS], beat_t q0[][BPS],
                  beat_t q1[][BPS], beat_t q2[][BPS], beat_t q3[][BPS], xchunk_t xbuf[][CFG::XROWS][CFG::CPC],
                  const PX *x, const PS *qs, int n_tok, WT *w0, WT *w1, WT *w2, WT *w3, int n_out, int k,
                  f32 wscale, PY *yf, int32_t *yi, TlmmAt at) {
    // the ping-pong's two call sites of the loader and of the compute, in exclusive branches, share
    // one instance each (no second TLMM datapath)
#pragma HLS ALLOCATION function instances = tlmm_load_tile<CFG, WT> limit = 1
#pragma HLS ALLOCATION function instances = compute_tile<CFG, DEQ, PY> limit = 1
    const int R = CFG::R;
    // pragma constants (trip-count hint: a 1024-token prompt)
    enum { kMaxBlocks = (CFG::MAX_TOK + 1023) / CFG::MAX_TOK, kMaxTiles = CFG::TILES_MAX };
    f32 qbuf[CFG::TP][CFG::GROUPS_MAX];  // the block's activation scales, lane-major (float variant)
#pragma HLS ARRAY_PARTITION variable = qbuf dim = 1 type = complete
    const int nb = (k + kTritsPerByte - 1) / kTritsPerByte;
    const int nsteps = (nb + BPS - 1) / BPS;
    const int cpp = cols_per_port<CFG>(nb);
    const int ntiles = (n_out + R - 1) / R;
  token_blocks:
    for (int t0 = 0; t0 < n_tok; t0 += CFG::MAX_TOK) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBlocks
      const int nt = n_tok - t0 < CFG::MAX_TOK ? n_tok - t0 : CFG::MAX_TOK;
      load_acts<CFG>(x, at.x + (long)t0 * k, nt, k, nsteps, xbuf);
      if (DEQ) load_qs<CFG>(qs, at.qs + t0, nt, qbuf);
    tiles:
      for (int i = 0; i <= ntiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = kMaxTiles + 1
        const int prv = i - 1;
        const int rows_i = n_out - i * R < R ? n_out - i * R : R;
        const int rows_p = n_out - prv * R < R ? n_out - prv * R : R;
        // Load tile i into one bank set (all ports at once) while tile i-1 is computed from the other.
        if ((i & 1) == 0) {
          tlmm_load_tile<CFG>(w0, w1, w2, w3, i, ntiles, rows_i, nb, cpp, p0, p1, p2, p3);
          if (i > 0)
            compute_tile<CFG, DEQ>(q0, q1, q2, q3, xbuf, qbuf, nt, t0, nsteps, nb, cpp, prv * R, rows_p, n_out,
                                   wscale, yf, at.y, yi);
        } else {
          tlmm_load_tile<CFG>(w0, w1, w2, w3, i, ntiles, rows_i, nb, cpp, q0, q1, q2, q3);
          compute_tile<CFG, DEQ>(p0, p1, p2, p3, xbuf, qbuf, nt, t0, nsteps, nb, cpp, prv * R, rows_p, n_out,
                                 wscale, yf, at.y, yi);
        }
      }
    }
  }
};

// y[t][n] = dequantize(acc[t][n], qs[t], wscale) for t < n_tok, n < n_out; acc = x[t] . W[n].
// x: int8 [n_tok][k]; qs: [n_tok]; w0 .. w3: the tiled 5-trits/byte image of W (n_out, k) with
// rows_per_tile = CFG::R, one pointer per weight port, all at the image's address (uint8_t pointers,
// or ap_uint<8*R> beats on wide m_axi ports). Port p reads only its share of every tile (see
// weight_buffer.h); pointers p >= CFG::NPORTS are never dereferenced. x, qs, y: plain arrays, or the
// act port's beats at element offsets at (n_out, k and R then whole beats).
template <class CFG, class WT, class PX, class PS, class PY>
void tlmm_matmul(const PX *x, const PS *qs, int n_tok, WT *w0, WT *w1, WT *w2, WT *w3, int n_out, int k,
                 f32 wscale, PY *y, TlmmAt at = TlmmAt()) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, true, WT> >(
      x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y, (int32_t *)0, at);
}

// Single-pointer form: every port reads the image through w_enc.
template <class CFG, class WT>
void tlmm_matmul(const int8_t *x, const f32 *qs, int n_tok, WT *w_enc, int n_out, int k, f32 wscale,
                 f32 *y) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, true, WT> >(
      x, qs, n_tok, w_enc, w_enc, w_enc, w_enc, n_out, k, wscale, y, (int32_t *)0, TlmmAt());
}

// Integer-only variant: acc[t][n] = sum_k x[t][k] * W[n][k], exact int32 (one pointer per port).
template <class CFG, class WT>
void tlmm_matmul_int(const int8_t *x, int n_tok, WT *w0, WT *w1, WT *w2, WT *w3,
                     int n_out, int k, int32_t *acc) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, false, WT> >(
      x, (const f32 *)0, n_tok, w0, w1, w2, w3, n_out, k, (f32)0.0f, (f32 *)0, acc, TlmmAt());
}

// Integer-only variant, single pointer.
template <class CFG, class WT>
void tlmm_matmul_int(const int8_t *x, int n_tok, WT *w_enc, int n_out, int k, int32_t *acc) {
  TlmmBuffers<CFG::STORAGE>::template run<CFG, TlmmBody<CFG, false, WT> >(
      x, (const f32 *)0, n_tok, w_enc, w_enc, w_enc, w_enc, n_out, k, (f32)0.0f, (f32 *)0, acc, TlmmAt());
}

}  // namespace edgellm
