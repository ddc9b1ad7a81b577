// The low-bit engine's I/O (lowbit_mm.h): where its weight beats come from, how it reads its activations
// and scales and writes its outputs (docs/hls.md "Low-bit linears (issue 17)").
//
//   weights   a weight port's 128-bit beats from a pointer (testbenches: port u's image, indexed by beat)
//             or from a weight FIFO (the top: the fetcher pushed the port's image, top_fetch.h fetch_program);
//             the engine reads its stream exactly once, in order, so a FIFO source ignores the index
//   x, qs, y  a plain array (testbenches) or the top's act port beats (maxi.h), at element offsets
//             (LbAt): 16 int8 activations per iteration from the beat holding them (a row starts on a
//             16-element boundary: k and the scratch rows are multiples of 16 in a low-bit design), one
//             scale per token, outputs assembled into whole beats (a beat written on its last output)
//   bias      optional (LbAt::bias < 0: none): y = y + bias[o], one f32 add after y = acc / qs
//             (models/golden.py linear), read in row order, one beat per beat's worth of outputs
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"

namespace edgellm {

typedef ap_uint<128> lb_beat_t;  // one weight port's beat (and one weight FIFO word)
const int kLbBeatBits = facts::kLbBeatBits;  // a weight port's beat; the engine's is BW = 128 x ports bits

// Element offsets of the engine's operands in their pointers; bias < 0: no bias.
struct LbAt {
  long x, qs, y, bias;
};

// Beat i of one weight port: the pointer's beat i, or the FIFO's next word.
inline lb_beat_t lb_port_beat(const lb_beat_t *w, long i) {
#pragma HLS INLINE
  return w[i];
}
inline lb_beat_t lb_port_beat(hls::stream<lb_beat_t> *s, long) {
#pragma HLS INLINE
  return s->read();
}

// Engine beat i: beat i of each of the BW / 128 weight ports, port u in bits 128u .. 128u+127 (one read
// of each port in use; the ports past BW / 128 are never read).
template <class C, class WS>
inline typename C::beat_t lb_read(WS *w0, WS *w1, WS *w2, WS *w3, long i) {
#pragma HLS INLINE
  typename C::beat_t b = 0;
  b.range(127, 0) = lb_port_beat(w0, i);
  if (C::PORTS > 1) b.range(C::BW > 128 ? 255 : 127, C::BW > 128 ? 128 : 0) = lb_port_beat(w1, i);
  if (C::PORTS > 2) {
    b.range(C::BW > 256 ? 383 : 127, C::BW > 256 ? 256 : 0) = lb_port_beat(w2, i);
    b.range(C::BW > 256 ? 511 : 127, C::BW > 256 ? 384 : 0) = lb_port_beat(w3, i);
  }
  return b;
}

// The 16 int8 activations at element e (e % 16 == 0): a plain array's elements, or the lanes of the one
// act beat (B >= 128 bits) holding them.
inline void lb_get16(const int8_t *x, long e, int8_t v[16]) {
#pragma HLS INLINE
  for (int u = 0; u < 16; u++) {
#pragma HLS UNROLL
    v[u] = x[e + u];
  }
}
template <int B>
inline void lb_get16(const ap_uint<B> *x, long e, int8_t v[16]) {
#pragma HLS INLINE
  enum { E = Beat<int8_t, B>::E };
  static_assert(E % 16 == 0, "an act beat holds whole 16-activation chunks");
  const ap_uint<B> b = x[e / E];
  const int s = (int)(e % E);
  for (int u = 0; u < 16; u++) {
#pragma HLS UNROLL
    v[u] = lane_get<int8_t>(b, s + u);
  }
}

// Outputs written in order along a row (consecutive elements, a row starting on a beat): a plain array's
// element, or the act beat assembled on chip and written whole on its last output.
template <class PY>
struct LbOut {
  void put(PY *y, long at, f32 v) {
#pragma HLS INLINE
    y[at] = v;
  }
};
template <int B>
struct LbOut<ap_uint<B> > {
  enum { E = Beat<f32, B>::E };
  ap_uint<B> cur;
  void put(ap_uint<B> *y, long at, f32 v) {
#pragma HLS INLINE
    lane_set<f32>(cur, (int)(at % E), v);
    if ((at + 1) % E == 0) y[at / E] = cur;
  }
};

// The bias read in row order from a beat boundary: a plain array's element, or the data beat read at
// its first element and held.
template <class PB>
struct LbBias {
  f32 get(const PB *b, long at) {
#pragma HLS INLINE
    return b[at];
  }
};
template <int B>
struct LbBias<ap_uint<B> > {
  enum { E = Beat<f32, B>::E };
  ap_uint<B> cur;
  f32 get(const ap_uint<B> *b, long at) {
#pragma HLS INLINE
    if (at % E == 0) cur = b[at / E];
    return lane_get<f32>(cur, (int)(at % E));
  }
};

}  // namespace edgellm
