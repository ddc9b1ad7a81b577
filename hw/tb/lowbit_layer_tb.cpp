// ctypes entry points for a decoder layer whose seven linears run on the low-bit engine
// (lowbit_policy.h lowbit_mm_policy; tests/test_hw_lowbit_layer.py). Llama-like shape: hidden 256, 4 query
// heads and 2 K/V heads of 64 (GQA), ffn 512, SiLU, no SubLN, up to 16 tokens a call, 64 positions;
// numerics plan NumericsPlan.for_head_dim(64) (norm_lanes 16, dot_lanes 64, kv_block 16).
//   _p1: one weight port (BW 128, R 32, 8 tokens an engine pass), the prefill pipeline (two halves)
//   _p2: two weight ports (BW 256, R 64, 2 token lanes, 2 record decoders, 4 tokens a pass), sequential
// The weights arrive as one byte image holding every port's image of every linear (port u's image of
// linear i at byte ld[LD_W_OFF + i] + LB_PORTu_OFF (0 for port 0), the layer table's and the low-bit
// table's words, interface.h). fifo = 1: the fetch path: the policy's fetch<P> pushes each port's
// images in the order the layer's schedule runs the linears (layer_linear_job) into weight FIFOs, and
// the layer pops them;
// fifo = 0: the pointer path. The float scratch and the params (norm gains, biases) are one array `mem`
// (params at element params_at), as the top's act and data ports see one buffer.
#include <cmath>
#include <cstring>
#include <vector>

#include "edgellm/decoder_layer.h"

using namespace edgellm;

// The shape and numerics plan both variants share; they differ in the schedule (and in the engine below).
struct lb_shape : layer_config_base {
  static const int hidden = 256, n_heads = 4, n_kv = 2, head_dim = 64, ffn = 512, act = ACT_SILU;
  static const bool subln = false;
  static const int norm_lanes = 16, dot_lanes = 64, kv_block = 16, max_t = 16, max_ctx = 64;
};
struct p1_fields : lb_shape {
  static const bool pipe = true;  // the prefill pipeline (two halves)
};
struct p2_fields : lb_shape {};  // sequential (pipe: the default, false)
typedef layer_traits<p1_fields> cfg_p1;
typedef layer_traits<p2_fields> cfg_p2;

struct lb_cfg_p1 : lowbit_config_base {  // FU 2 of 8: the mix's G16 6-bit rows need ceil(8 / 6) = 2
  static const int rows = 32, max_k = 512, max_t = 8, float_units = 2;
};
struct lb_cfg_p2 : lowbit_config_base {
  static const int rows = 64, max_k = 512, max_t = 4, token_lanes = 2, beat_bits = 256, decoders = 2;
};
typedef lowbit_mm_policy<lowbit_traits<lb_cfg_p1> > mm_p1;
typedef lowbit_mm_policy<lowbit_traits<lb_cfg_p2> > mm_p2;

template <class C>
static EwRows<typename C::ew> &poisoned_rows() {
  typedef typename C::ew E;
  static EwRows<E> r;
  for (int i = 0; i < E::N_BUF; i++) r.r0[i] = std::nanf("");
  return r;
}

