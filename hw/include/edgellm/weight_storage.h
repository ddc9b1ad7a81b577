// The TLMM engine's on-chip buffers by storage kind (weight_buffer.h: their layout and ping-pong): the
// storage kinds (BufferStorage, CFG::STORAGE), the banks' depths (BankDepth) and TlmmBuffers, one
// specialization per kind because a BIND_STORAGE impl must be a literal. The banks are filled by
// weight_bank_fill.h and read by weight_buffer.h bank_beat.
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
template <int STORAGE>
struct TlmmBuffers;

template <>
struct TlmmBuffers<kStorageBram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::TP][CFG::XROWS][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 1 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 3 type = complete
#pragma HLS BIND_STORAGE variable = ping0 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = ping1 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = ping2 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = ping3 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = pong0 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = pong1 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = pong2 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = pong3 type = ram_s2p impl = bram
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = bram
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageUram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::TP][CFG::XROWS][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 1 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 3 type = complete
#pragma HLS BIND_STORAGE variable = ping0 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = ping1 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = ping2 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = ping3 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = pong0 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = pong1 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = pong2 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = pong3 type = ram_s2p impl = uram
#pragma HLS BIND_STORAGE variable = xbuf type = ram_s2p impl = uram
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

template <>
struct TlmmBuffers<kStorageLutram> {
  template <class CFG, class BODY, class... A>
  static void run(A... args) {
    static typename CFG::beat_t ping0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t ping3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong0[BankDepth<CFG, 0>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong1[BankDepth<CFG, 1>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong2[BankDepth<CFG, 2>::value][CFG::BEATS_PER_STEP];
    static typename CFG::beat_t pong3[BankDepth<CFG, 3>::value][CFG::BEATS_PER_STEP];
    static typename CFG::xchunk_t xbuf[CFG::TP][CFG::XROWS][CFG::CPC];
#pragma HLS ARRAY_PARTITION variable = ping0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = ping3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong0 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong1 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong2 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = pong3 dim = 2 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 1 type = complete
#pragma HLS ARRAY_PARTITION variable = xbuf dim = 3 type = complete
#pragma HLS BIND_STORAGE variable = ping0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = ping3 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong0 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong1 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong2 type = ram_s2p impl = lutram
#pragma HLS BIND_STORAGE variable = pong3 type = ram_s2p impl = lutram
    // activations: too deep for LUTs; with LUTRAM weight banks they follow the activation buffers
    // (EDGELLM_ACT_STORAGE: bram or uram)
    EDGELLM_ACT_BIND(xbuf, ram_s2p)
    BODY::run(ping0, ping1, ping2, ping3, pong0, pong1, pong2, pong3, xbuf, args...);
  }
};

}  // namespace edgellm
