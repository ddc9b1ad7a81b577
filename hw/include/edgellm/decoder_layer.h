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
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/attention_decode.h"
#include "edgellm/attention_prefill.h"
#include "edgellm/elementwise.h"
#include "edgellm/kv_cache.h"
#include "edgellm/lowbit_policy.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm.h"
#include "edgellm/weight_fetch.h"

namespace edgellm {

enum { ACT_RELU2 = kActRelu2, ACT_SILU = kActSilu };

constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Compile-time shape of one layer, by name (generated per model by the compiler, hls4ml style):
//   struct layer_cfg : edgellm::layer_config_base { static const int hidden = 256; ... };
//   typedef edgellm::layer_traits<layer_cfg> layer;
// Required fields (no default: a configuration that leaves one out does not compile): hidden, n_heads,
// n_kv, head_dim, ffn (the model's shape), act (ACT_RELU2 / ACT_SILU), subln (SubLN norms), norm_lanes,
// dot_lanes, kv_block (the numerics plan), max_t (tokens per call), max_ctx (KV cache positions).
// Optional fields, defaults below: kv_t, bq, ew_vec, ew_glu_vec, pipe, data_bits.
struct layer_config_base {
  typedef f32 kv_t;                  // the KV cache element (numerics plan kv_dtype): f32, or f16 (binary16)
  static const int bq = 8;           // prefill queries sharing one K/V tile (design.attn_q_block)
  static const int ew_vec = 1;       // elements per cycle of the fused element-wise stages and the KV cache
                                     // write (EwConfig VEC: a power of two, 1..64)
  static const int ew_glu_vec = 0;   // of the GLU act(g) * u pass (EwConfig GLU_VEC, <= ew_vec); 0: ew_vec
  static const bool pipe = false;    // prefill calls run the pipelined two-half schedule (layer_slot_run)
  static const int data_bits = 128;  // the data and act ports' beat (maxi.h): the layer's rows move one
                                     // beat per cycle
};

// A named layer configuration P with its derived values (what the kernels read as C::...).
template <class P>
struct layer_traits : P {
  typedef typename P::kv_t kv_t;
  static const bool pipe = P::pipe;  // the prefill pipeline (decoder_layer_ports' two-half schedule)
  static const int data_bits = P::data_bits;
  typedef ap_uint<data_bits> dbeat_t;  // the data and act ports' beat
  static const int hidden = P::hidden, n_heads = P::n_heads, n_kv = P::n_kv, head_dim = P::head_dim;
  static const int ffn = P::ffn, act = P::act, norm_lanes = P::norm_lanes, max_t = P::max_t;
  static const int max_ctx = P::max_ctx, dot_lanes = P::dot_lanes, kv_block = P::kv_block, bq = P::bq;
  static const bool subln = P::subln;
  static const int ew_vec = P::ew_vec, ew_glu_vec = P::ew_glu_vec ? P::ew_glu_vec : P::ew_vec;
  static const int q_size = n_heads * head_dim, kv_size = n_kv * head_dim;
  static const int k_max = cmax(hidden, cmax(q_size, ffn));  // widest linear input / row
  typedef attn_config<head_dim, dot_lanes, kv_block, bq, n_heads, n_kv, n_heads / n_kv, max_ctx, max_t,
                      facts::kAttnMinRows, facts::kAttnMemLanes, data_bits / 32>
      attn;
  typedef EwConfig<k_max, norm_lanes, max_t, ew_vec, ew_glu_vec> ew;
  // the rows the layer streams move whole data beats (maxi.h): fp32 rows, the K/V cache's rows
  static_assert(hidden % (data_bits / 32) == 0 && q_size % (data_bits / 32) == 0 && ffn % (data_bits / 32) == 0 &&
                    head_dim % (data_bits / 32) == 0 && kv_size % (data_bits / (8 * (int)sizeof(kv_t))) == 0,
                "row widths: whole data-port beats");
};

// Testbench shorthand: the fields in order (generated code names them; see layer_config_base).
template <int HIDDEN, int N_HEADS, int N_KV, int HEAD_DIM, int FFN, int ACT, bool SUBLN, int NORM_LANES,
          int DOT_LANES, int KV_BLOCK, int MAX_T, int MAX_CTX, int BQ = 8, class KV_T = f32, int EW_VEC = 1,
          int EW_GLU_VEC = EW_VEC, bool PIPE = false, int DATA_BITS = 128>
struct layer_params {
  typedef KV_T kv_t;
  static const int hidden = HIDDEN, n_heads = N_HEADS, n_kv = N_KV, head_dim = HEAD_DIM, ffn = FFN, act = ACT;
  static const bool subln = SUBLN, pipe = PIPE;
  static const int norm_lanes = NORM_LANES, dot_lanes = DOT_LANES, kv_block = KV_BLOCK, max_t = MAX_T;
  static const int max_ctx = MAX_CTX, bq = BQ, ew_vec = EW_VEC, ew_glu_vec = EW_GLU_VEC, data_bits = DATA_BITS;
};
template <int HIDDEN, int N_HEADS, int N_KV, int HEAD_DIM, int FFN, int ACT, bool SUBLN, int NORM_LANES,
          int DOT_LANES, int KV_BLOCK, int MAX_T, int MAX_CTX, int BQ = 8, class KV_T = f32, int EW_VEC = 1,
          int EW_GLU_VEC = EW_VEC, bool PIPE = false, int DATA_BITS = 128>
using layer_config = layer_traits<layer_params<HIDDEN, N_HEADS, N_KV, HEAD_DIM, FFN, ACT, SUBLN, NORM_LANES,
                                               DOT_LANES, KV_BLOCK, MAX_T, MAX_CTX, BQ, KV_T, EW_VEC, EW_GLU_VEC,
                                               PIPE, DATA_BITS> >;

// Where one layer's parameters are: byte offsets of the seven encoded matrices in the weight image
// (low-bit: weight port 0's image), their scales, float offsets of the norm vectors in the parameter
// area, and, in a low-bit design (MM::kLowbit), the linears' low-bit records (lowbit_policy.h LbLinear,
// from the table at HDR_LB_TABLE; a ternary design never sets or reads them).
enum { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, N_LIN };
enum { NORM_ATTN = 0, NORM_FFN, NORM_ATTN_SUB, NORM_FFN_SUB, N_NORM };
struct layer_desc {
  long w_off[N_LIN];
  f32 w_scale[N_LIN];
  long p_off[N_NORM];
  LbLinear lb[N_LIN];
};

// Scratch maps for up to max_t tokens: float area (offsets in floats) and the int8 area
// (bytes8 bytes: [T][width] quantized activations of the linear being fed).
template <class C>
struct layer_scratch {
  static const long q_lin = 0;                                   // [T][q_size] q before RoPE
  static const long k_lin = q_lin + (long)C::max_t * C::q_size;  // [T][kv_size] k before RoPE
  static const long q = k_lin + (long)C::max_t * C::kv_size;     // [T][q_size]
  static const long k = q + (long)C::max_t * C::q_size;          // [T][kv_size]
  static const long v = k + (long)C::max_t * C::kv_size;         // [T][kv_size]
  static const long attn = v + (long)C::max_t * C::kv_size;      // [T][q_size]
  static const long g = attn + (long)C::max_t * C::q_size;       // [T][ffn]
  static const long u = g + (long)C::max_t * C::ffn;             // [T][ffn]
  static const long y = u + (long)C::max_t * C::ffn;             // [T][hidden]
  static const long qs_a = y + (long)C::max_t * C::hidden;       // [T] scales of x8 (ping)
  static const long qs_b = qs_a + C::max_t;                      // [T] (pong)
  static const long floats = qs_b + C::max_t;
  static const long bytes8 = (long)C::max_t * C::k_max;
};

// Tap map (offsets in floats) when tap_en: q_rope, k_rope, v, attn, h_attn, ffn_act (h_out = h).
template <class C>
struct layer_taps {
  static const long q_rope = 0;
  static const long k_rope = q_rope + (long)C::max_t * C::q_size;
  static const long v = k_rope + (long)C::max_t * C::kv_size;
  static const long attn = v + (long)C::max_t * C::kv_size;
  static const long h_attn = attn + (long)C::max_t * C::q_size;
  static const long ffn_act = h_attn + (long)C::max_t * C::hidden;
  static const long floats = ffn_act + (long)C::max_t * C::ffn;
};

// Element offsets of the layer's DDR operands in their pointers (the top: region offsets in the data
// and act beats; testbenches: plain arrays, all 0): h, params, the RoPE tables and taps (f32, the data
// side), the float scratch fs and the int8 scratch x8 (the act side).
struct LayerAt {
  long h, params, cos, sin, fs, x8, taps;
};

// Reference ternary linear on models/weights.pack2 rows ((n_out, ceil(k/4)) bytes, 2-bit codes
// t+1, low bits first): exact int32 accumulation, then dequantize. A plain loop (one MAC per
// cycle), kept as the cross-check for the TLMM engine and as a fallback policy. It reads its bytes
// through the first weight port (a pointer), or from the first weight FIFO (word_t = one byte; fetch
// pushes them in the same order: every row again for every token).
template <int K_MAX>  // K_MAX: largest k and n_out
struct pack2_matmul {
  typedef ap_uint<8> word_t;
  // weight ports (FIFOs) it reads; tokens it runs together; bytes per weight-port beat (0: any)
  enum { kPorts = 1, kTokenLanes = 1, kBeatBytes = 0 };
  static uint8_t next_byte(const uint8_t *w, long i) { return w[i]; }
  static uint8_t next_byte(hls::stream<word_t> *s, long) { return (uint8_t)s->read(); }
  // x, qs, y: (pointer, element offset) pairs (plain arrays, or the act port's beats): a token's int8 row
  // comes on chip first (row_load), its scale and every output are one element access each.
  template <class WS, class PX, class PS, class PY>
  static void run(const PX *xp, long x_off, const PS *qs, long qs_off, int n_tok, WS *w0, WS *, WS *, WS *,
                  long w_off, int n_out, int k, f32 wscale, PY *y, long y_off) {
    const int kb = (k + 3) / 4;
    int8_t x[K_MAX];
  p2_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
      row_load<K_MAX>(xp, x_off + (long)t * k, k, x);
      const f32 qt = mget<f32>(qs, qs_off + t);
    p2_row:
      for (int n = 0; n < n_out; n++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX
        int32_t acc = 0;
      p2_byte:
        for (int b = 0; b < kb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = (K_MAX + 3) / 4
#pragma HLS PIPELINE II = 1
          uint8_t byte = next_byte(w0, w_off + (long)n * kb + b);
          for (int i = 0; i < 4; i++) {
            int idx = b * 4 + i;
            int code = (byte >> (2 * i)) & 3;
            if (idx < k) acc += (code - 1) * (int32_t)x[idx];
          }
        }
        mput<f32>(y, y_off + (long)t * n_out + n, dequantize(acc, qt, wscale));
      }
    }
  }
  // Port P's FIFO for one linear at byte offset base of the weight port w (beats of any width: one beat
  // read per byte, the reference policy's rate; only port 0 carries anything).
  template <int P, class WB>
  static void fetch(const WB *w, long base, int n_out, int k, int n_tok, hls::stream<word_t> &fifo) {
    if (P != 0) return;
    const long nbytes = (long)n_out * ((k + 3) / 4);
  p2_fetch_tok:
    for (int t = 0; t < n_tok; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
    p2_fetch:
      for (long i = 0; i < nbytes; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_MAX * ((K_MAX + 3) / 4)
        fifo.write(mget<uint8_t>(w, base + i));
      }
    }
  }
};

