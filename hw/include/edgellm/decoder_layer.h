// One BitNet decoder layer composed from the kernels: exactly models/golden.py GoldenModel.layer.
//
//   x = rmsnorm(h, attn_norm); (x8, qs) = quantize(x)
//   q, k, v = ternary linears of x8                       -> rope(q), rope(k)    [taps q_rope k_rope v]
//   cache[pos0 .. pos0+T) = k, v (as C::kv_t); a = attention(q, cache[0 .. pos0+T))  [tap attn]
//   a = rmsnorm(a, attn_sub_norm) if SUBLN ; h = h + o_proj(quantize(a))         [tap h_attn]
//   x = rmsnorm(h, ffn_norm); g, u = gate, up of quantize(x); f = act(g) * u     [tap ffn_act]
//   f = rmsnorm(f, ffn_sub_norm) if SUBLN ; h = h + down(quantize(f))            [tap h_out = h]
//
// Every float op is the contract's (numerics.h). A ternary linear is MM::run (exact integer
// accumulation, then dequantize(acc, qs, wscale)): a policy, so the layer runs on the TLMM engine
// (tlmm_mm) or on the plain reference matmul (pack2_matmul). The element-wise work between the
// linears is elementwise.h's fused token-streaming stages (norm+quantize, RoPE, GLU+SubLN+quantize,
// residual+next norm+quantize), all run by ONE element-wise engine (ew_engine, one call site in
// vector_job: one module with one set of fp32 units); rows go through on-chip buffers, one
// shared set (elementwise.h EwRows: one fp32 row) that the caller declares once (EDGELLM_EW_ROWS) and
// every stage of every layer uses in turn; only linear outputs, the attention input/output, the KV
// cache and the norm gammas (read by the RMSNorm scale pass) touch DDR (scratch area layer_scratch).
// One attention core (attention_layer) serves both: T == 1 runs the decode job, T > 1 the prefill jobs.
// The layer runs as a schedule of slots, each a linear job beside a vector job (layer_slot_run);
// with the prefill pipeline a prefill call's two token halves overlap the TLMM and the vector engines.
//
// Its configuration (layer_traits, layer_desc, layer_scratch, ...): layer_config.h; its matmul
// policies (pack2_matmul, tlmm_mm, mm_linear): layer_matmul.h; its slot schedule (slot_vector,
// slot_linear, layer_linear_job, ...): layer_schedule.h. This header includes all three.
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/attention_decode.h"
#include "edgellm/attention_prefill.h"
#include "edgellm/csim_progress.h"
#include "edgellm/elementwise.h"
#include "edgellm/kv_cache.h"
#include "edgellm/layer_config.h"
#include "edgellm/layer_matmul.h"
#include "edgellm/layer_schedule.h"
#include "edgellm/lowbit_policy.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

// dst[d_off ..] <- src[s_off ..] over n <= MAXN floats (taps), one beat of E floats per cycle (offsets and
// n whole beats).
template <long MAXN, int E, class PS, class PD>
void copy_f32(const PS *src, long s_off, PD *dst, long d_off, long n) {
copy_loop:
  for (long c = 0; c < n / E; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAXN / E
#pragma HLS PIPELINE II = 1
    f32 v[E];
#pragma HLS ARRAY_PARTITION variable = v complete
    chunk_get<E>(src, s_off, c, v);
    chunk_put<E>(dst, d_off, c, v);
  }
}

// The K/V cache as the layer's attention reads it (attention_kv): kd / vd the K and V slices through the
// data port, kp0..kp3 / vp0..vp3 through the K/V ports, at element offsets k_off / v_off of each (the
// top: one beat pointer per port at two offsets; testbenches: plain arrays, offsets 0).
#define EDGELLM_KV_READ_PARAMS                                                                          \
  const PK *kd, const PK *vd, const PP *kp0, const PP *kp1, const PP *kp2, const PP *kp3, const PP *vp0, \
      const PP *vp1, const PP *vp2, const PP *vp3, long k_off, long v_off
