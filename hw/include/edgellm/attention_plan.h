// The attention core's sizing and job plan (attention_core.h: the core, its numerics and cycles):
// attn_config (the maxima every runtime size must respect, the buffer and bank sizes derived from
// them), the K/V beat (f32_beat), the keys of a tile (attn_tile_keys), the C-simulation trace of the
// compute process's loops (EDGELLM_ATTN_LOOP / _BEAT) and the jobs of a call (attn_job, attn_job_at,
// attn_next_job), which the reader (attention_layer.h) and the core walk alike. The K/V tiles'
// ping-pong copy: attention_kv_tiles.h.
//
// Jobs (attn_job): a call is a list of jobs, each one attn_rows run over R rows (query token x
// query head) that share every K/V tile of th tile heads; attn_plan_of picks the kind (one rule).
// Cached-style (t_len x group <= rows_max: decode, t_len == 1, and short multi-row calls such as
// speculative decoding's verify call): every token of the call and th KV heads' query heads per job
// (R = t_len x th x group, th = n_kv in decode: one job), the cache read once per call; positions
// earlier calls wrote (< kv_old) come over the KVP K/V ports, this call's over the data port
// (attention_layer.h). Prefill (longer calls): queries in blocks of BQ tokens; a block and one KV
// head form a job of R = bq * group rows and th = 1, jobs block-major (KV head inner), over the data
// port. A reader process streams the job's tiles 0 .. (last position of the job) once per job
// (DATAFLOW: it runs ahead into the next job's tiles while the core stores and loads rows), tiles
// beyond the job's last query are never read, and only tiles that reach past the job's first query
// position (the diagonal) evaluate the causal mask; one merged beat per cycle into the core.
#pragma once

#include <cstdint>

#include "edgellm/numerics.h"

