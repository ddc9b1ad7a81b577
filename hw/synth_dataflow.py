"""synth_check's stream-fanout rule (hw/synth_check.py runs it over each source's comment-free text).

  stream-fanout  an hls::stream of a DATAFLOW region (a local of the function with `#pragma HLS DATAFLOW`,
                 or a stream parameter it passes on) that two or more of the region's processes write, or
                 two or more read. Vitis HLS requires one producer and one consumer per channel (UG1399
                 "Dataflow", single-producer-single-consumer); C simulation accepts the fan-out.
The region's processes are the calls in its body, plain (`f(a, s)`) or `EDGELLM_PROCESS(f<..>(a, s))`
(hw/include/edgellm/dataflow.h); a callee with `#pragma HLS INLINE` (a struct's static `run`) is
followed two levels, its calls counting as the region's processes (of several definitions, e.g. one
per specialization, the one with the most producers / consumers counts: they are alternatives). A
process uses a stream its argument list names (`s`, `&s`, `s[2]`: an element of a stream array with an
integer index; a whole array counts for each element). Its direction is read from the callee's body at
that parameter: `.write(` `.write_nb(` `.full(` `<<` produce, `.read(` `.read_nb(` `.empty(` `>>`
consume; a parameter passed on is followed four call levels (PASS_LEVELS). A direction is claimed only
where every definition of the callee (of that arity) shows it; an unresolved callee or parameter claims
nothing.
A parameter list written as an object-like macro (top_fetch.h EDGELLM_FETCH_ARGS) is expanded from
hw/include's definitions. A template argument list holding a comparison (`f<C, P < N ? P : 0>(`) is
closed at the `>` before the call's `(`. Followed so far: the top's weight / head FIFOs' producers (the
fetchers, four call levels down to the write); not their consumers (the engine's chain is deeper, and its
memory-port and FIFO definitions share names, so no direction is claimed). Local arrays used as
channels (PIPO) are not checked.
Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from edgellm.hw import synth_macros
from edgellm.hw.synth_maxi import Callees
from edgellm.hw.synth_pragmas import IDENT, Function, _has, _split_top, functions, match_bracket

Key = tuple[str, str | None]  # (stream, element index or None for the whole stream / array)
Call = tuple[int, str, str, list[str]]  # (offset, qualifier or "", name, argument texts)
Item = Call | list  # a call, or an if / else chain: a list of its branches (each a list of Items)
Proc = tuple[int, str, int]  # (offset reported, process name, offset of the call itself)
Uses = dict[Key, tuple[list[Proc], list[Proc]]]  # key -> (producers, consumers)
INLINE_LEVELS = 2  # INLINE callees followed from the region
PASS_LEVELS = 4  # call levels a stream parameter is followed through
_WRITE = re.compile(r"\s*(?:\[[^\]]*\]\s*)?(?:(?:\.|->)\s*(write|write_nb|full)\s*\(|<<)")
_READ = re.compile(r"\s*(?:\[[^\]]*\]\s*)?(?:(?:\.|->)\s*(read|read_nb|empty)\s*\(|>>)")
_STREAM = re.compile(r"\bhls\s*::\s*stream\s*<")


@functools.lru_cache(maxsize=1)
def _object_macros() -> dict[str, str]:
    """hw/include's object-like macros: name -> body (synth_macros.object_defines)."""
    out: dict[str, str] = {}
    for p in sorted((Path(__file__).resolve().parent / "include").rglob("*.h")):
        for name, body in synth_macros.object_defines(p.read_text(errors="replace")).items():
            out.setdefault(name, body)
    return out


def _params(params: str) -> list[tuple[str, bool]]:
    """(name, is a stream) of each parameter, in order."""
    text = params.strip()
    if re.fullmatch(IDENT, text) and text in _object_macros():
        text = _object_macros()[text]
    out = []
    for p in _split_top(text):
        p = p.split("=")[0].strip()
        if not p:
            continue
        names = re.findall(IDENT, re.sub(r"\[[^\]]*\]\s*$", "", p))
        out.append((names[-1] if names else "", _STREAM.search(p) is not None))
    return out


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _template_args_end(text: str, i: int) -> int:
    """Just past a template argument list at text[i] == "<" that holds a comparison (`P < N ? P : 0>`,
    `(P < N ? P : 0)>`: bracket counting cannot close it): the `>` before the first `(` outside
    parentheses that follows one; -1 at a `;{}` first."""
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c in ";{}":
            return -1
        if c == "(":
            if depth == 0 and text[i:j].rstrip().endswith(">"):
                return i + len(text[i:j].rstrip())
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return -1
    return -1


def _call_at(text: str, m: re.Match[str]) -> tuple[str, str, int] | None:
    """(qualifier, name, offset of its `(`) of a call starting at identifier m, else None."""
    comps, i = [m.group(0)], m.end()
    while True:
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == "<":
            close = match_bracket(text, i, "<", ">")
            if re.search(r"[;{}]", text[i:close]):
                close = _template_args_end(text, i)
                if close < 0:
                    return None
            i = _skip_ws(text, close)
        if text.startswith("::", i):
            n = re.match(rf"(?:template\s+)?({IDENT})", text[_skip_ws(text, i + 2):])
            if n is None:
                return None
            i = _skip_ws(text, i + 2) + n.end()
            comps.append(n.group(1))
            continue
        if i < len(text) and text[i] == "(":
            return (comps[-2] if len(comps) > 1 else ""), comps[-1], i
        return None


