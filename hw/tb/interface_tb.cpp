// Exports interface.h's constants so tests/test_interface.py can compare them with Python.
#include "edgellm/interface.h"

using namespace edgellm;

extern "C" {

int tb_interface_constants(uint32_t *out, int n) {
  const uint32_t v[] = {kMagic, kInterfaceVersion, HDR_WORDS, LD_W_OFF, LD_W_SCALE, LD_P_OFF,
                        LD_WORDS, D_OP, D_LAYER, D_T_LEN, D_POS0, D_FLAGS, D_ROW, DESC_WORDS,
                        OP_LAYER, OP_HEAD, DESC_TAPS, HDR_TOPK, HDR_LOGITS, HDR_LAYER_TABLE, D_N_ROWS,
                        HDR_LB_TABLE, LB_WORDS, LB_NO_BIAS, LB_BITS, LB_GROUP, LB_SB, LB_DB, LB_SCB,
                        LB_SC_OFF, LB_MMODE, LB_DMB, LB_MCB, LB_MC_OFF, LB_MZ, LB_DPER, LB_BIAS_OFF,
                        LB_PORT1_OFF, LB_PORT2_OFF, LB_PORT3_OFF};
  const int m = (int)(sizeof(v) / sizeof(v[0]));
  for (int i = 0; i < m && i < n; i++) out[i] = v[i];
  return m;
}

int tb_header_index(int i) {
  // Header words are consecutive from HDR_MAGIC; return the i-th enumerator's value.
  const int v[] = {HDR_MAGIC, HDR_VERSION, HDR_N_LAYERS, HDR_MAX_T, HDR_MAX_CTX, HDR_EPS_BITS,
                   HDR_ATTN_SCALE_BITS, HDR_LAYER_TABLE, HDR_WEIGHTS, HDR_PARAMS, HDR_COS, HDR_SIN,
                   HDR_K_CACHE, HDR_V_CACHE, HDR_H, HDR_SCRATCH_F, HDR_SCRATCH_I8, HDR_TAPS,
                   HDR_FINAL_NORM, HDR_HEAD_W, HDR_HEAD_SCALE, HDR_LOGITS, HDR_ARGMAX, HDR_TOPK, HDR_LB_TABLE,
                   HDR_BUF_BYTES, HDR_STATUS, HDR_STATUS_FIELD, HDR_STATUS_VALUE};
  return v[i];
}
}
