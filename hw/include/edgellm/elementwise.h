// Fused streaming element-wise stages around the ternary linears (numerics contract: numerics.h).
//
// Before a linear:  x -> RMSNorm(g) -> per-token absmax int8 (q, qs)           norm_quantize_tokens
// After a linear (input: exact int32 accumulators of tlmm_matmul_int, dequantized here with the
// contract's dequantize; or fp32 outputs of tlmm_matmul, taken as they are):
//   dequantize + RoPE per head (positions pos0 + t, host tables)              dequant_rope_tokens
//   dequantize gate/up + act(g) * u (ReLU^2 or SiLU) + SubLN + quantize         glu_norm_quantize_tokens
//   dequantize + residual add (+ the next block's RMSNorm + quantize)           residual_norm_quantize_tokens
// Each stage works token by token on on-chip rows: the intermediate vectors never go back to DDR.
// Every float operation is a numerics.h function in the contract's order, so each stage equals the
// golden model (models/golden.py) bit for bit.
//
// One engine. Only one stage runs at a time, so all of them are jobs of ONE non-inlined function,
// ew_engine<E, ACT, HEAD_DIM, IN>(mode, ...): one hardware module with one set of fp32 units. Per
// token it runs the producing pass(es) of the mode, then the one shared norm + quantize tail:
//   kEwNorm      load x (+ sum of squares / absmax)                          -> tail
//   kEwNormH     the same with x = h (the residual stream's own argument)    -> tail
//   kEwRope      load a linear output, this position's tables, rope -> DDR     (no tail)
//   kEwGlu       load g, act(g) * u (+ sum of squares / absmax)              -> tail
//   kEwResidual  load a linear output, h += it (+ sum of squares)            -> tail when norm
//   tail         [norm: r = 1 / sqrt(ss / n + eps), scale + absmax pass] qs = 127 / max(absmax, 1e-5),
//                round + clamp + store q
// The decoder layer calls the engine at one call site for all its jobs, and the top's final norm
// goes through the same call (decoder_layer.h vector_job, top_engine.h run_desc); the stage
// functions at the end of this file are one-job wrappers (testbenches). The passes and the tail are
// inlined into the engine, whose ALLOCATION pragmas limit each fp32 operator type to the most one
// pass needs (EwBudget), so the tool shares the units across passes and modes instead of building
// each pass its own. Budget with GLU_VEC = VEC (V = VEC, U = LaneUnits<LANES, VEC>; fp32 linear
// outputs, as in the layer; int32 accumulators add a dequantize's fmul and fdiv per loaded element;
// a narrower GLU_VEC shrinks SiLU's counts, see EwBudget):
//   ReLU^2:  fmul max(2V, 3U)   fadd max(V, 2U)   fsub V    fdiv 1   fsqrt 1
//   SiLU:    fmul max(11V, 12U) fadd max(8V, 9U)  fsub 3V   fdiv V   fsqrt 1
// (U = V or U <= V / 2: with U = V ReLU^2 is 3V / 2V / V / 1 / 1 and SiLU 12V / 9V / 3V / V / 1; with
// U < V, 2V / V / V / 1 / 1 and 11V / 8V / 3V / V / 1.) The widest pass sets each count: ReLU^2 the
// scale / rope / act * u passes (2 fmul per element; 3 with the fused sum of squares at U = V), SiLU
// the act * u pass (exp_f's 10 fmul + a * u, 8 fadd, 3 fsub, the division). Comparisons and
// conversions are not limited.
//
// Shared rows. The stages run one after another, never concurrently, so they share one set of rows,
// EwRows<E>: one fp32 row r0 of E::N_BUF elements, declared ONCE by the caller with EDGELLM_EW_ROWS
// (decoder_layer.h decoder_layer; top.h edgellm_top_impl: one row for every layer and the final
// norm): EDGELLM_ACT_BIND ram_t2p (RoPE reads an element and its partner per bank per cycle) and
// ARRAY_PARTITION cyclic factor E::PART; passed by reference to every stage. The passes are fused,
// so every stage works in r0 alone (a row is written before it is read within a token; nothing
// carries over between tokens or stages):
//   stage                    r0
//   norm_quantize            x, then rmsnorm(x) in place
//   dequant_rope             dequantize(acc) (RoPE reads it on the way out)
//   glu_norm_quantize        g, then f = act(g) * u in place (u read from DDR), then rmsnorm(f, sub_g)
//   residual_norm_quantize   dequantize(acc), then the new h in place, then rmsnorm(h, g)
// q goes straight to DDR from the round pass; u, h and gammas are read from DDR in their pass.
// RMSNorm gammas are not buffered: the scale pass reads g straight from its DDR pointer, VEC
// elements per cycle (y = (x * r) * g); a disabled norm reads no gamma.
//
// Fused passes. A normed row costs three passes: produce (load / act * u / residual add) with the
// sum of squares carried in it, scale with the absmax carried in it, round + clamp + store q to DDR;
// an unnormed one two: produce with the absmax carried, round + store. The sum of squares keeps the
// contract's order exactly: the producing loop takes U = LaneUnits<LANES, VEC> consecutive elements
// per cycle in index order and feeds lane i % LANES from 0.0f through a delay line of accumulators
// (numerics_lanes.h LaneRing: fixed register positions, a lane's adds LANES / U >= kAddLatency iterations
// apart, the loop padded to whole rotations), then lane_tree's halving tree -- numerics_lanes.h lane_sum's
// order (RowFuse), at II = 1.
// The absmax is VEC lane maxima (exact in any order). Producing loops that carry no sum of squares
// run VEC wide; when U < VEC a normed stage's producing loop runs U wide (U <= VEC: it is the sum of
// squares' own rate, so fusing never costs a cycle); when U = VEC one loop serves both cases.
//
// Width: every pass reads or writes DDR (linear outputs, h, u, gammas and RoPE tables in; q, h, out,
// taps out), on (pointer, element offset) pairs: plain arrays, or the top's data / act beats (maxi.h,
// never cast). Each moves ONE whole data beat of its DDR operand per iteration (X = the beat's fields:
// 4 f32 or 16 int8 at 128 bits; plain arrays as 128-bit beats; X unrolled lanes guarded by < n) at
// II = X / width (1 when the width reaches X): a port moves a beat per cycle, the access is
// unconditional at a base plus the loop index (burst inference), and a row of whole beats costs n /
// width cycles (n / X when the width exceeds the beat: the data port's rate, which the performance
// model charges). Rows are partitioned cyclic by VEC (PART). Element-wise results do not depend on VEC.
// Below, c(m) etc. count elements per cycle up to the port's beat.
//
// Cycles per token (c(m) = ceil(m / VEC), u(m) = ceil(m / U), U = LaneUnits<LANES, VEC> = min(VEC,
// max(1, LANES / kAddLatency)); cg(m) and ug(m) the same with GLU_VEC for the act*u pass;
// T = LANES - 1 + log2(LANES) * kAddLatency, the lane tree after a sum of squares; pipeline fill,
// DDR latency and the scalar r / qs divisions left out). DDR passes
// move at most the m_axi width per cycle (128 bits: 4 fp32 or 16 int8), which the performance model
// applies; [ddr: ...] names what a pass reads or writes in DDR (on-chip otherwise):
//   norm_quantize (norm)     load+sumsq u(n) [ddr: x] + T + scale+absmax c(n) [ddr: g]
//                            + round+store c(n) [ddr: q]                                  3 passes
//   norm_quantize (no norm)  load+absmax c(n) [ddr: x] + round+store c(n) [ddr: q]      2 passes
//   dequant_rope             load c(n) [ddr: acc] + tables c(HEAD_DIM/2) [ddr: cos, sin]
//                            + rope/out c(n) [ddr: out]   (n = heads*HEAD_DIM)            3 passes
//   glu_norm_quantize        load g c(n) [ddr: g] + act*u+sumsq ug(n) [ddr: u; f_tap when tapped] + T
//     (sub_norm)             + scale+absmax c(n) [ddr: sub_g] + round+store c(n) [ddr: q] 4 passes
//   glu_norm_quantize        load g c(n) [ddr: g] + act*u+absmax cg(n) [ddr: u; f_tap when tapped]
//     (no sub_norm)          + round+store c(n) [ddr: q]                                  3 passes
//   residual_norm_quantize   load c(n) [ddr: acc] + add+sumsq u(n) [ddr: h read+write] + T
//     (next_norm)            + scale+absmax c(n) [ddr: g] + round+store c(n) [ddr: q]     4 passes
//   residual_norm_quantize   load c(n) [ddr: acc] + add c(n) [ddr: h read+write]         2 passes
//     (no next_norm)
// The engine keeps these passes and counts (one module instead of four changes none; its mode
// branches select passes, they add none).
// Every pass reads or writes DDR: the fused passes replaced the on-chip-only sum-of-squares, absmax
// and round passes. Before the fusion a normed norm_quantize was 6 passes (load, sumsq, scale,
// absmax, round, store), the normed GLU 8 and the normed residual 7.
#pragma once

