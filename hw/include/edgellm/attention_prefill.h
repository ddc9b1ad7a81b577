// Causal prefill attention on the one core: a thin wrapper of attention_layer (attention_layer.h). The
// core, its numerics and its cycles: attention_core.h.
#pragma once

#include "edgellm/attention_layer.h"

namespace edgellm {

// Causal prefill attention: attention_layer with the K/V cache on one pointer pair.
//   q:       [t_len][n_heads][head_dim]   queries at absolute positions pos0 .. pos0+t_len-1
//   k_layer, v_layer: this layer's cache slice [pos][n_kv][head_dim] of KT (kv_cache.h), positions
//            0 .. pos0+t_len-1 already written
//   out:     [t_len][n_heads][head_dim]
//   scale:   float(1/sqrt(head_dim)) (double, rounded once), from the host
// Query head h reads KV head h / (n_heads / n_kv). t_len == 1 runs the decode job.
template <class C, class KT>
void attention_prefill(const f32 *q, const KT *k_layer, const KT *v_layer, f32 *out, int t_len,
                       int pos0, int n_heads, int n_kv, int head_dim, f32 scale) {
  attention_layer<C, 1>(q, k_layer, v_layer, k_layer, k_layer, k_layer, k_layer, v_layer, v_layer,
                        v_layer, v_layer, out, t_len, pos0, n_heads, n_kv, head_dim, scale);
}

}  // namespace edgellm
