"""edgellm.compiler.cost: the performance and resource models (cycles, DDR bytes, LUT/FF/DSP/BRAM/URAM).

One module per kernel family (tlmm, attention, elementwise, fetch) plus the DDR bandwidth model (ddr),
the whole-call projection (model), the resource pricing (resource_model) over the memory-block
arithmetic (memory), and the published designs it is checked against (calibration).
"""
