// The accelerator's host interface: registers, the DDR header, descriptors.
// Python twin: compiler/interface.py (tests/test_interface.py checks they agree).
//
// The host allocates ONE contiguous DDR buffer and writes its physical address into every m_axi
// pointer register (weight ports and the data port alike). All offsets below are byte offsets
// into that buffer. The compiler lays the buffer out (compiler/passes/plan_memory.py) and writes
// a header of HDR_WORDS uint32 words at offset `hdr_off`. The host then starts the IP once per
// prefill and once per decode step with a program of descriptors at `prog_off`.
//
// AXI-lite registers of the top (besides ap_ctrl and the pointer registers):
//   hdr_off  (uint32)  byte offset of the header
//   prog_off (uint32)  byte offset of the descriptor program
//   n_desc   (uint32)  number of descriptors to run
//
// Status protocol (every start): the host writes the buffer's size into HDR_BUF_BYTES and clears
// HDR_STATUS .. HDR_STATUS_VALUE; the top checks the header, the layer table and the whole program
// against that size and the compiled configuration before it touches anything they point to
// (program_check.h), then writes ST_OK, or an error code with the field (STATUS_FIELD: where and
// which word) and its value, and runs nothing. The host reads the three words after ap_done.
// The top reads header words [0, HDR_STATUS) only, so its own status writes race with no reader.
#pragma once

#include <cstdint>

