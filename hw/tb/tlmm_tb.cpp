// ctypes entry points for the TLMM engine and the weight codec (tests/test_hw_tlmm.py).
// These functions stand in for the synthesized top: in the generated project the INTERFACE pragmas
// below sit on the top function, whose weight port is a wide ap_uint<8*R> m_axi pointer.
#include <ap_int.h>

#include <cstdint>

#include "edgellm/tlmm.h"
#include "edgellm/weight_codec.h"

using namespace edgellm;

// Decode config: G=3, T=5 (1 chunk/step), R=16 rows (128-bit beats), K up to 16384, URAM buffers.
struct CfgA_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 16;
};
typedef tlmm_traits<CfgA_fields> CfgA;
// Prefill-style config: T=10, R=8, K up to 8192, 128 tokens on chip, BRAM buffers.
struct CfgB_fields : tlmm_config_base {
  static const int G = 3, T = 10, R = 8, K_MAX = 8192, N_MAX = 8192, MAX_TOK = 128;
  static const int STORAGE = kStorageBram;
};
typedef tlmm_traits<CfgB_fields> CfgB;
// Other group sizes: G=2 (9-entry tables) and G=4 (81-entry tables), LUTRAM buffers.
struct CfgG2_fields : tlmm_config_base {
  static const int G = 2, T = 5, R = 4, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int STORAGE = kStorageLutram;
};
typedef tlmm_traits<CfgG2_fields> CfgG2;
struct CfgG4_fields : tlmm_config_base {
  static const int G = 4, T = 5, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageBram;
};
typedef tlmm_traits<CfgG4_fields> CfgG4;
// Token lanes (TP) and outputs per cycle (OL), small token blocks so 17 tokens span several blocks.
struct CfgL1_fields : tlmm_config_base {  // TP 2, OL 4: W = 8
  static const int G = 3, T = 5, R = 16, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int TP = 2, OL = 4;
};
typedef tlmm_traits<CfgL1_fields> CfgL1;
struct CfgL2_fields : tlmm_config_base {  // TP 4, OL 16: W = 2
  static const int G = 3, T = 10, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 12;
  static const int STORAGE = kStorageBram, TP = 4, OL = 16;
};
typedef tlmm_traits<CfgL2_fields> CfgL2;
struct CfgL3_fields : tlmm_config_base {  // TP 4, OL 1: W = 16
  static const int G = 2, T = 5, R = 4, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageLutram, TP = 4;
};
typedef tlmm_traits<CfgL3_fields> CfgL3;
struct CfgL4_fields : tlmm_config_base {  // TP 2, OL 16: W = 1
  static const int G = 4, T = 5, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int STORAGE = kStorageBram, TP = 2, OL = 16;
};
typedef tlmm_traits<CfgL4_fields> CfgL4;
struct CfgL5_fields : tlmm_config_base {  // TP 1, OL 16: W = 1
  static const int G = 3, T = 5, R = 16, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 16;
  static const int OL = 16;
};
typedef tlmm_traits<CfgL5_fields> CfgL5;
// DSP token lanes (DL): the last DL of the TP lanes compute with packed DSP chains (tlmm.h header).
struct CfgD1_fields : tlmm_config_base {  // TP 2 DL 1, S 12
  static const int G = 3, T = 5, R = 16, K_MAX = 16384, N_MAX = 16384, MAX_TOK = 8;
  static const int TP = 2, OL = 4, DL = 1;
};
typedef tlmm_traits<CfgD1_fields> CfgD1;
struct CfgD2_fields : tlmm_config_base {  // TP 3 DL 2: W = 3
  static const int G = 3, T = 10, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 12;
  static const int STORAGE = kStorageBram, TP = 3, OL = 8, DL = 2;
};
typedef tlmm_traits<CfgD2_fields> CfgD2;
struct CfgD3_fields : tlmm_config_base {  // G2, TP 2 DL 1
  static const int G = 2, T = 5, R = 4, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageLutram, TP = 2, DL = 1;
};
typedef tlmm_traits<CfgD3_fields> CfgD3;
struct CfgD4_fields : tlmm_config_base {  // G4, TP 2 DL 1
  static const int G = 4, T = 5, R = 8, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 4;
  static const int STORAGE = kStorageBram, TP = 2, OL = 16, DL = 1;
};
typedef tlmm_traits<CfgD4_fields> CfgD4;
struct CfgD5_fields : tlmm_config_base {  // R 5 (odd): 3 pairs
  static const int G = 3, T = 5, R = 5, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageBram, TP = 2, OL = 2, DL = 1;
};
typedef tlmm_traits<CfgD5_fields> CfgD5;
struct CfgD6_fields : tlmm_config_base {  // R 3, T 15, DL 3, S 14
  static const int G = 3, T = 15, R = 3, K_MAX = 4096, N_MAX = 4096, MAX_TOK = 8;
  static const int STORAGE = kStorageLutram, TP = 4, OL = 4, DL = 3;
};
typedef tlmm_traits<CfgD6_fields> CfgD6;
struct CfgD7_fields : tlmm_config_base {  // G4 T25: S 15, 100 taps
  static const int G = 4, T = 25, R = 16, K_MAX = 8192, N_MAX = 8192, MAX_TOK = 4;
  static const int TP = 2, OL = 8, DL = 1;
};
typedef tlmm_traits<CfgD7_fields> CfgD7;

static ap_uint<128> g_beats[1 << 16];  // 1 MiB image for the wide-port path

