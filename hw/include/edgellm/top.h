// The accelerator's top: runs a descriptor program (interface.h) over the one DDR buffer.
//
// Two kinds of process in one DATAFLOW region (edgellm_top_impl):
//   fetch_program<P>  one per weight port in use: walks the program (header, descriptors and layer
//                     table read through its own port w_P) and pushes port P's share of every linear's
//                     weights into FIFO wq_P (fetch_depth words): a ternary design's tiles (weight_fetch.h
//                     tlmm_fetch_port, kFetchBeats beats a word), a low-bit design's port-P image of each
//                     linear's stream (lowbit_policy.h fetch, one 128-bit beat a word, the layer's
//                     records read from HDR_LB_TABLE); and port P's LM-head rows into FIFO hq_P
//                     (kHeadFifoDepth)
//   engine_program    the program itself (below): every linear pops its tiles from the wq FIFOs, the
//                     LM head its rows from the hq FIFOs; decode attention reads the KV cache over
//                     kv0 .. kv3 (m_axi arguments in the weight ports' bundles), the rest goes over data
// so the weight ports stream the next linears while the engine runs norms, RoPE and attention. Both
// walk the same program with the same checks (desc_action), so they agree on what runs.
//
//   header  <- buffer[hdr_off ..]; the header, the layer table and the whole program checked before
//              use (program_check.h), the result written to the header's status words (interface.h)
//   for each descriptor at prog_off:
//     OP_LAYER  decoder_layer<C, MM> on H[0 .. t_len) at pos0 with layer D_LAYER's table entry,
//               its K/V cache slice and (D_FLAGS & DESC_TAPS) the tap area
//     OP_HEAD   final RMSNorm + quantize of H[D_ROW .. D_ROW + n) (n = D_N_ROWS, 0 meaning 1, at most
//               HEAD::MAX_TOK: the layer's element-wise engine call, decoder_layer_ports norm_only, over
//               n rows), int8 LM head (lm_head.h) streaming its rows ONCE over the first HEAD::NPORTS
//               weight ports for all n rows (token lanes, lm_dot_rows): per row logits [vocab] (rows
//               layout.logits_row apart), argmax, top-k ids and values into their regions (argmax
//               [MAX_TOK], ids [MAX_TOK][k], values [MAX_TOK][k])
//
// Every offset in the header is a byte offset from the buffer base (compiler/passes/plan_memory.py
// aligns regions to 4 KiB, so float and word regions are 4-byte aligned). The generated top.cpp
// gives the kernel views of the buffer through its m_axi ports, all holding the same address: the
// ternary weight ports w0 .. w3 (the first tlmm_traits::NPORTS of them stream every weight tile
// concurrently, each its own share; the generated top repeats w0 for slots it has no port for; the
// first LmHeadConfig::NPORTS of them stream the int8 LM head's rows the same way, and decode
// attention reads the KV cache over them, KV head h on port h % LmHeadConfig::NPORTS) and the data
// port (activations, KV cache writes and prefill reads, scratch, header, program).
// A program with any field the compiled configuration or the buffer cannot take runs nothing: the
// engine reports the first such field in the status words and the fetchers fetch nothing.
//
// The engine (top_config, run_desc, engine_program): top_engine.h; the fetchers (fetch_program, FetchPorts,
// lin_fetch): top_fetch.h; the descriptor program as both sides read it (desc_action, read_words,
// port_sees_header, lb_records): top_program.h; the low-bit weight gearbox's processes: lowbit_gear.h.
// This header holds the DATAFLOW regions (top_region, top_region_geared) and the entry, edgellm_top_impl.
#pragma once

#include <cstdint>
#ifndef __SYNTHESIS__
#include <cstdio>
#endif

#include "edgellm/dataflow.h"
#include "edgellm/lowbit_gear.h"
#include "edgellm/top_engine.h"
#include "edgellm/top_fetch.h"

// Storage of the weight FIFOs (edgellm_config.h defines EDGELLM_FETCH_STORAGE: uram or bram; a
// BIND_STORAGE impl must be a literal, hence the macro).
#ifndef EDGELLM_FETCH_STORAGE
#define EDGELLM_FETCH_STORAGE bram
#endif
#define EDGELLM_FETCH_BIND(var) \
  EDGELLM_PRAGMA(HLS BIND_STORAGE variable = var type = fifo impl = EDGELLM_FETCH_STORAGE)

