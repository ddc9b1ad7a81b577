"""synth_check's DATAFLOW channel rules (hw/synth_check.py runs them over each source's comment-free text).

  stream-fanout  an hls::stream of a DATAFLOW region (a local of the function with `#pragma HLS DATAFLOW`,
                 or a stream parameter it passes on) that two or more of the region's processes write, or
                 two or more read. Vitis HLS requires one producer and one consumer per channel (UG1399
                 "Dataflow", single-producer-single-consumer); C simulation accepts the fan-out.
  array-fanout   the same for an array of a DATAFLOW region (a local array of the region's function, or an
                 array parameter it passes on: a PIPO channel, UG1448 "variables (except scalars) can only
                 have one reading process and one writing process"): two or more of its processes write
                 it, or two or more read it (one process may do both). Any element counts for the array.
The region's processes are the calls in its body, plain (`f(a, s)`) or `EDGELLM_PROCESS(f<..>(a, s))`
(hw/include/edgellm/dataflow.h); a callee with `#pragma HLS INLINE` (a struct's static `run`) is
followed two levels, its calls counting as the region's processes (of several definitions, e.g. one
per specialization, the one with the most producers / consumers counts: they are alternatives). A
process uses a stream its argument list names (`s`, `&s`, `s[2]`: an element of a stream array with an
integer index; a whole array counts for each element). Its direction is read from the callee's body at
that parameter: `.write(` `.write_nb(` `.full(` `<<` produce, `.read(` `.read_nb(` `.empty(` `>>`
consume; a parameter passed on is followed six call levels (PASS_LEVELS). A direction is claimed only
where every definition of the callee (of that arity) shows it; an unresolved callee or parameter claims
nothing.
A parameter list written as an object-like macro (top_fetch.h EDGELLM_FETCH_ARGS) is expanded from
hw/include's definitions. A template argument list holding a comparison (`f<C, P < N ? P : 0>(`) is
closed at the `>` before the call's `(`. Followed so far: the top's weight / head FIFOs' producers (the
fetchers, down to the write); not their consumers (the engine's chain is deeper, and its
memory-port and FIFO definitions share names, so no direction is claimed).
An array parameter's direction (array_access): `a[i] = ` (any index depth, `.field` after it) writes,
`a[i] += `, `++a[i]`, `a[i]++` read and write, any other indexed use reads; the array (or a row `a[i]`)
passed whole to a callee's array or pointer parameter is followed as a stream is; an element passed to a
scalar parameter reads; a bare use elsewhere (pointer arithmetic) claims nothing. The region's pointer
parameters (m_axi ports) are not channels here.
Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import re

from edgellm.hw.synth_calls import (
    STREAM,
    Call,
    Item,
    arg_ref,
    calls,
    definitions,
    flat,
    is_inline,
    param_kinds,
)
from edgellm.hw.synth_maxi import Callees
from edgellm.hw.synth_pragmas import IDENT, Function, _has, _split_top, functions, match_bracket

Key = tuple[str, str | None]  # (channel, element index or None for the whole stream / array)
Proc = tuple[int, str, int]  # (offset reported, process name, offset of the call itself)
Uses = dict[Key, tuple[list[Proc], list[Proc]]]  # key -> (producers, consumers)
INLINE_LEVELS = 2  # INLINE callees followed from the region
PASS_LEVELS = 6  # call levels a stream or array parameter is followed through
_WRITE = re.compile(r"\s*(?:\[[^\]]*\]\s*)?(?:(?:\.|->)\s*(write|write_nb|full)\s*\(|<<)")
_READ = re.compile(r"\s*(?:\[[^\]]*\]\s*)?(?:(?:\.|->)\s*(read|read_nb|empty)\s*\(|>>)")
# an index chain (one level of nested brackets inside an index) and member selections after it
_INDEX = r"(?:\s*\[(?:[^\[\]]|\[[^\[\]]*\])*\])+(?:\s*\.\s*\w+)*"
_ASSIGN = re.compile(r"\s*=(?!=)")
_UPDATE = re.compile(r"\s*(?:[-+*/%&|^]|<<|>>)=|\s*(?:\+\+|--)")


_DIR: dict[tuple[Function, str, int, int], frozenset[str]] = {}  # direction()'s, one run()'s


def direction(fn: Function, code: str, i: int, fns: Callees, level: int = PASS_LEVELS) -> frozenset[str]:
    """What fn does with its i-th parameter, a stream or an array: {"W"}, {"R"}, both, or nothing
    claimed."""
    key = (fn, code, i, level)
    if key not in _DIR:
        _DIR[key] = _find_direction(fn, code, i, fns, level)
    return _DIR[key]


def stream_access(name: str, body: str) -> set[str]:
    """The directions body's own uses of stream `name` show (its calls aside)."""
    found: set[str] = set()
    for m in re.finditer(rf"(?<![\w.>:]){re.escape(name)}\b", body):
        if _WRITE.match(body, m.end()):
            found.add("W")
        elif _READ.match(body, m.end()):
            found.add("R")
    return found


