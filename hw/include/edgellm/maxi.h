// m_axi beats: the one element type of every m_axi argument of the top (issue 21 #6, #11).
//
// Every m_axi argument is a pointer to ap_uint<B> beats (B: the port width; the weight and K/V ports
// R-byte beats, tlmm_traits::R, the data and act ports the data port's width), and is never cast:
// UG1399 supports only casts between native types on m_axi pointers, and a cast blocks the port's
// widening. The kernels read and write whole beats and unpack their fields on chip:
//   Lane<T>                  a field type's bit pattern (f32, f16 bits, int8, uint8, int32, uint32)
//   lane_get / lane_set      field i of a beat as T
//   mget / mput              element i of T through a beat pointer: one beat read; a write is a
//                            read-modify-write of its beat (scalars: words, scales, argmax; never in a
//                            loop over a row)
//   chunk_get / chunk_put    chunk c (E = B / bits(T) elements) of a row whose first element starts a
//                            beat: one whole beat (the streaming loops: one beat per iteration)
//   row_load                 a row anywhere (any start): the beats it touches, one per iteration,
//                            unpacked on chip with the start's shift
//   RowStore                 a row written anywhere: one whole beat per iteration, the first and last
//                            beats merged with what the buffer held when the row covers them partly
//                            (read before the loop)
// Every helper also takes a plain pointer `T *` (testbenches' arrays, on-chip rows), where it is the
// plain access, so a kernel templated on its pointer types runs on either and C simulation compares
// the two. Addresses are a base plus the loop index (beat off / E + c), and the streaming loops read
// whole beats unconditionally (their trip counts cover whole beats; lanes past a row's end are
// ignored on chip): what burst inference needs (UG1399 "Optimizing Burst Transfers").
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/numerics.h"

namespace edgellm {

// A field type and its bit pattern.
template <class T>
struct Lane;
template <>
struct Lane<f32> {
  enum { BITS = 32 };
  static ap_uint<32> to(f32 v) { return bits_from_float(v); }
  static f32 from(ap_uint<32> b) { return float_from_bits((uint32_t)b); }
};
template <>
struct Lane<uint32_t> {
  enum { BITS = 32 };
  static ap_uint<32> to(uint32_t v) { return v; }
  static uint32_t from(ap_uint<32> b) { return (uint32_t)b; }
};
template <>
struct Lane<int32_t> {
  enum { BITS = 32 };
  static ap_uint<32> to(int32_t v) { return (uint32_t)v; }
  static int32_t from(ap_uint<32> b) { return (int32_t)(uint32_t)b; }
};
template <>
struct Lane<uint16_t> {  // f16 bit patterns (numerics_scalar.h f16)
  enum { BITS = 16 };
  static ap_uint<16> to(uint16_t v) { return v; }
  static uint16_t from(ap_uint<16> b) { return (uint16_t)b; }
};
template <>
struct Lane<uint8_t> {
  enum { BITS = 8 };
  static ap_uint<8> to(uint8_t v) { return v; }
  static uint8_t from(ap_uint<8> b) { return (uint8_t)b; }
};
template <>
struct Lane<int8_t> {
  enum { BITS = 8 };
  static ap_uint<8> to(int8_t v) { return (uint8_t)v; }
  static int8_t from(ap_uint<8> b) { return (int8_t)(uint8_t)b; }
};

// Fields of T per beat of B bits.
template <class T, int B>
struct Beat {
  static_assert(B % Lane<T>::BITS == 0, "a beat holds whole fields");
  enum { E = B / Lane<T>::BITS };
};

// Fields of T per step of a loop over a row through a pointer to P: one beat's (B / bits(T)) for beat
// pointers, a 128-bit beat's for plain T arrays (the loops keep their shape; the accesses are plain).
template <class T, class P>
struct PortBeat {
  enum { E = 128 / Lane<T>::BITS };
};
template <class T, int B>
struct PortBeat<T, ap_uint<B> > {
  enum { E = Beat<T, B>::E };
};

template <class T, int B>
inline T lane_get(const ap_uint<B> &b, int i) {
#pragma HLS INLINE
  enum { W = Lane<T>::BITS };
  return Lane<T>::from(b.range(W * i + W - 1, W * i));
}

template <class T, int B>
inline void lane_set(ap_uint<B> &b, int i, T v) {
#pragma HLS INLINE
  enum { W = Lane<T>::BITS };
  b.range(W * i + W - 1, W * i) = Lane<T>::to(v);
}

// Element i: one beat read (beat pointers) or the plain read.
template <class T, int B>
inline T mget(const ap_uint<B> *m, long i) {
#pragma HLS INLINE
  enum { E = Beat<T, B>::E };
  return lane_get<T>(m[i / E], (int)(i % E));
}
template <class T>
inline T mget(const T *p, long i) {
#pragma HLS INLINE
  return p[i];
}

// Element i <- v: its beat read, the field set, the beat written back (beat pointers); the plain write.
template <class T, int B>
inline void mput(ap_uint<B> *m, long i, T v) {
#pragma HLS INLINE
  enum { E = Beat<T, B>::E };
  ap_uint<B> b = m[i / E];
  lane_set<T>(b, (int)(i % E), v);
  m[i / E] = b;
}
template <class T>
inline void mput(T *p, long i, T v) {
#pragma HLS INLINE
  p[i] = v;
}

// Chunk c of the row at element offset off (off % E == 0): v[0 .. E) <- one beat.
template <int E, class T, int B>
inline void chunk_get(const ap_uint<B> *m, long off, long c, T v[E]) {
#pragma HLS INLINE
  static_assert(E == Beat<T, B>::E, "a chunk is one beat");
  const ap_uint<B> b = m[off / E + c];
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    v[i] = lane_get<T>(b, i);
  }
}
template <int E, class T>
inline void chunk_get(const T *p, long off, long c, T v[E]) {
#pragma HLS INLINE
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    v[i] = p[off + c * E + i];
  }
}

