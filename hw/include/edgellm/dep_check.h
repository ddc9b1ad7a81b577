// Instrumented checks of the library's DEPENDENCE claims, C simulation only. Built with
// -DEDGELLM_CHECK_DEPS=1 (and not under __SYNTHESIS__) the macros below record, per element of each
// annotated array, the iteration of the annotated loop's run that last wrote it, and count a
// violation when a read sees a write from fewer iterations back than the claim allows:
//   claim 0 (`DEPENDENCE ... inter false`): a read of an element written in an earlier iteration of
//     the same loop run;
//   claim d (`DEPENDENCE ... inter RAW distance = d true`): a read of an element written 1 .. d-1
//     iterations back.
// A read in the iteration that wrote the element (an intra-iteration dependence, which the tool
// keeps in order) is never a violation. In every other build the macros are no-ops and cost nothing.
//
//   {
//     EDGELLM_DEP_LOOP("attn_rows.pass");        // one run of the annotated loop (a scope around it)
//     EDGELLM_DEP_CLAIM(acc, kLaneDist);         // beside `DEPENDENCE variable = acc ... distance = kLaneDist`
//   pass:
//     for (int it = 0; it < n; it++) {
//   #pragma HLS DEPENDENCE ...
//       EDGELLM_DEP_ITER(it);                    // first statement of the body
//       EDGELLM_DEP_R(acc, acc[r][j]);           // beside each read / write of the array (also in helpers
//       EDGELLM_DEP_W(acc, acc[r][j]);           //  the loop calls: the array is found by its address)
//
// hw/synth_check.py (dep-unchecked) requires a matching EDGELLM_DEP_CLAIM for every DEPENDENCE
// pragma and EDGELLM_DEP_ITER in its loop, so no claim goes unchecked. Violations are printed (the
// first 20) on stderr and counted: edgellm::dep_violations(), which the tests read (hw/tb/dep_tb.cpp).
// Per claim the reads, writes and violations seen are kept for the tests (dep_report).
#pragma once

