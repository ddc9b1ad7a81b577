"""manifest.json's schema as data: every field the runtime reads, with its type and range, checked once
when a project is opened (Project.open), so a malformed manifest is one ProjectError naming the field
instead of a traceback (or a huge allocation) later. Board-side: standard library only, Python 3.10.
"""

from __future__ import annotations

import re
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.layout import (
    HEAD_ROWS_MAX,
    K_TOP_MAX,
    LB_CODEC_WORDS,
    LB_FLOAT_UNITS,
    LB_GROUPS,
    LB_MAX_CODECS,
    LB_MAX_SB,
    LB_PORTS,
    LB_SCALE_LANES,
    PORT_WIDTHS,
)

SCHEMA = "edgellm.manifest/1"
MANIFEST = "manifest.json"
# DDR offsets travel in 32-bit registers and descriptor words (hw/include/edgellm/interface.h), so no
# project's buffer can exceed 4 GiB; a board's own DDR size caps it further (Project.open).
MAX_DDR_BYTES = 1 << 32
MAX_FILES = 100_000  # entries of manifest["files"]
MAX_PATH_CHARS = 255
C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
HEX64 = re.compile(r"[0-9a-f]{64}")
SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
REGISTER_SPACE = 1 << 16  # AXI-lite control window (bytes)
EMBED_DTYPES = ("bf16", "f32")

# dotted field -> (kind, required, argument): "int" takes (lo, hi); "int in" and "str" take the allowed
# values (from their one source: runtime/layout.py) or, for "str", None; "int rows" (n, w, lo, hi): at most
# n rows of w integers in [lo, hi]. Parents come before their
# children; an absent optional parent skips its children.
FIELDS: dict[str, tuple[str, bool, Any]] = {
    "schema": ("str", True, None),
    "model": ("object", True, None),
    "numerics": ("object", True, None),
    "numerics.norm_lanes": ("int", False, (1, 1 << 12)),
    "numerics.dot_lanes": ("int", False, (1, 1 << 12)),
    "numerics.kv_block": ("int", False, (1, 1 << 16)),
    "numerics.kv_dtype": ("str", False, ("f32", "f16")),
    "board": ("object", False, None),
    "board.ddr_bytes": ("int", False, (1, 1 << 40)),
    "interface": ("object", True, None),
    "interface.version": ("int", True, (0, 1 << 31)),
    "interface.hdr_off": ("int", True, (0, MAX_DDR_BYTES - 1)),
    "interface.prog_off": ("int", True, (0, MAX_DDR_BYTES - 1)),
    "interface.max_t": ("int", True, (1, 1 << 20)),
    "interface.max_ctx": ("int", True, (1, 1 << 24)),
    "interface.top_k": ("int", False, (0, K_TOP_MAX)),
    "interface.ip_name": ("ident", False, None),
    # the LM head's rows per pass (design head_lanes, at most max_t); absent in older manifests: min(8, max_t)
    "interface.head_rows": ("int", False, (1, HEAD_ROWS_MAX)),
    "interface.registers": ("registers", True, None),
    "memory": ("object", True, None),
    "memory.regions": ("regions", True, None),
    "memory.static_bytes": ("int", True, (1, MAX_DDR_BYTES)),
    "memory.total_bytes": ("int", True, (1, MAX_DDR_BYTES)),
    "weights": ("object", True, None),
    "weights.file": ("path", True, None),
    "weights.sha256": ("sha256", True, None),
    "weights.bytes": ("int", False, (1, MAX_DDR_BYTES)),
    "design": ("object", False, None),  # a low-bit design's engine (runtime/bounds.py Limits.of)
    "design.matmul": ("str", False, ("tlmm", "lowbit")),
    "design.lowbit_rows": ("int", False, (32, 1 << 12)),
    "design.port_width_bits": ("int in", False, PORT_WIDTHS),
    "design.data_port_width_bits": ("int in", False, PORT_WIDTHS),  # the data beat (runtime/bounds.py)
    "design.lowbit_ports": ("int in", False, LB_PORTS),
    "design.lowbit_max_group": ("int in", False, LB_GROUPS),
    "design.lowbit_scale_lanes": ("int in", False, LB_SCALE_LANES),
    "design.lowbit_float_units": ("int in", False, LB_FLOAT_UNITS),
    "design.lowbit_max_sb": ("int", False, (1, LB_MAX_SB)),
    "design.lowbit_min_group": ("int in", False, LB_GROUPS),
    # the weight gearbox (runtime/lowbit_gear.py: from the ports' shares; absent: none, equal shares)
    "design.lowbit_gear": ("bool", False, None),
    "design.port_shares": ("ints", False, (4, 1, 64)),
    # the parameter codecs the engine decodes (ParamCodec.as_words rows; absent or []: any)
    "design.lowbit_codecs": ("int rows", False, (LB_MAX_CODECS, LB_CODEC_WORDS, -(1 << 31), (1 << 31) - 1)),
    "host": ("object", True, None),
    "host.embed_file": ("path", True, None),
    "host.embed_dtype": ("str", True, EMBED_DTYPES),
    "host.vocab": ("int", True, (1, 1 << 24)),
    "host.hidden": ("int", True, (1, 1 << 16)),
    "host.sha256": ("sha256", True, None),
    "tokenizer": ("path?", False, None),
    "chat_template": ("path?", False, None),
    "files": ("files", False, None),
}
DEFAULTS = {"interface.top_k": 0, "interface.ip_name": "edgellm_top", "interface.head_rows": None,
            "tokenizer": None,
            "chat_template": None, "files": {}}
