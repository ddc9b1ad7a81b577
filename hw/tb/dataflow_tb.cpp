// Testbench of the threaded C simulation itself (edgellm/dataflow.h, hw/csim_threads): built only
// with hw/csim.py build(threads=True). tests/test_csim_threads.py.
#include <cstdint>

#include "edgellm/dataflow.h"
#include "hls_stream.h"

namespace {

void produce(hls::stream<int> &s, int n) {
  for (int i = 0; i < n; i++) s.write(i);
}

void consume(hls::stream<int> &s, int n, long *sum) {
  long t = 0;
  for (int i = 0; i < n; i++) t += s.read();
  *sum = t;
}

// Writes n items to `out`, then reads n from `in`.
void write_then_read(hls::stream<int> &out, hls::stream<int> &in, int n, long *sum) {
  for (int i = 0; i < n; i++) out.write(i);
  long t = 0;
  for (int i = 0; i < n; i++) t += in.read();
  *sum = t;
}

}  // namespace

// A producer and a consumer joined by one FIFO of `depth`: never deadlocks; returns the sum.
extern "C" long tb_pipe(int n, int depth) {
  (void)depth;  // the sequential build's EDGELLM_DEPTH does not read it (-Wunused-parameter)
  long sum = -1;
  EDGELLM_REGION;
  hls::stream<int> s("pipe");
  EDGELLM_DEPTH(s, depth);
  EDGELLM_PROCESS(produce(s, n));
  EDGELLM_PROCESS(consume(s, n, &sum));
  EDGELLM_JOIN;
  return sum;
}

// Two processes that each write n items to the other before reading: deadlocks when n > depth.
extern "C" long tb_cross(int n, int depth) {
  (void)depth;  // as in tb_pipe
  long s0 = 0, s1 = 0;
  EDGELLM_REGION;
  hls::stream<int> a("cross_a"), b("cross_b");
  EDGELLM_DEPTH(a, depth);
  EDGELLM_DEPTH(b, depth);
  EDGELLM_PROCESS(write_then_read(a, b, n, &s0));
  EDGELLM_PROCESS(write_then_read(b, a, n, &s1));
  EDGELLM_JOIN;
  return s0 + s1;
}

extern "C" long long tb_deadlocks() { return edgellm::csim_deadlocks(); }
