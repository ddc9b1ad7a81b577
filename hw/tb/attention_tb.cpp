// ctypes entry points for the attention kernels (tests/test_hw_attention.py).
// One instantiation per (d_max, dot_lanes, kv_block) the tests use; name: <kernel>_d<D>_l<L>_b<B>;
// <kernel>16_... read an f16 KV cache (uint16 binary16 patterns, widened on read).
// attention_prefill / attention_decode / attention_decode_ports are wrappers of attention_layer
// (the one core); tb_layer* call attention_layer itself.
#include "edgellm/attention_prefill.h"
#include "edgellm/attention_decode.h"

using namespace edgellm;

// head_dim up to D, dot_lanes L, kv_block B; bq 8, 16 heads, 8 KV heads, 4096 positions
#define EDGELLM_ATTN_TB(D, L, B)                                                                  \
  struct cfg_d##D##_l##L##_b##B##_fields : attn_config_base {                                     \
    static const int d_max = D, dot_lanes = L, kv_block = B, bq = 8, heads_max = 16;              \
    static const int kv_heads_max = 8, group_max = 8, max_ctx = 4096;                             \
  };                                                                                              \
  typedef attn_traits<cfg_d##D##_l##L##_b##B##_fields> cfg_d##D##_l##L##_b##B;                    \
  extern "C" void tb_prefill_d##D##_l##L##_b##B(const f32 *q, const f32 *k, const f32 *v,        \
                                                f32 *out, int t_len, int pos0, int n_heads,      \
                                                int n_kv, int head_dim, f32 scale) {             \
    attention_prefill<cfg_d##D##_l##L##_b##B>(q, k, v, out, t_len, pos0, n_heads, n_kv,          \
                                              head_dim, scale);                                  \
  }                                                                                              \
  extern "C" void tb_decode_d##D##_l##L##_b##B(const f32 *q, const f32 *k, const f32 *v,         \
                                               f32 *out, int pos, int n_heads, int n_kv,         \
                                               int head_dim, f32 scale) {                        \
    attention_decode<cfg_d##D##_l##L##_b##B>(q, k, v, out, pos, n_heads, n_kv, head_dim, scale); \
  }

EDGELLM_ATTN_TB(128, 64, 16)
EDGELLM_ATTN_TB(128, 64, 32)
EDGELLM_ATTN_TB(128, 128, 16)
EDGELLM_ATTN_TB(128, 128, 32)
EDGELLM_ATTN_TB(256, 32, 16)
EDGELLM_ATTN_TB(256, 256, 16)
// dot_lanes below head_dim: the head dimension time-multiplexed over ceil(d / dot_lanes) chunks
EDGELLM_ATTN_TB(128, 8, 16)
EDGELLM_ATTN_TB(128, 16, 16)
EDGELLM_ATTN_TB(128, 16, 32)
EDGELLM_ATTN_TB(128, 32, 16)
// K/V tiles of 4 keys (the low-bit search's small-tile vector engines, compiler/cost/lowbit_search.py VECTOR)
EDGELLM_ATTN_TB(128, 8, 4)

#define EDGELLM_ATTN_TB16(D, L, B)                                                                \
  extern "C" void tb_prefill16_d##D##_l##L##_b##B(const f32 *q, const f16 *k, const f16 *v,      \
                                                  f32 *out, int t_len, int pos0, int n_heads,    \
                                                  int n_kv, int head_dim, f32 scale) {           \
    attention_prefill<cfg_d##D##_l##L##_b##B>(q, k, v, out, t_len, pos0, n_heads, n_kv,          \
                                              head_dim, scale);                                  \
  }                                                                                              \
  extern "C" void tb_decode16_d##D##_l##L##_b##B(const f32 *q, const f16 *k, const f16 *v,       \
                                                 f32 *out, int pos, int n_heads, int n_kv,       \
                                                 int head_dim, f32 scale) {                      \
    attention_decode<cfg_d##D##_l##L##_b##B>(q, k, v, out, pos, n_heads, n_kv, head_dim, scale); \
  }

EDGELLM_ATTN_TB16(128, 64, 16)
EDGELLM_ATTN_TB16(128, 64, 32)
EDGELLM_ATTN_TB16(128, 128, 16)
EDGELLM_ATTN_TB16(128, 128, 32)
EDGELLM_ATTN_TB16(128, 8, 16)
EDGELLM_ATTN_TB16(128, 16, 16)
EDGELLM_ATTN_TB16(128, 16, 32)
EDGELLM_ATTN_TB16(128, 32, 16)
EDGELLM_ATTN_TB16(128, 8, 4)

