// The low-bit engine (lowbit_mm.h) as the decoder layer's matmul policy and the top's weight fetch
// (docs/hls.md "Low-bit linears (issue 17)").
//
// Named configuration (generated per design, hls4ml style, like tlmm_config.h):
//   struct lowbit_cfg : edgellm::lowbit_config_base { static const int rows = 64; ... };
//   typedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;
// Required fields: rows (R: output rows per tile), max_k (MAXK: widest input, a multiple of 256),
// max_t (MAXT: tokens per engine pass; a linear call of more tokens runs ceil(n / max_t) passes, each
// reading the whole stream again). Optional (lowbit_config_base): max_group (MAXG, 256), token_lanes (TP,
// 1), beat_bits (BW = 128 x weight ports: 128, 256 or 512), decoders (RD, 1), scale_lanes (SL: sub-scales
// a decoder decodes per iteration, 1, 2, 4, 8 or 16 = a whole record at once; 16), float_units (FU:
// float steps per token lane and iteration, 1, 2, 4, .. 32, at most BW / 16 used; 32: one per lane; every
// tensor needs lb_float_steps(d, BW) <= FU, which codegen sizes to the model), max_sb (MAXSB: groups a
// parameter record covers at most, 1 .. 16, sizing the s / m buffers; 16), min_group (MING: the narrowest
// group a tensor may have, 16 .. MAXG: the lookups' and the banks' group-size choices run MING .. MAXG; 16).
//
// A low-bit design runs all seven linears of every layer on this policy (the LM head stays int8). Each
// linear has a record in the low-bit table at HDR_LB_TABLE (interface.h LbWord): its ParamCodec, bias and
// port-image offsets; the top reads a layer's records (lb_linear_of) into layer_desc::lb and hands the
// linear's to run / fetch. Weight port u's image of a tensor lies at byte HDR_WEIGHTS + LD_W_OFF[i] +
// LB_PORTu_OFF (0 for port 0; packing_lowbit.port_images, beat_bits = BW), 128-bit beats.
#pragma once

#include <hls_stream.h>

#include <cassert>
#include <cstdint>

#include "edgellm/interface.h"
#include "edgellm/lowbit_gear.h"
#include "edgellm/lowbit_mm.h"
#include "edgellm/lowbit_source.h"