def array_access(name: str, body: str) -> set[str]:
    """The directions body's own indexed uses of array `name` show; an indexed use that is a whole call
    argument with one index (`f(a[i])`: an element or a row) is left to the call (_find_direction)."""
    found: set[str] = set()
    for m in re.finditer(rf"(?<![\w.>:]){re.escape(name)}(?={_INDEX})", body):
        end = re.compile(_INDEX).match(body, m.end()).end()
        before = body[:m.start()].rstrip()[-2:]
        after = body[end:].lstrip()[:1]
        whole_arg = before[-1:] in "(," and after in (")", ",") and not before.endswith(("++", "--"))
        if whole_arg and arg_ref(body[m.start():end]) is not None:
            continue
        if before in ("++", "--") or _UPDATE.match(body, end):
            found |= {"R", "W"}
        elif _ASSIGN.match(body, end):
            found.add("W")
        else:
            found.add("R")
    return found


def _find_direction(fn: Function, code: str, i: int, fns: Callees, level: int) -> frozenset[str]:
    params = param_kinds(fn.params)
    if i >= len(params) or not params[i][1] or not params[i][0]:
        return frozenset()
    (name, kind), body = params[i], fn.body(code)
    found = stream_access(name, body) if kind == "stream" else array_access(name, body)
    if level > 0:
        for call in flat(calls(body)):
            for j, arg in enumerate(call[3]):
                ref = arg_ref(arg)
                if ref is not None and ref[0] == name:
                    element = kind == "array" and ref[1] is not None
                    found |= _callee_direction(call, j, fns, level - 1, element)
    return frozenset(found)


def _callee_direction(call: Call, j: int, fns: Callees, level: int, element: bool = False) -> frozenset[str]:
    """The directions every definition of call's callee shows at parameter j (nothing when none);
    element: the argument is an array's element (or row), a read where the parameter is a scalar."""
    defs = definitions(call, fns)
    if not defs:
        return frozenset()
    dirs = []
    for fn, code in defs:
        params = param_kinds(fn.params)
        scalar = element and j < len(params) and params[j][1] == ""
        dirs.append(frozenset({"R"}) if scalar else direction(fn, code, j, fns, level))
    return frozenset.intersection(*dirs)


def _merge(into: Uses, more: Uses) -> None:
    for k, (w, r) in more.items():
        a, b = into.setdefault(k, ([], []))
        a.extend(w)
        b.extend(r)


def _alternatives(options: list[Uses]) -> Uses:
    """Of alternative definitions' uses, per stream the most producers and the most consumers."""
    out: Uses = {}
    for opt in options:
        for k, (w, r) in opt.items():
            a, b = out.setdefault(k, ([], []))
            if len(w) > len(a):
                a[:] = w
            if len(r) > len(b):
                b[:] = r
    return out


def _uses(body_calls: list[Item], env: dict[str, Key], fns: Callees, level: int,
          at: int | None = None, arrays: bool = False) -> Uses:
    """Producers and consumers, per region channel, of calls (env: a name in them -> the region's channel;
    at: the region offset the findings of an inlined callee's calls are placed at; arrays: the channels
    are arrays, any element of which counts for the whole)."""
    out: Uses = {}
    for call in body_calls:
        if isinstance(call, list):  # an if / else chain: its branches are alternatives
            _merge(out, _alternatives([_uses(b, env, fns, level, at, arrays) for b in call]))
            continue
        off = call[0] if at is None else at
        refs, elements = {}, set()
        for j, arg in enumerate(call[3]):
            ref = arg_ref(arg)
            if ref is not None and ref[0] in env:
                base = env[ref[0]]
                idx = ref[1] if base[1] is None else base[1] if ref[1] is None else "?"
                refs[j] = (base[0], None if arrays else idx)
                if arrays and ref[1] is not None:
                    elements.add(j)
        if not refs:
            continue
        defs = definitions(call, fns)
        if defs and level > 0 and all(is_inline(fn, code) for fn, code in defs):
            options = []
            for fn, code in defs:
                params = param_kinds(fn.params)
                sub = {params[j][0]: k for j, k in refs.items()
                       if j < len(params) and params[j][0] and j not in elements}
                options.append(_uses(calls(fn.body(code)), sub, fns, level - 1, off, arrays))
            _merge(out, _alternatives(options))
            continue
        for j, k in refs.items():
            if k[1] == "?":
                continue
            d = _callee_direction(call, j, fns, PASS_LEVELS, j in elements) if defs else frozenset()
            w, r = out.setdefault(k, ([], []))
            if "W" in d:  # (where it is reported, the process, the call itself: an inlined body's calls
                w.append((off, call[2], call[0]))  # all sit at the region's call of that body)
            if "R" in d:
                r.append((off, call[2], call[0]))
    return out


