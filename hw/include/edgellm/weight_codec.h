// Dense ternary weight codec (docs/weight_format.md; Python twin: compiler/packing.py).
//
// DDR format: 5 trits per byte, base 3, least significant digit first,
//   byte = c0 + 3*c1 + 9*c2 + 27*c3 + 81*c4,  c_i = t[5b+i] + 1 in {0,1,2}  (1.6 bits/weight).
// A tile of R rows is stored byte-column major: one byte column of a full tile = one R-byte beat
// (byte r of the beat = row r). The kernel groups G consecutive byte columns into a "chunk" of 5G
// trits = 5 groups of G weights; group q of a chunk uses trits q*G .. q*G+G-1 and its table index is
//   idx = sum_j c_j * 3^(G-1-j)      (G = 3: idx = 9*c0 + 3*c1 + c2, zero group = 13).
// Negated weights map to idx' = 3^G - 1 - idx, so a table only stores entries 0 .. (3^G-1)/2.
#pragma once

#include <ap_int.h>

#include <cstdint>

namespace edgellm {

const int kTritsPerByte = 5;
const int kZeroTritByte = 121;  // codes 1,1,1,1,1: five zero weights

// Compile-time helpers as template structs (no recursive functions, even constexpr ones).
template <int G>
struct Pow3 {
  static constexpr int value = 3 * Pow3<G - 1>::value;
};
template <>
struct Pow3<0> {
  static constexpr int value = 1;
};

// Smallest b with 2^b >= V (V >= 1).
template <long long V>
struct CLog2 {
  static constexpr int value = 1 + CLog2<(V + 1) / 2>::value;
};
template <>
struct CLog2<1> {
  static constexpr int value = 0;
};
template <>
struct CLog2<0> {
  static constexpr int value = 0;
};

// Bits of a two's complement integer that holds every value in [-V, V].
template <long long V>
struct SignedBits {
  static constexpr int value = CLog2<V + 1>::value + 1;
};

// floor(v / 3) for 0 <= v <= 255 as a constant multiply and shift ((v * 171) >> 9 is exact there).
inline ap_uint<7> div3_u8(ap_uint<8> v) {
  ap_uint<16> p = v * ap_uint<8>(171);
  return ap_uint<7>(p >> 9);
}

// decode_byte on a plain integer v <= 255: the five 2-bit codes packed in bits [9:0]. The same
// logic as the ap_uint form (four constant divisions by 3, c4 clipped to 2), written on native
// integers so C simulation runs it as a handful of machine instructions.
inline unsigned decode_byte_u(unsigned v) {
#pragma HLS INLINE
  unsigned codes = 0;
decode_digits:
  for (int i = 0; i < kTritsPerByte - 1; i++) {
#pragma HLS UNROLL
    const unsigned q = ((v & 0xFFu) * 171u) >> 9;  // floor(v / 3), exact for v <= 255
    codes |= (v - 3u * q) << (2 * i);
    v = q;
  }
  codes |= (v > 2u ? 2u : v) << 8;
  return codes;
}

// One byte -> its five codes (0, 1, 2), code i in bits [2i+1 : 2i]. Pure logic (four constant
// divisions by 3 on <= 8 bits), synthesizes to LUTs; bytes 243..255 never occur in a valid image
// and decode to digits of (byte mod 243) with c4 clipped to 2.
inline ap_uint<10> decode_byte(ap_uint<8> b) {
#pragma HLS INLINE
  return ap_uint<10>(decode_byte_u((unsigned)b));
}

// The N bytes of an 8N-bit word (byte b = bits [8b+7 : 8b]) as plain integers. Pure wiring; the
// word is cut into 64-bit pieces first, so C simulation does ceil(N/8) wide slices, not N.
template <int N>
void word_bytes(const ap_uint<8 * N> &w, uint8_t out[N]) {
#pragma HLS INLINE
word_pieces:
  for (int p = 0; p < (N + 7) / 8; p++) {
#pragma HLS UNROLL
    const int hi = 64 * p + 63 < 8 * N - 1 ? 64 * p + 63 : 8 * N - 1;
    const uint64_t piece = w.range(hi, 64 * p).to_uint64();
    for (int b = 0; b < 8; b++) {
#pragma HLS UNROLL
      if (8 * p + b < N) out[8 * p + b] = (uint8_t)(piece >> (8 * b));
    }
  }
}

// The inverse: N bytes -> one 8N-bit word (byte b in bits [8b+7 : 8b]).
template <int N>
ap_uint<8 * N> bytes_word(const uint8_t in[N]) {
#pragma HLS INLINE
  ap_uint<8 * N> w = 0;
word_pack:
  for (int p = 0; p < (N + 7) / 8; p++) {
#pragma HLS UNROLL
    const int hi = 64 * p + 63 < 8 * N - 1 ? 64 * p + 63 : 8 * N - 1;
    uint64_t piece = 0;
    for (int b = 0; b < 8; b++) {
#pragma HLS UNROLL
      if (8 * p + b < N) piece |= (uint64_t)in[8 * p + b] << (8 * b);
    }
    w.range(hi, 64 * p) = piece;
  }
  return w;
}

// Signed value of one trit of a byte (for testbenches and reference paths).
inline int trit_of(ap_uint<8> b, int i) {
  ap_uint<10> c = decode_byte(b);
  return int(c.range(2 * i + 1, 2 * i)) - 1;
}

// Table index width for group size G.
template <int G>
struct GroupIndex {
  static constexpr int kEntries = Pow3<G>::value;   // 3^G signed sums
  static constexpr int kHalf = (kEntries - 1) / 2;  // index of the all-zero group; entries 0..kHalf stored
  static constexpr int kBits = CLog2<kEntries>::value;
  typedef ap_uint<kBits> type;
};

// One chunk of one row (G bytes = 5G trits, plain integers <= 255) -> its 5 group indices:
// idx[q] = sum_j c(q*G + j) * 3^(G-1-j), where code n is trit n % 5 of byte n / 5.
template <int G>
void chunk_indices_u(const uint8_t bytes[G], typename GroupIndex<G>::type idx[kTritsPerByte]) {
#pragma HLS INLINE
  unsigned codes[G];
#pragma HLS ARRAY_PARTITION variable = codes complete
chunk_decode:
  for (int j = 0; j < G; j++) {
#pragma HLS UNROLL
    codes[j] = decode_byte_u(bytes[j]);
  }
chunk_groups:
  for (int q = 0; q < kTritsPerByte; q++) {
#pragma HLS UNROLL
    unsigned v = 0;
    for (int j = 0; j < G; j++) {
#pragma HLS UNROLL
      const int n = q * G + j;
      v = v * 3u + ((codes[n / kTritsPerByte] >> (2 * (n % kTritsPerByte))) & 3u);
    }
    idx[q] = v;
  }
}

// One chunk of one row (G bytes = 5G trits) -> its 5 group indices.
template <int G>
void chunk_indices(const ap_uint<8> bytes[G], typename GroupIndex<G>::type idx[kTritsPerByte]) {
#pragma HLS INLINE
  uint8_t b[G];
#pragma HLS ARRAY_PARTITION variable = b complete
chunk_bytes:
  for (int j = 0; j < G; j++) {
#pragma HLS UNROLL
    b[j] = (uint8_t)bytes[j];
  }
  chunk_indices_u<G>(b, idx);
}

}  // namespace edgellm
