// The top's descriptor program as the engine and the fetchers both read it (top.h runs it,
// top_fetch.h fetches for it): a port's view of the header (port_sees_header), words of the buffer
// through a beat port (read_words), a layer's low-bit records (lb_records) and what a descriptor does
// under the compiled configuration (desc_action), so both sides agree on what runs.
#pragma once

#include <cstdint>
#ifndef __SYNTHESIS__
#include <cstdio>
#endif

#include "edgellm/interface.h"
#include "edgellm/layer_config.h"
#include "edgellm/lowbit_policy.h"
#include "edgellm/maxi.h"

namespace edgellm {

inline void top_skip(const char *why, uint32_t a, uint32_t b) {
#ifndef __SYNTHESIS__
  std::fprintf(stderr, "edgellm_top: skipped: %s (%u, %u)\n", why, (unsigned)a, (unsigned)b);
#else
  (void)why;
  (void)a;
  (void)b;
#endif
}

// True when the port sees the header magic at hdr_off (4-byte aligned; the host wrote the same buffer
// address into every pointer register): every m_axi argument is a beat port (maxi.h).
template <int B>
bool port_sees_header(const ap_uint<B> *w, uint32_t hdr_off) {
  return mget<uint32_t>(w, hdr_off / 4 + HDR_MAGIC) == kMagic;
}

// n words of the buffer starting at byte offset off (4-byte aligned), through a beat port (the data
// port or a fetcher's own weight port): one word's beat per iteration.
template <int N, int B>
void read_words(const ap_uint<B> *w, uint32_t off, uint32_t out[N]) {
read_words_beats:
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
    out[i] = mget<uint32_t>(w, off / 4 + i);
  }
}

enum DescAction { ACT_SKIP = 0, ACT_LAYER, ACT_HEAD };

// A layer's low-bit records (record layer * N_LIN + i of the table at HDR_LB_TABLE, checked by
// check_program) into d.lb, through the engine's data port or a fetcher's own weight port: low-bit designs
// only (mm_is_lowbit); a ternary design reads nothing.
template <class TC, int LB = mm_is_lowbit<typename TC::mm>::value>
struct lb_records {
  template <int B>
  static void load(const ap_uint<B> *, const uint32_t *, uint32_t, layer_desc &) {}
};
template <class TC>
struct lb_records<TC, 1> {
  template <int B>
  static void load(const ap_uint<B> *port, const uint32_t hdr[HDR_WORDS], uint32_t layer, layer_desc &d) {
    typedef typename TC::layer C;
  lb_records_loop:
    for (int i = 0; i < N_LIN; i++) {
      uint32_t w[LB_WORDS];
      read_words<LB_WORDS>(port, hdr[HDR_LB_TABLE] + (layer * N_LIN + (uint32_t)i) * (uint32_t)(LB_WORDS * 4), w);
      d.lb[i] = lb_linear_of(w, lin_out<C>(i), lin_in<C>(i));
    }
  }
};

// What descriptor i (words d) does under the compiled configuration; the engine and the fetchers
// both decide with this (say: print why a descriptor is skipped, C simulation only).
template <class TC>
int desc_action(const uint32_t d[DESC_WORDS], uint32_t i, bool say) {
  typedef typename TC::layer C;
  const uint32_t t_len = d[D_T_LEN], pos0 = d[D_POS0];
  const char *why = 0;
  uint32_t a = i, b = 0;
  int act = ACT_SKIP;
  if (d[D_OP] == OP_LAYER) {
    if (d[D_LAYER] >= (uint32_t)TC::n_layers) {
      why = "OP_LAYER: layer out of range", b = d[D_LAYER];
    } else if (t_len < 1 || t_len > (uint32_t)C::max_t || pos0 > (uint32_t)C::max_ctx ||
               pos0 + t_len > (uint32_t)C::max_ctx) {
      why = "OP_LAYER: t_len/pos0 out of range", a = t_len, b = pos0;
    } else {
      act = ACT_LAYER;
    }
  } else if (d[D_OP] == OP_HEAD) {
    if (d[D_ROW] >= (uint32_t)C::max_t) {
      why = "OP_HEAD: row out of range", b = d[D_ROW];
    } else if (d[D_N_ROWS] > (uint32_t)TC::head::MAX_TOK ||
               (unsigned long long)d[D_ROW] + (d[D_N_ROWS] ? d[D_N_ROWS] : 1) > (unsigned long long)C::max_t) {
      why = "OP_HEAD: rows out of range", a = d[D_ROW], b = d[D_N_ROWS];
    } else {
      act = ACT_HEAD;
    }
  } else {
    why = "unknown opcode", b = d[D_OP];
  }
  if (why && say) top_skip(why, a, b);
  return act;
}

}  // namespace edgellm
