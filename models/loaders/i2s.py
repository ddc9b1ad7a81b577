"""bitnet.cpp's I2_S tensors (GGML type 36), which gguf-py does not know.

Layout (docs/weight_format.md, from microsoft/BitNet src/ggml-bitnet-mad.cpp quantize_i2_s, x86 /
ACT_PARALLEL build, and the ggml fork's ggml_nbytes): the tensor's n elements (row-major, n a
multiple of 128) are n/4 bytes of 2-bit codes followed by 32 bytes whose first 4 hold one float32
scale for the whole tensor. Block b (32 bytes) holds elements 128b .. 128b+127: byte 32b+p holds
element 128b + 32g + p in bits 7-6 (g=0), 5-4 (g=1), 3-2 (g=2), 1-0 (g=3). Codes 0, 1, 2 are the
weights -1, 0, +1 (weight = (code - 1) * scale); bitnet.cpp's quantizer never writes 3.

GGUFReader refuses a file with an unknown tensor type, so `reader(path)` is GGUFReader with
_build_tensors extended: I2_S tensor infos become I2STensor records over the file's bytes, with their
size checked against the file and the other tensors; everything else is gguf-py's.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any, NamedTuple

import numpy as np

I2S_TYPE = 36
I2S_BLOCK = 128  # elements per 32-byte block
I2S_TAIL = 32  # bytes after the codes; the scale is the first 4


class I2SType(NamedTuple):
    """Stands in for gguf's GGMLQuantizationType member."""

    name: str = "I2_S"
    value: int = I2S_TYPE


class I2STensor(NamedTuple):
    """An I2_S tensor as the loader reads it (the fields of gguf's ReaderTensor it uses)."""

    name: str
    tensor_type: I2SType
    shape: np.ndarray  # GGUF dims, innermost first
    n_elements: int
    n_bytes: int
    data_offset: int
    data: np.ndarray  # uint8, n_elements / 4 + 32 bytes


def i2s_nbytes(n_elements: int) -> int:
    """Bytes of an I2_S tensor of n elements (ggml_nbytes in bitnet.cpp's ggml)."""
    return n_elements // 4 + I2S_TAIL


def i2s_decode(data: np.ndarray, out: int, k: int) -> tuple[np.ndarray, np.float32]:
    """I2_S bytes of an (out, k) tensor -> codes uint8 (out, k) in 0..3 and the float32 scale."""
    n = out * k
    blocks = np.asarray(data[: n // 4], np.uint8).reshape(n // I2S_BLOCK, 1, 32)
    codes = (blocks >> np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)) & np.uint8(3)
    scale = np.frombuffer(np.asarray(data[n // 4: n // 4 + 4], np.uint8).tobytes(), "<f4")[0]
    return codes.reshape(out, k), np.float32(scale)


def reader(path: str | os.PathLike) -> Any:
    """A gguf.GGUFReader for path that also reads I2_S tensors (ValueError on a bad one)."""
    from gguf import GGUFReader

    class I2SReader(GGUFReader):
        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            i2s = [f for f in fields if int(f.parts[4][0]) == I2S_TYPE]
            own = [_i2s_tensor(self.data, start_offs, f) for f in i2s]  # checked first: clearer errors
            super()._build_tensors(start_offs, [f for f in fields if int(f.parts[4][0]) != I2S_TYPE])
            names = [t.name for t in self.tensors] + [t.name for t in own]
            if len(set(names)) != len(names):
                raise ValueError("duplicated tensor names")
            _check_overlaps(own, [*self.tensors, *own])
            self.tensors = [*self.tensors, *own]

    return I2SReader(path)


def _i2s_tensor(data: np.ndarray, start: int, field: Any) -> I2STensor:
    _, name_data, _, dims, _, offset = field.parts
    name = str(bytes(name_data), encoding="utf-8")
    n = 1
    for d in dims.tolist():
        n *= int(d)
    if n <= 0 or n % I2S_BLOCK:
        raise ValueError(f"tensor {name}: I2_S needs a positive multiple of {I2S_BLOCK} elements, got "
                         f"{[int(d) for d in dims]}")
    nbytes, off = i2s_nbytes(n), start + int(offset[0])
    if off + nbytes > len(data):
        raise ValueError(f"tensor {name}: truncated I2_S data: it needs {nbytes} bytes at offset {off}, "
                         f"the file ends at {len(data)}")
    return I2STensor(name, I2SType(), dims, n, nbytes, off, data[off:off + nbytes])


def _check_overlaps(own: list[I2STensor], every: list[Any]) -> None:
    """No other tensor's data starts inside an I2_S tensor's bytes."""
    starts = sorted(int(t.data_offset) for t in every)
    for t in own:
        inside = starts[bisect_left(starts, t.data_offset):bisect_left(starts, t.data_offset + t.n_bytes)]
        if len(inside) > 1:
            raise ValueError(f"tensor {t.name}: I2_S data ({t.n_bytes} bytes at offset {t.data_offset}) "
                             f"overlaps another tensor's data (at offset {inside[1]})")
