// The accelerator's top: runs a descriptor program (interface.h) over the one DDR buffer.
//
//   header  <- buffer[hdr_off ..]          checked: magic, version, n_layers, max_t, max_ctx, top-k
//   for each descriptor at prog_off:
//     OP_LAYER  decoder_layer<C, MM> on H[0 .. t_len) at pos0 with layer D_LAYER's table entry,
//               its K/V cache slice and (D_FLAGS & DESC_TAPS) the tap area
//     OP_HEAD   final RMSNorm + quantize of H[D_ROW] (the layer's element-wise engine call,
//               decoder_layer_ports norm_only), int8 LM head (lm_head.h) streaming its rows
//               over the first HEAD::NPORTS weight ports: logits [vocab], argmax, top-k ids and
//               values into their regions
//
// Every offset in the header is a byte offset from the buffer base (compiler/passes/plan_memory.py
// aligns regions to 4 KiB, so float and word regions are 4-byte aligned). The generated top.cpp
// gives the kernel views of the buffer through its m_axi ports, all holding the same address: the
// ternary weight ports w0 .. w3 (the first TlmmConfig::NPORTS of them stream every weight tile
// concurrently, each its own share; the generated top repeats w0 for slots it has no port for; the
// first LmHeadConfig::NPORTS of them stream the int8 LM head's rows the same way, and decode
// attention reads the KV cache over them, KV head h on port h % LmHeadConfig::NPORTS) and the data
// port (activations, KV cache writes and prefill reads, scratch, header, program).
// A header or descriptor the compiled configuration cannot run is skipped (C simulation prints why
// on stderr); nothing is written for it.
#pragma once

#include <cstdint>
#ifndef __SYNTHESIS__
#include <cstdio>
#endif

#include "edgellm/decoder_layer.h"
#include "edgellm/interface.h"
#include "edgellm/lm_head.h"
#include "edgellm/numerics.h"

namespace edgellm {

// The whole accelerator at compile time (generated edgellm_config.h): the layer shape, the matmul
// policy, the LM head configuration, the number of layers and the vocabulary.
template <class LAYER, class MM, class HEAD, int N_LAYERS, int VOCAB>
struct top_config {
  typedef LAYER layer;
  typedef MM mm;
  typedef HEAD head;
  static const int n_layers = N_LAYERS;
  static const int vocab = VOCAB;
  static const int max_desc = N_LAYERS + 1;  // one forward pass (trip counts only)
};

inline void top_skip(const char *why, uint32_t a, uint32_t b) {
#ifndef __SYNTHESIS__
  std::fprintf(stderr, "edgellm_top: skipped: %s (%u, %u)\n", why, (unsigned)a, (unsigned)b);
#else
  (void)why;
  (void)a;
  (void)b;
#endif
}

// True when weight port w sees the header magic at hdr_off (the host wrote the same buffer
// address into every pointer register).
template <class WT>
bool port_sees_header(const WT *w, uint32_t hdr_off) {
  uint32_t m = 0;
port_magic:
  for (int i = 0; i < 4; i++) m |= (uint32_t)(uint8_t)w[hdr_off + i] << (8 * i);
  return m == kMagic;
}

// n words of the buffer starting at byte offset off.
template <int N>
void read_words(const f32 *data, uint32_t off, uint32_t out[N]) {
  const uint32_t *dw = reinterpret_cast<const uint32_t *>(data);
read_words_loop:
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
    out[i] = dw[off / 4 + i];
  }
}

