"""Vitis HLS Tcl for a project's hls/ folder (run_hls.tcl).

The script runs from anywhere (paths are relative to the script), creates the Vitis HLS project
hls/edgellm_hls, sets the m_axi defaults (`config_interface`, from `AxiSettings`), runs the steps
named in $EDGELLM_HLS_STEPS (default "csim csynth export"; add "cosim" for RTL co-simulation, which
runs the testbench for one decode step and takes hours for a large model) and exports the IP catalog
entry that compiler/vivado_tcl.py expects at hls/ip (vendor xilinx.com, library hls, name = the top
function, version 1.0). A failing step stops the script with "edgellm: ERROR: <step> failed: ..." and
exit code 1.

`AxiSettings` is the one place the m_axi settings come from: run_hls.tcl's config_interface defaults and
every INTERFACE m_axi pragma of top.cpp (compiler/codegen_hls.py: widen limit = the bundle's beat, burst
lengths, outstanding transactions, latency; tests keep the two equal). Option names: UG1399
config_interface and pragma HLS interface (2024.1/2024.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.compiler.design import DesignParams

DEFAULT_STEPS = ("csim", "csynth", "export")
ALL_STEPS = ("csim", "csynth", "cosim", "export")
HLS_PROJECT = "edgellm_hls"
SOLUTION = "solution1"
# -ffp-contract=off: no FMA contraction, so C simulation equals the golden model bit for bit.
CFLAGS = "-std=c++14 -ffp-contract=off -fno-fast-math"
TB_CFLAGS = CFLAGS + " -Wno-unknown-pragmas"
# RTL co-simulation: no waveform dump; deadlock detection stays on (Vitis's default: no
# -disable_deadlock_detection); $EDGELLM_COSIM_PROFILE=1 adds dataflow channel profiling.
COSIM_OPTIONS = "-rtl verilog -trace_level none"
COSIM_PROFILE_OPTION = "-enable_dataflow_profiling"
AXI_BURST_MAX = 256  # AXI4 INCR bursts: at most 256 beats


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class AxiSettings:
    """m_axi settings of the HLS top (every bundle; the weight bundles w* carry kv* too, data carries act).

    Widths are the widen limits (max_widen_bitwidth) of the weight and the data bundles. Bursts are in
    beats of the widened port: 64 beats x 16 B = 1 KB per burst at 128 bits, and 4 outstanding bursts
    keep 256 beats in flight (a read buffer of 4 KB per port, the same as Vitis's 16 x 16 default), far
    more than the HP ports' round trip of a few tens of cycles. `alignment_bytes` promises the m_axi
    base addresses are aligned to one beat of the widest port: the host's buffer is page-aligned
    (pynq.allocate) and every region of the memory plan starts on a 64-byte boundary.
    """

    weight_width_bits: int = 128
    data_width_bits: int = 128
    max_read_burst: int = 64
    max_write_burst: int = 64
    read_outstanding: int = 4
    write_outstanding: int = 4
    latency: int = 64  # expected m_axi read latency in cycles (scheduling hint; Vitis's default)
    addr64: bool = True  # 64-bit pointers: codegen_hls.register_map gives each pointer 3 words

    def __post_init__(self) -> None:
        for name in ("weight_width_bits", "data_width_bits"):
            w = getattr(self, name)
            if not (_pow2(w) and 8 <= w <= 1024):
                raise EdgeLLMError(f"m_axi {name} must be a power of two in 8..1024 (UG1399), got {w}")
        for name in ("max_read_burst", "max_write_burst"):
            b = getattr(self, name)
            if not 1 <= b <= AXI_BURST_MAX:
                raise EdgeLLMError(f"m_axi {name} must be in 1..{AXI_BURST_MAX} beats, got {b}")
        for name in ("read_outstanding", "write_outstanding", "latency"):
            if getattr(self, name) < 1:
                raise EdgeLLMError(f"m_axi {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def for_design(cls, design: DesignParams, mm: str = "tlmm") -> AxiSettings:
        """The settings for a DesignParams: the weight bundles' beat (the weight and K/V ports' element,
        ap_uint<8R>: one TLMM tile column; the port width for the pack2 policy) and the data port's."""
        weight = 8 * int(design.rows) if mm == "tlmm" else int(design.port_width_bits)
        return cls(weight_width_bits=weight, data_width_bits=int(design.data_port_width_bits))

    def bundle_options(self, weight: bool) -> str:
        """The INTERFACE m_axi options of a weight bundle (weight = True) or of the data bundle: the widen
        limit (the beat's width) and the burst settings, the same numbers as config_interface."""
        width = self.weight_width_bits if weight else self.data_width_bits
        return (f"max_widen_bitwidth = {width} max_read_burst_length = {self.max_read_burst} "
                f"max_write_burst_length = {self.max_write_burst} "
                f"num_read_outstanding = {self.read_outstanding} "
                f"num_write_outstanding = {self.write_outstanding} latency = {self.latency}")

    @property
    def alignment_bytes(self) -> int:
        return max(self.weight_width_bits, self.data_width_bits) // 8

    def config_interface(self) -> list[str]:
        """run_hls.tcl's config_interface lines (global m_axi defaults; Vivado IP flow)."""
        return [
            f"config_interface -m_axi_addr64={'true' if self.addr64 else 'false'}",
            f"config_interface -m_axi_alignment_byte_size {self.alignment_bytes}",
            f"config_interface -m_axi_max_widen_bitwidth {max(self.weight_width_bits, self.data_width_bits)}",
            f"config_interface -m_axi_max_read_burst_length {self.max_read_burst}",
            f"config_interface -m_axi_max_write_burst_length {self.max_write_burst}",
            f"config_interface -m_axi_num_read_outstanding {self.read_outstanding}",
            f"config_interface -m_axi_num_write_outstanding {self.write_outstanding}",
            f"config_interface -m_axi_latency {self.latency}",
        ]


