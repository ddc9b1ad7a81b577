// ctypes entry points for the fabric LM head (tests/test_hw_lm_head.py).
#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/ew_passes.h"
#include "edgellm/lm_head.h"
#include "edgellm/named_config.h"
#include "edgellm/numerics.h"

using namespace edgellm;

// 16 MACs/cycle, hidden up to 4096, vocabulary up to 200000, 4 tokens per block, top-64, one port
struct Cfg_fields : lm_head_config_base {
  static const int P = 16, HID_MAX = 4096, V_MAX = 200000, MAX_TOK = 4, K_TOP = 64;
};
// The same head streaming its rows over 2 and 4 weight ports (one pointer each).
struct Cfg2_fields : Cfg_fields {
  static const int NPORTS = 2;
};
struct Cfg4_fields : Cfg_fields {
  static const int NPORTS = 4;
};
// Unequal port shares (lm_head_config.h lm_block_row): 4 ports 9:7:7:9 (the kv260's), 2 ports 3:1, 3 ports
// 2:1:3. The entry points take a configuration id: 1, 2, 4 (equal shares over that many ports), 49, 31, 213.
template <int NP, int S0, int S1, int S2 = 1, int S3 = 1>
struct CfgS_fields : Cfg_fields {
  static const int NPORTS = NP, SHARE0 = S0, SHARE1 = S1, SHARE2 = S2, SHARE3 = S3;
};
typedef lm_head_traits<Cfg_fields> Cfg;
typedef lm_head_traits<Cfg2_fields> Cfg2;
typedef lm_head_traits<Cfg4_fields> Cfg4;
typedef lm_head_traits<CfgS_fields<4, 9, 7, 7, 9> > Cfg4s;
typedef lm_head_traits<CfgS_fields<2, 3, 1> > Cfg2s;
typedef lm_head_traits<CfgS_fields<3, 2, 1, 3> > Cfg3s;

// f.template run<C>() for the configuration of id `cfg` (see above); -1 for an unknown id.
template <class F>
static int with_cfg(int cfg, F &f) {
  switch (cfg) {
    case 1: return f.template run<Cfg>();
    case 2: return f.template run<Cfg2>();
    case 4: return f.template run<Cfg4>();
    case 49: return f.template run<Cfg4s>();
    case 31: return f.template run<Cfg2s>();
    case 213: return f.template run<Cfg3s>();
    default: return -1;
  }
}
static int8_t g_q[64 * 4096];
static f32 g_qs[64];
static ap_uint<128> g_wide[4][1 << 16];  // 1 MiB head per port for the wide-port path

// Drain of the dot process (tb_lm_dot) and a packet source for the scoring process (tb_lm_score).
static int g_pk_blk[1 << 16], g_pk_t[1 << 16];
static int32_t g_pk_acc[1 << 16][4];

template <class C>
static int dot_only(const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3, int nt, int vocab,
                    int hidden) {
  static typename C::beat_t qb[C::MAX_TOK][C::BEATS_MAX];
  const int nbeats = (hidden + C::P - 1) / C::P;
  for (int t = 0; t < nt; t++)
    for (int j = 0; j < nbeats; j++) qb[t][j] = lm_read_beat<C::P>(g_q, t, j, hidden);
  hls::stream<LmDotPacket<C> > s;
  lm_dot_blocks<C>(w0, w1, w2, w3, qb, nt, vocab, hidden, s);
  int n = 0;
  while (!s.empty()) {
    if (n >= (1 << 16)) return -1;
    LmDotPacket<C> pk = s.read();
    g_pk_blk[n] = pk.blk;
    g_pk_t[n] = pk.t;
    for (int p = 0; p < C::NPORTS; p++) g_pk_acc[n][p] = (int32_t)pk.acc[p];
    n++;
  }
  return n;
}

