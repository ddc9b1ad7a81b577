// ctypes entry points for the decoder layer (tests/test_hw_layer.py): a small model shape
// (hidden 128, 4/2 heads of 32, ffn 344, max_context 512, prefill up to 128 tokens) in two
// variants, ReLU^2 + SubLN and SiLU without SubLN; numerics plan norm_lanes 16, dot_lanes 32,
// kv_block 16 (NumericsPlan.for_head_dim(32)). Each variant runs on the TLMM engine (weights:
// compiler/packing.py pack_ternary, rows_per_tile 16) and on the pack2 reference matmul; the _f16
// entries run the TLMM variants with an f16 KV cache (kv_t = f16); the _v4 / _v16
// entries run the element-wise stages and the KV cache write 4 / 16 elements per cycle (ew_vec).
// The element-wise stages' shared rows (EwRows) are one static set per configuration, kept between
// calls and filled with garbage (NaN) before each call, so a stage reading a row element it
// has not written shows up as a mismatch; the _wrap entry instead goes through decoder_layer (the
// one-port wrapper that declares the rows itself with EDGELLM_EW_ROWS).
#include <cmath>

#include "edgellm/decoder_layer.h"

using namespace edgellm;

// The shape and numerics plan every variant shares; the variants name what they change.
struct tb_shape : layer_config_base {
  static const int hidden = 128, n_heads = 4, n_kv = 2, head_dim = 32, ffn = 344;
  static const int norm_lanes = 16, dot_lanes = 32, kv_block = 16, max_t = 128, max_ctx = 512;
};
struct relu2_subln_fields : tb_shape {
  static const int act = ACT_RELU2;
  static const bool subln = true;
};
struct silu_fields : tb_shape {
  static const int act = ACT_SILU;
  static const bool subln = false;
};
struct relu2_subln_f16_fields : relu2_subln_fields {
  typedef f16 kv_t;
};
struct silu_f16_fields : silu_fields {
  typedef f16 kv_t;
};
struct relu2_subln_v4_fields : relu2_subln_fields {
  static const int ew_vec = 4;
};
struct silu_f16_v16_fields : silu_f16_fields {
  static const int ew_vec = 16;
};
typedef layer_traits<relu2_subln_fields> cfg_relu2_subln;
typedef layer_traits<silu_fields> cfg_silu;
typedef layer_traits<relu2_subln_f16_fields> cfg_relu2_subln_f16;
typedef layer_traits<silu_f16_fields> cfg_silu_f16;
typedef layer_traits<relu2_subln_v4_fields> cfg_relu2_subln_v4;
typedef layer_traits<silu_f16_v16_fields> cfg_silu_f16_v16;
// The TLMM engine the variants run on (the pack2 reference: tb_pack2).
struct tlmm_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 344, N_MAX = 344, MAX_TOK = 16;
  static const int STORAGE = kStorageBram;
};
typedef tlmm_mm<tlmm_traits<tlmm_fields> > tb_tlmm;
typedef pack2_matmul<344> tb_pack2;

// The configuration's shared element-wise rows, poisoned.
template <class C>
static EwRows<typename C::ew> &poisoned_rows() {
  typedef typename C::ew E;
  static EwRows<E> r;
  for (int i = 0; i < E::N_BUF; i++) {
    r.r0[i] = std::nanf("");
  }
  return r;
}

template <class C, class MM, bool WRAP>
static void run_layer(f32 *h, int t_len, int pos0, const uint8_t *w, const long long *w_off,
                      const f32 *w_scale, const f32 *params, const long long *p_off,
                      const f32 *cos_t, const f32 *sin_t, void *kc, void *vc, f32 eps, f32 scale,
                      f32 *taps) {
  static f32 fs[layer_scratch<C>::floats];
  static int8_t x8[layer_scratch<C>::bytes8];
  layer_desc d;
  for (int i = 0; i < N_LIN; i++) {
    d.w_off[i] = (long)w_off[i];
    d.w_scale[i] = w_scale[i];
  }
  for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)p_off[i];
  typedef typename C::kv_t KT;  // f32 or f16 cache elements
  KT *k = static_cast<KT *>(kc), *v = static_cast<KT *>(vc);
  if (WRAP) {
    decoder_layer<C, MM>(h, t_len, pos0, w, d, params, cos_t, sin_t, k, v, eps, scale, fs, x8, taps,
                         taps != nullptr);
  } else {
    decoder_layer_ports<C, MM, 1>(h, t_len, pos0, w, w, w, w, d, params, cos_t, sin_t, k, v, k, k, k, k, v,
                                  v, v, v, eps, scale, fs, x8, taps, taps != nullptr, poisoned_rows<C>(), false,
                                  fs, x8);
  }
}

