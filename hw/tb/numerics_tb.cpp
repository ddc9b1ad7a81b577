// ctypes entry points for the numerics contract primitives (tests/test_hw_numerics.py).
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

void tb_rmsnorm16(const f32 *x, const f32 *g, f32 eps, int rows, int n, f32 *y) {
  for (int r = 0; r < rows; r++) rmsnorm<16>(x + r * n, g, eps, n, y + r * n);
}

void tb_quantize(const f32 *x, int rows, int n, int8_t *q, f32 *qs) {
  for (int r = 0; r < rows; r++) qs[r] = quantize(x + r * n, n, q + r * n);
}

}  // extern "C"
