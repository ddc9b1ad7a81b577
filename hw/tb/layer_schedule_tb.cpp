// Exports decoder_layer.h's sequential slot schedule as the layer's own code walks it, so
// tests/test_ir_schedule.py compares the compiler IR's fused op order with it (compiler/passes/schedule.py).
//
// The layer's slots run for real (layer_slot_run, then decoder_layer_ports as a cross-check) with three
// seams: the matmul policy is a recorder (rec_mm), and the element-wise engine, the K/V cache write and
// the attention core are renamed, for decoder_layer.h's text alone, to recorders (every header it includes
// is included first, so `#pragma once` keeps the macros out of them). Nothing is computed; each call
// records which scratch rows it reads and writes, and a writer map names the job that produced a row, so
// a step that reads a linear's output is shown with that linear: rope<q>, residual<o>.
//
// Output (tb_schedule, one line each):
//   slot <i> <stages>                 V0 .. V4 / L0 .. L3, both when the slot runs both (V1L0: V1's first part
//                                     beside L0's k and v; slot_vector / slot_linear)
//   lin <LIN_*> <name>                the linear job's linears in the order it runs them
//   ew <EW_*> <index> <mode> <steps>  one element-wise engine call: the EW_* job it is (by its mode and
//                                     operands), that job's enum value, the engine mode, and the IR-level
//                                     steps it performs (';'-separated)
//   kv kv_write<..>                   the K/V cache write
//   attn attention                    the attention core
//   ew_steps <EW_STEPS>               the number of element-wise jobs (decoder_layer.h's enum)
//   ports_match <0|1>                 decoder_layer_ports (the layer's entry point) made the same calls
// LAYER_SCHEDULE_HEADER (a -D define) names a header to read instead of edgellm/decoder_layer.h (the
// tests' mutants).
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "edgellm/attention_decode.h"
#include "edgellm/attention_prefill.h"
#include "edgellm/elementwise.h"
#include "edgellm/kv_cache.h"
#include "edgellm/maxi.h"
#include "edgellm/numerics.h"
#include "edgellm/tlmm.h"
#include "edgellm/weight_fetch.h"

namespace edgellm {
namespace probe {

// What one call did: its kind and fields, filled by the recorders below.
struct Event {
  std::string kind;  // "lin", "ew", "kv", "attn"
  int mode = 0, width = 0, key0 = 0, key_end = -1;
  bool norm = false;
  long a = 0, b = 0, g = 0, w_off = 0, out = 0;
};
static std::vector<Event> events;

template <class E, int ACT, int HEAD_DIM, class IN, class PA, class PF, class PQ, class PD>
void ew_engine(int mode, const PA *, const PA *, const PF *, f32, f32, bool norm, const PD *, f32, int, int n,
               int, const PD *, const PD *, PD *, PF *, PQ *, PF *, bool, PD *, const EwAt &at, EwRows<E> &) {
  Event e;
  e.kind = "ew", e.mode = mode, e.norm = norm, e.width = n, e.a = at.a, e.b = at.b, e.g = at.g, e.out = at.out;
  events.push_back(e);
}

template <int DB, class KT, class PS, class PD>
void kv_cache_write(const PS *, long k_src, const PS *, long v_src, int, int, int, PD *, long, PD *, long) {
  Event e;
  e.kind = "kv", e.a = k_src, e.b = v_src;
  events.push_back(e);
}

template <class C, int KVP, class KT, class PQ, class PD, class PP, class PO>
void attention_kv(const PQ *, long q_off, const PD *, const PD *, const PP *, const PP *, const PP *, const PP *,
                  const PP *, const PP *, const PP *, const PP *, long, long, PO *, long o_off, int, int, int, int,
                  int, f32, int, int key0 = 0, int key_end = -1, long = 0) {
  Event e;
  e.kind = "attn", e.a = q_off, e.out = o_off, e.key0 = key0, e.key_end = key_end;
  events.push_back(e);
}

}  // namespace probe
}  // namespace edgellm

#define ew_engine probe::ew_engine
#define kv_cache_write probe::kv_cache_write
#define attention_kv probe::attention_kv
#ifdef LAYER_SCHEDULE_HEADER
#include LAYER_SCHEDULE_HEADER
#else
#include "edgellm/decoder_layer.h"
#endif
#undef ew_engine
#undef kv_cache_write
#undef attention_kv

using namespace edgellm;

