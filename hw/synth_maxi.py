"""synth_check's m_axi rules (hw/synth_check.py runs them over each source's comment-free text beside
hw/synth_pragmas.py's pragma rules; each returns (offset, rule, detail) tuples).

  maxi-select      a pointer that may refer to two m_axi arguments: `c ? p : q` over two pointer
                   parameters (plus offsets), or a local pointer assigned from two of them (its
                   initializer and an assignment in an if / switch branch, ...): synthesis cannot
                   resolve a pointer that may refer to two memories (SYNCHK "pointer may refer to
                   different memory locations"); pass an offset, or give each argument its own code path
  maxi-dependence  a DEPENDENCE pragma on a pointer parameter (a possible m_axi argument: UG1399 does not
                   take DEPENDENCE on m_axi arguments bundled with others) or on a port an INTERFACE
                   m_axi pragma names
  maxi-cast        a cast to a pointer type (reinterpret_cast, static_cast, C-style) of a pointer
                   parameter or an INTERFACE m_axi port: UG1399 supports only casts between native types
                   on m_axi pointers, and a cast blocks port widening; each m_axi argument has one element
                   type (the library's: ap_uint beats, hw/include/edgellm/maxi.h)
  maxi-access      more than one read, or more than one write, of one m_axi pointer parameter (a beat
                   pointer `ap_uint<..> *` / `ap_int<..> *`, or an INTERFACE m_axi port) per iteration of
                   a loop pipelined at II = 1 (an access in an unrolled inner loop counts twice): one port
                   moves one beat per cycle on each AXI channel, so the loop cannot keep II = 1 or burst.
                   Textual: accesses inside called helpers are counted one level deep (the callee found
                   by name whose parameter has the argument's pointee type); an `if (...) { ...
                   continue; }` block and the statements after it are exclusive paths (the larger count)
Heuristic by design (regular expressions over comment-free text).

Every m_axi argument of the generated top is a beat pointer and every kernel loop moves one beat per port
and iteration (issue 21 #6, #11), so all four rules run in every check (`edgellm csim` included); the
pending set they waited in while the ports were converted is gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edgellm.hw.synth_pragmas import (
    IDENT,
    Function,
    _own_statements,
    _pragma_var,
    _pragmas,
    _split_top,
    ii1_loops,
    match_bracket,
    pointer_params,
)

BEAT_TYPE = re.compile(r"\bap_u?int\s*<")


def _ptr_base(expr: str) -> str | None:
    """The pointer name of `p`, `p + off`, `(p)`: its first identifier when the rest is an offset."""
    m = re.match(rf"\s*\(?\s*({IDENT})\s*(?:[+-](?:[^?:]|::)*)?\)?\s*$", expr)
    return m.group(1) if m else None


def _expr_end(body: str, j: int, stops: str = ",;)}") -> int:
    """End of the expression starting at j: the first of `stops` at bracket depth 0."""
    depth = 0
    while j < len(body):
        ch = body[j]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch in stops and depth == 0:
            break
        j += 1
    return j


def _ternary_selects(body: str, ptrs: set[str]) -> Iterator[tuple[int, str, str]]:
    """(offset, p, q) of every `c ? p : q` with p and q (plus offsets) two different names of ptrs."""
    for m in re.finditer(r"\?", body):
        j = m.end()
        depth, k = 0, j
        while k < len(body):  # the `:` of this `?` at depth 0
            ch = body[k]
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "?" and depth == 0:
                break
            elif ch == ":" and depth == 0 and body[k - 1] != ":" and body[k + 1:k + 2] != ":":
                break
            k += 1
        if k >= len(body) or body[k] != ":":
            continue
        e = _expr_end(body, k + 1)
        a, b = _ptr_base(body[j:k]), _ptr_base(body[k + 1:e])
        if a in ptrs and b in ptrs and a != b:
            yield m.start(), a, b


def _local_pointers(body: str) -> set[str]:
    """Names declared as pointers in a body (`T *p = ...`, `T *a = x, *b = y`)."""
    decl = rf"(?:[\w>]\s*|,\s*)\*\s*(?:const\s+)?({IDENT})\s*=(?!=)"
    return {m.group(1) for m in re.finditer(decl, body)}


def _assigned_selects(body: str, ptrs: set[str]) -> Iterator[tuple[int, str, str]]:
    """(offset, p, q): a local pointer assigned (initializer or assignment, in any branch) from p and
    later from q, two different pointer parameters (through other local pointers too)."""
    sources: dict[str, list[tuple[int, str]]] = {}
    for name in _local_pointers(body):
        if name in ptrs:
            continue
        for m in re.finditer(rf"(?<![\w.>]){name}\s*=(?!=)", body):
            e = _expr_end(body, m.end())
            base = _ptr_base(body[m.end():e])
            if base is not None:
                sources.setdefault(name, []).append((m.start(), base))

    def params_of(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name in ptrs:
            return {name}
        if name in seen or name not in sources:
            return set()
        return set().union(*(params_of(b, seen | {name}) for _, b in sources[name]))

    for name, assigns in sources.items():
        got: list[str] = []
        for at, base in assigns:
            for p in sorted(params_of(base)):
                if got and p not in got:
                    yield at, got[0], f"{p} (through {name})"
                    break
                if p not in got:
                    got.append(p)
            else:
                continue
            break


def maxi_select(code: str, fn: Function) -> Iterator[tuple[int, str, str]]:
    """A pointer chosen at run time between two pointer parameters of fn: `c ? p : q`, or a local
    pointer assigned from both (if / switch assignments)."""
    ptrs = pointer_params(fn.params)
    body = fn.body(code)
    for at, a, b in list(_ternary_selects(body, ptrs)) + list(_assigned_selects(body, ptrs)):
        yield fn.start + at, "maxi-select", f"{a} or {b} chosen at run time in {fn.name}"


def maxi_ports(code: str) -> set[str]:
    """Ports an INTERFACE m_axi pragma names."""
    pat = rf"#\s*pragma\s+HLS\s+INTERFACE\b[^\n]*\bm_axi\b[^\n]*\bport\s*=\s*({IDENT})"
    return {m.group(1) for m in re.finditer(pat, code, re.I)}


def maxi_dependence(code: str, fn: Function, ports: set[str]) -> Iterator[tuple[int, str, str]]:
    """DEPENDENCE on a pointer parameter or an m_axi port."""
    ptrs = pointer_params(fn.params) | ports
    for m in _pragmas(fn.body(code), "DEPENDENCE"):
        var = _pragma_var(m.group(1))
        if var in ptrs:
            yield (fn.start + m.start(), "maxi-dependence",
                   f"DEPENDENCE on {var}, a pointer / m_axi argument of {fn.name}")


_CAST = re.compile(r"\b(reinterpret_cast|static_cast|const_cast)\s*<([^;{}()]*\*[^;{}()]*)>\s*\(")
_C_CAST = re.compile(r"\(\s*((?:const\s+|volatile\s+)*[\w:]+(?:\s*<[^;{}()]*>)?"
                     r"\s*(?:const\s*)?\*+\s*(?:const\s*)?)\)")


def maxi_cast(code: str, fn: Function, ports: set[str]) -> Iterator[tuple[int, str, str]]:
    """A cast to a pointer type of a pointer parameter or an m_axi port (an m_axi argument has one
    element type)."""
    ptrs = pointer_params(fn.params) | ports
    body = fn.body(code)
    for m in _CAST.finditer(body):
        e = match_bracket(body, m.end() - 1, "(", ")")
        base = _ptr_base(body[m.end():e - 1])
        if base in ptrs:
            yield (fn.start + m.start(), "maxi-cast",
                   f"{m.group(1)}<{' '.join(m.group(2).split())}> of {base} in {fn.name}")
    for m in _C_CAST.finditer(body):
        rest = body[m.end():]
        op = re.match(rf"\s*(\(\s*)?({IDENT})", rest)
        if op is None or re.match(rf"\s*\(?\s*{IDENT}\s*\(", rest):
            continue  # a call's result, not a parameter
        if op.group(2) in ptrs:
            yield (fn.start + m.start(), "maxi-cast",
                   f"({' '.join(m.group(1).split())}) cast of {op.group(2)} in {fn.name}")


def template_types(code: str, fn: Function) -> set[str]:
    """The type parameters (`class X` / `typename X`) of fn's template header, if any."""
    head = code[max(0, fn.at - 600):fn.at]
    cut = max(head.rfind(";"), head.rfind("}"), head.rfind("{"))
    m = re.search(r"template\s*<(.*)>", head[cut + 1:], re.S)
    return set(re.findall(rf"\b(?:class|typename)\s+({IDENT})", m.group(1))) if m else set()