template <class C>
static void score_only(const int32_t *acc, const f32 *qs, int nt, const f32 *row_scale, int vocab, f32 *logits,
                       int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  hls::stream<LmDotPacket<C> > s;
  const int nblk = C::blocks(vocab);
  for (int b = 0; b < nblk; b++)
    for (int t = 0; t < nt; t++) {
      LmDotPacket<C> pk;
      pk.blk = b;
      pk.t = t;
      for (int p = 0; p < C::NPORTS; p++) {
        const int v = lm_block_row<C>(b, p);
        pk.acc[p] = v >= 0 && v < vocab ? acc[(long)t * vocab + v] : 0;
      }
      s.write(pk);
    }
  hls::stream<f32> sc;  // the scale process's FIFO, then the scores (lm_head_stream's order)
  lm_scales<C>(row_scale, vocab, sc);
  static f32 qsb[C::MAX_TOK];
  for (int t = 0; t < nt; t++) qsb[t] = qs[t];
  lm_score<C>(s, sc, qsb, nt, vocab, true, logits, argmax, k, top_idx, top_val);
}

// Each entry point's body for one configuration (with_cfg).
struct HeadPorts {
  const int8_t *w0, *w1, *w2, *w3;
  int n_tok, vocab, hidden, k;
  const f32 *row_scale;
  f32 *logits, *top_val;
  int32_t *argmax, *top_idx;
  template <class C>
  int run() {
    lm_head<C>(g_q, g_qs, n_tok, w0, w1, w2, w3, row_scale, vocab, hidden, true, logits, argmax, k, top_idx,
               top_val);
    return 0;
  }
};

struct DotOnly {
  const int8_t *w0, *w1, *w2, *w3;
  int n_tok, vocab, hidden, max_pk;
  int32_t *acc, *order;
  template <class C>
  int run() {
    const int n = dot_only<C>(w0, w1, w2, w3, n_tok, vocab, hidden);
    if (n < 0 || n > max_pk) return -1;
    for (int i = 0; i < n; i++) {
      order[2 * i] = g_pk_blk[i];
      order[2 * i + 1] = g_pk_t[i];
      if (g_pk_t[i] < 0 || g_pk_t[i] >= n_tok) return -1;
      for (int p = 0; p < C::NPORTS; p++) {
        const int v = lm_block_row<C>(g_pk_blk[i], p);
        if (v >= 0 && v < vocab) acc[(long)g_pk_t[i] * vocab + v] = g_pk_acc[i][p];
      }
    }
    return n;
  }
};

struct ScoreOnly {
  const int32_t *acc;
  const f32 *qs, *row_scale;
  int n_tok, vocab, k;
  f32 *logits, *top_val;
  int32_t *argmax, *top_idx;
  template <class C>
  int run() {
    score_only<C>(acc, qs, n_tok, row_scale, vocab, logits, argmax, k, top_idx, top_val);
    return 0;
  }
};

