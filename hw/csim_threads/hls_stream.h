// Bounded, thread-safe hls::stream for the threaded C simulation (hw/csim.py build(threads=True)).
//
// Found before hls4ml's unbounded hls_stream.h when this directory is on the include path. Each
// DATAFLOW process then runs in its own thread (edgellm/dataflow.h), and every stream holds at most
// its depth: the one its STREAM pragma gives (EDGELLM_DEPTH beside it) or Vitis HLS's default of 2.
// A write to a full stream and a read from an empty one block, as the hardware FIFOs do. So the
// FIFO depths the HLS declares are exercised, and a deadlock is detected: when every running
// thread is blocked on a stream that cannot move (checked under the one lock each time a thread
// blocks or ends), the simulation records it (edgellm_csim::deadlocks(), the streams on stderr), and
// from then on every blocked or later stream operation returns at once (reads give T()), so the
// processes run to their ends and the caller can report it. One difference from hardware: the
// writes of one loop iteration to several streams happen one after another here, so a write that
// would stall the whole iteration in a pipelined loop only stalls the later writes (the simulation
// is at most one element per stream more permissive).
#ifndef EDGELLM_CSIM_THREADS_HLS_STREAM_H
#define EDGELLM_CSIM_THREADS_HLS_STREAM_H

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

// Hidden visibility: the translation units of one library or executable share one scheduler, but each
// C-simulation library loaded into one process keeps its own (the dynamic linker would otherwise merge
// the inline functions' statics across libraries).
#define EDGELLM_CSIM_LOCAL __attribute__((visibility("hidden")))

namespace edgellm_csim {

// A thread blocked on a stream: what it waits for, and whether that has become true.
struct waiter {
  std::function<bool()> ready;
  std::string what;
};

// The scheduler state shared by every stream: one lock, one condition variable.
struct sched_t {
  std::mutex mu;
  std::condition_variable cv;
  int running = 1;  // threads that may touch a stream: the caller's, and every process thread that
                    // is not waiting for its children
  std::vector<waiter *> waiters;  // threads blocked on a stream
  long long deadlocks = 0;
  bool dead = false;  // a deadlock was found: stream operations no longer block
};
EDGELLM_CSIM_LOCAL inline sched_t &sched() {
  static sched_t s;
  return s;
}
inline long long deadlocks() {
  std::lock_guard<std::mutex> g(sched().mu);
  return sched().deadlocks;
}
// With the lock held: a deadlock is every running thread blocked on a stream whose condition is
// still false (a notified waiter that has not woken yet is ready, so it does not count).
inline void check_deadlock() {
  sched_t &s = sched();
  if (s.dead || (int)s.waiters.size() < s.running || s.waiters.empty()) return;
  for (waiter *w : s.waiters)
    if (w->ready()) return;
  s.dead = true;
  s.deadlocks++;
  std::string what;
  for (waiter *w : s.waiters) what += (what.empty() ? "" : ", ") + w->what;
  std::fprintf(stderr, "edgellm csim: deadlock: every process is blocked (%s)\n", what.c_str());
  s.cv.notify_all();
}
// With the lock held: block until ready() (or a deadlock is declared).
inline void wait_for(std::unique_lock<std::mutex> &lk, std::function<bool()> ready, const std::string &what) {
  sched_t &s = sched();
  waiter w = {ready, what};
  s.waiters.push_back(&w);
  check_deadlock();
  s.cv.wait(lk, [&] { return s.dead || w.ready(); });
  s.waiters.erase(std::find(s.waiters.begin(), s.waiters.end(), &w));
}
// Process-thread bookkeeping of one region (edgellm_csim_threads.h): its live processes, and whether
// the thread that opened it is waiting for them. That thread stops counting as running while it
// waits and counts again the moment its last process ends (in the same locked step, so no
// deadlock is seen in between).
struct region_state {
  int live = 0;
  bool joining = false;
};
inline void process_started(region_state &r) {
  std::lock_guard<std::mutex> g(sched().mu);
  sched().running++;
  r.live++;
}
inline void process_finished(region_state &r) {
  std::lock_guard<std::mutex> g(sched().mu);
  sched().running--;
  if (--r.live == 0 && r.joining) {
    r.joining = false;
    sched().running++;
  }
  check_deadlock();
  sched().cv.notify_all();
}
inline void join_begin(region_state &r) {
  std::lock_guard<std::mutex> g(sched().mu);
  if (r.live > 0) {
    r.joining = true;
    sched().running--;
    check_deadlock();
  }
}

}  // namespace edgellm_csim

namespace hls {

template <typename T>
class stream {
 public:
  stream() : name_("hls_stream") {}
  explicit stream(const char *name) : name_(name) {}
  stream(const stream &) = delete;
  stream &operator=(const stream &) = delete;

  // The FIFO depth (EDGELLM_DEPTH); Vitis HLS's default is 2.
  void set_depth(std::size_t d) {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    depth_ = d < 1 ? 1 : d;
  }

  void write(const T &x) {
    edgellm_csim::sched_t &s = edgellm_csim::sched();
    std::unique_lock<std::mutex> lk(s.mu);
    if (q_.size() >= depth_ && !s.dead)
      edgellm_csim::wait_for(lk, [this] { return q_.size() < depth_; }, "write " + name_);
    if (s.dead) return;
    q_.push_back(x);
    s.cv.notify_all();
  }
  T read() {
    edgellm_csim::sched_t &s = edgellm_csim::sched();
    std::unique_lock<std::mutex> lk(s.mu);
    if (q_.empty() && !s.dead) edgellm_csim::wait_for(lk, [this] { return !q_.empty(); }, "read " + name_);
    if (q_.empty()) return T();
    T x = q_.front();
    q_.pop_front();
    s.cv.notify_all();
    return x;
  }
  void read(T &x) { x = read(); }
  void operator>>(T &x) { x = read(); }
  void operator<<(const T &x) { write(x); }
  bool read_nb(T &x) {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    if (q_.empty()) return false;
    x = q_.front();
    q_.pop_front();
    edgellm_csim::sched().cv.notify_all();
    return true;
  }
  bool write_nb(const T &x) {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    if (q_.size() >= depth_) return false;
    q_.push_back(x);
    edgellm_csim::sched().cv.notify_all();
    return true;
  }
  bool empty() {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    return q_.empty();
  }
  bool full() {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    return q_.size() >= depth_;
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g(edgellm_csim::sched().mu);
    return q_.size();
  }

 private:
  std::string name_;
  std::size_t depth_ = 2;
  std::deque<T> q_;
};

}  // namespace hls

#endif
