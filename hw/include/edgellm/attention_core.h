// Attention: the one fp32 core (attn_rows) that prefill and decode share. attention_layer
// (attention_layer.h) is the single entry: decode when t_len == 1, prefill otherwise, both through ONE
// attn_rows instance (one call site of one template instantiation in one DATAFLOW compute process);
// attention_prefill (attention_prefill.h), attention_decode and attention_decode_ports
// (attention_decode.h) are thin wrappers of it. Its sizing (attn_config) and job plan (attn_job):
// attention_plan.h; its K/V tile streaming (the ping-pong copy the passes carry):
// attention_kv_tiles.h; a two-part job's saved row state: attention_state.h. This header includes them.
//
// Numerics (docs/numerics.md, numpy twin models/numerics.py:attention), per query row:
//   keys in blocks of kv_block aligned to absolute position 0; for each block with a visible key:
//     s_j  = reduce_sum<dot_lanes>(q * k_j) * scale            (products in fp32, lane order)
//     mb   = max(m, max_j s_j)   (visible j only)
//     c    = started ? exp(m - mb) : 0;  l = l * c;  o = o * c
//     for visible j ascending: p = exp(s_j - mb); l = l + p; o = o + p * v_j
//     m = mb
//   out = o / l
//
//
// Lanes: the core has A = dot_lanes fp32 lanes and time-multiplexes the head dimension over
// nc = ceil(d / A) chunks of A elements. Score: lane j of a row accumulates products j, j+A, ...
// from 0.0f, one chunk per cycle, in a per-(row, lane) partial sum; the pairwise halving tree runs
// when the last chunk is in (the contract's reduce_sum order exactly; A >= d is one chunk, a pure
// tree). Rescale, accumulate (o += p * v) and the K/V / q / o buffers work on A elements per cycle
// (buffers partitioned cyclic by A; the K/V tiles by max(A, mem_lanes) so one reader beat lands per
// cycle). q load and the output store move ql = min(A, data_lanes) elements per cycle (data_lanes =
// fp32 per data-port beat, 4 on the 128-bit port: ql consecutive floats of one row per transfer,
// one aligned beat when d % ql == 0, which the tool's m_axi port widening must coalesce, as for the
// K/V readers' beats); normalize is fused into the store with ql dividers (one per element moved:
// the contract divides every element, o / l; data_lanes = 1 gives back one divider). The score and
// accumulate passes run (key, chunk, row) with the row innermost, padded to nr = max(R, min_rows,
// ceil(mac_span / nc)) rows (attn_pass_rows), so a row's loop-carried fp32 add (lane sum) recurs
// nr >= min_rows >= kAddLatency cycles later and its multiply-add (l = l * c + p, o = o * c + p * v)
// nc * nr >= mac_span >= kMulAddLatency cycles later: II=1, each row's order unchanged; the stage
// pass states these distances as true dependences (DEPENDENCE ... distance). Every loop is a single
// flattened pipeline at II=1.
//
// Software-pipelined online softmax: stage st scores tile st and accumulates tile st - 1 in ONE
// pipelined pass (key, chunk, row) whose body has a score half and an accumulate half. The rescale
// of tile st - 1 (c = exp(m - m'), o *= c, l *= c) rides on the accumulate half's first key. Each
// row's arithmetic, and its order, is the contract's exactly: only independent work (the next
// tile's scores) shares the cycles. The halves touch disjoint storage: the score tile s_tile and
// the block max mx are double-buffered by tile parity (score writes tile st's, accumulate reads
// tile st - 1's; the score's running max starts from mx of tile st - 1, which is the committed
// max), and m (committed max) is the accumulate half's own: the rescale factor c = exp(m - m') is
// recomputed on every chunk of the tile's first key (the same value; no stored copy whose write
// would trail its reads by the exp chain) and m = m' is written after the last of them.
//
//
// fp32 operators of the core (one instance for prefill and decode together; A = dot_lanes):
//   score       A mul (q*k) + A add (lane sums) + (A-1) add (tree) + 1 mul (scale) + 1 max compare
//   rescale     1 sub + 1 exp + (A+1) mul (o*c, l*c)       (the accumulate half's first key)
//   accumulate  1 sub + 1 exp + 1 add (l) + A mul (p*v) + A add (o)
//   normalize   ql div (fused into the store)
//   total       3A+2 mul, 3A+2 add/sub, 2 exp, ql div, 1 compare (per lane: 3 mul, 3 add), all
//               busy in the same cycles now (score and accumulate halves side by side)
// Its buffers are sized once for both: ROWS = rows_max = max(bq * group_max, heads_max) rows (q, o,
// lane sums, two score tiles) and TH = kv_heads_max tile heads (K/V tiles, two halves each).
//
// Cycles per job (steady state at II=1, the reader keeping up with one beat pair per cycle; each
// pipelined loop adds its fill depth once per entry, i.e. two loops per stage (pass, copy_rest;
// copy_rest about one cycle when it has nothing left) and four per job (rows, q load, its
// copy_rest, store), not counted below). R rows, nc = ceil(d / A), nr = max(R, min_rows,
// ceil(mac_span / nc)), nb = ceil(d / mem_lanes), nq = ceil(d / ql), th tile heads, n_keys keys, tiles =
// ceil(n_keys / kv_block), tile t of nk_t keys (kv_block, the last tile fewer; nk_t = 0 outside
// 0 .. tiles - 1), its beats per stream c_t = nk_t * th * nb:
//   rows                R                        (row table, attn_layer_compute)
//   q load + K of 0     max(R * nq, c_0)         (ql elements per cycle from DDR)
//   stage st = 0..tiles max(max(nk_st, nk_{st-1}) nc nr, c_{st+1}, c_st)
//                       (score tile st and accumulate tile st - 1 side by side, copy phase st + 1
//                        inside them, copy_rest the excess)
//   normalize + store   R * nq                   (ql elements per cycle to DDR)
// (the serial-pass core before: per tile max(2 nk_t nc nr + R nc, c_{t+1}); the first core:
// 2 R d + n_keys th nb + 2 n_keys nc nr + tiles R nc, the copy serial.)
// Prefill: the jobs one after another, ceil(t_len / bq) blocks x n_kv heads, job (t0, kvh) with
// R = bq * (n_heads / n_kv) (bq = min(BQ, t_len - t0)), th = 1, n_keys = pos0 + t0 + bq.
// Decode: one job, R = n_heads, th = n_kv, n_keys = pos + 1. Example, bitnet_b1_58-large decode
// (R = th = 16, d = 96, A = 16, kv_block = 16, ql = 4, n_keys = 129: nc = nb = 6, nr = 16,
// nq = 24, 8 full tiles and one of 1 key): 16 + 1536 + 9 * 1536 + 96 + 384 = 15856 cycles
// (serial passes 27568, first core 41088).
// The row capacity ROWS only sizes buffers: every loop runs over R (nr), never over ROWS.
// t_len == 1 through attention_prefill is decode's one job (R = n_heads) instead of n_kv jobs of
// R = group rows.
//
// The KV cache element type KT (f32, or f16 bit patterns; kv_cache.h) is deduced from the cache
// pointers: the reader widens each element exactly to f32 (kv_elem<KT>::load), so everything after
// it, and the numerics, are the same for both.
#pragma once