template <class C, class MM>
static long run(f32 *h, int t_len, int pos0, const uint8_t *w, long w_bytes, const uint32_t *ld,
                const uint32_t *lbt, f32 *mem, long params_at, const f32 *cos_t, const f32 *sin_t, f32 *kc, f32 *vc,
                f32 eps, f32 scale, f32 *taps, int fifo) {
  static int8_t x8[layer_scratch<C>::bytes8];
  if (w_bytes % 16 || t_len < 1 || t_len > C::max_t || pos0 + t_len > C::max_ctx) return -1;
  std::vector<lb_beat_t> beats(w_bytes / 16);
  for (size_t i = 0; i < beats.size(); i++) {
    for (int j = 0; j < 16; j++) beats[i].range(8 * j + 7, 8 * j) = w[16 * i + j];
  }
  layer_desc d;
  for (int i = 0; i < N_LIN; i++) {
    d.w_off[i] = (long)ld[LD_W_OFF + i];
    d.w_scale[i] = float_from_bits(ld[LD_W_SCALE + i]);
    d.lb[i] = lb_linear_of(lbt + i * LB_WORDS, lin_out<C>(i), lin_in<C>(i));
  }
  for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)ld[LD_P_OFF + i];
  LayerAt at = LayerAt();
  at.params = params_at;
  const bool tap_en = taps != nullptr;
  if (fifo) {
    hls::stream<lb_beat_t> q[4];
    const int halves = layer_halves<C>(t_len, false);
    for (int j = 0; j < layer_linear_jobs(halves); j++) {
      int lin, t0, n;
      layer_linear_job<C, MM>(j, t_len, halves, lin, t0, n);
      MM::template fetch<0>(beats.data(), d.w_off[lin], d.lb[lin], lin_out<C>(lin), lin_in<C>(lin), n, q[0]);
      MM::template fetch<1>(beats.data(), d.w_off[lin], d.lb[lin], lin_out<C>(lin), lin_in<C>(lin), n, q[1]);
      MM::template fetch<2>(beats.data(), d.w_off[lin], d.lb[lin], lin_out<C>(lin), lin_in<C>(lin), n, q[2]);
      MM::template fetch<3>(beats.data(), d.w_off[lin], d.lb[lin], lin_out<C>(lin), lin_in<C>(lin), n, q[3]);
    }
    decoder_layer_ports<C, MM, 1>(h, t_len, pos0, &q[0], &q[1], &q[2], &q[3], d, mem, cos_t, sin_t, kc, vc, kc, vc,
                                  kc, kc, kc, kc, vc, vc, vc, vc, 0L, 0L, eps, scale, mem, x8, taps, tap_en,
                                  poisoned_rows<C>(), false, mem, x8, at);
    long left = 0;
    for (int u = 0; u < 4; u++) left += (long)q[u].size();
    return left;  // words pushed but never popped (0: the engine read exactly what the fetchers pushed)
  }
  const lb_beat_t *wp = beats.data();
  decoder_layer_ports<C, MM, 1>(h, t_len, pos0, wp, wp, wp, wp, d, mem, cos_t, sin_t, kc, vc, kc, vc, kc, kc, kc,
                                kc, vc, vc, vc, vc, 0L, 0L, eps, scale, mem, x8, taps, tap_en, poisoned_rows<C>(),
                                false, mem, x8, at);
  return 0;
}

extern "C" {

// out: float scratch floats, tap floats, max_t, then (rows, beat bits, max_t) of the _p1 and _p2 engines.
void tb_lb_layer_sizes(long *out) {
  out[0] = layer_scratch<cfg_p1>::floats;
  out[1] = layer_taps<cfg_p1>::floats;
  out[2] = cfg_p1::max_t;
  out[3] = mm_p1::C::R, out[4] = mm_p1::C::BW, out[5] = mm_p1::C::MAXT;
  out[6] = mm_p2::C::R, out[7] = mm_p2::C::BW, out[8] = mm_p2::C::MAXT;
}

// Taps offsets (floats) as layer_taps: q_rope, k_rope, v, attn, h_attn, ffn_act.
void tb_lb_layer_taps(long *out) {
  typedef layer_taps<cfg_p1> T;
  out[0] = T::q_rope, out[1] = T::k_rope, out[2] = T::v, out[3] = T::attn, out[4] = T::h_attn, out[5] = T::ffn_act;
}

#define EDGELLM_LB_LAYER_TB(SUF, CFG, MM)                                                                    \
  long tb_lb_layer_##SUF(f32 *h, int t_len, int pos0, const uint8_t *w, long w_bytes, const uint32_t *ld,     \
                         const uint32_t *lbt, f32 *mem, long params_at, const f32 *cos_t, const f32 *sin_t,    \
                         f32 *kc, f32 *vc, f32 eps, f32 scale, f32 *taps, int fifo) {                          \
    return run<CFG, MM>(h, t_len, pos0, w, w_bytes, ld, lbt, mem, params_at, cos_t, sin_t, kc, vc, eps, scale, \
                        taps, fifo);                                                                           \
  }
EDGELLM_LB_LAYER_TB(p1, cfg_p1, mm_p1)
EDGELLM_LB_LAYER_TB(p2, cfg_p2, mm_p2)

}  // extern "C"