// The TLMM engine as the layer's matmul policy: weights in the tiled 5-trits/byte image
// (compiler/packing.py pack_ternary with rows_per_tile = TCFG::R), one image per linear at byte
// offset w_off from the weight ports w0 .. w3 (one m_axi port each, the first TCFG::NPORTS stream
// concurrently; the host gives them all the same address).
// From weight FIFOs (top.h, weight_fetch.h) the image offset is the fetcher's business: run pops.
template <class TCFG>
struct tlmm_mm {
  typedef typename TCFG::fword_t word_t;
  // weight ports (FIFOs) it reads; token lanes; bytes per weight-port beat (one byte column of a tile)
  enum { kPorts = TCFG::NPORTS, kTokenLanes = TCFG::TP, kBeatBytes = TCFG::R };
  // x, qs, y: (pointer, element offset) pairs (plain arrays, or the act port's beats: TlmmAt)
  template <class PX, class PS, class PY>
  static void run(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, const uint8_t *w0,
                  const uint8_t *w1, const uint8_t *w2, const uint8_t *w3, long w_off, int n_out, int k,
                  f32 wscale, PY *y, long y_off) {
    const TlmmAt at = {x_off, qs_off, y_off};
    tlmm_matmul<TCFG>(x, qs, n_tok, w0 + w_off, w1 + w_off, w2 + w_off, w3 + w_off, n_out, k, wscale, y, at);
  }
  template <class PX, class PS, class PY>
  static void run(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, hls::stream<word_t> *w0,
                  hls::stream<word_t> *w1, hls::stream<word_t> *w2, hls::stream<word_t> *w3, long, int n_out,
                  int k, f32 wscale, PY *y, long y_off) {
    const TlmmAt at = {x_off, qs_off, y_off};
    tlmm_matmul<TCFG>(x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y, at);
  }
  // Port P's FIFO for one linear at byte offset base (a multiple of R: the memory plan aligns every
  // matrix) of the weight port w, R-byte beats (weight_fetch.h tlmm_fetch_port).
  template <int P>
  static void fetch(const ap_uint<8 * TCFG::R> *w, long base, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo) {
    if (P < TCFG::NPORTS) {
      tlmm_fetch_port<TCFG, P < TCFG::NPORTS ? P : 0>(w + base / TCFG::R, n_out, k, n_tok, fifo);
    }
  }
};

