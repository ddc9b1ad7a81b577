"""synth_check's basic rules (hw/synth_check.py runs them beside the pragma, m_axi, port-budget and
stream-fanout rules; each returns (offset, rule, detail) tuples over a prepared, comment-free text):
dynamic-memory, std-container, recursion, unbounded-loop, runtime-bound (their definitions: synth_check's
docstring). Also the expression helpers the other rules share (idents).
"""

from __future__ import annotations

import re

from edgellm.hw.synth_pragmas import IDENT, _split_top, match_bracket

IDENT_RE = re.compile(IDENT)  # synth_pragmas.IDENT, compiled
CONTAINERS = ("vector", "map", "multimap", "unordered_map", "unordered_multimap", "set", "multiset",
              "unordered_set", "unordered_multiset", "list", "forward_list", "deque", "queue",
              "priority_queue", "stack", "string", "wstring", "basic_string", "function",
              "shared_ptr", "unique_ptr")
CONTAINER_HEADERS = ("vector", "map", "unordered_map", "set", "unordered_set", "list", "forward_list",
                     "deque", "queue", "stack", "string", "functional", "memory")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "catch", "do", "else", "case", "int",
            "long", "short", "unsigned", "signed", "char", "bool", "float", "double", "const", "void",
            "static_cast", "reinterpret_cast", "const_cast", "auto", "true", "false", "typename",
            "template", "static", "constexpr", "new", "delete", "operator", "decltype", "alignof",
            "static_assert", "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t",
            "uint32_t", "uint64_t", "size_t", "f32", "this", "nullptr"}


def idents(expr: str) -> list[str]:
    """Unqualified identifiers of an expression (X::Y and member accesses excluded)."""
    expr = re.sub(r"[A-Za-z_]\w*\s*(?:<[^<>;]*>)?\s*::\s*(?:template\s+)?[A-Za-z_]\w*", " 0 ", expr)
    expr = re.sub(r"\(\s*(?:unsigned\s+)?(?:int|long|char|short|bool|size_t|int\d+_t|uint\d+_t)\s*\)",
                  " ", expr)
    out = []
    for m in IDENT_RE.finditer(expr):
        before = expr[:m.start()].rstrip()
        if before.endswith(".") or before.endswith("->") or m.group(0) in KEYWORDS:
            continue
        if re.match(r"\d", m.group(0)):
            continue
        out.append(m.group(0))
    return out


def _body(code: str, i: int) -> tuple[int, int]:
    """Span of the statement starting at i (a braced block or up to the next ';')."""
    j = i
    while j < len(code) and code[j].isspace():
        j += 1
    if j < len(code) and code[j] == "{":
        return j, match_bracket(code, j, "{", "}")
    e = code.find(";", j)
    return j, (len(code) if e < 0 else e + 1)


def _has_tripcount(body: str) -> bool:
    """LOOP_TRIPCOUNT among the loop's own statements (before any nested loop)."""
    nested = re.search(r"\b(for|while)\s*\(", body[1:] if body.startswith("{") else body)
    head = body if nested is None else body[:nested.start() + 1]
    return "LOOP_TRIPCOUNT" in head


Hit = tuple[int, str, str]  # (offset in the prepared text, rule, detail)


def memory_rules(code: str) -> list[Hit]:
    """dynamic-memory and std-container."""
    out: list[Hit] = []
    for m in re.finditer(r"\b(malloc|calloc|realloc|free)\s*\(|\bnew\b|\bdelete\b", code):
        out.append((m.start(), "dynamic-memory", m.group(0).strip(" (")))
    cont = "|".join(CONTAINERS)
    for m in re.finditer(rf"\bstd\s*::\s*({cont})\b", code):
        out.append((m.start(), "std-container", f"std::{m.group(1)}"))
    for m in re.finditer(rf"#\s*include\s*<({'|'.join(CONTAINER_HEADERS)})>", code):
        out.append((m.start(), "std-container", f"#include <{m.group(1)}>"))
    return out


