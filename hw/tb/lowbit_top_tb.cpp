// ctypes entry points for a low-bit top (top.h with lowbit_policy.h's matmul policy;
// tests/test_hw_lowbit_top.py): a hand-written named configuration as the generated edgellm_config.h
// writes one (layer_cfg, lowbit_cfg -> mm, head_cfg, top_cfg): two layers of the Llama-like shape of
// lowbit_layer_tb.cpp, the prefill pipeline, the low-bit engine on two weight ports (BW 256, R 64, two
// token lanes, two record decoders, 8 tokens an engine pass), the int8 LM head on the same two ports
// (P = 16), a vocabulary of 64. Every call runs under the port model (hw/tb/port_model.h: data and act
// on private copies, a byte written through both is a conflict), as the generated csim_entry.cpp does.
#include <cstdint>
#include <cstring>

#include "edgellm/named_config.h"
#include "port_model.h"

namespace lbtop {

struct layer_cfg : edgellm::layer_config_base {
  static const int hidden = 256, n_heads = 4, n_kv = 2, head_dim = 64, ffn = 512;
  static const int act = edgellm::ACT_SILU;
  static const bool subln = false;
  static const int norm_lanes = 16, dot_lanes = 64, kv_block = 16, max_t = 16, max_ctx = 64;
  static const bool pipe = true;
};
typedef edgellm::layer_traits<layer_cfg> layer;
struct lowbit_cfg : edgellm::lowbit_config_base {
  static const int rows = 64, max_k = 512, max_t = 8;
  static const int token_lanes = 2, beat_bits = 256, decoders = 2;
  static const int float_units = 4;  // 4 of 16: the mix's Q6_K-like G16 6-bit rows need ceil(16 / 6) = 3
};
typedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;
struct head_cfg : edgellm::lm_head_config_base {
  static const int P = 16, HID_MAX = 256, V_MAX = 64, MAX_TOK = 8, K_TOP = 8, NPORTS = 2;
};
typedef edgellm::lm_head_traits<head_cfg> head;
struct top_cfg : edgellm::top_config_base {
  typedef lbtop::layer layer;
  typedef lbtop::mm mm;
  typedef lbtop::head head;
  static const int n_layers = 2, vocab = 64, fetch_depth = 64;
};
typedef edgellm::top_traits<top_cfg> top;

}  // namespace lbtop

namespace lbtop_mg32 {  // the same top on an engine whose narrowest group is 32 (MING): its program check

struct lowbit_cfg : lbtop::lowbit_cfg {
  static const int min_group = 32;
};
typedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;
struct top_cfg : lbtop::top_cfg {
  typedef lbtop_mg32::mm mm;
};
typedef edgellm::top_traits<top_cfg> top;

}  // namespace lbtop_mg32

namespace lbtop_codecs {  // the same top on an engine built for two codecs (the mix's Q4_K- and Q6_K-like
                          // ones as packing_lowbit packs them; not its 5-bit down's): its program check

struct lowbit_cfg : lbtop::lowbit_cfg {
  static const int n_codecs = 2;
  static constexpr int codec(int i, int f) {
    const int t[2][10] = {{8, 16, 6, 0, 0, 16, 6, 0, 0, 0}, {16, 16, 8, 128, 1, 0, 0, 0, 32, 0}};
    return t[i][f];
  }
};
typedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;
struct top_cfg : lbtop::top_cfg {
  typedef lbtop_codecs::mm mm;
};
typedef edgellm::top_traits<top_cfg> top;

}  // namespace lbtop_codecs

namespace lbtop_gear {  // the same model on a 4-port engine (BW 512, R 128) with the weight gearbox
                        // (lowbit_gear.h): cycles of 5 beats, lane 1's last 2 on port 0, lane 2's last 1
                        // on port 3 (not a board's shares: partial cycles at most linears' ends), the
                        // head on 4 ports; FIFOs of 64 words (side FIFOs 64 x 2 / 5 + 2)

struct lowbit_cfg : edgellm::lowbit_config_base {
  static const int rows = 128, max_k = 512, max_t = 8;
  static const int token_lanes = 2, beat_bits = 512, decoders = 2;
  static const int float_units = 8;  // the Q6_K-like G16 6-bit rows at 512-bit beats: ceil(32 / 6) = 6 steps
  static const int gear_cycle = 5, gear_k1 = 2, gear_k2 = 1;
};
typedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;
struct head_cfg : lbtop::head_cfg {
  static const int NPORTS = 4;
};
typedef edgellm::lm_head_traits<head_cfg> head;
struct top_cfg : lbtop::top_cfg {
  typedef lbtop_gear::mm mm;
  typedef lbtop_gear::head head;
};
typedef edgellm::top_traits<top_cfg> top;

}  // namespace lbtop_gear