extern "C" {

// Tap offsets (floats): q_rope, k_rope, v, attn, h_attn, ffn_act, total; and max_t.
void tb_layer_tap_offsets(long long *out) {
  typedef layer_taps<cfg_silu> T;
  out[0] = T::q_rope; out[1] = T::k_rope; out[2] = T::v; out[3] = T::attn;
  out[4] = T::h_attn; out[5] = T::ffn_act; out[6] = T::floats; out[7] = cfg_silu::max_t;
}

// WRAP: through decoder_layer (its own rows) instead of decoder_layer_ports with the poisoned rows.
#define EDGELLM_LAYER_TB(NAME, CFG, MM, WRAP)                                                       \
  void tb_layer_##NAME(f32 *h, int t_len, int pos0, const uint8_t *w, const long long *w_off,     \
                       const f32 *w_scale, const f32 *params, const long long *p_off,             \
                       const f32 *cos_t, const f32 *sin_t, void *kc, void *vc, f32 eps, f32 scale, \
                       f32 *taps) {                                                               \
    run_layer<CFG, MM, WRAP>(h, t_len, pos0, w, w_off, w_scale, params, p_off, cos_t, sin_t, kc, vc, \
                             eps, scale, taps);                                                   \
  }

EDGELLM_LAYER_TB(relu2_subln_tlmm, cfg_relu2_subln, tb_tlmm, false)
EDGELLM_LAYER_TB(silu_tlmm, cfg_silu, tb_tlmm, false)
EDGELLM_LAYER_TB(relu2_subln_pack2, cfg_relu2_subln, tb_pack2, false)
EDGELLM_LAYER_TB(silu_pack2, cfg_silu, tb_pack2, false)
EDGELLM_LAYER_TB(relu2_subln_tlmm_f16, cfg_relu2_subln_f16, tb_tlmm, false)
EDGELLM_LAYER_TB(silu_tlmm_f16, cfg_silu_f16, tb_tlmm, false)
EDGELLM_LAYER_TB(relu2_subln_tlmm_v4, cfg_relu2_subln_v4, tb_tlmm, false)
EDGELLM_LAYER_TB(relu2_subln_pack2_v4, cfg_relu2_subln_v4, tb_pack2, false)
EDGELLM_LAYER_TB(silu_tlmm_f16_v16, cfg_silu_f16_v16, tb_tlmm, false)
EDGELLM_LAYER_TB(relu2_subln_tlmm_v4_wrap, cfg_relu2_subln_v4, tb_tlmm, true)

// The layer schedule (decoder_layer.h layer_slot_run). tb_first_half: first_half for TLMM token lanes
// 1, 2 or 4 (-1 otherwise).
int tb_first_half(int lanes, int t_len, int halves) {
  return lanes == 1 ? first_half<1>(t_len, halves) : lanes == 2 ? first_half<2>(t_len, halves)
                                                    : lanes == 4 ? first_half<4>(t_len, halves) : -1;
}

// Slot i: out = (linear stage, its half, vector stage, its half, the stage's first and end linear,
// the vector stage's part); returns the slot count.
int tb_layer_slot(int i, int halves, int *out) {
  slot_linear(i, halves, out[0], out[1], out[4], out[5]);
  slot_vector(i, halves, out[2], out[3], out[6]);
  return layer_slot_count(halves);
}

// The linear jobs as the fetchers walk them (token lanes 1): out[3j .. 3j+2] = (linear, t0, n) of job
// j; returns the job count.
int tb_layer_linear_jobs(int t_len, int halves, int *out) {
  for (int j = 0; j < layer_linear_jobs(halves); j++) {
    layer_linear_job<cfg_silu, tb_pack2>(j, t_len, halves, out[3 * j], out[3 * j + 1], out[3 * j + 2]);
  }
  return layer_linear_jobs(halves);
}

}  // extern "C"