extern "C" {

// Byte -> 5 trit values (decode_byte), for all bytes in one call.
void tb_decode_bytes(const uint8_t *b, int n, int8_t *trits) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < kTritsPerByte; j++) trits[i * kTritsPerByte + j] = (int8_t)trit_of(b[i], j);
}

// G=3 group indices of chunks (3 bytes each) -> 5 indices per chunk.
void tb_chunk_indices3(const uint8_t *b, int n_chunks, int32_t *idx) {
  for (int c = 0; c < n_chunks; c++) {
    ap_uint<8> bytes[3];
    for (int j = 0; j < 3; j++) bytes[j] = b[3 * c + j];
    GroupIndex<3>::type out[kTritsPerByte];
    chunk_indices<3>(bytes, out);
    for (int q = 0; q < kTritsPerByte; q++) idx[c * kTritsPerByte + q] = (int32_t)out[q];
  }
}

// Same engine reading the image through a wide ap_uint<128> port (the synthesized form).
// Returns -1 if the image does not fit the testbench's beat array.
int tb_tlmm_a_wide(const int8_t *x, const float *qs, int n_tok, const uint8_t *w, long n_bytes, int n_out,
                   int k, float wscale, float *y) {
  if (n_bytes % 16 != 0 || n_bytes / 16 > (long)(sizeof(g_beats) / sizeof(g_beats[0])))
    return -1;
  for (long i = 0; i < n_bytes / 16; i++) g_beats[i] = read_beat<16>(w, i);
  tlmm_matmul<CfgA>(x, qs, n_tok, g_beats, n_out, k, wscale, y);
  return 0;
}

void tb_tlmm_b(const int8_t *x, const float *qs, int n_tok, const uint8_t *w, int n_out, int k, float wscale,
               float *y) {
  tlmm_matmul<CfgB>(x, qs, n_tok, w, n_out, k, wscale, y);
}

void tb_tlmm_b_int(const int8_t *x, int n_tok, const uint8_t *w, int n_out, int k, int32_t *acc) {
  tlmm_matmul_int<CfgB>(x, n_tok, w, n_out, k, acc);
}

void tb_tlmm_g2_int(const int8_t *x, int n_tok, const uint8_t *w, int n_out, int k, int32_t *acc) {
  tlmm_matmul_int<CfgG2>(x, n_tok, w, n_out, k, acc);
}

void tb_tlmm_g4_int(const int8_t *x, int n_tok, const uint8_t *w, int n_out, int k, int32_t *acc) {
  tlmm_matmul_int<CfgG4>(x, n_tok, w, n_out, k, acc);
}

#define EDGELLM_LANES_TB(NAME, CFG)                                                                      \
  void tb_tlmm_##NAME##_int(const int8_t *x, int n_tok, const uint8_t *w, int n_out, int k, int32_t *acc) { \
    tlmm_matmul_int<CFG>(x, n_tok, w, n_out, k, acc);                                                    \
  }                                                                                                      \
  void tb_tlmm_##NAME(const int8_t *x, const float *qs, int n_tok, const uint8_t *w, int n_out, int k,     \
                      float wscale, float *y) {                                                          \
    tlmm_matmul<CFG>(x, qs, n_tok, w, n_out, k, wscale, y);                                              \
  }                                                                                                      \
  int tb_tlmm_##NAME##_tile_iters(int nt, int nsteps) { return tlmm_tile_iters<CFG>(nt, nsteps); }       \
  int tb_tlmm_##NAME##_act_iters(int nt, int nsteps) { return tlmm_act_iters<CFG>(nt, nsteps); }         \
  void tb_tlmm_##NAME##_cfg(int32_t *out) {                                                              \
    out[0] = CFG::R;                                                                                     \
    out[1] = CFG::TP;                                                                                    \
    out[2] = CFG::OL;                                                                                    \
    out[3] = CFG::WRITE_ITERS;                                                                           \
    out[4] = CFG::XROWS;                                                                                 \
    out[5] = CFG::TILE_ITERS_MAX;                                                                        \
    out[6] = CFG::CPC;                                                                                   \
    out[7] = CFG::MAX_TOK;                                                                               \
    out[8] = CFG::DL;                                                                                    \
    out[9] = CFG::TABLE_LANES;                                                                           \
    out[10] = CFG::PAIRS;                                                                                \
    out[11] = CFG::DSP_SHIFT;                                                                            \
  }

EDGELLM_LANES_TB(a, CfgA)
EDGELLM_LANES_TB(l1, CfgL1)
EDGELLM_LANES_TB(l2, CfgL2)
EDGELLM_LANES_TB(l3, CfgL3)
EDGELLM_LANES_TB(l4, CfgL4)
EDGELLM_LANES_TB(l5, CfgL5)
EDGELLM_LANES_TB(d1, CfgD1)
EDGELLM_LANES_TB(d2, CfgD2)
EDGELLM_LANES_TB(d3, CfgD3)
EDGELLM_LANES_TB(d4, CfgD4)
EDGELLM_LANES_TB(d5, CfgD5)
EDGELLM_LANES_TB(d6, CfgD6)
EDGELLM_LANES_TB(d7, CfgD7)

// Accumulator widths chosen by the configs, for the test to print and check.
void tb_tlmm_widths(int32_t *out) {
  out[0] = CfgA::TAB_BITS;
  out[1] = CfgA::PSUM_BITS;
  out[2] = CfgA::ACC_BITS;
  out[3] = CfgB::ACC_BITS;
}

}  // extern "C"
