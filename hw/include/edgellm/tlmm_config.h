// The TLMM engine's configuration (tlmm.h header comment: what each field means): the named fields'
// defaults (tlmm_config_base), the derived values (tlmm_traits) and the loop counts the engine and the
// models share (tlmm_act_iters, tlmm_tile_iters). Generated code and testbenches alike configure it by name.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/numerics.h"
#include "edgellm/port_shares.h"
#include "edgellm/weight_buffer.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

// The optional fields' defaults; G, T, R, K_MAX, N_MAX and MAX_TOK have none (a named configuration
// that leaves one out does not compile).
struct tlmm_config_base {
  static const int STORAGE = kStorageUram;
  static const int NPORTS = 1;
  // each weight port's share of a tile's byte columns, in units of ceil(NB / the shares' sum): port p
  // reads SHAREp units (weight_bank_fill.h port_cols). Equal shares split a tile evenly; shares in
  // proportion to the ports' rates let ports on a shared DDR path (kv260: HP1 and HP2 on XPI 4) carry
  // less and finish with the others (compiler/cost/ddr.py rate_shares)
  static const int SHARE0 = 1;
  static const int SHARE1 = 1;
  static const int SHARE2 = 1;
  static const int SHARE3 = 1;
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
  static constexpr int SHARE0 = P::SHARE0;
  static constexpr int SHARE1 = P::SHARE1;
  static constexpr int SHARE2 = P::SHARE2;
  static constexpr int SHARE3 = P::SHARE3;
  // port p's share (units of a tile's byte columns) and the shares of the ports before it (port_shares.h)
  static constexpr int share(int p) { return port_share(p, SHARE0, SHARE1, SHARE2, SHARE3); }
  static constexpr int share_prefix(int p) { return port_share_prefix(p, SHARE0, SHARE1, SHARE2, SHARE3); }
  static constexpr int SHARE_SUM = port_share_prefix(NPORTS, SHARE0, SHARE1, SHARE2, SHARE3);  // units a tile
  static constexpr int TP = P::TP;
  static constexpr int OL = P::OL;
  static constexpr int DL = P::DL;
  static_assert(G >= 1 && G <= 4, "G must be 1..4");
  static_assert(T >= 5 && T % 5 == 0, "T must be a positive multiple of 5");
  static_assert(R >= 1 && R <= 128, "R must be 1..128 (beat of 8*R bits)");
  static_assert(K_MAX >= 1 && N_MAX >= 1 && MAX_TOK >= 1, "maxima must be positive");
  static_assert(NPORTS >= 1 && NPORTS <= kMaxWeightPorts, "NPORTS must be 1..kMaxWeightPorts (4)");
  static_assert(SHARE0 >= 1 && SHARE1 >= 1 && SHARE2 >= 1 && SHARE3 >= 1 && SHARE_SUM <= facts::kMaxPortShares,
                "port shares must be positive, at most kMaxPortShares units a tile");
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
  // byte columns per port and tile, at most: the largest share of ceil(NB_MAX / SHARE_SUM)-column units
  static constexpr int CPP_MAX =
      port_share_max(NPORTS, SHARE0, SHARE1, SHARE2, SHARE3) * ((NB_MAX + SHARE_SUM - 1) / SHARE_SUM);
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

}  // namespace edgellm
