// C-simulation testbench of the DDR probe (copied into a calibration kit as hls/tb_top.cpp; built by
// Vitis HLS csim_design / cosim_design, and by tests/test_calibrate.py with g++).
//
//   tb_top [KIT_DIR] [--decode-steps N]     (both ignored: run_hls.tcl passes them to every testbench)
//
// One buffer of probe_cfg::kTbBufferBytes: a control page (header, program, result records), then a
// region of pseudo-random bytes per weight port, one for the data port's reads and one for its writes.
// It runs a program of port sets (each port alone, the data port reading and writing alone, every weight
// port together, the weight ports reading the LM head's rows -- port k rows k, k + NP, ... of the weight
// regions taken as one array -- and all of them with the data port writing) and checks each result
// record: the beats
// asked for and none from a port outside the set, the sum of the 32-bit words each port moved against
// the buffer, a done cycle no earlier than the port's beats (a port moves at most one beat per cycle)
// and the run's cycles no earlier than any port's; the written region holds the pattern and no other
// byte changed. Then malformed programs (a bad magic, a port the probe lacks, a misaligned offset, a
// range past the buffer, a write over the header, rows that do not divide the beats or overlap) must each
// be refused with its status, index and value, with nothing moved. Exits 0 only when every check passes.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "edgellm_ddr_probe.h"

namespace P = edgellm::probe;

static int failures = 0;
static int checks = 0;

static void expect(bool ok, const char *what, long long got, long long want) {
  checks++;
  if (!ok) {
    failures++;
    if (failures <= 20) std::printf("tb_ddr_probe: FAIL %s: got %lld, want %lld\n", what, got, want);
  }
}

static uint32_t word(const std::vector<uint8_t> &b, uint64_t off) {
  uint32_t v;
  std::memcpy(&v, &b[off], 4);
  return v;
}

static void put(std::vector<uint8_t> &b, uint64_t off, uint32_t v) { std::memcpy(&b[off], &v, 4); }

static uint32_t region_sum(const std::vector<uint8_t> &b, uint64_t off, uint64_t bytes) {
  uint32_t s = 0;
  for (uint64_t i = 0; i < bytes; i += 4) s += word(b, off + i);
  return s;
}

static const uint32_t kHdr = 0, kProg = 256, kRes = 2048;
static const uint32_t kResStride = 4 * P::PR_WORDS + 8;  // records 8 bytes apart: a write past one shows

static uint32_t result_off(int i) { return kRes + kResStride * (uint32_t)i; }

static bool status_byte(uint64_t i) { return i >= kHdr + 4 * P::PH_STATUS && i < kHdr + 4 * (P::PH_STATUS_VALUE + 1); }

static uint32_t slot_region(int s) {  // weight port s, the data port's reads (kDataSlot), its writes (-1)
  const int k = s < 0 ? probe_cfg::kWeightPorts + 1 : s == P::kDataSlot ? probe_cfg::kWeightPorts : s;
  return probe_cfg::kTbControlBytes + (uint32_t)k * probe_cfg::kTbRegionBytes;
}

static uint32_t slot_bytes(int s) { return s == P::kDataSlot ? probe_cfg::kDataBeatBytes : probe_cfg::kBeatBytes; }

struct Set {
  uint32_t active;
  uint32_t write;
  uint32_t row_beats;  // > 0: the weight ports read the LM head's rows (head_row)
};

// The LM head's pattern over the weight regions (one array of rows of row_beats beats): port k's row i is
// row i * NP + k; (offset, stride, beats) of port k.
static const uint32_t kHeadRowBeats = 3;  // an odd row: its rows start at every alignment of the beat
static void head_row(int k, uint32_t row_beats, uint32_t &off, uint32_t &stride, uint32_t &beats) {
  const uint32_t row = row_beats * probe_cfg::kBeatBytes, np = (uint32_t)probe_cfg::kWeightPorts;
  off = slot_region(0) + (uint32_t)k * row;
  stride = np * row;
  beats = (np * probe_cfg::kTbRegionBytes / stride) * row_beats;
}

