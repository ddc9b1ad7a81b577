"""edgellm: compile, run and verify ternary LLMs on PYNQ FPGA boards."""

__version__ = "0.1.0"
