// C-simulation testbench of the generated top (copied into a project as hls/tb_top.cpp; built by
// `edgellm csim` with g++ and by Vitis HLS csim_design / cosim_design).
//
//   tb_top PROJECT_DIR [--decode-steps N] [--total-bytes B] [--prog-off P]
//
// Loads PROJECT_DIR/weights.bin into a zeroed DDR buffer of total_bytes (manifest.json memory
// total_bytes, or edgellm_cfg::kTotalBytes), then runs the reference of PROJECT_DIR/reference/:
// a prefill of the prompt embeddings (reference/embeds.f32 rows, every layer + OP_HEAD on the last
// row, in blocks of max_t) and teacher-forced decode steps (the golden greedy tokens' embeddings),
// and compares the logits bit for bit with reference/logits.f32 and the argmax with ref.json.
// It plays the host's part of the status protocol: HDR_BUF_BYTES = total_bytes, and every call must
// report ST_OK (the top checked every field it was given; interface.h). Every call runs under the
// port model (edgellm_top_on_ports: each m_axi argument its own channel, as in co-simulation); a byte
// written through two arguments in one call fails the run.
// Prints mismatch counts per step; exits 0 only when everything is exact.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm_top.h"

using edgellm::f32;

static std::string slurp(const std::string &path, bool required = true) {
  std::ifstream f(path.c_str(), std::ios::binary);
  if (!f) {
    if (required) {
      std::fprintf(stderr, "tb_top: cannot read %s\n", path.c_str());
      std::exit(2);
    }
    return std::string();
  }
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// First number after "key": in a JSON text (-1 if absent).
static long long json_int(const std::string &js, const char *key) {
  std::string k = std::string("\"") + key + "\"";
  size_t p = js.find(k);
  if (p == std::string::npos) return -1;
  p = js.find(':', p + k.size());
  if (p == std::string::npos) return -1;
  return std::strtoll(js.c_str() + p + 1, 0, 10);
}

// The integer list after "key": [ ... ].
static std::vector<long long> json_ints(const std::string &js, const char *key) {
  std::vector<long long> out;
  std::string k = std::string("\"") + key + "\"";
  size_t p = js.find(k);
  if (p == std::string::npos) return out;
  size_t a = js.find('[', p), b = js.find(']', p);
  if (a == std::string::npos || b == std::string::npos || b < a) return out;
  const char *s = js.c_str() + a + 1, *end = js.c_str() + b;
  while (s < end) {
    char *next;
    long long v = std::strtoll(s, &next, 10);
    if (next == s) {
      s++;
      continue;
    }
    out.push_back(v);
    s = next;
  }
  return out;
}

static uint32_t u32_at(const std::vector<uint8_t> &ddr, uint64_t off) {
  uint32_t v;
  std::memcpy(&v, &ddr[off], 4);
  return v;
}

static void put_desc(std::vector<uint8_t> &ddr, uint64_t prog_off, int i, uint32_t op, uint32_t layer,
                     uint32_t t_len, uint32_t pos0, uint32_t row) {
  uint32_t d[edgellm::DESC_WORDS] = {0};
  d[edgellm::D_OP] = op;
  d[edgellm::D_LAYER] = layer;
  d[edgellm::D_T_LEN] = t_len;
  d[edgellm::D_POS0] = pos0;
  d[edgellm::D_ROW] = row;
  std::memcpy(&ddr[prog_off + 4ull * edgellm::DESC_WORDS * i], d, sizeof(d));
}

int main(int argc, char **argv) {
  typedef edgellm_cfg::layer C;
  const int H = C::hidden, V = edgellm_cfg::top::vocab, NL = edgellm_cfg::top::n_layers;
  std::string dir = "..";
  long long decode_limit = -1, total = (long long)edgellm_cfg::kTotalBytes, prog_off = -1;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--decode-steps" && i + 1 < argc) decode_limit = std::atoll(argv[++i]);
    else if (a == "--total-bytes" && i + 1 < argc) total = std::atoll(argv[++i]);
    else if (a == "--prog-off" && i + 1 < argc) prog_off = std::atoll(argv[++i]);
    else dir = a;
  }
  std::string manifest = slurp(dir + "/manifest.json", false);
  if (!manifest.empty()) {
    if (json_int(manifest, "total_bytes") > 0) total = json_int(manifest, "total_bytes");
    if (prog_off < 0) prog_off = json_int(manifest, "prog_off");
  }
  std::string weights = slurp(dir + "/weights.bin");
  if (total <= 0 || prog_off < 0 || (uint64_t)total < weights.size() ||
      weights.size() < 4ull * edgellm::HDR_WORDS ||
      (uint64_t)prog_off + 4ull * edgellm::DESC_WORDS * (NL + 1) > (uint64_t)total) {
    std::fprintf(stderr, "tb_top: buffer size %lld / program offset %lld unknown or too small (weights.bin %zu bytes)\n",
                 total, prog_off, weights.size());
    return 2;
  }
  std::string refj = slurp(dir + "/reference/ref.json");
  const long long P = json_int(refj, "prefill_len"), D = json_int(refj, "decode_steps");
  std::vector<long long> ref_argmax = json_ints(refj, "argmax");
  std::string emb = slurp(dir + "/reference/embeds.f32"), lg = slurp(dir + "/reference/logits.f32");
  if (P < 1 || D < 0 || (long long)ref_argmax.size() != D + 1 || emb.size() != 4ull * (P + D) * H ||
      lg.size() != 4ull * (D + 1) * V) {
    std::fprintf(stderr, "tb_top: reference/ does not match the model (prefill %lld, decode %lld, hidden %d, vocab %d)\n",
                 P, D, H, V);
    return 2;
  }
  const long long steps = decode_limit >= 0 && decode_limit < D ? decode_limit : D;
  if (P + steps > C::max_ctx) {
    std::fprintf(stderr, "tb_top: %lld positions exceed max_ctx %d\n", P + steps, C::max_ctx);
    return 2;
  }

  std::vector<uint8_t> ddr((size_t)total, 0);
  std::memcpy(&ddr[0], weights.data(), weights.size());
  const uint32_t hdr_off = 0;
  // the host's part of the status protocol (interface.h): the buffer size, read back after each call
  const uint32_t buf_bytes = (uint64_t)total >> 32 ? 0xffffffffu : (uint32_t)total;
  std::memcpy(&ddr[hdr_off + 4 * edgellm::HDR_BUF_BYTES], &buf_bytes, 4);
  const uint64_t h_off = u32_at(ddr, hdr_off + 4 * edgellm::HDR_H);
  const uint64_t logits_off = u32_at(ddr, hdr_off + 4 * edgellm::HDR_LOGITS);
  const uint64_t argmax_off = u32_at(ddr, hdr_off + 4 * edgellm::HDR_ARGMAX);
  if (h_off + 4ull * C::max_t * H > (uint64_t)total ||
      logits_off + 4ull * V > (uint64_t)total || argmax_off + 4 > (uint64_t)total) {
    std::fprintf(stderr, "tb_top: weights.bin's header puts H/logits/argmax outside the %lld-byte buffer\n", total);
    return 2;
  }
  std::printf("tb_top: %s: %d layers, hidden %d, vocab %d, max_t %d; prefill %lld + %lld decode steps\n",
              dir.c_str(), NL, H, V, C::max_t, P, steps);

  long long bad_total = 0, bad_steps = 0, conflicts = 0;
  for (long long s = 0; s <= steps; s++) {
    // step 0: prefill in blocks of max_t; step s > 0: decode of the (s-1)-th golden token
    const long long first = s == 0 ? 0 : P + s - 1, count = s == 0 ? P : 1;
    for (long long b = 0; b < count; b += C::max_t) {
      const int t_len = (int)(count - b < C::max_t ? count - b : C::max_t);
      const uint32_t pos0 = (uint32_t)(first + b);
      std::memcpy(&ddr[h_off], emb.data() + 4ull * (first + b) * H, 4ull * t_len * H);
      int n = 0;
      for (int l = 0; l < NL; l++) put_desc(ddr, prog_off, n++, edgellm::OP_LAYER, l, t_len, pos0, 0);
      const bool last = b + t_len >= count;
      if (last) put_desc(ddr, prog_off, n++, edgellm::OP_HEAD, 0, t_len, pos0, t_len - 1);
      std::memset(&ddr[logits_off], 0xff, 4ull * V);  // NaN: a top that writes nothing fails
      std::memset(&ddr[hdr_off + 4 * edgellm::HDR_STATUS], 0, 12);
      // each m_axi argument its own channel, as co-simulation sees them (edgellm_top.h, tb_port_model.h)
      conflicts += edgellm_top_on_ports(&ddr[0], (uint64_t)total, hdr_off, (uint32_t)prog_off, (uint32_t)n);
      const uint32_t st = u32_at(ddr, hdr_off + 4 * edgellm::HDR_STATUS);
      if (st != edgellm::ST_OK) {
        std::printf("tb_top: FAIL: the top refused the program (status %u, field 0x%08x, value %u)\n", st,
                    u32_at(ddr, hdr_off + 4 * edgellm::HDR_STATUS_FIELD),
                    u32_at(ddr, hdr_off + 4 * edgellm::HDR_STATUS_VALUE));
        return 1;
      }
    }
    const uint8_t *want = reinterpret_cast<const uint8_t *>(lg.data()) + 4ull * s * V;
    long long bad = 0;
    double maxdiff = 0.0;
    for (int v = 0; v < V; v++) {
      f32 a, w;
      std::memcpy(&a, &ddr[logits_off + 4ull * v], 4);
      std::memcpy(&w, want + 4ull * v, 4);
      if (std::memcmp(&a, &w, 4) != 0) {
        bad++;
        double d = std::fabs((double)a - (double)w);
        if (!(d <= maxdiff)) maxdiff = d;  // NaN propagates
      }
    }
    const int32_t am = (int32_t)u32_at(ddr, argmax_off);
    const bool am_ok = am == ref_argmax[s];
    std::printf("step %2lld %-7s pos %4lld: logits mismatches %lld/%d (max |diff| %g), argmax %d (ref %lld) %s\n",
                s, s == 0 ? "prefill" : "decode", first, bad, V, maxdiff, am, ref_argmax[s], am_ok ? "ok" : "MISMATCH");
    bad_total += bad;
    if (bad || !am_ok) bad_steps++;
  }
  // C simulation's stream checks: FIFO words never popped, deadlocks (threaded build: edgellm csim --threads)
  const long long left = edgellm::fifo_leftovers(), dead = edgellm::csim_deadlocks();
  if (left || dead)
    std::printf("tb_top: %lld weight-FIFO words left over, %lld deadlock(s) in the dataflow regions\n", left, dead);
  if (conflicts) std::printf("tb_top: %lld bytes written through two m_axi arguments in one call\n", conflicts);
  const bool fail = bad_steps || left || dead || conflicts;
  std::printf("tb_top: %s: %lld logit mismatches, %lld of %lld steps differ\n", fail ? "FAIL" : "PASS",
              bad_total, bad_steps, steps + 1);
  return fail ? 1 : 0;
}