STEP_PROC = r"""# Run one step; on a Tcl error say which step failed and stop with exit code 1.
proc edgellm_step {name body} {
  puts "edgellm: === $name ==="
  if {[catch {uplevel 1 $body} msg]} {
    puts "edgellm: ERROR: $name failed: $msg"
    puts "edgellm: the messages above say why; reports are in [file join $::here $::hls_project]"
    exit 1
  }
}"""


def _step_lines(top: str, ip_version: str) -> list[str]:
    """The csim / csynth / cosim / export steps, each through edgellm_step."""
    return [
        "if {[lsearch -exact $steps csim] >= 0} {",
        "  # the testbench: 16-token prefill + 16 decode steps vs reference/, bit for bit",
        "  edgellm_step csim { csim_design -argv $project_root }",
        "}",
        "if {[lsearch -exact $steps csynth] >= 0 || [lsearch -exact $steps cosim] >= 0 "
        "|| [lsearch -exact $steps export] >= 0} {",
        "  edgellm_step csynth { csynth_design }",
        "}",
        "if {[lsearch -exact $steps cosim] >= 0} {",
        f'  set cosim_opts "{COSIM_OPTIONS}"',
        "  if {[info exists ::env(EDGELLM_COSIM_PROFILE)] && $::env(EDGELLM_COSIM_PROFILE) eq \"1\"} {",
        f"    append cosim_opts \" {COSIM_PROFILE_OPTION}\"",
        "  }",
        '  edgellm_step cosim { cosim_design -argv "$project_root --decode-steps 1" {*}$cosim_opts }',
        "}",
        "if {[lsearch -exact $steps export] >= 0} {",
        f"  edgellm_step export {{ export_design -format ip_catalog -ipname {top} -vendor xilinx.com "
        f"-library hls -version {ip_version} }}",
        "  # the unpacked IP (component.xml) where vivado/build.tcl looks for it: ../hls/ip",
        f"  set ip_src [file join $here {HLS_PROJECT} {SOLUTION} impl ip]",
        "  if {![file exists [file join $ip_src component.xml]]} {",
        '    puts "edgellm: ERROR: export failed: export_design produced no $ip_src/component.xml"',
        "    exit 1",
        "  }",
        "  file delete -force [file join $here ip]",
        "  file copy -force $ip_src [file join $here ip]",
        "}",
    ]


def generate_hls_tcl(part: str, clock_mhz: float, top: str = "edgellm_top", ip_version: str = "1.0",
                     header: str = "", axi: AxiSettings | None = None) -> str:
    """The Vitis HLS script for part at clock_mhz (top function `top`, m_axi settings `axi`)."""
    if not top.isidentifier():
        raise EdgeLLMError(f"HLS top name {top!r} must be a C identifier")
    if clock_mhz <= 0:
        raise EdgeLLMError(f"HLS clock must be positive, got {clock_mhz} MHz")
    axi = axi or AxiSettings()
    period = f"{1000.0 / clock_mhz:.4g}"
    lines = [
        f"# Generated by edgellm{': ' + header if header else ''}.",
        "# Run: vitis_hls -f run_hls.tcl    (Vitis 2024.2+: vitis-run --mode hls --tcl run_hls.tcl)",
        f"# Steps: $EDGELLM_HLS_STEPS, any of {{{' '.join(ALL_STEPS)}}}; "
        f"default {{{' '.join(DEFAULT_STEPS)}}}. $EDGELLM_COSIM_PROFILE=1: cosim with dataflow profiling.",
        "set here [file dirname [file normalize [info script]]]",
        "set project_root [file normalize [file join $here ..]]",
        f"set hls_project {HLS_PROJECT}",
        f"set steps {{{' '.join(DEFAULT_STEPS)}}}",
        "if {[info exists ::env(EDGELLM_HLS_STEPS)]} { set steps $::env(EDGELLM_HLS_STEPS) }",
        "foreach s $steps {",
        f"  if {{$s ni {{{' '.join(ALL_STEPS)}}}}} {{",
        f'    puts "edgellm: ERROR: unknown step \'$s\' in EDGELLM_HLS_STEPS (steps: {" ".join(ALL_STEPS)})"',
        "    exit 2", "  }", "}",
        STEP_PROC,
        f'set cflags "{CFLAGS} -I$here"',
        f'set tb_cflags "{TB_CFLAGS} -I$here"',
        f"open_project -reset [file join $here {HLS_PROJECT}]",
        f"set_top {top}",
        "add_files [file join $here top.cpp] -cflags $cflags",
        "foreach h [concat [glob -nocomplain [file join $here *.h]] "
        "[glob -nocomplain [file join $here edgellm *.h]]] {",
        "  add_files $h -cflags $cflags",
        "}",
        "add_files -tb [file join $here tb_top.cpp] -cflags $tb_cflags",
        f"open_solution -reset {SOLUTION} -flow_target vivado",
        f"set_part {{{part}}}",
        f"create_clock -period {period} -name default",
        "# m_axi defaults (compiler/hls_tcl.py AxiSettings; the INTERFACE pragmas in top.cpp agree)",
        *axi.config_interface(),
        *_step_lines(top, ip_version),
        "exit",
        "",
    ]
    return "\n".join(lines)