CONTROL_REGISTERS = ("hdr_off", "prog_off", "n_desc")


class ProjectError(EdgeLLMError):
    """A project directory that is incomplete, inconsistent or tampered with."""


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def safe_relpath(rel: Any) -> bool:
    """A relative POSIX path of plain names (no '..', no absolute path, no backslash, no empty part)."""
    if not isinstance(rel, str) or not 0 < len(rel) <= MAX_PATH_CHARS:
        return False
    return all(SAFE_PART.fullmatch(p) for p in rel.split("/"))


def is_int(v: Any, lo: int, hi: int) -> bool:
    """An int (not a bool, not a float such as 64.0 or NaN) in [lo, hi]."""
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _check_registers(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "an object {name: byte offset}"
    for k, off in v.items():
        if not C_IDENT.fullmatch(k) or not is_int(off, 0, REGISTER_SPACE - 4) or off % 4:
            return f"C identifiers -> 4-byte-aligned offsets below 0x{REGISTER_SPACE:x}; {k!r}: {_show(off)}"
    missing = [r for r in CONTROL_REGISTERS if r not in v]
    if missing:
        return f"an object with the registers {', '.join(CONTROL_REGISTERS)} ({missing[0]!r} is missing)"
    if len(v) == len(CONTROL_REGISTERS):
        return "an object with at least one m_axi pointer register"
    return None


def _check_regions(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "an object {name: {offset, size}}"
    for k, r in v.items():
        if not isinstance(r, dict) or "offset" not in r or "size" not in r:
            return f"regions of the form {{offset, size}}; {k!r}: {_show(r)}"
        for f in ("offset", "size"):
            if not is_int(r[f], 0, MAX_DDR_BYTES):
                return f"byte offsets and sizes in [0, 2^32]; {k!r}.{f}: {_show(r[f])}"
    return None


def _check_files(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "an object {relative path: sha256}"
    if len(v) > MAX_FILES:
        return f"at most {MAX_FILES} entries"
    for k, h in v.items():
        if not safe_relpath(k) or k == MANIFEST:
            return f"relative paths of plain names inside the project; got {_show(k)}"
        if not (isinstance(h, str) and HEX64.fullmatch(h)):
            return f"64 lowercase hex digits per file; {k!r}: {_show(h)}"
    return None


def _problem(kind: str, arg: Any, v: Any) -> str | None:
    """Why v is not of kind (None when it is)."""
    if kind == "object":
        return None if isinstance(v, dict) else "an object"
    if kind == "int":
        lo, hi = arg
        return None if is_int(v, lo, hi) else f"an integer in [{lo}, {hi}]"
    if kind == "int in":
        ok = isinstance(v, int) and not isinstance(v, bool) and v in arg
        return None if ok else f"one of {', '.join(map(str, arg))}"
    if kind == "bool":
        return None if isinstance(v, bool) else "true or false"
    if kind == "ints":  # a list of at most n integers in [lo, hi]
        n, lo, hi = arg
        ok = isinstance(v, list) and len(v) <= n and all(is_int(x, lo, hi) for x in v)
        return None if ok else f"a list of at most {n} integers in [{lo}, {hi}]"
    if kind == "int rows":  # a list of at most n lists of exactly w integers in [lo, hi]
        n, w, lo, hi = arg
        ok = isinstance(v, list) and len(v) <= n and all(
            isinstance(r, list) and len(r) == w and all(is_int(x, lo, hi) for x in r) for r in v)
        return None if ok else f"a list of at most {n} lists of {w} integers in [{lo}, {hi}]"
    if kind == "str":
        if arg is not None:
            return None if isinstance(v, str) and v in arg else f"one of {', '.join(arg)}"
        return None if isinstance(v, str) and 0 < len(v) <= 256 else "a non-empty string"
    if kind == "ident":
        return None if isinstance(v, str) and C_IDENT.fullmatch(v) else "a C identifier of at most 64 chars"
    if kind == "sha256":
        return None if isinstance(v, str) and HEX64.fullmatch(v) else "64 lowercase hex digits"
    if kind in ("path", "path?"):
        ok = safe_relpath(v) and v != MANIFEST or (kind == "path?" and v is None)
        return None if ok else "a relative path of plain names inside the project"
    if kind == "registers":
        return _check_registers(v)
    if kind == "regions":
        return _check_regions(v)
    if kind == "files":
        return _check_files(v)
    raise AssertionError(f"unknown schema kind {kind!r}")


def get(m: dict[str, Any], dotted: str) -> Any:
    """The value of a dotted field, or its default (KeyError when absent without one)."""
    cur: Any = m
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if dotted in DEFAULTS:
                return DEFAULTS[dotted]
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def validate(m: Any, where: str) -> None:
    """Check m against FIELDS; ProjectError naming the first bad field (where: the manifest's path)."""
    if not isinstance(m, dict):
        raise ProjectError(f"{where}: expected a JSON object")
    if "schema" in m and m["schema"] != SCHEMA:
        raise ProjectError(f"{where}: schema {_show(m['schema'])} is not supported "
                           f"(this runtime reads {SCHEMA!r})")
    absent: set[str] = set()
    for dotted, (kind, required, arg) in FIELDS.items():
        parent = dotted.rpartition(".")[0]
        if parent in absent:
            absent.add(dotted)
            continue
        node = get(m, parent) if parent else m
        leaf = dotted.rpartition(".")[2]
        if leaf not in node:
            if required:
                raise ProjectError(f"{where}: missing field {dotted!r}")
            absent.add(dotted)
            continue
        v = node[leaf]
        why = _problem(kind, arg, v)
        if why is not None:
            if kind in ("registers", "regions", "files"):
                raise ProjectError(f"{where}: field {dotted!r} must hold {why}")
            raise ProjectError(f"{where}: field {dotted!r} must be {why}, got {_show(v)}")
    _check_listing(m, where)


def _check_listing(m: dict[str, Any], where: str) -> None:
    """weights / embed / tokenizer / chat_template against manifest['files']: a file named twice has one
    checksum."""
    files = get(m, "files")
    named = [("weights.sha256", get(m, "weights.file")), ("host.sha256", get(m, "host.embed_file"))]
    if named[0][1] == named[1][1]:
        raise ProjectError(f"{where}: weights.file and host.embed_file name the same file")
    for sha_field, rel in named:
        if rel in files and files[rel] != get(m, sha_field):
            raise ProjectError(f"{where}: {sha_field} and files[{rel!r}] disagree; the manifest was edited "
                               "inconsistently, refusing it")
    for field in ("tokenizer", "chat_template"):
        rel = get(m, field)
        if rel is not None and rel not in files:
            raise ProjectError(f"{where}: {field} {rel!r} is not listed in files (with its sha256)")


def listed_files(m: dict[str, Any]) -> dict[str, str]:
    """Every file the (validated) manifest lists -> sha256: files, weights.bin and embed.bin."""
    out = dict(get(m, "files"))
    out[get(m, "weights.file")] = get(m, "weights.sha256")
    out[get(m, "host.embed_file")] = get(m, "host.sha256")
    return out
