// Filling the TLMM engine's weight banks (weight_buffer.h: the bank layout, the ping-pong): beats from a
// memory port or a weight FIFO, the beats each port reads for its share of a tile (port_slice_beats,
// shared with the fetchers, weight_fetch.h), the column stores into the step-shaped banks (put_column,
// put_column_pair, pad_last_step) and one port's share of a tile into its bank, from memory
// (load_port_slice_mem) or from its FIFO (load_port_slice_fifo), chosen by load_port_slice. The
// per-tile loaders and the bank reads: weight_buffer.h; the banks' storage kinds: weight_storage.h.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/weight_codec.h"

namespace edgellm {

const int kMaxWeightPorts = facts::kMaxStreamPorts;  // m_axi weight ports the engine can stream from concurrently
// Beats (byte columns) per word of a weight FIFO (weight_fetch.h): the fetcher packs two R-byte beats per
// word, so the engine fills a tile bank two columns per cycle, twice the rate one HP port delivers, and
// drains what the fetcher prefetched while the engine was busy elsewhere.
const int kFetchBeats = facts::kFetchBeats;

// One R-byte beat from a plain byte pointer (C simulation, or a byte-wide m_axi port).
template <int R>
ap_uint<8 * R> read_beat(const uint8_t *w, long i) {
#pragma HLS INLINE
  uint8_t by[R];
#pragma HLS ARRAY_PARTITION variable = by complete
beat_bytes:
  for (int b = 0; b < R; b++) {
#pragma HLS UNROLL
    by[b] = w[i * R + b];
  }
  return bytes_word<R>(by);
}

// One beat from a wide m_axi port (ap_uint<8*R> pointers).
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

// The unit of the ports' shares of a tile's nb byte columns: ceil(nb / SHARE_SUM) columns (tlmm_config.h
// SHARE0 .. SHARE3; equal shares: ceil(nb / NPORTS), one unit a port).
template <class CFG>
int port_unit(int nb) {
#pragma HLS INLINE
  return (nb + CFG::SHARE_SUM - 1) / CFG::SHARE_SUM;
}

// Port P's run of a tile's byte columns, [c0, c1): its share of `unit`-column units after the shares of
// the ports before it, cut at nb (the last ports may get fewer columns or none).
template <class CFG, int P>
void port_cols(int nb, int unit, int &c0, int &c1) {
#pragma HLS INLINE
  const int a = CFG::share_prefix(P) * unit, b = a + CFG::share(P) * unit;
  c0 = a < nb ? a : nb;
  c1 = b < nb ? b : nb;
}

// The beats port P reads for its share of tile `tile` (layout: weight_buffer.h; load_port_slice): first beat
// index (from the matrix image's start, in R-byte beats) and count. Full tiles: the columns [c0, c1) of the
// tile (port_cols), one beat each. Tail tile (rows_t < R, stored densely as [column][rows_t] bytes): every
// beat the bytes [c0*rows_t, c1*rows_t) of the tile touch. The fetcher (weight_fetch.h) and the loaders
// share it.
template <class CFG, int P>
void port_slice_beats(int tile, int rows_t, int nb, int unit, long &first, int &count) {
#pragma HLS INLINE
  const int R = CFG::R;
  int c0, c1;
  port_cols<CFG, P>(nb, unit, c0, c1);
  const long base = (long)tile * nb;
  if (rows_t == R) {
    first = base + c0;
    count = c1 - c0;
  } else {
    const long b0 = (long)c0 * rows_t, nbytes = (long)rows_t * (c1 - c0);
    first = base + b0 / R;
    count = nbytes > 0 ? (int)((b0 + nbytes - 1) / R - b0 / R + 1) : 0;
  }
}

// The bank position after (slot, row) in a step-shaped bank of BPS slots per row.
template <int BPS>
void next_slot(int &slot, int &row) {
#pragma HLS INLINE
  if (slot == BPS - 1) {
    slot = 0;
    row++;
  } else {
    slot++;
  }
}

// Stores one byte column at (row, slot) of its bank: one store into the slot's memory (the slot
// dimension is partitioned, one memory per slot, one write port each).
template <class CFG>
void put_column(typename CFG::beat_t col, int row, int slot, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  bank[row][slot] = col;
}

// Two consecutive byte columns in one cycle: (r0, s0) and the next position (r1, s1), the second only
// when v1. Written per slot memory (j): each memory takes at most one store, the column whose slot it
// is (consecutive columns sit in distinct slots when BEATS_PER_STEP >= 2), so the loop that calls it
// keeps II = 1 on one-write-port memories.
template <class CFG>
void put_column_pair(typename CFG::beat_t c0, int r0, int s0, typename CFG::beat_t c1, int r1, int s1, bool v1,
                     typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  static_assert(CFG::BEATS_PER_STEP >= 2, "two columns per cycle need two slot memories");
pair_slots:
  for (int j = 0; j < CFG::BEATS_PER_STEP; j++) {
#pragma HLS UNROLL
    const bool a = j == s0, b = v1 && j == s1;
    if (a || b) bank[a ? r0 : r1][j] = a ? c0 : c1;
  }
}

// After a port's run that ends with the tile's last column (c1 == nb > c0): zero beats in the rest of
// that column's step (slots past it), one store per slot memory, once per tile (after the load loop).
template <class CFG>
void pad_last_step(int c0, int c1, int nb, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  const int BPS = CFG::BEATS_PER_STEP;
  if (c1 == nb && c1 > c0) {
    const int row = (nb - 1) / BPS - c0 / BPS, slot = (nb - 1) % BPS;
  pad_slots:
    for (int j = 0; j < BPS; j++) {
#pragma HLS UNROLL
      if (j > slot) bank[row][j] = zero_beat<CFG::R>();
    }
  }
}

// The tail tile's share of one port (rows_t < R rows, stored densely as [column][rows_t] bytes):
// columns c0 .. c1-1 are the bytes [c0*rows_t, c1*rows_t) of the tile, taken beat by beat from `src`
// (src.next(): the next beat, the first holding byte c0*rows_t at lane c0*rows_t % R) and
// re-assembled into columns one byte per cycle. SRC: a memory port (MemBeats) or a weight FIFO
// (FifoBeats, below).
template <class CFG, class SRC>
void load_tail_columns(SRC &src, int c0, int c1, int rows_t, int nb,
                       typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  typedef typename CFG::beat_t beat_t;
  const int R = CFG::R, BPS = CFG::BEATS_PER_STEP;
  enum { kMaxBytes = CFG::CPP_MAX * CFG::R };  // pragma constant
  beat_t in = 0;
  beat_t col = zero_beat<R>();
  int lane = (int)(((long)c0 * rows_t) % R), r = 0, row = 0, slot = c0 % BPS;
load_tail:
  for (int i = 0; i < rows_t * (c1 - c0); i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxBytes
    if (i == 0 || lane == 0) in = src.next();
    col.range(8 * r + 7, 8 * r) = in.range(8 * lane + 7, 8 * lane);
    lane = lane == R - 1 ? 0 : lane + 1;
    if (r == rows_t - 1) {
      put_column<CFG>(col, row, slot, bank);
      r = 0;
      next_slot<BPS>(slot, row);
    } else {
      r++;
    }
  }
  pad_last_step<CFG>(c0, c1, nb, bank);
}

// Beats of a memory port from index wi on (load_tail_columns' source).
template <int R, class WT>
struct MemBeats {
  WT *w;
  long wi;
  ap_uint<8 * R> next() {
#pragma HLS INLINE
    return read_beat<R>(w, wi++);
  }
};

// Port P's share of tile `tile` (rows_t rows, nb byte columns, shares of `unit` columns) into its bank:
// columns c0 .. c1-1 (port_cols). Full tiles: one beat per cycle, a burst of the port's columns. The tail
// tile (rows_t < R): load_tail_columns.
template <class CFG, int P, class WT>
void load_port_slice_mem(WT *w, int tile, int rows_t, int nb, int unit,
                         typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE off
  const int R = CFG::R, BPS = CFG::BEATS_PER_STEP;
  enum { kMaxCols = CFG::CPP_MAX };  // pragma constant
  int c0, c1;
  port_cols<CFG, P>(nb, unit, c0, c1);
  const long base = (long)tile * nb;  // tile byte offset t*R*nb, in R-byte beats
  int row = 0, slot = c0 % BPS;       // bank position of column c0
  if (rows_t == R) {
  load_full:
    for (int bc = c0; bc < c1; bc++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxCols
      put_column<CFG>(read_beat<R>(w, base + bc), row, slot, bank);
      next_slot<BPS>(slot, row);
    }
    pad_last_step<CFG>(c0, c1, nb, bank);
  } else {
    MemBeats<R, WT> src = {w, base + (long)c0 * rows_t / R};
    load_tail_columns<CFG>(src, c0, c1, rows_t, nb, bank);
  }
}

// Beat-at-a-time view of a weight FIFO of kFetchBeats-beat words (the tail path of load_port_slice):
// a new word every kFetchBeats beats, low beat first; every port slice starts on a fresh word.
template <int R>
struct FifoBeats {
  typedef ap_uint<8 * R * kFetchBeats> word_t;
  hls::stream<word_t> *s;
  word_t word;
  int used;
  explicit FifoBeats(hls::stream<word_t> *fifo) : s(fifo), word(0), used(kFetchBeats) {}
  ap_uint<8 * R> next() {
#pragma HLS INLINE
    if (used == kFetchBeats) {
      word = s->read();
      used = 0;
    }
    ap_uint<8 * R> b = word.range(8 * R * (used + 1) - 1, 8 * R * used);
    used++;
    return b;
  }
};

// Full-tile columns c0 .. c1-1 from a weight FIFO, one word (kFetchBeats = 2 columns) per cycle: the
// word's two columns go to two different slot memories (put_column_pair), one store each.
template <class CFG, class WORD, bool PAIR = (CFG::BEATS_PER_STEP >= kFetchBeats)>
struct FifoColumns {
  static void run(hls::stream<WORD> *fifo, int c0, int c1, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
    typedef ap_uint<8 * CFG::R * kFetchBeats> word_t;
    const int R = CFG::R, BPS = CFG::BEATS_PER_STEP;
    enum { kMaxWords = (CFG::CPP_MAX + kFetchBeats - 1) / kFetchBeats };  // pragma constant
    static_assert(kFetchBeats == 2, "a FIFO word holds a column pair");
    int row = 0, slot = c0 % BPS;
  fifo_full:
    for (int i = 0; i < (c1 - c0 + 1) / 2; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxWords
      const word_t w = fifo->read();
      int row1 = row, slot1 = slot;
      next_slot<BPS>(slot1, row1);
      put_column_pair<CFG>(w.range(8 * R - 1, 0), row, slot, w.range(16 * R - 1, 8 * R), row1, slot1,
                           c0 + 2 * i + 1 < c1, bank);
      row = row1;
      slot = slot1;
      next_slot<BPS>(slot, row);
    }
  }
};

// BEATS_PER_STEP == 1 (G = 1, T = 5): every column lands in the one slot memory, so one column per
// cycle (a word every second cycle; fifo_tile_load_cycles charges a port's columns, one a cycle).
template <class CFG, class WORD>
struct FifoColumns<CFG, WORD, false> {
  static void run(hls::stream<WORD> *fifo, int c0, int c1, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
    enum { kMaxCols = CFG::CPP_MAX };  // pragma constant
    FifoBeats<CFG::R> src(fifo);
  fifo_cols:
    for (int bc = c0; bc < c1; bc++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxCols
      put_column<CFG>(src.next(), bc - c0, 0, bank);
    }
  }
};

// Port P's share of tile `tile` from its weight FIFO (weight_fetch.h pushes exactly port_slice_beats'
// beats, kFetchBeats per word, the last word of a slice zero-padded) into its bank, as load_port_slice
// does from memory. Full tiles: one word, kFetchBeats columns, per cycle into two slot memories
// (FifoColumns; at BEATS_PER_STEP == 1, one column per cycle). Tail tile: one byte per cycle, as from
// memory. Then the zero padding of the tile's last step (pad_last_step).
template <class CFG, int P, class WORD>
void load_port_slice_fifo(hls::stream<WORD> *fifo, int tile, int rows_t, int nb, int unit,
                          typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE off
  typedef ap_uint<8 * CFG::R * kFetchBeats> word_t;
  static_assert(sizeof(WORD) == sizeof(word_t), "weight FIFO word: kFetchBeats beats of R bytes");
  const int R = CFG::R;
  int c0, c1;
  port_cols<CFG, P>(nb, unit, c0, c1);
  if (rows_t == R) {
    FifoColumns<CFG, WORD>::run(fifo, c0, c1, bank);
    pad_last_step<CFG>(c0, c1, nb, bank);
  } else {
    FifoBeats<R> src(fifo);
    load_tail_columns<CFG>(src, c0, c1, rows_t, nb, bank);
  }
  (void)tile;
}

// Port P's share of a tile from memory (load_port_slice_mem) or from its weight FIFO
// (load_port_slice_fifo), chosen by the source type.
template <class CFG, int P, class WT>
struct SliceLoad {
  static void run(WT *w, int tile, int rows_t, int nb, int unit, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
    load_port_slice_mem<CFG, P>(w, tile, rows_t, nb, unit, bank);
  }
};
template <class CFG, int P, class WORD>
struct SliceLoad<CFG, P, hls::stream<WORD> > {
  static void run(hls::stream<WORD> *w, int tile, int rows_t, int nb, int unit,
                  typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
    load_port_slice_fifo<CFG, P>(w, tile, rows_t, nb, unit, bank);
  }
};
template <class CFG, int P, class WT>
void load_port_slice(WT *w, int tile, int rows_t, int nb, int unit, typename CFG::beat_t bank[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE
  SliceLoad<CFG, P, WT>::run(w, tile, rows_t, nb, unit, bank);
}

}  // namespace edgellm