#include <cstdint>

#include "edgellm/ew_fused.h"
#include "edgellm/ew_passes.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

// The engine's configuration by name (layer_traits::ew builds it from a layer's fields; testbenches name
// theirs), as tlmm_config.h / layer_config.h:
//   struct ew_cfg : edgellm::ew_config_base { static const int N_MAX = 8192, LANES = 16, VEC = 4; };
//   typedef edgellm::ew_traits<ew_cfg> ew;
// Required fields (no default: a configuration that leaves one out does not compile): N_MAX, the longest
// row (floats per on-chip buffer); LANES, the RMSNorm lanes (NumericsPlan.norm_lanes). Optional fields,
// defaults below: MAX_TOK, tokens per call (trip counts only); VEC, elements per cycle of every element
// pass but the GLU's act(g) * u; GLU_VEC (<= VEC; 0: VEC), elements per cycle of that one. SiLU's
// act(g) * u needs 11 fmul, 11 fadd/fsub and a divider per element (EwBudget), every other pass at most 3
// multiplies and 2 adds, so a narrower GLU pass lets the cheap passes run VEC wide without VEC copies of
// exp_f.
struct ew_config_base {
  static const int MAX_TOK = 128;
  static const int VEC = 1;
  static const int GLU_VEC = 0;
};