def recursion(code: str) -> list[Hit]:
    """recursion: name(params) [const] {body} containing an unqualified call to name of its arity."""
    out: list[Hit] = []
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", code):
        name = m.group(1)
        if name in KEYWORDS:
            continue
        close = match_bracket(code, m.end() - 1, "(", ")")
        tail = re.match(r"\s*(?:const\s*)?(?:noexcept\s*)?\{", code[close:])
        if tail is None or re.search(r"(\.|->|::|\bnew)\s*$", code[:m.start()]):
            continue
        b0 = close + tail.end() - 1
        body = code[b0:match_bracket(code, b0, "{", "}")]
        params = [p for p in _split_top(code[m.end():close - 1]) if p.strip()]
        required = sum("=" not in p for p in params)
        for call in re.finditer(rf"(?<![\w.:>]){re.escape(name)}\s*(?:<[^;{{}}()]*>)?\s*\(", body):
            c1 = match_bracket(body, call.end() - 1, "(", ")")
            n_args = len([a for a in _split_top(body[call.end():c1 - 1]) if a.strip()])
            if required <= n_args <= len(params):  # another arity: an overload, not this function
                out.append((b0 + call.start(), "recursion", f"{name} calls itself"))
                break
    return out


def loop_rules(code: str, consts: set[str],
               scopes: list[tuple[int, int, set[str]]] | None = None) -> list[Hit]:
    """unbounded-loop and runtime-bound. scopes: (start, end, constant names) of the functions, whose
    names count as constant for the loops inside them (the innermost's)."""
    out: list[Hit] = []
    for m in re.finditer(r"\bwhile\s*\(\s*(1|true)\s*\)|\bfor\s*\(\s*[^;()]*;\s*;", code):
        out.append((m.start(), "unbounded-loop", re.sub(r"\s+", " ", m.group(0))))
    for m in re.finditer(r"\bdo\b\s*\{", code):
        b0 = m.end() - 1
        if not _has_tripcount(code[b0:match_bracket(code, b0, "{", "}")]):
            out.append((m.start(), "unbounded-loop", "do-while loop without LOOP_TRIPCOUNT"))
    loops: list[tuple[int, int, set[str]]] = []  # (start, body_end, bounded_vars)
    for m in re.finditer(r"\b(for|while)\s*\(", code):
        p0 = m.end() - 1
        p1 = match_bracket(code, p0, "(", ")")
        b0, b1 = _body(code, p1)
        if code[b0:b0 + 1] == ";" and m.group(1) == "while":
            continue  # the tail of a do-while
        header = code[p0 + 1:p1 - 1]
        if m.group(1) == "while":
            if not re.fullmatch(r"\s*(1|true)\s*", header) and not _has_tripcount(code[b0:b1]):
                out.append((m.start(), "unbounded-loop", f"while ({header.strip()}) without LOOP_TRIPCOUNT"))
            loops.append((m.start(), b1, set()))
            continue
        enclosing = set().union(*(v for s, e, v in loops if s < m.start() < e)) if loops else set()
        local = min(((e - s, v) for s, e, v in scopes or () if s < m.start() < e), default=(0, set()),
                    key=lambda x: x[0])[1]
        bounded, ok = _for_bounds(header, consts | enclosing | local)
        loops.append((m.start(), b1, bounded))
        if ok is False and not _has_tripcount(code[b0:b1]):
            text = " ".join(header.split(";")[1].split())
            out.append((m.start(), "runtime-bound",
                        f"for (...; {text}; ...): no LOOP_TRIPCOUNT or constant bound"))
    return out


def _for_bounds(header: str, known: set[str]) -> tuple[set[str], bool | None]:
    """(the loop variables a for header bounds by constants, for the loops inside it; whether a conjunct
    of its condition is bounded by constants, None for a header without a condition: unbounded-loop's)."""
    parts = header.split(";")
    if len(parts) != 3 or not parts[1].strip():
        return set(), None
    init, cond = parts[0], parts[1]
    loop_vars = {d.group(1) for d in re.finditer(r"([A-Za-z_]\w*)\s*=(?!=)", init)}
    init_const = all(x in known or x in loop_vars for x in idents(init))
    ok = any(all(x in known or x in loop_vars for x in idents(conj)) for conj in re.split(r"&&", cond))
    return (loop_vars if ok and init_const else set()), ok