// Chunk c of a row of n elements at element offset off (off % E == 0), fields past n as 0: the whole beat
// (beat pointers: a row's last beat lies inside the 16-byte-aligned region padding) or the row's elements
// of a plain array.
template <int E, class T, int B>
inline void chunk_get_upto(const ap_uint<B> *m, long off, long c, long n, T v[E]) {
#pragma HLS INLINE
  static_assert(E == Beat<T, B>::E, "a chunk is one beat");
  const ap_uint<B> b = m[off / E + c];
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    v[i] = c * E + i < n ? lane_get<T>(b, i) : (T)0;
  }
}
template <int E, class T>
inline void chunk_get_upto(const T *p, long off, long c, long n, T v[E]) {
#pragma HLS INLINE
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    v[i] = c * E + i < n ? p[off + c * E + i] : (T)0;
  }
}

// Chunk c of the row at element offset off (off % E == 0) <- v[0 .. E): one whole beat.
template <int E, class T, int B>
inline void chunk_put(ap_uint<B> *m, long off, long c, const T v[E]) {
#pragma HLS INLINE
  static_assert(E == Beat<T, B>::E, "a chunk is one beat");
  ap_uint<B> b = 0;
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    lane_set<T>(b, i, v[i]);
  }
  m[off / E + c] = b;
}
template <int E, class T>
inline void chunk_put(T *p, long off, long c, const T v[E]) {
#pragma HLS INLINE
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    p[off + c * E + i] = v[i];
  }
}

// Chunk c of a row of n elements at element offset off (off % E == 0) <- v[0 .. E): one whole beat (beat
// pointers: the top's rows are whole beats, layer_traits asserts it, so no field past n is covered) or
// the row's elements of a plain array (nothing written past n).
template <int E, class T, int B>
inline void chunk_put_upto(ap_uint<B> *m, long off, long c, long, const T v[E]) {
#pragma HLS INLINE
  chunk_put<E>(m, off, c, v);
}
template <int E, class T>
inline void chunk_put_upto(T *p, long off, long c, long n, const T v[E]) {
#pragma HLS INLINE
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    if (c * E + i < n) p[off + c * E + i] = v[i];
  }
}

// Beats a row of n elements of T at element offset off touches.
template <class T, int B>
inline int row_beats(long off, int n) {
#pragma HLS INLINE
  enum { E = Beat<T, B>::E };
  return n > 0 ? (int)((off + n - 1) / E - off / E + 1) : 0;
}

// dst[0 .. n) <- elements [off, off + n) (n <= N), any start: one beat per iteration over the beats the
// row touches, each field placed at its row index (the start's shift s = off % E; fields outside the
// row ignored). Cycles row_beats(off, n).
template <int N, class T, int B>
void row_load(const ap_uint<B> *m, long off, int n, T dst[N]) {
#pragma HLS INLINE
  enum { E = Beat<T, B>::E, kBeats = (N + E - 1) / E + 1 };
  const long b0 = off / E;
  const int s = (int)(off % E), nb = row_beats<T, B>(off, n);
row_load_beats:
  for (int j = 0; j < nb; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
#pragma HLS PIPELINE II = 1
    const ap_uint<B> b = m[b0 + j];
    for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
      const int k = j * E + i - s;
      if (k >= 0 && k < n) dst[k] = lane_get<T>(b, i);
    }
  }
}
template <int N, class T>
void row_load(const T *p, long off, int n, T dst[N]) {
#pragma HLS INLINE
row_load_plain:
  for (int k = 0; k < n; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N
#pragma HLS PIPELINE II = 1
    dst[k] = p[off + k];
  }
}

// Block q (elements qE .. qE + E - 1) of a row starting at field s of its first beat, from beats q (a) and
// q + 1 (b): field i is a's field i + s, or b's field i + s - E; into bank (qE + i) % F: bank c takes field
// c % E when q's blocks land on its E-bank slice. Blocks past the row's buffer are dropped.
template <int N, int F, int E, class T, int B>
inline void row_block_put(const ap_uint<B> &a, const ap_uint<B> &b, int s, int q, T dst[F][(N + F - 1) / F]) {
#pragma HLS INLINE
  if (q >= (N + E - 1) / E) return;
  T v[E];
#pragma HLS ARRAY_PARTITION variable = v complete
  for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
    v[i] = i + s < E ? lane_get<T>(a, i + s) : lane_get<T>(b, i + s - E);
  }
  const int slice = (q * E) % F / E, word = q * E / F;
  for (int c = 0; c < F; c++) {
#pragma HLS UNROLL
    if (c / E == slice) dst[c][word] = v[c % E];
  }
}