// A named element-wise configuration P (ew_config_base's fields by name) with its derived values (what
// the stages read as E::...).
template <class P>
struct ew_traits : P {
  static constexpr int N_MAX = P::N_MAX;
  static constexpr int LANES = P::LANES;
  static constexpr int MAX_TOK = P::MAX_TOK;
  static constexpr int VEC = P::VEC;
  static constexpr int GLU_VEC = P::GLU_VEC ? P::GLU_VEC : P::VEC;
  static_assert(VEC >= 1 && VEC <= 64 && (VEC & (VEC - 1)) == 0, "VEC: a power of two in 1..64");
  static_assert(GLU_VEC >= 1 && GLU_VEC <= VEC && (GLU_VEC & (GLU_VEC - 1)) == 0,
                "GLU_VEC: a power of two in 1..VEC");
  static_assert(LANES >= 1 && (LANES & (LANES - 1)) == 0, "LANES: a power of two");
  static constexpr int PART = VEC;  // banks of the row buffers (lane_sum reads <= VEC per cycle)
  static constexpr int N_BUF = (N_MAX + PART - 1) / PART * PART;  // N_MAX rounded up to whole banks
};

// The rows every stage works on (see the header), declared once by the caller with EDGELLM_EW_ROWS
// and passed by reference to the stages (which run one at a time).
template <class E>
struct EwRows {
  f32 r0[E::N_BUF];  // the row every stage works in (x / linear output / g -> f / new h, normed in place)
};

// Declares the stages' shared row `rows` (EwRows<E>; E: an ew_traits type name, not a dependent
// `typename C::ew`: typedef it first): true dual port (RoPE reads two addresses per bank per cycle),
// bound to EDGELLM_ACT_STORAGE, cyclic by E::PART. Once per call site.
#define EDGELLM_EW_ROWS(E, rows)                                                                  \
  ::edgellm::EwRows<E> rows;                                                                      \
  EDGELLM_ACT_BIND(rows.r0, ram_t2p)                                                              \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = rows.r0 type = cyclic factor = E::PART)

