// Named configurations of the LM head and of the whole top (hls4ml style), as the generated
// edgellm_config.h writes them:
//   struct head_cfg : edgellm::lm_head_config_base { static const int P = 16; ... };
//   typedef edgellm::lm_head_traits<head_cfg> head;
//   struct top_cfg : edgellm::top_config_base { typedef edgellm_cfg::layer layer; ... };
//   typedef edgellm::top_traits<top_cfg> top;
// Each traits template maps the fields by name onto the kernel's configuration (lm_head.h LmHeadConfig,
// top.h top_config), the one place their order is written; the layer and the TLMM engine have their
// own (layer_config.h layer_traits, tlmm_config.h tlmm_traits).
#pragma once

#include "edgellm/hw_facts.h"
#include "edgellm/lm_head.h"
#include "edgellm/top.h"

namespace edgellm {

// LM head. Required: P (int8 MACs per cycle and port = bytes per weight beat), HID_MAX (largest hidden
// size), V_MAX (largest vocabulary), MAX_TOK (tokens per call).
struct lm_head_config_base {
  static const int K_TOP = facts::kTopKMax;  // top-k capacity
  static const int NPORTS = 1;               // weight ports streaming rows concurrently
  // each port's rows of a cycle of rows (LmHeadConfig; the TLMM's shares, design.port_shares)
  static const int SHARE0 = 1;
  static const int SHARE1 = 1;
  static const int SHARE2 = 1;
  static const int SHARE3 = 1;
};
template <class C>
struct lm_head_traits : LmHeadConfig<C::P, C::HID_MAX, C::V_MAX, C::MAX_TOK, C::K_TOP, C::NPORTS, C::SHARE0,
                                     C::SHARE1, C::SHARE2, C::SHARE3> {};

// The top. Required: the types layer, mm and head, and n_layers, vocab.
struct top_config_base {
  static const int fetch_depth = 512;  // words per weight FIFO (design.fetch_depth)
};
template <class C>
struct top_traits
    : top_config<typename C::layer, typename C::mm, typename C::head, C::n_layers, C::vocab, C::fetch_depth> {};

}  // namespace edgellm