namespace edgellm {

// The whole accelerator at compile time (generated edgellm_config.h): the layer shape, the matmul
// policy, the LM head configuration, the number of layers and the vocabulary.
// Words of each LM-head FIFO hq{P}: lm_dot_fifo pops one beat per port and cycle as the fetcher pushes
// them, so a few dozen words of slack cover the burst turnarounds (runtime/layout.py HEAD_FIFO_DEPTH:
// 64 x 128 bits stays in distributed RAM).
const int kHeadFifoDepth = facts::kHeadFifoDepth;
// The weight gearbox's FIFOs (top_region_geared): each pass count FIFO holds the counts of this many passes
// a fetcher runs ahead of its lane's merge; each merged lane FIFO covers the merge's pipeline latency.
const int kGearCountDepth = facts::kGearCountDepth;
const int kGearLaneDepth = facts::kGearLaneDepth;

#ifndef __SYNTHESIS__
// C simulation: FIFO words left over after a program (a fetcher pushed what the engine never popped),
// summed over calls (csim_entry.cpp exposes it; the tests require 0).
inline long long &fifo_leftovers() {
  static long long n = 0;
  return n;
}
template <class S>
void count_leftovers(S &s, const char *name) {
  if (!s.empty()) {
    std::fprintf(stderr, "edgellm_top: FIFO %s holds %zu words after the program\n", name, s.size());
    fifo_leftovers() += (long long)s.size();
  }
}
// every weight port's weight and LM-head FIFO
template <class W, class H>
void count_port_leftovers(W &wq0, W &wq1, W &wq2, W &wq3, H &hq0, H &hq1, H &hq2, H &hq3) {
  count_leftovers(wq0, "wq0");
  count_leftovers(wq1, "wq1");
  count_leftovers(wq2, "wq2");
  count_leftovers(wq3, "wq3");
  count_leftovers(hq0, "hq0");
  count_leftovers(hq1, "hq1");
  count_leftovers(hq2, "hq2");
  count_leftovers(hq3, "hq3");
}
#endif

// The program. w0 .. w3: weight ports (the fetchers: ternary linears and the LM head); kv0 .. kv3: the
// KV cache as decode attention reads it (m_axi arguments in the weight ports' bundles); act: the layer
// scratch as the TLMM's linear jobs read and write it (an m_axi argument in the data port's bundle, so
// a pipelined slot's linear and vector processes use distinct arguments); data: everything else. All
// at the same address.
template <class TC>
void top_region(const typename TC::wbeat_t *w0, const typename TC::wbeat_t *w1,
                const typename TC::wbeat_t *w2, const typename TC::wbeat_t *w3,
                const typename TC::wbeat_t *kv0, const typename TC::wbeat_t *kv1,
                const typename TC::wbeat_t *kv2, const typename TC::wbeat_t *kv3,
                typename TC::dbeat_t *data, typename TC::dbeat_t *act, uint32_t hdr_off, uint32_t prog_off,
                uint32_t n_desc) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
  enum { kDepth = TC::fetch_depth, kHeadDepth = kHeadFifoDepth };
  hls::stream<typename TC::word_t> wq0("wq0"), wq1("wq1"), wq2("wq2"), wq3("wq3");
  hls::stream<typename TC::hbeat_t> hq0("hq0"), hq1("hq1"), hq2("hq2"), hq3("hq3");
#pragma HLS STREAM variable = wq0 depth = kDepth
  EDGELLM_DEPTH(wq0, kDepth);
#pragma HLS STREAM variable = wq1 depth = kDepth
  EDGELLM_DEPTH(wq1, kDepth);
#pragma HLS STREAM variable = wq2 depth = kDepth
  EDGELLM_DEPTH(wq2, kDepth);
#pragma HLS STREAM variable = wq3 depth = kDepth
  EDGELLM_DEPTH(wq3, kDepth);
  EDGELLM_FETCH_BIND(wq0)
  EDGELLM_FETCH_BIND(wq1)
  EDGELLM_FETCH_BIND(wq2)
  EDGELLM_FETCH_BIND(wq3)
#pragma HLS STREAM variable = hq0 depth = kHeadDepth
  EDGELLM_DEPTH(hq0, kHeadDepth);
#pragma HLS STREAM variable = hq1 depth = kHeadDepth
  EDGELLM_DEPTH(hq1, kHeadDepth);
#pragma HLS STREAM variable = hq2 depth = kHeadDepth
  EDGELLM_DEPTH(hq2, kHeadDepth);
#pragma HLS STREAM variable = hq3 depth = kHeadDepth
  EDGELLM_DEPTH(hq3, kHeadDepth);
  FetchPorts<TC>::run(w0, w1, w2, w3, hdr_off, prog_off, n_desc, wq0, wq1, wq2, wq3, hq0, hq1, hq2, hq3);
  EDGELLM_PROCESS(engine_program<TC>(kv0, kv1, kv2, kv3, data, act, hdr_off, prog_off, n_desc, wq0, wq1, wq2,
                                     wq3,                                     hq0, hq1, hq2, hq3));
  EDGELLM_JOIN;
#ifndef __SYNTHESIS__
  count_port_leftovers(wq0, wq1, wq2, wq3, hq0, hq1, hq2, hq3);
#endif
}

