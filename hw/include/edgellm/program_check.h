// The top's guard: every header, layer-table and descriptor field checked before anything uses it.
//
// The host hands the top one buffer (interface.h) and says how big it is (HDR_BUF_BYTES, written by
// the host on every start, not by the compiler). Before the engine or a fetcher dereferences a field,
// check_program checks all of them against that size and the compiled configuration:
//   header       magic, version, n_layers, max_t, max_ctx equal to the compiled ones; top-k within
//                K_TOP; eps and the attention scale finite and positive; every region offset plus the
//                bytes the compiled kernels touch there inside the buffer, every region on a data beat
//                (the data and act ports' ap_uint beats: the kernels stream rows a whole beat at a time
//                from a region's start; the weight and LM-head regions also on a weight-port beat)
//   layer table  (every layer) the seven matrices' images (mm_image) inside the buffer and on a weight
//                beat (the fetchers read whole R-byte beats from an image's start), their scales finite,
//                the norm gains (the SubLN ones when compiled with SubLN) inside the buffer and on a data
//                beat (the RMSNorm scale pass reads whole beats)
//   low-bit      (a low-bit design, MM::kLowbit) the table at HDR_LB_TABLE inside the buffer and on a data
//                beat; every record's codec within what lowbit_mm decodes (one of the engine's listed
//                codecs, when it lists them; its float steps within FU),
//                its bias inside the params area,
//                every port image inside the buffer on a 16-byte beat (check_lb_record; docs/hls.md)
//   program      prog_off aligned, n_desc descriptors inside the buffer; each: a known opcode and
//                flags, layer < n_layers, 1 <= t_len <= max_t, pos0 + t_len <= max_ctx, row < max_t,
//                OP_HEAD's rows n (D_N_ROWS, 0 = 1) <= the head's rows (HEAD::MAX_TOK) and row + n <= max_t
// The first failure wins. The engine and the fetchers run the same check on the same words, so they
// agree on whether the program runs (no FIFO is left half fed); the engine writes the result into the
// header's status words (report_status) and runs nothing unless it is ST_OK. hdr_off itself is the
// host's: it must leave the HDR_WORDS-word header inside the buffer (runtime/driver.py checks it
// before writing the register; the C-simulation entry checks it too).
#pragma once

#include <cstdint>

#include "edgellm/decoder_layer.h"
#include "edgellm/interface.h"
#include "edgellm/lm_head.h"
#include "edgellm/maxi.h"

