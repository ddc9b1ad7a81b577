// Generated from edgellm/runtime/layout.py (c_header): do not edit. Edit layout.py, then
// regenerate (python -c "from edgellm.runtime import layout; print(layout.c_header(), end='')").
// The hardware facts the compiler's models, the runtime and the kernels share.
#pragma once

namespace edgellm {
namespace facts {

const int kMaxStreamPorts = 4;  // weight ports the TLMM engine and the LM head stream over (MAX_STREAM_PORTS)
const int kFetchBeats = 2;  // R-byte beats per word of a weight fetcher FIFO (FETCH_BEATS)
const int kMaxPortShares = 64;  // units the weight ports' shares (tile, head rows) sum to at most (MAX_PORT_SHARES)
const int kHeadFifoDepth = 64;  // words of each LM-head FIFO (HEAD_FIFO_DEPTH)
const int kGearCountDepth = 32;  // pass counts of a weight-gearbox count FIFO (GEAR_COUNT_DEPTH)
const int kGearLaneDepth = 16;  // words of a weight-gearbox merged-lane FIFO (GEAR_LANE_DEPTH)
const int kAddLatency = 8;  // cycles between two fp32 adds into one lane (ADD_LATENCY)
const int kMulAddLatency = 16;  // cycles between two updates of a multiply-add recurrence (MUL_ADD_LATENCY)
const int kDspChain = 4;  // DSPs per cascade of a TLMM DSP token lane (DSP_CHAIN)
const int kAttnMinRows = 8;  // attention rows interleaved per key (ATTN_MIN_ROWS)
const int kAttnMemLanes = 16;  // floats per K/V beat the attention reader hands the core (ATTN_MEM_LANES)
const int kTopKMax = 64;  // top-k capacity bound of the LM head (K_TOP_MAX)
const int kHeadRowsMax = 8;  // rows the LM head scores in one pass (token lanes) (HEAD_ROWS_MAX)
const int kLogitsRowAlign = 16;  // floats a row of the logits region is padded to (LOGITS_ROW_ALIGN)
const int kLbBeatBits = 128;  // bits of a low-bit weight port's beat (LB_BEAT_BITS)
const int kLbMaxGroup = 256;  // widest low-bit group, and a super-block's inputs (LB_MAX_GROUP)
const int kLbMinGroup = 16;  // narrowest low-bit group (LB_MIN_GROUP)
const int kLbMaxSb = 16;  // most groups a low-bit parameter record covers (LB_MAX_SB)
const int kLbMaxRecordBits = 320;  // bits of the widest low-bit parameter record (LB_MAX_RECORD_BITS)
const int kLbMinBits = 2;  // narrowest low-bit code width (LB_MIN_BITS)
const int kLbMaxBits = 8;  // widest low-bit code width (LB_MAX_BITS)

}  // namespace facts
}  // namespace edgellm
