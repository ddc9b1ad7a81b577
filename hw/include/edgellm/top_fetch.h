// The top's weight fetchers (top.h edgellm_top_impl runs them beside the engine): fetch_program<P>
// walks the descriptor program through weight port P and pushes the port's share of every linear
// (lin_fetch: MM::fetch, layer_matmul.h / lowbit_policy.h) and of the LM head's rows into its FIFOs,
// in the order the engine pops them (layer_schedule.h layer_linear_job); FetchPorts runs one per port.
#pragma once

#include <cstdint>

#include "edgellm/dataflow.h"
#include "edgellm/interface.h"
#include "edgellm/layer_config.h"
#include "edgellm/layer_schedule.h"
#include "edgellm/lowbit_gear.h"
#include "edgellm/program_check.h"
#include "edgellm/top_program.h"
#include "edgellm/weight_fetch.h"

namespace edgellm {

// Port P's share of linear lin for n tokens (fetch_program): MM::fetch with its image's byte offset base
// (port 0's image for a low-bit design, which also hands over the linear's record).
// SIDE: the port's side stream under the low-bit weight gearbox (lowbit_gear.h: the given words of port 0 /
// 3, the pass counts of port 1 / 2), FetchNoSide elsewhere.
template <class TC, int P, int LB = mm_is_lowbit<typename TC::mm>::value>
struct lin_fetch {
  template <class SIDE>
  static void run(const typename TC::wbeat_t *w, long base, const layer_desc &, int lin, int n,
                  hls::stream<typename TC::word_t> &wq, SIDE &) {
    typedef typename TC::layer C;
    TC::mm::template fetch<P>(w, base, lin_out<C>(lin), lin_in<C>(lin), n, wq);
  }
};
template <class TC, int P>
struct lin_fetch<TC, P, 1> {
  template <class SIDE>
  static void run(const typename TC::wbeat_t *w, long base, const layer_desc &d, int lin, int n,
                  hls::stream<typename TC::word_t> &wq, SIDE &side) {
    typedef typename TC::layer C;
    TC::mm::template fetch<P>(w, base, d.lb[lin], lin_out<C>(lin), lin_in<C>(lin), n, wq, side);
  }
};

// The end of a fetcher's program: a count FIFO's 0 (lb_lane_merge stops), nothing on other side streams.
inline void fetch_side_end(FetchNoSide &) {}
inline void fetch_side_end(hls::stream<lb_beat_t> &) {}
inline void fetch_side_end(hls::stream<lb_count_t> &cq) { cq.write((lb_count_t)0); }

// Fetcher of weight port P: the same program through w (its own m_axi argument, R-byte beats), pushing
// port P's share of every linear's tiles into wq (MM::fetch, weight_fetch.h) and its LM-head rows into
// hq, in the order the engine pops them. Nothing for a bad header or a skipped descriptor (as the
// engine). The weight regions start on whole beats (the memory plan aligns them to 4 KiB, matrices to
// the widest beat).
// SIDE: the port's gearbox stream (lin_fetch); the count FIFO gets its 0 at every end of the program.
template <class TC, int P, class SIDE>
void fetch_program_body(const typename TC::wbeat_t *w, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                        hls::stream<typename TC::word_t> &wq, hls::stream<typename TC::hbeat_t> &hq, SIDE &side) {
#pragma HLS INLINE
  typedef typename TC::layer C;
  typedef typename TC::head HEAD;
  enum { kMaxDesc = TC::max_desc };
  uint32_t hdr[HDR_WORDS];
  read_header(w, hdr_off, hdr);
  if (check_program<TC>(w, hdr_off, prog_off, n_desc, hdr).code != ST_OK) {  // as the engine
    fetch_side_end(side);
    return;
  }
fetch_desc:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[DESC_WORDS];
    read_words<DESC_WORDS>(w, prog_off + i * (uint32_t)(DESC_WORDS * 4), d);
    const int act = desc_action<TC>(d, i, false);
    if (act == ACT_LAYER) {
      uint32_t ld[LD_WORDS];
      read_words<LD_WORDS>(w, hdr[HDR_LAYER_TABLE] + d[D_LAYER] * (uint32_t)(LD_WORDS * 4), ld);
      layer_desc lbd;  // the low-bit records (a ternary design leaves them unset and unread)
      lb_records<TC>::load(w, hdr, d[D_LAYER], lbd);
      // the layer's linear jobs in the order its schedule runs them (decoder_layer.h layer_slot_run)
      const int t_len = (int)d[D_T_LEN], halves = layer_halves<C>(t_len, false);
    fetch_linears:
      for (int j = 0; j < layer_linear_jobs(halves); j++) {
#pragma HLS LOOP_TRIPCOUNT min = 7 max = 14
        int lin, t0, n;
        layer_linear_job<C, typename TC::mm>(j, t_len, halves, lin, t0, n);
        lin_fetch<TC, P>::run(w, (long)hdr[HDR_WEIGHTS] + (long)ld[LD_W_OFF + lin], lbd, lin, n, wq, side);
      }
    } else if (act == ACT_HEAD && P < HEAD::NPORTS) {
      const int n_rows = d[D_N_ROWS] ? (int)d[D_N_ROWS] : 1;  // <= HEAD::MAX_TOK: the rows stream once
      lm_fetch_rows<HEAD, (P < HEAD::NPORTS ? P : 0)>(w + hdr[HDR_HEAD_W] / HEAD::P, n_rows, TC::vocab, C::hidden,
                                                      hq);
    }
  }
  fetch_side_end(side);
}