#define EDGELLM_KV_READ_ARGS kd, vd, kp0, kp1, kp2, kp3, vp0, vp1, vp2, vp3, k_off, v_off

// The layer's element-wise jobs in order, each run by the one engine call of vector_job after the
// work that feeds it (the step before it names that work).
enum {
  EW_ATTN_NORM = 0,  // x8, qs_a = quantize(rmsnorm(h, attn_norm))
  EW_ROPE_Q,         // after q, k, v = linears of x8: q = rope(q_lin)
  EW_ROPE_K,         // k = rope(k_lin)
  EW_ATTN_SUB,       // after the K/V cache write and attention: x8, qs_a = quantize(rmsnorm(attn, sub))
  EW_RES_ATTN,       // after o_proj: h += y; x8, qs_b = quantize(rmsnorm(h, ffn_norm))
  EW_GLU,            // after gate, up: f = act(g) * u; x8, qs_a = quantize(rmsnorm(f, ffn_sub))
  EW_RES_FFN,        // after down: h += y
  EW_STEPS
};

// Slot i's linear job: its linears of stage st (slot_linear: all, or L0's q alone and then k, v) for its
// half's tokens [t0, t0 + n): MM::run on the int8 rows x8 + t0 * k_max (the half's
// area), outputs into the float scratch rows of those tokens. fs / x8: the scratch as the TLMM process
// sees it (top.h: its own m_axi argument, the data port's bundle).
template <class C, class MM, class WS, class PF, class PX>
void linear_job(int i, int halves, int n_a, int t_len, WS *w0, WS *w1, WS *w2, WS *w3, const layer_desc &d,
                PF *fs, PX *x8, const LayerAt &at) {
#pragma HLS INLINE off
  typedef layer_scratch<C> S;
  static_assert(!mm_is_lowbit<MM>::value || C::k_max % 16 == 0,
                "low-bit linears read their int8 rows 16 at a time from 16-element boundaries");
  int st, half, j0, j1;
  slot_linear(i, halves, st, half, j0, j1);
  if (st < 0) return;
  const int t0 = half == 0 ? 0 : n_a, n = half == 0 ? n_a : t_len - n_a;
stage_linears_loop:
  for (int j = j0; j < j1; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 3
    const int lin = stage_linear(st, j), out = lin_out<C>(lin), in = lin_in<C>(lin);
    const long dst = lin == LIN_Q ? S::q_lin : lin == LIN_K ? S::k_lin : lin == LIN_V ? S::v
                     : lin == LIN_GATE ? S::g : lin == LIN_UP ? S::u : S::y;
    const long qs = at.fs + (st == 2 ? S::qs_b : S::qs_a) + t0;
    mm_linear<MM>::run(x8, at.x8 + (long)t0 * C::k_max, fs, qs, n, w0, w1, w2, w3, d, lin, out, in, at.params,
                       at.fs + dst + (long)t0 * out);
    EDGELLM_CSIM_BEAT();  // C simulation: a linear done (csim_progress.h); nothing synthesized
  }
}