// Top T's program check (program_check.h check_program, what its top runs first) on the buffer (the host's
// part: HDR_BUF_BYTES = bytes): out = status, field, value. Runs nothing else.
template <class T>
void check_only(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                uint32_t *out) {
  const uint32_t n = (uint32_t)bytes;
  std::memcpy(ddr + hdr_off + 4 * edgellm::HDR_BUF_BYTES, &n, 4);
  const typename T::dbeat_t *data = reinterpret_cast<const typename T::dbeat_t *>(ddr);
  uint32_t hdr[edgellm::HDR_WORDS];
  edgellm::read_header(data, hdr_off, hdr);
  const edgellm::CheckResult r = edgellm::check_program<T>(data, hdr_off, prog_off, n_desc, hdr);
  out[0] = r.code, out[1] = r.field, out[2] = r.value;
}

typedef lbtop::top TC;


// out: float scratch floats, int8 scratch bytes, tap floats, head rows, (rows, beat bits) of the engine,
// weight ports with a fetcher, the gearbox's (cycle, k1, k2) (0, 0, 0: none).
template <class T>
void sizes(long *out) {
  out[0] = edgellm::layer_scratch<typename T::layer>::floats;
  out[1] = edgellm::layer_scratch<typename T::layer>::bytes8;
  out[2] = edgellm::layer_taps<typename T::layer>::floats;
  out[3] = T::head::MAX_TOK;
  out[4] = T::mm::C::R, out[5] = T::mm::C::BW, out[6] = T::fetch_ports;
  out[7] = T::mm::gear::C, out[8] = T::mm::gear::K1, out[9] = T::mm::gear::K2;
}

// One start of top T on the buffer (the host's part: HDR_BUF_BYTES = bytes). Returns the bytes written
// through both data and act in this call (0 when right).
template <class T>
long long run(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
  const uint32_t n = (uint32_t)bytes;
  std::memcpy(ddr + hdr_off + 4 * edgellm::HDR_BUF_BYTES, &n, 4);
  static const char *const names[2] = {"data", "act"};
  return edgellm_csim::run_on_ports<2>(ddr, bytes, names, [&](const uint8_t *ro, uint8_t *const *rw) {
    const typename T::wbeat_t *w = reinterpret_cast<const typename T::wbeat_t *>(ro);
    typename T::dbeat_t *data = reinterpret_cast<typename T::dbeat_t *>(rw[0]);
    typename T::dbeat_t *act = reinterpret_cast<typename T::dbeat_t *>(rw[1]);
    edgellm::edgellm_top_impl<T>(w, w, w, w, w, w, w, w, data, act, hdr_off, prog_off, n_desc);
  });
}

extern "C" {

void tb_lb_top_sizes(long *out) { sizes<TC>(out); }
long long tb_lb_top_run(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
  return run<TC>(ddr, bytes, hdr_off, prog_off, n_desc);
}
// The geared top's (lbtop_gear)
void tb_lb_top_sizes_gear(long *out) { sizes<lbtop_gear::top>(out); }
long long tb_lb_top_run_gear(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
  return run<lbtop_gear::top>(ddr, bytes, hdr_off, prog_off, n_desc);
}

// The MING 32 top's program check (check_only).
void tb_lb_top_check_mg32(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                          uint32_t *out) {
  check_only<lbtop_mg32::top>(ddr, bytes, hdr_off, prog_off, n_desc, out);
}

// The two-codec top's program check (check_only).
void tb_lb_top_check_codecs(uint8_t *ddr, uint64_t bytes, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                            uint32_t *out) {
  check_only<lbtop_codecs::top>(ddr, bytes, hdr_off, prog_off, n_desc, out);
}

// The codecs the two-codec top's engine decodes, as its check sees them (E::K): returns n_codecs, out
// n_codecs x 10 words.
int tb_lb_top_codecs(int32_t *out) {
  typedef lbtop_codecs::top::mm::C::K K;
  for (int c = 0; c < K::n_codecs; c++)
    for (int f = 0; f < 10; f++) out[10 * c + f] = K::codec(c, f);
  return K::n_codecs;
}

// Weight- and head-FIFO words pushed and never popped, over every call.
long long tb_lb_top_leftovers() { return edgellm::fifo_leftovers(); }

// Deadlocks the threaded C simulation found, over every call (0 in the sequential one).
long long tb_lb_top_deadlocks() { return edgellm::csim_deadlocks(); }

}  // extern "C"
