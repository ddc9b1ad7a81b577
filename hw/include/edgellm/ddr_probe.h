// The DDR probe of the calibration kit (`edgellm calibrate`): an IP that reads and writes DDR through
// the accelerator's m_axi bundles, one beat of the port's width per cycle (weight ports w0..w{NW-1}
// read, the data port reads or writes), and counts, per port, the cycles until its last beat. Every
// port is a beat pointer (ap_uint of the port's width): one element type per m_axi argument, no casts.
// Python twin: runtime/probe_kit.py (tests compare them).
//
// Host protocol (as the accelerator's, interface.h): one buffer, its address in every pointer register;
// a header of PH_WORDS words at hdr_off, a program of n_desc descriptors of PD_WORDS words at prog_off.
// The host writes the buffer size into PH_BUF_BYTES and clears the status words; the probe checks the
// header and every descriptor (ports, alignment, ranges, a write that would hit the header, the program
// or a result record) before it moves a byte, then runs the descriptors one after another and writes
// each one's result record (PR_WORDS words at the descriptor's PD_RESULT offset), then ST_OK; on a bad
// field it writes the status, the descriptor's index and the value, and runs nothing.
//
// One descriptor = one port set: the ports whose bit is set in PD_ACTIVE (bit p: weight port p; bit
// kDataSlot: the data port) each move PD_PORTS + 2 * slot + 1 beats from the byte offset at PD_PORTS +
// 2 * slot, all at once (one DATAFLOW region: a process per port and the counter). Weight ports read:
// with PD_ROW_BEATS 0 one sequential run; else in rows of PD_ROW_BEATS beats, row i at the offset +
// i * PD_ROW_STRIDE bytes, one pipelined burst loop per row -- the LM head's pattern (weight_fetch.h
// lm_fetch_rows: port k reads rows k, k + NP, ... of one [rows][row] array, so offset = k * row bytes
// and stride = NP * row bytes). The data port reads, or with PD_DATA_WRITE writes word i of its region
// as PD_SEED + i. Each port reports its beats and the sum of the 32-bit words it moved; the counter, a
// free-running II=1 loop started with them, the cycle its done token arrived, and the cycle the last
// one did.
//
// C simulation runs the processes one after another, so there is no clock to count: the counter
// then reports each port at one beat per cycle (its beats) and the run at the slowest port. That is
// the probe's ideal, not a measurement; runtime/calibrate.py marks what the emulator gives `emulated`.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include <cstdint>