// V1's attention work (vector_job, inlined: ONE attention call site): the whole stage's or V1.2's (the
// q, k, v taps, the new positions into the K/V slice, attention from key `split` on, the attention tap),
// or V1.1's (`first`: attention over keys 0 .. split - 1 of earlier calls, each row's state saved -- (l,
// m) over q_lin, dead once RoPE q has read it -- nothing else). Tokens [t0, t0 + n) at pos0 + t0.
template <class C, int KVP, class PD, class PF, class PK, class PP>
void v1_attention(bool first, int split, int n, int t0, int pos0, PK *k_layer, PK *v_layer, EDGELLM_KV_READ_PARAMS,
                  f32 attn_scale, PF *fs, PD *taps, bool tap_en, const LayerAt &at) {
#pragma HLS INLINE
  typedef layer_scratch<C> S;
  typedef layer_taps<C> TP;
  const int Q = C::q_size, KV = C::kv_size;
  enum { DL = C::data_bits / 32 };  // floats per data beat
  const long qo = at.fs + (long)t0 * Q, ko = at.fs + (long)t0 * KV;  // this half's rows in fs
  const long tq = at.taps + (long)t0 * Q, tk = at.taps + (long)t0 * KV;  // and in the taps
  if (!first && tap_en) {
    copy_f32<(long)C::max_t * Q, DL>(fs, S::q + qo, taps, TP::q_rope + tq, (long)n * Q);
    copy_f32<(long)C::max_t * KV, DL>(fs, S::k + ko, taps, TP::k_rope + tk, (long)n * KV);
    copy_f32<(long)C::max_t * KV, DL>(fs, S::v + ko, taps, TP::v + tk, (long)n * KV);
  }
  // the new positions into the slice at k_off / v_off of k_layer / v_layer (the data-port view)
  if (!first) {
    kv_cache_write<C::data_bits, typename C::kv_t>(fs, S::k + ko, fs, S::v + ko, n, pos0 + t0, KV, k_layer, k_off,
                                                   v_layer, v_off);
  }
  // one attention core for prefill (n > 1, K/V over the data port) and decode (n == 1: the positions
  // earlier calls wrote, < pos0, over the first KVP weight ports; this call's over k_layer / v_layer, the
  // argument that just wrote them)
  if (!first || split > 0) {
    attention_kv<typename C::attn, KVP, typename C::kv_t>(fs, S::q + qo, EDGELLM_KV_READ_ARGS, fs, S::attn + qo, n,
                                                         pos0 + t0, C::n_heads, C::n_kv, C::head_dim, attn_scale,
                                                         pos0, first ? 0 : split, first ? split : -1,
                                                         at.fs + S::q_lin + (long)t0 * Q);
  }
  if (!first && tap_en) copy_f32<(long)C::max_t * Q, DL>(fs, S::attn + qo, taps, TP::attn + tq, (long)n * Q);
}

