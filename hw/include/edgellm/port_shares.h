// The weight ports' shares (compiler/cost/ddr.py rate_shares; design.port_shares): port p of four with
// shares s0 .. s3 carries s_p units of every tile (tlmm_config.h SHARE0..3: units of a tile's byte
// columns) and of every cycle of LM-head rows (lm_head_config.h: rows), so ports on a shared DDR path carry
// less and finish with the others. Constant expressions, no recursion (tlmm_traits and LmHeadConfig derive
// their sums and maxima from them).
#pragma once

namespace edgellm {

// Port p's share, the shares of the ports before p, the largest of the first n.
constexpr int port_share(int p, int s0, int s1, int s2, int s3) {
  return p == 0 ? s0 : p == 1 ? s1 : p == 2 ? s2 : s3;
}
constexpr int port_share_prefix(int p, int s0, int s1, int s2, int s3) {
  return (p > 0 ? s0 : 0) + (p > 1 ? s1 : 0) + (p > 2 ? s2 : 0) + (p > 3 ? s3 : 0);
}
constexpr int port_share_larger(int a, int b) { return a > b ? a : b; }
constexpr int port_share_max(int n, int s0, int s1, int s2, int s3) {
  return port_share_larger(port_share_larger(s0, n > 1 ? s1 : 0),
                           port_share_larger(n > 2 ? s2 : 0, n > 3 ? s3 : 0));
}

}  // namespace edgellm