// Shape of linear i (LIN_Q .. LIN_DOWN) of a layer: outputs and inputs (the engine and the fetcher
// both take them from here).
template <class C>
int lin_out(int i) {
#pragma HLS INLINE
  return i == LIN_Q ? C::q_size : i == LIN_K || i == LIN_V ? C::kv_size : i == LIN_GATE || i == LIN_UP ? C::ffn
                                                                                                     : C::hidden;
}
template <class C>
int lin_in(int i) {
#pragma HLS INLINE
  return i == LIN_O ? C::q_size : i == LIN_DOWN ? C::ffn : C::hidden;
}

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

// The layer as a schedule of slots. A layer is five vector stages (element-wise jobs, the K/V write and
// attention) and four linear stages between them:
//   V0 attention norm | L0 q, k, v | V1 RoPE q, k; K/V write; attention; SubLN | L1 o_proj |
//   V2 residual + FFN norm | L2 gate, up | V3 GLU (+ SubLN) | L3 down | V4 residual
// Slot i runs at most one linear job (the TLMM process) and one vector job (the element-wise engine
// and the attention core) as the two processes of one DATAFLOW region (layer_slot_run), so they
// overlap. Sequential schedule (halves = 1: decode, the final norm, a design without the prefill
// pipeline): 9 slots, V0 L0 V1 L1 V2 L2 V3 L3 V4, one job each, every token at once. Prefill pipeline
// (halves = 2): the tokens split in two halves A = [0, n_a) and B = [n_a, t_len), 10 slots; slot i
// runs V(i / 2) on half i % 2 and, for 1 <= i <= 8, L((i - 1) / 2) on half (i - 1) % 2:
//   slot  0: V0 A            slot 1: V0 B  + L0 A     slot 2: V1 A + L0 B    slot 3: V1 B + L1 A
//   slot  4: V2 A + L1 B     slot 5: V2 B  + L2 A     slot 6: V3 A + L2 B    slot 7: V3 B + L3 A
//   slot  8: V4 A + L3 B     slot 9: V4 B
// so the TLMM works on one half while the vector engines work on the other. Every job of a half
// reads what an earlier slot of the same half wrote; the two jobs of a slot touch disjoint rows of
// every per-token buffer (h, the float scratch, the qs scales, the K/V positions written) and disjoint
// int8 areas (half h's quantized rows start at x8 + t0 * k_max). Attention of half B reads A's K/V,
// written by V1 A two slots earlier. Each token's arithmetic is unchanged (per-token element-wise
// jobs, per-query attention rows, exact integer matmuls), so the results are bit-identical to the
// sequential schedule's. The fetchers (top.h) walk the same schedule (layer_linear_job).
enum { V_STAGES = 5, L_STAGES = 4 };

