// The low-bit engine's (lowbit_mm.h) parameter records: a parameter block on chip (pbuf: NW banks of its
// beats, beat i in bank i % NW) and one record's decode into SL of its sub-scales s and mins m (s = d * sc;
// m = dm * mc or -(s * mc), packing's f32 order; compiler/packing_lowbit.py ParamCodec).
//
// A record r of record_bits rb starts at bit r * rb of its block: every bank is read once for the NW beats
// from beat r * rb / BW on, rotated into order, and shifted by (r * rb) % BW. Its fields are then taken at
// positions fixed by the codec: an engine whose configuration lists the model's codecs (K::n_codecs > 0,
// K::codec(i, f): ParamCodec.as_words rows; compile generates them) takes every field of each codec and
// chunk at a static bit position and chooses among those candidates (wiring and small muxes), and its
// record shift moves by multiples of the largest power of two dividing every codec's rb. An engine that
// lists none (K::n_codecs == 0, the testbenches' default) decodes any codec with runtime shifts -- a
// C-simulation convenience, far too large to build.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/lowbit_format.h"
#include "edgellm/numerics.h"

namespace edgellm {

typedef ap_uint<512> lb_window_t;  // one parameter record (<= 320 bits) at bit 0

inline f32 lb_float(uint32_t raw, int width) {
  return width == 16 ? f16_to_f32((f16)(raw & 0xffffu)) : float_from_bits(raw);
}

inline int lb_field(const lb_window_t &win, int pos, int width, int off) {
  const uint32_t raw = (uint32_t)(win >> pos).range(31, 0);
  return (int)(raw & ((1u << width) - 1u)) - off;
}

// One sub-scale's raw fields: d's and dm's bits, the scale and min codes (offsets taken off).
struct LbRaw {
  uint32_t d, dm;
  int sc, mc;
};

// Bits of codec i's records (lb_record_bits of its fields).
template <class K>
inline constexpr int lb_codec_bits(int i) {
  const int dbits = K::codec(i, 1) + (K::codec(i, 4) == 0 ? K::codec(i, 5) : 0);
  const int sb = K::codec(i, 0), scb = K::codec(i, 2), mcb = K::codec(i, 6);
  return K::codec(i, 9) ? sb * (dbits + scb + mcb) : dbits + sb * (scb + mcb);
}

// The index of d's codec among K's (-1: not listed; program_check refuses it first), 0 when K lists none.
template <class K>
inline int lb_codec_index(const LowbitTensor &d) {
  const int w[10] = {d.sb, d.db, d.scb, d.sc_off, d.mmode, d.dmb, d.mcb, d.mc_off, d.mz, d.dper};
  int ci = K::n_codecs > 0 ? -1 : 0;
  for (int i = 0; i < K::n_codecs; i++) {
    bool eq = true;
    for (int f = 0; f < 10; f++) eq = eq && w[f] == K::codec(i, f);
    if (eq) ci = i;
  }
  return ci;
}

// The trailing zero bits every listed codec's record_bits shares (0 when none is listed): a record's
// shift moves in steps of 2^LbShiftZeros.
template <class K, int BW>
struct LbShiftZeros {
  static constexpr int value() {
    int z = 9;  // log2 of the widest beat
    for (int i = 0; i < K::n_codecs; i++) {
      int t = 0;  // trailing zeros of codec i's record bits, at most 9
      for (int b = 0; b < 9; b++) t += t == b && ((lb_codec_bits<K>(i) >> b) & 1) == 0 ? 1 : 0;
      z = t < z ? t : z;
    }
    return K::n_codecs > 0 ? z : 0;
  }
};

// Sub-scale j's raw fields from a record at bit 0 of win, the codec's fields read at runtime (K lists none).
inline LbRaw lb_raw_fields(const lb_window_t &win, const LowbitTensor &d, int j) {
  const int nd = d.dper ? d.sb : 1, jd = d.dper ? j : 0;
  const int pos_dm = nd * d.db, pos = pos_dm + (d.mmode == 0 ? nd * d.dmb : 0);
  LbRaw f;
  f.d = (uint32_t)(win >> (jd * d.db)).range(31, 0);
  f.dm = (uint32_t)(win >> (pos_dm + jd * d.dmb)).range(31, 0);
  f.sc = d.scb ? lb_field(win, pos + j * d.scb, d.scb, d.sc_off) : 1;
  f.mc = d.mcb ? lb_field(win, pos + d.sb * d.scb + j * d.mcb, d.mcb, d.mc_off) : d.mz;
  return f;
}

// The same for codec i and sub-scale j given at compile time (after unrolling: every position static).
template <class K>
inline LbRaw lb_raw_fields_of(const lb_window_t &win, int i, int j) {
#pragma HLS INLINE
  const int sb = K::codec(i, 0), db = K::codec(i, 1), scb = K::codec(i, 2), sc_off = K::codec(i, 3);
  const int mmode = K::codec(i, 4), dmb = K::codec(i, 5), mcb = K::codec(i, 6), mc_off = K::codec(i, 7);
  const int mz = K::codec(i, 8), dper = K::codec(i, 9);
  const int nd = dper ? sb : 1, jd = dper ? j : 0;
  const int pos_dm = nd * db, pos = pos_dm + (mmode == 0 ? nd * dmb : 0);
  LbRaw f;
  f.d = (uint32_t)win.range(jd * db + 31, jd * db);
  f.dm = (uint32_t)win.range(pos_dm + jd * dmb + 31, pos_dm + jd * dmb);
  f.sc = scb ? (int)(win.range(pos + j * scb + scb - 1, pos + j * scb)) - sc_off : 1;
  f.mc = mcb ? (int)(win.range(pos + sb * scb + j * mcb + mcb - 1, pos + sb * scb + j * mcb)) - mc_off : mz;
  return f;
}

// s and m of one sub-scale from its raw fields, f32 ops in packing's order.
inline void lb_scale_of(const LbRaw &f, const LowbitTensor &d, f32 &s, f32 &m) {
#pragma HLS INLINE
  const f32 dv = lb_float(f.d, d.db);
  const f32 dmv = d.mmode == 0 ? lb_float(f.dm, d.dmb) : 0.0f;
  s = dv * (f32)f.sc;
  m = d.mmode == 1 ? -(s * (f32)f.mc) : dmv * (f32)f.mc;
}

// Record r of the parameter block in pb (its banks) -> its sub-scales j = c * SL + u (u < SL; chunk c) into
// sv[u], mv[u]; ci: d's codec among K's (lb_codec_index).
template <class C>
inline void lb_record_at(const typename C::beat_t pb[C::NW][C::PBD], const LowbitTensor &d, int ci, int r, int c,
                         f32 sv[C::SL], f32 mv[C::SL]) {
#pragma HLS INLINE
  typedef typename C::K K;
  typedef ap_uint<C::NW * C::BW> wide_t;
  const int bit = r * lb_record_bits(d), w0 = bit / C::BW;
  typename C::beat_t bk[C::NW];  // bank b's beat of the NW from w0: beat w0 + ((b - w0) mod NW)
#pragma HLS ARRAY_PARTITION variable = bk complete dim = 1
  for (int b = 0; b < C::NW; b++) {
#pragma HLS UNROLL
    const int idx = w0 + ((b - w0 % C::NW) + C::NW) % C::NW;
    bk[b] = idx < C::PB_MAX ? pb[b][idx / C::NW] : typename C::beat_t(0);
  }
  wide_t win = 0;
  for (int u = 0; u < C::NW; u++) {
#pragma HLS UNROLL
    win |= wide_t(bk[(w0 + u) % C::NW]) << (u * C::BW);
  }
  const int z = LbShiftZeros<K, C::BW>::value();
  const lb_window_t rec = (lb_window_t)(win >> (((bit % C::BW) >> z) << z)).range(511, 0);
  for (int u = 0; u < C::SL; u++) {
#pragma HLS UNROLL
    LbRaw f = {0, 0, 0, 0};
    if (K::n_codecs == 0) {
      f = lb_raw_fields(rec, d, c * C::SL + u);
    } else {
      for (int i = 0; i < K::n_codecs; i++) {
#pragma HLS UNROLL
        for (int ch = 0; ch < C::CHMAX; ch++) {
#pragma HLS UNROLL
          const int j = ch * C::SL + u;
          if (ci == i && c == ch && j < K::codec(i, 0)) f = lb_raw_fields_of<K>(rec, i, j);
        }
      }
    }
    lb_scale_of(f, d, sv[u], mv[u]);
  }
}

}  // namespace edgellm
