// ctypes entry points for the low-bit matmul engine (hw/include/edgellm/lowbit_mm.h;
// tests/test_hw_lowbit.py). The stream arrives as bytes and is split into one buffer of 128-bit beats
// per weight port (the element type of the synthesized weight ports).
#include <ap_int.h>

#include <cstdint>
#include <vector>

#include "edgellm/lowbit_mm.h"
#include "edgellm/lowbit_policy.h"

using namespace edgellm;

// One named configuration per entry point (lowbit_policy.h: lowbit_config_base's defaults for the fields
// not named: max_group 256, token_lanes 1, beat_bits 128, decoders 1, scale_lanes 16, float_units 32,
// max_sb 16, min_group 16).
struct r32_fields : lowbit_config_base {  // decode and short blocks: R 32, one token lane
  static const int rows = 32, max_k = 8192, max_t = 8;
};
struct r64_fields : lowbit_config_base {  // R 64
  static const int rows = 64, max_k = 4096, max_t = 4;
};
struct tp3_fields : lowbit_config_base {  // three token lanes (8 tokens: 3 blocks, 2 lanes idle)
  static const int rows = 32, max_k = 4096, max_t = 8, max_group = 64, token_lanes = 3;
};
struct w4_fields : lowbit_config_base {  // four ports' beats at once, 2 record decoders
  static const int rows = 128, max_k = 4096, max_t = 8, token_lanes = 2, beat_bits = 512, decoders = 2;
};
struct w2_fields : lowbit_config_base {  // two ports' beats, 2 record decoders
  static const int rows = 64, max_k = 4096, max_t = 4, beat_bits = 256, decoders = 2;
};
struct sl1_fields : lowbit_config_base {  // one sub-scale per decoder iteration
  static const int rows = 32, max_k = 4096, max_t = 8, max_group = 32, scale_lanes = 1;
};
struct sl4_fields : lowbit_config_base {  // two decoders of 4 sub-scales
  static const int rows = 64, max_k = 4096, max_t = 4, beat_bits = 256, decoders = 2, scale_lanes = 4;
};
struct fu1_fields : lowbit_config_base {  // one float step per iteration (8 lanes at 128 bits), MAXSB 8
  static const int rows = 32, max_k = 4096, max_t = 8, float_units = 1, max_sb = 8;
};
struct sb4_fields : lowbit_config_base {  // records of at most 4 groups, two decoders of 2 sub-scales
  static const int rows = 64, max_k = 4096, max_t = 4, beat_bits = 256, decoders = 2, scale_lanes = 2, max_sb = 4;
};
struct mg32_fields : lowbit_config_base {  // groups 32 .. 256 only (MING 32: a model without G16 tensors)
  static const int rows = 32, max_k = 4096, max_t = 8, min_group = 32;
};
struct g32_fields : lowbit_config_base {  // one group size (Q4_0-like: MING = MAXG = 32) at 512 bits, FU 4
  static const int rows = 128, max_k = 4096, max_t = 8, max_group = 32, min_group = 32, beat_bits = 512,
                   decoders = 2, scale_lanes = 4, float_units = 4, max_sb = 8;
  static const int n_codecs = 2;  // Q4_0 (8 groups a record) and Q4_K, as packing_lowbit packs them
  static constexpr int codec(int i, int f) {
    const int t[2][10] = {{8, 16, 0, 0, 1, 0, 0, 0, 8, 1}, {8, 16, 6, 0, 0, 16, 6, 0, 0, 0}};
    return t[i][f];
  }
};
struct g16_32_fields : lowbit_config_base {  // groups 16 and 32 (a Q4_K_M mix) at 512 bits, FU 8, 2 tokens
  static const int rows = 128, max_k = 4096, max_t = 8, max_group = 32, token_lanes = 2, beat_bits = 512,
                   decoders = 2, scale_lanes = 4, float_units = 8;
  static const int n_codecs = 3;  // Q4_0, Q4_K and Q6_K (144-bit records: shifts in steps of 16 bits)
  static constexpr int codec(int i, int f) {
    const int t[3][10] = {{8, 16, 0, 0, 1, 0, 0, 0, 8, 1}, {8, 16, 6, 0, 0, 16, 6, 0, 0, 0},
                          {16, 16, 8, 128, 1, 0, 0, 0, 32, 0}};
    return t[i][f];
  }
};
struct fu4_fields : lowbit_config_base {  // 4 of 32 float steps at 512 bits, two token lanes
  static const int rows = 128, max_k = 4096, max_t = 8, token_lanes = 2, beat_bits = 512, decoders = 2,
                   float_units = 4;
};
struct fu8_fields : lowbit_config_base {  // 8 of 16 at 256 bits, three token lanes
  static const int rows = 64, max_k = 4096, max_t = 8, token_lanes = 3, beat_bits = 256, decoders = 2,
                   float_units = 8;
};
typedef lowbit_traits<r32_fields> LbR32;
typedef lowbit_traits<r64_fields> LbR64;
typedef lowbit_traits<tp3_fields> LbTp3;
typedef lowbit_traits<w4_fields> LbW4;
typedef lowbit_traits<w2_fields> LbW2;
typedef lowbit_traits<sl1_fields> LbSl1;
typedef lowbit_traits<sl4_fields> LbSl4;
typedef lowbit_traits<fu1_fields> LbFu1;
typedef lowbit_traits<fu4_fields> LbFu4;
typedef lowbit_traits<fu8_fields> LbFu8;
typedef lowbit_traits<sb4_fields> LbSb4;
typedef lowbit_traits<mg32_fields> LbMg32;
typedef lowbit_traits<g32_fields> LbG32;
typedef lowbit_traits<g16_32_fields> LbG1632;