// Slots of a layer's schedule.
inline int layer_slot_count(int halves) {
#pragma HLS INLINE
  return halves == 2 ? 2 * V_STAGES : 2 * V_STAGES - 1;
}

// Slot i's vector stage and half (stage -1: none).
inline void slot_vector(int i, int halves, int &stage, int &half) {
#pragma HLS INLINE
  if (halves == 2) {
    stage = i / 2, half = i % 2;
  } else {
    stage = i % 2 == 0 ? i / 2 : -1, half = 0;
  }
}

// Slot i's linear stage and half (stage -1: none).
inline void slot_linear(int i, int halves, int &stage, int &half) {
#pragma HLS INLINE
  if (halves == 2) {
    stage = i >= 1 && i <= 2 * L_STAGES ? (i - 1) / 2 : -1, half = (i + 1) % 2;
  } else {
    stage = i % 2 == 1 ? i / 2 : -1, half = 0;
  }
}

// Halves of a layer call: 2 (the prefill pipeline) when the configuration has it (C::pipe) and the call
// has at least two tokens, else 1.
template <class C>
int layer_halves(int t_len, bool norm_only) {
#pragma HLS INLINE
  return C::pipe && t_len >= 2 && !norm_only ? 2 : 1;
}

// Tokens of the first half: about half of t_len, rounded up to the matmul's token lanes (LANES: the
// TLMM's TP, so both halves fill whole token groups where they can), at most t_len - 1.
template <int LANES>
int first_half(int t_len, int halves) {
#pragma HLS INLINE
  if (halves == 1) return t_len;
  const int half = (t_len + 1) / 2;
  const int a = (half + LANES - 1) / LANES * LANES;
  return a < t_len ? a : t_len - 1;
}

