// Threaded C simulation of DATAFLOW regions (edgellm/dataflow.h with EDGELLM_CSIM_THREADS): one
// thread per process, joined at the end of the region. C simulation only (hw/csim.py
// build(threads=True) puts this directory on the include path); never seen by synthesis.
#ifndef EDGELLM_CSIM_THREADS_H
#define EDGELLM_CSIM_THREADS_H

#include <functional>
#include <thread>
#include <vector>

#include "hls_stream.h"  // this directory's bounded stream

namespace edgellm {

// The processes of one region; joined by EDGELLM_JOIN or when the region's scope ends. Processes
// spawned from an inlined helper join the innermost region open on the calling thread.
class csim_region {
 public:
  csim_region() : outer_(current()) { current() = this; }
  ~csim_region() {
    join();
    current() = outer_;
  }
  void spawn(std::function<void()> f) {
    edgellm_csim::process_started(state_);
    threads_.emplace_back([this, f]() {
      current() = nullptr;  // a process opens its own regions
      f();
      edgellm_csim::process_finished(state_);
    });
  }
  void join() {
    if (threads_.empty()) return;
    edgellm_csim::join_begin(state_);
    for (std::thread &t : threads_) t.join();
    threads_.clear();
  }
  EDGELLM_CSIM_LOCAL static csim_region *&current() {
    thread_local csim_region *r = nullptr;
    return r;
  }

 private:
  csim_region *outer_;
  edgellm_csim::region_state state_;
  std::vector<std::thread> threads_;
};

}  // namespace edgellm

#endif