// The two widths of a producing pass: U (LaneUnits<LANES, VEC>: it carries the sum of squares) and
// VEC. When U = VEC the stages instantiate one loop (the `U == VEC ||` test folds to true). The GLU's
// act(g) * u pass has its own pair from GLU_VEC: GU = LaneUnits<LANES, GLU_VEC> (<= U) and GV.
template <class E>
struct EwFused {
  enum { U = LaneUnits<E::LANES, E::VEC>::value, VEC = E::VEC, ONE = U == VEC };
  enum { GU = LaneUnits<E::LANES, E::GLU_VEC>::value, GV = E::GLU_VEC, GONE = GU == GV };
};


// After a producing pass left the row in `row` (with ss when norm, amax when not): when norm, the
// RMSNorm scale pass in place with the absmax fused (r from ss; gamma g read from DDR); then round +
// clamp + store q straight to DDR. Returns qs. The engine's one shared norm + quantize tail.
template <class E, class PD, class PQ>
f32 norm_quantize_tail(f32 *row, const PD *g, long g_off, bool norm, f32 ss, f32 amax, f32 eps, int n, PQ *q,
                       long q_off) {
#pragma HLS INLINE
  if (norm) amax = rmsnorm_scale<E::VEC>(row, g, g_off, rms_inv(ss, n, eps), n, row);
  const f32 qs = quant_scale(amax);
  quantize_store<E::VEC>(row, qs, n, q, q_off);
  return qs;
}

constexpr int ew_max(int a, int b) { return a > b ? a : b; }

// fp32 operators per element of the gate activation: relu2 r * r; silu x / (1 + exp_f(-x)) (exp_f:
// x * log2e, rint's + and -, the two k * ln2 products and subtractions, 6 Horner steps, p * 2^k).
template <int ACT>
struct EwActOps {
  enum { FMUL = ACT == kActSilu ? 10 : 1, FADD = ACT == kActSilu ? 8 : 0, FSUB = ACT == kActSilu ? 3 : 0,
         FDIV = ACT == kActSilu ? 1 : 0 };
};
template <class IN>
struct EwDequantOps {  // linear_value: int32 (f32)acc / (qs * ws): one fmul, one fdiv; fp32: none
  enum { N = 0 };
};
template <>
struct EwDequantOps<int32_t> {
  enum { N = 1 };
};

// The engine's operator budget: per operator type, the most any one of its passes needs to run at
// II = 1 (width x operators per element; V = VEC, U = LaneUnits<LANES, VEC>, GV = GLU_VEC, GU =
// LaneUnits<LANES, GLU_VEC>, D = 1 for int32 linear outputs, 0 for fp32 ones, as in the layer):
//   pass                  width  fmul          fadd         fsub        fdiv
//   load                  V      D             -            -           D
//   load + sumsq          U      D + 1         1            -           D
//   act * u               GV     a + 1 + D     a_add        a_sub       a_div + D
//   act * u + sumsq       GU     a + 2 + D     a_add + 1    a_sub       a_div + D
//   residual add          V      -             1            -           -
//   residual add + sumsq  U      1             2            -           -
//   scale (x * r) * g     V      2             -            -           -
//   round rint(x * qs)    V      1             1            1           -
//   rope                  V      2             1            1           -
//   scalars (tree, r, qs) 1      -             1            -           1          (+ 1 fsqrt)
// with (a, a_add, a_sub, a_div) = (1, 0, 0, 0) for ReLU^2 and (10, 8, 3, 1) for SiLU. For the layer
// (D = 0): ReLU^2 fmul max(2V, 3U), fadd max(V, 2U), fsub V, fdiv 1, fsqrt 1; SiLU fmul max(11V, 12U),
// fadd max(8V, 9U), fsub 3V, fdiv V, fsqrt 1 (U = V or U <= V / 2, so max(2V, 3U) is 3V when U = V
// and 2V otherwise, and likewise for the others). Comparisons (absmax, ReLU, clamp, exp's range) and
// the conversions are not limited. With GLU_VEC < VEC (GV < V) the act * u rows shrink and the
// V-wide passes set the floor: SiLU fmul max(11GV, 12GU, 2V, U), fadd max(8GV, 9GU, V, 2U), fsub
// max(3GV, V), fdiv GV; ReLU^2 fmul max(2V, 3GU, U).
template <class E, int ACT, class IN>
struct EwBudget {
  typedef EwActOps<ACT> A;
  enum { V = E::VEC, U = LaneUnits<E::LANES, E::VEC>::value, D = EwDequantOps<IN>::N };
  enum { GV = E::GLU_VEC, GU = LaneUnits<E::LANES, E::GLU_VEC>::value };
  enum {
    FMUL = ew_max(ew_max(GV * (A::FMUL + 1 + D), GU * (A::FMUL + 2 + D)), ew_max(2 * V, U * (D + 1))),
    FADD = ew_max(ew_max(ew_max(GV * A::FADD, V), GU * (A::FADD + 1)), ew_max(2 * U, 1)),
    FSUB = ew_max(ew_max(GV * A::FSUB, V), 1),
    FDIV = ew_max(ew_max(GV * (A::FDIV + D), V * D), 1),
    FSQRT = 1
  };
};