// The header against the compiled configuration.
template <class TC>
bool header_ok(const uint32_t hdr[HDR_WORDS]) {
  typedef typename TC::layer C;
  if (hdr[HDR_MAGIC] != kMagic || hdr[HDR_VERSION] != kInterfaceVersion) {
    top_skip("bad header magic/version", hdr[HDR_MAGIC], hdr[HDR_VERSION]);
    return false;
  }
  if (hdr[HDR_N_LAYERS] != (uint32_t)TC::n_layers) {
    top_skip("header n_layers != compiled n_layers", hdr[HDR_N_LAYERS], TC::n_layers);
    return false;
  }
  if (hdr[HDR_MAX_T] != (uint32_t)C::max_t || hdr[HDR_MAX_CTX] != (uint32_t)C::max_ctx) {
    top_skip("header max_t/max_ctx != compiled", hdr[HDR_MAX_T], hdr[HDR_MAX_CTX]);
    return false;
  }
  if (hdr[HDR_TOPK] > (uint32_t)TC::head::K_TOP) {
    top_skip("header top-k > compiled K_TOP", hdr[HDR_TOPK], TC::head::K_TOP);
    return false;
  }
  return true;
}

// OP_LAYER (head = false): this layer's table entry -> layer_desc, then the decoder layer.
// OP_HEAD (head = true): quantize(rmsnorm(H[row], final_norm)) -> int8 LM head -> logits, argmax,
// top-k. The final norm is the decoder layer's first element-wise job alone (decoder_layer_ports
// norm_only, on the row H[row] with the final norm as its gamma), so the layers and the head share
// the one element-wise engine call; the quantized row and its scale go through the layer scratch (x8
// area, qs_a slot). Head row v is read through weight port v % HEAD::NPORTS.
template <class TC>
void run_desc(const uint8_t *w0, const uint8_t *w1, const uint8_t *w2, const uint8_t *w3, f32 *data,
              const uint32_t hdr[HDR_WORDS], uint32_t layer, int t_len, int pos0, bool taps, bool head,
              int row, EwRows<typename TC::layer::ew> &rows) {
  typedef typename TC::layer C;
  typedef layer_scratch<C> S;
  const int H = C::hidden;
  layer_desc d;
  if (head) {
    for (int i = 0; i < N_LIN; i++) {
      d.w_off[i] = 0;
      d.w_scale[i] = 1.0f;
    }
    for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)hdr[HDR_FINAL_NORM];
  } else {
    uint32_t ld[LD_WORDS];
    read_words<LD_WORDS>(data, hdr[HDR_LAYER_TABLE] + layer * (uint32_t)(LD_WORDS * 4), ld);
    for (int i = 0; i < N_LIN; i++) {
      d.w_off[i] = (long)ld[LD_W_OFF + i];
      d.w_scale[i] = float_from_bits(ld[LD_W_SCALE + i]);
    }
    for (int i = 0; i < N_NORM; i++) d.p_off[i] = (long)ld[LD_P_OFF + i];
  }
  typedef typename C::kv_t KT;  // KV cache element (f32 or f16)
  const long kv_slice = (long)layer * C::max_ctx * C::kv_size;  // elements
  int8_t *d8 = reinterpret_cast<int8_t *>(data);
  const uint32_t ko = hdr[HDR_K_CACHE], vo = hdr[HDR_V_CACHE];
  // decode attention reads the cache over the weight ports the LM head streams over (distinct m_axi)
  decoder_layer_ports<C, typename TC::mm, TC::head::NPORTS>(
      data + hdr[HDR_H] / 4 + (long)row * H, t_len, pos0, w0 + hdr[HDR_WEIGHTS], w1 + hdr[HDR_WEIGHTS],
      w2 + hdr[HDR_WEIGHTS], w3 + hdr[HDR_WEIGHTS], d, data + hdr[HDR_PARAMS] / 4,
      data + hdr[HDR_COS] / 4, data + hdr[HDR_SIN] / 4,
      reinterpret_cast<KT *>(d8 + ko) + kv_slice, reinterpret_cast<KT *>(d8 + vo) + kv_slice,
      reinterpret_cast<const KT *>(w0 + ko) + kv_slice, reinterpret_cast<const KT *>(w1 + ko) + kv_slice,
      reinterpret_cast<const KT *>(w2 + ko) + kv_slice, reinterpret_cast<const KT *>(w3 + ko) + kv_slice,
      reinterpret_cast<const KT *>(w0 + vo) + kv_slice, reinterpret_cast<const KT *>(w1 + vo) + kv_slice,
      reinterpret_cast<const KT *>(w2 + vo) + kv_slice, reinterpret_cast<const KT *>(w3 + vo) + kv_slice,
      float_from_bits(hdr[HDR_EPS_BITS]),
      float_from_bits(hdr[HDR_ATTN_SCALE_BITS]), data + hdr[HDR_SCRATCH_F] / 4,
      d8 + hdr[HDR_SCRATCH_I8], data + hdr[HDR_TAPS] / 4, taps, rows, head);
  if (!head) return;
  int8_t *x8 = d8 + hdr[HDR_SCRATCH_I8];
  int32_t *am = reinterpret_cast<int32_t *>(data) + hdr[HDR_ARGMAX] / 4;
  f32 *qs = data + hdr[HDR_SCRATCH_F] / 4 + S::qs_a;
  const int k = (int)hdr[HDR_TOPK];
  const uint32_t hw = hdr[HDR_HEAD_W];
  lm_head<typename TC::head>(x8, qs, 1, reinterpret_cast<const int8_t *>(w0 + hw),
                             reinterpret_cast<const int8_t *>(w1 + hw), reinterpret_cast<const int8_t *>(w2 + hw),
                             reinterpret_cast<const int8_t *>(w3 + hw), data + hdr[HDR_HEAD_SCALE] / 4,
                             TC::vocab, H, true, data + hdr[HDR_LOGITS] / 4, am, k, am + 1,
                             data + hdr[HDR_ARGMAX] / 4 + 1 + k);
}