def _branch(text: str, i: int) -> int:
    """End of the statement or `{...}` block starting at (or after blanks from) i."""
    i = _skip_ws(text, i)
    if i < len(text) and text[i] == "{":
        return match_bracket(text, i, "{", "}")
    depth = 0
    for j in range(i, len(text)):
        depth += text[j] in "({"
        depth -= text[j] in ")}"
        if text[j] == ";" and depth <= 0:
            return j + 1
    return len(text)


def _if_chain(text: str, i: int, base: int) -> tuple[Item, int]:
    """The alternatives of the if / else if / else chain whose `if` is at i, and the chain's end."""
    branches: list[list[Item]] = []
    while True:
        m = re.compile(r"if\s*(?:constexpr\s*)?\(").match(text, i)
        if m is None:
            break
        start = match_bracket(text, m.end() - 1, "(", ")")
        end = _branch(text, start)
        branches.append(calls(text[start:end], base + start))
        i = end
        e = re.compile(r"\s*else\b\s*").match(text, i)
        if e is None:
            branches.append([])  # no else: the branch may not run
            return branches, i
        i = e.end()
        if not re.compile(r"if\b").match(text, i):
            end = _branch(text, i)
            branches.append(calls(text[i:end], base + i))
            return branches, end
    return branches, i


def calls(text: str, base: int = 0) -> list[Item]:
    """The calls outside any parentheses of text (a function body), with those inside an
    `EDGELLM_PROCESS(...)`; member calls (`.f(`, `->f(`) are not calls here. An if / else chain is one
    item, the list of its branches' calls (alternatives)."""
    out: list[Item] = []
    depth, pos, skip = 0, 0, 0
    for m in re.finditer(rf"[()]|{IDENT}", text):
        if m.start() < skip:
            continue
        for ch in text[pos:m.start()]:
            depth += ch == "("
            depth -= ch == ")"
        pos = m.start()
        if m.group(0) in "()" or depth != 0:
            continue
        if re.search(r"(\.|->|::|\w)\s*$", text[max(0, m.start() - 4):m.start()]):
            continue
        if m.group(0) == "if":
            chain, skip = _if_chain(text, m.start(), base)
            out.append(chain)
            pos = skip
            continue
        got = _call_at(text, m)
        if got is None:
            continue
        qual, name, paren = got
        close = match_bracket(text, paren, "(", ")")
        skip = pos = close
        inner = text[paren + 1:close - 1]
        if name == "EDGELLM_PROCESS":
            out += calls(inner, base + paren + 1)
        else:
            out.append((base + m.start(), qual, name, [a.strip() for a in _split_top(inner)]))
    return out


def flat(items: list[Item]) -> list[Call]:
    """Every call of items, branches included."""
    out: list[Call] = []
    for it in items:
        if isinstance(it, tuple):
            out.append(it)
        else:
            for branch in it:
                out += flat(branch)
    return out


def _defs(call: Call, fns: Callees) -> list[tuple[Function, str]]:
    """The definitions a call may reach (qualifier and arity matching)."""
    _, qual, name, args = call
    n = 0 if args == [""] else len(args)
    out = []
    named = fns.get(name, [])
    if qual and any(fn.name == f"{qual}::{name}" for fn, _ in named):
        named = [(fn, code) for fn, code in named if fn.name == f"{qual}::{name}"]
    for fn, code in named:  # a qualifier no definition has (a type alias: TC::mm::fetch): every one
        params = [p for p in _split_top(fn.params) if p.strip()]
        plist = _params(fn.params)
        required = sum("=" not in p for p in params) if len(plist) == len(params) else len(plist)
        if required <= n <= len(plist):
            out.append((fn, code))
    return out


def _arg_ref(arg: str) -> tuple[str, str | None] | None:
    """(name, index) an argument names (`s`, `&s`, `s[2]`; index "?" when not an integer), else None."""
    m = re.fullmatch(rf"&?\s*({IDENT})\s*(?:\[\s*([^\]]*?)\s*\])?", arg)
    if m is None:
        return None
    idx = m.group(2)
    return m.group(1), (None if idx is None else idx if idx.isdigit() else "?")


def _is_inline(fn: Function, code: str) -> bool:
    body = fn.body(code)
    return _has(body, r"INLINE\b") and not _has(body, r"INLINE\s+off\b") and not _has(body, "DATAFLOW")


_DIR: dict[tuple[Function, str, int, int], frozenset[str]] = {}  # direction()'s, one run()'s


def direction(fn: Function, code: str, i: int, fns: Callees, level: int = PASS_LEVELS) -> frozenset[str]:
    """What fn does with its i-th parameter, a stream: {"W"}, {"R"}, both, or nothing claimed."""
    key = (fn, code, i, level)
    if key not in _DIR:
        _DIR[key] = _find_direction(fn, code, i, fns, level)
    return _DIR[key]


