"""Minimal streaming safetensors reader and writer (numpy only, bf16 kept as uint16 bit patterns).

The `safetensors` package's numpy front end cannot represent bfloat16, and memory-mapping a 1.2 GB
checkpoint would count its pages in the resident set, so tensors are read with `readinto` straight
into their destination arrays. Every malformed or truncated file raises CheckpointError naming it.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.runtime import jsonfile

# safetensors dtype tag -> numpy storage dtype (BF16 as its uint16 bit pattern)
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "U16": np.dtype("<u2"), "U32": np.dtype("<u4"), "BOOL": np.dtype("?"),
}
FLOAT_TAGS = ("F32", "F16", "BF16", "F64")
_MAX_HEADER = 100 << 20
MAX_NDIM, MAX_DIM = 8, 1 << 40  # bounds of a tensor's shape


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file."""

    name: str
    dtype: str  # safetensors tag, e.g. "BF16"
    shape: tuple[int, ...]
    begin: int  # absolute file offset
    nbytes: int


class SafetensorsFile:
    """Header of one .safetensors file; tensors are read on demand."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise CheckpointError(f"{self.path}: truncated safetensors file (no header)")
                (n,) = struct.unpack("<Q", head)
                if n > min(size - 8, _MAX_HEADER):
                    raise CheckpointError(f"{self.path}: truncated or corrupt safetensors header "
                                          f"({n} header bytes, file has {size})")
                header = jsonfile.loads(f.read(n))
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read: {e.strerror}") from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{self.path}: corrupt safetensors header: {e}") from e
        if not isinstance(header, dict):
            raise CheckpointError(f"{self.path}: corrupt safetensors header (not an object)")
        self.metadata = header.pop("__metadata__", None) or {}
        base, data_size = 8 + n, size - 8 - n
        self.tensors: dict[str, TensorInfo] = {}
        for name, d in header.items():
            tag, shape, (b, e) = self._entry(name, d)
            want = math.prod(shape) * DTYPES[tag].itemsize
            if e - b != want or b < 0:
                raise CheckpointError(f"{self.path}: tensor {name}: {e - b} data bytes for shape "
                                      f"{list(shape)} {tag} (expected {want})")
            if e > data_size:
                raise CheckpointError(f"{self.path}: truncated: tensor {name} ends at byte {base + e}, "
                                      f"file has {size}")
            self.tensors[name] = TensorInfo(name, tag, shape, base + b, e - b)

    def _entry(self, name: str, d: object) -> tuple[str, tuple[int, ...], tuple[int, int]]:
        """(dtype tag, shape, (begin, end)) of one header entry; CheckpointError unless the tag is known,
        the shape a list of non-negative integers and data_offsets two non-negative integers."""
        def ints(v: object) -> bool:
            return isinstance(v, list) and all(type(x) is int and x >= 0 for x in v)
        if not isinstance(d, dict) or not {"dtype", "shape", "data_offsets"} <= set(d):
            raise CheckpointError(f"{self.path}: corrupt header entry for tensor {name} "
                                  "(needs dtype, shape and data_offsets)")
        tag, shape, offs = d["dtype"], d["shape"], d["data_offsets"]
        if not isinstance(tag, str) or tag not in DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name} has unsupported dtype {str(tag)[:20]}")
        if not ints(shape) or len(shape) > MAX_NDIM or any(x > MAX_DIM for x in shape):  # type: ignore
            raise CheckpointError(f"{self.path}: tensor {name}: shape {str(shape)[:60]} is not a list of at "
                                  f"most {MAX_NDIM} integers in [0, 2^40]")
        if not ints(offs) or len(offs) != 2:  # type: ignore[arg-type]
            raise CheckpointError(f"{self.path}: tensor {name}: data_offsets {str(offs)[:60]} are not two "
                                  "non-negative integers")
        return tag, tuple(shape), (offs[0], offs[1])  # type: ignore[index]

    def read(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """The tensor's raw values (BF16 as uint16); into `out` (same size, contiguous) if given."""
        t = self.tensors[name]
        arr = out if out is not None else np.empty(t.shape, DTYPES[t.dtype])
        if arr.nbytes != t.nbytes or not arr.flags.c_contiguous:
            raise CheckpointError(f"{self.path}: tensor {name}: destination does not fit")
        with open(self.path, "rb") as f:
            f.seek(t.begin)
            got = f.readinto(memoryview(arr.reshape(-1).view(np.uint8)))
        if got != t.nbytes:
            raise CheckpointError(f"{self.path}: truncated while reading tensor {name}")
        return arr.reshape(t.shape) if out is None else arr

    def read_rows(self, name: str, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 of a tensor (first axis), raw values."""
        t = self.tensors[name]
        row = int(np.prod(t.shape[1:], dtype=np.int64)) * DTYPES[t.dtype].itemsize
        arr = np.empty((r1 - r0,) + t.shape[1:], DTYPES[t.dtype])
        with open(self.path, "rb") as f:
            f.seek(t.begin + r0 * row)
            got = f.readinto(memoryview(arr.reshape(-1).view(np.uint8)))
        if got != arr.nbytes:
            raise CheckpointError(f"{self.path}: truncated while reading tensor {name}")
        return arr


def to_f32(raw: np.ndarray, tag: str) -> np.ndarray:
    """Widen raw float storage to float32 exactly (bf16 bit patterns via a 16-bit shift)."""
    if tag == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if tag in FLOAT_TAGS:
        return raw.astype(np.float32)
    raise CheckpointError(f"expected a float tensor, got {tag}")


def bf16_bits_if_exact(x: np.ndarray) -> np.ndarray | None:
    """float32 -> bf16 bit patterns (uint16) when every value is bf16-representable, else None."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    if np.any(u & 0xFFFF):
        return None
    return (u >> 16).astype(np.uint16)


# (name, dtype tag, shape, producer of the array at write time)
TensorSpec = tuple[str, str, tuple[int, ...], Callable[[], np.ndarray]]


def write_safetensors(path: str | os.PathLike, specs: Iterable[TensorSpec],
                      metadata: dict[str, str] | None = None) -> int:
    """Stream tensors into one safetensors file; producers run one at a time. Returns bytes written."""
    specs = list(specs)
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    off = 0
    for name, tag, shape, _ in specs:
        nb = int(np.prod(shape, dtype=np.int64)) * DTYPES[tag].itemsize
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, tag, shape, make in specs:
            arr = np.ascontiguousarray(make())
            if arr.dtype != DTYPES[tag] or tuple(arr.shape) != tuple(shape):
                raise CheckpointError(f"writing tensor {name}: got {arr.dtype}{arr.shape}, "
                                      f"declared {tag}{tuple(shape)}")
            f.write(memoryview(arr.reshape(-1).view(np.uint8)))
    return 8 + len(hb) + off


def shard_path(directory: Path, name: object, index: Path) -> Path:
    """directory / name for a shard named in the index; CheckpointError unless name is a relative path
    that stays inside the checkpoint directory (no absolute path, no '..'). Symbolic links inside the
    directory are followed (the Hugging Face cache links shards to its blobs folder)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise CheckpointError(f"{index}: shard name {str(name)[:60]!r} is not a file name")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise CheckpointError(f"{index}: shard {name[:80]!r} is outside the checkpoint directory")
    return directory / rel


class Checkpoint:
    """All tensors of a (possibly sharded) safetensors checkpoint directory, by name."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        index = self.dir / "model.safetensors.index.json"
        single = self.dir / "model.safetensors"
        files: list[Path]
        if index.is_file():
            try:
                wmap = jsonfile.loads(index.read_text())["weight_map"]
                names = set(wmap.values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise CheckpointError(f"{index}: malformed shard index: {e}") from e
            files = sorted(shard_path(self.dir, v, index) for v in names)
        elif single.is_file():
            files = [single]
        else:
            files = sorted(self.dir.glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"{self.dir}: no model.safetensors or shard index")
        self.where: dict[str, SafetensorsFile] = {}
        for p in files:
            if not p.is_file():
                what = "is not a regular file" if p.exists() else "is missing"
                raise CheckpointError(f"{index if index.is_file() else p.parent}: shard {p.name} {what}")
            sf = SafetensorsFile(p)
            for name in sf.tensors:
                self.where[name] = sf

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds this tensor."""
        return name in self.where

    def info(self, name: str) -> TensorInfo:
        """Dtype, shape and location of a tensor; CheckpointError if missing."""
        if name not in self.where:
            raise CheckpointError(f"{self.dir}: missing tensor {name}")
        return self.where[name].tensors[name]

    def raw(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Raw values of a tensor, checking its shape when given."""
        t = self.info(name)
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise CheckpointError(f"{self.dir}: tensor {name}: shape {list(t.shape)}, "
                                  f"expected {list(shape)}")
        return self.where[name].read(name)

    def f32(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A float tensor widened to float32, shape-checked."""
        t = self.info(name)
        if t.dtype not in FLOAT_TAGS:
            raise CheckpointError(f"{self.dir}: tensor {name}: dtype {t.dtype}, expected a float type")
        return to_f32(self.raw(name, shape), t.dtype)
