"""synth_check's pragma-syntax rule (hw/synth_check.py runs it beside the others; it returns (offset, rule,
detail) tuples).

  pragma-syntax  a `#pragma HLS` the Vitis HLS pragma reference (UG1399, 2023.2 .. 2025.2, "HLS Pragmas")
                 does not define: an unknown pragma; an option or a bare word the pragma does not take; a
                 required option missing (ARRAY_PARTITION / ARRAY_RESHAPE / BIND_STORAGE / BIND_OP / STREAM
                 `variable`, BIND_STORAGE `type`, BIND_OP `op`, INTERFACE `port` and a mode, ALLOCATION
                 `instances` and `limit`, LOOP_TRIPCOUNT `max`); a value outside its set (partition types,
                 storage types and implementations, operations and their implementations, stream types,
                 interface modes and m_axi offsets, dependence classes, types, directions); a cyclic or block
                 partition without a factor, a complete one with one; a storage implementation its type cannot
                 have (srl and memory are FIFO implementations; block RAM's and UltraRAM's ECC works in simple
                 dual-port mode, so only ram_s2p, UG573; distributed RAM has one write port, so no LUTRAM
                 ram_t2p, UG574; UltraRAM has no initial contents, so no URAM ROM, UG573: hardware facts,
                 the pairs UG1399's storage table lists were not at hand); primitivedsp, which exists on
                 Versal devices only (every board here
                 is a Zynq); an ALLOCATION whose type does not follow its name (UG1399: "the order of the
                 arguments is important"); a literal II below 1, a negative dim, an m_axi max_widen_bitwidth
                 that is not a power of two in 8 .. 1024, a burst length outside 1 .. 256.
  pragma-variable  a pragma's `variable = X` (X or the root of a member path X.m) that the function holding
                 the pragma neither declares nor takes as a parameter: UG1399 places these pragmas "within
                 the boundaries of the function where the variable is defined", and Vitis HLS reads the name
                 in that scope (a pragma the synthesis view's compiler never parses); and an ARRAY_PARTITION
                 / ARRAY_RESHAPE `dim` past the dimensions the array is declared with.
Values may be constant expressions (`depth = (C::kv_block + 1) * C::beats_max`: UG1399 "Using Constants with
Pragmas"); a value naming an object-like macro of the sources is taken as that macro's text, and one that
stays a macro-style name (UPPER_CASE) is not judged. Heuristic by design (regular expressions over
comment-free text; the pragma macros expanded first, hw/synth_macros.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from edgellm.hw.synth_bind import param_names
from edgellm.hw.synth_iteration import arrays
from edgellm.hw.synth_pragmas import IDENT, Function, _split_top, functions

_PRAGMA = re.compile(r"#\s*pragma\s+HLS\s+(\w+)((?:[^\n;\\]|\\\n|\\)*)", re.I)
_KEY = re.compile(r"(?<![\w.:])(\w+)\s*=(?!=)")
_OPERAND = re.compile(rf"\s*(?:\d+|{IDENT}(?:\s*(?:::|\.)\s*{IDENT})*(?:\s*<[^<>;]*>)?)")
_OPERATOR = re.compile(r"\s*(?:[-+*/%]|<<|>>)")
STORAGE_TYPES = ("fifo", "ram_1p", "ram_1wnr", "ram_2p", "ram_s2p", "ram_t2p", "rom_1p", "rom_2p", "rom_np")
STORAGE_IMPLS = ("bram", "bram_ecc", "lutram", "uram", "uram_ecc", "srl", "memory", "auto")
INT_OPS = ("mul", "add", "sub")
FLOAT_OPS = tuple(f"{p}{o}" for p in "fdh"
                  for o in ("add", "sub", "mul", "div", "sqrt", "exp", "log", "rsqrt", "recip"))
MODES = ("ap_none", "ap_vld", "ap_ack", "ap_hs", "ap_ovld", "ap_fifo", "ap_memory", "bram", "axis",
         "s_axilite", "m_axi", "ap_ctrl_none", "ap_ctrl_hs", "ap_ctrl_chain", "ap_stable")
M_AXI_KEYS = ("port", "bundle", "depth", "offset", "latency", "max_read_burst_length",
              "max_write_burst_length", "max_widen_bitwidth", "num_read_outstanding", "num_write_outstanding",
              "name", "channel", "mode")
_TF = ("true", "false")
_PARTS = ("cyclic", "block", "complete")
_DEP_WORDS = ("array", "pointer", "inter", "intra", "RAW", "WAR", "WAW", "true", "false")


@dataclass(frozen=True)
class Spec:
    """A pragma's grammar: its options (name -> the kind of value: 'ident' a name or member path, 'expr' an
    integer constant expression, 'text' the rest up to the next option, or a tuple of allowed words), its
    bare words, the options it requires."""

    keys: dict[str, str | tuple[str, ...]]
    words: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per mode (INTERFACE): more keys


_PART = {"variable": "ident", "type": _PARTS, "factor": "expr", "dim": "expr", "off": _TF}
SPECS: dict[str, Spec] = {
    "PIPELINE": Spec({"II": "expr", "style": ("stp", "frp", "flp"), "off": _TF}, ("off", "rewind")),
    "UNROLL": Spec({"factor": "expr", "off": _TF}, ("skip_exit_check", "off")),
    "LOOP_TRIPCOUNT": Spec({"min": "expr", "max": "expr", "avg": "expr"}, (), ("max",)),
    "LOOP_FLATTEN": Spec({"off": _TF}, ("off",)),
    "LOOP_MERGE": Spec({"force": _TF}, ("force",)),
    "INLINE": Spec({"off": _TF}, ("off", "recursive")),
    "DATAFLOW": Spec({}, ("disable_start_propagation",)),
    "ARRAY_PARTITION": Spec(_PART, _PARTS, ("variable",)),
    "ARRAY_RESHAPE": Spec({**_PART, "object": _TF}, (*_PARTS, "object"), ("variable",)),
    "BIND_STORAGE": Spec({"variable": "ident", "type": STORAGE_TYPES, "impl": STORAGE_IMPLS,
                          "latency": "expr"}, (), ("variable", "type")),
    "BIND_OP": Spec({"variable": "ident", "op": INT_OPS + FLOAT_OPS,
                     "impl": ("fabric", "dsp", "meddsp", "fulldsp", "maxdsp", "primitivedsp", "auto"),
                     "latency": "expr"}, (), ("variable", "op")),
    "STREAM": Spec({"variable": "ident", "depth": "expr", "type": ("fifo", "pipo", "shared", "unsync"),
                    "off": _TF}, ("off",), ("variable",)),
    "DEPENDENCE": Spec({"variable": "ident", "class": ("array", "pointer"), "type": ("inter", "intra"),
                        "direction": ("RAW", "WAR", "WAW"), "distance": "expr", "dependent": _TF},
                       _DEP_WORDS),
    "INTERFACE": Spec({"mode": MODES, "port": "ident", "bundle": "ident", "name": "ident",
                       "register": ("true",), "depth": "expr", "latency": "expr",
                       "storage_type": STORAGE_TYPES, "storage_impl": STORAGE_IMPLS},
                      (*MODES, "register"), ("port",),
                      {"m_axi": M_AXI_KEYS, "s_axilite": ("clock", "offset", "storage_impl", "interrupt"),
                       "axis": ("register_mode",)}),
    "ALLOCATION": Spec({"instances": "text", "limit": "expr"}, ("function", "operation"),
                       ("instances", "limit")),
    "EXPRESSION_BALANCE": Spec({"off": _TF}, ("off",)),
    "LATENCY": Spec({"min": "expr", "max": "expr"}),
    "AGGREGATE": Spec({"variable": "ident", "compact": ("bit", "byte", "none", "auto")}, (), ("variable",)),
    "DISAGGREGATE": Spec({"variable": "ident"}, (), ("variable",)),
    "TOP": Spec({"name": "ident"}),
    "FUNCTION_INSTANTIATE": Spec({"variable": "ident"}, (), ("variable",)),
    "OCCURRENCE": Spec({"cycle": "expr", "off": _TF}, ("off",)),
    "PROTOCOL": Spec({"mode": ("floating", "fixed")}, ("floating", "fixed")),
    "RESET": Spec({"variable": "ident", "off": _TF}, ("off",), ("variable",)),
    "STABLE": Spec({"variable": "ident"}, (), ("variable",)),
    "PERFORMANCE": Spec({"target_ti": "expr", "target_tl": "expr", "assume_ti": "expr", "assume_tl": "expr",
                         "unit": ("cycle", "sec"), "scope": ("loop", "region")}),
}


def _ok_impl(stype: str, impl: str) -> str | None:
    """Why a storage implementation does not fit its type (None when it does)."""
    if impl in ("srl", "memory") and stype != "fifo":
        return f"impl = {impl} is for a fifo"
    if impl.endswith("_ecc") and stype != "ram_s2p":
        return f"impl = {impl} is for ram_s2p"
    if impl == "lutram" and stype == "ram_t2p":
        return "LUTRAM has no true dual port (ram_t2p)"
    if impl in ("uram", "uram_ecc") and stype.startswith("rom"):
        return "URAM cannot hold a ROM (no initial contents)"
    return None


def _expr_end(text: str, i: int) -> int:
    """End of the constant expression starting at i (operands joined by operators, parentheses)."""
    j, want_operand = i, True
    while j < len(text):
        if want_operand:
            s = re.match(r"\s*\(", text[j:])
            if s:
                depth, k = 0, j
                while k < len(text):
                    depth += text[k] == "("
                    depth -= text[k] == ")"
                    k += 1
                    if depth == 0 and text[k - 1] == ")":
                        break
                j, want_operand = k, False
                continue
            m = _OPERAND.match(text, j)
            if not m:
                break
            j, want_operand = m.end(), False
        else:
            m = _OPERATOR.match(text, j)
            if not m:
                break
            j, want_operand = m.end(), True
    return j


def _literal(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d+", value.strip()) else None


def parse(text: str) -> tuple[dict[str, str], list[str]]:
    """A pragma's options (name -> value text) and bare words, for its text after the pragma's name; 'text'
    options take the rest up to the next option, names and words one token, expressions what an expression
    spans."""
    keys = list(_KEY.finditer(text))
    opts: dict[str, str] = {}
    words = re.findall(r"[\w]+", text[:keys[0].start()] if keys else text)
    for n, k in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(text)
        seg = text[k.end():end]
        e = _expr_end(seg, 0)
        value = seg[:e] if e else (re.match(r"\s*[\w.:<>, ]*", seg).group(0) if seg.strip() else "")
        if k.group(1) in ("instances",):  # a function name with template arguments, or an operation
            value, e = seg, len(seg)
        opts[k.group(1)] = " ".join(value.split())
        words += re.findall(r"\w+", seg[e or len(value):])
    return opts, words


def check(name: str, text: str, macros: dict[str, str]) -> list[str]:
    """Why a `#pragma HLS <name> <text>` is not in the reference ([] when it is)."""
    spec = SPECS.get(name.upper())
    if spec is None:
        return [f"unknown HLS pragma {name!r}"]
    opts, words = parse(text.replace("\\\n", " "))
    mode = (opts.get("mode") or next((w for w in words if w.lower() in MODES), "")).lower() or None
    keys = dict(spec.keys)
    if name.upper() == "INTERFACE" and mode:
        keys.update({k: keys.get(k, "text") for k in spec.extra.get(mode, ())})
        keys["offset"] = ("slave", "direct", "off") if mode == "m_axi" else "expr"
    out = []
    keys = {k.lower(): v for k, v in keys.items()}  # option names are not case-sensitive (`II`, `ii`)
    for k, v in opts.items():
        kind = keys.get(k.lower())
        if kind is None:
            out.append(f"{name}: no option {k!r}")
            continue
        v = macros.get(v, v)  # values are not case-sensitive either; an UPPER_CASE name is a macro's
        if isinstance(kind, tuple) and v.lower() not in {x.lower() for x in kind} and not v.isupper():
            out.append(f"{name}: {k} = {v} is not one of {', '.join(kind)}")
    allowed = {x.lower() for x in spec.words}
    for w in words:
        if w.lower() not in allowed:
            out.append(f"{name}: no option {w!r}")
    given = {k.lower() for k in opts}
    for r in spec.required:
        if r.lower() not in given:
            out.append(f"{name}: {r} is required")
    if name.upper() == "ALLOCATION" and not re.match(r"\s*(?:function|operation)\b", text, re.I):
        out.append("ALLOCATION: its type (function or operation) must follow the pragma's name (UG1399: the "
                   "order of the arguments is important)")
    out += _semantics(name.upper(), opts, words, mode, macros)
    return out


def _semantics(name: str, opts: dict[str, str], words: list[str], mode: str | None, macros: dict[str, str]
               ) -> list[str]:
    """The value rules past the grammar (see the module's docstring)."""
    out = []
    low = {k.lower(): v for k, v in opts.items()}
    get = lambda k: macros.get(low.get(k.lower(), ""), low.get(k.lower(), ""))  # noqa: E731
    if name in ("ARRAY_PARTITION", "ARRAY_RESHAPE"):
        kind = get("type") or next((w for w in words if w in ("cyclic", "block", "complete")), "complete")
        if kind in ("cyclic", "block") and "factor" not in low:
            out.append(f"{name}: a {kind} partition needs a factor")
        if kind == "complete" and "factor" in low:
            out.append(f"{name}: a complete partition takes no factor")
        if (d := _literal(get("dim"))) is not None and d < 0:
            out.append(f"{name}: dim must be 0 or more")
    if name == "BIND_STORAGE" and (t := get("type")) in STORAGE_TYPES and (i := get("impl")) in STORAGE_IMPLS:
        why = _ok_impl(t, i)
        if why:
            out.append(f"BIND_STORAGE: type = {t}, impl = {i}: {why}")
    if name == "BIND_OP":
        op, impl = get("op"), get("impl")
        if impl == "primitivedsp":
            out.append("BIND_OP: impl = primitivedsp exists on Versal devices only")
        elif op in INT_OPS and impl in ("meddsp", "fulldsp", "maxdsp"):
            out.append(f"BIND_OP: impl = {impl} is for floating-point operations, not {op}")
    if name == "PIPELINE" and (ii := _literal(get("II"))) is not None and ii < 1:
        out.append("PIPELINE: II must be 1 or more")
    if name == "INTERFACE" and mode is None:
        out.append("INTERFACE: no mode (m_axi, s_axilite, axis, ...)")
    if name == "INTERFACE" and mode == "m_axi":
        w = _literal(get("max_widen_bitwidth"))
        if w is not None and (w < 8 or w > 1024 or w & (w - 1)):
            out.append(f"INTERFACE: max_widen_bitwidth = {w} is not a power of two in 8 .. 1024")
        for k in ("max_read_burst_length", "max_write_burst_length"):
            b = _literal(get(k))
            if b is not None and not 1 <= b <= 256:
                out.append(f"INTERFACE: {k} = {b} is outside 1 .. 256")
    return out


def _declares(fn: Function, body: str, name: str) -> bool:
    """Whether fn declares `name` in its body (`T name`, `T name[..]`, `T a, name`, `T<..> name`) or takes it
    as a parameter."""
    if name in param_names(fn.params):
        return True
    decl = rf"(?:(?<![\w.])[\w:>\]]+[\s*&]+|,\s*){re.escape(name)}\s*(?:\[|;|=|,|\(|\{{|\))"
    return re.search(decl, body) is not None


def _dims(fn: Function, body: str, name: str) -> int | None:
    """The dimensions name is declared with in fn (a bracketed local or parameter), None when unknown (a
    typedef'd array, a pointer)."""
    for p in _split_top(fn.params):
        if param_names(p) == [name]:
            return p.count("[") or None
    found = arrays(body).get(name)
    return found[0] if found else None


def variables(code: str) -> Iterator[tuple[int, str, str]]:
    """pragma-variable findings of one comment-free source text: an undeclared variable, and an
    ARRAY_PARTITION / ARRAY_RESHAPE dim past the array's dimensions."""
    for fn in functions(code):
        body = fn.body(code)
        for m in _PRAGMA.finditer(body):
            v = re.search(rf"\bvariable\s*=\s*({IDENT})(\s*\.)?", m.group(2))
            if not v:
                continue
            if not _declares(fn, body, v.group(1)):
                yield (fn.start + m.start(), "pragma-variable",
                       f"{m.group(1)} names {v.group(1)!r}, which {fn.name} neither declares nor takes")
                continue
            dim = re.search(r"\bdim\s*=\s*(\d+)\b", m.group(2))
            if m.group(1).upper() in ("ARRAY_PARTITION", "ARRAY_RESHAPE") and dim and not v.group(2):
                n = _dims(fn, body, v.group(1))
                if n is not None and int(dim.group(1)) > n:
                    yield (fn.start + m.start(), "pragma-variable",
                           f"{m.group(1)} dim = {dim.group(1)} on {v.group(1)!r}, an array of {n} "
                           f"dimension{'s' if n > 1 else ''}")


def run(code: str, macros: dict[str, str] | None = None) -> Iterator[tuple[int, str, str]]:
    """Findings of both rules over one comment-free source text (macros: object-like macro name -> text)."""
    for m in _PRAGMA.finditer(code):
        for why in check(m.group(1), m.group(2), macros or {}):
            yield m.start(), "pragma-syntax", why
    yield from variables(code)
