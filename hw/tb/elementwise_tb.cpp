// ctypes entry points for the fused element-wise stages (tests/test_hw_elementwise.py). Each entry
// takes vec (elements per cycle: 1, 4 or 16, one EwConfig each) and returns 0, or -1 for another vec.
// Every call of every entry works on the same shared rows of its EwConfig (EwRows, as in a decoder
// layer), filled with garbage (NaN rows, int8 -77) before the call: a stage that read a row element
// before writing it would show up as a mismatch.
#include <cmath>
#include <cstdint>

#include "edgellm/elementwise.h"

using namespace edgellm;

typedef EwConfig<8192, 16, 16, 1> Ew1;
typedef EwConfig<8192, 16, 16, 4> Ew4;
typedef EwConfig<8192, 16, 16, 16> Ew16;

// The shared rows of E (one set per EwConfig, kept between calls), poisoned: every element NaN / -77.
template <class E>
static EwRows<E> &rows() {
  static EwRows<E> r;
  for (int i = 0; i < E::N_BUF; i++) {
    r.r0[i] = r.r1[i] = r.r2[i] = std::nanf("");
    r.q[i] = -77;
  }
  return r;
}

// Calls BODY with E bound to the EwConfig of vec and R to its (poisoned) shared rows; returns -1
// when vec has none.
#define EW_DISPATCH(vec, BODY)    \
  switch (vec) {                  \
    case 1: {                     \
      typedef Ew1 E;              \
      EwRows<E> &R = rows<E>();   \
      BODY;                       \
      return 0;                   \
    }                             \
    case 4: {                     \
      typedef Ew4 E;              \
      EwRows<E> &R = rows<E>();   \
      BODY;                       \
      return 0;                   \
    }                             \
    case 16: {                    \
      typedef Ew16 E;             \
      EwRows<E> &R = rows<E>();   \
      BODY;                       \
      return 0;                   \
    }                             \
    default:                      \
      return -1;                  \
  }

template <class E, int D>
static void rope_f32(const f32 *y, int n_tok, int n_heads, int pos0, const f32 *cos_tab, const f32 *sin_tab,
                     f32 *out, EwRows<E> &r) {
  f32 ones[E::MAX_TOK];
  for (int t = 0; t < E::MAX_TOK; t++) ones[t] = 1.0f;
  dequant_rope_tokens<E, D>(y, ones, 1.0f, n_tok, n_heads, pos0, cos_tab, sin_tab, out, r);
}

extern "C" {

int tb_norm_quantize(int vec, const f32 *x, const f32 *g, int norm, f32 eps, int n_tok, int n, int8_t *q,
                     f32 *qs) {
  EW_DISPATCH(vec, (norm_quantize_tokens<E>(x, g, norm != 0, eps, n_tok, n, q, qs, R)))
}

int tb_dequant_rope64(int vec, const int32_t *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                      const f32 *cos_tab, const f32 *sin_tab, f32 *out) {
  EW_DISPATCH(vec,
              (dequant_rope_tokens<E, 64>(acc, qs, wscale, n_tok, n_heads, pos0, cos_tab, sin_tab, out, R)))
}

// fp32 input (scales 1), head_dim d in {8, 128}: d = 8 puts several heads in one chunk at vec 16.
int tb_rope_f32(int vec, int d, const f32 *y, int n_tok, int n_heads, int pos0, const f32 *cos_tab,
                const f32 *sin_tab, f32 *out) {
  if (d == 8) EW_DISPATCH(vec, (rope_f32<E, 8>(y, n_tok, n_heads, pos0, cos_tab, sin_tab, out, R)))
  if (d == 128) EW_DISPATCH(vec, (rope_f32<E, 128>(y, n_tok, n_heads, pos0, cos_tab, sin_tab, out, R)))
  return -1;
}

int tb_glu(int vec, int act, const int32_t *g_acc, const int32_t *u_acc, const f32 *qs, f32 g_scale,
           f32 u_scale, int sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out,
           f32 *f_tap) {
  if (act == kActRelu2) {
    EW_DISPATCH(vec, (glu_norm_quantize_tokens<E, kActRelu2>(g_acc, u_acc, qs, g_scale, u_scale, sub_norm != 0,
                                                             sub_g, eps, n_tok, n, q, qs_out, true, f_tap, R)))
  }
  EW_DISPATCH(vec, (glu_norm_quantize_tokens<E, kActSilu>(g_acc, u_acc, qs, g_scale, u_scale, sub_norm != 0,
                                                          sub_g, eps, n_tok, n, q, qs_out, true, f_tap, R)))
}

int tb_residual(int vec, const int32_t *acc, const f32 *qs, f32 wscale, f32 *h, int next_norm, const f32 *g,
                f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out) {
  EW_DISPATCH(vec, (residual_norm_quantize_tokens<E>(acc, qs, wscale, h, next_norm != 0, g, eps, n_tok, n, q,
                                                     qs_out, R)))
}

}  // extern "C"