// Slot i's vector job: stage st (V0 .. V4) for its half's tokens [t0, t0 + n) at positions pos0 + t0 ..:
// its element-wise jobs
// (ONE ew_engine call site, so the layer builds one element-wise module) with the K/V cache write and
// attention before the SubLN job, and the taps.
template <class C, int KVP, class PD, class PF, class PX, class PK, class PP>
void vector_job(int i, int halves, int n_a, int t_len, int pos0, const layer_desc &d, const PD *params,
                const PD *cos_tab, const PD *sin_tab, PK *k_layer, PK *v_layer, EDGELLM_KV_READ_PARAMS, f32 eps,
                f32 attn_scale, PD *h, PF *fs, PX *x8, PD *taps, bool tap_en, EwRows<typename C::ew> &rows,
                const LayerAt &at) {
#pragma HLS INLINE off
  typedef layer_scratch<C> S;
  typedef layer_taps<C> TP;
  typedef typename C::ew E;
  const int H = C::hidden, Q = C::q_size, KV = C::kv_size, F = C::ffn;
  enum { DL = C::data_bits / 32 };  // floats per data beat
  int st, half, part;
  slot_vector(i, halves, st, half, part);
  if (st < 0) return;
  const int t0 = half == 0 ? 0 : n_a, n = half == 0 ? n_a : t_len - n_a;
  // the stage's element-wise steps: V0 [ATTN_NORM], V1 [ROPE_Q, ROPE_K, ATTN_SUB] (V1.1 [ROPE_Q, -]: its
  // second step is the attention over the earlier K/V blocks alone; V1.2 [ROPE_K, ATTN_SUB]), V2 [RES_ATTN]..
  const int s0 = st == 0 ? (int)EW_ATTN_NORM : st == 1 ? (part == V1_SECOND ? (int)EW_ROPE_K : (int)EW_ROPE_Q)
                                                       : st + 2;
  const int ns = st != 1 ? 1 : part == V_WHOLE ? 3 : 2;
  // V1 in two parts: the keys before the call's first K/V block boundary (attention_layer.h)
  const int split = part == V_WHOLE || !C::attn_split
                        ? 0 : attn_split_key<typename C::attn>(n, pos0 + t0, C::n_heads, C::n_kv);
vector_steps:
  for (int s = s0; s < s0 + ns; s++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 3
    // the work feeding job s: attention before ATTN_SUB (V1.1: in place of ROPE_K, the earlier blocks)
    const bool first_part = part == V1_FIRST && s == EW_ROPE_K;
    if (first_part || s == EW_ATTN_SUB) {
      v1_attention<C, KVP>(first_part, split, n, t0, pos0, k_layer, v_layer, EDGELLM_KV_READ_ARGS, attn_scale, fs,
                           taps, tap_en, at);
      if (first_part) continue;  // V1.1 ends with its attention
    } else if (s == EW_GLU && tap_en) {
      copy_f32<(long)C::max_t * H, DL>(h, at.h + (long)t0 * H, taps, at.taps + TP::h_attn + (long)t0 * H,
                                       (long)n * H);
    }
    // job s's operands (linear outputs arrive dequantized, fp32: scales 1), element offsets of fs,
    // params, h, taps; row r of every per-token operand is token t0 + r. The attention norm reads h
    // itself (kEwNormH: the engine's own code path on h's argument); a is always a scratch row, so no
    // operand is chosen between two arguments.
    int mode = kEwNormH, w = H;
    long a = S::q_lin, qs_in = S::qs_a, g = d.p_off[NORM_ATTN], out = S::q, qs_out = S::qs_a;
    bool norm = true;
    switch (s) {
      case EW_ROPE_Q:
        mode = kEwRope, w = Q, a = S::q_lin;
        break;
      case EW_ROPE_K:
        mode = kEwRope, w = KV, a = S::k_lin, out = S::k;
        break;
      case EW_ATTN_SUB:
        mode = kEwNorm, w = Q, a = S::attn, g = d.p_off[NORM_ATTN_SUB], norm = C::subln;
        break;
      case EW_RES_ATTN:
        mode = kEwResidual, a = S::y, g = d.p_off[NORM_FFN], qs_out = S::qs_b;
        break;
      case EW_GLU:
        mode = kEwGlu, w = F, a = S::g, qs_in = S::qs_b, g = d.p_off[NORM_FFN_SUB];
        norm = C::subln;
        break;
      case EW_RES_FFN:
        mode = kEwResidual, a = S::y, norm = false, qs_out = S::qs_b;
        break;
      default:  // EW_ATTN_NORM
        break;
    }
    const long ro = at.fs + (long)t0 * w;
    const EwAt ea = {a + ro, S::u + ro, at.fs + qs_in + t0, at.params + g, at.cos, at.sin, at.h + (long)t0 * H,
                     out + ro, at.x8 + (long)t0 * C::k_max, at.fs + qs_out + t0,
                     at.taps + TP::ffn_act + (long)t0 * F};
    ew_engine<E, C::act, C::head_dim, f32>(mode, fs, fs, fs, 1.0f, 1.0f, norm, params, eps, n, w, pos0 + t0,
                                           cos_tab, sin_tab, h, fs, x8, fs, tap_en && s == EW_GLU, taps, ea, rows);
  }
}

// Slot i of the schedule: its linear job and its vector job, the two processes of one DATAFLOW region
// (they share no buffer: see the schedule above). fs_t / x8_t: the scratch as the linear job sees it.
template <class C, class MM, int KVP, class WS, class PD, class PF, class PX, class PK, class PP>
void layer_slot_run(int i, int halves, int n_a, int t_len, int pos0, WS *w0, WS *w1, WS *w2, WS *w3,
                    const layer_desc &d, const PD *params, const PD *cos_tab, const PD *sin_tab, PK *k_layer,
                    PK *v_layer, EDGELLM_KV_READ_PARAMS, f32 eps, f32 attn_scale, PD *h, PF *fs, PX *x8, PF *fs_t,
                    PX *x8_t, PD *taps, bool tap_en, EwRows<typename C::ew> &rows, const LayerAt &at) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