static void header(std::vector<uint8_t> &b, uint32_t magic) {
  put(b, kHdr + 4 * P::PH_MAGIC, magic);
  put(b, kHdr + 4 * P::PH_VERSION, P::kVersion);
  put(b, kHdr + 4 * P::PH_BUF_BYTES, (uint32_t)b.size());
  for (int w = P::PH_STATUS; w < P::PH_WORDS; w++) put(b, kHdr + 4 * w, 0);
}

static void descriptor(std::vector<uint8_t> &b, int i, const Set &s, uint32_t seed) {
  const uint32_t d = kProg + 4 * P::PD_WORDS * (uint32_t)i;
  for (int w = 0; w < P::PD_WORDS; w++) put(b, d + 4 * w, 0);
  put(b, d + 4 * P::PD_ACTIVE, s.active);
  put(b, d + 4 * P::PD_DATA_WRITE, s.write);
  put(b, d + 4 * P::PD_SEED, seed);
  put(b, d + 4 * P::PD_RESULT, result_off(i));
  for (int k = 0; k < P::kSlots; k++) {
    if (k >= probe_cfg::kWeightPorts && k != P::kDataSlot) continue;
    uint32_t off = k == P::kDataSlot && s.write ? slot_region(-1) : slot_region(k);
    uint32_t beats = probe_cfg::kTbRegionBytes / slot_bytes(k) - (uint32_t)k;  // unequal on purpose
    if (s.row_beats && k != P::kDataSlot) {
      uint32_t stride;
      head_row(k, s.row_beats, off, stride, beats);
      put(b, d + 4 * P::PD_ROW_BEATS, s.row_beats);
      put(b, d + 4 * P::PD_ROW_STRIDE, stride);
    }
    put(b, d + 4 * (P::PD_PORTS + 2 * k), off);
    put(b, d + 4 * (P::PD_PORTS + 2 * k + 1), beats);
  }
}

// Descriptor i's result record against the buffer before the call (reads) and the pattern (writes); the
// written region itself is compared when this descriptor wrote last (`last_write`).
static void check_result(const std::vector<uint8_t> &before, const std::vector<uint8_t> &b, int i,
                         const Set &s, uint32_t seed, bool last_write) {
  const uint32_t d = kProg + 4 * P::PD_WORDS * (uint32_t)i, r = result_off(i);
  uint64_t last = 0;
  for (int k = 0; k < P::kSlots; k++) {
    const uint32_t rw = r + 4 * P::PR_SLOT_WORDS * (uint32_t)k;
    const uint32_t beats = word(b, rw + 4 * P::PR_BEATS), sum = word(b, rw + 4 * P::PR_SUM);
    const uint64_t at = word(b, rw + 4 * P::PR_CYCLE_LO) | (uint64_t)word(b, rw + 4 * P::PR_CYCLE_HI) << 32;
    if (!(s.active >> k & 1)) {
      expect(beats == 0 && sum == 0, "idle port moved nothing", beats, 0);
      continue;
    }
    const uint32_t off = word(b, d + 4 * (P::PD_PORTS + 2 * k)), want = word(b, d + 4 * (P::PD_PORTS + 2 * k + 1));
    const uint64_t bytes = (uint64_t)want * slot_bytes(k);
    expect(beats == want, "beats moved", beats, want);
    const bool writes = k == P::kDataSlot && s.write;
    uint32_t expect_sum = 0;
    if (writes) {
      for (uint64_t w = 0; w < bytes / 4; w++) expect_sum += seed + (uint32_t)w;
    } else if (s.row_beats && k != P::kDataSlot) {
      const uint32_t stride = word(b, d + 4 * P::PD_ROW_STRIDE), row = s.row_beats * slot_bytes(k);
      for (uint32_t r = 0; r < want / s.row_beats; r++) expect_sum += region_sum(before, off + r * stride, row);
    } else {
      expect_sum = region_sum(before, off, bytes);
    }
    expect(sum == expect_sum, "word sum", sum, expect_sum);
    expect(at >= beats, "done cycle >= beats (one beat per cycle at most)", (long long)at, beats);
    if (at > last) last = at;
    if (writes && last_write) {
      for (uint64_t w = 0; w < bytes / 4; w++) {
        const uint32_t v = word(b, off + 4 * w);
        if (v != seed + (uint32_t)w) {
          expect(false, "written word", v, seed + (uint32_t)w);
          break;
        }
      }
    }
  }
  const uint64_t total = word(b, r + 4 * P::PR_TOTAL_LO) | (uint64_t)word(b, r + 4 * P::PR_TOTAL_HI) << 32;
  expect(total >= last && total > 0, "run cycles >= every port's", (long long)total, (long long)last);
}

