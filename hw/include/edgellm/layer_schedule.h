// The decoder layer's slot schedule (decoder_layer.h layer_slot_run runs a slot's jobs): which vector
// and linear stage each slot runs on which token half, the halves of a call, and the linear jobs in
// the order the TLMM runs them, which the fetchers (top_fetch.h) walk to push the weights.
#pragma once

#include "edgellm/layer_config.h"

namespace edgellm {

// The layer as a schedule of slots. A layer is five vector stages (element-wise jobs, the K/V write and
// attention) and four linear stages between them:
//   V0 attention norm | L0 q, k, v | V1 RoPE q, k; K/V write; attention; SubLN | L1 o_proj |
//   V2 residual + FFN norm | L2 gate, up | V3 GLU (+ SubLN) | L3 down | V4 residual
// Slot i runs at most one linear job (the TLMM process) and one vector job (the element-wise engine
// and the attention core) as the two processes of one DATAFLOW region (layer_slot_run), so they
// overlap. Sequential schedule (halves = 1: decode, a verify call, the final norm, a design without the
// prefill pipeline): 10 slots, every token at once, L0 and V1 each in two parts so that attention over
// the cache runs beside the k and v linears:
//   slot 0: V0   slot 1: L0 q   slot 2: V1.1 + L0 k, v   slot 3: V1.2   slot 4: L1   slot 5: V2
//   slot 6: L2   slot 7: V3   slot 8: L3   slot 9: V4
// V1.1 is RoPE q, then (a cached-style call: attention_layer.h attn_split_key) attention over the K/V
// blocks before the call's first position, each row's state saved; V1.2 is RoPE k, the K/V write, the
// rest of attention from that state, SubLN (bit-exact with attention in one part: attention_core.h).
// Prefill pipeline (halves = 2: calls of at least pipe_min_t tokens): the tokens split in two halves
// A = [0, n_a) and B = [n_a, t_len), 10 slots; slot i runs V(i / 2) on half i % 2 (V1 whole) and, for
// 1 <= i <= 8, L((i - 1) / 2) on half (i - 1) % 2:
//   slot  0: V0 A            slot 1: V0 B  + L0 A     slot 2: V1 A + L0 B    slot 3: V1 B + L1 A
//   slot  4: V2 A + L1 B     slot 5: V2 B  + L2 A     slot 6: V3 A + L2 B    slot 7: V3 B + L3 A
//   slot  8: V4 A + L3 B     slot 9: V4 B
// so the TLMM works on one half while the vector engines work on the other. Every job of a half
// reads what an earlier slot of the same half wrote; the two jobs of a slot touch disjoint rows of
// every per-token buffer (h, the float scratch, the qs scales, the K/V positions written) and disjoint
// int8 areas (half h's quantized rows start at x8 + t0 * k_max); V1.1 beside L0 k, v reads q and the
// cache before the call and writes the attention state, which L0 k, v do not touch. Attention of half B
// reads A's K/V, written by V1 A two slots earlier. Each token's arithmetic is unchanged (per-token
// element-wise jobs, per-query attention rows, exact integer matmuls), so the results are bit-identical
// between the schedules. The fetchers (top_fetch.h) walk the linears in the same order
// (layer_linear_job).
enum { V_STAGES = 5, L_STAGES = 4 };

// Linear stage st: how many linears, and its j-th.
inline int stage_linears(int st) {
#pragma HLS INLINE
  return st == 0 ? 3 : st == 2 ? 2 : 1;
}
inline int stage_linear(int st, int j) {
#pragma HLS INLINE
  return st == 0 ? LIN_Q + j : st == 1 ? LIN_O : st == 2 ? LIN_GATE + j : LIN_DOWN;
}

enum { V_WHOLE = 0, V1_FIRST = 1, V1_SECOND = 2 };  // a vector stage's part (slot_vector)

// Slots of a layer's schedule: 10 in both (halves 1 or 2).
inline int layer_slot_count(int) {
#pragma HLS INLINE
  return 2 * V_STAGES;
}

// Slot i's vector stage, half and part (V_WHOLE, or V1's V1_FIRST / V1_SECOND; stage -1: none).
inline void slot_vector(int i, int halves, int &stage, int &half, int &part) {
#pragma HLS INLINE
  part = V_WHOLE;
  if (halves == 2) {
    stage = i / 2, half = i % 2;
  } else {
    half = 0;
    stage = i == 0 ? 0 : i == 2 || i == 3 ? 1 : i >= 5 && i % 2 == 1 ? (i - 1) / 2 : -1;
    if (stage == 1) part = i == 2 ? V1_FIRST : V1_SECOND;
  }
}

// Slot i's linear stage, half and linears j0 .. j1 - 1 of the stage (stage -1: none).
inline void slot_linear(int i, int halves, int &stage, int &half, int &j0, int &j1) {
#pragma HLS INLINE
  j0 = 0;
  if (halves == 2) {
    stage = i >= 1 && i <= 2 * L_STAGES ? (i - 1) / 2 : -1, half = (i + 1) % 2;
  } else {
    half = 0;
    stage = i == 1 || i == 2 ? 0 : i >= 4 && i % 2 == 0 ? i / 2 - 1 : -1;
    if (i == 2) j0 = 1;  // L0's k and v, beside V1.1
  }
  j1 = stage < 0 ? 0 : halves == 1 && i == 1 ? 1 : stage_linears(stage);
}

// Halves of a layer call: 2 (the prefill pipeline) when the configuration has it (C::pipe) and the call
// has at least C::pipe_min_t (>= 2) tokens, else 1: shorter calls (a speculative verify call of two rows)
// stream the weights once in the sequential schedule instead of once per half (compiler/cost/model.py
// pipelined and pipe_min_tokens_for, the rule and the design's threshold).
template <class C>
int layer_halves(int t_len, bool norm_only) {
#pragma HLS INLINE
  return C::pipe && t_len >= C::pipe_min_t && !norm_only ? 2 : 1;
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

}  // namespace edgellm
