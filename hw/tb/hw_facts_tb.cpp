// Exports the kernels' own values of the hardware facts runtime/layout.py owns (hw_facts.h), read where
// the kernels use them, so tests/test_hw_facts.py compares each with Python's.
#include "edgellm/lowbit_policy.h"
#include "edgellm/named_config.h"

using namespace edgellm;

namespace {
// Each configuration names only its required fields: the rest are the bases' defaults, the facts.
struct tlmm_fields : tlmm_config_base {
  static const int G = 3, T = 5, R = 16, K_MAX = 256, N_MAX = 256, MAX_TOK = 4;
};
typedef tlmm_traits<tlmm_fields> tlmm_cfg;
struct attn_fields : attn_config_base {
  static const int d_max = 32, dot_lanes = 16, kv_block = 16, bq = 8, heads_max = 4, kv_heads_max = 2;
  static const int group_max = 2, max_ctx = 64;
};
typedef attn_traits<attn_fields> attn_default;
struct head_fields : lm_head_config_base {
  static const int P = 16, HID_MAX = 256, V_MAX = 256, MAX_TOK = 1;
};
typedef lm_head_traits<head_fields> head_default;
struct layer_fields : layer_config_base {
  static const int hidden = 128, n_heads = 4, n_kv = 2, head_dim = 32, ffn = 344, act = ACT_RELU2;
  static const bool subln = true;
  static const int norm_lanes = 16, dot_lanes = 32, kv_block = 16, max_t = 16, max_ctx = 64;
};
typedef layer_traits<layer_fields> layer_cfg;
struct lowbit_fields : lowbit_config_base {
  static const int rows = 32, max_k = 256, max_t = 1;
};
typedef lowbit_traits<lowbit_fields>::engine lowbit_default;
}  // namespace

extern "C" {

// name i of the facts below (nullptr past the end), and its value
const char *tb_fact_name(int i) {
  static const char *names[] = {"kMaxWeightPorts", "kMaxHeadPorts", "kFetchBeats", "kHeadFifoDepth",
                                "kAddLatency", "kMulAddLatency", "DSP_CHAIN", "attn.min_rows",
                                "attn.mem_lanes", "layer.attn.min_rows", "layer.attn.mem_lanes",
                                "LmHeadConfig.K_TOP (default: the bound)", "kHeadRowsMax",
                                "lowbit.BW (default: one port's beat)", "lowbit.MAXG (default)",
                                "lowbit.SL (default: a whole record)", "kLbMaxRecordBits",
                                "lowbit.PORTS (default)"};
  return i >= 0 && i < (int)(sizeof(names) / sizeof(names[0])) ? names[i] : nullptr;
}

long tb_fact_value(int i) {
  const long v[] = {kMaxWeightPorts, kMaxHeadPorts, kFetchBeats, kHeadFifoDepth, kAddLatency, kMulAddLatency,
                    tlmm_cfg::DSP_CHAIN, attn_default::min_rows, attn_default::mem_lanes,
                    layer_cfg::attn::min_rows, layer_cfg::attn::mem_lanes, head_default::K_TOP,
                    kHeadRowsMax, lowbit_default::BW, lowbit_default::MAXG, lowbit_default::SL,
                    kLbMaxRecordBits, lowbit_default::PORTS};
  return v[i];
}
}
