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
// Files: tlmm_config.h (the configuration and its derived values), tlmm_tile.h (compute_tile: the
// table lanes, the DSP lanes, the outputs), this header (the loaders, the engine body, tlmm_matmul).
//
// Configuration, by name (the generated edgellm_config.h and the testbenches alike: struct tlmm_cfg :
// tlmm_config_base { static const int G = 3; ... }, typedef tlmm_traits<tlmm_cfg> tlmm; G, T, R, K_MAX,
// N_MAX and MAX_TOK are required, the others default as in tlmm_config_base):
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
//   SHARE0..3  each port's share of a tile's byte columns, in units of ceil(nb / their sum) (default 1:
//            equal runs; weight_bank_fill.h port_cols)
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
//   per linear and block: the tile loads (TileLoader, weight_buffer.h: a port's run of columns, the
//     busiest port's sets the time; equal shares ceil(nb / NPORTS)) overlap compute: max(acts, load(0)) + sum_{i>=1} max(load(i), iters) + iters, with
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
#include "edgellm/tlmm_config.h"
#include "edgellm/tlmm_tile.h"
#include "edgellm/weight_buffer.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

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
  // one token's activations in kPart explicit banks (byte e in bank e % kPart): the loader writes one
  // aligned 16-byte block a cycle, the chunk loop reads CK consecutive bytes, each bank once
  int8_t row[kPart][(kRow + kPart - 1) / kPart];
#pragma HLS ARRAY_PARTITION variable = row dim = 1 type = complete
#pragma HLS BIND_STORAGE variable = row type = ram_s2p impl = bram  // LUTs are the scarcer resource
  int lane = 0, xr = 0;  // token t's lane and group row
load_x_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    row_load_banked<kRow, kPart>(x, x_off + (long)t * k, k, row);
    int s = 0, c = 0, col = 0;  // step, chunk, column
  load_x:
    for (int i = 0; i < nsteps * CFG::CPC; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kChunks
      uint8_t by[CK];
#pragma HLS ARRAY_PARTITION variable = by complete
      int8_t v[kPart];  // bank b's byte of the kPart from col on: byte col + ((b - col) mod kPart)
#pragma HLS ARRAY_PARTITION variable = v complete
    chunk_banks:
      for (int b = 0; b < kPart; b++) {
#pragma HLS UNROLL
        const int e = col + (b - col % kPart + kPart) % kPart;
        v[b] = e < kRow ? row[b][e / kPart] : (int8_t)0;
      }
    chunk_bytes:
      for (int j = 0; j < CK; j++) {
#pragma HLS UNROLL
        by[j] = col + j < k ? (uint8_t)v[(col + j) % kPart] : (uint8_t)0;
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
    const int unit = port_unit<CFG>(nb);  // the ports' column shares' unit
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
          tlmm_load_tile<CFG>(w0, w1, w2, w3, i, ntiles, rows_i, nb, unit, p0, p1, p2, p3);
          if (i > 0)
            compute_tile<CFG, DEQ>(q0, q1, q2, q3, xbuf, qbuf, nt, t0, nsteps, nb, unit, prv * R, rows_p, n_out,
                                   wscale, yf, at.y, yi);
        } else {
          tlmm_load_tile<CFG>(w0, w1, w2, w3, i, ntiles, rows_i, nb, unit, q0, q1, q2, q3);
          compute_tile<CFG, DEQ>(p0, p1, p2, p3, xbuf, qbuf, nt, t0, nsteps, nb, unit, prv * R, rows_p, n_out,
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
