"""synth_check's pragma rules (hw/synth_check.py runs them over each source's comment-free text; each
returns (offset, rule, detail) tuples; the m_axi rules are hw/synth_maxi.py's, which uses the parsing
helpers here).

  dataflow-inline      a function with `#pragma HLS DATAFLOW` and no `#pragma HLS INLINE off` (inlined,
                       its processes would run one after another against bounded FIFOs)
  shared-call          one function calling a non-inlined function (INLINE off or DATAFLOW) from two or more
                       sites (same template arguments) with no `ALLOCATION function instances=<it>
                       limit=1` in its body: every site would be its own hardware. DATAFLOW functions
                       are exempt (their processes are meant to be distinct instances)
  partitioned-dependence  a DEPENDENCE `false` / `distance` claim on an array that is fully
                       partitioned (ARRAY_PARTITION complete on every dimension): registers, whose
                       loop-carried recurrence the claim does not relax
  double-store         two or more stores to one local array with no ARRAY_PARTITION in a loop body
                       pipelined at II = 1 (a store inside an unrolled inner loop counts twice): one
                       write port, so II >= 2. Conservative and textual: stores in exclusive branches
                       count too; arrays that are parameters (their storage is the caller's) and
                       stores inside called functions are not seen
  dep-unchecked        a DEPENDENCE pragma without its C-simulation check (hw/include/edgellm/dep_check.h):
                       no `EDGELLM_DEP_CLAIM(var, d)` in the function with the pragma's distance (0 for
                       `false`), or no `EDGELLM_DEP_ITER(...)` in the loop it annotates
Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

IDENT = r"[A-Za-z_]\w*"
CONTROL = {"if", "for", "while", "switch", "return", "sizeof", "catch", "do", "else", "case",
           "static_assert", "decltype", "alignof", "defined"}


def match_bracket(code: str, i: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket matching code[i] == open_c (len(code) if unbalanced)."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_c:
            depth += 1
        elif code[j] == close_c:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


@dataclass(frozen=True)
class Function:
    """A function definition: its name (Struct::name for a member), parameter text, body span."""

    name: str
    params: str
    start: int  # offset of the body's `{`
    end: int  # just past its `}`
    at: int = -1  # offset of the name (its declaration: template header and return type before it)

    def body(self, code: str) -> str:
        return code[self.start:self.end]


def _struct_spans(code: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in re.finditer(rf"\b(?:struct|class)\s+({IDENT})\s*(?:<[^{{;]*>)?\s*(?::[^{{;]*)?\{{", code):
        spans.append((m.end() - 1, match_bracket(code, m.end() - 1, "{", "}"), m.group(1)))
    return spans


def functions(code: str) -> list[Function]:
    """Every function definition `name(params) [const] {` (members qualified by their struct)."""
    return list(_functions(code))


@functools.lru_cache(maxsize=256)
def _functions(code: str) -> tuple[Function, ...]:
    """functions(code), once per text (synth_check and each rule module ask for every file's)."""
    structs = _struct_spans(code)
    out = []
    for m in re.finditer(rf"\b({IDENT})\s*\(", code):
        name = m.group(1)
        before = code[max(0, m.start() - 16):m.start()]
        if name in CONTROL or re.search(r"(\.|->|\bnew|=|\breturn)\s*$", before):
            continue
        close = match_bracket(code, m.end() - 1, "(", ")")
        tail = re.match(r"\s*(?:const\s*)?(?:noexcept\s*)?\{", code[close:])
        if tail is None:
            continue
        b0 = close + tail.end() - 1
        owner = [s for s in structs if s[0] < m.start() < s[1]]
        qual = f"{min(owner, key=lambda s: s[1] - s[0])[2]}::{name}" if owner else name
        out.append(Function(qual, code[m.end():close - 1], b0, match_bracket(code, b0, "{", "}"), m.start()))
    return tuple(out)


def pointer_params(params: str) -> set[str]:
    """Names of the pointer parameters (`T *name`, `T *const &name`) of a parameter list."""
    names = set()
    for p in _split_top(params):
        p = p.split("=")[0]
        if "*" in p:
            w = re.findall(IDENT, p.split("*")[-1])
            if w:
                names.add(w[-1])
    return names


def _split_top(text: str) -> list[str]:
    """text split at commas outside brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _pragmas(body: str, kind: str) -> Iterator[re.Match[str]]:
    """The `#pragma HLS <kind>` of body, group 1 their text (to the line's end, or to a `;`: the pragmas
    of an expanded macro share its line, hw/synth_macros.py)."""
    return re.finditer(rf"#\s*pragma\s+HLS\s+{kind}\b([^\n;]*)", body, re.I)


def _has(body: str, what: str) -> bool:
    """Whether body holds `#pragma HLS <what>` (what: a regular expression)."""
    return re.search(rf"#\s*pragma\s+HLS\s+{what}", body, re.I) is not None


def _pragma_var(text: str) -> str | None:
    m = re.search(rf"\bvariable\s*=\s*({IDENT}(?:\s*\.\s*{IDENT})*)", text)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def dataflow_inline(code: str, fn: Function) -> Iterator[tuple[int, str, str]]:
    """DATAFLOW without INLINE off."""
    body = fn.body(code)
    m = next(_pragmas(body, "DATAFLOW"), None)
    if m and not _has(body, r"INLINE\s+off\b"):
        yield fn.start + m.start(), "dataflow-inline", f"{fn.name}: DATAFLOW function without INLINE off"


def hardware_units(code: str, fns: list[Function]) -> set[str]:
    """Names (Struct::name for members) of the functions that stay modules of their own: INLINE off or
    DATAFLOW in their body."""
    return {f.name for f in fns if _has(f.body(code), r"(?:INLINE\s+off|DATAFLOW)\b")}


def _call_pattern(unit: str) -> str:
    if "::" in unit:
        s, n = unit.split("::")
        targs = r"(<[^;{}()]*>)?"
        return rf"\b{s}\s*{targs}\s*::\s*(?:template\s+)?{n}\s*{targs}\s*\("
    return rf"(?<![\w.:>]){unit}\s*(<[^;{{}}()]*>)?\s*\("


def shared_call(code: str, fn: Function, units: set[str]) -> Iterator[tuple[int, str, str]]:
    """A non-inlined function called from >= 2 sites of fn without an ALLOCATION limit for it."""
    body = fn.body(code)
    if next(_pragmas(body, "DATAFLOW"), None):
        return
    limited = set()  # units an ALLOCATION function limit=1 names (template arguments dropped)
    for m in _pragmas(body, "ALLOCATION"):
        text = m.group(1)
        inst = re.search(r"\binstances\s*=\s*(.+?)\s+limit\b", text)
        if inst and re.search(r"\blimit\s*=\s*1\b", text) and re.search(r"\bfunction\b", text):
            name = inst.group(1)
            while re.search(r"<[^<>]*>", name):
                name = re.sub(r"<[^<>]*>", "", name)
            limited.add(re.sub(r"\s+", "", name))
    for unit in sorted(units):
        sites: dict[str, list[int]] = {}
        for c in re.finditer(_call_pattern(unit), body):
            if fn.name == unit:
                continue
            key = re.sub(r"\s+", "", c.group(0))
            sites.setdefault(key, []).append(c.start())
        for key, where in sites.items():
            if len(where) >= 2 and unit not in limited:
                yield (fn.start + where[1], "shared-call",
                       f"{fn.name} calls {key.rstrip('(')} from {len(where)} sites, no ALLOCATION limit=1")


def _declared_arrays(body: str) -> dict[str, int]:
    """Local arrays declared in a body: name -> number of dimensions."""
    out = {}
    names = rf"((?:{IDENT}\s*(?:\[[^\]]+\])+\s*,?\s*)+)"
    decl = rf"(?:^|[;{{}}])\s*(?:static\s+)?(?:const\s+)?(?:typename\s+)?[\w:<>, ]*?[\w>]\s+{names};"
    for m in re.finditer(decl, body, re.M):
        for d in re.finditer(rf"({IDENT})\s*((?:\[[^\]]+\])+)", m.group(1)):
            out[d.group(1)] = d.group(2).count("[")
    return out


def _partitions(body: str) -> dict[str, list[tuple[str, int]]]:
    """ARRAY_PARTITION pragmas per variable: (type, dim) with dim 1 when not given."""
    out: dict[str, list[tuple[str, int]]] = {}
    for m in _pragmas(body, "ARRAY_PARTITION"):
        var = _pragma_var(m.group(1))
        if var is None:
            continue
        kind = "complete" if re.search(r"\bcomplete\b", m.group(1)) else "other"
        dim = re.search(r"\bdim\s*=\s*(\d+)", m.group(1))
        out.setdefault(var, []).append((kind, int(dim.group(1)) if dim else 1))
    return out


def partitioned_dependence(code: str, fn: Function) -> Iterator[tuple[int, str, str]]:
    """DEPENDENCE false / distance on a fully partitioned local array."""
    body = fn.body(code)
    arrays, parts = _declared_arrays(body), _partitions(body)
    for m in _pragmas(body, "DEPENDENCE"):
        var, text = _pragma_var(m.group(1)), m.group(1)
        if var not in arrays or not (re.search(r"\bfalse\b", text) or re.search(r"\bdistance\b", text)):
            continue
        complete = {d for k, d in parts.get(var, []) if k == "complete"}
        if 0 in complete or set(range(1, arrays[var] + 1)) <= complete:
            yield fn.start + m.start(), "partitioned-dependence", \
                f"DEPENDENCE on {var}, fully partitioned (registers) in {fn.name}"


def loop_head(text: str, at: int) -> tuple[str, int, int]:
    """(header, body start, body end) of the for / while loop whose keyword starts at `at`; a body that is
    one statement spans to its `;`."""
    p0 = text.index("(", at)
    p1 = match_bracket(text, p0, "(", ")")
    j = p1
    while j < len(text) and text[j].isspace():
        j += 1
    e = match_bracket(text, j, "{", "}") if text[j:j + 1] == "{" else text.find(";", j) + 1
    return text[p0 + 1:p1 - 1], j, e


def outer_loops(text: str) -> Iterator[tuple[int, str, int, int]]:
    """(keyword offset, header, body start, body end) of each for / while loop of text not inside an
    earlier one (loop_head)."""
    end = 0
    for m in re.finditer(r"\b(?:for|while)\s*\(", text):
        if m.start() < end:
            continue
        header, b0, end = loop_head(text, m.start())
        yield m.start(), header, b0, end


def _own_statements(loop_body: str) -> str:
    """A loop body without its nested non-unrolled loops (their stores are their own)."""
    out, i = [], 0
    for at, _, j, e in outer_loops(loop_body):
        inner = loop_body[j:e]
        if _has(inner, r"UNROLL\b") and not _has(inner, r"PIPELINE\b"):  # unrolled: its stores twice at least
            out.append(loop_body[i:at] + _own_statements(inner) * 2)
        else:
            out.append(loop_body[i:at])
        i = e
    out.append(loop_body[i:])
    return "".join(out)


def ii1_loops(body: str) -> Iterator[tuple[int, str]]:
    """(offset of the loop keyword, the statements of one iteration) of every braced for / while loop in
    body pipelined at II=1 (PIPELINE without an II of 2 or more); nested loops' statements unrolled."""
    for m in re.finditer(r"\b(?:for|while)\s*\(", body):
        _, j, e = loop_head(body, m.start())
        if body[j:j + 1] != "{":
            continue
        own = _own_statements(body[j + 1:e - 1])
        if _has(own, r"PIPELINE\b(?![^\n]*\bII\s*=\s*(?:[2-9]|\d\d))"):
            yield m.start(), own


def _banked(arrays: dict[str, int], parts: dict[str, list[tuple[str, int]]]) -> dict[str, list[int]]:
    """Arrays split into memories by complete partitions of some dimensions only (no other partition
    type): name -> those dimensions (1-based). Each memory keeps one write port."""
    out = {}
    for a, n in arrays.items():
        kinds = parts.get(a, [])
        dims = sorted({d for k, d in kinds if k == "complete"})
        some = 0 not in dims and set(range(1, n + 1)) - set(dims)
        if kinds and all(k == "complete" for k, _ in kinds) and some:
            out[a] = dims
    return out


def double_store(code: str, fn: Function) -> Iterator[tuple[int, str, str]]:
    """>= 2 stores to one unpartitioned local array in an II=1 pipelined loop body; for an array
    partitioned completely on some dimensions only, >= 2 distinct stores with the same index text on
    those dimensions (the same memory)."""
    body = fn.body(code)
    arrays, parts = _declared_arrays(body), _partitions(body)
    plain = {a for a in arrays if a not in parts}
    banked = _banked(arrays, parts)
    for at, own in ii1_loops(body):
        for a in sorted(plain):
            stores = re.findall(rf"(?<![\w.]){a}\s*(?:\[[^\]]*\])+\s*=(?!=)", own)
            if len(stores) >= 2:
                yield fn.start + at, "double-store", \
                    f"{len(stores)} stores to {a} (one write port) per iteration of an II=1 loop in {fn.name}"
        for a, dims in sorted(banked.items()):
            distinct = set(re.findall(rf"(?<![\w.]){a}\s*((?:\[[^\]]*\])+)\s*=(?!=)", own))
            keys = [tuple(re.findall(r"\[([^\]]*)\]", ix)[d - 1].strip() for d in dims) for ix in distinct]
            if len(keys) != len(set(keys)):
                yield fn.start + at, "double-store", \
                    f"stores to one memory of {a} (partitioned on dim {dims}) per iteration of an II=1 loop" \
                    f" in {fn.name}"


def _loop_spans(body: str) -> list[tuple[int, int]]:
    """(start of the loop keyword, end of its braced body) of every for / while loop in body."""
    spans = []
    for m in re.finditer(r"\b(?:for|while)\s*\(", body):
        _, j, e = loop_head(body, m.start())
        if body[j:j + 1] == "{":
            spans.append((m.start(), e))
    return spans


def dep_unchecked(code: str, fn: Function) -> Iterator[tuple[int, str, str]]:
    """A DEPENDENCE pragma without its EDGELLM_DEP_CLAIM (same variable and distance) in the function or
    without EDGELLM_DEP_ITER in its loop."""
    body = fn.body(code)
    claim = r"\bEDGELLM_DEP_CLAIM\s*\(([^;]*)\)\s*;"
    claims = {re.sub(r"\s+", "", m.group(1)) for m in re.finditer(claim, body)}
    loops = _loop_spans(body)
    for m in _pragmas(body, "DEPENDENCE"):
        text = m.group(1)
        var = _pragma_var(text)
        dist = re.search(r"\bdistance\s*=\s*([\w:]+)", text)
        want = f"{var},{dist.group(1) if dist else 0}"
        inner = [sp for sp in loops if sp[0] < m.start() < sp[1]]
        own = max(inner, key=lambda sp: sp[0]) if inner else (0, 0)  # the innermost loop around it
        loop = body[own[0]:own[1]]
        if var is None or want not in claims or "EDGELLM_DEP_ITER" not in loop:
            yield (fn.start + m.start(), "dep-unchecked",
                   f"DEPENDENCE on {var} in {fn.name} without EDGELLM_DEP_CLAIM({want.replace(',', ', ')}) "
                   "and EDGELLM_DEP_ITER in its loop (dep_check.h)")


def run(code: str, units: set[str]) -> list[tuple[int, str, str]]:
    """Findings of one comment-free source text; units: the non-inlined functions of every scanned
    file and the library."""
    found: list[tuple[int, str, str]] = []
    for fn in functions(code):
        for rule in (dataflow_inline(code, fn), shared_call(code, fn, units),
                     partitioned_dependence(code, fn), double_store(code, fn), dep_unchecked(code, fn)):
            found.extend(rule)
    return found
