// Decode attention on the one core: thin wrappers of attention_layer (attention_layer.h), the K/V cache
// on one pointer pair or over NP m_axi ports.
//
// Decode numerics are prefill's (attention_core.h header comment) with one query at position
// pos seeing keys 0..pos. There is no score buffer over the context: keys arrive in tiles of
// kv_block positions x n_kv heads (one contiguous DDR burst per position, layout in kv_cache.h) and
// the online softmax keeps only m, l and o per head, so the context is bounded by max_ctx alone. All
// query heads are the rows of the one decode job (row h reads tile head h / group), which
// interleaves independent heads in the pipelined key loop: each K/V tile is read from DDR exactly
// once per token. Cycles (attention_core.h header, decode job) with R = n_heads, th = n_kv,
// nr = max(n_heads, min_rows, ceil(mac_span / nc)), nc = ceil(d / dot_lanes), nb = ceil(d / mem_lanes),
// nq = ceil(d / min(dot_lanes, data_lanes)), n = pos + 1 keys in tiles t of nk_t keys (0 outside
// the tiles), c_t = nk_t n_kv nb:
//   n_heads + 2 n_heads nq + max(0, c_0 - n_heads nq)
//     + sum_{st=0..tiles} max(max(nk_st, nk_{st-1}) nc nr, c_{st+1}, c_st)  cycles (+ pipeline fills),
// the copy terms holding when the KVP ports keep up with one merged beat pair per cycle (tile st is
// scored while tile st - 1 is accumulated, K copied one tile ahead of V: attention_core.h).
#pragma once

#include "edgellm/attention_layer.h"

namespace edgellm {

// Decode attention with the K/V cache on one pointer pair (attention_layer, t_len = 1).
//   q: [n_heads][head_dim] at position pos; k_layer, v_layer: positions 0..pos written;
//   out: [n_heads][head_dim]
template <class C, class KT>
void attention_decode(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int pos,
                      int n_heads, int n_kv, int head_dim, f32 scale) {
  attention_layer<C, 1>(q, k_layer, v_layer, k_layer, k_layer, k_layer, k_layer, v_layer, v_layer,
                        v_layer, v_layer, out, 1, pos, n_heads, n_kv, head_dim, scale);
}

// Decode attention with the K/V cache read over NP (1..4) m_axi ports (attention_layer, t_len = 1;
// every pointer pair addresses the same cache slice): KV head h over port h % NP. k1..k3 / v1..v3
// beyond NP are never dereferenced.
template <class C, int NP, class KT>
void attention_decode_ports(const f32 *q, const KT *k0, const KT *k1, const KT *k2, const KT *k3,
                            const KT *v0, const KT *v1, const KT *v2, const KT *v3, f32 *out, int pos,
                            int n_heads, int n_kv, int head_dim, f32 scale) {
  attention_layer<C, NP>(q, k0, v0, k0, k1, k2, k3, v0, v1, v2, v3, out, 1, pos, n_heads, n_kv,
                         head_dim, scale);
}

}  // namespace edgellm