namespace edgellm {
namespace probe {

const uint32_t kMagic = 0x424F5250u;  // "PROB" little endian
const uint32_t kVersion = 2;  // 2: the row pattern (PD_ROW_BEATS, PD_ROW_STRIDE)
const int kMaxWeightPorts = 4;  // the TLMM engine streams over at most 4 weight ports (weight_buffer.h)
const int kSlots = kMaxWeightPorts + 1;  // port slots of a descriptor: w0..w3, then the data port
const int kDataSlot = kMaxWeightPorts;
const uint32_t kMaxDesc = 64;  // descriptors in one program
const uint32_t kMaxBeats = 1u << 26;  // beats one port moves in one descriptor (1 GiB at 128 bits)
const int kTripBeats = 1 << 20;  // LOOP_TRIPCOUNT of a port's loop (16 MiB at 128 bits)

enum HeaderWord { PH_MAGIC = 0, PH_VERSION, PH_BUF_BYTES, PH_STATUS, PH_STATUS_INDEX, PH_STATUS_VALUE,
                  PH_WORDS = 8 };
enum DescWord { PD_ACTIVE = 0, PD_DATA_WRITE, PD_SEED, PD_RESULT, PD_ROW_BEATS, PD_ROW_STRIDE, PD_PORTS,
                PD_WORDS = PD_PORTS + 2 * kSlots };
// Result record: per slot its beats, word sum, done cycle (low, high word); then the run's cycles.
enum ResultWord { PR_BEATS = 0, PR_SUM, PR_CYCLE_LO, PR_CYCLE_HI, PR_SLOT_WORDS,
                  PR_TOTAL_LO = PR_SLOT_WORDS * kSlots, PR_TOTAL_HI, PR_WORDS };
enum Status { ST_NONE = 0, ST_OK, ST_MAGIC, ST_VERSION, ST_BUFFER, ST_PROGRAM, ST_PORTS, ST_MODE, ST_ALIGN,
              ST_RANGE, ST_OVERLAP, ST_ROWS };
const uint32_t kHeaderIndex = 0xFFFFFFFFu;  // PH_STATUS_INDEX of a header (not descriptor) error

// What a port process reports when it is done: beats moved, the sum of the 32-bit words moved.
struct Done {
  uint32_t beats;
  uint32_t sum;
};

// Sum of the 32-bit words of a beat of B bytes (lane k: bits 32k .. 32k+31, little endian in memory).
template <int B>
uint32_t word_sum(const ap_uint<8 * B> &v) {
#pragma HLS INLINE
  uint32_t s = 0;
word_sum_loop:
  for (int k = 0; k < B / 4; k++) {
#pragma HLS UNROLL
    s += v.range(32 * k + 31, 32 * k).to_uint();
  }
  return s;
}

// A weight port: `beats` beats of B bytes from byte offset `off` (a multiple of B), one per cycle; with
// row_beats > 0 in rows of row_beats beats, row i from off + i * row_stride (a multiple of B), each row
// its own pipelined loop as weight_fetch.h lm_fetch_rows reads the LM head's (check_desc: row_beats
// divides beats). row_beats 0: one row of every beat, a single sequential run.
template <int B>
void read_port(const ap_uint<8 * B> *w, uint32_t off, uint32_t beats, uint32_t row_beats, uint32_t row_stride,
               hls::stream<Done> &done) {
#pragma HLS INLINE off
  static_assert(B >= 4 && B % 4 == 0, "a probe beat holds whole 32-bit words");
  const uint32_t per_row = row_beats ? row_beats : beats;
  const uint32_t rows = per_row ? beats / per_row : 0;
  uint32_t sum = 0;
read_port_rows:
  for (uint32_t r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kTripBeats
    const uint32_t base = off / B + r * (row_stride / B);
  read_port_beats:
    for (uint32_t i = 0; i < per_row; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kTripBeats
      const ap_uint<8 * B> v = w[base + i];
      sum += word_sum<B>(v);
    }
  }
  Done d = {beats, sum};
  done.write(d);
}

// The data port: `beats` beats of B bytes at byte offset `off` (a multiple of B), one per cycle; reads
// them, or (write) writes word i of the region as seed + i.
template <int B>
void data_port(ap_uint<8 * B> *data, uint32_t off, uint32_t beats, uint32_t write, uint32_t seed,
               hls::stream<Done> &done) {
#pragma HLS INLINE off
  static_assert(B >= 4 && B % 4 == 0, "a probe beat holds whole 32-bit words");
  const int V = B / 4;
  const uint32_t base = off / B;
  uint32_t sum = 0;
  if (write) {
  data_write_beats:
    for (uint32_t i = 0; i < beats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kTripBeats
      ap_uint<8 * B> v = 0;
    data_write_words:
      for (int k = 0; k < V; k++) {
#pragma HLS UNROLL
        v.range(32 * k + 31, 32 * k) = seed + i * (uint32_t)V + (uint32_t)k;
      }
      data[base + i] = v;
      sum += word_sum<B>(v);
    }
  } else {
  data_read_beats:
    for (uint32_t i = 0; i < beats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kTripBeats
      const ap_uint<8 * B> v = data[base + i];
      sum += word_sum<B>(v);
    }
  }
  Done d = {beats, sum};
  done.write(d);
}

// The counter: a free-running II=1 loop, started with the port processes of its DATAFLOW region, that
// polls every port's done token each cycle and records the cycle it arrived; it ends when all have.
// res: the result record (beats, sum, cycle per slot; the last cycle). Slots beyond NP stay zero.
template <int NP>
void count_cycles(hls::stream<Done> done[NP], uint32_t res[PR_WORDS]) {
#pragma HLS INLINE off
  bool seen[NP];
  Done got[NP];
  uint64_t at[NP];
#pragma HLS ARRAY_PARTITION variable = seen complete
#pragma HLS ARRAY_PARTITION variable = got complete
#pragma HLS ARRAY_PARTITION variable = at complete
count_init:
  for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
    seen[p] = false;
    got[p].beats = 0;
    got[p].sum = 0;
    at[p] = 0;
  }
  uint64_t t = 0;
  bool all = false;
count_loop:
  while (!all) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kTripBeats
    t++;
    bool rest = true;
  count_ports:
    for (int p = 0; p < NP; p++) {
#pragma HLS UNROLL
      if (!seen[p]) {
        Done d;
        if (done[p].read_nb(d)) {
          seen[p] = true;
          got[p] = d;
          at[p] = t;
        } else {
          rest = false;
        }
      }
    }
    all = rest;
  }
#ifndef __SYNTHESIS__
  // C simulation: no clock (the processes ran one after another); each port at one beat per cycle.
  t = 0;
  for (int p = 0; p < NP; p++) {
    at[p] = got[p].beats;
    if (at[p] > t) t = at[p];
  }
#endif
count_clear:
  for (int i = 0; i < PR_WORDS; i++) {
#pragma HLS PIPELINE II = 1
    res[i] = 0;
  }
count_store:
  for (int p = 0; p < NP; p++) {  // four stores per port into res: not pipelined (runs once per set)
    const int s = p == NP - 1 ? kDataSlot : p;  // the last process is the data port's
    res[s * PR_SLOT_WORDS + PR_BEATS] = got[p].beats;
    res[s * PR_SLOT_WORDS + PR_SUM] = got[p].sum;
    res[s * PR_SLOT_WORDS + PR_CYCLE_LO] = (uint32_t)at[p];
    res[s * PR_SLOT_WORDS + PR_CYCLE_HI] = (uint32_t)(at[p] >> 32);
  }
  res[PR_TOTAL_LO] = (uint32_t)t;
  res[PR_TOTAL_HI] = (uint32_t)(t >> 32);
}