namespace edgellm {

const uint32_t kMagic = 0x4C4C4745u;  // "EGLL" little endian
const uint32_t kInterfaceVersion = 5;  // 2: the status words (HDR_BUF_BYTES, HDR_STATUS..); 3: D_N_ROWS;
                                       // 4: HDR_LB_TABLE (low-bit linears); 5: LB_PORT1_OFF..LB_PORT3_OFF

// Header words (uint32). Offsets are bytes from the buffer base; 64-bit where marked _LO/_HI.
enum HeaderWord {
  HDR_MAGIC = 0,
  HDR_VERSION,
  HDR_N_LAYERS,
  HDR_MAX_T,         // tokens per descriptor (prefill block)
  HDR_MAX_CTX,
  HDR_EPS_BITS,      // rms_eps as float bits
  HDR_ATTN_SCALE_BITS,  // float(1/sqrt(head_dim)) bits
  HDR_LAYER_TABLE,   // n_layers layer descriptors of LD_WORDS words each
  HDR_WEIGHTS,       // encoded ternary matrices (layer descriptors hold offsets relative to this)
  HDR_PARAMS,        // float area: norm gains (layer descriptors hold float offsets into it)
  HDR_COS,           // rope cos table [max_ctx][head_dim/2] f32
  HDR_SIN,           // rope sin table
  HDR_K_CACHE,       // [n_layers][max_ctx][n_kv][head_dim] of kv_dtype (f16 by default, or f32)
  HDR_V_CACHE,
  HDR_H,             // hidden states [max_t][hidden] f32, in/out of OP_LAYER
  HDR_SCRATCH_F,     // float scratch (layer_scratch)
  HDR_SCRATCH_I8,    // int8 scratch [max_t][k_max]
  HDR_TAPS,          // per-stage taps (layer_taps), written when a descriptor sets DESC_TAPS
  HDR_FINAL_NORM,    // float offset into the params area of the final norm gain
  HDR_HEAD_W,        // LM head int8 [vocab][hidden]
  HDR_HEAD_SCALE,    // LM head row scales f32 [vocab]
  HDR_LOGITS,        // f32 [head rows][vocab] of the rows OP_HEAD selects (head rows: top.h, layout.head_rows)
  HDR_ARGMAX,        // int32 argmax [head rows], then int32 top-k ids [head rows][k], f32 values [head rows][k]
  HDR_TOPK,          // k of the top-k output (<= 64)
  HDR_LB_TABLE,      // low-bit designs: n_layers x N_LIN low-bit linear records of LB_WORDS words (LbWord);
                     // 0 in a ternary design (the top of a ternary design never reads it)
  HDR_BUF_BYTES,     // written by the host before a start: bytes of the buffer (every region must fit)
  HDR_STATUS,        // written by the top: a Status code (the host clears it to ST_NONE first)
  HDR_STATUS_FIELD,  // the field an error names: where << 24 | index << 8 | word (StatusWhere)
  HDR_STATUS_VALUE,  // the value the top refused
  HDR_WORDS = 32
};

// Layer descriptor words (uint32), one per layer in the layer table.
enum LayerWord {
  LD_W_OFF = 0,      // 7 words: byte offset of q,k,v,o,gate,up,down encoded matrices from HDR_WEIGHTS
  LD_W_SCALE = 7,    // 7 words: float bits of their weight scales
  LD_P_OFF = 14,     // 4 words: float offsets in the params area: attn_norm, ffn_norm, attn_sub, ffn_sub
  LD_WORDS = 20
};

// Low-bit linear record (uint32 words), one per (layer, linear) in the low-bit table at HDR_LB_TABLE,
// record (layer * N_LIN + linear): the tensor's ParamCodec (compiler/packing_lowbit.py ParamCodec.as_words,
// lowbit_format.h LowbitTensor; n_out and k are the layer's shape), the float offset of its bias in the params
// area (LB_NO_BIAS: none) and the bytes from weight port 0's image to port u's, u = 1 .. 3 (the tensor's
// stream split by 128-bit columns, packing_lowbit.port_images, under the weight gearbox port 0's and 3's
// images longer: compiler/memory_plan_lowbit.port_offsets lays them one after another; port 0's image at
// the layer table's LD_W_OFF word, whose LD_W_SCALE word is 1.0f). Signed fields (LB_SC_OFF, LB_MC_OFF)
// are two's complement.
enum LbWord {
  LB_BITS = 0, LB_GROUP, LB_SB, LB_DB, LB_SCB, LB_SC_OFF, LB_MMODE, LB_DMB, LB_MCB, LB_MC_OFF, LB_MZ, LB_DPER,
  LB_BIAS_OFF, LB_PORT1_OFF, LB_PORT2_OFF, LB_PORT3_OFF, LB_WORDS = 16  // a record is one 64-byte beat
};
const uint32_t LB_NO_BIAS = 0xFFFFFFFFu;

// Descriptor words (uint32).
// D_N_ROWS (OP_HEAD): rows D_ROW .. D_ROW + n - 1 scored in one pass over the head's weights (0 means 1;
// n <= the compiled head rows, LmHeadConfig MAX_TOK = runtime/layout.py head_rows(max_t)).
enum DescWord { D_OP = 0, D_LAYER, D_T_LEN, D_POS0, D_FLAGS, D_ROW, D_N_ROWS, DESC_WORDS = 8 };

enum Opcode {
  OP_LAYER = 1,  // decoder layer D_LAYER on H[0..t_len) at positions pos0..; updates KV cache
  OP_HEAD = 2,   // final norm + LM head of H[D_ROW .. D_ROW + D_N_ROWS) -> logits, argmax, top-k per row
};

enum DescFlag { DESC_TAPS = 1 };

// HDR_STATUS codes.
enum Status {
  ST_NONE = 0,      // not written: the top did not run the program (host-side: nothing reported)
  ST_OK = 1,        // every field checked; the program runs
  ST_MISMATCH = 2,  // differs from the compiled configuration (magic, version, layers, max_t, max_ctx)
  ST_RANGE = 3,     // a region [offset, offset + size) outside the buffer, or a missing buffer size
  ST_ALIGN = 4,     // an offset not on its beat: a region (data beat; weights: the weight beat), prog_off (word)
  ST_LIMIT = 5,     // an index or count beyond the compiled maximum (layer, t_len, pos0, row, top-k)
  ST_FLOAT = 6,     // a float field that is not finite (a scale, eps: also not positive)
  ST_OPCODE = 7     // an unknown opcode or flag bit
};

// HDR_STATUS_FIELD = where << 24 | index << 8 | word: header word; layer `index`'s table word;
// descriptor `index`'s word; or a register (word: StatusReg).
enum StatusWhere { SW_HEADER = 1, SW_LAYER = 2, SW_DESC = 3, SW_REG = 4 };
// REG_POINTERS: a pointer register whose port does not see the header (they must all hold one address)
enum StatusReg { REG_HDR_OFF = 0, REG_PROG_OFF = 1, REG_N_DESC = 2, REG_POINTERS = 3 };

inline uint32_t status_field(uint32_t where, uint32_t index, uint32_t word) {
  return where << 24 | (index & 0xffffu) << 8 | (word & 0xffu);
}

}  // namespace edgellm