#if defined(EDGELLM_CHECK_DEPS) && EDGELLM_CHECK_DEPS && !defined(__SYNTHESIS__)
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace edgellm {
namespace dep {

struct Stat {
  long long reads, writes, violations;
};

inline std::mutex &stat_mutex() {
  static std::mutex m;
  return m;
}
inline std::map<std::string, Stat> &stats() {
  static std::map<std::string, Stat> s;
  return s;
}
inline std::atomic<long long> &violations() {
  static std::atomic<long long> n(0);
  return n;
}

// One annotated array in one run of its loop.
struct Claim {
  std::string name;     // loop.variable
  const char *base;     // the array's first byte
  size_t elem;          // bytes per element
  long distance;        // 0: inter false
  std::vector<long> last;  // iteration of the last write per element (LONG_MIN: none this run)
  Stat st;
};

// One run of an annotated loop: its claims and the current iteration; runs nest per thread (a
// helper's loop inside another's scope sees its own claims first).
class Loop {
 public:
  explicit Loop(const char *name) : name_(name), it_(0), outer_(current()) { current() = this; }
  ~Loop() {
    current() = outer_;
    std::lock_guard<std::mutex> lock(stat_mutex());
    for (const Claim &c : claims_) {
      Stat &s = stats()[c.name];
      s.reads += c.st.reads;
      s.writes += c.st.writes;
      s.violations += c.st.violations;
    }
  }
  Loop(const Loop &) = delete;
  Loop &operator=(const Loop &) = delete;
  template <class A>
  void claim(const char *var, const A &array, long distance) {
    typedef typename std::remove_all_extents<A>::type T;
    Claim c;
    c.name = std::string(name_) + "." + var;
    c.base = reinterpret_cast<const char *>(&array);
    c.elem = sizeof(T);
    c.distance = distance;
    c.last.assign(sizeof(A) / sizeof(T), LONG_MIN);
    c.st = Stat{0, 0, 0};
    claims_.push_back(c);
  }
  void iter(long it) { it_ = it; }
  // The access of element `elem` of the array at `base`, if some open loop run claims that array.
  static void access(const void *base, const void *elem, bool write) {
    for (Loop *l = current(); l; l = l->outer_) {
      for (Claim &c : l->claims_) {
        if (c.base == base) {
          l->record(c, reinterpret_cast<const char *>(elem), write);
          return;
        }
      }
    }
  }

 private:
  static Loop *&current() {
    static thread_local Loop *c = nullptr;
    return c;
  }
  void record(Claim &c, const char *elem, bool write) {
    const long k = (long)((elem - c.base) / (std::ptrdiff_t)c.elem);
    if (k < 0 || k >= (long)c.last.size()) return;
    if (write) {
      c.st.writes++;
      c.last[k] = it_;
      return;
    }
    c.st.reads++;
    if (c.last[k] == LONG_MIN) return;
    const long back = it_ - c.last[k];
    const bool bad = c.distance == 0 ? back >= 1 : (back >= 1 && back < c.distance);
    if (!bad) return;
    c.st.violations++;
    if (violations()++ < 20) {
      std::fprintf(stderr, "dep_check: %s[%ld] read at iteration %ld was written at iteration %ld (claim: %s)\n",
                   c.name.c_str(), k, it_, c.last[k], c.distance == 0 ? "inter false" : "distance");
    }
  }
  const char *name_;
  long it_;
  Loop *outer_;
  std::vector<Claim> claims_;
};

}  // namespace dep

// Violations found so far (all runs, all threads).
inline long long dep_violations() { return dep::violations().load(); }

// "name reads writes violations" per claim seen so far, one line each, into buf (cap bytes);
// returns the length it needed.
inline int dep_report(char *buf, int cap) {
  std::lock_guard<std::mutex> lock(dep::stat_mutex());
  std::string out;
  for (const auto &kv : dep::stats()) {
    out += kv.first + " " + std::to_string(kv.second.reads) + " " + std::to_string(kv.second.writes) + " " +
           std::to_string(kv.second.violations) + "\n";
  }
  if (cap > 0) {
    const size_t n = out.size() < (size_t)cap - 1 ? out.size() : (size_t)cap - 1;
    out.copy(buf, n);
    buf[n] = '\0';
  }
  return (int)out.size();
}

// Forget the counts (between test cases).
inline void dep_reset() {
  std::lock_guard<std::mutex> lock(dep::stat_mutex());
  dep::stats().clear();
  dep::violations() = 0;
}

}  // namespace edgellm

#define EDGELLM_DEP_LOOP(name) ::edgellm::dep::Loop edgellm_dep_loop_(name)
#define EDGELLM_DEP_CLAIM(var, distance) edgellm_dep_loop_.claim(#var, var, (long)(distance))
#define EDGELLM_DEP_ITER(it) edgellm_dep_loop_.iter((long)(it))
#define EDGELLM_DEP_R(base, elem) ::edgellm::dep::Loop::access((const void *)(base), (const void *)&(elem), false)
#define EDGELLM_DEP_W(base, elem) ::edgellm::dep::Loop::access((const void *)(base), (const void *)&(elem), true)
#define EDGELLM_DEP_R_IF(cond, base, elem) ((cond) ? EDGELLM_DEP_R(base, elem) : (void)0)

#else

#ifndef __SYNTHESIS__
namespace edgellm {
inline long long dep_violations() { return 0; }
inline int dep_report(char *buf, int cap) {
  if (cap > 0) buf[0] = '\0';
  return 0;
}
inline void dep_reset() {}
}  // namespace edgellm
#endif

#define EDGELLM_DEP_LOOP(name) ((void)0)
#define EDGELLM_DEP_CLAIM(var, distance) ((void)0)
#define EDGELLM_DEP_ITER(it) ((void)0)
#define EDGELLM_DEP_R(base, elem) ((void)0)
#define EDGELLM_DEP_W(base, elem) ((void)0)
#define EDGELLM_DEP_R_IF(cond, base, elem) ((void)0)

#endif
