"""The calibration kit (`edgellm calibrate`): a small project whose IP (hw/include/edgellm/ddr_probe.h)
reads and writes DDR through the accelerator's ports, bundles, widths and burst settings and counts
cycles per port (codegen.py: its HLS glue; kit.py: the project), and the reading of the calibration file
the kit's runtime (runtime/calibrate.py) writes, for `estimate --measured` and `compile --measured`
(measured.py). docs/performance.md "Measuring your board".
"""