static LowbitTensor tensor_of(const int32_t *f) {
  LowbitTensor d;
  d.bits = f[0];
  d.group = f[1];
  d.n_out = f[2];
  d.k = f[3];
  d.sb = f[4];
  d.db = f[5];
  d.scb = f[6];
  d.sc_off = f[7];
  d.mmode = f[8];
  d.dmb = f[9];
  d.mcb = f[10];
  d.mc_off = f[11];
  d.mz = f[12];
  d.dper = f[13];
  return d;
}

template <class C>
static int run(const int32_t *fields, const uint8_t *w, long n_bytes, long first_beat, const int8_t *x,
               const float *qs, int n_tok, float *y) {
  const LowbitTensor d = tensor_of(fields);
  const long bb = C::BW / 8;  // bytes per engine beat
  if (n_bytes % bb || n_tok > C::MAXT || d.k > C::MAXK || d.group < C::MING || d.group > C::MAXG ||
      d.sb > C::MAXSB)
    return -1;
  if (lb_float_steps(d, C::BW) > C::FU) return -3;  // its row sets' steps outpace the float units
  if (lb_codec_index<typename C::K>(d) < 0) return -4;  // its codec is not one the configuration lists
  if (first_beat + lb_stream_beats(d, C::R, C::BW) > n_bytes / bb) return -2;
  // one buffer per weight port: port u gets 128-bit column u of every engine beat
  // (packing_lowbit.port_images); the others are poisoned and never read
  const long n = n_bytes / bb;
  std::vector<lb_beat_t> port[4];
  for (int u = 0; u < 4; u++) {
    port[u].assign(n, lb_beat_t(0));
    for (long i = 0; i < n; i++) {
      lb_beat_t b = 0;
      for (int j = 0; j < 16; j++) b.range(8 * j + 7, 8 * j) = u < C::PORTS ? w[bb * i + 16 * u + j] : 0xA5;
      port[u][i] = b;
    }
  }
  lowbit_mm<C>(d, port[0].data(), port[1].data(), port[2].data(), port[3].data(), first_beat, x, qs, n_tok, y);
  return 0;
}

// One ctypes entry point per named configuration (CFG: its lowbit_traits; run takes CFG::engine):
// tb_lowbit_<SUF>(fields, w, n_bytes, first_beat, x, qs, n_tok, y).
#define EDGELLM_LOWBIT_TB(SUF, CFG)                                                                   \
  int tb_lowbit_##SUF(const int32_t *fields, const uint8_t *w, long n_bytes, long first_beat,        \
                      const int8_t *x, const float *qs, int n_tok, float *y) {                       \
    return run<CFG::engine>(fields, w, n_bytes, first_beat, x, qs, n_tok, y);                        \
  }

extern "C" {

// fields: bits, group, n_out, k, then the ParamCodec (sb, db, scb, sc_off, mmode, dmb, mcb, mc_off, mz,
// dper).
// The tensor's stream starts at beat first_beat of w. Returns 0, or < 0 when the call does not fit (-3: the
// tensor needs more float steps per iteration than FU, lb_float_steps; -4: its parameter codec is not one
// the configuration lists).
EDGELLM_LOWBIT_TB(r32, LbR32)
EDGELLM_LOWBIT_TB(r64, LbR64)
EDGELLM_LOWBIT_TB(tp3, LbTp3)
EDGELLM_LOWBIT_TB(w4, LbW4)
EDGELLM_LOWBIT_TB(w2, LbW2)
EDGELLM_LOWBIT_TB(sl1, LbSl1)
EDGELLM_LOWBIT_TB(sl4, LbSl4)
EDGELLM_LOWBIT_TB(fu1, LbFu1)
EDGELLM_LOWBIT_TB(fu4, LbFu4)
EDGELLM_LOWBIT_TB(fu8, LbFu8)
EDGELLM_LOWBIT_TB(sb4, LbSb4)
EDGELLM_LOWBIT_TB(mg32, LbMg32)
EDGELLM_LOWBIT_TB(g32, LbG32)
EDGELLM_LOWBIT_TB(g16_32, LbG1632)

// Iterations of each pipelined loop kind since the last reset (LbLoop order), C simulation's count.
void tb_lowbit_iters(long *out) {
  for (int i = 0; i < kLbLoops; i++) out[i] = lb_iters()[i];
}
void tb_lowbit_iters_reset() {
  for (int i = 0; i < kLbLoops; i++) lb_iters()[i] = 0;
}

long tb_lowbit_stream_beats(const int32_t *fields, int rows, int bw) {
  return lb_stream_beats(tensor_of(fields), rows, bw);
}
}
