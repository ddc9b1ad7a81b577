// ctypes entry points for the fused element-wise stages (tests/test_hw_elementwise.py).
#include <cstdint>

#include "edgellm/elementwise.h"

using namespace edgellm;

typedef EwConfig<8192, 16, 16> Ew;

extern "C" {

void tb_norm_quantize(const f32 *x, const f32 *g, int norm, f32 eps, int n_tok, int n, int8_t *q, f32 *qs) {
  norm_quantize_tokens<Ew>(x, g, norm != 0, eps, n_tok, n, q, qs);
}

void tb_dequant_rope64(const int32_t *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                       const f32 *cos_tab, const f32 *sin_tab, f32 *out) {
  dequant_rope_tokens<Ew, 64>(acc, qs, wscale, n_tok, n_heads, pos0, cos_tab, sin_tab, out);
}

void tb_rope128_f32(const f32 *y, int n_tok, int n_heads, int pos0, const f32 *cos_tab, const f32 *sin_tab,
                    f32 *out) {
  f32 ones[Ew::MAX_TOK];
  for (int t = 0; t < Ew::MAX_TOK; t++) ones[t] = 1.0f;
  dequant_rope_tokens<Ew, 128>(y, ones, 1.0f, n_tok, n_heads, pos0, cos_tab, sin_tab, out);
}

void tb_glu(int act, const int32_t *g_acc, const int32_t *u_acc, const f32 *qs, f32 g_scale, f32 u_scale,
            int sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out, f32 *f_tap) {
  if (act == kActRelu2) {
    glu_norm_quantize_tokens<Ew, kActRelu2>(g_acc, u_acc, qs, g_scale, u_scale, sub_norm != 0, sub_g, eps,
                                            n_tok, n, q, qs_out, true, f_tap);
  } else {
    glu_norm_quantize_tokens<Ew, kActSilu>(g_acc, u_acc, qs, g_scale, u_scale, sub_norm != 0, sub_g, eps,
                                           n_tok, n, q, qs_out, true, f_tap);
  }
}

void tb_residual(const int32_t *acc, const f32 *qs, f32 wscale, f32 *h, int next_norm, const f32 *g, f32 eps,
                 int n_tok, int n, int8_t *q, f32 *qs_out) {
  residual_norm_quantize_tokens<Ew>(acc, qs, wscale, h, next_norm != 0, g, eps, n_tok, n, q, qs_out);
}

}  // extern "C"