// What the element-wise engine does with a job (one stage call): the producing pass.
enum EwMode {
  kEwNorm = 0,      // load x = a (+ sum of squares / absmax), then the tail: rmsnorm + quantize (or quantize)
  kEwRope = 1,      // load a linear output, this position's RoPE tables, rope on the way out to DDR
  kEwGlu = 2,       // load the gate, act(g) * u (+ sum of squares / absmax), then the tail
  kEwResidual = 3,  // load a linear output, h += it (+ sum of squares), then (norm) the tail
  kEwNormH = 4,     // kEwNorm on the residual stream: x = h (read through h's own argument, not a)
};

// THE element-wise hardware: one module per (E, ACT, HEAD_DIM, IN) that every stage goes through (the
// decoder layer and the top reach it through one call site: decoder_layer.h vector_job). A
// token loop; per token the producing pass(es) of `mode`, then the one shared norm + quantize tail
// (scale + absmax, r and qs divisions, round + store), so the stages' passes, cycles and float
// operations are exactly those of the stage functions below. Operators are limited to EwBudget (the
// most one pass needs), so the tool shares them across the passes of every mode instead of
// building each pass its own.
// Operands (unused ones are ignored): a: x (norm), the linear output (rope, residual) or the gate
// (glu), with per-token scale qs[t] (not read for norm) and weight scale sa; b, sb: the up
// projection (glu); norm: RMSNorm / SubLN / next norm with gamma g, eps; n: row length (rope:
// heads * HEAD_DIM); pos0, cos_tab, sin_tab: RoPE; h: the residual stream (in place); out: rope's
// output rows; q, qs_out: the quantized rows and their scales; tap_en, tap: f = act(g) * u.
// Every operand is a (pointer, element offset) pair, the offset in `at` (EwAt): plain arrays (PA = IN,
// PF = f32, PQ = int8_t, PD = f32; testbenches, offsets 0) or the top's beats (act: a, b, qs, out, q,
// qs_out; data: g, the tables, h, tap).
struct EwAt {
  long a, b, qs, g, cos, sin, h, out, q, qs_out, tap;  // element offsets of each operand
};