namespace edgellm {

// The optional fields' defaults; rows, max_k and max_t have none (a configuration that leaves one out does
// not compile).
struct lowbit_config_base {
  static const int max_group = kLbMaxGroup;  // MAXG: the widest group (sizes the activation tables)
  static const int token_lanes = 1;          // TP: tokens sharing each code beat
  static const int beat_bits = kLbBeatBits;  // BW: bits per engine beat, 128 from each weight port
  static const int decoders = 1;             // RD: parameter records decoded per iteration
  static const int scale_lanes = kLbMaxSb;   // SL: sub-scales (2 fmul each) a decoder decodes per iteration
  static const int float_units = kLbMaxFloatUnits;  // FU: float steps per token lane (32: one per lane)
  static const int max_sb = kLbMaxSb;               // MAXSB: groups a parameter record covers at most
  static const int min_group = kLbMinGroup;         // MING: the narrowest group a tensor may have
  // the weight gearbox (lowbit_gear.h): C engine beats a cycle (0: none), lane 1's / lane 2's beats a cycle
  // on port 0 / port 3 (4-port engines)
  static const int gear_cycle = 0, gear_k1 = 0, gear_k2 = 0;
  // the parameter codecs the engine decodes (packing_lowbit.ParamCodec.as_words rows): 0 = any, by runtime
  // shifts (a C-simulation convenience); compile lists the model's, n_codecs > 0, decoded by static fields
  static const int n_codecs = 0;
  static constexpr int codec(int, int) { return 0; }
};

// A named low-bit configuration P with its derived values; `engine` is the LowbitConfig it names.
template <class P>
struct lowbit_traits : P {
  static const int rows = P::rows, max_k = P::max_k, max_t = P::max_t, max_group = P::max_group;
  static const int token_lanes = P::token_lanes, beat_bits = P::beat_bits, decoders = P::decoders;
  static const int scale_lanes = P::scale_lanes, float_units = P::float_units, max_sb = P::max_sb;
  static const int min_group = P::min_group;
  static const int gear_cycle = P::gear_cycle, gear_k1 = P::gear_k1, gear_k2 = P::gear_k2;
  typedef LowbitConfig<rows, max_k, max_t, max_group, token_lanes, beat_bits, decoders, scale_lanes, float_units,
                       max_sb, min_group, P>
      engine;
};

// One low-bit linear of a layer: the tensor (n_out, k: the layer's shape), the float offset of its bias
// in the params area (-1: none) and the bytes from weight port 0's image to port u's.
struct LbLinear {
  LowbitTensor t;
  long bias;
  long port_off[4];  // bytes from port 0's image to port u's (0 for port 0)
};

// A record's words (LB_WORDS, interface.h) for a linear of n_out x k.
inline LbLinear lb_linear_of(const uint32_t w[LB_WORDS], int n_out, int k) {
#pragma HLS INLINE
  LbLinear l;
  l.t.bits = (int)w[LB_BITS], l.t.group = (int)w[LB_GROUP], l.t.n_out = n_out, l.t.k = k;
  l.t.sb = (int)w[LB_SB], l.t.db = (int)w[LB_DB], l.t.scb = (int)w[LB_SCB], l.t.sc_off = (int)w[LB_SC_OFF];
  l.t.mmode = (int)w[LB_MMODE], l.t.dmb = (int)w[LB_DMB], l.t.mcb = (int)w[LB_MCB];
  l.t.mc_off = (int)w[LB_MC_OFF], l.t.mz = (int)w[LB_MZ], l.t.dper = (int)w[LB_DPER];
  l.bias = w[LB_BIAS_OFF] == LB_NO_BIAS ? -1L : (long)w[LB_BIAS_OFF];
  l.port_off[0] = 0;
lb_port_offsets:
  for (int u = 1; u < 4; u++) {
#pragma HLS UNROLL
    l.port_off[u] = (long)w[LB_PORT1_OFF + u - 1];
  }
  return l;
}

// Port u's source: a pointer to the port's beats at the image's byte offset, or the port's FIFO as it is.
inline const lb_beat_t *lb_port_at(const lb_beat_t *w, long byte) {
#pragma HLS INLINE
  return w + byte / (kLbBeatBits / 8);
}
inline hls::stream<lb_beat_t> *lb_port_at(hls::stream<lb_beat_t> *s, long) {
#pragma HLS INLINE
  return s;
}

// The layer's matmul policy (decoder_layer.h linear_job, top_fetch.h fetch_program): the same shape as tlmm_mm
// plus the linear's record and its bias.
template <class LT>
struct lowbit_mm_policy {
  typedef typename LT::engine C;
  typedef lb_beat_t word_t;  // one weight FIFO word: one 128-bit weight-port beat
  // weight ports (FIFOs) it reads; token lanes; bytes per weight-port beat (= the LM head's P); low-bit
  enum { kPorts = C::PORTS, kTokenLanes = C::TP, kBeatBytes = kLbBeatBits / 8, kLowbit = 1 };

  // y = x * W / qs (+ bias) for n_tok tokens in passes of MAXT: x (int8), qs, y and the bias at element
  // offsets of their pointers (plain arrays or the act port's beats; bias_at < 0: none). WS: the weight
  // ports (const lb_beat_t: port u's image at byte w_off + port_off[u] of w_u) or the weight FIFOs (popped,
  // w_off ignored: the fetcher pushed the stream once per pass).
  template <class WS, class PX, class PS, class PY, class PB>
  static void run(const PX *x, long x_off, const PS *qs, long qs_off, int n_tok, WS *w0, WS *w1, WS *w2, WS *w3,
                  long w_off, const LbLinear &lin, int n_out, int k, const PB *bias, long bias_at, PY *y,
                  long y_off) {
#ifndef __SYNTHESIS__
    assert(k <= C::MAXK && k % 16 == 0 && x_off % 16 == 0);
#endif
    LowbitTensor t = lin.t;
    t.n_out = n_out, t.k = k;
    WS *p0 = lb_port_at(w0, w_off), *p1 = lb_port_at(w1, w_off + lin.port_off[1]);
    WS *p2 = lb_port_at(w2, w_off + lin.port_off[2]), *p3 = lb_port_at(w3, w_off + lin.port_off[3]);
  lb_passes:
    for (int t0 = 0; t0 < n_tok; t0 += C::MAXT) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 / C::MAXT
      const int nt = n_tok - t0 < C::MAXT ? n_tok - t0 : C::MAXT;
      const LbAt at = {x_off + (long)t0 * k, qs_off + t0, y_off + (long)t0 * n_out, bias_at};
      lowbit_mm_at<C>(t, p0, p1, p2, p3, 0L, x, qs, nt, y, bias, at);
    }
  }

