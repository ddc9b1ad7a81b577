"""Mutators for the fuzz driver: JSON documents, safetensors and GGUF files, the weights image header.

Each takes a seeded numpy Generator and returns the mutated input and a short description of what
was done (printed with the case, so a failure can be reproduced by its seed and case number).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

# Values a field of the wrong type or range may take.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**32 + 3, 2**40, 2**63, -(2**63), 0.5, 64.9, -3.5, "64", "",
    "x" * 300, "../../etc/passwd", "/etc/passwd", [], [1, 2], {}, {"a": 1}, "NaN", "Infinity",
]
ODD_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e-30]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path in a JSON document (the root excluded)."""
    out: list[tuple] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:8]):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _odd(rng: np.random.Generator) -> Any:
    pool = ODD_VALUES + ODD_FLOATS
    return pool[int(rng.integers(len(pool)))]


def json_doc(rng: np.random.Generator, doc: Any) -> tuple[Any, str]:
    """One structural mutation of a parsed JSON document: replace, delete, duplicate into, scale."""
    paths = _paths(doc)
    if not paths:
        return _odd(rng), "root replaced"
    path = paths[int(rng.integers(len(paths)))]
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    old = parent[key]
    op = int(rng.integers(4))
    where = "/".join(map(str, path))
    if op == 0:
        parent[key] = _odd(rng)
        return doc, f"{where} = {parent[key]!r:.60}"
    if op == 1:
        del parent[key]
        return doc, f"{where} deleted"
    if op == 2 and isinstance(old, (int, float)) and not isinstance(old, bool):
        factor = [-1, 0, 3, 1 << 20, 0.5][int(rng.integers(5))]
        parent[key] = old * factor
        return doc, f"{where} *= {factor}"
    parent[key] = [old] if rng.random() < 0.5 else {"v": old}
    return doc, f"{where} wrapped in a container"


def json_text(rng: np.random.Generator, text: str) -> tuple[str, str]:
    """Mutate a JSON file's text: usually a structural mutation, sometimes raw text damage."""
    r = rng.random()
    if r < 0.15:
        cut = int(rng.integers(len(text)))
        return text[:cut], f"truncated at {cut}"
    if r < 0.25:
        i = int(rng.integers(len(text)))
        return text[:i] + "\x00{" + text[i:], f"garbage at {i}"
    doc, what = json_doc(rng, json.loads(text))
    return json.dumps(doc, allow_nan=True), what


def _flip(rng: np.random.Generator, data: bytearray, lo: int, hi: int, n: int) -> str:
    where = []
    for _ in range(n):
        i = int(rng.integers(lo, max(lo + 1, hi)))
        data[i] ^= 1 << int(rng.integers(8))
        where.append(i)
    return f"bit flips at {where}"


