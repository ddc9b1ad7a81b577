"""HLS codegen: the project's hls/ folder (kernel headers, generated config + top, C-sim entry,
testbench, Vitis HLS Tcl) and the predicted AXI-lite register map. The layer's DDR scratch/tap layout
and the hardware's constants are runtime/layout.py's (its hw_facts.h is written into every project).

Generated glue stays thin: edgellm_config.h holds typedefs with this model's and design's
numbers, top.cpp the INTERFACE pragmas and one call to edgellm_top_impl (hw/include/edgellm/top.h).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.compiler import hls_tcl
from edgellm.compiler.codegen_config import (
    cpp_struct,
    head_fields,
    layer_fields,
    lowbit_fields,
    tlmm_fields,
    top_fields,
)
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.design import DesignParams, head_beat_bytes, stream_ports, tlmm_tables
from edgellm.compiler.memory_plan import Encoder
from edgellm.compiler.packing import pack_ternary
from edgellm.errors import EdgeLLMError
from edgellm.hw.csim import INCLUDE_DIR, TB_DIR
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan
from edgellm.runtime import layout
from edgellm.runtime.layout import K_TOP_MAX, MAX_STREAM_PORTS, k_max

TOP = "edgellm_top"
MM_POLICIES = ("tlmm", "pack2", "lowbit")  # lowbit: a low-bit design's (design.matmul "lowbit") only
CTRL_REGISTERS = {"ap_ctrl": 0x00, "gie": 0x04, "ier": 0x08, "isr": 0x0C}


def weight_encoder(design: DesignParams, mm: str = "tlmm") -> Encoder:
    """The plan_memory encoder matching the matmul policy: pack_ternary tiles of design.rows rows
    (tlmm) or the 2-bit rows of models/weights (pack2); a low-bit design (design.matmul "lowbit"): the
    low-bit engine's streams (memory_plan_lowbit.LowbitEncoder, R = lowbit_rows, its beat, its gearbox)."""
    if design.matmul == "lowbit":
        from edgellm.compiler.memory_plan_lowbit import LowbitEncoder

        return LowbitEncoder(design.lowbit_rows, design.lowbit_beat_bits, design.gear)
    if mm == "tlmm":
        return lambda lin: pack_ternary(lin.dense(), design.rows)
    if mm == "pack2":
        return lambda lin: np.ascontiguousarray(lin.packed).reshape(-1)
    raise EdgeLLMError(f"unknown matmul policy {mm!r}; expected one of {', '.join(MM_POLICIES)}")


def register_map(n_weight_ports: int) -> dict[str, int]:
    """Predicted AXI-lite offsets of the top's arguments w0.., kv0.., data, act, hdr_off, prog_off, n_desc
    (Vitis HLS convention: arguments from 0x10,
    a 64-bit pointer takes 3 words (lo, hi, reserved), a 32-bit scalar 2 words). The real map is in
    the generated xedgellm_top_hw.h / the .hwh after synthesis."""
    regs, off = {}, 0x10
    ptrs = [f"w{i}" for i in range(n_weight_ports)] + [f"kv{i}" for i in range(n_weight_ports)]
    for name in ptrs + ["data", "act"]:
        regs[name] = off
        off += 12
    for name in ("hdr_off", "prog_off", "n_desc"):
        regs[name] = off
        off += 8
    return regs


def _lit(x: float | int) -> str:
    return str(int(x))