def beat_params(params: str, tpl: set[str] = frozenset()) -> dict[str, str]:
    """The m_axi-capable pointer parameters of a parameter list: pointers to ap_uint / ap_int beats (or a
    *beat_t typedef), and pointers to a template type parameter (tpl: the beat in the top's instance):
    name -> pointee type text ("<template>" for the latter)."""
    out = {}
    for p in _split_top(params):
        p = p.split("=")[0]
        if "*" not in p:
            continue
        pointee = p.split("*")[0]
        w = re.findall(IDENT, p.split("*")[-1])
        bare = re.sub(r"\b(?:const|volatile)\b", "", pointee).strip()
        if w and (BEAT_TYPE.search(pointee) or re.search(r"beat_t\b", pointee)):
            out[w[-1]] = _norm_type(pointee)
        elif w and bare in tpl:
            out[w[-1]] = "<template>"
    return out


def _norm_type(t: str) -> str:
    return re.sub(r"\s+", "", re.sub(r"\bconst\b", "", t))


def _count_accesses(text: str, name: str) -> tuple[int, int]:
    """(reads, writes) of `name[...]` / `*name` / `*(name ...)` in text."""
    reads = writes = 0
    for m in re.finditer(rf"(?<![\w.>]){name}\s*\[|(?<![\w)\]])\*\s*\(?\s*{name}\b", text):
        if text[m.end() - 1] == "[":
            e = match_bracket(text, m.end() - 1, "[", "]")
        else:
            e = m.end()
            if text[m.start():m.end()].count("("):
                e = match_bracket(text, text.index("(", m.start()), "(", ")")
        tail = text[e:e + 3]
        if re.match(r"\s*=(?!=)", tail):
            writes += 1
        elif re.match(r"\s*[-+*/|&^]=", tail):
            reads, writes = reads + 1, writes + 1
        else:
            reads += 1
    return reads, writes