def _find_direction(fn: Function, code: str, i: int, fns: Callees, level: int) -> frozenset[str]:
    params = _params(fn.params)
    if i >= len(params) or not params[i][1] or not params[i][0]:
        return frozenset()
    name, body = params[i][0], fn.body(code)
    found: set[str] = set()
    for m in re.finditer(rf"(?<![\w.>:]){re.escape(name)}\b", body):
        if _WRITE.match(body, m.end()):
            found.add("W")
        elif _READ.match(body, m.end()):
            found.add("R")
    if level > 0:
        for call in flat(calls(body)):
            for j, arg in enumerate(call[3]):
                ref = _arg_ref(arg)
                if ref is not None and ref[0] == name:
                    found |= _callee_direction(call, j, fns, level - 1)
    return frozenset(found)


def _callee_direction(call: Call, j: int, fns: Callees, level: int) -> frozenset[str]:
    """The directions every definition of call's callee shows at parameter j (nothing when none)."""
    defs = _defs(call, fns)
    if not defs:
        return frozenset()
    dirs = [direction(fn, code, j, fns, level) for fn, code in defs]
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
          at: int | None = None) -> Uses:
    """Producers and consumers, per region stream, of calls (env: a name in them -> the region's stream;
    at: the region offset the findings of an inlined callee's calls are placed at)."""
    out: Uses = {}
    for call in body_calls:
        if isinstance(call, list):  # an if / else chain: its branches are alternatives
            _merge(out, _alternatives([_uses(b, env, fns, level, at) for b in call]))
            continue
        off = call[0] if at is None else at
        refs = {}
        for j, arg in enumerate(call[3]):
            ref = _arg_ref(arg)
            if ref is not None and ref[0] in env:
                base = env[ref[0]]
                idx = ref[1] if base[1] is None else base[1] if ref[1] is None else "?"
                refs[j] = (base[0], idx)
        if not refs:
            continue
        defs = _defs(call, fns)
        if defs and level > 0 and all(_is_inline(fn, code) for fn, code in defs):
            options = []
            for fn, code in defs:
                params = _params(fn.params)
                sub = {params[j][0]: k for j, k in refs.items() if j < len(params) and params[j][0]}
                options.append(_uses(calls(fn.body(code)), sub, fns, level - 1, off))
            _merge(out, _alternatives(options))
            continue
        for j, k in refs.items():
            if k[1] == "?":
                continue
            d = _callee_direction(call, j, fns, PASS_LEVELS) if defs else frozenset()
            w, r = out.setdefault(k, ([], []))
            if "W" in d:  # (where it is reported, the process, the call itself: an inlined body's calls
                w.append((off, call[2], call[0]))  # all sit at the region's call of that body)
            if "R" in d:
                r.append((off, call[2], call[0]))
    return out


def region_streams(fn: Function, code: str) -> dict[str, Key]:
    """The streams of a region: its local hls::stream declarations and stream parameters."""
    body = fn.body(code)
    names = {p: (p, None) for p, is_stream in _params(fn.params) if is_stream and p}
    for m in _STREAM.finditer(body):
        close = match_bracket(body, m.end() - 1, "<", ">")
        end = body.find(";", close)
        for decl in _split_top(body[close:end if end >= 0 else len(body)]):
            n = re.match(rf"\s*&?\s*({IDENT})", decl)
            if n:
                names[n.group(1)] = (n.group(1), None)
    return names


def stream_fanout(code: str, fn: Function, fns: Callees) -> list[tuple[int, str, str]]:
    """The stream-fanout findings of one function (none unless it has `#pragma HLS DATAFLOW`)."""
    body = fn.body(code)
    if not _has(body, r"DATAFLOW\b"):
        return []
    env = region_streams(fn, code)
    if not env:
        return []
    uses = _uses(calls(body), env, fns, INLINE_LEVELS)
    out = []
    for (name, idx), _ in sorted(uses.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        whole = uses.get((name, None), ([], [])) if idx is not None else ([], [])
        shown = name if idx is None else f"{name}[{idx}]"
        for role, pos in (("producers", 0), ("consumers", 1)):
            procs = sorted(set(uses[(name, idx)][pos]) | set(whole[pos]))
            if len(procs) >= 2:
                who = ", ".join(p for _, p, _ in procs)
                out.append((fn.start + procs[1][0], "stream-fanout",
                            f"{fn.name}: stream {shown} has {len(procs)} {role} in its DATAFLOW region "
                            f"({who}); Vitis HLS needs one producer and one consumer"))
    return out


def run(code: str, fns: Callees | None = None) -> list[tuple[int, str, str]]:
    """stream-fanout over one comment-free source text; fns: every scanned file's and the library's
    function definitions (default this text's)."""
    from edgellm.hw.synth_maxi import callees

    by_name = fns if fns is not None else callees(code)
    _DIR.clear()
    found: list[tuple[int, str, str]] = []
    for fn in functions(code):
        found += stream_fanout(code, fn, by_name)
    return found