template <class E, int ACT, int HEAD_DIM, class IN, class PA, class PF, class PQ, class PD>
void ew_engine(int mode, const PA *a, const PA *b, const PF *qs, f32 sa, f32 sb, bool norm, const PD *g,
               f32 eps, int n_tok, int n, int pos0, const PD *cos_tab, const PD *sin_tab, PD *h, PF *out,
               PQ *q, PF *qs_out, bool tap_en, PD *tap, const EwAt &at, EwRows<E> &rows) {
#pragma HLS INLINE off
  typedef EwBudget<E, ACT, IN> B;
  typedef EwFused<E> F;
  enum {
    VEC = E::VEC, kMaxTok = E::MAX_TOK, H2 = HEAD_DIM / 2, TAB_PART = VEC < H2 ? VEC : H2,
    kFmul = B::FMUL, kFadd = B::FADD, kFsub = B::FSUB, kFdiv = B::FDIV,
    kFsqrt = B::FSQRT
  };
#pragma HLS ALLOCATION operation instances = fmul limit = kFmul
#pragma HLS ALLOCATION operation instances = fadd limit = kFadd
#pragma HLS ALLOCATION operation instances = fsub limit = kFsub
#pragma HLS ALLOCATION operation instances = fdiv limit = kFdiv
#pragma HLS ALLOCATION operation instances = fsqrt limit = kFsqrt
  static_assert(HEAD_DIM >= 2 && HEAD_DIM % 2 == 0, "HEAD_DIM: even (rotate-half RoPE)");
  f32 cb[H2], sb_[H2];  // rope: this position's table rows (HEAD_DIM / 2 each)
#pragma HLS ARRAY_PARTITION variable = cb type = cyclic factor = TAB_PART
#pragma HLS ARRAY_PARTITION variable = sb_ type = cyclic factor = TAB_PART
  const bool tail = mode == kEwNorm || mode == kEwNormH || mode == kEwGlu || (mode == kEwResidual && norm);
ew_tok:
  for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxTok
    const long o = (long)t * n;
    f32 ss = 0.0f, amax = 0.0f;
    if (mode == kEwNormH) {  // x = h -> r0: its own code path on h's argument (never a pointer select)
      if (F::ONE || norm) {
        ew_load_pass<E, F::U, f32>(h, at.h + o, 1.0f, 1.0f, n, rows.r0, norm, !norm, ss, amax);
      } else {
        ew_load_pass<E, F::VEC, f32>(h, at.h + o, 1.0f, 1.0f, n, rows.r0, false, true, ss, amax);
      }
    } else if (mode == kEwNorm) {  // x = a -> r0 (+ sum of squares, or absmax)
      if (F::ONE || norm) {
        ew_load_pass<E, F::U, IN>(a, at.a + o, 1.0f, 1.0f, n, rows.r0, norm, !norm, ss, amax);
      } else {
        ew_load_pass<E, F::VEC, IN>(a, at.a + o, 1.0f, 1.0f, n, rows.r0, false, true, ss, amax);
      }
    } else {  // the linear output -> r0
      const f32 qt = mget<f32>(qs, at.qs + t);
      ew_load_pass<E, F::VEC, IN>(a, at.a + o, qt, sa, n, rows.r0, false, false, ss, amax);
      if (mode == kEwRope) {  // this position's tables, then rope on the way out
        const long tab = (long)(pos0 + t) * H2;  // the row of each table: a beat per iteration, cos then sin
        ew_row_in<H2, VEC>(cos_tab, at.cos + tab, H2, cb);
        ew_row_in<H2, VEC>(sin_tab, at.sin + tab, H2, sb_);
        rope_row<HEAD_DIM, VEC>(rows.r0, cb, sb_, n, out, at.out + o);
      } else if (mode == kEwGlu) {  // f = act(g) * u in place (+ sum of squares, or absmax), GLU_VEC wide
        if (F::GONE || norm) {
          ew_glu_pass<E, F::GU, ACT, IN>(b, at.b + o, qt, sb, n, rows.r0, tap_en, tap, at.tap + o, norm, !norm,
                                         ss, amax);
        } else {
          ew_glu_pass<E, F::GV, ACT, IN>(b, at.b + o, qt, sb, n, rows.r0, tap_en, tap, at.tap + o, false, true,
                                         ss, amax);
        }
      } else {  // h += row, the new h in r0 (+ sum of squares)
        if (F::ONE || norm) {
          ew_residual_pass<E, F::U>(h, at.h + o, n, rows.r0, norm, ss);
        } else {
          ew_residual_pass<E, F::VEC>(h, at.h + o, n, rows.r0, false, ss);
        }
      }
    }
    if (tail) mput<f32>(qs_out, at.qs_out + t, norm_quantize_tail<E>(rows.r0, g, at.g, norm, ss, amax, eps, n, q,
                                                                      at.q + o));
  }
}

// The stages, each one job of the engine (testbenches call them; the layer calls the engine).