namespace edgellm {

// Attention sizing. Runtime sizes (head_dim, heads, T, context) must not exceed these maxima.
template <int D_MAX, int DOT_LANES, int KV_BLOCK, int BQ, int HEADS_MAX, int KV_HEADS_MAX,
          int GROUP_MAX, int MAX_CTX, int MAX_T = 1024, int MIN_ROWS = facts::kAttnMinRows,
          int MEM_LANES = facts::kAttnMemLanes, int DATA_LANES = 4>
struct attn_config {
  static const int d_max = D_MAX;            // largest head_dim
  static const int dot_lanes = DOT_LANES;    // NumericsPlan.dot_lanes (power of two) = fp32 lanes
  static const int kv_block = KV_BLOCK;      // NumericsPlan.kv_block
  static const int bq = BQ;                  // prefill queries per block
  static const int heads_max = HEADS_MAX;    // query heads
  static const int kv_heads_max = KV_HEADS_MAX;
  static const int group_max = GROUP_MAX;    // query heads per KV head
  static const int max_ctx = MAX_CTX;        // KV positions
  static const int max_t = MAX_T;            // prefill tokens per call (trip counts)
  static const int min_rows = MIN_ROWS;      // >= fp32 add latency: rows interleaved per key
  // iterations between two updates of a row's o / l (a multiply-add recurrence, kMulAddLatency): the
  // stage pass's row loop is padded to at least ceil(mac_span / nc) rows (attn_pass_rows)
  static const int mac_span = kMulAddLatency > MIN_ROWS ? kMulAddLatency : MIN_ROWS;
  static const int mem_lanes = MEM_LANES;    // floats per DDR beat (16 = 512-bit AXI)
  static const int data_lanes = DATA_LANES;  // fp32 per data-port beat (4 = 128-bit): q / out
  static const int ql = DATA_LANES;          // q, out elements per cycle: one data-port beat
  static const int qo_part = DOT_LANES > DATA_LANES ? DOT_LANES : DATA_LANES;  // q / o row banks
  static const int lm_beats = (2 + DATA_LANES - 1) / DATA_LANES;  // a saved row's (l, m): whole q / out beats
  static const int lm_row = lm_beats * DATA_LANES;                  // ... in floats
  static const int beats_max = (D_MAX + MEM_LANES - 1) / MEM_LANES;
  static const int chunks_max = (D_MAX + DOT_LANES - 1) / DOT_LANES;  // ceil(d_max / A)
  static const int dp = chunks_max * DOT_LANES;                      // q / o row: whole chunks
  static const int kv_part = DOT_LANES > MEM_LANES ? DOT_LANES : MEM_LANES;  // K/V tile banks
  static const int dkv = (D_MAX + kv_part - 1) / kv_part * kv_part;  // K/V tile row
  static const int rows_max = BQ * GROUP_MAX > HEADS_MAX ? BQ * GROUP_MAX : HEADS_MAX;  // core rows
  static const int jobs_max = (MAX_T + BQ - 1) / BQ * KV_HEADS_MAX;  // jobs per call (prefill)
  static const int port_depth = 2 * KV_HEADS_MAX * beats_max;  // a K/V port stream: two positions of chunks
  static_assert(DOT_LANES >= 1 && (DOT_LANES & (DOT_LANES - 1)) == 0, "dot_lanes: power of two");
  static_assert((MEM_LANES & (MEM_LANES - 1)) == 0, "mem_lanes: power of two");
  static_assert(DATA_LANES >= 1 && (DATA_LANES & (DATA_LANES - 1)) == 0, "data_lanes: power of two");
  static_assert(KV_BLOCK >= 1 && BQ >= 1 && MIN_ROWS >= 1 && MEM_LANES >= 1, "sizes positive");
  static_assert(MIN_ROWS >= kAddLatency, "min_rows: a row's lane sums recur min_rows iterations apart");
  static_assert(GROUP_MAX <= HEADS_MAX && KV_HEADS_MAX <= HEADS_MAX, "head counts");
};

// Attention sizing by name (testbenches; a layer's comes from layer_traits::attn):
//   struct attn_cfg : edgellm::attn_config_base { static const int d_max = 128; ... };
//   typedef edgellm::attn_traits<attn_cfg> attn;
// Required: d_max, dot_lanes, kv_block, bq, heads_max, kv_heads_max, group_max, max_ctx (attn_config's
// fields above); optional, defaults below: max_t, min_rows, mem_lanes, data_lanes.
struct attn_config_base {
  static const int max_t = 1024, min_rows = facts::kAttnMinRows, mem_lanes = facts::kAttnMemLanes;
  static const int data_lanes = 4;
};
template <class C>
struct attn_traits : attn_config<C::d_max, C::dot_lanes, C::kv_block, C::bq, C::heads_max, C::kv_heads_max,
                                 C::group_max, C::max_ctx, C::max_t, C::min_rows, C::mem_lanes, C::data_lanes> {};

template <int ML>
struct f32_beat {
  f32 v[ML];
};

#ifndef __SYNTHESIS__
// C simulation only: trip counts of the compute process's pipelined loops (iterations and entries)
// and the K/V beats the core read, for tests/test_hw_attention.py to hold against the cycle formula.
struct attn_trace_t {
  long iters, loops, beats;
};
inline attn_trace_t &attn_trace() {
  static attn_trace_t t = {0, 0, 0};
  return t;
}
#define EDGELLM_ATTN_LOOP(n) (attn_trace().iters += (n), attn_trace().loops++)
#define EDGELLM_ATTN_BEAT() (attn_trace().beats++)
#else
#define EDGELLM_ATTN_LOOP(n) ((void)0)
#define EDGELLM_ATTN_BEAT() ((void)0)
#endif

// Keys of tile t (kv_block positions from t * kv_block) of a job over n_keys keys.
template <class C>
inline int attn_tile_keys(int n_keys, int t) {
  const int left = n_keys - t * C::kv_block;
  return left < C::kv_block ? left : C::kv_block;
}

// One job: rows of nt tokens x nh query heads (row r = t * nh + g: token t0 + t at position
// pos0 + t0 + t, query head h0 + g, tile head g / group) against keys 0 .. n_keys - 1 of tile heads
// kvh0 .. kvh0 + th - 1.
struct attn_job {
  int t0, nt, h0, nh, kvh0, th, n_keys;
};

// The one rule that picks a call's jobs (mirrored by compiler/cost/attention.py cached_call): a call
// whose tokens' rows of one KV head all fit the core's rows (t_len x group <= rows_max) is CACHED-style:
// decode (t_len == 1) and short multi-row calls (speculative decoding's verify call, a short prefill
// block). Its jobs take all t_len tokens x th KV heads' query heads (t_len x th x group <= rows_max rows,
// the heads split evenly over ceil(n_kv / most) jobs), so every K/V tile is read once per call, and the
// positions earlier calls wrote come over the K/V ports (attention_layer.h). Longer calls: the prefill
// jobs (query blocks of bq x one KV head over the data port), which re-read the cache per query block.
struct attn_plan {
  bool cached;  // cached-style jobs
  int th;       // tile heads per cached job (the last may have fewer)
  int n_jobs;
};

template <class C>
inline attn_plan attn_plan_of(int t_len, int n_heads, int n_kv) {
#pragma HLS INLINE
  attn_plan pl;
  const int grp = n_heads / n_kv;
  pl.cached = t_len * grp <= C::rows_max;
  const int most = pl.cached ? C::rows_max / (t_len * grp) : 1;  // >= 1 tile head when cached
  const int jobs = most >= n_kv ? 1 : (n_kv + most - 1) / most;
  pl.th = pl.cached ? (n_kv + jobs - 1) / jobs : 1;
  pl.n_jobs = pl.cached ? jobs : (t_len + C::bq - 1) / C::bq * n_kv;
  return pl;
}

// The job of query block t0 and KV head kvh (prefill), or of KV heads kvh .. (cached: t0 == 0). Reader
// and core walk the same list with the same counters (attn_next_job).
template <class C>
inline attn_job attn_job_at(const attn_plan &pl, int t_len, int pos0, int n_heads, int n_kv, int t0,
                            int kvh) {
#pragma HLS INLINE
  attn_job j;
  const int grp = n_heads / n_kv;
  j.t0 = t0;
  j.nt = pl.cached ? t_len : (t_len - t0 < C::bq ? t_len - t0 : C::bq);
  j.kvh0 = kvh;
  j.th = pl.cached ? (n_kv - kvh < pl.th ? n_kv - kvh : pl.th) : 1;
  j.h0 = kvh * grp;
  j.nh = j.th * grp;
  j.n_keys = pos0 + j.t0 + j.nt;
  return j;
}

// Job order: cached, th KV heads at a time; prefill, KV head inner, query block outer.
template <class C>
inline void attn_next_job(const attn_plan &pl, int n_kv, int &t0, int &kvh) {
#pragma HLS INLINE
  kvh += pl.th;
  if (!pl.cached && kvh == n_kv) {
    kvh = 0;
    t0 += C::bq;
  }
}

}  // namespace edgellm
