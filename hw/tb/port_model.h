// The m_axi port/channel rule in C simulation (C-simulation only: the generated csim_entry.cpp
// includes it as tb_port_model.h; never synthesized).
//
// Vitis HLS treats distinct m_axi pointer arguments as independent channels (UG1399, ALIAS pragma:
// "Vitis HLS considers different pointers to be independent channels and generally does not provide
// any dependency analysis"), and C/RTL co-simulation gives each m_axi argument its own memory. Plain
// C simulation, where every argument points at one buffer, hides a read through one argument of
// bytes another argument wrote in the same call: co-simulation (and maybe the board) reads stale
// bytes there while C simulation passes. This model runs a call as co-simulation sees it:
//   - every writable argument (NW of them: the top's data and act) gets a private copy of the
//     buffer at the start of the call, and reads through it see that argument's own writes only;
//   - the read-only arguments (the weight and K/V ports, `const` in the top's signature) read the
//     buffer as it was when the call started (the caller's buffer, untouched during the call);
//   - at the end of the call every byte a copy changed is merged back into the buffer; a byte two
//     arguments both changed is a conflict (counted in port_conflicts(), the first ones printed).
// So a cross-argument read-after-write inside a call reads the old bytes (the results differ from the
// golden model's) and a two-argument write is reported.
// What it does not model: AXI reordering within one argument (reads see that argument's writes in
// program order), timing, and writes that store the byte already there (invisible as a change).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace edgellm_csim {

// Bytes written through two arguments in one call, over every call so far.
inline long long &port_conflicts() {
  static long long n = 0;
  return n;
}

// One 8-byte word of each of the NW copies equal to the buffer's?
template <int NW>
inline bool word_unchanged(const uint8_t *ddr, uint8_t *const views[NW], uint64_t i) {
  uint64_t a, b;
  std::memcpy(&a, ddr + i, 8);
  for (int k = 0; k < NW; k++) {
    std::memcpy(&b, views[k] + i, 8);
    if (a != b) return false;
  }
  return true;
}

// Byte i: which copies changed it; merge the change, count and report a conflict.
template <int NW>
inline void merge_byte(uint8_t *ddr, uint8_t *const views[NW], const char *const names[NW], uint64_t i,
                       long long &conflicts) {
  int writer = -1;
  for (int k = 0; k < NW; k++) {
    if (views[k][i] == ddr[i]) continue;
    if (writer >= 0) {
      if (++conflicts <= 4) {
        std::fprintf(stderr, "edgellm port model: byte %llu written through both %s and %s in one call\n",
                     (unsigned long long)i, names[writer], names[k]);
      }
      continue;
    }
    writer = k;
  }
  if (writer >= 0) ddr[i] = views[writer][i];
}

// Run call(ro, rw) under the model: ro = ddr for the read-only arguments, rw[k] = the private copy of
// writable argument k (names[k] for the messages); then merge. Returns the bytes written through two
// arguments in this call (also added to port_conflicts()).
template <int NW, class F>
long long run_on_ports(uint8_t *ddr, uint64_t bytes, const char *const names[NW], F call) {
  std::vector<std::vector<uint8_t> > copies(NW, std::vector<uint8_t>(ddr, ddr + bytes));
  uint8_t *views[NW];
  for (int k = 0; k < NW; k++) views[k] = copies[k].data();
  call(const_cast<const uint8_t *>(ddr), views);
  long long conflicts = 0;
  uint64_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    if (word_unchanged<NW>(ddr, views, i)) continue;
    for (uint64_t j = i; j < i + 8; j++) merge_byte<NW>(ddr, views, names, j, conflicts);
  }
  for (; i < bytes; i++) merge_byte<NW>(ddr, views, names, i, conflicts);
  if (conflicts > 4) std::fprintf(stderr, "edgellm port model: %lld bytes written through two arguments\n", conflicts);
  port_conflicts() += conflicts;
  return conflicts;
}

}  // namespace edgellm_csim