// N words of the buffer from byte offset off (a multiple of 4), through the data port's beats.
template <int N, int B>
void read_words(const ap_uint<8 * B> *data, uint32_t off, uint32_t out[N]) {
read_words_loop:
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
    const uint32_t at = off + 4 * (uint32_t)i;
    const ap_uint<8 * B> v = data[at / B];
    const ap_uint<32> word = v >> (32 * ((at % B) / 4));
    out[i] = word.to_uint();
  }
}

// N words into the buffer from byte offset off (a multiple of 4), through the data port: each beat they
// touch read, the words merged in, written back (a beat is the port's one element: no byte enables).
template <int N, int B>
void write_words(ap_uint<8 * B> *data, uint32_t off, const uint32_t in[N]) {
  const uint32_t first = off / B, last = (off + 4 * N - 1) / B;
write_words_beats:
  for (uint32_t k = first; k <= last; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = (4 * N + B - 1) / B + 1
    ap_uint<8 * B> v = data[k];
  write_words_lanes:
    for (int l = 0; l < B / 4; l++) {
#pragma HLS UNROLL
      const uint32_t at = k * B + 4 * (uint32_t)l;
      if (at >= off && at < off + 4 * N) v.range(32 * l + 31, 32 * l) = in[(at - off) / 4];
    }
    data[k] = v;
  }
}

// [a, a + na) and [b, b + nb) share a byte.
inline bool overlaps(uint64_t a, uint64_t na, uint64_t b, uint64_t nb) {
  return na && nb && a < b + nb && b < a + na;
}

// The verdict on a header: ST_OK, or the status and (value) the field's value.
inline uint32_t check_header(const uint32_t h[PH_STATUS], uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                             uint32_t &value) {
  const uint64_t buf = h[PH_BUF_BYTES];
  value = 0;
  if (h[PH_MAGIC] != kMagic) {
    value = h[PH_MAGIC];
    return ST_MAGIC;
  }
  if (h[PH_VERSION] != kVersion) {
    value = h[PH_VERSION];
    return ST_VERSION;
  }
  if (hdr_off % 4 || (uint64_t)hdr_off + 4 * PH_WORDS > buf) {
    value = h[PH_BUF_BYTES];
    return ST_BUFFER;
  }
  if (prog_off % 4 || n_desc < 1 || n_desc > kMaxDesc || (uint64_t)prog_off + 4ull * PD_WORDS * n_desc > buf ||
      overlaps(prog_off, 4ull * PD_WORDS * n_desc, hdr_off, 4 * PH_WORDS)) {
    value = n_desc;
    return ST_PROGRAM;
  }
  return ST_OK;
}

