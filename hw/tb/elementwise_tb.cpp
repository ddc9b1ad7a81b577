// ctypes entry points for the fused element-wise stages (tests/test_hw_elementwise.py), each stage one
// job of the element-wise engine (ew_engine), plus the engine's operator budget. Each entry
// takes vec (elements per cycle: 1, 4 or 16, one element-wise configuration each: ew_traits) and returns
// 0, or -1 for another vec. Every call of every entry works on the same shared rows of its configuration
// (EwRows, as in a decoder layer), filled with garbage (NaN) before the call: a stage that read a row element
// before writing it would show up as a mismatch. The tb_lv_* entries take (lanes, vec): the RMSNorm
// lanes 16 or 64 with vec 1, 2, 4 or 8 (LANES 16: U = LaneUnits = 1, 2, 2, 2, so vec 4 and 8 run the
// normed producing passes at U < VEC; LANES 64: U = VEC).
#include <cmath>
#include <cstdint>

#include "edgellm/elementwise.h"

using namespace edgellm;

// Every configuration: rows of up to 8192 floats, 16 tokens a call; each names its RMSNorm lanes, its
// VEC and, where narrower, its GLU pass's GLU_VEC (the rest: ew_config_base's defaults).
struct tb_ew : ew_config_base {
  static const int N_MAX = 8192, MAX_TOK = 16;
};
struct lanes16 : tb_ew { static const int LANES = 16; };
struct lanes32 : tb_ew { static const int LANES = 32; };
struct lanes64 : tb_ew { static const int LANES = 64; };

// The (lanes, vec) grid (EW_DISPATCH_LV). The vec entries' configurations are lanes 16 with vec 1, 4, 16:
// Ew1 and Ew4 are L16V1 and L16V4 themselves (one type, so one set of shared rows each pair).
struct L16V1_fields : lanes16 { static const int VEC = 1; };
struct L16V2_fields : lanes16 { static const int VEC = 2; };
struct L16V4_fields : lanes16 { static const int VEC = 4; };
struct L16V8_fields : lanes16 { static const int VEC = 8; };
struct L16V16_fields : lanes16 { static const int VEC = 16; };
struct L64V1_fields : lanes64 { static const int VEC = 1; };
struct L64V2_fields : lanes64 { static const int VEC = 2; };
struct L64V4_fields : lanes64 { static const int VEC = 4; };
struct L64V8_fields : lanes64 { static const int VEC = 8; };
typedef ew_traits<L16V1_fields> L16V1;
typedef ew_traits<L16V2_fields> L16V2;
typedef ew_traits<L16V4_fields> L16V4;
typedef ew_traits<L16V8_fields> L16V8;
typedef ew_traits<L64V1_fields> L64V1;
typedef ew_traits<L64V2_fields> L64V2;
typedef ew_traits<L64V4_fields> L64V4;
typedef ew_traits<L64V8_fields> L64V8;
typedef L16V1 Ew1;
typedef L16V4 Ew4;
typedef ew_traits<L16V16_fields> Ew16;

// The shared rows of E (one set per configuration type, kept between calls), poisoned: every element NaN.
template <class E>
static EwRows<E> &rows() {
  static EwRows<E> r;
  for (int i = 0; i < E::N_BUF; i++) {
    r.r0[i] = std::nanf("");
  }
  return r;
}

// Calls BODY with E bound to the configuration of vec and R to its (poisoned) shared rows; returns -1
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

#define EW_LV_CASE(LN, VN, BODY) \
  if (lanes == LN && vec == VN) {  \
    typedef L##LN##V##VN E;        \
    EwRows<E> &R = rows<E>();    \
    BODY;                          \
    return 0;                      \
  }

// As EW_DISPATCH over (lanes, vec) in {16, 64} x {1, 2, 4, 8}; -1 for another pair.
#define EW_DISPATCH_LV(BODY)   \
  EW_LV_CASE(16, 1, BODY)      \
  EW_LV_CASE(16, 2, BODY)      \
  EW_LV_CASE(16, 4, BODY)      \
  EW_LV_CASE(16, 8, BODY)      \
  EW_LV_CASE(64, 1, BODY)      \
  EW_LV_CASE(64, 2, BODY)      \
  EW_LV_CASE(64, 4, BODY)      \
  EW_LV_CASE(64, 8, BODY)      \
  return -1;

