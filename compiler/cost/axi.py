"""The AXI side of the design: m_axi adapters (with their burst buffers), one SmartConnect per port, the
s_axilite control adapter and, with the prefill pipeline, the data bundle's arbitration. Resources.
"""

from __future__ import annotations

from edgellm.compiler.cost.memory import Resources, bram36_for
from edgellm.compiler.design import DesignParams

# The design fields resources() reads (tests/test_cost_fields.py; the DSE keys its caches by them).
RESOURCE_FIELDS = ("weight_ports", "port_width_bits", "data_port_width_bits", "prefill_pipeline")
MAXI_LUT = (1000, 4)  # HLS m_axi adapter: base + per data bit (burst/outstanding logic), estimate
MAXI_FF = (1500, 6)
# One 1x1 SmartConnect per port, estimate. Checked against a measured one: bitnet-kv260's post-route
# KV260 report (github MerlijnW70/bitnet-kv260, hardware/reports/ffn-utilization-hier.txt, Vivado 2026.1)
# has four 2x1 SmartConnects from an AXI DMA to an HP port at 128 bits, 2,125-2,135 LUT (564 as LUTRAM)
# and 4,077 FF each, of which the second slave's entry pipeline and nodes are 615 LUT / 1,068 FF: a 1x1
# about 1,515 LUT / 3,009 FF (the estimate is 1% low on LUTs, 17% low on FFs; kept).
SMARTCONNECT = (1500, 2500)
AXILITE = (400, 500)  # s_axilite control adapter
# Prefill pipeline (decoder_layer.h layer_slot_run): the data bundle's adapter arbitrating two arguments
# (data: the vector job; act: the linear job) and the slot DATAFLOW regions' start/done handshakes.
# Assumption (LUT, FF).
SLOT_PIPELINE = (500, 700)


def resources(p: DesignParams) -> Resources:
    """m_axi adapters (with burst buffers) + one SmartConnect per port, s_axilite control; with the
    prefill pipeline, the data adapter's arbitration between its two arguments and the slot regions'
    handshakes (SLOT_PIPELINE)."""
    total = Resources(lut=AXILITE[0], ff=AXILITE[1])
    if p.prefill_pipeline:
        total += Resources(lut=SLOT_PIPELINE[0], ff=SLOT_PIPELINE[1])
    for width in [p.port_width_bits] * p.weight_ports + [p.data_port_width_bits]:
        total += Resources(lut=MAXI_LUT[0] + MAXI_LUT[1] * width + SMARTCONNECT[0],
                           ff=MAXI_FF[0] + MAXI_FF[1] * width + SMARTCONNECT[1],
                           bram36=bram36_for(width, 256))  # 16 outstanding x 16-beat bursts
    return total