// The verdict on descriptor d (words), given the ports the probe has (nw weight ports of B bytes per
// beat, the data port of DB bytes), the buffer and the control areas no write may touch.
template <int B, int DB>
uint32_t check_desc(const uint32_t d[PD_WORDS], int nw, uint64_t buf, uint32_t hdr_off, uint32_t prog_off,
                    uint32_t n_desc, uint32_t &value) {
  const uint32_t known = ((1u << nw) - 1) | (1u << kDataSlot);
  value = 0;
  if (!d[PD_ACTIVE] || d[PD_ACTIVE] & ~known) {
    value = d[PD_ACTIVE];
    return ST_PORTS;
  }
  if (d[PD_DATA_WRITE] > 1) {
    value = d[PD_DATA_WRITE];
    return ST_MODE;
  }
  const uint32_t row_beats = d[PD_ROW_BEATS], stride = d[PD_ROW_STRIDE];
  if (row_beats && (stride % B || (uint64_t)stride < (uint64_t)row_beats * B)) {  // rows apart, whole beats
    value = stride;
    return ST_ROWS;
  }
  if (d[PD_RESULT] % 4 || (uint64_t)d[PD_RESULT] + 4 * PR_WORDS > buf ||
      overlaps(d[PD_RESULT], 4 * PR_WORDS, hdr_off, 4 * PH_WORDS) ||
      overlaps(d[PD_RESULT], 4 * PR_WORDS, prog_off, 4ull * PD_WORDS * n_desc)) {
    value = d[PD_RESULT];
    return ST_RANGE;
  }
check_slots:
  for (int s = 0; s < kSlots; s++) {
    if (!(d[PD_ACTIVE] >> s & 1)) continue;
    const uint32_t off = d[PD_PORTS + 2 * s], beats = d[PD_PORTS + 2 * s + 1];
    const uint32_t bytes = s == kDataSlot ? DB : B;
    if (off % bytes) {
      value = off;
      return ST_ALIGN;
    }
    if (beats < 1 || beats > kMaxBeats) {
      value = beats;
      return ST_RANGE;
    }
    if (s != kDataSlot && row_beats) {  // whole rows; the last row's end inside the buffer
      if (beats % row_beats) {
        value = beats;
        return ST_ROWS;
      }
      if ((uint64_t)off + (uint64_t)(beats / row_beats - 1) * stride + (uint64_t)row_beats * bytes > buf) {
        value = beats;
        return ST_RANGE;
      }
    } else if ((uint64_t)off + (uint64_t)beats * bytes > buf) {
      value = beats;
      return ST_RANGE;
    }
  }
  return ST_OK;
}

// A data-port write of descriptor d against the control areas and every result record (res: the
// result offsets of the program's n_desc descriptors): ST_OVERLAP naming the offset, or ST_OK.
template <int DB>
uint32_t check_write(const uint32_t d[PD_WORDS], uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                     const uint32_t res[kMaxDesc], uint32_t &value) {
  if (!(d[PD_ACTIVE] >> kDataSlot & 1) || !d[PD_DATA_WRITE]) return ST_OK;
  const uint64_t off = d[PD_PORTS + 2 * kDataSlot];
  const uint64_t n = (uint64_t)d[PD_PORTS + 2 * kDataSlot + 1] * DB;
  value = (uint32_t)off;
  if (overlaps(off, n, hdr_off, 4 * PH_WORDS) || overlaps(off, n, prog_off, 4ull * PD_WORDS * n_desc))
    return ST_OVERLAP;
check_write_results:
  for (uint32_t j = 0; j < n_desc; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    if (j < kMaxDesc && overlaps(off, n, res[j], 4 * PR_WORDS)) return ST_OVERLAP;
  }
  return ST_OK;
}

// The whole program against the header, the probe's ports (nw weight ports of B bytes per beat, the
// data port of DB bytes) and the buffer, before anything moves: ST_OK, or the status with the
// descriptor's index (kHeaderIndex for the header) and the value at fault.
template <int B, int DB>
uint32_t check_program(const ap_uint<8 * DB> *data, int nw, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                       uint32_t &index, uint32_t &value) {
  uint32_t h[PH_STATUS];
  read_words<PH_STATUS, DB>(data, hdr_off, h);
  index = kHeaderIndex;
  uint32_t st = check_header(h, hdr_off, prog_off, n_desc, value);
  if (st != ST_OK) return st;
  const uint64_t buf = h[PH_BUF_BYTES];
  uint32_t res[kMaxDesc];
check_descs:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[PD_WORDS];
    read_words<PD_WORDS, DB>(data, prog_off + 4 * PD_WORDS * i, d);
    index = i;
    st = check_desc<B, DB>(d, nw, buf, hdr_off, prog_off, n_desc, value);
    if (st != ST_OK) return st;
    res[i] = d[PD_RESULT];
  }
check_writes:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[PD_WORDS];
    read_words<PD_WORDS, DB>(data, prog_off + 4 * PD_WORDS * i, d);
    index = i;
    st = check_write<DB>(d, hdr_off, prog_off, n_desc, res, value);
    if (st != ST_OK) return st;
  }
  index = 0;
  value = 0;
  return ST_OK;
}

// Status, index and value into the header's status words.
template <int DB>
void report(ap_uint<8 * DB> *data, uint32_t hdr_off, uint32_t status, uint32_t index, uint32_t value) {
  uint32_t st[3] = {status, index, value};
  write_words<3, DB>(data, hdr_off + 4 * PH_STATUS, st);
}

}  // namespace probe
}  // namespace edgellm
