"""The emulation bitstream: a .bit file in Xilinx's format (the header fields pynq parses, then the
configuration data) whose data names the project it stands for (manifest and .hwh sha256). It
configures no FPGA: PynqDevice refuses it unless the board says it is emulated, and the emulated
board accepts only the one made for the project it runs (or the project's real, built .bit)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.pynq_device import EMULATION_DESIGN

MAGIC_FIELD = bytes.fromhex("0ff00ff00ff00ff000")  # the 9-byte first field of every .bit
PAYLOAD_TAG = b"EDGELLM-EMULATION-BITSTREAM\n"


def _field(key: bytes, text: str) -> bytes:
    data = text.encode("ascii") + b"\x00"
    return key + len(data).to_bytes(2, "big") + data


def make_bit(manifest_sha: str, hwh_sha: str, part: str, ip_name: str) -> bytes:
    """An emulation .bit for a project (its manifest.json and <ip>.hwh sha256)."""
    body = PAYLOAD_TAG + json.dumps({"ip": ip_name, "manifest_sha256": manifest_sha, "hwh_sha256": hwh_sha},
                                    sort_keys=True).encode()
    body += b" " * (-len(body) % 4)
    head = (len(MAGIC_FIELD).to_bytes(2, "big") + MAGIC_FIELD + b"\x00\x01"
            + _field(b"a", f"{EMULATION_DESIGN};UserID=0XFFFFFFFF;Version=edgellm")
            + _field(b"b", part.split("-")[0] + (part.split("-")[1] if "-" in part else ""))
            + _field(b"c", "1970/01/01") + _field(b"d", "00:00:00"))
    return head + b"e" + len(body).to_bytes(4, "big") + body


def bit_to_bin(bit: bytes) -> bytes:
    """The .bin fpga_manager takes (what pynq sends): the .bit's data field, 32-bit words byte-swapped."""
    try:
        i = 2 + int.from_bytes(bit[0:2], "big") + 2
        while bit[i:i + 1] != b"e":
            i += 3 + int.from_bytes(bit[i + 1:i + 3], "big")
        n = int.from_bytes(bit[i + 1:i + 5], "big")
        data = bit[i + 5:i + 5 + n]
    except (IndexError, ValueError):
        raise EdgeLLMError("not a .bit file (no data field in its header)") from None
    if len(data) != n or n % 4:
        raise EdgeLLMError(f"not a .bit file (data field of {len(data)} bytes, header says {n})")
    return np.frombuffer(data, ">u4").astype("<u4").tobytes()


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