namespace {

// The matmul policy as a recorder: which linear (by its weight offset) and where its output goes.
struct rec_mm {
  typedef ap_uint<8> word_t;
  enum { kPorts = 1, kTokenLanes = 1, kBeatBytes = 0 };
  template <class PX, class PS, class WS, class PY>
  static void run(const PX *, long, const PS *, long, int, WS *, WS *, WS *, WS *, long w_off, int, int, f32,
                  PY *, long y_off) {
    probe::Event e;
    e.kind = "lin", e.w_off = w_off, e.out = y_off;
    probe::events.push_back(e);
  }
};

const char *const kLinName[N_LIN] = {"q", "k", "v", "o", "gate", "up", "down"};
const char *const kLinEnum[N_LIN] = {"LIN_Q", "LIN_K", "LIN_V", "LIN_O", "LIN_GATE", "LIN_UP", "LIN_DOWN"};
const char *const kNormName[N_NORM] = {"attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"};
const long kWStride = 1000, kNormStride = 100000;  // distinct weight and norm offsets, to name them back

template <class C>
struct Tb {
  typedef layer_scratch<C> S;
  typedef typename C::ew E;
  static const long kMaxT = 4;
  f32 h[kMaxT * C::hidden], params[8], cos_tab[8], sin_tab[8], fs[8], taps[8];
  int8_t x8[8];
  typename C::kv_t kc[8], vc[8];
  layer_desc d;
  std::map<long, std::string> writer;  // scratch row -> the job that wrote it (a linear's name, or a step)
  std::string text;

  Tb() {
    std::memset(&d, 0, sizeof d);
    for (int i = 0; i < N_LIN; i++) d.w_off[i] = (i + 1) * kWStride, d.w_scale[i] = 1.0f;
    for (int i = 0; i < N_NORM; i++) d.p_off[i] = (i + 1) * kNormStride;
  }

  static int lin_of(long w_off) { return (int)(w_off / kWStride) - 1; }
  static const char *norm_of(long g) {
    const long i = g / kNormStride - 1;
    return i >= 0 && i < N_NORM && g % kNormStride == 0 ? kNormName[i] : "?";
  }
  // the linears among the writers of rows (the step's direct reads of a linear's output), as <a,b>
  std::string reads(std::initializer_list<long> rows) const {
    std::string s;
    for (long r : rows) {
      auto it = writer.find(r);
      if (it == writer.end() || it->second.find('(') != std::string::npos) continue;  // not a linear's row
      s += (s.empty() ? "" : ",") + it->second;
    }
    return s.empty() ? s : "<" + s + ">";
  }
  std::string norm_tail(const probe::Event &e) const {
    return e.norm ? std::string("norm_quant(") + norm_of(e.g) + ")" : std::string("quantize");
  }

  // One engine call: the EW_* job it is, and the steps it performs.
  void ew_line(const probe::Event &e) {
    const char *job = "?";
    int idx = -1;
    std::string steps;
    switch (e.mode) {
      case kEwNormH:
        job = "EW_ATTN_NORM", idx = EW_ATTN_NORM, steps = norm_tail(e);
        break;
      case kEwRope:
        if (e.a == S::q_lin) job = "EW_ROPE_Q", idx = EW_ROPE_Q;
        if (e.a == S::k_lin) job = "EW_ROPE_K", idx = EW_ROPE_K;
        steps = "rope" + reads({e.a});
        writer[e.out] = "(" + steps + ")";
        break;
      case kEwNorm:
        job = "EW_ATTN_SUB", idx = EW_ATTN_SUB, steps = norm_tail(e);
        break;
      case kEwResidual:
        job = e.norm ? "EW_RES_ATTN" : "EW_RES_FFN", idx = e.norm ? EW_RES_ATTN : EW_RES_FFN;
        steps = "residual" + reads({e.a}) + (e.norm ? ";" + norm_tail(e) : "");
        break;
      case kEwGlu:
        job = "EW_GLU", idx = EW_GLU, steps = "act_gate" + reads({e.a, e.b}) + ";" + norm_tail(e);
        break;
      default:
        break;
    }
    text += "ew " + std::string(job) + " " + std::to_string(idx) + " " + std::to_string(e.mode) + " " + steps +
            "\n";
  }

  void event_line(const probe::Event &e) {
    if (e.kind == "lin") {
      const int l = lin_of(e.w_off);
      const bool ok = l >= 0 && l < N_LIN && e.w_off % kWStride == 0;
      text += std::string("lin ") + (ok ? kLinEnum[l] : "?") + " " + (ok ? kLinName[l] : "?") + "\n";
      writer[e.out] = ok ? kLinName[l] : "?";
    } else if (e.kind == "ew") {
      ew_line(e);
    } else if (e.kind == "kv") {
      text += "kv kv_write" + reads({e.a, e.b}) + "\n";
    } else {
      text += "attn attention" + reads({e.a}) + "\n";
      writer[e.out] = "attention()";
    }
  }

