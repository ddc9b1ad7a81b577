// On-chip buffers of the TLMM engine: ping-pong weight tiles, split into per-port banks, and the
// activation block.
//
// A weight tile (R rows x nb byte columns, 5 trits/byte, layout in docs/weight_format.md) is consumed
// in steps of BEATS_PER_STEP (BPS) byte columns, one step per cycle. With NPORTS weight ports the
// byte columns of every tile are split into NPORTS contiguous runs: in units of u = ceil(nb /
// SHARE_SUM) columns, port p loads SHAREp units after the ports before it, [c0_p, c1_p) cut at nb
// (weight_bank_fill.h port_cols; equal shares: u = ceil(nb / NPORTS) columns a port) -- one contiguous
// DDR range per port and tile, so one burst -- into its own bank. Shares in proportion to the ports'
// rates let a port on a shared DDR path carry fewer columns. Bank p is step-shaped ([rows][BPS] beats):
// column c sits in row c / BPS - s0_p (s0_p = c0_p / BPS, the port's first step) at slot c % BPS, so a step
// that straddles two ports' runs takes each slot from the bank of the port that owns that column.
// The NPORTS loaders of a tile are the processes of a DATAFLOW region (distinct m_axi arguments,
// distinct banks), so the ports stream concurrently; the slot dimension of every bank is
// partitioned so a whole step is read per cycle. load_tile() fills tile i+1 into one bank set
// while the compute engine reads tile i from the other (explicit ping-pong: the two calls of one
// loop iteration touch different arrays and have no data dependence, so HLS runs them
// concurrently; TeLLMe serializes them; the two call sites of the loader and of the compute share one
// instance each: ALLOCATION, the calls being in exclusive branches). The storage kind (BRAM / URAM / LUTRAM) is chosen by
// CFG::STORAGE through a specialization, because a BIND_STORAGE impl must be a literal. With
// kStorageLutram the (shallow) weight banks are distributed RAM and the activation block stays BRAM.
//
// Files: weight_bank_fill.h (a port's share of a tile into its bank, from memory or its weight FIFO),
// weight_storage.h (the storage kinds, TlmmBuffers); this header holds the per-tile loaders
// (TileLoader, tlmm_load_tile) and the bank read (bank_beat), and includes both.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

#include "edgellm/hw_facts.h"
#include "edgellm/numerics.h"
#include "edgellm/weight_bank_fill.h"
#include "edgellm/weight_codec.h"
#include "edgellm/weight_storage.h"

namespace edgellm {

// Load tile `tile` over NPORTS ports concurrently: port p fills bank p. One specialization per port
// count, so each DATAFLOW region is straight-line calls on distinct ports and distinct banks; the
// unused pointer and bank arguments are never touched. INLINE off: a region the tool inlined would run
// its loaders one after another. tlmm_load_tile is the one function the engine calls.
template <class CFG, int NP = CFG::NPORTS>
struct TileLoader;

template <class CFG>
struct TileLoader<CFG, 1> {
  typedef typename CFG::beat_t beat_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  template <class WT>
  static void run(WT *w0, WT *, WT *, WT *, int tile, int rows_t, int nb,
                  int unit, beat_t b0[][BPS], beat_t[][BPS], beat_t[][BPS], beat_t[][BPS]) {
#pragma HLS INLINE
    load_port_slice<CFG, 0>(w0, tile, rows_t, nb, unit, b0);
  }
};

template <class CFG>
struct TileLoader<CFG, 2> {
  typedef typename CFG::beat_t beat_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *, WT *, int tile, int rows_t, int nb,
                  int unit, beat_t b0[][BPS], beat_t b1[][BPS], beat_t[][BPS], beat_t[][BPS]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    load_port_slice<CFG, 0>(w0, tile, rows_t, nb, unit, b0);
    load_port_slice<CFG, 1>(w1, tile, rows_t, nb, unit, b1);
  }
};

template <class CFG>
struct TileLoader<CFG, 3> {
  typedef typename CFG::beat_t beat_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *w2, WT *, int tile, int rows_t, int nb,
                  int unit, beat_t b0[][BPS], beat_t b1[][BPS], beat_t b2[][BPS], beat_t[][BPS]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    load_port_slice<CFG, 0>(w0, tile, rows_t, nb, unit, b0);
    load_port_slice<CFG, 1>(w1, tile, rows_t, nb, unit, b1);
    load_port_slice<CFG, 2>(w2, tile, rows_t, nb, unit, b2);
  }
};

template <class CFG>
struct TileLoader<CFG, 4> {
  typedef typename CFG::beat_t beat_t;
  static const int BPS = CFG::BEATS_PER_STEP;
  template <class WT>
  static void run(WT *w0, WT *w1, WT *w2, WT *w3, int tile, int rows_t, int nb,
                  int unit, beat_t b0[][BPS], beat_t b1[][BPS], beat_t b2[][BPS], beat_t b3[][BPS]) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    load_port_slice<CFG, 0>(w0, tile, rows_t, nb, unit, b0);
    load_port_slice<CFG, 1>(w1, tile, rows_t, nb, unit, b1);
    load_port_slice<CFG, 2>(w2, tile, rows_t, nb, unit, b2);
    load_port_slice<CFG, 3>(w3, tile, rows_t, nb, unit, b3);
  }
};

// Tile `tile` (rows_t rows) into banks b0 .. b{NPORTS-1} (TileLoader); nothing when tile >= ntiles.
// The TLMM engine's ping-pong calls it at two sites that share one instance (tlmm.h TlmmBody).
template <class CFG, class WT>
void tlmm_load_tile(WT *w0, WT *w1, WT *w2, WT *w3, int tile, int ntiles, int rows_t, int nb, int unit,
                    typename CFG::beat_t b0[][CFG::BEATS_PER_STEP], typename CFG::beat_t b1[][CFG::BEATS_PER_STEP],
                    typename CFG::beat_t b2[][CFG::BEATS_PER_STEP], typename CFG::beat_t b3[][CFG::BEATS_PER_STEP]) {
#pragma HLS INLINE off
  if (tile < ntiles) TileLoader<CFG>::run(w0, w1, w2, w3, tile, rows_t, nb, unit, b0, b1, b2, b3);
}

// Slot j of step s: column c = s*BPS + j (columns past the tile's end count as its last column,
// whose port padded them with zero beats) comes from the bank whose run holds c (c < bound[bank] = c1_bank), row s - s0[bank]. Only the owning
// bank is read; the port count is a constant, so unused banks vanish.
template <class CFG>
typename CFG::beat_t bank_beat(const typename CFG::beat_t b0[][CFG::BEATS_PER_STEP],
                               const typename CFG::beat_t b1[][CFG::BEATS_PER_STEP],
                               const typename CFG::beat_t b2[][CFG::BEATS_PER_STEP],
                               const typename CFG::beat_t b3[][CFG::BEATS_PER_STEP], int c, int nb, int s,
                               const int s0[kMaxWeightPorts], const int bound[kMaxWeightPorts], int j) {
#pragma HLS INLINE
  const int NP = CFG::NPORTS;
  const int cl = c < nb ? c : nb - 1;
  if (NP == 1 || cl < bound[0]) return b0[s - s0[0]][j];
  if (NP == 2 || cl < bound[1]) return b1[s - s0[1]][j];
  if (NP == 3 || cl < bound[2]) return b2[s - s0[2]][j];
  return b3[s - s0[3]][j];
}

}  // namespace edgellm
