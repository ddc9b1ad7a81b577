// C simulation only: progress counters the emulator reads while a call runs (runtime/emulator.py: its
// --timeout bounds the time without progress, not the whole call; csim_entry.cpp exports them as
// edgellm_csim_progress and edgellm_csim_heartbeat). Monotonic over the library's life, atomic (read by
// the emulator's waiting thread). Nothing of this is synthesized.
//   csim_progress()   descriptors the engine finished (a layer, the head, a skipped one): top.h
//   csim_heartbeat()  linears the layers finished (decoder_layer.h linear_job, ternary and low-bit): a
//                     real-size layer descriptor takes tens of seconds in C simulation, its linears
//                     seconds each, so a long descriptor is not mistaken for a stall
#pragma once

#ifndef __SYNTHESIS__
#include <atomic>

namespace edgellm {

inline std::atomic<long long> &csim_progress() {
  static std::atomic<long long> n(0);
  return n;
}

inline std::atomic<long long> &csim_heartbeat() {
  static std::atomic<long long> n(0);
  return n;
}

}  // namespace edgellm

#define EDGELLM_CSIM_DESC_DONE() (::edgellm::csim_progress().fetch_add(1, std::memory_order_relaxed))
#define EDGELLM_CSIM_BEAT() (::edgellm::csim_heartbeat().fetch_add(1, std::memory_order_relaxed))
#else
#define EDGELLM_CSIM_DESC_DONE() ((void)0)
#define EDGELLM_CSIM_BEAT() ((void)0)
#endif
