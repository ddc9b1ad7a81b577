"""synth_check's float-recurrence rule (hw/synth_check.py runs it beside the others; it returns (offset,
rule, detail) tuples).

  float-recurrence  in a loop pipelined at II = 1 (PIPELINE with no II, or II = 1), a floating-point value
                    carried from one iteration to the next through arithmetic: a float / double scalar
                    declared before the loop, or a reference parameter, updated with `+=`, `-=`, `*=`,
                    `/=` or `v = .. v op ..`; or an element of such an array at a static index (literals,
                    constants, unrolled lanes: the same element every iteration). A float add takes several
                    cycles at the design clocks (UG1399: Vitis HLS then reports the carried dependence,
                    HLS 200-880, and raises the II to the operation's latency), so every cycle count that
                    assumed II = 1 would be off. The library keeps such sums in delay lines (numerics_lanes.h
                    LaneRing) or in arrays indexed by the row of a rotation, with a DEPENDENCE distance that
                    the C simulation checks (hw/include/edgellm/dep_check.h). Exempt: a variable a
                    DEPENDENCE pragma of the function names (that claim is checked there), an array
                    the iteration moves along (`a[j] = a[j + U]`: a delay line, whose length is the
                    recurrence's distance, LaneUnits), comparisons (a running max: no add).
The iteration is hw/synth_iteration.py's (unrolled loops copied, INLINE callees inlined with their
parameters renamed to the arguments). Float types: float, double, f32 and the typedefs / aliases of them the
source declares. Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from edgellm.hw.synth_iteration import Expander, is_static, no_csim
from edgellm.hw.synth_pragmas import (
    IDENT,
    Function,
    _split_top,
    functions,
    ii1_loops,
    loop_head,
    match_bracket,
)

FLOAT_TYPES = ("float", "double", "f32")
_OPS = r"[-+*/]"


def float_types(code: str) -> set[str]:
    """FLOAT_TYPES and the names code makes aliases of them (`typedef float x;`, `using x = f32;`), to a
    fixed point (an alias of an alias)."""
    out = set(FLOAT_TYPES)
    while True:
        alt = "|".join(sorted(out))
        more = {m.group(1) for m in re.finditer(rf"\btypedef\s+(?:const\s+)?(?:{alt})\s+({IDENT})\s*;", code)}
        more |= {m.group(1) for m in re.finditer(rf"\busing\s+({IDENT})\s*=\s*(?:{alt})\s*;", code)}
        if more <= out:
            return out
        out |= more


@functools.lru_cache(maxsize=8)
def _types_of(codes: frozenset[str]) -> frozenset[str]:
    """float_types over every text a run reads (once per run: synth_check asks per file)."""
    return frozenset(float_types("\n".join(sorted(codes))))


def _ii1(body: str) -> Iterator[tuple[int, int, int]]:
    """(loop keyword offset, body start, body end) of synth_pragmas.ii1_loops' loops whose PIPELINE gives
    no II or a literal 1 (a symbolic II may be the recurrence's latency) and is not off."""
    for at, own in ii1_loops(body):
        for p in re.finditer(r"#\s*pragma\s+HLS\s+PIPELINE\b([^\n;]*)", own, re.I):
            ii = re.search(r"\bII\s*=\s*(\S+)", p.group(1), re.I)
            if not re.search(r"\boff\b", p.group(1)) and (ii is None or ii.group(1) == "1"):
                _, j, e = loop_head(body, at)
                yield at, j, e
                break


def _declared(params: str, before: str, types: set[str]) -> tuple[set[str], set[str]]:
    """(scalars, arrays) of a float type among a function's parameters (`T &x`, `T x[..]`, `T *x`; a value
    parameter is a scalar too) and the statements before a loop (`T x`, `T x = ..`, `T x[..]`, several
    declarators; `const` too)."""
    alt = "|".join(sorted(types))
    decl = rf"(?<![\w:])(?:static\s+)?(?:const\s+)?(?:{alt})\b(?!\s*[(*>)])"
    scalars, arrays = set(), set()
    parts = [p for p in _split_top(params) if re.match(rf"\s*{decl}", p)]
    for p in _split_top(params):  # a pointer parameter: storage indexed like an array
        ptr = re.match(rf"\s*(?:const\s+)?(?:{alt})\s*\*\s*(?:const\s+)?({IDENT})\s*$", p.split("=")[0])
        if ptr:
            arrays.add(ptr.group(1))
    parts += [x for m in re.finditer(rf"{decl}([^;(){{}}]*)", before) for x in _split_top(m.group(1))]
    for part in parts:
        part = part.split("=")[0]
        part = re.sub(rf"^\s*(?:static\s+)?(?:const\s+)?(?:{alt})\b", "", part)
        d = re.match(rf"\s*&?\s*({IDENT})\s*(\[)?", part)
        if d:
            (arrays if d.group(2) else scalars).add(d.group(1))
    return scalars, arrays


def _updated(it: str, v: str) -> bool:
    """Whether the iteration updates scalar v from its own value with arithmetic."""
    if re.search(rf"(?<![\w.\]>]){re.escape(v)}\s*{_OPS}=", it):
        return True
    name = rf"(?<![\w.]){re.escape(v)}\b(?!\s*\[)"
    for m in re.finditer(rf"(?<![\w.\]>]){re.escape(v)}\s*=(?!=)([^;]*)", it):
        if re.search(rf"{name}\s*{_OPS}|{_OPS}\s*{name}", m.group(1)):
            return True
    return False


def _static_updates(it: str, a: str, consts: set[str]) -> str | None:
    """The first `a[i]..[j] op=` (or `a[..] = .. a[..] op`, the same indices) of the iteration whose indices
    are all static, as written; None when there is none."""
    for m in re.finditer(rf"(?<![\w.]){re.escape(a)}\s*\[", it):
        k, idx = m.end() - 1, []
        while k < len(it) and it[k] == "[":
            e = match_bracket(it, k, "[", "]")
            idx.append(it[k + 1:e - 1])
            k = e
            while k < len(it) and it[k].isspace():
                k += 1
        if not idx or not all(is_static(i, consts) for i in idx):
            continue
        ref = it[m.start():k].strip()
        if re.match(rf"\s*{_OPS}=", it[k:]):
            return ref
        rhs = re.match(r"\s*=(?!=)([^;]*)", it[k:])
        flat, same = re.sub(r"\s+", "", rhs.group(1)) if rhs else "", re.escape(re.sub(r"\s+", "", ref))
        if rhs and re.search(rf"{same}{_OPS}|{_OPS}{same}(?!\[)", flat):
            return ref
    return None


def _rotated(it: str, a: str) -> bool:
    """Whether the iteration moves a's elements along (`a[j] = a[j + U]`: a delay line, numerics_lanes.h
    LaneRing): an element's update then returns to it the line's length later, not the next iteration
    (LaneUnits sizes the line to the add's latency)."""
    name = rf"(?<![\w.]){re.escape(a)}"
    for m in re.finditer(rf"{name}\s*\[([^\]]*)\]\s*=(?!=)\s*{name}\s*\[([^\]]*)\]\s*;", it):
        if re.sub(r"\s+", "", m.group(1)) != re.sub(r"\s+", "", m.group(2)):
            return True
    return False


def recurrences(code: str, fn: Function, consts: set[str], fns: dict[str, list[tuple[Function, str]]],
                types: set[str]) -> Iterator[tuple[int, str, str]]:
    """Findings of fn's II = 1 loops."""
    body = fn.body(code)
    claimed = {m.group(1) for m in re.finditer(rf"#\s*pragma\s+HLS\s+DEPENDENCE\s+variable\s*=\s*({IDENT})",
                                               body, re.I)}
    for at, b0, b1 in _ii1(body):
        scalars, arrays = _declared(fn.params, body[:b0], types)
        it = Expander(fns, scalars | arrays, consts).iteration(no_csim(body[b0 + 1:b1 - 1]))
        for v in sorted(scalars - claimed):
            if _updated(it, v):
                yield (fn.start + at, "float-recurrence",
                       f"{v} (a float) is updated from its own value every iteration of an II=1 loop in "
                       f"{fn.name}: the add's latency sets the II")
        for a in sorted(arrays - claimed):
            ref = None if _rotated(it, a) else _static_updates(it, a, consts)
            if ref:
                yield (fn.start + at, "float-recurrence",
                       f"{ref} (a float element at a static index) is updated from its own value every "
                       f"iteration of an II=1 loop in {fn.name}: the add's latency sets the II")


def run(code: str, consts: set[str], fns: dict[str, list[tuple[Function, str]]] | None = None
        ) -> list[tuple[int, str, str]]:
    """Findings of the float-recurrence rule over one comment-free source text; fns: the functions an
    iteration may inline (every scanned file's and the library's; default this text's)."""
    if fns is None:
        fns = {}
        for f in functions(code):
            fns.setdefault(f.name.split("::")[-1], []).append((f, code))
    types = _types_of(frozenset([code, *(c for defs in fns.values() for _, c in defs)]))
    return [x for fn in functions(code) for x in recurrences(code, fn, consts, fns, types)]
