// DATAFLOW regions whose processes talk only through hls::stream, written so that C simulation can
// run them two ways:
//   default (as Vitis HLS C simulation): the processes run one after another in program order, over
//     unbounded streams; EDGELLM_REGION / EDGELLM_PROCESS / EDGELLM_JOIN expand to nothing but the
//     calls, and synthesis sees plain function calls in a DATAFLOW region.
//   EDGELLM_CSIM_THREADS (hw/csim.py build(threads=True)): each EDGELLM_PROCESS runs in its own
//     thread and the streams are bounded (hw/csim_threads/hls_stream.h) at the depth EDGELLM_DEPTH
//     gives them, the STREAM pragma's, so the processes really run concurrently against the FIFO
//     depths the hardware will have, and a deadlock is detected instead of argued.
// Regions with PIPO arrays between processes (weight banks, row buffers) stay sequential. A process
// spawned from an inlined helper captures the helper's parameters by reference, so helpers take
// them by reference (the region function's variables outlive its processes).
//
//   EDGELLM_REGION;                      opens the region (after #pragma HLS DATAFLOW)
//   EDGELLM_PROCESS(f<A, B>(x, y));      one process call (of this region, also from an inlined helper)
//   EDGELLM_JOIN;                        waits for the region's processes: last in the region, after
//                                        the streams' scope has no more uses (required: the streams
//                                        are declared after EDGELLM_REGION, so they would be destroyed
//                                        before the region's own destructor joins)
//   EDGELLM_DEPTH(s, depth);             beside `#pragma HLS STREAM variable = s depth = depth`
#pragma once

#if defined(EDGELLM_CSIM_THREADS) && !defined(__SYNTHESIS__)
#include "edgellm_csim_threads.h"  // hw/csim_threads: csim_region, the bounded hls::stream

#define EDGELLM_REGION edgellm::csim_region edgellm_region_
#define EDGELLM_PROCESS(...) edgellm::csim_region::current()->spawn([&]() { __VA_ARGS__; })
#define EDGELLM_JOIN edgellm_region_.join()
#define EDGELLM_DEPTH(s, ...) (s).set_depth(__VA_ARGS__)
#else
#define EDGELLM_REGION ((void)0)
#define EDGELLM_PROCESS(...) __VA_ARGS__
#define EDGELLM_JOIN ((void)0)
#define EDGELLM_DEPTH(s, ...) ((void)0)
#endif

#ifndef __SYNTHESIS__
namespace edgellm {
// C simulation: deadlocks the threaded simulation found so far (0 in the sequential one).
inline long long csim_deadlocks() {
#ifdef EDGELLM_CSIM_THREADS
  return edgellm_csim::deadlocks();
#else
  return 0;
#endif
}
}  // namespace edgellm
#endif