// (a) q[t], qs[t] = quantize(rmsnorm(x[t], g)) (norm = false: quantize(x[t])), x: [n_tok][n] fp32.
// With norm = true and g = the SubLN gamma this is also the SubLN + quantize before o_proj.
// Row: x -> r0 (+ sum of squares, or absmax), rmsnorm in place in r0 (+ absmax), q -> DDR.
template <class E, int ACT = kActRelu2, int HEAD_DIM = 2>
void norm_quantize_tokens(const f32 *x, const f32 *g, bool norm, f32 eps, int n_tok, int n, int8_t *q,
                          f32 *qs, EwRows<E> &rows) {
  ew_engine<E, ACT, HEAD_DIM, f32, f32, f32, int8_t, f32>(kEwNorm, x, x, qs, 1.0f, 1.0f, norm, g, eps, n_tok, n,
                                                          0, g, g, qs, qs, q, qs, false, qs, EwAt(), rows);
}

// (b1) out[t] = rope(dequantize(acc[t])) for each of n_heads heads of HEAD_DIM; tables are
// rope_tables(HEAD_DIM, max_pos): [max_pos][HEAD_DIM/2], row pos0 + t for token t. The rotation
// is computed on the way out (rope_row reads r0, writes out), so it costs no extra pass. r0 must be
// true dual port (each output reads its element and its rotation partner).
template <class E, int HEAD_DIM, class IN, int ACT = kActRelu2>
void dequant_rope_tokens(const IN *acc, const f32 *qs, f32 wscale, int n_tok, int n_heads, int pos0,
                         const f32 *cos_tab, const f32 *sin_tab, f32 *out, EwRows<E> &rows) {
  ew_engine<E, ACT, HEAD_DIM, IN, IN, f32, int8_t, f32>(kEwRope, acc, acc, qs, wscale, wscale, false, cos_tab,
                                                        0.0f, n_tok, n_heads * HEAD_DIM, pos0, cos_tab, sin_tab,
                                                        out, out, (int8_t *)0, out, false, out, EwAt(), rows);
}

// (b2) f = act(dequantize(g_acc)) * dequantize(u_acc) (tap_en: also written to f_tap); then
// SubLN rmsnorm(f, sub_g) when sub_norm, and quantize -> q, qs_out for the down projection.
// Row: g -> r0, f in place (u read from DDR in the act pass; + sum of squares, or absmax), SubLN in
// place (+ absmax), q -> DDR.
template <class E, int ACT, class IN, int HEAD_DIM = 2>
void glu_norm_quantize_tokens(const IN *g_acc, const IN *u_acc, const f32 *qs, f32 g_scale, f32 u_scale,
                              bool sub_norm, const f32 *sub_g, f32 eps, int n_tok, int n, int8_t *q,
                              f32 *qs_out, bool tap_en, f32 *f_tap, EwRows<E> &rows) {
  ew_engine<E, ACT, HEAD_DIM, IN, IN, f32, int8_t, f32>(kEwGlu, g_acc, u_acc, qs, g_scale, u_scale, sub_norm,
                                                        sub_g, eps, n_tok, n, 0, sub_g, sub_g, f_tap, f_tap, q,
                                                        qs_out, tap_en, f_tap, EwAt(), rows);
}

// (b3) h[t] = h[t] + dequantize(acc[t]) (residual, in place); then, when next_norm, the next
// block's input q, qs_out = quantize(rmsnorm(h[t], g)) from the on-chip copy of the new h.
// Row: dequantized acc -> r0, new h in place (+ sum of squares when next_norm), rmsnorm in place
// (+ absmax), q -> DDR.
template <class E, class IN, int ACT = kActRelu2, int HEAD_DIM = 2>
void residual_norm_quantize_tokens(const IN *acc, const f32 *qs, f32 wscale, f32 *h, bool next_norm,
                                   const f32 *g, f32 eps, int n_tok, int n, int8_t *q, f32 *qs_out,
                                   EwRows<E> &rows) {
  ew_engine<E, ACT, HEAD_DIM, IN, IN, f32, int8_t, f32>(kEwResidual, acc, acc, qs, wscale, wscale, next_norm, g,
                                                        eps, n_tok, n, 0, g, g, h, h, q, qs_out, false, h, EwAt(),
                                                        rows);
}

}  // namespace edgellm