Callees = dict[str, list[tuple[Function, str]]]  # name -> its definitions, each with its file's code


def callees(code: str) -> Callees:
    """The function definitions of one comment-free text by unqualified name."""
    out: Callees = {}
    from edgellm.hw.synth_pragmas import functions

    for f in functions(code):
        out.setdefault(f.name.split("::")[-1], []).append((f, code))
    return out


def _callee_accesses(text: str, name: str, ptype: str, fns: Callees) -> tuple[int, int]:
    """(reads, writes) of parameter `name` (pointee type ptype) inside the helpers text calls with it
    as an argument: the callee of that name whose parameter in that position has the same pointee type."""
    reads = writes = 0
    for m in re.finditer(rf"(?<![\w.>])({IDENT})\s*(?:<[^;{{}}()]*>)?\s*\(", text):  # X::f( too
        if m.group(1) not in fns:
            continue
        e = match_bracket(text, m.end() - 1, "(", ")")
        args = [a.strip() for a in _split_top(text[m.end():e - 1])]
        for k, a in enumerate(args):
            if _ptr_base(a) != name:
                continue
            # the overload the top's instance calls: the parameter of the argument's type; for a template
            # argument the beat-typed overloads, else those taking a template type (plain pointers, the
            # testbenches' overloads, only when there is no beat one)
            counts: dict[str, list[tuple[int, int]]] = {"same": [], "beat": [], "tpl": []}
            for f, code in fns[m.group(1)]:
                params = _split_top(f.params)
                if k >= len(params) or "*" not in params[k]:
                    continue
                ctype = _norm_type(params[k].split("*")[0])
                kind = ("same" if ctype == ptype else
                        "beat" if BEAT_TYPE.search(params[k].split("*")[0]) or "beat_t" in ctype else
                        "tpl" if ctype in template_types(code, f) else None)
                callee = re.findall(IDENT, params[k].split("*")[-1].split("=")[0])
                if kind is None or not callee:
                    continue
                body = _own_statements(f.body(code)[1:-1])  # an unrolled loop's accesses twice
                counts[kind].append(_count_accesses(body, callee[-1]))
            pick = counts["same"] or counts["beat"] or (counts["tpl"] if ptype == "<template>" else [])
            best = max(pick, default=(0, 0))
            reads, writes = reads + best[0], writes + best[1]
    return reads, writes


