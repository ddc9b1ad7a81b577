// ctypes entry points for the numerics contract primitives (tests/test_hw_numerics.py).
#include "edgellm/ew_passes.h"
#include "edgellm/numerics.h"

using namespace edgellm;

extern "C" {

void tb_exp(const f32 *x, f32 *y, int n) {
  for (int i = 0; i < n; i++) y[i] = exp_f(x[i]);
}

void tb_silu(const f32 *x, f32 *y, int n) {
  for (int i = 0; i < n; i++) y[i] = silu(x[i]);
}

void tb_reduce_sum16(const f32 *x, int rows, int n, f32 *y) {
  for (int r = 0; r < rows; r++) y[r] = reduce_sum<16>(x + r * n, n);
}

// Standalone reduce_sumsq<lanes, vec> of each row (lanes 16 or 64, vec 1, 2, 4 or 8); -1 otherwise.
int tb_reduce_sumsq_lv(int lanes, int vec, const f32 *x, int rows, int n, f32 *y) {
#define NUM_SUMSQ_CASE(L, V) \
  if (lanes == L && vec == V) { \
    for (int r = 0; r < rows; r++) y[r] = reduce_sumsq<L, V>(x + (long)r * n, n); \
    return 0; \
  }
  NUM_SUMSQ_CASE(16, 1) NUM_SUMSQ_CASE(16, 2) NUM_SUMSQ_CASE(16, 4) NUM_SUMSQ_CASE(16, 8)
  NUM_SUMSQ_CASE(64, 1) NUM_SUMSQ_CASE(64, 2) NUM_SUMSQ_CASE(64, 4) NUM_SUMSQ_CASE(64, 8)
#undef NUM_SUMSQ_CASE
  return -1;
}

// vec: elements per cycle of the element passes (1, 4, 16 or 64); returns 0, or -1 for another vec.
int tb_rmsnorm16(int vec, const f32 *x, const f32 *g, f32 eps, int rows, int n, f32 *y) {
  for (int r = 0; r < rows; r++) {
    switch (vec) {
      case 1: rmsnorm<16>(x + r * n, g, eps, n, y + r * n); break;
      case 4: rmsnorm<16, 4>(x + r * n, g, eps, n, y + r * n); break;
      case 16: rmsnorm<16, 16>(x + r * n, g, eps, n, y + r * n); break;
      case 64: rmsnorm<16, 64>(x + r * n, g, eps, n, y + r * n); break;
      default: return -1;
    }
  }
  return 0;
}

int tb_quantize(int vec, const f32 *x, int rows, int n, int8_t *q, f32 *qs) {
  for (int r = 0; r < rows; r++) {
    switch (vec) {
      case 1: qs[r] = quantize(x + r * n, n, q + r * n); break;
      case 4: qs[r] = quantize<4>(x + r * n, n, q + r * n); break;
      case 16: qs[r] = quantize<16>(x + r * n, n, q + r * n); break;
      case 64: qs[r] = quantize<64>(x + r * n, n, q + r * n); break;
      default: return -1;
    }
  }
  return 0;
}

void tb_f32_to_f16(const uint32_t *x, uint16_t *y, long n) {
  for (long i = 0; i < n; i++) y[i] = f32_to_f16(float_from_bits(x[i]));
}

void tb_f16_to_f32(const uint16_t *x, uint32_t *y, long n) {
  for (long i = 0; i < n; i++) y[i] = bits_from_float(f16_to_f32(x[i]));
}

// Through the KV element traits: store then load (the cache round trip), for f32 and f16.
void tb_kv_roundtrip(const f32 *x, f32 *y32, f32 *y16, long n) {
  for (long i = 0; i < n; i++) {
    y32[i] = kv_elem<f32>::load(kv_elem<f32>::store(x[i]));
    y16[i] = kv_elem<f16>::load(kv_elem<f16>::store(x[i]));
  }
}

}  // extern "C"