// Linear stage st: how many linears, and its j-th.
inline int stage_linears(int st) {
#pragma HLS INLINE
  return st == 0 ? 3 : st == 2 ? 2 : 1;
}
inline int stage_linear(int st, int j) {
#pragma HLS INLINE
  return st == 0 ? LIN_Q + j : st == 1 ? LIN_O : st == 2 ? LIN_GATE + j : LIN_DOWN;
}

// The j-th linear job of a layer call in the order the TLMM runs them (j < layer_linear_jobs): its
// linear and its tokens (t0, n). The fetchers walk this to push the weight tiles in the same order.
inline int layer_linear_jobs(int halves) {
#pragma HLS INLINE
  return halves * N_LIN;
}
template <class C, class MM>
void layer_linear_job(int j, int t_len, int halves, int &lin, int &t0, int &n) {
#pragma HLS INLINE
  const int n_a = first_half<MM::kTokenLanes>(t_len, halves);
  // per stage: all its linears for half A, then for half B
  int st = 0, base = 0;  // j's stage; jobs before it
  bool found = false;
find_stage:
  for (int s = 0; s < L_STAGES; s++) {
#pragma HLS UNROLL
    const int jobs = halves * stage_linears(s);
    if (!found && j >= base + jobs) {
      st = s + 1;
      base += jobs;
    } else {
      found = true;
    }
  }
  const int r = j - base, cnt = stage_linears(st);
  const int half = r / cnt;
  lin = stage_linear(st, r % cnt);
  t0 = half == 0 ? 0 : n_a;
  n = half == 0 ? n_a : t_len - n_a;
}

// One linear of a layer on the matmul policy MM: a ternary policy gets the image offset and the scale
// (MM::run's ternary form); the low-bit one also the linear's record and its bias, read through fs (the
// linear job's float view: the top's act port, which sees the params area at element at_params; a
// testbench gives fs and the params one array with at.params their distance).
template <class MM, int LB = mm_is_lowbit<MM>::value>
struct mm_linear {
  template <class WS, class PF, class PX>
  static void run(PX *x8, long x_off, PF *fs, long qs_off, int n, WS *w0, WS *w1, WS *w2, WS *w3,
                  const layer_desc &d, int lin, int out, int in, long, long y_off) {
#pragma HLS INLINE
    MM::run(x8, x_off, fs, qs_off, n, w0, w1, w2, w3, d.w_off[lin], out, in, d.w_scale[lin], fs, y_off);
  }
};
template <class MM>
struct mm_linear<MM, 1> {
  template <class WS, class PF, class PX>
  static void run(PX *x8, long x_off, PF *fs, long qs_off, int n, WS *w0, WS *w1, WS *w2, WS *w3,
                  const layer_desc &d, int lin, int out, int in, long at_params, long y_off) {
#pragma HLS INLINE
    const long bias = d.lb[lin].bias < 0 ? -1L : at_params + d.lb[lin].bias;
    MM::run(x8, x_off, fs, qs_off, n, w0, w1, w2, w3, d.w_off[lin], d.lb[lin], out, in, fs, bias, fs, y_off);
  }
};