// The sum of squares each fused producing pass carries (kind 0: load, 1: GLU act * u, 2: residual
// add), fed so that the produced row equals x (load: x itself; GLU: relu2(1) * x; residual: x + 0),
// for `rows` rows of n; ss[r] is the pass's sum, amax[r] the load pass's absmax of the same row.
template <class E>
static void fused_sumsq(int kind, const f32 *x, int n_rows, int n, f32 *ss, f32 *amax, f32 *h,
                        EwRows<E> &r) {
  enum { U = EwFused<E>::U };
  for (int k = 0; k < n_rows; k++) {
    const f32 *xk = x + (long)k * n;
    f32 s = 0.0f, m = 0.0f;
    if (kind == 0) {
      ew_load_pass<E, U, f32>(xk, 0L, 1.0f, 1.0f, n, r.r0, true, false, s, m);
      f32 s2;
      ew_load_pass<E, E::VEC, f32>(xk, 0L, 1.0f, 1.0f, n, r.r0, false, true, s2, m);
    } else if (kind == 1) {
      for (int i = 0; i < n; i++) r.r0[i] = 1.0f;
      f32 unused;
      ew_glu_pass<E, U, kActRelu2, f32>(xk, 0L, 1.0f, 1.0f, n, r.r0, false, h, 0L, true, false, s, unused);
    } else {
      for (int i = 0; i < n; i++) {
        r.r0[i] = 0.0f;
        h[i] = xk[i];
      }
      ew_residual_pass<E, U>(h, 0L, n, r.r0, true, s);
    }
    ss[k] = s;
    amax[k] = m;
  }
}

template <class E, int D>
static void rope_f32(const f32 *y, int n_tok, int n_heads, int pos0, const f32 *cos_tab, const f32 *sin_tab,
                     f32 *out, EwRows<E> &r) {
  f32 ones[E::MAX_TOK];
  for (int t = 0; t < E::MAX_TOK; t++) ones[t] = 1.0f;
  dequant_rope_tokens<E, D>(y, ones, 1.0f, n_tok, n_heads, pos0, cos_tab, sin_tab, out, r);
}

// The engine's operator budget (EwBudget) for (lanes, vec) of the LV grid, act (0 relu2, 1 silu) and
// the linear outputs' type (in_int: int32 accumulators, else fp32): out = fmul, fadd, fsub, fdiv, fsqrt.
template <class E, int ACT, class IN>
static void budget1(int *out) {
  typedef EwBudget<E, ACT, IN> B;
  out[0] = B::FMUL, out[1] = B::FADD, out[2] = B::FSUB, out[3] = B::FDIV, out[4] = B::FSQRT;
}

template <class E>
static void budget(int act, int in_int, int *out) {
  if (act == kActSilu) {
    if (in_int) budget1<E, kActSilu, int32_t>(out);
    else budget1<E, kActSilu, f32>(out);
  } else {
    if (in_int) budget1<E, kActRelu2, int32_t>(out);
    else budget1<E, kActRelu2, f32>(out);
  }
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

// (lanes, vec) variants of the stages and the passes' sums of squares (see EW_DISPATCH_LV).
int tb_lv_fused_sumsq(int lanes, int vec, int kind, const f32 *x, int n_rows, int n, f32 *ss, f32 *amax,
                      f32 *h) {
  EW_DISPATCH_LV((fused_sumsq<E>(kind, x, n_rows, n, ss, amax, h, R)))
}

int tb_lv_norm_quantize(int lanes, int vec, const f32 *x, const f32 *g, int norm, f32 eps, int n_tok, int n,
                        int8_t *q, f32 *qs) {
  EW_DISPATCH_LV((norm_quantize_tokens<E>(x, g, norm != 0, eps, n_tok, n, q, qs, R)))
}

int tb_lv_glu(int lanes, int vec, const f32 *g, const f32 *u, int sub_norm, const f32 *sub_g, f32 eps,
              int n_tok, int n, int8_t *q, f32 *qs_out, f32 *f_tap) {
  f32 ones[16];
  for (int t = 0; t < 16; t++) ones[t] = 1.0f;
  EW_DISPATCH_LV((glu_norm_quantize_tokens<E, kActSilu, f32>(g, u, ones, 1.0f, 1.0f, sub_norm != 0, sub_g,
                                                             eps, n_tok, n, q, qs_out, true, f_tap, R)))
}

int tb_lv_residual(int lanes, int vec, const f32 *y, f32 *h, int next_norm, const f32 *g, f32 eps, int n_tok,
                   int n, int8_t *q, f32 *qs_out) {
  f32 ones[16];
  for (int t = 0; t < 16; t++) ones[t] = 1.0f;
  EW_DISPATCH_LV((residual_norm_quantize_tokens<E, f32>(y, ones, 1.0f, h, next_norm != 0, g, eps, n_tok, n, q,
                                                        qs_out, R)))
}

// EwBudget for (lanes, vec), act and in_int (see budget above).
int tb_ew_budget(int lanes, int vec, int act, int in_int, int *out) {
  EW_DISPATCH_LV((budget<E>(act, in_int, out), (void)R))
}

}  // extern "C"

