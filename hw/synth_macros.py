"""The project's pragma macros expanded where they are used, for synth_check (hw/synth_check.py): a
function-like `#define` whose expansion reaches `_Pragma(#x)` (numerics.h EDGELLM_PRAGMA,
EDGELLM_ACT_BIND; elementwise.h EDGELLM_EW_ROWS) is replaced at each use by its expansion, every
`_Pragma(#x)` written as `#pragma x;` on the use's line (the `;` ends the pragma's text for the rules'
regular expressions, hw/synth_pragmas.py _pragmas; no line is added, so findings keep their lines). The
caller then holds the declaration and its pragmas (`rows.r0`'s BIND_STORAGE and ARRAY_PARTITION) as if
written out. Other macros are left as they are (synth_check blanks every `#define` line). A name defined
with two different bodies (`#ifdef` branches) is not expanded. Heuristic by design (regular expressions
over comment-free text; no `##`, no variadic pragma macros).
"""

from __future__ import annotations

import re

from edgellm.hw.synth_pragmas import IDENT, _split_top, match_bracket

Macros = dict[str, tuple[tuple[str, ...], str]]  # name -> (parameters, body)
_DEFINE = re.compile(rf"^[ \t]*#[ \t]*define[ \t]+({IDENT})\(([^)]*)\)((?:[^\n]*\\\n)*[^\n]*)", re.M)
_OBJ_DEFINE = re.compile(rf"^[ \t]*#[ \t]*define[ \t]+({IDENT})[ \t]+((?:[^\n]*\\\n)*[^\n]*)", re.M)
MAX_DEPTH = 8  # nested macro levels expanded at most


def _clean_body(raw: str) -> str:
    """A #define's body: continuation lines joined, comments dropped, blanks collapsed."""
    return " ".join(re.sub(r"/\*.*?\*/|//[^\n]*", " ", raw.replace("\\\n", " ")).split())


def defines(text: str) -> dict[str, set[tuple[tuple[str, ...], str]]]:
    """The function-like macros a raw source text defines: name -> its (parameters, body) definitions
    (continuation lines joined, comments dropped)."""
    out: dict[str, set[tuple[tuple[str, ...], str]]] = {}
    for m in _DEFINE.finditer(text):
        params = tuple(p.strip() for p in m.group(2).split(",") if p.strip())
        out.setdefault(m.group(1), set()).add((params, _clean_body(m.group(3))))
    return out


def object_defines(text: str) -> dict[str, str]:
    """The object-like macros a raw source text defines: name -> its first body (as defines cleans it)."""
    out: dict[str, str] = {}
    for m in _OBJ_DEFINE.finditer(text):
        out.setdefault(m.group(1), _clean_body(m.group(2)))
    return out


def pragma_macros(found: dict[str, set[tuple[tuple[str, ...], str]]]) -> Macros:
    """Of the macros found (defines() over every source), those defined once (one body) whose expansion
    reaches `_Pragma`, directly or through another such macro."""
    one = {n: next(iter(d)) for n, d in found.items() if len(d) == 1}
    out: Macros = {}
    changed = True
    while changed:
        changed = False
        for n, (params, body) in one.items():
            if n not in out and ("_Pragma" in body or any(re.search(rf"\b{m}\s*\(", body) for m in out)):
                out[n] = (params, body)
                changed = True
    return out


def _substitute(body: str, args: dict[str, str]) -> str:
    """body with its parameters replaced by the arguments (one pass: an argument is not rescanned for
    parameter names) and `_Pragma(#p)` by `#pragma <p's argument>;`."""
    names = "|".join(re.escape(p) for p in sorted(args, key=len, reverse=True))
    alt = rf"|(?<![\w#.])({names})\b" if names else ""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "#pragma " + args.get(m.group(1), m.group(1)) + ";"
        return args[m.group(2)]

    return re.sub(rf"_Pragma\s*\(\s*#\s*(\w+)\s*\){alt}", repl, body)


def _uses(code: str, macros: Macros) -> re.Pattern[str]:
    names = "|".join(sorted(macros, key=len, reverse=True))
    return re.compile(rf"(?<![\w.:>])({names})\s*\(")


def expand(code: str, macros: Macros, depth: int = MAX_DEPTH) -> str:
    """code with every use of the pragma macros replaced by its expansion (newlines of a use that spans
    lines kept after it)."""
    if not macros or depth <= 0 or not any(n in code for n in macros):
        return code
    uses = _uses(code, macros)
    out, i = [], 0
    for m in uses.finditer(code):
        if m.start() < i:
            continue
        e = match_bracket(code, m.end() - 1, "(", ")")
        params, body = macros[m.group(1)]
        args = [a.strip() for a in _split_top(code[m.end():e - 1])]
        args = [] if args == [""] else args
        if len(args) != len(params):
            continue  # not this macro's arity: left as written
        text = _substitute(body, dict(zip(params, args, strict=True)))
        out += [code[i:m.start()], expand(text, macros, depth - 1), "\n" * code.count("\n", m.start(), e)]
        i = e
    out.append(code[i:])
    return "".join(out)