def config_header(cfg: ModelConfig, numerics: NumericsPlan, design: DesignParams, mm: str, max_t: int,
                  max_ctx: int, top_k: int, total_bytes: int, stream_ports: int = 1,
                  head_ports: int = 1, board: Any = None) -> str:
    """edgellm_config.h: the compile-time configuration as named structs, one per kernel configuration
    (hls4ml style; stream_ports: the TLMM's NPORTS, head_ports: the LM head's), each field by name."""
    n_max = k_max(cfg)
    tlmm = cpp_struct("tlmm_cfg", "edgellm::tlmm_config_base", tlmm_fields(cfg, design, max_t, stream_ports))
    mm_part = (f"{tlmm}\ntypedef edgellm::tlmm_traits<tlmm_cfg> tlmm;\ntypedef edgellm::tlmm_mm<tlmm> mm;"
               if mm == "tlmm" else f"typedef edgellm::pack2_matmul<{n_max}> mm;")
    if mm == "lowbit":  # the low-bit engine (lowbit_policy.h) over the W{b}A8 linears
        lb = cpp_struct("lowbit_cfg", "edgellm::lowbit_config_base", lowbit_fields(cfg, design, max_t))
        mm_part = (f"{lb}\ntypedef edgellm::lowbit_mm_policy<edgellm::lowbit_traits<lowbit_cfg> > mm;")
    layer = cpp_struct("layer_cfg", "edgellm::layer_config_base",
                       layer_fields(cfg, numerics, design, max_t, max_ctx))
    head = cpp_struct("head_cfg", "edgellm::lm_head_config_base",
                      head_fields(cfg, head_beat_bytes(design, mm), top_k, head_ports, max_t,
                                  design.head_lanes, design))
    top = cpp_struct("top_cfg", "edgellm::top_config_base", top_fields(cfg, design))
    # this configuration's own (inline) namespace: the named structs' symbols then differ between projects,
    # so two projects' C simulations can share one process (template statics do not collide)
    tag = hashlib.sha256("\n".join([layer, mm_part, head, top]).encode()).hexdigest()[:12]
    lb_include = '\n#include "edgellm/lowbit_policy.h"' if mm == "lowbit" else ""
    return f"""// Generated by edgellm (compiler/codegen_hls.py) for {cfg.name}: do not edit.
// The accelerator's compile-time configuration: model shape, numerics plan, design parameters, one named
// struct per kernel configuration; the traits templates add the derived values.
#pragma once

// Activation buffers (element-wise rows, attention q/o rows and K/V tiles): design.act_buffer
#define EDGELLM_ACT_STORAGE {design.act_buffer}
// Weight FIFOs of the fetcher (top.h): {design.fetch_depth} words per port
#define EDGELLM_FETCH_STORAGE {cost_fetch.storage(board, design)}
#include "edgellm/named_config.h"{lb_include}

namespace edgellm_cfg {{
inline namespace c{tag} {{  // the structs' digest: symbols unlike any other project's C simulation

// The layer (decoder_layer.h layer_config_base)
{layer}
typedef edgellm::layer_traits<layer_cfg> layer;
// The linears' matmul engine: {mm}
{mm_part}
// LM head: {head_ports} port(s) x {head_beat_bytes(design, mm)} int8 MACs per cycle, one token, top-{top_k}
{head}
typedef edgellm::lm_head_traits<head_cfg> head;
// The top: layers, vocabulary, words per weight FIFO
{top}
typedef edgellm::top_traits<top_cfg> top;
// the m_axi arguments' beats (hw/include/edgellm/maxi.h): weight and K/V ports; data and act
typedef top::wbeat_t wbeat_t;
typedef top::dbeat_t dbeat_t;

const int kWeightPorts = {design.weight_ports};
const int kStreamPorts = {stream_ports if mm != "pack2" else 1};  // w0 .. w{{kStreamPorts-1}}: linear weights
const int kHeadPorts = {head_ports};  // w0 .. w{{kHeadPorts-1}}: LM-head rows (lm_head_config.h lm_block_row)
const unsigned long long kTotalBytes = {_lit(total_bytes)}ULL;  // DDR buffer (0: unknown at codegen)

}}  // inline namespace c{tag}
}}  // namespace edgellm_cfg
"""


def _ro_args(n: int, bufs: str | list[str]) -> str:
    """The read-only arguments w0.., kv0.. of a C-simulation call of the top on byte buffers (bufs: one
    expression for every port, or one per weight port), each as its port's type."""
    b = [bufs] * n if isinstance(bufs, str) else bufs
    return ", ".join([f"edgellm_port<edgellm_cfg::wbeat_t>({x})" for x in b] * 2)


def _ptr_args(n: int) -> list[str]:
    return ([f"const edgellm_cfg::wbeat_t *w{i}" for i in range(n)]
            + [f"const edgellm_cfg::wbeat_t *kv{i}" for i in range(n)]
            + ["edgellm_cfg::dbeat_t *data", "edgellm_cfg::dbeat_t *act"])


