"""The calls of a function body as synth_check's DATAFLOW rules see them (hw/synth_dataflow.py): the region's
processes (plain calls and `EDGELLM_PROCESS(...)`, if / else chains as alternatives), the definitions a
call may reach (qualifier and arity), a parameter list's names and kinds, an argument's name.
Heuristic by design (regular expressions over comment-free text)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from edgellm.hw import synth_macros
from edgellm.hw.synth_maxi import Callees
from edgellm.hw.synth_pragmas import IDENT, Function, _has, _split_top, match_bracket

Call = tuple[int, str, str, list[str]]  # (offset, qualifier or "", name, argument texts)
Item = Call | list  # a call, or an if / else chain: a list of its branches (each a list of Items)
STREAM = re.compile(r"\bhls\s*::\s*stream\s*<")  # an hls::stream type


@functools.lru_cache(maxsize=1)
def object_macros() -> dict[str, str]:
    """hw/include's object-like macros: name -> body (synth_macros.object_defines)."""
    out: dict[str, str] = {}
    for p in sorted((Path(__file__).resolve().parent / "include").rglob("*.h")):
        for name, body in synth_macros.object_defines(p.read_text(errors="replace")).items():
            out.setdefault(name, body)
    return out


def param_kinds(params: str) -> list[tuple[str, str]]:
    """(name, kind) of each parameter, in order; kind "stream" (an hls::stream, or an array of them),
    "array" (an array or a pointer) or "" (anything else)."""
    text = params.strip()
    if re.fullmatch(IDENT, text) and text in object_macros():
        text = object_macros()[text]
    out = []
    for p in _split_top(text):
        p = p.split("=")[0].strip()
        if not p:
            continue
        names = re.findall(IDENT, re.sub(r"\[[^\]]*\]\s*$", "", p))
        if len(_declarator_words(p)) < 2:  # a type alone: an unnamed parameter
            names = []
        kind = ("stream" if STREAM.search(p) else
                "array" if re.search(r"\]\s*$|\*", p) or re.search(rf"\(\s*&\s*{IDENT}\s*\)\s*\[", p) else "")
        out.append((names[-1] if names else "", kind))
    return out


def _declarator_words(p: str) -> list[str]:
    """A parameter's words outside template arguments and brackets, qualified names as one word, the
    type's cv and elaboration keywords left out: [type, name] or [type] when unnamed."""
    q = re.sub(r"\[[^\]]*\]", " ", p)
    while re.search(r"<[^<>]*>", q):
        q = re.sub(r"<[^<>]*>", " ", q)
    words = re.findall(rf"{IDENT}(?:\s*::\s*{IDENT})*", q)
    return [w for w in words if w not in ("const", "volatile", "typename", "struct", "class", "unsigned",
                                           "signed")]


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


def _after_word(text: str, i: int) -> bool:
    """Whether the identifier at i follows a word, `.`, `->` or `::` (a declaration `T x(...)` or a member
    call, not a call), a preprocessor line (`#pragma HLS DATAFLOW`) ending the statement before it."""
    before = text[:i].rstrip(" \t")
    if before.endswith("\n") and before[:-1].rsplit("\n", 1)[-1].lstrip().startswith("#"):
        return False
    return re.search(r"(\.|->|::|\w)\s*$", text[max(0, i - 4):i]) is not None


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
        if _after_word(text, m.start()):
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


def definitions(call: Call, fns: Callees) -> list[tuple[Function, str]]:
    """The definitions a call may reach (qualifier and arity matching)."""
    _, qual, name, args = call
    n = 0 if args == [""] else len(args)
    out = []
    named = fns.get(name, [])
    if qual and any(fn.name == f"{qual}::{name}" for fn, _ in named):
        named = [(fn, code) for fn, code in named if fn.name == f"{qual}::{name}"]
    for fn, code in named:  # a qualifier no definition has (a type alias: TC::mm::fetch): every one
        params = [p for p in _split_top(fn.params) if p.strip()]
        plist = param_kinds(fn.params)
        required = sum("=" not in p for p in params) if len(plist) == len(params) else len(plist)
        if required <= n <= len(plist):
            out.append((fn, code))
    return out


def arg_ref(arg: str) -> tuple[str, str | None] | None:
    """(name, index) an argument names (`s`, `&s`, `s[2]`; index "?" when not an integer), else None."""
    m = re.fullmatch(rf"&?\s*({IDENT})\s*(?:\[\s*([^\]]*?)\s*\])?", arg)
    if m is None:
        return None
    idx = m.group(2)
    return m.group(1), (None if idx is None else idx if idx.isdigit() else "?")


def is_inline(fn: Function, code: str) -> bool:
    body = fn.body(code)
    return _has(body, r"INLINE\b") and not _has(body, r"INLINE\s+off\b") and not _has(body, "DATAFLOW")
