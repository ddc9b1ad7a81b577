// ctypes entry points for the TLMM engine and the weight codec (tests/test_hw_tlmm.py).
// These functions stand in for the synthesized top: in the generated project the INTERFACE pragmas
// below sit on the top function, whose weight port is a wide ap_uint<8*R> m_axi pointer.
#include <ap_int.h>

#include <cstdint>

#include "edgellm/tlmm.h"
#include "edgellm/weight_codec.h"

using namespace edgellm;

// Decode config: G=3, T=5 (1 chunk/step), R=16 rows (128-bit beats), K up to 16384, URAM buffers.
typedef TlmmConfig<3, 5, 16, 16384, 16384, 16, kStorageUram> CfgA;
// Prefill-style config: T=10, R=8, K up to 8192, 128 tokens on chip, BRAM buffers.
typedef TlmmConfig<3, 10, 8, 8192, 8192, 128, kStorageBram> CfgB;
// Other group sizes: G=2 (9-entry tables) and G=4 (81-entry tables), LUTRAM buffers.
typedef TlmmConfig<2, 5, 4, 4096, 4096, 4, kStorageLutram> CfgG2;
typedef TlmmConfig<4, 5, 8, 4096, 4096, 8, kStorageBram> CfgG4;
// Token lanes (TP) and outputs per cycle (OL), small token blocks so 17 tokens span several blocks.
typedef TlmmConfig<3, 5, 16, 4096, 4096, 8, kStorageUram, 1, 2, 4> CfgL1;     // TP 2, OL 4: W = 8
typedef TlmmConfig<3, 10, 8, 4096, 4096, 12, kStorageBram, 1, 4, 16> CfgL2;   // TP 4, OL 16: W = 2
typedef TlmmConfig<2, 5, 4, 4096, 4096, 8, kStorageLutram, 1, 4, 1> CfgL3;    // TP 4, OL 1: W = 16
typedef TlmmConfig<4, 5, 8, 4096, 4096, 4, kStorageBram, 1, 2, 16> CfgL4;     // TP 2, OL 16: W = 1
typedef TlmmConfig<3, 5, 16, 4096, 4096, 16, kStorageUram, 1, 1, 16> CfgL5;   // TP 1, OL 16: W = 1
// DSP token lanes (DL): the last DL of the TP lanes compute with packed DSP chains (tlmm.h header).
typedef TlmmConfig<3, 5, 16, 16384, 16384, 8, kStorageUram, 1, 2, 4, 1> CfgD1;   // TP 2 DL 1, S 12
typedef TlmmConfig<3, 10, 8, 4096, 4096, 12, kStorageBram, 1, 3, 8, 2> CfgD2;    // TP 3 DL 2: W = 3
typedef TlmmConfig<2, 5, 4, 4096, 4096, 8, kStorageLutram, 1, 2, 1, 1> CfgD3;    // G2, TP 2 DL 1
typedef TlmmConfig<4, 5, 8, 4096, 4096, 4, kStorageBram, 1, 2, 16, 1> CfgD4;     // G4, TP 2 DL 1
typedef TlmmConfig<3, 5, 5, 4096, 4096, 8, kStorageBram, 1, 2, 2, 1> CfgD5;      // R 5 (odd): 3 pairs
typedef TlmmConfig<3, 15, 3, 4096, 4096, 8, kStorageLutram, 1, 4, 4, 3> CfgD6;   // R 3, T 15, DL 3, S 14
typedef TlmmConfig<4, 25, 16, 8192, 8192, 4, kStorageUram, 1, 2, 8, 1> CfgD7;    // G4 T25: S 15, 100 taps

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
