// The low-bit engine's weight gearbox (runtime/lowbit_gear.py; docs/hls.md "Weight gearbox").
//
// The engine pops one 128-bit word of each of its four lanes a beat (lowbit_source.h lb_read). With lane u
// on weight port u the four ports stream equal shares, so where two ports have a faster DDR path (KV260 /
// ZCU104: shares 9:7:7:9) the engine runs at four times the slowest port's rate. Named configuration
// (lowbit_config_base): gear_cycle C (0: no gearbox), gear_k1, gear_k2: in every cycle of C engine beats
// of a pass, port 0 carries lane 1's words of the last gear_k1 beats besides lane 0's, port 3 lane 2's of
// the last gear_k2 beats besides lane 3's, ports 1 and 2 the rest of lanes 1 and 2 (compiler/packing_gear.py
// lays the images out so). Per linear pass:
//   port 0 / 3 fetcher   splits its image: lane 0 / 3 words into its FIFO, the given words into a side FIFO
//                        (lb_fetch_split)
//   port 1 / 2 fetcher   pushes the pass's engine beats into a count FIFO, then its lane's kept words
//   lb_lane_merge<L>     puts lane L back in beat order (kept words from port L's FIFO, given ones from the
//                        side FIFO) into the FIFO the engine pops; a count of 0 (the fetcher's last push of a
//                        call) ends it
// so the engine's stream, and everything it computes, is the same as without the gearbox.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/lowbit_source.h"

namespace edgellm {

typedef ap_uint<32> lb_count_t;  // a count FIFO word: one pass's engine beats (0: the call's end)

// A fetcher's side stream when it has none (every port without a gearbox, every ternary port).
struct FetchNoSide {};

// The gearbox of named configuration P (gear_cycle, gear_k1, gear_k2).
template <class P>
struct LbGear {
  enum { C = P::gear_cycle, K1 = P::gear_k1, K2 = P::gear_k2, ON = P::gear_cycle > 0 };
  static_assert(C == 0 || (K1 > 0 && K1 < C && K2 > 0 && K2 < C), "gearbox: 0 < gear_k1, gear_k2 < C");
  // beats per cycle lane L gives its donor port (lane 1: port 0, lane 2: port 3)
  static constexpr int given(int lane) { return !ON ? 0 : lane == 1 ? K1 : lane == 2 ? K2 : 0; }
  // the lane whose words port p carries besides its own (-1: none)
  static constexpr int recipient(int p) { return p == 0 && given(1) ? 1 : p == 3 && given(2) ? 2 : -1; }
  // lane L's words its own port carries in a pass of nb engine beats
  static long kept(int lane, long nb) {
#pragma HLS INLINE
    const int k = given(lane);
    if (k == 0) return nb;
    const long rem = nb % C;
    return nb / C * (C - k) + (rem < C - k ? rem : (long)(C - k));
  }
  // words port p streams in a pass of nb engine beats
  static long port_beats(int p, long nb) {
#pragma HLS INLINE
    const int r = recipient(p);
    return kept(p, nb) + (r >= 0 ? nb - kept(r, nb) : 0L);
  }
};

// Port P's split of its image (n words from w): beat by beat its lane's word into `fifo` and, on the
// last K beats of every cycle of C, the recipient lane's word that follows it into `side`.
template <int C, int K, class WB>
void lb_fetch_split(const WB *w, long n, hls::stream<lb_beat_t> &fifo, hls::stream<lb_beat_t> &side) {
#pragma HLS INLINE
  int c = 0;        // the beat's place in its cycle
  bool to_side = false;  // the next word is the recipient's word of the beat just pushed
lb_fetch_split_words:
  for (long j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 73728
#pragma HLS PIPELINE II = 1
    const lb_beat_t v = w[j];
    if (to_side) {
      side.write(v);
      to_side = false;
      c = c + 1 == C ? 0 : c + 1;
    } else {
      fifo.write(v);
      if (c >= C - K) {
        to_side = true;
      } else {
        c = c + 1 == C ? 0 : c + 1;
      }
    }
  }
}

// Lane L of a gearbox G put back in beat order for the engine: per pass (a count from `cq`), its kept
// words from `own` and the K given ones per cycle from `side`, into `out`; ends at a count of 0.
template <class G, int L>
void lb_lane_merge(hls::stream<lb_count_t> &cq, hls::stream<lb_beat_t> &own, hls::stream<lb_beat_t> &side,
                   hls::stream<lb_beat_t> &out) {
#pragma HLS INLINE off
  enum { K = G::given(L) };
  long n = (long)cq.read();
lb_merge_passes:
  while (n != 0) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256
    int c = 0;
  lb_merge_beats:
    for (long i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
#pragma HLS PIPELINE II = 1
      out.write(c >= G::C - K ? side.read() : own.read());
      c = c + 1 == G::C ? 0 : c + 1;
    }
    n = (long)cq.read();
  }
}

}  // namespace edgellm