  // the layer's calls, slot by slot (layer_slot_run), or all at once (decoder_layer_ports)
  void run_slot(int i, int halves, int n_a, int t_len, EwRows<E> &rows, int pos0 = 0) {
    layer_slot_run<C, rec_mm, 1>(i, halves, n_a, t_len, pos0, (const uint8_t *)x8, (const uint8_t *)x8,
                                 (const uint8_t *)x8, (const uint8_t *)x8, d, params, cos_tab, sin_tab, kc, vc,
                                 kc, vc, kc, kc, kc, kc, vc, vc, vc, vc, 0L, 0L, 1e-5f, 1.0f, h, fs, x8, fs, x8,
                                 taps, false, rows, LayerAt());
  }

  // The attention calls of a sequential call of t_len tokens at pos0: (slot, key0, key_end) each.
  std::vector<long long> attention_parts(int pos0, int t_len) {
    EDGELLM_EW_ROWS(E, rows)
    std::vector<long long> out;
    for (int i = 0; i < layer_slot_count(1); i++) {
      probe::events.clear();
      run_slot(i, 1, t_len, t_len, rows, pos0);
      for (const probe::Event &e : probe::events)
        if (e.kind == "attn") out.insert(out.end(), {i, e.key0, e.key_end});
    }
    return out;
  }

  std::string schedule() {
    EDGELLM_EW_ROWS(E, rows)
    const int t_len = 1, halves = layer_halves<C>(t_len, false);
    const int n_a = first_half<rec_mm::kTokenLanes>(t_len, halves);
    std::vector<probe::Event> all;
    for (int i = 0; i < layer_slot_count(halves); i++) {
      int vs, vh, vp, ls, lh, j0, j1;
      slot_vector(i, halves, vs, vh, vp);
      slot_linear(i, halves, ls, lh, j0, j1);
      text += "slot " + std::to_string(i) + " " +
              (vs >= 0 ? "V" + std::to_string(vs) : "") + (ls >= 0 ? "L" + std::to_string(ls) : "") + "\n";
      probe::events.clear();
      run_slot(i, halves, n_a, t_len, rows);
      for (const probe::Event &e : probe::events) event_line(e), all.push_back(e);
    }
    text += "ew_steps " + std::to_string((int)EW_STEPS) + "\n";
    probe::events.clear();
    decoder_layer_ports<C, rec_mm, 1>(h, t_len, 0, (const uint8_t *)x8, (const uint8_t *)x8, (const uint8_t *)x8,
                                      (const uint8_t *)x8, d, params, cos_tab, sin_tab, kc, vc, kc, kc, kc, kc, vc,
                                      vc, vc, vc, 1e-5f, 1.0f, fs, x8, taps, false, rows, false, fs, x8);
    bool same = probe::events.size() == all.size();
    for (size_t j = 0; same && j < all.size(); j++) {
      const probe::Event &p = probe::events[j], &q = all[j];
      same = p.kind == q.kind && p.mode == q.mode && p.norm == q.norm && p.a == q.a && p.b == q.b &&
             p.g == q.g && p.w_off == q.w_off && p.out == q.out;
    }
    text += std::string("ports_match ") + (same ? "1" : "0") + "\n";
    return text;
  }
};

// The tiny model's shape (models/tiny/config.json: hidden 256, 4 heads, 2 KV heads, head_dim 64, FFN 688);
// SUBLN as BitNet (true) or Llama-style (false). The schedule does not depend on the shape.
template <bool SUBLN>
struct tb_layer_fields : layer_config_base {
  static const int hidden = 256, n_heads = 4, n_kv = 2, head_dim = 64, ffn = 688, act = ACT_RELU2;
  static const bool subln = SUBLN;
  static const int norm_lanes = 16, dot_lanes = 16, kv_block = 32, max_t = 4, max_ctx = 64;
};
template <bool SUBLN>
using tb_layer = layer_traits<tb_layer_fields<SUBLN> >;

std::string g_text;
}  // namespace

extern "C" {

// The attention calls of a sequential layer call (SubLN shape) of t_len tokens at pos0: out[3i .. 3i+2] =
// (slot, key0, key_end) of call i; returns the call count (at most 4).
int tb_attention_parts(int pos0, int t_len, long long *out) {
  Tb<tb_layer<true> > tb;
  const std::vector<long long> v = tb.attention_parts(pos0, t_len);
  for (size_t i = 0; i < v.size() && i < 12; i++) out[i] = v[i];
  return (int)(v.size() / 3);
}

// The sequential schedule of a layer with (subln != 0) or without SubLN; the text stays valid until the
// next call.
const char *tb_schedule(int subln) {
  if (subln) {
    Tb<tb_layer<true> > tb;
    g_text = tb.schedule();
  } else {
    Tb<tb_layer<false> > tb;
    g_text = tb.schedule();
  }
  return g_text.c_str();
}
}