def _continue_split(text: str) -> tuple[str, str, str] | None:
    """(before, block, after) around the first `if (...) { ... continue; }` (no else) of one iteration's
    statements: the block ends the iteration, so it and what follows it are exclusive paths."""
    for m in re.finditer(r"\bif\s*\(", text):
        j = match_bracket(text, m.end() - 1, "(", ")")
        while j < len(text) and text[j].isspace():
            j += 1
        if text[j:j + 1] != "{":
            continue
        e = match_bracket(text, j, "{", "}")
        inner = text[j + 1:e - 1]
        if re.search(r"\bcontinue\s*;\s*$", inner) and not re.match(r"\s*else\b", text[e:]):
            return text[:m.start()], inner, text[e:]
    return None


def _iteration_accesses(text: str, name: str, ptype: str, fns: Callees) -> tuple[int, int]:
    """(reads, writes) of `name` on one iteration's worst path: its own accesses and its helpers' (one
    level deep); an `if (...) { ... continue; }` block and the statements after it are exclusive paths
    (the larger counts)."""
    split = _continue_split(text)
    if split is None:
        r, w = _count_accesses(text, name)
        cr, cw = _callee_accesses(text, name, ptype, fns) if ptype else (0, 0)
        return r + cr, w + cw
    pre, block, post = (_iteration_accesses(t, name, ptype, fns) for t in split)
    return pre[0] + max(block[0], post[0]), pre[1] + max(block[1], post[1])


def maxi_access(code: str, fn: Function, ports: set[str], fns: Callees) -> Iterator[tuple[int, str, str]]:
    """More than one read or write of one beat pointer parameter (or m_axi port) per iteration of an II=1
    pipelined loop."""
    beats = beat_params(fn.params, template_types(code, fn))
    beats.update({p: "" for p in ports if p not in beats and re.search(rf"\b{p}\b", fn.params)})
    if not beats:
        return
    for at, own in ii1_loops(fn.body(code)):
        for name, ptype in sorted(beats.items()):
            r, w = _iteration_accesses(own, name, ptype, fns)
            for n, kind in ((r, "reads"), (w, "writes")):
                if n >= 2:
                    yield (fn.start + at, "maxi-access",
                           f"{n} {kind} of m_axi pointer {name} per iteration of an II=1 loop in {fn.name}")


def run(code: str, fns: Callees | None = None) -> list[tuple[int, str, str]]:
    """Findings of the m_axi rules over one comment-free source text; fns:
    the helpers a loop may call (every scanned file's and the library's; default this text's)."""
    from edgellm.hw.synth_pragmas import functions

    ports = maxi_ports(code)
    by_name = fns if fns is not None else callees(code)
    found: list[tuple[int, str, str]] = []
    for fn in functions(code):
        for rule in (maxi_select(code, fn), maxi_dependence(code, fn, ports), maxi_cast(code, fn, ports),
                     maxi_access(code, fn, ports, by_name)):
            found.extend(rule)
    return found