namespace edgellm {

typedef unsigned long long u64_t;

// Bytes of an encoded n_out x k ternary matrix that the matmul policy reads from its offset.
template <class MM>
struct mm_image;
template <class TCFG>
struct mm_image<tlmm_mm<TCFG> > {
  // tiled 5-trits/byte rows; the tail tile's last R-byte beat is read whole (weight_buffer.h)
  static u64_t bytes(int n_out, int k) {
    const u64_t raw = (u64_t)n_out * (u64_t)((k + kTritsPerByte - 1) / kTritsPerByte);
    return (raw + TCFG::R - 1) / TCFG::R * TCFG::R;
  }
};
template <int K_MAX>
struct mm_image<pack2_matmul<K_MAX> > {
  static u64_t bytes(int n_out, int k) { return (u64_t)n_out * (u64_t)((k + 3) / 4); }
};
template <class LT>
struct mm_image<lowbit_mm_policy<LT> > {
  // one beat here; every port's whole image is checked with its record (check_lb_records)
  static u64_t bytes(int, int) { return kLbBeatBits / 8; }
};

// Floats of norm gain i (NORM_ATTN .. NORM_FFN_SUB) of a layer.
template <class C>
int norm_len(int i) {
  return i == NORM_ATTN_SUB ? C::q_size : i == NORM_FFN_SUB ? C::ffn : C::hidden;
}

// The first error found: a Status code (ST_OK while none), its field (status_field) and value.
struct CheckResult {
  uint32_t code, field, value;
};

inline void check_fail(CheckResult &r, uint32_t code, uint32_t field, uint32_t value) {
  if (r.code == ST_OK) {
    r.code = code;
    r.field = field;
    r.value = value;
  }
}

// [start, start + bytes) inside a buffer of buf bytes (reported first), start a multiple of align bytes.
inline void check_span(CheckResult &r, uint32_t field, uint32_t value, u64_t start, u64_t bytes, u64_t buf,
                       u64_t align) {
  if (start + bytes > buf) check_fail(r, ST_RANGE, field, value);
  if (start % align != 0) check_fail(r, ST_ALIGN, field, value);
}

// A float bit pattern that is finite (and, when positive, > 0).
inline bool bits_finite(uint32_t b, bool positive) {
  const bool fin = ((b >> 23) & 0xffu) != 0xffu;
  return positive ? fin && (b >> 31) == 0 && (b & 0x7fffffffu) != 0 : fin;
}

// N words at byte offset off (4-byte aligned), through the data port or a weight port (beats).
template <int N, int B>
void check_read(const ap_uint<B> *w, uint32_t off, uint32_t out[N]) {
check_read_beats:
  for (int i = 0; i < N; i++) out[i] = mget<uint32_t>(w, off / 4 + i);  // a word's beat each
}

// The header words the top reads ([0, HDR_STATUS): never its own status words); the rest zero.
template <class P>
void read_header(const P *port, uint32_t hdr_off, uint32_t hdr[HDR_WORDS]) {
  check_read<HDR_STATUS>(port, hdr_off, hdr);
read_header_rest:
  for (int i = HDR_STATUS; i < HDR_WORDS; i++) hdr[i] = 0;
}

// The header against the compiled configuration and the buffer size.
template <class TC>
void check_header(CheckResult &r, const uint32_t hdr[HDR_WORDS], uint32_t hdr_off) {
  typedef typename TC::layer C;
  typedef layer_scratch<C> S;
  typedef layer_taps<C> TP;
  const u64_t buf = hdr[HDR_BUF_BYTES], L = TC::n_layers, V = TC::vocab, H = C::hidden;
  const u64_t R = TC::head::MAX_TOK;  // rows of logits / argmax records one OP_HEAD writes at most
  const u64_t VR = (V + facts::kLogitsRowAlign - 1) / facts::kLogitsRowAlign * facts::kLogitsRowAlign;  // a logits row
  if (hdr[HDR_MAGIC] != kMagic) check_fail(r, ST_MISMATCH, status_field(SW_HEADER, 0, HDR_MAGIC), hdr[HDR_MAGIC]);
  if (hdr[HDR_VERSION] != kInterfaceVersion)
    check_fail(r, ST_MISMATCH, status_field(SW_HEADER, 0, HDR_VERSION), hdr[HDR_VERSION]);
  const int same[3] = {HDR_N_LAYERS, HDR_MAX_T, HDR_MAX_CTX};
  const uint32_t want[3] = {(uint32_t)TC::n_layers, (uint32_t)C::max_t, (uint32_t)C::max_ctx};
check_header_same:
  for (int i = 0; i < 3; i++)
    if (hdr[same[i]] != want[i]) check_fail(r, ST_MISMATCH, status_field(SW_HEADER, 0, same[i]), hdr[same[i]]);
  if (hdr[HDR_TOPK] > (uint32_t)TC::head::K_TOP)
    check_fail(r, ST_LIMIT, status_field(SW_HEADER, 0, HDR_TOPK), hdr[HDR_TOPK]);
  if ((u64_t)hdr_off + 4 * HDR_WORDS > buf)
    check_fail(r, ST_RANGE, status_field(SW_HEADER, 0, HDR_BUF_BYTES), hdr[HDR_BUF_BYTES]);
  const int fl[2] = {HDR_EPS_BITS, HDR_ATTN_SCALE_BITS};
check_header_floats:
  for (int i = 0; i < 2; i++)
    if (!bits_finite(hdr[fl[i]], true)) check_fail(r, ST_FLOAT, status_field(SW_HEADER, 0, fl[i]), hdr[fl[i]]);
  // regions: header word -> bytes the compiled kernels touch from that offset (the weight and parameter
  // areas, which the layer table indexes: at least one element inside the buffer); each starts on a data
  // beat, the weight images and the LM head's rows also on a weight-port beat
  const u64_t db = C::data_bits / 8, wb = cmax((int)db, TC::head::P);
  const u64_t kv = L * C::max_ctx * C::kv_size * sizeof(typename C::kv_t);
  const int words[14] = {HDR_LAYER_TABLE, HDR_PARAMS,     HDR_COS,    HDR_SIN,    HDR_K_CACHE,
                         HDR_V_CACHE,     HDR_H,          HDR_SCRATCH_F, HDR_TAPS, HDR_HEAD_SCALE,
                         HDR_LOGITS,      HDR_ARGMAX,     HDR_WEIGHTS, HDR_SCRATCH_I8};
  const u64_t bytes[14] = {L * LD_WORDS * 4, 4, 4ull * C::max_ctx * (C::head_dim / 2),
                           4ull * C::max_ctx * (C::head_dim / 2), kv, kv, 4 * H * C::max_t, 4ull * S::floats,
                           4ull * TP::floats, 4 * V, 4 * VR * R, R * (4 + 8ull * hdr[HDR_TOPK]), 1,
                           (u64_t)S::bytes8};
check_header_regions:
  for (int i = 0; i < 14; i++) {
    const uint32_t w = (uint32_t)words[i];
    check_span(r, status_field(SW_HEADER, 0, w), hdr[w], hdr[w], bytes[i], buf, w == HDR_WEIGHTS ? wb : db);
  }
  check_span(r, status_field(SW_HEADER, 0, HDR_HEAD_W), hdr[HDR_HEAD_W], hdr[HDR_HEAD_W], V * H, buf, wb);
  if (mm_is_lowbit<typename TC::mm>::value)  // the low-bit table (a ternary design never reads it)
    check_span(r, status_field(SW_HEADER, 0, HDR_LB_TABLE), hdr[HDR_LB_TABLE], hdr[HDR_LB_TABLE],
               L * N_LIN * LB_WORDS * 4, buf, db);
  check_span(r, status_field(SW_HEADER, 0, HDR_FINAL_NORM), hdr[HDR_FINAL_NORM],
             (u64_t)hdr[HDR_PARAMS] + 4ull * hdr[HDR_FINAL_NORM], 4 * H, buf, db);
}

// Every layer's table entry (the header checked first: the table lies inside the buffer).
template <class TC, class P>
void check_layers(CheckResult &r, const P *port, const uint32_t hdr[HDR_WORDS]) {
  typedef typename TC::layer C;
  const u64_t buf = hdr[HDR_BUF_BYTES];
  // an image starts on the matmul policy's weight beat (the TLMM: R bytes; pack2: any byte), a norm gain on
  // a data beat
  const u64_t ib = TC::mm::kBeatBytes > 0 ? (u64_t)TC::mm::kBeatBytes : 1, db = C::data_bits / 8;
check_layers_loop:
  for (int l = 0; l < TC::n_layers; l++) {
    uint32_t ld[LD_WORDS];
    check_read<LD_WORDS>(port, hdr[HDR_LAYER_TABLE] + (uint32_t)l * (uint32_t)(LD_WORDS * 4), ld);
  check_layer_linears:
    for (int i = 0; i < N_LIN; i++) {
      const uint32_t off = ld[LD_W_OFF + i], sc = ld[LD_W_SCALE + i];
      check_span(r, status_field(SW_LAYER, l, LD_W_OFF + i), off, (u64_t)hdr[HDR_WEIGHTS] + off,
                 mm_image<typename TC::mm>::bytes(lin_out<C>(i), lin_in<C>(i)), buf, ib);
      if (!bits_finite(sc, false)) check_fail(r, ST_FLOAT, status_field(SW_LAYER, l, LD_W_SCALE + i), sc);
    }
  check_layer_norms:
    for (int i = 0; i < N_NORM; i++) {
      const uint32_t off = ld[LD_P_OFF + i];
      if (i < NORM_ATTN_SUB || C::subln)
        check_span(r, status_field(SW_LAYER, l, LD_P_OFF + i), off, (u64_t)hdr[HDR_PARAMS] + 4ull * off,
                   4ull * norm_len<C>(i), buf, db);
    }
  }
}

// Word w of linear i's low-bit record of layer l, as HDR_STATUS_FIELD names it: the record's words
// continue the layer's table words (word LD_WORDS + i * LB_WORDS + w of layer l).
inline uint32_t lb_field(int l, int i, int w) {
  return status_field(SW_LAYER, (uint32_t)l, (uint32_t)(LD_WORDS + i * LB_WORDS + w));
}

// Where a record's codec words (w[LB_SB .. LB_DPER], ParamCodec.as_words order) leave the codecs the engine
// decodes (K: its named configuration, K::n_codecs rows K::codec(i, f); n_codecs 0 decodes any): -1 when
// they are one of them, else the first word at which the record differs from every one (the longest prefix
// it shares with any), an LbWord (runtime/bounds_lowbit.py lb_codec_mismatch).
template <class K>
inline int lb_codec_mismatch(const uint32_t w[LB_WORDS]) {
  int best = 0;
lb_codec_rows:
  for (int c = 0; c < K::n_codecs; c++) {
    int n = 0;  // the words codec c shares with the record's first ones
    bool same = true;
  lb_codec_words:
    for (int f = 0; f < LB_DPER - LB_SB + 1; f++) {
      same = same && (int)w[LB_SB + f] == K::codec(c, f);
      n += same ? 1 : 0;
    }
    if (n == LB_DPER - LB_SB + 1) return -1;
    if (n > best) best = n;
  }
  return K::n_codecs == 0 ? -1 : LB_SB + best;
}

// One record (words w) of linear i of layer l (ld: the layer's table words): its codec within what
// lowbit_mm decodes, its bias and its port images inside the buffer (docs/hls.md "Low-bit linears").
template <class TC>
void check_lb_record(CheckResult &r, const uint32_t w[LB_WORDS], const uint32_t ld[LD_WORDS],
                     const uint32_t hdr[HDR_WORDS], int l, int i) {
  typedef typename TC::layer C;
  typedef typename TC::mm::C E;  // the engine's LowbitConfig
  const u64_t buf = hdr[HDR_BUF_BYTES], db = C::data_bits / 8, k = (u64_t)lin_in<C>(i);
  const uint32_t bits = w[LB_BITS], g = w[LB_GROUP], sb = w[LB_SB], mode = w[LB_MMODE], dmb = w[LB_DMB];
  const uint32_t scb = w[LB_SCB], mcb = w[LB_MCB];
  if (bits < (uint32_t)facts::kLbMinBits || bits > (uint32_t)facts::kLbMaxBits)
    check_fail(r, ST_LIMIT, lb_field(l, i, LB_BITS), bits);
  const bool g_ok = g >= (uint32_t)E::MING && g <= (uint32_t)E::MAXG && (g & (g - 1)) == 0 && k % g == 0;
  if (!g_ok) check_fail(r, ST_LIMIT, lb_field(l, i, LB_GROUP), g);
  if (sb < 1 || sb > (uint32_t)E::MAXSB || (g_ok && k % ((u64_t)g * sb) != 0))
    check_fail(r, ST_LIMIT, lb_field(l, i, LB_SB), sb);
  if (w[LB_DB] != 16 && w[LB_DB] != 32) check_fail(r, ST_LIMIT, lb_field(l, i, LB_DB), w[LB_DB]);
  if (scb > 8) check_fail(r, ST_LIMIT, lb_field(l, i, LB_SCB), scb);
  if (mode > 1) check_fail(r, ST_LIMIT, lb_field(l, i, LB_MMODE), mode);
  if (mode == 0 ? dmb != 16 && dmb != 32 : dmb != 0) check_fail(r, ST_LIMIT, lb_field(l, i, LB_DMB), dmb);
  if (mcb > 8) check_fail(r, ST_LIMIT, lb_field(l, i, LB_MCB), mcb);
  if (w[LB_DPER] > 1) check_fail(r, ST_LIMIT, lb_field(l, i, LB_DPER), w[LB_DPER]);
  if (r.code != ST_OK) return;  // the sizes below need valid fields
  // a codec the engine was not built for (the named config's list): at the word where it leaves them
  const int miss = lb_codec_mismatch<typename E::K>(w);
  if (miss >= 0) check_fail(r, ST_LIMIT, lb_field(l, i, miss), w[miss]);
  if (r.code != ST_OK) return;
  const LbLinear lin = lb_linear_of(w, lin_out<C>(i), lin_in<C>(i));
  if (lb_record_bits(lin.t) > kLbMaxRecordBits) check_fail(r, ST_LIMIT, lb_field(l, i, LB_SB), sb);
  // its row sets' float steps within the engine's FU (lb_float_steps: too few planes for its rows)
  if (lb_float_steps(lin.t, E::BW) > E::FU) check_fail(r, ST_LIMIT, lb_field(l, i, LB_BITS), bits);
  if (w[LB_BIAS_OFF] != LB_NO_BIAS)
    check_span(r, lb_field(l, i, LB_BIAS_OFF), w[LB_BIAS_OFF], (u64_t)hdr[HDR_PARAMS] + 4ull * w[LB_BIAS_OFF],
               4ull * lin_out<C>(i), buf, db);
  if (r.code != ST_OK) return;
  // port u's image: 16-byte beats, lb_stream_beats of them (under the weight gearbox, lowbit_gear.h, the
  // port's words: LbGear::port_beats), at HDR_WEIGHTS + LD_W_OFF[i] + LB_PORTu_OFF (0 for port 0)
  typedef typename TC::mm::gear G;
  const long nb = lb_stream_beats(lin.t, E::R, E::BW);
  const u64_t base = (u64_t)hdr[HDR_WEIGHTS] + ld[LD_W_OFF + i];
  check_span(r, status_field(SW_LAYER, (uint32_t)l, LD_W_OFF + i), ld[LD_W_OFF + i], base,
             (u64_t)(kLbBeatBits / 8) * (u64_t)G::port_beats(0, nb), buf, kLbBeatBits / 8);
check_lb_ports:
  for (int u = 1; u < E::PORTS; u++) {
    const int word = LB_PORT1_OFF + u - 1;
    check_span(r, lb_field(l, i, word), w[word], base + w[word],
               (u64_t)(kLbBeatBits / 8) * (u64_t)G::port_beats(u, nb), buf, kLbBeatBits / 8);
  }
}

// Every layer's low-bit records (low-bit designs: LB = 1; the table region checked with the header).
template <class TC, int LB = mm_is_lowbit<typename TC::mm>::value>
struct check_lb_records {
  template <class P>
  static void run(CheckResult &, const P *, const uint32_t *) {}
};
template <class TC>
struct check_lb_records<TC, 1> {
  template <class P>
  static void run(CheckResult &r, const P *port, const uint32_t hdr[HDR_WORDS]) {
  check_lb_layers:
    for (int l = 0; l < TC::n_layers; l++) {
      uint32_t ld[LD_WORDS];
      check_read<LD_WORDS>(port, hdr[HDR_LAYER_TABLE] + (uint32_t)l * (uint32_t)(LD_WORDS * 4), ld);
    check_lb_linears:
      for (int i = 0; i < N_LIN; i++) {
        uint32_t w[LB_WORDS];
        check_read<LB_WORDS>(port, hdr[HDR_LB_TABLE] + (uint32_t)(l * N_LIN + i) * (uint32_t)(LB_WORDS * 4), w);
        check_lb_record<TC>(r, w, ld, hdr, l, i);
        if (r.code != ST_OK) return;
      }
    }
  }
};

// The program registers and every descriptor (stops at the first bad one).
template <class TC, class P>
void check_descs(CheckResult &r, const P *port, uint32_t prog_off, uint32_t n_desc, u64_t buf) {
  typedef typename TC::layer C;
  enum { kMaxDesc = TC::max_desc };
  if (prog_off % 4 != 0) check_fail(r, ST_ALIGN, status_field(SW_REG, 0, REG_PROG_OFF), prog_off);
  if ((u64_t)prog_off + 4ull * DESC_WORDS * n_desc > buf)
    check_fail(r, ST_RANGE, status_field(SW_REG, 0, REG_N_DESC), n_desc);
  if (r.code != ST_OK) return;
check_descs_loop:
  for (uint32_t i = 0; i < n_desc; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = kMaxDesc
    uint32_t d[DESC_WORDS];
    check_read<DESC_WORDS>(port, prog_off + i * (uint32_t)(DESC_WORDS * 4), d);
    const u64_t t_len = d[D_T_LEN], pos0 = d[D_POS0];
    if (d[D_OP] == OP_LAYER) {
      if (d[D_LAYER] >= (uint32_t)TC::n_layers) check_fail(r, ST_LIMIT, status_field(SW_DESC, i, D_LAYER), d[D_LAYER]);
      if (t_len < 1 || t_len > (u64_t)C::max_t) check_fail(r, ST_LIMIT, status_field(SW_DESC, i, D_T_LEN), d[D_T_LEN]);
      if (pos0 + t_len > (u64_t)C::max_ctx) check_fail(r, ST_LIMIT, status_field(SW_DESC, i, D_POS0), d[D_POS0]);
    } else if (d[D_OP] == OP_HEAD) {
      if (d[D_ROW] >= (uint32_t)C::max_t) check_fail(r, ST_LIMIT, status_field(SW_DESC, i, D_ROW), d[D_ROW]);
      const u64_t n_rows = d[D_N_ROWS] ? d[D_N_ROWS] : 1;
      if (d[D_N_ROWS] > (uint32_t)TC::head::MAX_TOK || d[D_ROW] + n_rows > (u64_t)C::max_t)
        check_fail(r, ST_LIMIT, status_field(SW_DESC, i, D_N_ROWS), d[D_N_ROWS]);
    } else {
      check_fail(r, ST_OPCODE, status_field(SW_DESC, i, D_OP), d[D_OP]);
    }
    if (d[D_FLAGS] & ~(uint32_t)DESC_TAPS) check_fail(r, ST_OPCODE, status_field(SW_DESC, i, D_FLAGS), d[D_FLAGS]);
    if (r.code != ST_OK) break;
  }
}

// Header, layer table, program, in that order (each read only once the previous ones are in range).
template <class TC, class P>
CheckResult check_program(const P *port, uint32_t hdr_off, uint32_t prog_off, uint32_t n_desc,
                          const uint32_t hdr[HDR_WORDS]) {
  CheckResult r = {ST_OK, 0, 0};
  check_header<TC>(r, hdr, hdr_off);
  if (r.code == ST_OK) check_layers<TC>(r, port, hdr);
  if (r.code == ST_OK) check_lb_records<TC>::run(r, port, hdr);
  if (r.code == ST_OK) check_descs<TC>(r, port, prog_off, n_desc, hdr[HDR_BUF_BYTES]);
  return r;
}

// The engine's report: the three status words of the header at hdr_off, through the data port's beats
// (each word's beat read, the word set, the beat written back: maxi.h mput).
template <int B>
void report_status(ap_uint<B> *data, uint32_t hdr_off, const CheckResult &r) {
  mput<uint32_t>(data, hdr_off / 4 + HDR_STATUS, r.code);
  mput<uint32_t>(data, hdr_off / 4 + HDR_STATUS_FIELD, r.field);
  mput<uint32_t>(data, hdr_off / 4 + HDR_STATUS_VALUE, r.value);
}

// top.cpp's refusal when a port does not see the header magic at hdr_off: a wrong magic (as the data
// port sees it), else pointer registers that do not all hold the buffer's address.
template <int B>
void report_ports(ap_uint<B> *data, uint32_t hdr_off) {
  const uint32_t m = mget<uint32_t>(data, hdr_off / 4 + HDR_MAGIC);
  CheckResult r = {ST_MISMATCH, status_field(SW_HEADER, 0, HDR_MAGIC), m};
  if (m == kMagic) r.field = status_field(SW_REG, 0, REG_POINTERS);
  report_status(data, hdr_off, r);
}

}  // namespace edgellm