#define EDGELLM_SLOT_LINEAR \
  EDGELLM_PROCESS(linear_job<C, MM>(i, halves, n_a, t_len, w0, w1, w2, w3, d, fs_t, x8_t, at))
#define EDGELLM_SLOT_VECTOR                                                                                  \
  EDGELLM_PROCESS(vector_job<C, KVP>(i, halves, n_a, t_len, pos0, d, params, cos_tab, sin_tab, k_layer, v_layer, \
                                     EDGELLM_KV_READ_ARGS, eps, attn_scale, h, fs, x8, taps, tap_en, rows, at))
#if defined(EDGELLM_CSIM_SLOT_REVERSE) && !defined(__SYNTHESIS__)
  // C-simulation check (tests/test_top.py): the vector job first. The two jobs of a slot share no
  // data, so their order cannot change any result.
  EDGELLM_SLOT_VECTOR;
  EDGELLM_SLOT_LINEAR;
#else
  EDGELLM_SLOT_LINEAR;
  EDGELLM_SLOT_VECTOR;
#endif
#undef EDGELLM_SLOT_LINEAR
#undef EDGELLM_SLOT_VECTOR
  EDGELLM_JOIN;
}

// One decoder layer on h [t_len][hidden] (in place) at positions pos0 .. pos0+t_len-1.
//   w0 .. w3, d:   the weights, as the image through the four weight ports (const uint8_t pointers,
//                  MM::run adds d.w_off) or as the four weight FIFOs the top's fetcher fills (WS =
//                  hls::stream<MM::word_t>: MM::run pops them), and this layer's descriptor;
//                  params: float area (norm vectors)
//   cos_tab, sin_tab: rope_tables(head_dim, max_ctx) [max_ctx][head_dim/2]
//   k_layer, v_layer: this layer's KV cache slice of C::kv_t (kv_cache.h), positions < pos0 valid
//   eps, attn_scale: rms_eps and float(1/sqrt(head_dim)) from the host
//   kd, vd, kp0..kp3, vp0..vp3, k_off, v_off: the K/V slice as attention reads it
//                  (EDGELLM_KV_READ_PARAMS): decode (n == 1) reads the positions earlier calls wrote over
//                  the first KVP K/V ports (top.h kv0 .. kv3, in the weight ports' bundles) concurrently
//                  (attention_kv); prefill and this call's positions over kd / vd (the data port, the
//                  argument that wrote them through k_layer / v_layer)
//   fs, x8: scratch (layer_scratch<C>); taps: layer_taps<C> area written when tap_en
//   rows:          the element-wise stages' shared rows (declared once by the caller with
//                  EDGELLM_EW_ROWS; the vector jobs run one after another)
//   norm_only:     run the first element-wise job alone (x8, qs_a = quantize(rmsnorm(h[0 .. t_len),
//                  params + d.p_off[NORM_ATTN]))): the top's final norm before the LM head goes
//                  through the same engine call (top_engine.h run_desc)
//   fs_t, x8_t:    the same scratch as the linear jobs reach it (top.h: the `act` m_axi argument, so
//                  the two processes of a slot use distinct arguments; one-pointer callers pass fs,
//                  x8 again): never a run-time choice between pointers, which on m_axi arguments
//                  synthesis cannot resolve
//   at:            the element offsets of h, params, the tables, fs, x8 and taps in their pointers (the
//                  top: every operand on the data or act port's beats, maxi.h, never cast; the K/V slice
//                  at k_off / v_off of k_layer / v_layer; testbenches: plain arrays, offsets 0)
// The slots run one after another (layer_slot_run; the schedule above).
template <class C, class MM, int KVP, class WS, class PD, class PF, class PX, class PK, class PP>
void decoder_layer_ports(PD *h, int t_len, int pos0, WS *w0, WS *w1, WS *w2, WS *w3, const layer_desc &d,
                         const PD *params, const PD *cos_tab, const PD *sin_tab, PK *k_layer, PK *v_layer,
                         EDGELLM_KV_READ_PARAMS, f32 eps, f32 attn_scale, PF *fs, PX *x8, PD *taps, bool tap_en,
                         EwRows<typename C::ew> &rows, bool norm_only, PF *fs_t, PX *x8_t, const LayerAt &at) {
#ifndef __SYNTHESIS__
  assert(t_len >= 1 && t_len <= C::max_t && pos0 >= 0 && pos0 + t_len <= C::max_ctx);
#endif
  const int halves = layer_halves<C>(t_len, norm_only);
  const int n_a = first_half<MM::kTokenLanes>(t_len, halves);
  const int n_slots = norm_only ? 1 : layer_slot_count(halves);
layer_slots:
  for (int i = 0; i < n_slots; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 10 max = 10
    layer_slot_run<C, MM, KVP>(i, halves, n_a, t_len, pos0, w0, w1, w2, w3, d, params, cos_tab, sin_tab,
                               k_layer, v_layer, EDGELLM_KV_READ_ARGS, eps, attn_scale, h, fs, x8, fs_t, x8_t,
                               taps, tap_en, rows, at);
  }
}