// row_load into a row held in F explicit banks (element e in bank e % F, word e / F; F a multiple of E):
// beat j's fields are rotated by the start's shift s so each iteration writes one aligned block of E
// fields, block j - 1 (beat j - 1's fields s.. and beat j's ..s - 1), each field to a bank fixed by its
// place in the block (no runtime bank index: one write per bank), the last block after the loop. Elements
// [0, n) are the row's; the rest of the blocks written (up to the last beat's end) hold fields past the
// row, which the callers mask. Cycles row_beats(off, n) (+ the last block's write).
template <int N, int F, class T, int B>
void row_load_banked(const ap_uint<B> *m, long off, int n, T dst[F][(N + F - 1) / F]) {
#pragma HLS INLINE
  enum { E = Beat<T, B>::E, kBeats = (N + E - 1) / E + 1, kBlocks = (N + E - 1) / E };
  static_assert(F % E == 0, "row_load_banked: F a multiple of the beat's fields");
  const long b0 = off / E;
  const int s = (int)(off % E), nb = row_beats<T, B>(off, n);
  ap_uint<B> prev = 0;
row_load_banked_beats:
  for (int j = 0; j < nb; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kBeats
#pragma HLS PIPELINE II = 1
    const ap_uint<B> cur = m[b0 + j];
    if (j > 0) row_block_put<N, F, E, T, B>(prev, cur, s, j - 1, dst);
    prev = cur;
  }
  if (nb > 0) row_block_put<N, F, E, T, B>(prev, ap_uint<B>(0), s, nb - 1, dst);
}
template <int N, int F, class T>
void row_load_banked(const T *p, long off, int n, T dst[F][(N + F - 1) / F]) {
#pragma HLS INLINE
row_load_banked_plain:
  for (int k = 0; k < n; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N
#pragma HLS PIPELINE II = 1
    dst[k % F][k / F] = p[off + k];
  }
}

// A row of n elements of T written at element offset off, any start, one whole beat per step through
// P (ap_uint<DB> beats, or a plain T array: element writes), E = DB / bits(T) fields a step: step j
// (j < beats()) takes the row's fields it covers and, for the first and last beat when the row covers
// them partly, the fields the buffer held there (read once, by open(), before the writing loop).
// Usage: RowStore<T, P, DB> st; st.open(m, off, n); for j < st.beats(): { st.v[i] for i < E = row
// element st.index(j, i) (fields outside the row are ignored); st.put(m, j); }
template <class T, class P, int DB>
struct RowStore;

template <class T, int DB>
struct RowStore<T, ap_uint<DB>, DB> {
  enum { E = Beat<T, DB>::E };
  long b0;
  int s, n, nb;
  ap_uint<DB> first, last;  // what the buffer held in the partly covered edge beats
  T v[E];                   // the fields of the beat being written
  void open(ap_uint<DB> *m, long off, int n_) {
#pragma HLS INLINE
    b0 = off / E, s = (int)(off % E), n = n_, nb = row_beats<T, DB>(off, n_);
    first = 0, last = 0;
    if (nb > 0 && s != 0) first = m[b0];
    if (nb > 0 && (s + n) % E != 0) last = nb == 1 && s != 0 ? first : m[b0 + nb - 1];
  }
  int beats() const { return nb; }
  int index(int j, int i) const { return j * E + i - s; }  // row index of field i of step j
  void put(ap_uint<DB> *m, int j) {
#pragma HLS INLINE
    put_fields(m, j, v);
  }
  // step j with the fields held elsewhere (a caller that keeps several rows' fields in one partitioned
  // array: lm_head_score.h LmLogits)
  void put_fields(ap_uint<DB> *m, int j, const T f[E]) {
#pragma HLS INLINE
    const ap_uint<DB> keep = j == 0 && s != 0 ? first : last;  // fields outside the row: edge beats only
    ap_uint<DB> b = 0;
    for (int i = 0; i < E; i++) {
#pragma HLS UNROLL
      const int k = j * E + i - s;
      lane_set<T>(b, i, k >= 0 && k < n ? f[i] : lane_get<T>(keep, i));
    }
    m[b0 + j] = b;
  }
};

template <class T, int DB>
struct RowStore<T, T, DB> {
  enum { E = DB / Lane<T>::BITS };
  long off;
  int n;
  T v[E];
  void open(T *, long off_, int n_) { off = off_, n = n_; }
  int beats() const { return (n + E - 1) / E; }
  int index(int j, int i) const { return j * E + i; }
  void put(T *p, int j) {
    for (int i = 0; i < E; i++) {
      if (j * E + i < n) p[off + j * E + i] = v[i];
    }
  }
};

}  // namespace edgellm
