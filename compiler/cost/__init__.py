"""edgellm.compiler.cost: the performance and resource models (cycles, DDR bytes, LUT/FF/DSP/BRAM/URAM).

One module per kernel with its cycles and its resources side by side (tlmm, elementwise, attention,
lm_head, fetch, axi; fp32 operator costs in ops, memory-block arithmetic in memory), the DDR bandwidth
model (ddr), the whole-call projection (model), the resource total (resource_model), the TeLLMe-style
serial description kept apart from the model of what edgellm builds (serial), and the published designs
the models are checked against (calibration). Every model declares the design fields it reads
(RESOURCE_FIELDS, PERF_FIELDS; tests/test_cost_fields.py), and the DSE keys its caches by them.
"""