// --- C-simulation loop trace (numerics_lanes.h ew_trace) of single stage calls, VEC 1, 2, 4, 8 with LANES
// max(16, 8 * VEC) (U = VEC), and LANES 16 with VEC 4, 8 (U = 2 < VEC), fp32 linear outputs (scales 1),
// ReLU^2 ---
struct L32V4_fields : lanes32 { static const int VEC = 4; };
typedef ew_traits<L32V4_fields> L32V4;

// stage: EwMode (0 norm, 1 rope, 2 glu, 3 residual); a: x / linear output / gate, b: up, h: residual
// stream (in place), g: gamma, cos/sin: tables of head_dim d (rope: n = heads * d), out: rope's rows.
template <class E, int D>
static void trace_stage(int stage, bool norm, const f32 *a, const f32 *b, f32 *h, const f32 *g, const f32 *cos_t,
                        const f32 *sin_t, int n_tok, int n, int8_t *q, f32 *qs_out, f32 *out, f32 *tap,
                        EwRows<E> &r) {
  f32 ones[E::MAX_TOK];
  for (int t = 0; t < E::MAX_TOK; t++) ones[t] = 1.0f;
  if (stage == kEwNorm) norm_quantize_tokens<E>(a, g, norm, 1e-5f, n_tok, n, q, qs_out, r);
  if (stage == kEwRope) dequant_rope_tokens<E, D>(a, ones, 1.0f, n_tok, n / D, 3, cos_t, sin_t, out, r);
  if (stage == kEwGlu) {
    glu_norm_quantize_tokens<E, kActRelu2, f32>(a, b, ones, 1.0f, 1.0f, norm, g, 1e-5f, n_tok, n, q, qs_out,
                                                true, tap, r);
  }
  if (stage == kEwResidual) {
    residual_norm_quantize_tokens<E, f32>(a, ones, 1.0f, h, norm, g, 1e-5f, n_tok, n, q, qs_out, r);
  }
}

#define EW_TRACE_CASE(LN, VN, D)                                                                     \
  if (lanes == LN && vec == VN && d == D) {                                                         \
    trace_stage<L##LN##V##VN, D>(stage, norm != 0, a, b, h, g, cos_t, sin_t, n_tok, n, q, qs_out, out, \
                                 tap, rows<L##LN##V##VN>());                                          \
    return 0;                                                                                        \
  }
#define EW_TRACE_D(D)       \
  EW_TRACE_CASE(16, 1, D)   \
  EW_TRACE_CASE(16, 2, D)   \
  EW_TRACE_CASE(32, 4, D)   \
  EW_TRACE_CASE(64, 8, D)   \
  EW_TRACE_CASE(16, 4, D)   \
  EW_TRACE_CASE(16, 8, D)

