// The low-bit engine's (lowbit_mm.h) description of a tensor and of itself, and the parameter records'
// decode: a tensor's shape and ParamCodec (LowbitTensor, packing_lowbit.ParamCodec), the engine's
// configuration (LowbitConfig) and the sizes and iteration counts of its stream and loops (compiler/cost/
// lowbit.py counts the same); a parameter record's decode: lowbit_decode.h.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/lowbit_source.h"
#include "edgellm/numerics.h"

namespace edgellm {

const int kLbMaxGroup = facts::kLbMaxGroup;  // the widest group, and a super-block's inputs (256)
const int kLbMaxNib = kLbMaxGroup / 4;       // tables per group
const int kLbMinGroup = facts::kLbMinGroup;  // the narrowest group
const int kLbMaxSb = facts::kLbMaxSb;        // groups per super-block (256 / 16)
const int kLbMaxRecordBits = facts::kLbMaxRecordBits;  // d, dm, SB x (sc + mc) at the widest
const int kLbMaxFloatUnits = 32;  // float steps per token lane at the most: BW / 16 lanes at BW 512

// One tensor: its shape and its ParamCodec (packing_lowbit.ParamCodec.as_words order).
struct LowbitTensor {
  int bits, group, n_out, k;
  int sb, db, scb, sc_off, mmode, dmb, mcb, mc_off, mz, dper;
};

// The codec list of an engine that decodes any codec (by runtime shifts: C simulation only).
struct LbAnyCodec {
  static const int n_codecs = 0;
  static constexpr int codec(int, int) { return 0; }
};

// log2 of a power of two N, at compile time (a template, not a recursive function: HLS has none).
template <int N>
struct LbLog2 {
  enum { value = 1 + LbLog2<N / 2>::value };
};
template <>
struct LbLog2<1> {
  enum { value = 0 };
};

// R rows per tile (a multiple of BW / 4: lowbit_mm.h's dependence distance), inputs up to MAXK, tokens per
// call up to MAXT, groups of MING .. MAXG inputs (the group-size choices the lookups, the lane sums and the
// banks build: NG of them; MAXG sizes the tables: MAXT x MAXG / 4 x 16 entries), TP token lanes (tokens
// sharing each code beat in one iteration: replicated lookups, sums and float steps), BW bits per engine
// beat (one 128-bit beat from each of BW / 128 weight ports: port u carries bits 128u .. 128u+127 of every
// beat), RD parameter records decoded per iteration (1 or 2: the parameter ping-pong's banks have two
// ports), SL sub-scales of a record each decoder turns into s / m per iteration (SL x 2 fmul a decoder; a
// record of SB sub-scales takes ceil(SB / SL) iterations; SL = 16 = kLbMaxSb: a whole record at once), FU
// float steps per token lane and iteration (time-shared by the rows a beat finishes: a tensor needs
// lb_float_steps(d, BW) <= FU; FU = min(FU_, LANES)) and records of up to MAXSB groups (sizes the s / m
// banks; a tensor needs its SB <= MAXSB).
//
// Every on-chip array the block loop touches more than once an iteration is split into banks its
// accesses address statically (lowbit_banks.h), so each bank sees at most one write and the reads its
// memory has ports for: LANES = BW / MING row lanes (a code beat finishes at most LANES rows), the s / m
// banks (FU x SLB, SLB = min(SL, MAXSB) sub-banks; SMD words each: both ping-pong halves, SMS slots a row;
// float unit f's rows r % FU == f in bank f, like the accumulators' FU banks of AD rows), the activations
// (MAXG banks of XD words a token) and the token lanes (TD = ceil(MAXT / TP) tokens each).
template <int R_, int MAXK_, int MAXT_, int MAXG_ = kLbMaxGroup, int TP_ = 1, int BW_ = kLbBeatBits,
          int RD_ = 1, int SL_ = kLbMaxSb, int FU_ = kLbMaxFloatUnits, int MAXSB_ = kLbMaxSb, int MING_ = kLbMinGroup,
          class K_ = LbAnyCodec>
struct LowbitConfig {
  typedef K_ K;  // the codecs it decodes: K::n_codecs rows K::codec(i, f) (0: any, runtime shifts)
  enum { R = R_, MAXK = MAXK_, MAXT = MAXT_, MAXG = MAXG_, TP = TP_, BW = BW_, RD = RD_, SL = SL_,
         MAXSB = MAXSB_,                                   // groups a record covers at most
         MING = MING_,                                     // the narrowest group a tensor may have
         NG = LbLog2<MAXG_ / MING_>::value + 1,            // group-size choices MING .. MAXG
         PORTS = BW_ / kLbBeatBits,                        // weight ports read per iteration
         NIB = BW_ / 4,                                    // table lookups per beat and token lane
         LOG_NIB = LbLog2<BW_ / 4>::value,                 // levels of the lookups' adder tree
         LOG_MING4 = LbLog2<MING_ / 4>::value,             // the tree level of the narrowest group
         LANES = BW_ >= MING_ ? BW_ / MING_ : 1,           // rows a beat finishes at most
         FU = FU_ < LANES ? FU_ : LANES,                   // float steps per token lane
         SLB = SL_ < MAXSB_ ? SL_ : MAXSB_,                // s / m sub-banks: a decoder's sub-scales
         SMS = (MAXSB_ + SLB - 1) / SLB,                   // a row's words in each s / m sub-bank
         SMD = 2 * (R_ / FU) * SMS,                        // words of an s / m bank (two halves)
         TD = (MAXT_ + TP_ - 1) / TP_,                     // tokens a token lane holds
         XD = MAXK_ / MAXG_,                               // words of an activation bank per token
         AD = R_ / FU,                                     // rows of an accumulator bank
         NW = (kLbMaxRecordBits + BW_ - 1) / BW_ + 1,      // beats a record can touch
         PB_MAX = R_ * kLbMaxRecordBits / BW_ + NW,
         PBD = (PB_MAX + NW - 1) / NW,                     // words of a parameter bank (NW banks a half)
         CHMAX = (MAXSB_ + SL_ - 1) / SL_ };               // chunks a record has at most
  typedef ap_uint<BW_> beat_t;
  static_assert(BW_ == 128 || BW_ == 256 || BW_ == 512, "BW: 128 x 1, 2 or 4 ports");
  static_assert(TP_ >= 1 && TP_ <= MAXT_, "TP: 1 .. MAXT token lanes");
  static_assert(RD_ == 1 || RD_ == 2, "RD: 1 or 2 record decoders (the parameter banks' two ports)");
  static_assert(FU % RD_ == 0, "RD: a divisor of FU (decoder k writes the s / m banks b % RD == k)");
  static_assert(SL_ == 1 || SL_ == 2 || SL_ == 4 || SL_ == 8 || SL_ == 16, "SL: 1, 2, 4, 8 or 16 sub-scales");
  static_assert(FU_ >= 1 && FU_ <= kLbMaxFloatUnits && (FU_ & (FU_ - 1)) == 0, "FU: 1, 2, 4, .. 32 float steps");
  static_assert(MAXSB_ >= 1 && MAXSB_ <= kLbMaxSb, "MAXSB: 1 .. 16 groups a record");
  static_assert(MING_ >= kLbMinGroup && MING_ <= MAXG_ && (MING_ & (MING_ - 1)) == 0, "MING: 16 .. MAXG");
  static_assert(R_ >= 32 && R_ % 32 == 0 && R_ * 4 >= BW_ && R_ % (BW_ / 16) == 0,
                "R: a multiple of 32 and of BW / 16, at least BW / 4");
  static_assert(MAXK_ % kLbMaxGroup == 0, "MAXK must hold whole 256-input super-blocks");
  static_assert(MAXG_ >= 16 && MAXG_ <= kLbMaxGroup && (MAXG_ & (MAXG_ - 1)) == 0, "MAXG: 16 .. 256");
};

// The group-size choice (0 .. NG - 1: group = MING << ga) of a tensor whose group is `group`.
template <class C>
inline int lb_group_choice(int group) {
  int ga = 0;
  for (int c = 1; c < C::NG; c++) {
#pragma HLS UNROLL
    if (group >= (C::MING << c)) ga++;
  }
  return ga;
}

// Bits of one parameter record and beats (of bw bits) of one (tile, super-block) parameter block.
inline int lb_record_bits(const LowbitTensor &d) {
  const int dbits = d.db + (d.mmode == 0 ? d.dmb : 0);
  return d.dper ? d.sb * (dbits + d.scb + d.mcb) : dbits + d.sb * (d.scb + d.mcb);
}
inline int lb_param_beats(const LowbitTensor &d, int rows, int bw) {
  return (rows * lb_record_bits(d) + bw - 1) / bw;
}
inline int lb_lanes(int group, int bw) { return group >= bw ? 1 : bw / group; }
// Iterations one decoder takes for a record: its sb sub-scales, sl per iteration.
inline int lb_record_chunks(const LowbitTensor &d, int sl) { return (d.sb + sl - 1) / sl; }
// Iterations decoding a block's rows records with rd decoders of sl sub-scales (decoder k takes record
// r0 + k, chunk by chunk, then r0 += rd).
inline int lb_decode_iters(const LowbitTensor &d, int rows, int rd, int sl) {
  return (rows + rd - 1) / rd * lb_record_chunks(d, sl);
}
inline int lb_plane_beats(int group, int bw) { return group > bw ? group / bw : 1; }
// Float steps per iteration and token lane a tensor needs (lowbit_steps.h lb_drain): a row set's rl rows
// step once per bits x plane beats iterations, ceil(rl / (bits x wpp)). The engine (FU of them) steps
// ceil(rl / FU) chunks of its rows, one per iteration and token block, before the row set's next step.
inline int lb_float_steps(const LowbitTensor &d, int bw) {
  const int per_set = d.bits * lb_plane_beats(d.group, bw);
  return (lb_lanes(d.group, bw) + per_set - 1) / per_set;
}

// Beats of a whole tensor's stream (what packing_lowbit.pack_lowbit writes for rows, beat_bits = bw).
inline long lb_stream_beats(const LowbitTensor &d, int rows, int bw) {
  const long tiles = (d.n_out + rows - 1) / rows;
  const long nsbr = d.k / d.group / d.sb;
  const long code = (long)d.sb * rows / lb_lanes(d.group, bw) * d.bits * lb_plane_beats(d.group, bw);
  return tiles * nsbr * (lb_param_beats(d, rows, bw) + code);
}

// Iterations from a decoder's last write into one half of the s / m banks to that half's first read (the
// decode's f16 conversion and fmul, and the read's sub-bank mux): a block that reads a next parameter
// block runs at least kLbScaleLag iterations past its decode (lowbit_mm.h's DEPENDENCE claim on s / m).
const int kLbScaleLag = 8;

// Iterations of one block in the block loop (lowbit_mm.h lb_blocks): P_{i+1}'s beats, then the block's
// code beats x token blocks (of TP tokens), at least the lb_decode_iters iterations decoding P_{i+1}'s
// records and kLbScaleLag more (compiler/cost/lowbit.py block_iters).
inline int lb_block_iters(const LowbitTensor &d, int rows, int n_tb, bool more, int bw, int rd, int sl) {
  const int codes = d.sb * rows / lb_lanes(d.group, bw) * d.bits * lb_plane_beats(d.group, bw) * n_tb;
  const int dec = lb_decode_iters(d, rows, rd, sl) + kLbScaleLag;
  return more ? lb_param_beats(d, rows, bw) + (codes > dec ? codes : dec) : codes;
}

}  // namespace edgellm