def safetensors(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    """Mutate a safetensors file: its JSON header (fields, length), truncation or byte flips."""
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    body = data[8 + hlen:]
    r = rng.random()
    if r < 0.15:
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncated at {cut}"
    if r < 0.25:
        bad = [0, 7, hlen - 1, hlen + 1, len(data), 2**40, 2**64 - 1][int(rng.integers(7))]
        return struct.pack("<Q", bad) + data[8:], f"header length {bad}"
    if r < 0.35:
        buf = bytearray(data)
        return bytes(buf), _flip(rng, buf, 8 + hlen, len(buf), 4) + " in tensor data"
    names = [k for k in header if k != "__metadata__"]
    name = names[int(rng.integers(len(names)))]
    field = ["dtype", "shape", "data_offsets"][int(rng.integers(3))]
    t = header[name]
    choices: list[Any] = {
        "dtype": ["F64", "I64", "BOOL", "F8_E4M3", "XYZ", 3, None],
        "shape": [[], [0], [-1, 4], [2**40, 2], ["4"], [1.5], "4", None, list(reversed(t["shape"]))],
        "data_offsets": [[0, 0], [t["data_offsets"][1], t["data_offsets"][0]], [0, 2**50],
                         [str(t["data_offsets"][0]), str(t["data_offsets"][1])],
                         [float(t["data_offsets"][0]), float(t["data_offsets"][1])], [0], None,
                         [-8, t["data_offsets"][1]]],
    }[field]
    t[field] = choices[int(rng.integers(len(choices)))]
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + body, f"{name}.{field} = {t[field]!r:.60}"


def _gguf_header_end(data: bytes) -> int:
    """Offset where the GGUF tensor data starts (the last aligned offset past the tensor infos)."""
    import gguf

    r = gguf.GGUFReader(_to_path(data), "r")
    return int(r.data_offset)


_TMP: dict[int, Path] = {}


def _to_path(data: bytes) -> Path:
    import tempfile

    key = hash(data[:4096]) ^ len(data)
    if key not in _TMP:
        f = Path(tempfile.mkstemp(suffix=".gguf")[1])
        f.write_bytes(data)
        _TMP[key] = f
    return _TMP[key]


def gguf(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    """Mutate a GGUF file: counts and lengths in its header, metadata bytes, truncation, data flips."""
    end = _gguf_header_end(data)
    r = rng.random()
    buf = bytearray(data)
    if r < 0.15:
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncated at {cut}"
    if r < 0.3:
        # tensor count (offset 8) or metadata kv count (offset 16), u64
        off = [8, 16][int(rng.integers(2))]
        bad = [0, 1, 2**20, 2**63, 2**64 - 1][int(rng.integers(5))]
        buf[off:off + 8] = struct.pack("<Q", bad)
        return bytes(buf), f"u64 at {off} = {bad}"
    if r < 0.75:
        # an 8-byte field inside the metadata / tensor infos: lengths, types, dims, offsets
        i = int(rng.integers(24, end - 8))
        bad = [0, 1, 7, 36, 2**31, 2**40, 2**64 - 1][int(rng.integers(7))]
        n = [4, 8][int(rng.integers(2))]
        buf[i:i + n] = bad.to_bytes(8, "little")[:n] if bad < 2**64 else b"\xff" * n
        return bytes(buf), f"{n}-byte field at {i} = {bad}"
    if r < 0.9:
        return bytes(buf), _flip(rng, buf, 24, end, 3) + " in metadata/tensor infos"
    return bytes(buf), _flip(rng, buf, end, len(buf), 6) + " in tensor data"


def image_fields(rng: np.random.Generator, proj: Path) -> str:
    """Overwrite 1-3 words of weights.bin's header / layer table with odd values; fix the checksums so
    only the accelerator-side and host-side bounds checks can catch it."""
    import hashlib

    from edgellm.compiler import interface as itf

    mf = proj / "manifest.json"
    m = json.loads(mf.read_text())
    w = proj / m["weights"]["file"]
    img = bytearray(w.read_bytes())
    hdr_off = int(m["interface"]["hdr_off"])
    hdr = np.frombuffer(bytes(img[hdr_off:hdr_off + itf.HDR_WORDS * 4]), np.uint32)
    lt = int(hdr[itf.HDR["HDR_LAYER_TABLE"]])
    n_layers = int(hdr[itf.HDR["HDR_N_LAYERS"]])
    words = [(hdr_off + 4 * i, f"header[{itf.HEADER_WORDS[i] if i < len(itf.HEADER_WORDS) else i}]")
             for i in range(2, len(itf.HEADER_WORDS))]
    words += [(lt + 4 * j, f"layer_table[{j // itf.LD_WORDS}][{j % itf.LD_WORDS}]")
              for j in range(n_layers * itf.LD_WORDS)]
    what = []
    for _ in range(int(rng.integers(1, 4))):
        off, name = words[int(rng.integers(len(words)))]
        old = struct.unpack_from("<I", img, off)[0]
        size = len(img)
        new = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, size, size - 1, size + 4096, old + 4, old * 2,
               max(old - 64, 0), 0x80000000][int(rng.integers(11))] & 0xFFFFFFFF
        struct.pack_into("<I", img, off, new)
        what.append(f"{name}: {old} -> {new}")
    w.write_bytes(bytes(img))
    sha = hashlib.sha256(bytes(img)).hexdigest()
    m["weights"]["sha256"] = sha
    if isinstance(m.get("files"), dict) and m["weights"]["file"] in m["files"]:
        m["files"][m["weights"]["file"]] = sha
    mf.write_text(json.dumps(m, indent=1))
    return "; ".join(what)