// The program. w0 .. w3: weight ports (ternary linears and the LM head), data: everything else (all
// at the same address). One set of element-wise rows (EwRows) serves every layer and the final norm.
template <class TC>
void edgellm_top_impl(const uint8_t *w0, const uint8_t *w1, const uint8_t *w2, const uint8_t *w3, f32 *data,
                      uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc) {
  typedef typename TC::layer C;
  typedef typename C::ew E;
  enum { kMaxDesc = TC::max_desc };
  EDGELLM_EW_ROWS(E, rows)
  uint32_t hdr[HDR_WORDS];
  read_words<HDR_WORDS>(data, hdr_off, hdr);
  if (!header_ok<TC>(hdr)) return;
program:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[DESC_WORDS];
    read_words<DESC_WORDS>(data, prog_off + i * (uint32_t)(DESC_WORDS * 4), d);
    const uint32_t t_len = d[D_T_LEN], pos0 = d[D_POS0];
    bool run = false, head = false;
    if (d[D_OP] == OP_LAYER) {
      if (d[D_LAYER] >= (uint32_t)TC::n_layers) {
        top_skip("OP_LAYER: layer out of range", i, d[D_LAYER]);
      } else if (t_len < 1 || t_len > (uint32_t)C::max_t || pos0 > (uint32_t)C::max_ctx ||
                 pos0 + t_len > (uint32_t)C::max_ctx) {
        top_skip("OP_LAYER: t_len/pos0 out of range", t_len, pos0);
      } else {
        run = true;
      }
    } else if (d[D_OP] == OP_HEAD) {
      if (d[D_ROW] >= (uint32_t)C::max_t) {
        top_skip("OP_HEAD: row out of range", i, d[D_ROW]);
      } else {
        run = head = true;
      }
    } else {
      top_skip("unknown opcode", i, d[D_OP]);
    }
    // one call for both ops (the layers and the head's final norm share the element-wise engine)
    if (run) {
      run_desc<TC>(w0, w1, w2, w3, data, hdr, head ? 0u : d[D_LAYER], head ? 1 : (int)t_len,
                   head ? 0 : (int)pos0, !head && (d[D_FLAGS] & DESC_TAPS) != 0, head, head ? (int)d[D_ROW] : 0,
                   rows);
    }
  }
}

}  // namespace edgellm