extern "C" {

// x: normed fp32 [n_tok][hidden] -> quantize (numerics.h) -> lm_head. Returns -1 on bad sizes.
int tb_lm_head(const f32 *x, int n_tok, const int8_t *w, const f32 *row_scale, int vocab, int hidden,
               int write_logits, f32 *logits, int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  if (n_tok > 64 || hidden > 4096 || k > 64) return -1;
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  lm_head<Cfg>(g_q, g_qs, n_tok, w, row_scale, vocab, hidden, write_logits != 0, logits, argmax, k, top_idx,
               top_val);
  return 0;
}

// Same through a wide ap_uint<128> weight port (hidden % 16 == 0).
int tb_lm_head_wide(const f32 *x, int n_tok, const int8_t *w, const f32 *row_scale, int vocab, int hidden,
                    f32 *logits, int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  long beats = (long)vocab * hidden / 16;
  if (n_tok > 64 || hidden > 4096 || k > 64 || hidden % 16 || beats > (long)(sizeof(g_wide[0]) / 16)) return -1;
  for (long i = 0; i < beats; i++) g_wide[0][i] = lm_read_beat<16>(w, 0, (int)i, (int)(beats * 16));
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  lm_head<Cfg>(g_q, g_qs, n_tok, g_wide[0], row_scale, vocab, hidden, true, logits, argmax, k, top_idx,
               top_val);
  return 0;
}

// The head of configuration `cfg` (with_cfg: 1, 2, 4 equal ports, or a share configuration), port p
// reading head copy w[p] (byte pointers). Returns -1 on bad sizes or configuration.

int tb_lm_head_ports(int cfg, const f32 *x, int n_tok, const int8_t *w0, const int8_t *w1, const int8_t *w2,
                     const int8_t *w3, const f32 *row_scale, int vocab, int hidden, f32 *logits, int32_t *argmax,
                     int k, int32_t *top_idx, f32 *top_val) {
  if (n_tok > 64 || hidden > 4096 || k > 64) return -1;
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  HeadPorts f = {w0, w1, w2, w3, n_tok, vocab, hidden, k, row_scale, logits, top_val, argmax, top_idx};
  return with_cfg(cfg, f);
}

// Cfg4 through four wide ap_uint<128> ports (the synthesized form), port p reading copy w[p].
int tb_lm_head_wide4(const f32 *x, int n_tok, const int8_t *w0, const int8_t *w1, const int8_t *w2,
                     const int8_t *w3, const f32 *row_scale, int vocab, int hidden, f32 *logits, int32_t *argmax,
                     int k, int32_t *top_idx, f32 *top_val) {
  long beats = (long)vocab * hidden / 16;
  if (n_tok > 64 || hidden > 4096 || k > 64 || hidden % 16 || beats > (long)(sizeof(g_wide[0]) / 16)) return -1;
  const int8_t *w[4] = {w0, w1, w2, w3};
  for (int p = 0; p < 4; p++)
    for (long i = 0; i < beats; i++) g_wide[p][i] = lm_read_beat<16>(w[p], 0, (int)i, (int)(beats * 16));
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  lm_head<Cfg4>(g_q, g_qs, n_tok, g_wide[0], g_wide[1], g_wide[2], g_wide[3], row_scale, vocab, hidden, true,
                logits, argmax, k, top_idx, top_val);
  return 0;
}

// The dot process alone (lm_dot_blocks, configuration `cfg` as tb_lm_head_ports, byte pointers): drains
// its packets in stream order into acc[nt][vocab] (row v of token t) and order[n][2] = (blk, t) per
// packet; returns the packet count n, or -1 on bad sizes / configuration, more than max_pk packets, or a
// packet naming a token >= n_tok.

int tb_lm_dot(int cfg, const f32 *x, int n_tok, const int8_t *w0, const int8_t *w1, const int8_t *w2,
              const int8_t *w3, int vocab, int hidden, int32_t *acc, int32_t *order, int max_pk) {
  if (n_tok > 4 || hidden > 4096) return -1;
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  DotOnly f = {w0, w1, w2, w3, n_tok, vocab, hidden, max_pk, acc, order};
  return with_cfg(cfg, f);
}

// The scoring process alone (lm_score): given exact dot products acc[nt][vocab], feeds it the
// packets in the dot process's (block, token) order. Returns -1 on bad sizes / configuration.

int tb_lm_score(int cfg, const int32_t *acc, const f32 *qs, int n_tok, const f32 *row_scale, int vocab,
                f32 *logits, int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  if (n_tok < 1 || n_tok > 4 || k > 64) return -1;
  ScoreOnly f = {acc, qs, row_scale, n_tok, vocab, k, logits, top_val, argmax, top_idx};
  return with_cfg(cfg, f);
}

// Top-k / argmax of given logits (same insertion network), for tie tests: one token.
void tb_topk(const f32 *logits, int n, int k, int32_t *argmax, int32_t *top_idx, f32 *top_val) {
  f32 tv[64];
  int32_t ti[64];
  for (int j = 0; j < 64; j++) {
    tv[j] = 0.0f;
    ti[j] = -1;
  }
  int32_t best = -1;
  f32 bv = 0.0f;
  for (int v = 0; v < n; v++) {
    if (best < 0 || logits[v] > bv) {
      bv = logits[v];
      best = v;
    }
    topk_insert<64>(tv, ti, logits[v], v);
  }
  *argmax = best;
  for (int j = 0; j < k; j++) {
    top_idx[j] = ti[j];
    top_val[j] = ti[j] >= 0 ? tv[j] : 0.0f;
  }
}

}  // extern "C"