#include <cassert>
#include <cstdint>

#include "edgellm/attention_kv_tiles.h"
#include "edgellm/attention_plan.h"
#include "edgellm/attention_state.h"
#include "edgellm/dep_check.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "hls_stream.h"

namespace edgellm {

// max that propagates NaN from either side, like np.maximum.
inline f32 max_nan(f32 a, f32 b) { return (a > b || a != a) ? a : b; }

// The contract's lane tree: acc[j] += acc[j + h] for h = LANES/2 .. 1; returns acc[0]
// (LANES - 1 adders, log2(LANES) levels), unrolled and inlined into the score pipeline.
template <int LANES>
f32 attn_lane_tree(f32 acc[LANES]) {
#pragma HLS INLINE
  for (int h = LANES / 2; h >= 1; h /= 2) {
#pragma HLS UNROLL
    for (int j = 0; j < h; j++) {
#pragma HLS UNROLL
      acc[j] = acc[j] + acc[j + h];
    }
  }
  return acc[0];
}

// Rows of the stage pass's row loop (padded): a row's lane sums recur nr iterations apart (nr >=
// min_rows >= kAddLatency) and its o / l updates nc * nr apart (nc * nr >= mac_span >= kMulAddLatency),
// the distances the pass's DEPENDENCE pragmas state.
template <class C>
inline int attn_pass_rows(int n_rows, int nc) {
  const int by_mac = (C::mac_span + nc - 1) / nc;
  const int lo = by_mac > C::min_rows ? by_mac : C::min_rows;
  return n_rows < lo ? lo : n_rows;
}

// The attention core: nt tokens x nh query rows (row r = t * nh + g at absolute position row_pos[r]
// >= first_pos, reading tile head row_kv[r]; token t's rows one contiguous run of nh * d floats at
// element q_off + t * stride of q, and the same of out at o_off: beat-aligned, d a multiple of the
// data beat's floats QL) against keys 0..n_keys-1 arriving from the reader as tiles of kv_block
// positions x th heads. q and out: the act port's beats (one per cycle) or plain arrays. ROWS: row
// capacity; TH: tile heads capacity. Every loop is one flattened pipeline at II=1 (cycle counts in
// the header comment); the row index is innermost in the stage pass (padded to min_rows), so a
// row's loop-carried fp32 adds are >= min_rows iterations apart. Stage st scores tile st while it
// accumulates tile st - 1 (software-pipelined online softmax: the score half and the accumulate
// half of one loop body use disjoint halves of the K tile, V tile, score tile and block max), and
// copies K of tile st + 1 and V of tile st. Every row sees key 0, so every row starts on tile 0
// (no per-row flag: m = -inf, l = 0, o = 0 are applied on tile 0 instead of being initialized).
//
// A job in two parts (attention_layer.h attn_part: the keys before a K/V block boundary key0 while the
// layer's k and v linears run, the rest after): with `save` the job stops after its last tile and
// stores the rows' state instead of normalizing -- o unnormalized where the output goes, (l, m) as
// lm_beats beats [l, m, 0 ..] per row at lm + lm_off (lm_stride elements per token); a job with key0 > 0 resumes
// from that state (o, l, m loaded, the block max of tile key0 / kv_block - 1 set to m) and runs tiles
// key0 / kv_block .. only. The stages of the two parts are the whole job's stages in order, each row's
// arithmetic unchanged (the contract's blocks are aligned to position 0): bit-exact with one call.
template <class C, int ROWS, int TH, class PQ, class PO>
void attn_rows(const PQ *q, long q_off, const int row_pos[ROWS], const int row_kv[ROWS], int nt, int nh,
               long stride, int first_pos, int th, int n_keys, int d, f32 scale,
               hls::stream<f32_beat<C::mem_lanes> > &ks, hls::stream<f32_beat<C::mem_lanes> > &vs,
               PO *out, long o_off, int key0, bool save, PO *lm, long lm_off, long lm_stride) {
  const int A = C::dot_lanes, KB = C::kv_block, ML = C::mem_lanes, QL = C::ql;
  const int n_rows = nt * nh;
  const int t0 = key0 / KB;  // the first tile (key0: a multiple of KB)
  const bool resume = t0 > 0;
  f32 qb[ROWS][C::dp];  // query rows, max(A, QL) banks (small: storage left to HLS)
#pragma HLS ARRAY_PARTITION variable = qb dim = 2 cyclic factor = C::qo_part
  f32 m[ROWS], l[ROWS];  // committed max, denominator
  f32 mx[2][ROWS];  // block max by tile parity: each half read once (row sr) and written once a cycle
#pragma HLS ARRAY_PARTITION variable = mx dim = 1 complete
  f32 o[ROWS][C::dp];  // running output, max(A, QL) banks (small: storage left to HLS)
#pragma HLS ARRAY_PARTITION variable = o dim = 2 cyclic factor = C::qo_part
  f32 acc[ROWS][C::dot_lanes];  // score lane partial sums of the key in flight
#pragma HLS ARRAY_PARTITION variable = acc dim = 2 complete
  f32 kt[2][KB][TH][C::dkv], vt[2][KB][TH][C::dkv];  // K/V ping-pong, max(A, mem_lanes) banks
#pragma HLS ARRAY_PARTITION variable = kt dim = 4 cyclic factor = C::kv_part
#pragma HLS ARRAY_PARTITION variable = vt dim = 4 cyclic factor = C::kv_part
  f32 s_tile[2][ROWS][KB];  // scores by tile parity: one half written, the other read
#pragma HLS ARRAY_PARTITION variable = s_tile dim = 1 complete
#pragma HLS BIND_STORAGE variable = s_tile type = ram_2p impl = lutram
  const int nb = (d + ML - 1) / ML;                           // beats per K/V row
  const int nc = (d + A - 1) / A;                             // lane chunks per row (d >= 1)
  const int nq = d / QL;                                      // q / out beats per row (d % QL == 0)
  const int nr = attn_pass_rows<C>(n_rows, nc);               // padded row loop
  const int n_tiles = (n_keys + KB - 1) / KB;
  // q load: per token its nh rows, one contiguous run of nh * d floats (row r = t * nh + g), one beat
  // (QL floats) per cycle, beat j of the run at the run's first beat + j; copy phase 0 (K of tile 0)
  // rides along, copy_rest moves what is left
  attn_copy cp = attn_copy_phase<C>(t0, t0, n_tiles, n_keys, th, nb);
  EDGELLM_ATTN_LOOP(n_rows * nq);
  {
    EDGELLM_DEP_LOOP("attn_rows.load_q");
    EDGELLM_DEP_CLAIM(kt, 0);
    EDGELLM_DEP_CLAIM(vt, 0);
  load_q_tok:
    for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::bq
    load_q:
      for (int j = 0; j < nh * nq; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS * C::dp / C::ql
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = kt inter false
#pragma HLS DEPENDENCE variable = vt inter false
        EDGELLM_DEP_ITER(t * nh * nq + j);  // the pass's iteration over the job's tokens
        f32 v[QL];
#pragma HLS ARRAY_PARTITION variable = v complete
        chunk_get<QL>(q, q_off + t * stride, j, v);
        const int r = t * nh + j / nq, i0 = (j % nq) * QL;
        for (int k = 0; k < QL; k++) {
#pragma HLS UNROLL
          qb[r][i0 + k] = v[k];
        }
        attn_copy_step<C, TH>(cp, false, th, nb, kt, vt, ks, vs);
      }
    }
  }
  attn_copy_rest<C, TH>(cp, th, nb, kt, vt, ks, vs);
  if (resume) attn_load_state<C, ROWS>(out, o_off, lm, lm_off, stride, lm_stride, nt, nh, nq, t0, o, l, m, mx);
stage:
  for (int st = t0; st <= n_tiles; st++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = C::max_ctx / C::kv_block + 1
    const int hs = st & 1, ha = hs ^ 1;  // halves of tile st (scored) and tile st - 1 (accumulated)
    const int bs = st * KB, ba = bs - KB;  // their first keys
    const int nks = st < n_tiles ? attn_tile_keys<C>(n_keys, st) : 0;
    const int nka = st > t0 ? attn_tile_keys<C>(n_keys, st - 1) : 0;  // tile t0 - 1: done before a resume
    const bool diag_s = bs + nks - 1 > first_pos;  // some key is after some row's position
    const bool diag_a = ba + nka - 1 > first_pos;
    const bool first_s = st == 0, first_a = st == 1;  // m = -inf, l = 0, o = 0 before the tile
    const int nkey = nks > nka ? nks : nka;
    cp = attn_copy_phase<C>(st + 1, t0, n_tiles, n_keys, th, nb);
    // (key, chunk, row). Score half (tile st): A products per cycle into the row's lane sums; the
    // tree, scale and running block max when the row's last chunk is in. Accumulate half (tile
    // st - 1): on its first key c = exp(m - m') (0 on tile 0, recomputed per chunk: the same value),
    // o = o * c, l = l * c, and m = m' after the last chunk; then p = exp(s - m') (recomputed per
    // chunk, the same value), l += p on the row's first chunk, o += p * v on A elements per cycle.
    // Loop-carried values (true dependences, distances in iterations): a row's lane sums acc recur
    // nr >= min_rows apart (fadd), its block max mx and o / l nc * nr >= mac_span apart (compare;
    // multiply-add); m is read on the tile's first key and written after its last chunk, never read
    // after that in the pass; s_tile, kt and vt: the halves read and written are distinct.
    enum { kLaneDist = C::min_rows, kMacDist = C::mac_span };
    EDGELLM_ATTN_LOOP(nkey * nc * nr);
    int sj = 0, sc = 0, sr = 0;
    {
      EDGELLM_DEP_LOOP("attn_rows.pass");  // C simulation with EDGELLM_CHECK_DEPS: the claims checked
      EDGELLM_DEP_CLAIM(acc, kLaneDist);
      EDGELLM_DEP_CLAIM(mx, kLaneDist);
      EDGELLM_DEP_CLAIM(l, kMacDist);
      EDGELLM_DEP_CLAIM(o, kMacDist);
      EDGELLM_DEP_CLAIM(m, 0);
      EDGELLM_DEP_CLAIM(s_tile, 0);
      EDGELLM_DEP_CLAIM(kt, 0);
      EDGELLM_DEP_CLAIM(vt, 0);
    pass:
      for (int it = 0; it < nkey * nc * nr; it++) {
#pragma HLS LOOP_TRIPCOUNT min = C::min_rows max = C::kv_block * C::chunks_max * ROWS
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = kLaneDist true
#pragma HLS DEPENDENCE variable = mx inter RAW distance = kLaneDist true
#pragma HLS DEPENDENCE variable = l inter RAW distance = kMacDist true
#pragma HLS DEPENDENCE variable = o inter RAW distance = kMacDist true
#pragma HLS DEPENDENCE variable = m inter false
#pragma HLS DEPENDENCE variable = s_tile inter false
#pragma HLS DEPENDENCE variable = kt inter false
#pragma HLS DEPENDENCE variable = vt inter false
        EDGELLM_DEP_ITER(it);
        if (sr < n_rows) {
          const int kv = row_kv[sr];
          const f32 mx0 = mx[0][sr], mx1 = mx[1][sr];  // row sr's block max in both halves, one read each
          const f32 mx_s = hs ? mx1 : mx0, mx_a = hs ? mx0 : mx1;  // tile st's, tile st - 1's (ha = hs ^ 1)
          if (sj < nks) {
            f32 lane[C::dot_lanes];
#pragma HLS ARRAY_PARTITION variable = lane complete
            for (int j = 0; j < A; j++) {
#pragma HLS UNROLL
              const int i = sc * A + j;
              EDGELLM_DEP_R_IF(i < d, kt, kt[hs][sj][kv][i]);
              EDGELLM_DEP_R_IF(sc != 0, acc, acc[sr][j]);
              const f32 prod = i < d ? qb[sr][i] * kt[hs][sj][kv][i] : 0.0f;
              lane[j] = (sc == 0 ? 0.0f : acc[sr][j]) + prod;
            }
            if (sc == nc - 1) {
              const f32 s = attn_lane_tree<C::dot_lanes>(lane) * scale;
              s_tile[hs][sr][sj] = s;
              EDGELLM_DEP_W(s_tile, s_tile[hs][sr][sj]);
              const bool valid = !diag_s || bs + sj <= row_pos[sr];
              EDGELLM_DEP_R_IF(sj > 0, mx, mx[hs][sr]);
              EDGELLM_DEP_R_IF(sj == 0 && !first_s, mx, mx[ha][sr]);
              const f32 base = sj > 0 ? mx_s : first_s ? -pos_inf() : mx_a;
              mx[hs][sr] = valid ? max_nan(base, s) : base;
              EDGELLM_DEP_W(mx, mx[hs][sr]);
            } else {
              for (int j = 0; j < A; j++) {
#pragma HLS UNROLL
                acc[sr][j] = lane[j];
                EDGELLM_DEP_W(acc, acc[sr][j]);
              }
            }
          }
          if (sj < nka && (!diag_a || ba + sj <= row_pos[sr])) {
            EDGELLM_DEP_R(mx, mx[ha][sr]);
            const f32 mn = mx_a;  // the block max after tile st - 1
            const bool head = sj == 0;   // the tile's first key: rescale by c
            EDGELLM_DEP_R_IF(head && !first_a, m, m[sr]);
            const f32 c = head && !first_a ? exp_f(m[sr] - mn) : 0.0f;
            if (head && sc == nc - 1) {
              m[sr] = mn;
              EDGELLM_DEP_W(m, m[sr]);
            }
            EDGELLM_DEP_R(s_tile, s_tile[ha][sr][sj]);
            const f32 p = exp_f(s_tile[ha][sr][sj] - mn);
            if (sc == 0) {
              EDGELLM_DEP_R_IF(!(head && first_a), l, l[sr]);
              l[sr] = (head ? (first_a ? 0.0f : l[sr] * c) : l[sr]) + p;
              EDGELLM_DEP_W(l, l[sr]);
            }
            for (int j = 0; j < A; j++) {
#pragma HLS UNROLL
              const int i = sc * A + j;
              if (i < d) {
                EDGELLM_DEP_R_IF(!(head && first_a), o, o[sr][i]);
                EDGELLM_DEP_R(vt, vt[ha][sj][kv][i]);
                const f32 ob = head ? (first_a ? 0.0f : o[sr][i] * c) : o[sr][i];  // first: 0 * 0, exactly
                o[sr][i] = ob + p * vt[ha][sj][kv][i];
                EDGELLM_DEP_W(o, o[sr][i]);
              }
            }
          }
        }
        if (++sr == nr) {
          sr = 0;
          if (++sc == nc) {
            sc = 0;
            sj++;
          }
        }
        attn_copy_step<C, TH>(cp, false, th, nb, kt, vt, ks, vs);
      }
    }
    attn_copy_rest<C, TH>(cp, th, nb, kt, vt, ks, vs);
  }
  // normalize fused with the store, per token its run of nh rows: out = o / l, one beat (QL elements,
  // QL dividers) per cycle at the run's first beat + j; a saved part stores o as it is, then (l, m)
  EDGELLM_ATTN_LOOP(n_rows * nq);
store_tok:
  for (int t = 0; t < nt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = C::bq
  normalize_store:
    for (int j = 0; j < nh * nq; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS * C::dp / C::ql
#pragma HLS PIPELINE II = 1
      const int r = t * nh + j / nq, i0 = (j % nq) * QL;
      f32 v[QL];
#pragma HLS ARRAY_PARTITION variable = v complete
      for (int k = 0; k < QL; k++) {
#pragma HLS UNROLL
        v[k] = save ? o[r][i0 + k] : o[r][i0 + k] / l[r];
      }
      chunk_put<QL>(out, o_off + t * stride, j, v);
    }
  }
  if (save) attn_store_lm<C, ROWS>(lm, lm_off, lm_stride, nt, nh, l, m);
}

}  // namespace edgellm