extern "C" {

// One stage call for (lanes, vec) in {(16, 1), (16, 2), (32, 4), (64, 8), (16, 4), (16, 8)} and head_dim
// d in {6, 64} (rope's; the other stages ignore it); -1 otherwise. The trace is not reset: tb_ew_trace.
int tb_trace_stage(int lanes, int vec, int d, int stage, int norm, const f32 *a, const f32 *b, f32 *h, const f32 *g,
                   const f32 *cos_t, const f32 *sin_t, int n_tok, int n, int8_t *q, f32 *qs_out, f32 *out,
                   f32 *tap) {
  EW_TRACE_D(6)
  EW_TRACE_D(64)
  return -1;
}

// t = (iterations, loop entries, lane-tree iterations) of the element-wise loops since the last reset.
void tb_ew_trace(long *t, int reset) {
  t[0] = ew_trace().iters;
  t[1] = ew_trace().loops;
  t[2] = ew_trace().tree;
  if (reset) ew_trace() = ew_trace_t{0, 0, 0};
}

}  // extern "C"

// --- GLU_VEC < VEC: the GLU's act(g) * u pass narrower than the other passes. (lanes, vec, glu) in
// {(16, 4, 1), (16, 4, 2), (32, 4, 2), (64, 8, 2), (64, 8, 4)}: GU = LaneUnits<LANES, GLU_VEC> is
// GLU_VEC in each, below U = 2 (LANES 16) or at U's half or quarter (LANES 32, 64) ---
struct L16V4G1_fields : L16V4_fields { static const int GLU_VEC = 1; };
struct L16V4G2_fields : L16V4_fields { static const int GLU_VEC = 2; };
struct L32V4G2_fields : L32V4_fields { static const int GLU_VEC = 2; };
struct L64V8G2_fields : L64V8_fields { static const int GLU_VEC = 2; };
struct L64V8G4_fields : L64V8_fields { static const int GLU_VEC = 4; };
typedef ew_traits<L16V4G1_fields> L16V4G1;
typedef ew_traits<L16V4G2_fields> L16V4G2;
typedef ew_traits<L32V4G2_fields> L32V4G2;
typedef ew_traits<L64V8G2_fields> L64V8G2;
typedef ew_traits<L64V8G4_fields> L64V8G4;

#define EW_G_CASE(LN, VN, GN, BODY)             \
  if (lanes == LN && vec == VN && glu == GN) {  \
    typedef L##LN##V##VN##G##GN E;              \
    EwRows<E> &R = rows<E>();                   \
    BODY;                                       \
    return 0;                                   \
  }
#define EW_DISPATCH_G(BODY)    \
  EW_G_CASE(16, 4, 1, BODY)    \
  EW_G_CASE(16, 4, 2, BODY)    \
  EW_G_CASE(32, 4, 2, BODY)    \
  EW_G_CASE(64, 8, 2, BODY)    \
  EW_G_CASE(64, 8, 4, BODY)    \
  return -1;

template <class E>
static void glu_f32(int act, const f32 *g, const f32 *u, int sub_norm, const f32 *sub_g, f32 eps, int n_tok,
                    int n, int8_t *q, f32 *qs_out, f32 *f_tap, EwRows<E> &r) {
  f32 ones[E::MAX_TOK];
  for (int t = 0; t < E::MAX_TOK; t++) ones[t] = 1.0f;
  if (act == kActSilu) {
    glu_norm_quantize_tokens<E, kActSilu, f32>(g, u, ones, 1.0f, 1.0f, sub_norm != 0, sub_g, eps, n_tok, n, q,
                                               qs_out, true, f_tap, r);
  } else {
    glu_norm_quantize_tokens<E, kActRelu2, f32>(g, u, ones, 1.0f, 1.0f, sub_norm != 0, sub_g, eps, n_tok, n,
                                                q, qs_out, true, f_tap, r);
  }
}

extern "C" {

// f = act(g) * u (fp32 rows, scales 1; act 0 relu2, 1 silu), SubLN when sub_norm, quantize; tap: f.
// The ew_trace counts its loops like any stage (tests reset it with tb_ew_trace).
int tb_g_glu(int lanes, int vec, int glu, int act, const f32 *g, const f32 *u, int sub_norm, const f32 *sub_g,
             f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out, f32 *f_tap) {
  EW_DISPATCH_G((glu_f32<E>(act, g, u, sub_norm, sub_g, eps, n_tok, n, q, qs_out, f_tap, R)))
}

// EwBudget for (lanes, vec, glu), act and in_int (as tb_ew_budget).
int tb_g_budget(int lanes, int vec, int glu, int act, int in_int, int *out) {
  EW_DISPATCH_G((budget<E>(act, in_int, out), (void)R))
}

}  // extern "C"