// decoder_layer_ports on plain arrays (testbenches): the K/V ports' views kr0..kr3 / vr0..vr3 of the
// slice (offsets 0), attention's data-port view k_layer / v_layer.
template <class C, class MM, int KVP, class WS>
void decoder_layer_ports(f32 *h, int t_len, int pos0, WS *w0, WS *w1, WS *w2, WS *w3, const layer_desc &d,
                         const f32 *params, const f32 *cos_tab, const f32 *sin_tab,
                         typename C::kv_t *k_layer, typename C::kv_t *v_layer,
                         const typename C::kv_t *kr0, const typename C::kv_t *kr1,
                         const typename C::kv_t *kr2, const typename C::kv_t *kr3,
                         const typename C::kv_t *vr0, const typename C::kv_t *vr1,
                         const typename C::kv_t *vr2, const typename C::kv_t *vr3, f32 eps,
                         f32 attn_scale, f32 *fs, int8_t *x8, f32 *taps, bool tap_en,
                         EwRows<typename C::ew> &rows, bool norm_only, f32 *fs_t, int8_t *x8_t) {
  const typename C::kv_t *kd = k_layer, *vd = v_layer;
  decoder_layer_ports<C, MM, KVP>(h, t_len, pos0, w0, w1, w2, w3, d, params, cos_tab, sin_tab, k_layer,
                                  v_layer, kd, vd, kr0, kr1, kr2, kr3, vr0, vr1, vr2, vr3, 0L, 0L, eps,
                                  attn_scale, fs, x8, taps, tap_en, rows, norm_only, fs_t, x8_t, LayerAt());
}

// K/V read through k_layer / v_layer alone (one port); declares the element-wise rows itself.
template <class C, class MM>
void decoder_layer(f32 *h, int t_len, int pos0, const uint8_t *w0, const uint8_t *w1,
                   const uint8_t *w2, const uint8_t *w3, const layer_desc &d, const f32 *params,
                   const f32 *cos_tab, const f32 *sin_tab, typename C::kv_t *k_layer,
                   typename C::kv_t *v_layer, f32 eps, f32 attn_scale, f32 *fs, int8_t *x8, f32 *taps,
                   bool tap_en) {
  typedef typename C::ew E;
  EDGELLM_EW_ROWS(E, rows)
  decoder_layer_ports<C, MM, 1>(h, t_len, pos0, w0, w1, w2, w3, d, params, cos_tab, sin_tab, k_layer,
                                v_layer, k_layer, k_layer, k_layer, k_layer, v_layer, v_layer, v_layer,
                                v_layer, eps, attn_scale, fs, x8, taps, tap_en, rows, false, fs, x8);
}

// Single weight pointer (testbenches): every weight port reads through w.
template <class C, class MM, class... A>
void decoder_layer(f32 *h, int t_len, int pos0, const uint8_t *w, const layer_desc &d, A... rest) {
  edgellm::decoder_layer<C, MM>(h, t_len, pos0, w, w, w, w, d, rest...);
}

}  // namespace edgellm