  typedef LbGear<LT> gear;  // the weight gearbox (lowbit_gear.h; gear::ON = 0: none)
  static_assert(!gear::ON || C::PORTS == 4, "the weight gearbox serves 4-port engines");

  // Port P's FIFO for one linear: its image (at byte base + port_off[P] of w, 128-bit beats: the top's
  // weight port, or a testbench's array) once per engine pass of the n_tok tokens, in stream order. Under
  // the gearbox (the top's fetchers): port 0 / 3 splits its image into `fifo` and the side FIFO
  // (lb_fetch_split), port 1 / 2 pushes each pass's engine beats into its count FIFO before its kept words.
  template <int P, class WB>
  static void fetch(const WB *w, long base, const LbLinear &lin, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo) {
    static_assert(!gear::ON || P >= kPorts || (gear::recipient(P) < 0 && gear::given(P) == 0),
                  "a geared port fetches with its side FIFO");
    if (P >= kPorts) return;
    const long nb = beats(lin, n_out, k), b0 = image_beat<P>(base, lin);
  lb_fetch_passes:
    for (int t0 = 0; t0 < n_tok; t0 += C::MAXT) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 / C::MAXT
    lb_fetch_beats:
      for (long i = 0; i < nb; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
#pragma HLS PIPELINE II = 1
        fifo.write(w[b0 + i]);
      }
    }
  }
  template <int P, class WB>
  static void fetch(const WB *w, long base, const LbLinear &lin, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo, FetchNoSide &) {
    fetch<P>(w, base, lin, n_out, k, n_tok, fifo);
  }
  // port P (0 or 3) under the gearbox: its lane into fifo, the recipient lane's given words into side
  template <int P, class WB>
  static void fetch(const WB *w, long base, const LbLinear &lin, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo, hls::stream<word_t> &side) {
    static_assert(gear::ON && gear::recipient(P) >= 0, "a side FIFO on a port that carries no other lane");
    enum { K = gear::given(gear::recipient(P) >= 0 ? gear::recipient(P) : 1) };
    const long nb = beats(lin, n_out, k), b0 = image_beat<P>(base, lin), port_words = gear::port_beats(P, nb);
  lb_fetch_split_passes:
    for (int t0 = 0; t0 < n_tok; t0 += C::MAXT) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 / C::MAXT
      lb_fetch_split<gear::C, K>(w + b0, port_words, fifo, side);
    }
  }
  // port P (1 or 2) under the gearbox: each pass's engine beats into cq (for lb_lane_merge), its kept words
  template <int P, class WB>
  static void fetch(const WB *w, long base, const LbLinear &lin, int n_out, int k, int n_tok,
                    hls::stream<word_t> &fifo, hls::stream<lb_count_t> &cq) {
    static_assert(gear::ON && gear::given(P) > 0, "a count FIFO on a port whose lane gives no words");
    const long nb = beats(lin, n_out, k), b0 = image_beat<P>(base, lin), kept_words = gear::kept(P, nb);
  lb_fetch_kept_passes:
    for (int t0 = 0; t0 < n_tok; t0 += C::MAXT) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 / C::MAXT
      cq.write((lb_count_t)nb);
    lb_fetch_kept:
      for (long i = 0; i < kept_words; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
#pragma HLS PIPELINE II = 1
        fifo.write(w[b0 + i]);
      }
    }
  }

 private:
  // a linear's engine beats a pass, port P's image's first beat
  static long beats(const LbLinear &lin, int n_out, int k) {
#pragma HLS INLINE
    LowbitTensor t = lin.t;
    t.n_out = n_out, t.k = k;
    return lb_stream_beats(t, C::R, C::BW);
  }
  template <int P>
  static long image_beat(long base, const LbLinear &lin) {
#pragma HLS INLINE
    return (base + lin.port_off[P]) / (kLbBeatBits / 8);
  }
};

// Whether a matmul policy is the low-bit one (MM::kLowbit; the ternary policies have no such member).
template <class MM, class = int>
struct mm_is_lowbit {
  enum { value = 0 };
};
template <class MM>
struct mm_is_lowbit<MM, decltype((int)MM::kLowbit, 0)> {
  enum { value = MM::kLowbit };
};

// Whether a matmul policy streams through the low-bit weight gearbox (MM::gear::ON; lowbit_gear.h).
template <class MM, class = int>
struct mm_gear_on {
  enum { value = 0 };
};
template <class MM>
struct mm_gear_on<MM, decltype((int)MM::gear::ON, 0)> {
  enum { value = MM::gear::ON };
};

}  // namespace edgellm