// The fetcher process of port P: without a side stream (no gearbox), or with its gearbox stream.
template <class TC, int P>
void fetch_program(const typename TC::wbeat_t *w, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                   hls::stream<typename TC::word_t> &wq, hls::stream<typename TC::hbeat_t> &hq) {
#pragma HLS INLINE off
  FetchNoSide none;
  fetch_program_body<TC, P>(w, hdr_off, prog_off, n_desc, wq, hq, none);
}
template <class TC, int P, class SIDE>
void fetch_program(const typename TC::wbeat_t *w, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                   hls::stream<typename TC::word_t> &wq, hls::stream<typename TC::hbeat_t> &hq, SIDE &side) {
#pragma HLS INLINE off
  fetch_program_body<TC, P>(w, hdr_off, prog_off, n_desc, wq, hq, side);
}

// The fetchers of the first NP weight ports (TC::fetch_ports), one process each.
template <class TC, int NP = TC::fetch_ports>
struct FetchPorts;

// Every argument by reference: the fetchers are processes of the caller's region (dataflow.h).
#define EDGELLM_FETCH_ARGS                                                                           \
  const typename TC::wbeat_t *const &w0, const typename TC::wbeat_t *const &w1,                          \
      const typename TC::wbeat_t *const &w2, const typename TC::wbeat_t *const &w3,                      \
      const uint32_t &hdr_off, const uint32_t &prog_off, const uint32_t &n_desc,                            \
      hls::stream<typename TC::word_t> &wq0,                                                                \
      hls::stream<typename TC::word_t> &wq1, hls::stream<typename TC::word_t> &wq2,                         \
      hls::stream<typename TC::word_t> &wq3, hls::stream<typename TC::hbeat_t> &hq0,                        \
      hls::stream<typename TC::hbeat_t> &hq1, hls::stream<typename TC::hbeat_t> &hq2,                       \
      hls::stream<typename TC::hbeat_t> &hq3

template <class TC>
struct FetchPorts<TC, 1> {
  static void run(EDGELLM_FETCH_ARGS) {
#pragma HLS INLINE
    EDGELLM_PROCESS(fetch_program<TC, 0>(w0, hdr_off, prog_off, n_desc, wq0, hq0));
    (void)w1, (void)w2, (void)w3, (void)wq1, (void)wq2, (void)wq3, (void)hq1, (void)hq2, (void)hq3;
  }
};
template <class TC>
struct FetchPorts<TC, 2> {
  static void run(EDGELLM_FETCH_ARGS) {
#pragma HLS INLINE
    EDGELLM_PROCESS(fetch_program<TC, 0>(w0, hdr_off, prog_off, n_desc, wq0, hq0));
    EDGELLM_PROCESS(fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq1, hq1));
    (void)w2, (void)w3, (void)wq2, (void)wq3, (void)hq2, (void)hq3;
  }
};
template <class TC>
struct FetchPorts<TC, 3> {
  static void run(EDGELLM_FETCH_ARGS) {
#pragma HLS INLINE
    EDGELLM_PROCESS(fetch_program<TC, 0>(w0, hdr_off, prog_off, n_desc, wq0, hq0));
    EDGELLM_PROCESS(fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq1, hq1));
    EDGELLM_PROCESS(fetch_program<TC, 2>(w2, hdr_off, prog_off, n_desc, wq2, hq2));
    (void)w3, (void)wq3, (void)hq3;
  }
};
template <class TC>
struct FetchPorts<TC, 4> {
  static void run(EDGELLM_FETCH_ARGS) {
#pragma HLS INLINE
    EDGELLM_PROCESS(fetch_program<TC, 0>(w0, hdr_off, prog_off, n_desc, wq0, hq0));
    EDGELLM_PROCESS(fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq1, hq1));
    EDGELLM_PROCESS(fetch_program<TC, 2>(w2, hdr_off, prog_off, n_desc, wq2, hq2));
    EDGELLM_PROCESS(fetch_program<TC, 3>(w3, hdr_off, prog_off, n_desc, wq3, hq3));
  }
};
#undef EDGELLM_FETCH_ARGS

}  // namespace edgellm