def region_streams(fn: Function, code: str) -> dict[str, Key]:
    """The streams of a region: its local hls::stream declarations and stream parameters."""
    body = fn.body(code)
    names = {p: (p, None) for p, kind in param_kinds(fn.params) if kind == "stream" and p}
    for m in STREAM.finditer(body):
        close = match_bracket(body, m.end() - 1, "<", ">")
        end = body.find(";", close)
        for decl in _split_top(body[close:end if end >= 0 else len(body)]):
            n = re.match(rf"\s*&?\s*({IDENT})", decl)
            if n:
                names[n.group(1)] = (n.group(1), None)
    return names


# a local array declaration at a statement's start: [static] [const] type name[...]
_ARRAY_DECL = re.compile(rf"(?:^|[;{{}}])\s*(?:static\s+)?(?:const\s+)?(?:typename\s+)?"
                         rf"({IDENT})(?:\s*::\s*{IDENT})*(?:\s*<[^;{{}}()]*>)?(?:\s*::\s*{IDENT})*"
                         rf"\s+({IDENT})\s*\[", re.M)
_NOT_TYPES = ("return", "delete", "throw", "case", "goto", "else", "new", "typedef", "using", "sizeof")


def region_arrays(fn: Function, code: str) -> dict[str, Key]:
    """The arrays of a region: its local array declarations and array parameters (`T a[N]`, `T (&a)[N]`;
    not pointers: the m_axi ports)."""
    body = fn.body(code)
    names = {}
    for p in _split_top(fn.params):
        kinds = param_kinds(p)
        if kinds and kinds[0][1] == "array" and kinds[0][0] and "[" in p:
            names[kinds[0][0]] = (kinds[0][0], None)
    for m in _ARRAY_DECL.finditer(body):
        if not STREAM.search(body[m.start():m.end()]) and m.group(1) not in _NOT_TYPES:
            names[m.group(2)] = (m.group(2), None)
    return names


def channel_fanout(code: str, fn: Function, fns: Callees) -> list[tuple[int, str, str]]:
    """The stream-fanout and array-fanout findings of one function (none unless it has
    `#pragma HLS DATAFLOW`)."""
    body = fn.body(code)
    if not _has(body, r"DATAFLOW\b"):
        return []
    out = []
    for what, env, arrays in (("stream", region_streams(fn, code), False),
                              ("array", region_arrays(fn, code), True)):
        if not env:
            continue
        uses = _uses(calls(body), env, fns, INLINE_LEVELS, arrays=arrays)
        roles = (("producers", "consumers") if what == "stream" else ("writers", "readers"))
        for (name, idx), _ in sorted(uses.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            whole = uses.get((name, None), ([], [])) if idx is not None else ([], [])
            shown = name if idx is None else f"{name}[{idx}]"
            for role, pos in zip(roles, (0, 1), strict=True):
                procs = sorted(set(uses[(name, idx)][pos]) | set(whole[pos]))
                if len(procs) >= 2:
                    who = ", ".join(p for _, p, _ in procs)
                    need = "producer and one consumer" if what == "stream" else "writer and one reader"
                    out.append((fn.start + procs[1][0], f"{what}-fanout",
                                f"{fn.name}: {what} {shown} has {len(procs)} {role} in its DATAFLOW region "
                                f"({who}); Vitis HLS needs one {need}"))
    return out


def run(code: str, fns: Callees | None = None) -> list[tuple[int, str, str]]:
    """stream-fanout and array-fanout over one comment-free source text; fns: every scanned file's and the
    library's function definitions (default this text's)."""
    from edgellm.hw.synth_maxi import callees

    by_name = fns if fns is not None else callees(code)
    _DIR.clear()
    found: list[tuple[int, str, str]] = []
    for fn in functions(code):
        found += channel_fanout(code, fn, by_name)
    return found
