"""Resource model: LUT, FF, DSP, BRAM36 and URAM of an accelerator configuration, per kernel.

Each kernel prices itself beside its cycles (cost_tlmm, cost_elementwise, cost_attention, cost_lm_head,
cost_fetch, cost_axi: FINN's cycles-and-resources-per-op layout) with the fp32 operator costs of
compiler/cost/ops.py and the memory-block arithmetic of compiler/cost/memory.py (one bank per parallel
reader); the TeLLMe-style serial description (overlap False) prices itself in compiler/cost/serial.py.
This module adds them up with the fixed platform terms. Unit costs are engineering estimates with
their derivation beside each constant; the fixed platform terms are fitted (marked so) so that
TeLLMe's released configuration, as the serial description prices it, reproduces its published totals
(see calibration.tellme_calibration): they are not evidence.
"""

from __future__ import annotations

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import axi as cost_axi
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import serial as cost_serial
from edgellm.compiler.cost import tlmm as cost_tlmm
from edgellm.compiler.cost.memory import Resources, total_of
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig

# --- fixed platform terms [fitted, not predicted]: what is left of TeLLMe's published totals (98,303 LUT,
# 136,721 FF, 98.5 BRAM36) after subtracting every other term above for its configuration as the serial
# (overlap=False) description prices it (calibration.tellme_params, fitted when that description was
# written). They stand for whatever that description leaves out of TeLLMe (control FSMs, address
# generators, dataflow handshakes, stream FIFOs) and are reused unchanged for the generated engine,
# whose fixed logic was never measured: an assumption, and TeLLMe's LUT/FF/BRAM rows in the calibration
# table are fitted figures, not evidence (docs/performance.md "Calibration").
FIXED_LUT = 14250
FIXED_FF = 29250
FIFO_BRAM36 = 26
PLATFORM = Resources(lut=FIXED_LUT, ff=FIXED_FF, bram36=FIFO_BRAM36)

# The design fields each entry of estimate_resources reads, under either engine (the kernels' own
# RESOURCE_FIELDS and the serial description's; tests/test_cost_fields.py records every read, and the
# DSE keys its caches by these).
_ENGINE_FIELDS = {"tlmm": cost_tlmm.RESOURCE_FIELDS, "elementwise": cost_elementwise.RESOURCE_FIELDS,
                  "attention": cost_attention.RESOURCE_FIELDS, "lm_head": cost_lm_head.RESOURCE_FIELDS,
                  "fetch": cost_fetch.RESOURCE_FIELDS, "axi": cost_axi.RESOURCE_FIELDS}
ENTRY_FIELDS: dict[str, tuple[str, ...]] = {
    k: tuple(dict.fromkeys(("overlap", *v, *cost_serial.RESOURCE_FIELDS[k])))
    for k, v in _ENGINE_FIELDS.items()}
# fetch_fifos(): the weight FIFOs alone (the fetch depth may come as an argument)
FIFO_FIELDS = ("overlap", *cost_fetch.FIFO_FIELDS)


def engine_resources(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, Resources]:
    """The generated engine's kernels (overlap True), in estimate_resources' order."""
    return {"tlmm": cost_tlmm.resources(cfg, board, p), "elementwise": cost_elementwise.resources(cfg, p),
            "attention": cost_attention.resources(cfg, p), "lm_head": cost_lm_head.resources(cfg, board, p),
            "fetch": cost_fetch.resources(board, p), "axi": cost_axi.resources(p)}


def kernels(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, Resources]:
    """Resources per kernel of either engine (the serial description's for overlap False)."""
    return (engine_resources if p.overlap else cost_serial.resources)(cfg, board, p)


def vector_kernels(cfg: ModelConfig, p: DesignParams) -> tuple[Resources, Resources]:
    """(element-wise engine, attention core) of either engine: what ENTRY_FIELDS' 'elementwise' and
    'attention' read."""
    if p.overlap:
        return cost_elementwise.resources(cfg, p), cost_attention.resources(cfg, p)
    return cost_serial.elementwise(cfg, p), cost_serial.attention(cfg, p)


def fetch_fifos(board: Board, p: DesignParams, depth: int | None = None) -> Resources:
    """The weight fetcher's FIFOs at fetch_depth (or `depth`) words: cost_fetch.fifo_resources; none in the
    serial description."""
    return cost_fetch.fifo_resources(board, p, depth) if p.overlap else Resources()


def estimate_resources(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, Resources]:
    """Resources per kernel and the fixed platform terms; the 'total' entry sums them (rounded up to
    whole blocks)."""
    parts = {**kernels(cfg, board, p), "platform": PLATFORM}
    parts["total"] = total_of(parts.values())
    return parts
