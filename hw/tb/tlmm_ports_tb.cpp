// ctypes entry points for the multi-port TLMM engine (tests/test_hw_tlmm.py): the same engine with
// NPORTS = 1..4 weight ports, each port given its own pointer (the test hands each port a copy of
// the image in which every byte outside that port's share is garbage).
#include <ap_int.h>

#include <cstdint>

#include "edgellm/tlmm.h"
#include "edgellm/weight_fetch.h"

using namespace edgellm;

// Decode config (as tlmm_tb.cpp CfgA) with 1..4 ports.
struct CfgA1_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 16;
};
typedef tlmm_traits<CfgA1_fields> CfgA1;
struct CfgA2_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 16;
  static const int NPORTS = 2;
};
typedef tlmm_traits<CfgA2_fields> CfgA2;
struct CfgA3_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 16;
  static const int NPORTS = 3;
};
typedef tlmm_traits<CfgA3_fields> CfgA3;
struct CfgA4_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 16;
  static const int NPORTS = 4;
};
typedef tlmm_traits<CfgA4_fields> CfgA4;
// Prefill-style config (as CfgB: T=10, R=8, 128 tokens, BRAM) with 2 and 3 ports.
struct CfgB2_fields : tlmm_config_base {
  static const int G = 3, T = 10, R = 8, K_MAX = 8192, N_MAX = 8192, MAX_TOK = 128;
  static const int STORAGE = kStorageBram, NPORTS = 2;
};
typedef tlmm_traits<CfgB2_fields> CfgB2;
struct CfgB3_fields : tlmm_config_base {
  static const int G = 3, T = 10, R = 8, K_MAX = 8192, N_MAX = 8192, MAX_TOK = 128;
  static const int STORAGE = kStorageBram, NPORTS = 3;
};
typedef tlmm_traits<CfgB3_fields> CfgB3;
// The default design's engine (T=25: 15 byte columns per step, so most steps straddle two ports' runs).
struct CfgC4_fields : tlmm_config_base {
  static const int G = 3, T = 25, R = 16, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int NPORTS = 4;
};
typedef tlmm_traits<CfgC4_fields> CfgC4;
// Other group sizes: G=2 with 4 ports (LUTRAM), G=4 with 3 ports (BRAM).
struct CfgG2x4_fields : tlmm_config_base {
  static const int G = 2, T = 5, R = 4, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int STORAGE = kStorageLutram, NPORTS = 4;
};
typedef tlmm_traits<CfgG2x4_fields> CfgG2x4;
struct CfgG4x3_fields : tlmm_config_base {
  static const int G = 4, T = 5, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageBram, NPORTS = 3;
};
typedef tlmm_traits<CfgG4x3_fields> CfgG4x3;
// Token lanes (TP) and outputs per cycle (OL) with several ports: the default design's engine with
// TP 4 / OL 4, a BRAM engine with TP 2 / OL 1, G=2 on LUTRAM with TP 4 / OL 16, and one port TP 2 / OL 16.
struct CfgC4L_fields : tlmm_config_base {
  static const int G = 3, T = 25, R = 16, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 16;
  static const int NPORTS = 4, TP = 4, OL = 4;
};
typedef tlmm_traits<CfgC4L_fields> CfgC4L;
struct CfgB3L_fields : tlmm_config_base {
  static const int G = 3, T = 10, R = 8, K_MAX = 8192, N_MAX = 8192, MAX_TOK = 8;
  static const int STORAGE = kStorageBram, NPORTS = 3, TP = 2;
};
typedef tlmm_traits<CfgB3L_fields> CfgB3L;
struct CfgG2x2L_fields : tlmm_config_base {
  static const int G = 2, T = 5, R = 4, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 12;
  static const int STORAGE = kStorageLutram, NPORTS = 2, TP = 4, OL = 16;
};
typedef tlmm_traits<CfgG2x2L_fields> CfgG2x2L;
struct CfgA1L_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int TP = 2, OL = 16;
};
typedef tlmm_traits<CfgA1L_fields> CfgA1L;

// Unequal port shares (tlmm_config.h SHARE0 .. SHARE3): the kv260 split (9:7:7:9, HP1 / HP2 on one
// DDR path) on the default design's engine (steps straddle the runs), with token lanes, odd shares on
// the decode engine, and three ports on the BRAM prefill engine.
struct CfgC4S_fields : CfgC4_fields {
  static const int SHARE0 = 9, SHARE1 = 7, SHARE2 = 7, SHARE3 = 9;
};
typedef tlmm_traits<CfgC4S_fields> CfgC4S;
struct CfgC4LS_fields : CfgC4L_fields {
  static const int SHARE0 = 9, SHARE1 = 7, SHARE2 = 7, SHARE3 = 9;
};
typedef tlmm_traits<CfgC4LS_fields> CfgC4LS;
struct CfgA4S_fields : CfgA4_fields {
  static const int SHARE0 = 3, SHARE1 = 1, SHARE2 = 2, SHARE3 = 5;
};
typedef tlmm_traits<CfgA4S_fields> CfgA4S;
struct CfgB3S_fields : CfgB3_fields {
  static const int SHARE0 = 2, SHARE1 = 1, SHARE2 = 3;
};
typedef tlmm_traits<CfgB3S_fields> CfgB3S;

static ap_uint<128> g_beats[4][1 << 14];  // 256 KiB per port for the wide-port path