// The region of a low-bit design with the weight gearbox (lowbit_gear.h): the fetchers of ports 0 and 3
// also push their given words (xq0: lane 1's, xq3: lane 2's), those of ports 1 and 2 each pass's beats
// (cq1, cq2); lb_lane_merge puts lanes 1 and 2 back in beat order (mq1, mq2) for the engine. The side FIFOs
// hold the given words of fetch_depth beats, so every lane prefetches as far as without the gearbox.
template <class TC>
void top_region_geared(const typename TC::wbeat_t *w0, const typename TC::wbeat_t *w1,
                       const typename TC::wbeat_t *w2, const typename TC::wbeat_t *w3,
                       const typename TC::wbeat_t *kv0, const typename TC::wbeat_t *kv1,
                       const typename TC::wbeat_t *kv2, const typename TC::wbeat_t *kv3,
                       typename TC::dbeat_t *data, typename TC::dbeat_t *act, uint32_t hdr_off,
                       uint32_t prog_off, uint32_t n_desc) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  EDGELLM_REGION;
  typedef typename TC::mm::gear G;
  enum {
    kDepth = TC::fetch_depth,
    kHeadDepth = kHeadFifoDepth,
    kSide1 = (TC::fetch_depth * G::K1 + G::C - 1) / G::C + 2,
    kSide2 = (TC::fetch_depth * G::K2 + G::C - 1) / G::C + 2,
    kCount = kGearCountDepth,
    kLane = kGearLaneDepth
  };
  hls::stream<typename TC::word_t> wq0("wq0"), wq1("wq1"), wq2("wq2"), wq3("wq3");
  hls::stream<typename TC::hbeat_t> hq0("hq0"), hq1("hq1"), hq2("hq2"), hq3("hq3");
  hls::stream<typename TC::word_t> xq0("xq0"), xq3("xq3"), mq1("mq1"), mq2("mq2");
  hls::stream<lb_count_t> cq1("cq1"), cq2("cq2");
#pragma HLS STREAM variable = wq0 depth = kDepth
  EDGELLM_DEPTH(wq0, kDepth);
#pragma HLS STREAM variable = wq1 depth = kDepth
  EDGELLM_DEPTH(wq1, kDepth);
#pragma HLS STREAM variable = wq2 depth = kDepth
  EDGELLM_DEPTH(wq2, kDepth);
#pragma HLS STREAM variable = wq3 depth = kDepth
  EDGELLM_DEPTH(wq3, kDepth);
#pragma HLS STREAM variable = xq0 depth = kSide1
  EDGELLM_DEPTH(xq0, kSide1);
#pragma HLS STREAM variable = xq3 depth = kSide2
  EDGELLM_DEPTH(xq3, kSide2);
  EDGELLM_FETCH_BIND(wq0)
  EDGELLM_FETCH_BIND(wq1)
  EDGELLM_FETCH_BIND(wq2)
  EDGELLM_FETCH_BIND(wq3)
  EDGELLM_FETCH_BIND(xq0)
  EDGELLM_FETCH_BIND(xq3)
#pragma HLS STREAM variable = mq1 depth = kLane
  EDGELLM_DEPTH(mq1, kLane);
