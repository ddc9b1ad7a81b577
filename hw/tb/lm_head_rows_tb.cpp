// ctypes entry points for the multi-row LM head from the head FIFOs (tests/test_hw_lm_head_rows.py): the
// fetchers (weight_fetch.h lm_fetch_rows, one per port, each reading its own copy of the head) and the head
// (lm_head.h, rows popped from the FIFOs as the top pops them) as processes of one DATAFLOW region, as in
// top.h. With MAX_TOK = kHeadRowsMax the dot process is the token lanes (lm_dot_rows); with MAX_TOK = 1
// it is the single-row head the top builds today (lm_dot_fifo).
#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/dataflow.h"
#include "edgellm/ew_passes.h"
#include "edgellm/lm_head.h"
#include "edgellm/named_config.h"
#include "edgellm/numerics.h"
#include "edgellm/weight_fetch.h"

using namespace edgellm;

namespace {
template <int ROWS, int NP, int S0 = 1, int S1 = 1, int S2 = 1, int S3 = 1>
struct Cfg_fields : lm_head_config_base {
  static const int P = 16, HID_MAX = 4096, V_MAX = 200000, MAX_TOK = ROWS, K_TOP = 64, NPORTS = NP;
  static const int SHARE0 = S0, SHARE1 = S1, SHARE2 = S2, SHARE3 = S3;
};
template <int ROWS, int NP, int S0 = 1, int S1 = 1, int S2 = 1, int S3 = 1>
struct Cfg : lm_head_traits<Cfg_fields<ROWS, NP, S0, S1, S2, S3> > {};

int8_t g_q[kHeadRowsMax * 4096];
f32 g_qs[kHeadRowsMax];
long g_beats[4];  // beats each port's fetcher pushed in the last call
long g_left;      // FIFO words left over after the last call (the head popped fewer than were pushed)

template <class C, int PORT>
void fetch_counted(const int8_t *const &w, const int &n_tok, const int &vocab, const int &hidden,
                   hls::stream<typename C::beat_t> &fifo) {
  hls::stream<typename C::beat_t> tap("tap");  // the beats pushed, counted on their way to the FIFO
  EDGELLM_DEPTH(tap, 1 << 24);                 // holds a whole fetch (threaded C simulation)
  lm_fetch_rows<C, PORT>(w, n_tok, vocab, hidden, tap);
  long n = 0;
  while (!tap.empty()) {
    fifo.write(tap.read());
    n++;
  }
  g_beats[PORT] = n;
}

// One call: NP fetchers and the head over FIFOs of the top's depth.
template <class C>
void run(const int8_t *const &w0, const int8_t *const &w1, const int8_t *const &w2, const int8_t *const &w3,
         const int &n_tok, const f32 *const &row_scale, const int &vocab, const int &hidden, f32 *const &logits,
         int32_t *const &argmax, const int &k, int32_t *const &top_idx, f32 *const &top_val) {
  EDGELLM_REGION;
  enum { kDepth = facts::kHeadFifoDepth };  // the top's hq FIFOs
  typedef typename C::beat_t beat_t;
  hls::stream<beat_t> hq0("hq0"), hq1("hq1"), hq2("hq2"), hq3("hq3");
  EDGELLM_DEPTH(hq0, kDepth);
  EDGELLM_DEPTH(hq1, kDepth);
  EDGELLM_DEPTH(hq2, kDepth);
  EDGELLM_DEPTH(hq3, kDepth);
  g_beats[0] = g_beats[1] = g_beats[2] = g_beats[3] = 0;
  // the fetcher reads the whole of its copy (all rows of the copy): beats on chip are what it pushed
  EDGELLM_PROCESS(fetch_counted<C, 0>(w0, n_tok, vocab, hidden, hq0));
  if (C::NPORTS > 1) EDGELLM_PROCESS(fetch_counted<C, (C::NPORTS > 1 ? 1 : 0)>(w1, n_tok, vocab, hidden, hq1));
  if (C::NPORTS > 2) EDGELLM_PROCESS(fetch_counted<C, (C::NPORTS > 2 ? 2 : 0)>(w2, n_tok, vocab, hidden, hq2));
  if (C::NPORTS > 3) EDGELLM_PROCESS(fetch_counted<C, (C::NPORTS > 3 ? 3 : 0)>(w3, n_tok, vocab, hidden, hq3));
  EDGELLM_PROCESS(lm_head<C>(g_q, g_qs, n_tok, &hq0, &hq1, &hq2, &hq3, row_scale, vocab, hidden, true, logits,
                             argmax, k, top_idx, top_val));
  EDGELLM_JOIN;
  g_left = (long)(hq0.size() + hq1.size() + hq2.size() + hq3.size());
}

template <int ROWS>
int dispatch(int nports, const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3, int n_tok,
             const f32 *row_scale, int vocab, int hidden, f32 *logits, int32_t *argmax, int k, int32_t *top_idx,
             f32 *top_val) {
  // nports: 1, 2, 4 (equal shares), or a share configuration: 49 (4 ports 9:7:7:9), 213 (3 ports 2:1:3)
  if (nports == 1) {
    run<Cfg<ROWS, 1> >(w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx, top_val);
  } else if (nports == 2) {
    run<Cfg<ROWS, 2> >(w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx, top_val);
  } else if (nports == 4) {
    run<Cfg<ROWS, 4> >(w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx, top_val);
  } else if (nports == 49) {
    run<Cfg<ROWS, 4, 9, 7, 7, 9> >(w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx,
                                   top_val);
  } else if (nports == 213) {
    run<Cfg<ROWS, 3, 2, 1, 3> >(w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx,
                                top_val);
  } else {
    return -1;
  }
  return 0;
}
}  // namespace

extern "C" {

int tb_head_rows_max() { return kHeadRowsMax; }

// x: normed fp32 [n_tok][hidden] -> quantize (numerics.h) -> the head with `rows` token lanes (kHeadRowsMax,
// 3 or 1) over nports (1, 2, 4) ports or a share configuration (dispatch), port p reading its copy w_p.
// Returns -1 on bad sizes.
int tb_lm_head_rows(int rows, int nports, const f32 *x, int n_tok, const int8_t *w0, const int8_t *w1,
                    const int8_t *w2, const int8_t *w3, const f32 *row_scale, int vocab, int hidden, f32 *logits,
                    int32_t *argmax, int k, int32_t *top_idx, f32 *top_val) {
  if (n_tok < 1 || n_tok > kHeadRowsMax || hidden > 4096 || hidden % 16 || k < 1 || k > 64) return -1;
  for (int t = 0; t < n_tok; t++) g_qs[t] = quantize(x + (long)t * hidden, hidden, g_q + t * hidden);
  if (rows == kHeadRowsMax)
    return dispatch<kHeadRowsMax>(nports, w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k,
                                  top_idx, top_val);
  if (rows == 3)
    return dispatch<3>(nports, w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx,
                       top_val);
  if (rows == 1)
    return dispatch<1>(nports, w0, w1, w2, w3, n_tok, row_scale, vocab, hidden, logits, argmax, k, top_idx,
                       top_val);
  return -1;
}

// Beats port p's fetcher pushed in the last call, and the FIFO words left unpopped.
long tb_beats(int p) { return p >= 0 && p < 4 ? g_beats[p] : -1; }
long tb_left() { return g_left; }
long long tb_deadlocks() { return csim_deadlocks(); }

}  // extern "C"
