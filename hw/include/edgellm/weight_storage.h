// The TLMM engine's on-chip buffers by storage kind (weight_buffer.h: their layout and ping-pong): the
// storage kinds (BufferStorage, CFG::STORAGE), the banks' depths (BankDepth) and TlmmBuffers, one
// specialization per kind because a BIND_STORAGE impl must be a literal (the buffers they declare:
// EDGELLM_TLMM_BUFFERS). The banks are filled by weight_bank_fill.h and read by weight_buffer.h bank_beat.
#pragma once

#include "edgellm/numerics.h"

namespace edgellm {

enum BufferStorage { kStorageBram = 0, kStorageUram = 1, kStorageLutram = 2 };

// Rows bank p holds: BANK_ROWS for the NPORTS banks in use, 1 for the unused placeholders.
template <class CFG, int P>
struct BankDepth {
  static constexpr int value = P < CFG::NPORTS ? CFG::BANK_ROWS : 1;
};

// Declares the engine's on-chip buffers with the configured storage and runs BODY::run on them:
// ping banks 0..3, pong banks 0..3 ([BankDepth<CFG, p>][BEATS_PER_STEP] beats each) and the
// activation block xbuf[TP][XROWS][CPC] chunk words (XROWS = MAX_TOK / TP * NSTEP_MAX; token t in
// lane t % TP, rows (t / TP) * NSTEP_MAX ..): lanes and chunks partitioned, so one step reads the
// CPC chunks of all TP lanes in one cycle from TP * CPC memories of 40G bits x XROWS, in the weight
// banks' storage (URAM or BRAM; with LUTRAM banks, the activation buffers' EDGELLM_ACT_STORAGE).
// Static: one physical buffer set per engine instance.
// One bank: declared, its beats partitioned (dim 2: one step's beats in one cycle) and bound to IMPL. A
// BIND_STORAGE impl must be a literal, so the pragmas are built with _Pragma (numerics.h EDGELLM_PRAGMA).
#define EDGELLM_TLMM_BANK(NAME, P, IMPL)                                                  \
  static typename CFG::beat_t NAME[BankDepth<CFG, P>::value][CFG::BEATS_PER_STEP];        \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = NAME dim = 2 type = complete)             \
  EDGELLM_PRAGMA(HLS BIND_STORAGE variable = NAME type = ram_s2p impl = IMPL)

// The ping and pong banks 0..3 and the activation block xbuf (lanes and chunks partitioned), the banks
// bound to IMPL; xbuf's binding is the caller's.
#define EDGELLM_TLMM_BUFFERS(IMPL)                                                        \
  EDGELLM_TLMM_BANK(ping0, 0, IMPL)                                                       \
  EDGELLM_TLMM_BANK(ping1, 1, IMPL)                                                       \
  EDGELLM_TLMM_BANK(ping2, 2, IMPL)                                                       \
  EDGELLM_TLMM_BANK(ping3, 3, IMPL)                                                       \
  EDGELLM_TLMM_BANK(pong0, 0, IMPL)                                                       \
  EDGELLM_TLMM_BANK(pong1, 1, IMPL)                                                       \
  EDGELLM_TLMM_BANK(pong2, 2, IMPL)                                                       \
  EDGELLM_TLMM_BANK(pong3, 3, IMPL)                                                       \
  static typename CFG::xchunk_t xbuf[CFG::TP][CFG::XROWS][CFG::CPC];                      \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = xbuf dim = 1 type = complete)             \
  EDGELLM_PRAGMA(HLS ARRAY_PARTITION variable = xbuf dim = 3 type = complete)

template <int STORAGE>
struct TlmmBuffers;

template <>
struct TlmmBuffers<kStorageBram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    EDGELLM_TLMM_BUFFERS(bram)
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = bram
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageUram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    EDGELLM_TLMM_BUFFERS(uram)
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = uram
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageLutram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    EDGELLM_TLMM_BUFFERS(lutram)
    // activations: too deep for LUTs; with LUTRAM weight banks they follow the activation buffers
    // (EDGELLM_ACT_STORAGE: bram or uram)
    EDGELLM_ACT_BIND(xbuf, ram_s2p)
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

}  // namespace edgellm
