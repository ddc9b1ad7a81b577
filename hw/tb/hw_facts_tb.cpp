// Exports the kernels' own values of the hardware facts runtime/layout.py owns (hw_facts.h), read where
// the kernels use them, so tests/test_hw_facts.py compares each with Python's.
#include "edgellm/top.h"

using namespace edgellm;

namespace {
typedef TlmmConfig<3, 5, 16, 256, 256, 4> tlmm_cfg;
typedef attn_config<32, 16, 16, 8, 4, 2, 2, 64> attn_default;
typedef LmHeadConfig<16, 256, 256, 1> head_default;
typedef layer_config<128, 4, 2, 32, 344, ACT_RELU2, true, 16, 32, 16, 16, 64> layer_cfg;
}  // namespace

extern "C" {

// name i of the facts below (nullptr past the end), and its value
const char *tb_fact_name(int i) {
  static const char *names[] = {"kMaxWeightPorts", "kMaxHeadPorts", "kFetchBeats", "kHeadFifoDepth",
                                "kAddLatency", "kMulAddLatency", "DSP_CHAIN", "attn.min_rows",
                                "attn.mem_lanes", "layer.attn.min_rows", "layer.attn.mem_lanes",
                                "LmHeadConfig.K_TOP (default: the bound)", "kHeadRowsMax"};
  return i >= 0 && i < (int)(sizeof(names) / sizeof(names[0])) ? names[i] : nullptr;
}

long tb_fact_value(int i) {
  const long v[] = {kMaxWeightPorts, kMaxHeadPorts, kFetchBeats, kHeadFifoDepth, kAddLatency, kMulAddLatency,
                    tlmm_cfg::DSP_CHAIN, attn_default::min_rows, attn_default::mem_lanes,
                    layer_cfg::attn::min_rows, layer_cfg::attn::mem_lanes, head_default::K_TOP,
                    kHeadRowsMax};
  return v[i];
}
}
