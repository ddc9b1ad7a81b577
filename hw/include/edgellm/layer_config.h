// A decoder layer's configuration (decoder_layer.h runs the layer): its compile-time shape by name
// (layer_config_base, layer_traits with the derived values), where its parameters are (layer_desc), its
// DDR scratch and tap maps (layer_scratch, layer_taps), its operands' element offsets (LayerAt) and the
// shape of each linear (lin_out, lin_in).
#pragma once

#include <cstdint>

#include "edgellm/attention_plan.h"
#include "edgellm/elementwise.h"
#include "edgellm/lowbit_policy.h"
#include "edgellm/numerics.h"

namespace edgellm {

enum { ACT_RELU2 = kActRelu2, ACT_SILU = kActSilu };

constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Compile-time shape of one layer, by name (generated per model by the compiler, hls4ml style):
//   struct layer_cfg : edgellm::layer_config_base { static const int hidden = 256; ... };
//   typedef edgellm::layer_traits<layer_cfg> layer;
// Required fields (no default: a configuration that leaves one out does not compile): hidden, n_heads,
// n_kv, head_dim, ffn (the model's shape), act (ACT_RELU2 / ACT_SILU), subln (SubLN norms), norm_lanes,
// dot_lanes, kv_block (the numerics plan), max_t (tokens per call), max_ctx (KV cache positions).
// Optional fields, defaults below: kv_t, bq, ew_vec, ew_glu_vec, pipe, pipe_min_t, attn_split, data_bits.
struct layer_config_base {
  typedef f32 kv_t;                  // the KV cache element (numerics plan kv_dtype): f32, or f16 (binary16)
  static const int bq = 8;           // prefill queries sharing one K/V tile (design.attn_q_block)
  static const int ew_vec = 1;       // elements per cycle of the fused element-wise stages and the KV cache
                                     // write (ew_traits VEC: a power of two, 1..64)
  static const int ew_glu_vec = 0;   // of the GLU act(g) * u pass (ew_traits GLU_VEC, <= ew_vec); 0: ew_vec
  static const bool pipe = false;    // prefill calls run the pipelined two-half schedule (layer_slot_run)
  static const int pipe_min_t = 2;   // with pipe: calls of at least this many tokens (design pipe_min_tokens)
  static const bool attn_split = true;  // sequential calls: attention over the earlier K/V blocks beside the
                                        // k and v linears (layer_schedule.h; design attn_split)
  static const int data_bits = 128;  // the data and act ports' beat (maxi.h): the layer's rows move one
                                     // beat per cycle
};

// A named layer configuration P with its derived values (what the kernels read as C::...).
template <class P>
struct layer_traits : P {
  typedef typename P::kv_t kv_t;
  static const bool pipe = P::pipe;  // the prefill pipeline (decoder_layer_ports' two-half schedule)
  static const int pipe_min_t = P::pipe_min_t;  // ... for calls of at least this many tokens (>= 2)
  static const bool attn_split = P::attn_split;  // attention in two parts in the sequential schedule
  static_assert(P::pipe_min_t >= 2, "pipe_min_t: the two halves need two tokens");
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
  static_assert(attn::lm_row <= head_dim, "a split attention call saves each row's (l, m) over q_lin's row");
  struct ew_fields : ew_config_base {  // the element-wise engine's configuration (elementwise.h)
    static const int N_MAX = k_max, LANES = norm_lanes, MAX_TOK = max_t, VEC = ew_vec, GLU_VEC = ew_glu_vec;
  };
  typedef ew_traits<ew_fields> ew;
  // the rows the layer streams move whole data beats (maxi.h): fp32 rows, the K/V cache's rows
  static_assert(hidden % (data_bits / 32) == 0 && q_size % (data_bits / 32) == 0 && ffn % (data_bits / 32) == 0 &&
                    head_dim % (data_bits / 32) == 0 && kv_size % (data_bits / (8 * (int)sizeof(kv_t))) == 0,
                "row widths: whole data-port beats");
};

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

}  // namespace edgellm