#pragma HLS STREAM variable = mq2 depth = kLane
  EDGELLM_DEPTH(mq2, kLane);
#pragma HLS STREAM variable = cq1 depth = kCount
  EDGELLM_DEPTH(cq1, kCount);
#pragma HLS STREAM variable = cq2 depth = kCount
  EDGELLM_DEPTH(cq2, kCount);
#pragma HLS STREAM variable = hq0 depth = kHeadDepth
  EDGELLM_DEPTH(hq0, kHeadDepth);
#pragma HLS STREAM variable = hq1 depth = kHeadDepth
  EDGELLM_DEPTH(hq1, kHeadDepth);
#pragma HLS STREAM variable = hq2 depth = kHeadDepth
  EDGELLM_DEPTH(hq2, kHeadDepth);
#pragma HLS STREAM variable = hq3 depth = kHeadDepth
  EDGELLM_DEPTH(hq3, kHeadDepth);
  EDGELLM_PROCESS(fetch_program<TC, 0>(w0, hdr_off, prog_off, n_desc, wq0, hq0, xq0));
  EDGELLM_PROCESS(fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq1, hq1, cq1));
  EDGELLM_PROCESS(fetch_program<TC, 2>(w2, hdr_off, prog_off, n_desc, wq2, hq2, cq2));
  EDGELLM_PROCESS(fetch_program<TC, 3>(w3, hdr_off, prog_off, n_desc, wq3, hq3, xq3));
  EDGELLM_PROCESS(lb_lane_merge<G, 1>(cq1, wq1, xq0, mq1));
  EDGELLM_PROCESS(lb_lane_merge<G, 2>(cq2, wq2, xq3, mq2));
  EDGELLM_PROCESS(engine_program<TC>(kv0, kv1, kv2, kv3, data, act, hdr_off, prog_off, n_desc, wq0, mq1, mq2,
                                     wq3, hq0, hq1, hq2, hq3));
  EDGELLM_JOIN;
#ifndef __SYNTHESIS__
  count_port_leftovers(wq0, wq1, wq2, wq3, hq0, hq1, hq2, hq3);
  count_leftovers(xq0, "xq0");
  count_leftovers(xq3, "xq3");
  count_leftovers(mq1, "mq1");
  count_leftovers(mq2, "mq2");
  count_leftovers(cq1, "cq1");
  count_leftovers(cq2, "cq2");
#endif
}

// The top: its region, with the weight gearbox where the matmul policy has one (mm_gear_on).
template <class TC, int GEAR = mm_gear_on<typename TC::mm>::value>
struct TopRegion {
  template <class W, class D>
  static void run(const W *w0, const W *w1, const W *w2, const W *w3, const W *kv0, const W *kv1, const W *kv2,
                  const W *kv3, D *data, D *act, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
#pragma HLS INLINE
    top_region<TC>(w0, w1, w2, w3, kv0, kv1, kv2, kv3, data, act, hdr_off, prog_off, n_desc);
  }
};
template <class TC>
struct TopRegion<TC, 1> {
  template <class W, class D>
  static void run(const W *w0, const W *w1, const W *w2, const W *w3, const W *kv0, const W *kv1, const W *kv2,
                  const W *kv3, D *data, D *act, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
#pragma HLS INLINE
    top_region_geared<TC>(w0, w1, w2, w3, kv0, kv1, kv2, kv3, data, act, hdr_off, prog_off, n_desc);
  }
};

template <class TC>
void edgellm_top_impl(const typename TC::wbeat_t *w0, const typename TC::wbeat_t *w1,
                      const typename TC::wbeat_t *w2, const typename TC::wbeat_t *w3,
                      const typename TC::wbeat_t *kv0, const typename TC::wbeat_t *kv1,
                      const typename TC::wbeat_t *kv2, const typename TC::wbeat_t *kv3,
                      typename TC::dbeat_t *data, typename TC::dbeat_t *act, uint32_t hdr_off, uint32_t prog_off,
                      uint32_t n_desc) {
#pragma HLS INLINE
  TopRegion<TC>::run(w0, w1, w2, w3, kv0, kv1, kv2, kv3, data, act, hdr_off, prog_off, n_desc);
}

}  // namespace edgellm