// Slot i's linear job: the linears of its stage st for its half's tokens [t0, t0 + n): MM::run on the int8 rows x8 + t0 * k_max (the half's
// area), outputs into the float scratch rows of those tokens. fs / x8: the scratch as the TLMM process
// sees it (top.h: its own m_axi argument, the data port's bundle).
template <class C, class MM, class WS, class PF, class PX>
void linear_job(int i, int halves, int n_a, int t_len, WS *w0, WS *w1, WS *w2, WS *w3, const layer_desc &d,
                PF *fs, PX *x8, const LayerAt &at) {
#pragma HLS INLINE off
  typedef layer_scratch<C> S;
  static_assert(!mm_is_lowbit<MM>::value || C::k_max % 16 == 0,
                "low-bit linears read their int8 rows 16 at a time from 16-element boundaries");
  int st, half;
  slot_linear(i, halves, st, half);
  if (st < 0) return;
  const int t0 = half == 0 ? 0 : n_a, n = half == 0 ? n_a : t_len - n_a;
stage_linears_loop:
  for (int j = 0; j < stage_linears(st); j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 3
    const int lin = stage_linear(st, j), out = lin_out<C>(lin), in = lin_in<C>(lin);
    const long dst = lin == LIN_Q ? S::q_lin : lin == LIN_K ? S::k_lin : lin == LIN_V ? S::v
                     : lin == LIN_GATE ? S::g : lin == LIN_UP ? S::u : S::y;
    const long qs = at.fs + (st == 2 ? S::qs_b : S::qs_a) + t0;
    mm_linear<MM>::run(x8, at.x8 + (long)t0 * C::k_max, fs, qs, n, w0, w1, w2, w3, d, lin, out, in, at.params,
                       at.fs + dst + (long)t0 * out);
  }
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
  const int H = C::hidden, Q = C::q_size, KV = C::kv_size, F = C::ffn, D = C::head_dim;
  enum { DL = C::data_bits / 32 };  // floats per data beat
  int st, half;
  slot_vector(i, halves, st, half);
  if (st < 0) return;
  const int t0 = half == 0 ? 0 : n_a, n = half == 0 ? n_a : t_len - n_a;
  // the stage's element-wise steps: V0 [ATTN_NORM], V1 [ROPE_Q, ROPE_K, ATTN_SUB], V2 [RES_ATTN], ...
  const int s0 = st == 0 ? (int)EW_ATTN_NORM : st == 1 ? (int)EW_ROPE_Q : st + 2;
  const int ns = st == 1 ? 3 : 1;
  const long qo = at.fs + (long)t0 * Q, ko = at.fs + (long)t0 * KV;  // this half's rows in fs
  const long tq = at.taps + (long)t0 * Q, tk = at.taps + (long)t0 * KV;  // and in the taps
vector_steps:
  for (int s = s0; s < s0 + ns; s++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 3
    // the work feeding job s
    if (s == EW_ATTN_SUB) {
      if (tap_en) {
        copy_f32<(long)C::max_t * Q, DL>(fs, S::q + qo, taps, TP::q_rope + tq, (long)n * Q);
        copy_f32<(long)C::max_t * KV, DL>(fs, S::k + ko, taps, TP::k_rope + tk, (long)n * KV);
        copy_f32<(long)C::max_t * KV, DL>(fs, S::v + ko, taps, TP::v + tk, (long)n * KV);
      }
      // the new positions into the slice at k_off / v_off of k_layer / v_layer (the data-port view)
      kv_cache_write<C::data_bits, typename C::kv_t>(fs, S::k + ko, fs, S::v + ko, n, pos0 + t0, KV, k_layer,
                                                     k_off, v_layer, v_off);
      // one attention core for prefill (n > 1, K/V over the data port) and decode (n == 1: the positions
      // earlier calls wrote, < pos0, over the first KVP weight ports; this call's over k_layer / v_layer,
      // the argument that just wrote them)
      attention_kv<typename C::attn, KVP, typename C::kv_t>(fs, S::q + qo, EDGELLM_KV_READ_ARGS, fs,
                                                           S::attn + qo, n, pos0 + t0, C::n_heads, C::n_kv, D,
                                                           attn_scale, pos0);
      if (tap_en) copy_f32<(long)C::max_t * Q, DL>(fs, S::attn + qo, taps, TP::attn + tq, (long)n * Q);
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
//                  through the same engine call (top.h run_desc)
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
#pragma HLS LOOP_TRIPCOUNT min = 9 max = 10
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