// The same engine fed by weight FIFOs: port p's fetcher (weight_fetch.h tlmm_fetch_port) reads image
// w{p} and fills FIFO p, then tlmm_matmul pops them (C simulation runs the producer first). Returns the
// FIFO words left over (0 when fetcher and loaders agree on every port's share).
template <class CFG>
long tlmm_via_fifos(const int8_t *x, int n_tok, const uint8_t *w0, const uint8_t *w1, const uint8_t *w2,
                    const uint8_t *w3, int n_out, int k, int32_t *acc) {
  hls::stream<typename CFG::fword_t> s0, s1, s2, s3;
  tlmm_fetch_port<CFG, 0>(w0, n_out, k, n_tok, s0);
  if (CFG::NPORTS > 1) tlmm_fetch_port<CFG, 1>(w1, n_out, k, n_tok, s1);
  if (CFG::NPORTS > 2) tlmm_fetch_port<CFG, 2>(w2, n_out, k, n_tok, s2);
  if (CFG::NPORTS > 3) tlmm_fetch_port<CFG, 3>(w3, n_out, k, n_tok, s3);
  tlmm_matmul_int<CFG>(x, n_tok, &s0, &s1, &s2, &s3, n_out, k, acc);
  return (long)(s0.size() + s1.size() + s2.size() + s3.size());
}

#define EDGELLM_PORTS_TB(NAME, CFG)                                                                      \
  long tb_tlmm_##NAME##_fifo(const int8_t *x, int n_tok, const uint8_t *w0, const uint8_t *w1,             \
                             const uint8_t *w2, const uint8_t *w3, int n_out, int k, int32_t *acc) {     \
    return tlmm_via_fifos<CFG>(x, n_tok, w0, w1, w2, w3, n_out, k, acc);                                 \
  }                                                                                                      \
  void tb_tlmm_##NAME##_int(const int8_t *x, int n_tok, const uint8_t *w0, const uint8_t *w1,              \
                            const uint8_t *w2, const uint8_t *w3, int n_out, int k, int32_t *acc) {      \
    tlmm_matmul_int<CFG>(x, n_tok, w0, w1, w2, w3, n_out, k, acc);                                     \
  }                                                                                                      \
  void tb_tlmm_##NAME(const int8_t *x, const float *qs, int n_tok, const uint8_t *w0, const uint8_t *w1, \
                      const uint8_t *w2, const uint8_t *w3, int n_out, int k, float wscale, float *y) {  \
    tlmm_matmul<CFG>(x, qs, n_tok, w0, w1, w2, w3, n_out, k, wscale, y);                               \
  }

extern "C" {

EDGELLM_PORTS_TB(a1, CfgA1)
EDGELLM_PORTS_TB(a2, CfgA2)
EDGELLM_PORTS_TB(a3, CfgA3)
EDGELLM_PORTS_TB(a4, CfgA4)
EDGELLM_PORTS_TB(b2, CfgB2)
EDGELLM_PORTS_TB(b3, CfgB3)
EDGELLM_PORTS_TB(c4, CfgC4)
EDGELLM_PORTS_TB(g2x4, CfgG2x4)
EDGELLM_PORTS_TB(g4x3, CfgG4x3)
EDGELLM_PORTS_TB(c4l, CfgC4L)
EDGELLM_PORTS_TB(b3l, CfgB3L)
EDGELLM_PORTS_TB(g2x2l, CfgG2x2L)
EDGELLM_PORTS_TB(a1l, CfgA1L)
EDGELLM_PORTS_TB(c4s, CfgC4S)
EDGELLM_PORTS_TB(c4ls, CfgC4LS)
EDGELLM_PORTS_TB(a4s, CfgA4S)
EDGELLM_PORTS_TB(b3s, CfgB3S)

// Iterations of one tile's compute loop of CfgC4L (the performance model mirrors this formula).
int tb_tlmm_c4l_tile_iters(int nt, int nsteps) { return tlmm_tile_iters<CfgC4L>(nt, nsteps); }

// CfgA4 through four wide ap_uint<128> ports (the synthesized form), port p reading from image
// copy w[p] (n_bytes each). Returns -1 if an image does not fit the testbench's beat arrays.
int tb_tlmm_a4_wide(const int8_t *x, const float *qs, int n_tok, const uint8_t *w0, const uint8_t *w1,
                    const uint8_t *w2, const uint8_t *w3, long n_bytes, int n_out, int k, float wscale,
                    float *y) {
  if (n_bytes % 16 != 0 || n_bytes / 16 > (long)(sizeof(g_beats[0]) / sizeof(g_beats[0][0]))) return -1;
  const uint8_t *w[4] = {w0, w1, w2, w3};
  for (int p = 0; p < 4; p++)
    for (long i = 0; i < n_bytes / 16; i++) g_beats[p][i] = read_beat<16>(w[p], i);
  tlmm_matmul<CfgA4>(x, qs, n_tok, g_beats[0], g_beats[1], g_beats[2], g_beats[3], n_out, k, wscale, y);
  return 0;
}

// Config numbers the test checks: R, beats per step, ports, columns per port, bank rows.
void tb_tlmm_ports_cfg(int32_t *out) {
  out[0] = CfgA4::R;
  out[1] = CfgA4::BEATS_PER_STEP;
  out[2] = CfgA4::NPORTS;
  out[3] = CfgA4::CPP_MAX;
  out[4] = CfgA4::BANK_ROWS;
  out[5] = CfgC4::BEATS_PER_STEP;
  out[6] = CfgC4::CPP_MAX;
  out[7] = CfgC4::BANK_ROWS;
  out[8] = CfgA1::BANK_ROWS;
  out[9] = CfgC4S::SHARE_SUM;
  out[10] = CfgC4S::CPP_MAX;
  out[11] = CfgC4S::BANK_ROWS;
  out[12] = CfgA4S::CPP_MAX;
}

}  // extern "C"