static void fill(std::vector<uint8_t> &b) {
  uint32_t x = 0x9E3779B9u;
  for (size_t i = probe_cfg::kTbControlBytes; i < b.size(); i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}

// The good program: every port alone, the data port reading and writing, the weight ports together,
// everything with the data port writing. Returns the sets run.
static std::vector<Set> good_sets() {
  std::vector<Set> sets;
  const uint32_t data = 1u << P::kDataSlot, weights = (1u << probe_cfg::kWeightPorts) - 1;
  for (int p = 0; p < probe_cfg::kWeightPorts; p++) sets.push_back(Set{1u << p, 0, 0});
  sets.push_back(Set{data, 0, 0});
  sets.push_back(Set{data, 1, 0});
  sets.push_back(Set{weights, 0, 0});
  sets.push_back(Set{weights, 0, kHeadRowBeats});
  sets.push_back(Set{weights | data, 1, 0});
  return sets;
}

static void run_good() {
  std::vector<uint8_t> b(probe_cfg::kTbBufferBytes, 0);
  fill(b);
  header(b, P::kMagic);
  const std::vector<Set> sets = good_sets();
  for (size_t i = 0; i < sets.size(); i++) descriptor(b, (int)i, sets[i], 1000u * (uint32_t)i + 7u);
  const std::vector<uint8_t> before = b;
  edgellm_ddr_probe_on_buffer(b.data(), kHdr, kProg, (uint32_t)sets.size());
  expect(word(b, kHdr + 4 * P::PH_STATUS) == P::ST_OK, "status", word(b, kHdr + 4 * P::PH_STATUS), P::ST_OK);
  for (size_t i = 0; i < sets.size(); i++)
    check_result(before, b, (int)i, sets[i], 1000u * (uint32_t)i + 7u, i + 1 == sets.size());
  // nothing else changed: the status words, the result records and the write region excepted
  const uint64_t wr = slot_region(-1);
  for (uint64_t i = 0; i < b.size(); i++) {
    const bool result = i >= kRes && (i - kRes) % kResStride < 4 * P::PR_WORDS && (i - kRes) / kResStride < sets.size();
    if (!status_byte(i) && !result && !(i >= wr && i < wr + probe_cfg::kTbRegionBytes) && b[i] != before[i]) {
      expect(false, "a byte outside the written areas changed at", (long long)i, 0);
      break;
    }
  }
}

typedef std::vector<std::pair<int, uint32_t> > Edits;  // (descriptor word, value)

// One malformed program (edits applied to the good one-descriptor program): the status and value it must
// get; nothing but the status words may change.
static void run_bad(const char *what, uint32_t magic, const Edits &edits, uint32_t want_status,
                    uint32_t want_value, uint32_t n_desc = 1) {
  std::vector<uint8_t> b(probe_cfg::kTbBufferBytes, 0);
  fill(b);
  header(b, magic);
  descriptor(b, 0, Set{((1u << probe_cfg::kWeightPorts) - 1) | 1u << P::kDataSlot, 1, 0}, 5);
  for (size_t i = 0; i < edits.size(); i++) put(b, kProg + 4 * (uint32_t)edits[i].first, edits[i].second);
  const std::vector<uint8_t> before = b;
  edgellm_ddr_probe_on_buffer(b.data(), kHdr, kProg, n_desc);
  const uint32_t st = word(b, kHdr + 4 * P::PH_STATUS), val = word(b, kHdr + 4 * P::PH_STATUS_VALUE);
  std::printf("tb_ddr_probe: %s -> status %u value %u\n", what, st, val);
  expect(st == want_status, what, st, want_status);
  expect(val == want_value, "status value", val, want_value);
  for (uint64_t i = 0; i < b.size(); i++) {
    if (!status_byte(i) && b[i] != before[i]) {
      expect(false, "a refused program moved data at", (long long)i, 0);
      break;
    }
  }
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  run_good();
  const int data_off = P::PD_PORTS + 2 * P::kDataSlot;
  const uint32_t lacks = 1u << probe_cfg::kWeightPorts;
  run_bad("bad magic", 0x12345678u, Edits(), P::ST_MAGIC, 0x12345678u);
  run_bad("too many descriptors", P::kMagic, Edits(), P::ST_PROGRAM, P::kMaxDesc + 1, P::kMaxDesc + 1);
  if (probe_cfg::kWeightPorts < P::kMaxWeightPorts)
    run_bad("a port the probe lacks", P::kMagic, Edits(1, std::make_pair((int)P::PD_ACTIVE, lacks)), P::ST_PORTS,
            lacks);
  run_bad("misaligned offset", P::kMagic, Edits(1, std::make_pair((int)P::PD_PORTS, slot_region(0) + 2)),
          P::ST_ALIGN, slot_region(0) + 2);
  run_bad("range past the buffer", P::kMagic, Edits(1, std::make_pair(P::PD_PORTS + 1, probe_cfg::kTbBufferBytes)),
          P::ST_RANGE, probe_cfg::kTbBufferBytes);
  Edits header_only;  // one beat at offset 0: the header's bytes and nothing else of the control page
  header_only.push_back(std::make_pair(data_off, 0u));
  header_only.push_back(std::make_pair(data_off + 1, 1u));
  run_bad("write over the header", P::kMagic, header_only, P::ST_OVERLAP, 0);
  Edits program_only;
  program_only.push_back(std::make_pair(data_off, kProg));
  program_only.push_back(std::make_pair(data_off + 1, 1u));
  run_bad("write over the program", P::kMagic, program_only, P::ST_OVERLAP, kProg);
  Edits results_only;
  results_only.push_back(std::make_pair(data_off, kRes));
  results_only.push_back(std::make_pair(data_off + 1, 1u));
  run_bad("write over the results", P::kMagic, results_only, P::ST_OVERLAP, kRes);
  Edits uneven;  // rows of 3 beats that do not divide w0's beats
  uneven.push_back(std::make_pair((int)P::PD_ROW_BEATS, 3u));
  uneven.push_back(std::make_pair((int)P::PD_ROW_STRIDE, 3u * probe_cfg::kBeatBytes));
  const uint32_t w0_beats = probe_cfg::kTbRegionBytes / probe_cfg::kBeatBytes;
  run_bad("rows that do not divide the beats", P::kMagic, uneven, P::ST_ROWS, w0_beats);
  Edits overlap;  // rows closer than their length
  overlap.push_back(std::make_pair((int)P::PD_ROW_BEATS, 2u));
  overlap.push_back(std::make_pair((int)P::PD_ROW_STRIDE, probe_cfg::kBeatBytes));
  run_bad("rows that overlap", P::kMagic, overlap, P::ST_ROWS, probe_cfg::kBeatBytes);
  Edits far;  // w0's last row past the buffer
  far.push_back(std::make_pair((int)P::PD_ROW_BEATS, 2u));
  far.push_back(std::make_pair((int)P::PD_ROW_STRIDE, probe_cfg::kTbBufferBytes / 4));
  run_bad("rows past the buffer", P::kMagic, far, P::ST_RANGE, w0_beats);
  std::printf("tb_ddr_probe: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
