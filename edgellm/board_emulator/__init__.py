"""An emulated PYNQ board: pynq's PYNQ.remote gRPC services on localhost, backed by the project's C
simulation (runtime/emulator.py), so the unmodified pynq package drives edgellm's accelerator as it
would drive a board. Host side only (grpcio); the board's own runtime never imports this package.

bitstream.py: the emulation bitstream (a .bit whose payload names the project); board.py: the board
(PS registers, DDR buffers, the IP's register window, files, downloads, faults for tests);
services.py: the RemoteDevice, Mmio and RemoteBuffer servicers; server.py: start, stop, signals.
"""