// Decode over NP K/V ports (attention_decode_ports): k0..k3 / v0..v3 are separate buffers.
// Name: tb_decode_ports<NP><SUF>, config CFG.
#define EDGELLM_ATTN_TB_PORTS(NP, KT, SUF, CFG)                                                     \
  extern "C" void tb_decode_ports##NP##SUF(const f32 *q, const KT *k0, const KT *k1, const KT *k2,  \
                                            const KT *k3, const KT *v0, const KT *v1, const KT *v2, \
                                            const KT *v3, f32 *out, int pos, int n_heads, int n_kv, \
                                            int head_dim, f32 scale) {                              \
    attention_decode_ports<CFG, NP>(q, k0, k1, k2, k3, v0, v1, v2, v3, out, pos, n_heads, n_kv,     \
                                    head_dim, scale);                                               \
  }

EDGELLM_ATTN_TB_PORTS(1, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_PORTS(2, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_PORTS(3, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_PORTS(4, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_PORTS(4, f16, _16, cfg_d128_l64_b16)
EDGELLM_ATTN_TB_PORTS(3, f32, _l16, cfg_d128_l16_b16)   // dot_lanes 16 < head_dim
EDGELLM_ATTN_TB_PORTS(4, f16, _16_l16, cfg_d128_l16_b16)

// attention_layer (prefill and decode on one core) over NP ports: k / v the data-port view (prefill
// reads it), k0..k3 / v0..v3 the weight-port views (cached-style calls read positions < kv_old there,
// every one for kv_old -1); key0, key_end, lm_off: the call's part (attention_layer.h). Name: tb_layer<NP><SUF>.
#define EDGELLM_ATTN_TB_LAYER(NP, KT, SUF, CFG)                                                     \
  extern "C" void tb_layer##NP##SUF(const f32 *q, const KT *k, const KT *v, const KT *k0,            \
                                     const KT *k1, const KT *k2, const KT *k3, const KT *v0,        \
                                     const KT *v1, const KT *v2, const KT *v3, f32 *out, int t_len, \
                                     int pos0, int n_heads, int n_kv, int head_dim, f32 scale,      \
                                     int kv_old, int key0, int key_end, long lm_off) {              \
    attention_layer<CFG, NP>(q, k, v, k0, k1, k2, k3, v0, v1, v2, v3, out, t_len, pos0, n_heads,    \
                             n_kv, head_dim, scale, kv_old, key0, key_end, lm_off);                 \
  }

// bq 2, group_max 2, 16 heads: rows_max = heads_max (16) > bq * group_max (4), the other way round
// from the bq 8 / group_max 8 configs (rows_max 64)
struct cfg_d128_l32_b16_q2_fields : attn_config_base {
  static const int d_max = 128, dot_lanes = 32, kv_block = 16, bq = 2, heads_max = 16, kv_heads_max = 8;
  static const int group_max = 2, max_ctx = 4096;
};
typedef attn_traits<cfg_d128_l32_b16_q2_fields> cfg_d128_l32_b16_q2;

EDGELLM_ATTN_TB_LAYER(1, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(2, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(3, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(4, f32, , cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(1, f16, _16, cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(4, f16, _16, cfg_d128_l64_b16)
EDGELLM_ATTN_TB_LAYER(3, f32, _l16, cfg_d128_l16_b16)   // dot_lanes 16 < head_dim
EDGELLM_ATTN_TB_LAYER(2, f16, _16_l16, cfg_d128_l16_b16)
EDGELLM_ATTN_TB_LAYER(2, f32, _q2, cfg_d128_l32_b16_q2)  // rows_max = heads_max
EDGELLM_ATTN_TB_LAYER(4, f16, _16_q2, cfg_d128_l32_b16_q2)

// C-simulation trace of the compute process (attention_plan.h, EDGELLM_ATTN_LOOP / _BEAT):
// t[0] pipelined-loop iterations, t[1] loop entries, t[2] K/V beats the core read; reset zeroes it.
extern "C" void tb_attn_trace(long *t, int reset) {
  t[0] = attn_trace().iters;
  t[1] = attn_trace().loops;
  t[2] = attn_trace().beats;
  if (reset) attn_trace() = attn_trace_t{0, 0, 0};
}

// Deadlocks the threaded C simulation found (tests/test_csim_threads.py); 0 in the sequential one.
extern "C" long long tb_attn_deadlocks() { return edgellm::csim_deadlocks(); }
