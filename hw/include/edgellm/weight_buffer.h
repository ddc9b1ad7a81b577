// On-chip buffers of the TLMM engine: ping-pong weight tiles and the activation block.
//
// A weight tile (R rows x all K columns, 5 trits/byte, layout in docs/weight_format.md) is held as
// NSTEP_MAX steps x BEATS_PER_STEP beats; the beat dimension is partitioned so one step (G*CPC
// byte columns of all R rows) is read per cycle. load_tile() streams tile i+1 from the m_axi port
// into one buffer while the compute engine reads tile i from the other (explicit ping-pong: the two
// calls of one loop iteration touch different arrays and have no data dependence, so HLS runs them
// concurrently; TeLLMe serializes them). The storage kind (BRAM / URAM / LUTRAM) is chosen by
// CFG::STORAGE through a specialization, because a BIND_STORAGE impl must be a literal.
#pragma once

#include <ap_int.h>

#include <cstdint>

#include "edgellm/weight_codec.h"

namespace edgellm {

enum BufferStorage { kStorageBram = 0, kStorageUram = 1, kStorageLutram = 2 };

// One R-byte beat from a plain byte pointer (C simulation, or a byte-wide m_axi port).
template <int R>
ap_uint<8 * R> read_beat(const uint8_t *w, long i) {
#pragma HLS INLINE
  ap_uint<8 * R> v = 0;
beat_bytes:
  for (int b = 0; b < R; b++) {
#pragma HLS UNROLL
    v.range(8 * b + 7, 8 * b) = w[i * R + b];
  }
  return v;
}

// One beat from a wide m_axi port (the synthesized top uses ap_uint<8*R> pointers).
template <int R>
ap_uint<8 * R> read_beat(const ap_uint<8 * R> *w, long i) {
#pragma HLS INLINE
  return w[i];
}

// A beat of zero-weight bytes (121 = five zero trits) in every lane.
template <int R>
ap_uint<8 * R> zero_beat() {
  ap_uint<8 * R> v = 0;
  for (int b = 0; b < R; b++) {
#pragma HLS UNROLL
    v.range(8 * b + 7, 8 * b) = kZeroTritByte;
  }
  return v;
}

// Stores one finished byte column into the step buffer; pads the last step with zero beats.
template <class CFG>
void put_column(typename CFG::beat_t col, int bc, int nb, typename CFG::beat_t buf[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  const int step = bc / CFG::BEATS_PER_STEP;
  const int slot = bc % CFG::BEATS_PER_STEP;
  buf[step][slot] = col;
  if (bc == nb - 1) {
  pad_slots:
    for (int j = 0; j < CFG::BEATS_PER_STEP; j++) {
#pragma HLS UNROLL
      if (j > slot) buf[step][j] = zero_beat<CFG::R>();
    }
  }
}

// Load tile `tile` (rows_t rows, nb byte columns) from the weight image into buf.
// Full tiles: one beat per cycle (a burst of nb beats). The tail tile (rows_t < R) is stored densely
// as [column][rows_t] bytes, so it is read as whole beats and re-assembled one byte per cycle.
template <class CFG, class WT>
void load_tile(const WT *w, int tile, int rows_t, int nb, typename CFG::beat_t buf[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE off
  typedef typename CFG::beat_t beat_t;
  enum { kMaxCols = CFG::NB_MAX, kMaxBytes = CFG::NB_MAX * CFG::R };  // pragma constants
  const long base = (long)tile * nb;  // tile byte offset t*R*nb, in R-byte beats
  if (rows_t == CFG::R) {
  load_full:
    for (int bc = 0; bc < nb; bc++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxCols
      put_column<CFG>(read_beat<CFG::R>(w, base + bc), bc, nb, buf);
    }
  } else {
    beat_t in = 0;
    beat_t col = zero_beat<CFG::R>();
    int lane = 0, r = 0, bc = 0;
    long wi = base;
  load_tail:
    for (int i = 0; i < rows_t * nb; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBytes
      if (lane == 0) in = read_beat<CFG::R>(w, wi++);
      col.range(8 * r + 7, 8 * r) = in.range(8 * lane + 7, 8 * lane);
      lane = lane == CFG::R - 1 ? 0 : lane + 1;
      if (r == rows_t - 1) {
        put_column<CFG>(col, bc, nb, buf);
        r = 0;
        bc++;
      } else {
        r++;
      }
    }
  }
}

// Declares the engine's on-chip buffers with the configured storage and runs BODY::run on them:
// ping/pong weight tiles [NSTEP_MAX][BEATS_PER_STEP] beats and the activation block
// [MAX_TOK * NSTEP_MAX][CPC] chunk words. Static: one physical buffer set per engine instance.
template <int STORAGE>
struct TlmmBuffers;

template <>
struct TlmmBuffers<kStorageBram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::MAX_TOK * CFG::NSTEP_MAX][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 2 type = complete
#pragma HLS BIND_STORAGE variable = ping type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = pong type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = bram
    BODY::run(ping, pong, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageUram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::MAX_TOK * CFG::NSTEP_MAX][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 2 type = complete
#pragma HLS BIND_STORAGE variable = ping type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = pong type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = uram
    BODY::run(ping, pong, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageLutram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong[CFG::NSTEP_MAX][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::MAX_TOK * CFG::NSTEP_MAX][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 2 type = complete
#pragma HLS BIND_STORAGE variable = ping type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = lutram
    BODY::run(ping, pong, xbuf, args...);
  }
};

}  // namespace edgellm
