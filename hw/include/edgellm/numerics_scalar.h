// edgellm numerics contract, C++ side: the scalar functions -- rint, bit casts, the f16 conversions,
// kv_elem, exp_f, the quantization and activation scalars (docs/numerics.md; numpy twin:
// models/numerics.py). numerics.h includes this header and numerics_lanes.h (the lane reductions) and
// states the build rules (-ffp-contract=off, no -ffast-math) under which C simulation is bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

namespace edgellm {

typedef float f32;

const f32 kRintMagic = (f32)12582912.0;  // 1.5 * 2^23
const f32 kLog2e = (f32)1.44269504088896341;
const f32 kLn2Hi = (f32)0.693359375;  // Cody-Waite: k * kLn2Hi exact for |k| < 2^11
const f32 kLn2Lo = (f32)-2.12194440e-4;
const f32 kExpLo = (f32)-87.0;
const f32 kExpHi = (f32)88.0;
const f32 kQmax = (f32)127.0;
const f32 kAbsmaxFloor = (f32)1e-5;

// Round half to even for |x| < 2^22: the addition rounds in the FPU's default mode.
inline f32 rint_f(f32 x) {
  f32 t = x + kRintMagic;
  return t - kRintMagic;
}

inline f32 float_from_bits(uint32_t b) {
  union { uint32_t u; f32 f; } v;
  v.u = b;
  return v.f;
}

inline f32 pos_inf() { return float_from_bits(0x7f800000u); }

inline uint32_t bits_from_float(f32 x) {
  union { uint32_t u; f32 f; } v;
  v.f = x;
  return v.u;
}

// IEEE binary16 storage (the f16 KV cache): a bit pattern, never computed with. Conversions are
// integer bit manipulation only (no _Float16, no hls::half), so C simulation and synthesis agree.
typedef uint16_t f16;

// f32 -> f16, round to nearest even; |x| >= 65520 -> +/-inf; results below 2^-14 are binary16
// subnormals (ties to even down to 2^-25, which rounds to +/-0); NaN keeps the top 10 payload bits
// (forced nonzero). Bit for bit numpy's astype(np.float16) (npy_floatbits_to_halfbits).
inline f16 f32_to_f16(f32 x) {
  const uint32_t u = bits_from_float(x);
  const uint32_t sgn = (u >> 16) & 0x8000u;
  const uint32_t e = u & 0x7f800000u;  // exponent field in place
  const uint32_t m = u & 0x007fffffu;
  if (e >= 0x47800000u) {  // |x| >= 2^16, inf or NaN
    if (e == 0x7f800000u && m != 0) {
      uint32_t h = 0x7c00u + (m >> 13);
      if (h == 0x7c00u) h = 0x7c01u;  // keep it a NaN
      return (f16)(sgn | h);
    }
    return (f16)(sgn | 0x7c00u);
  }
  if (e <= 0x38000000u) {  // |x| < 2^-14 (exponent <= -15): binary16 subnormal or zero
    if (e < 0x33000000u) return (f16)sgn;  // |x| < 2^-25: rounds to zero
    const uint32_t sh = 113u - (e >> 23);  // 1 .. 11
    uint32_t sig = (0x00800000u | m) >> sh;
    // round half to even: add half an ulp unless an exact tie with an even result; the bits the
    // shift dropped (within the low 11 of m) break ties upward
    if ((sig & 0x3fffu) != 0x1000u || (m & 0x7ffu) != 0) sig += 0x1000u;
    return (f16)(sgn | (sig >> 13));  // a carry into the exponent gives the right normal
  }
  uint32_t sig = m;
  if ((sig & 0x3fffu) != 0x1000u) sig += 0x1000u;  // round half to even
  // exponent rebias 127 -> 15; a rounding carry increments the exponent (up to inf: correct)
  return (f16)(sgn | (((e - 0x38000000u) >> 13) + (sig >> 13)));
}

// f16 -> f32, exact (every binary16 value, subnormals and NaN payloads included, is a binary32).
inline f32 f16_to_f32(f16 h) {
  const uint32_t sgn = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = h & 0x7c00u;
  uint32_t m = h & 0x03ffu;
  if (e == 0x7c00u) return float_from_bits(sgn | 0x7f800000u | (m << 13));  // inf, NaN
  if (e != 0) return float_from_bits(sgn | (((e >> 10) + 112u) << 23) | (m << 13));
  if (m == 0) return float_from_bits(sgn);  // +/-0
  // subnormal m * 2^-24: normalize (m < 2^10, so at most 10 shifts)
  uint32_t ex = 113u;
f16_norm:
  for (int i = 0; i < 10; i++) {
    if ((m & 0x0400u) == 0) {
      m <<= 1;
      ex--;
    }
  }
  return float_from_bits(sgn | (ex << 23) | ((m & 0x03ffu) << 13));
}

// KV cache element traits: the stored type T, how a value is written (narrowed) and read (widened).
template <class T>
struct kv_elem;
template <>
struct kv_elem<f32> {
  static f32 store(f32 x) { return x; }
  static f32 load(f32 x) { return x; }
};
template <>
struct kv_elem<f16> {
  static f16 store(f32 x) { return f32_to_f16(x); }
  static f32 load(f16 b) { return f16_to_f32(b); }
};

// The contract's exp: clamp, k = rint(x*log2e), r = (x - k*ln2hi) - k*ln2lo,
// p = Horner(1/720, 1/120, 1/24, 1/6, 1/2, 1, 1), result = p * 2^k.
inline f32 exp_f(f32 x) {
  if (x < kExpLo) return 0.0f;
  if (x > kExpHi) return pos_inf();
  f32 k = rint_f(x * kLog2e);
  f32 r = x - k * kLn2Hi;
  r = r - k * kLn2Lo;
  f32 p = (f32)(1.0 / 720);
  p = p * r + (f32)(1.0 / 120);
  p = p * r + (f32)(1.0 / 24);
  p = p * r + (f32)(1.0 / 6);
  p = p * r + (f32)0.5;
  p = p * r + (f32)1.0;
  p = p * r + (f32)1.0;
  int ki = (int)k;  // in [-126, 127] after the clamp
  f32 scale = float_from_bits((uint32_t)(ki + 127) << 23);
  return p * scale;
}

// m = max(m, |x|) (NaN never wins a comparison; |-0| compares equal to 0 and does not win).
inline f32 abs_max_step(f32 m, f32 x) {
  const f32 a = x < 0.0f ? -x : x;
  return a > m ? a : m;
}

// RMSNorm's scalar: r = 1 / sqrt(ss / n + eps) (two divisions: in the element-wise engine they share
// its dividers, elementwise.h EwBudget).
inline f32 rms_inv(f32 ss, int n, f32 eps) {
#pragma HLS INLINE
  const f32 ms = ss / (f32)n;
  return 1.0f / std::sqrt(ms + eps);
}

// Per-token quantization scale from the row's absmax: qs = 127 / max(absmax, 1e-5).
inline f32 quant_scale(f32 amax) { return kQmax / (amax > kAbsmaxFloor ? amax : kAbsmaxFloor); }

// q = clamp(rint(x * qs), -128, 127) as int8.
inline int8_t quant_round(f32 x, f32 qs) {
  f32 v = rint_f(x * qs);
  v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
  return (int8_t)v;
}

// Dequantize an exact integer accumulator: y = float(acc) / (qs * wscale).
inline f32 dequantize(int32_t acc, f32 qs, f32 wscale) { return (f32)acc / (qs * wscale); }

inline f32 relu2(f32 x) {
  f32 r = x > 0.0f ? x : 0.0f;
  return r * r;
}

inline f32 silu(f32 x) { return x / (1.0f + exp_f(-x)); }

}  // namespace edgellm