def top_source(design: DesignParams, total_bytes: int, stream_ports: int = 1,
               head_ports: int | None = None, axi: hls_tcl.AxiSettings | None = None) -> str:
    """top.cpp: the synthesized top with its INTERFACE pragmas; w0 .. w{max(stream_ports, head_ports)-1}
    go to the kernel's weight-port slots (w0 again for unused slots): the TLMM engine streams over the
    first stream_ports, the LM head over the first head_ports (default stream_ports)."""
    n = design.weight_ports
    head_ports = stream_ports if head_ports is None else head_ports
    for what, k in (("stream_ports", stream_ports), ("head_ports", head_ports)):
        if not 1 <= k <= min(n, MAX_STREAM_PORTS):
            raise EdgeLLMError(f"{what} {k} must be in 1..{min(n, MAX_STREAM_PORTS)}")
    used = max(stream_ports, head_ports)
    engine = ", ".join([f"w{i}" if i < used else "w0" for i in range(MAX_STREAM_PORTS)]
                       + [f"kv{i}" if i < head_ports else "kv0" for i in range(MAX_STREAM_PORTS)])
    axi = axi or hls_tcl.AxiSettings.for_design(design)

    def depth(elem_bytes: int) -> str:  # the buffer in the argument's elements (co-simulation's memory)
        return f" depth = {total_bytes // elem_bytes}" if total_bytes else ""

    wopt, dopt = axi.bundle_options(True), axi.bundle_options(False)
    wd = depth(axi.weight_width_bits // 8)
    pr = [f"#pragma HLS INTERFACE m_axi port = w{i} bundle = w{i} offset = slave{wd} {wopt}"
          for i in range(n)]
    pr += [f"#pragma HLS INTERFACE m_axi port = kv{i} bundle = w{i} offset = slave{wd} {wopt}"
           for i in range(n)]
    pr += [f"#pragma HLS INTERFACE m_axi port = {a} bundle = data offset = slave"
           f"{depth(design.data_port_width_bits // 8)} {dopt}"
           for a in ("data", "act")]
    pr += [f"#pragma HLS INTERFACE s_axilite port = {p} bundle = control"
           for p in ("hdr_off", "prog_off", "n_desc", "return")]
    checks = " ||\n      ".join(f"!edgellm::port_sees_header({w}{i}, hdr_off)"
                                 for w in ("w", "kv") for i in range(n))
    checks += " ||\n      !edgellm::port_sees_header(act, hdr_off)"
    return f"""// Generated by edgellm (compiler/codegen_hls.py): the HLS top. Do not edit.
// m_axi: w0 .. w{stream_ports - 1} stream the ternary weights (each its share of every tile, concurrently),
// w0 .. w{head_ports - 1} the LM head's rows (the fetchers, top.h fetch_program), kv0 .. kv{head_ports - 1}
// (bundled with w0 .. w{head_ports - 1}) the KV cache for decode attention, act (bundled with data) the
// layer scratch as the TLMM's linear jobs see it, data everything else; the
// host writes the same buffer address into every pointer register (hw/include/edgellm/interface.h).
#include "edgellm_top.h"

void {TOP}({", ".join(_ptr_args(n))}, uint32_t hdr_off,
                 uint32_t prog_off, uint32_t n_desc) {{
{chr(10).join(pr)}
  if ({checks}) {{
    edgellm::report_ports(data, hdr_off);  // the status protocol (interface.h): nothing runs
    return;
  }}
  edgellm::edgellm_top_impl<edgellm_cfg::top>({engine}, data, act, hdr_off, prog_off, n_desc);
}}
"""


def _check_inputs(cfg: ModelConfig, numerics: NumericsPlan, design: DesignParams, mm: str, *, max_t: int,
                  max_ctx: int, top_k: int) -> str:
    """The matmul policy generate_hls builds (a low-bit design's is 'lowbit', whatever mm says), after one
    EdgeLLMError for anything the generated engine cannot stream: an unknown policy, top_k, G, max_t, a
    row that is not whole data-port beats (or, low-bit, 16-element blocks), norm lanes, the head's beat."""
    if design.matmul == "lowbit":  # a low-bit design's linears run on the low-bit engine, whatever mm says
        mm = "lowbit"
    elif mm == "lowbit":
        raise EdgeLLMError("matmul policy 'lowbit' needs a low-bit design (design.matmul 'lowbit')")
    if mm not in MM_POLICIES:
        raise EdgeLLMError(f"unknown matmul policy {mm!r}; expected one of {', '.join(MM_POLICIES)}")
    if not 1 <= top_k <= K_TOP_MAX:
        raise EdgeLLMError(f"top_k {top_k} must be in 1..{K_TOP_MAX} (lm_head.h K_TOP)")
    if mm == "tlmm" and design.group_size > 4:
        raise EdgeLLMError(f"design group_size {design.group_size}: the TLMM engine supports G = 1..4")
    if not 1 <= max_t <= max_ctx:
        raise EdgeLLMError(f"max_t {max_t} must be in 1..max_ctx ({max_ctx})")
    fl, kvl = design.data_port_width_bits // 32, design.data_port_width_bits // (8 * numerics.kv_elem_bytes)
    for what, n, per in (("hidden size", cfg.hidden_size, fl), ("q size", cfg.q_size, fl),
                         ("FFN size", cfg.ffn_size, fl), ("head_dim", cfg.head_dim, fl),
                         ("K/V row (n_kv_heads x head_dim)", cfg.kv_size, kvl)):
        if per and n % per:
            raise EdgeLLMError(f"{what} {n} must be a multiple of {per}: the generated engine streams these "
                               f"rows in whole {design.data_port_width_bits}-bit data-port beats")
    if mm == "lowbit":
        bad = [f"{n} {v}" for n, v in (("hidden size", cfg.hidden_size), ("q size", cfg.q_size),
                                       ("K/V row", cfg.kv_size), ("FFN size", cfg.ffn_size)) if v % 16]
        if bad:
            raise EdgeLLMError(f"{bad[0]} must be a multiple of 16: the low-bit engine reads 16 int8 "
                               "activations per iteration and every row starts on a 16-element boundary")
    if numerics.norm_lanes % fl:
        raise EdgeLLMError(f"RMSNorm lanes {numerics.norm_lanes} must be a multiple of {fl}: the "
                           "element-wise engine's sum of squares takes one data-port beat of floats per "
                           "iteration into its lanes")
    beat = head_beat_bytes(design, mm)
    if cfg.hidden_size % beat:
        raise EdgeLLMError(f"hidden size {cfg.hidden_size} must be a multiple of the weight ports' beat "
                           f"({beat} bytes: design rows R), whose whole beats stream the LM head's rows")
    return mm


def _copy_headers(hls_dir: Path) -> Path:
    """hw/include/edgellm's headers into hls_dir/edgellm (their includes made sibling-relative, so the
    project's own copies win whatever the include path) and the generated hw_facts.h; that folder."""
    inc = hls_dir / "edgellm"
    inc.mkdir(parents=True, exist_ok=True)
    for h in sorted((INCLUDE_DIR / "edgellm").glob("*.h")):
        # siblings by relative name, so the project's own copies win whatever the include path
        text = re.sub(r'#include "edgellm/([\w.]+)"', r'#include "\1"', h.read_text())
        (inc / h.name).write_text(text)
    (inc / "hw_facts.h").write_text(layout.c_header())  # the constants from their one source
    return inc


def generate_hls(hls_dir: Path, cfg: ModelConfig, numerics: NumericsPlan, design: DesignParams,
                 mm: str = "tlmm", *, max_t: int, max_ctx: int, top_k: int, board: Any = None,
                 part: str | None = None, total_bytes: int = 0) -> dict[str, Any]:
    """Write hls_dir (headers, edgellm_config.h, edgellm_top.h, top.cpp, csim_entry.cpp, tb_top.cpp,
    run_hls.tcl); return {registers, control, bundles, weight_stream_ports, head_ports, top, tlmm, files}.
    The FPGA part comes from board.part (or part); the clock from design.clock_mhz; the ports the TLMM
    engine and the LM head stream over from design.stream_ports(board, design) (the pack2 policy reads
    its ternary weights through w0 only)."""
    mm = _check_inputs(cfg, numerics, design, mm, max_t=max_t, max_ctx=max_ctx, top_k=top_k)
    part = part or (board.part if board is not None else None)
    if not part:
        raise EdgeLLMError("generate_hls needs the FPGA part: pass board= or part=")
    hls_dir = Path(hls_dir)
    inc = _copy_headers(hls_dir)
    head_ports = stream_ports(board, design)
    ports = {"tlmm": head_ports, "lowbit": design.lowbit_ports}.get(mm, 1)  # the linears' weight ports
    axi = hls_tcl.AxiSettings.for_design(design, mm)
    from edgellm.compiler import codegen_csim  # imports this module's helpers

    files = {
        "edgellm_config.h": config_header(cfg, numerics, design, mm, max_t, max_ctx, top_k, total_bytes,
                                          ports, head_ports, board),
        "edgellm_top.h": codegen_csim.prototype_header(design),
        "top.cpp": top_source(design, total_bytes, ports, head_ports, axi),
        "csim_entry.cpp": codegen_csim.csim_entry_source(cfg, max_t, max_ctx, top_k, design.weight_ports),
        "tb_top.cpp": (TB_DIR / "top_tb.cpp").read_text(),
        "tb_port_model.h": (TB_DIR / "port_model.h").read_text(),
        "run_hls.tcl": hls_tcl.generate_hls_tcl(part, design.clock_mhz, TOP,
                                               header=f"{cfg.name}, part {part}, {design.clock_mhz:g} MHz",
                                               axi=axi),
    }
    for name, text in files.items():
        (hls_dir / name).write_text(text)
    return {"top": TOP, "registers": register_map(design.weight_ports), "control": dict(CTRL_REGISTERS),
            "register_note": "predicted (Vitis HLS convention); the real map is in xedgellm_top_hw.h / .hwh",
            "bundles": [f"w{i}" for i in range(design.weight_ports)] + ["data"],
            "weight_stream_ports": [f"w{i}" for i in range(ports)],
            "head_ports": [f"w{i}" for i in range(head_ports)],
            "tlmm": ({"G": design.group_size, "T": tlmm_tables(design), "R": design.rows}
                     if mm == "tlmm" else None),
            "lowbit": ({n: v for n, v, _ in lowbit_fields(cfg, design, max_t)} if mm == "lowbit" else None),
            "mm": mm, "files": sorted(files) + [f"edgellm/{h.name}" for h in sorted(inc.glob("*.h"))]}


def write_reference_inputs(ref_dir: Path, embeds: np.ndarray, logits: np.ndarray, prompt_ids: list[int],
                           decode_ids: list[int]) -> None:
    """reference/ for the testbench: embeds.f32 (prefill + decode-input rows, (N, hidden) raw LE f32),
    logits.f32 (S = decode_steps + 1 rows, (S, vocab)), ref.json (ids, argmax per row, lengths)."""
    ref_dir = Path(ref_dir)
    embeds, logits = np.asarray(embeds, np.float32), np.asarray(logits, np.float32)
    p, d = len(prompt_ids), len(decode_ids)
    if embeds.ndim != 2 or embeds.shape[0] != p + d:
        raise EdgeLLMError(f"reference embeds {embeds.shape}: expected ({p + d}, hidden)")
    if logits.ndim != 2 or logits.shape[0] != d + 1:
        raise EdgeLLMError(f"reference logits {logits.shape}: expected ({d + 1}, vocab)")
    ref_dir.mkdir(parents=True, exist_ok=True)
    embeds.astype("<f4").tofile(ref_dir / "embeds.f32")
    logits.astype("<f4").tofile(ref_dir / "logits.f32")
    (ref_dir / "ref.json").write_text(json.dumps({
        "prompt_ids": [int(x) for x in prompt_ids], "decode_ids": [int(x) for x in decode_ids],
        "argmax": [int(x) for x in np.argmax(logits, axis=1)], "prefill_len": p, "decode_steps": d,
        "hidden": int(embeds.shape[1]), "vocab": int(logits.shape[1])}, indent=1))
