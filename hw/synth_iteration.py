"""One iteration of a pipelined loop as the tool builds it, for synth_check's port-budget rule
(hw/synth_ports.py): nested loops unrolled (copies with the loop variable's value), the bodies of the
`#pragma HLS INLINE` functions it calls inlined (parameters renamed to the arguments; the INLINE member
functions of the objects a call site binds, `op(u, i)` / `op.load(c)`, with their members as `op.m`),
locals folded into the indices that use them. Heuristic by design (regular expressions over comment-free
text).
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet

from edgellm.hw.synth_pragmas import IDENT, Function, _has, _split_top, match_bracket, outer_loops

UNKNOWN_TRIPS = 3  # copies of an unrolled loop whose trip count is not a literal: more than two ports
MAX_TRIPS = 16  # copies of one with a literal trip count at most (the text grows with their product)
MARK = "__u"  # prefix of the names that stand for an unrolled loop's variable in one copy
CALL = re.compile(rf"(?<![\w.>])({IDENT})\s*(?:<[^;{{}}()]*>)?\s*\(")
_OBJ_CALL = re.compile(rf"(?<![\w.>])({IDENT})\s*(?:\.\s*({IDENT})\s*)?\(")  # obj(..) / obj.f(..)
_SPACE = re.compile(r"\s*")
_DECL = re.compile(rf"(?:^|[;{{}}])\s*(?:static\s+)?(?:const\s+)?(?:typename\s+)?([\w:<>, ]*?[\w>])\s+"
                   rf"((?:{IDENT}\s*(?:\[[^\]]+\])+\s*,?\s*)+);", re.M)


@functools.lru_cache(maxsize=8192)
def pattern(regex: str) -> re.Pattern[str]:
    """regex compiled once: the rule builds patterns per name, more than re's own cache (512) holds."""
    return re.compile(regex)


def _free(text: str, q: int) -> bool:
    """Whether the name at text[q:] is not after a word character, `.`, `:` or `->` (not a member, not
    `X::name`, not the tail of another name)."""
    c = text[q - 1] if q else " "
    return not (c.isalnum() or c in "_.:" or (c == ">" and q >= 2 and text[q - 2] == "-"))


def sub_name(text: str, name: str, repl: str) -> str:
    """text with the identifier name (not a member `.name` / `->name`, not `X::name`) replaced (str.find,
    not a regex per name: compiling those took longer than the search)."""
    if not name:
        return text
    out, i, q = [], 0, text.find(name)
    while q >= 0:
        e = q + len(name)
        if _free(text, q) and not (e < len(text) and (text[e].isalnum() or text[e] == "_")):
            out += (text[i:q], repl)
            i, q = e, text.find(name, e)
        else:
            q = text.find(name, q + 1)
    return "".join(out) + text[i:] if out else text


def subscripts(text: str, name: str) -> Iterator[tuple[int, int]]:
    """(offset of name, offset of its `[`) of every subscript `name[` (`name [`) in text, name not a member
    or `X::name`, left to right."""
    q = text.find(name)
    while q >= 0:
        e = _SPACE.match(text, q + len(name)).end()
        if text.startswith("[", e) and _free(text, q):
            yield q, e
            q = text.find(name, e + 1)
        else:
            q = text.find(name, q + 1)


def arrays(text: str) -> dict[str, tuple[int, bool]]:
    """Arrays declared with brackets in text: name -> (dimensions, an hls::stream array)."""
    return dict(_arrays(text))


_NOT_TYPE = re.compile(r"\b(?:return|else|case|goto)\b")
_DIMS = re.compile(rf"({IDENT})\s*((?:\[[^\]]+\])+)")


@functools.lru_cache(maxsize=4096)
def _arrays(text: str) -> tuple[tuple[str, tuple[int, bool]], ...]:
    """arrays(text)'s items (one parse per text: the same bodies come back per loop and per caller)."""
    out = {}
    for m in _decls(text):
        if _NOT_TYPE.search(m.group(1)):
            continue
        for d in _DIMS.finditer(m.group(2)):
            out[d.group(1)] = (d.group(2).count("["), "stream" in m.group(1))
    return tuple(out.items())


_DECL_END = re.compile(rf"[\w>]\s+{IDENT}\s*\[")  # in every _DECL match: the type's last character on


def _decls(text: str) -> Iterator[re.Match[str]]:
    """The matches of _DECL.finditer(text), trying _DECL only where one can start (trying every position
    is slow): at a _DECL_END or before it across the characters a declaration's start, qualifiers and type
    are made of, and the one before them (its `;` / `{` / `}`)."""
    pos = 0
    while (c := _DECL_END.search(text, pos)) is not None:
        s = c.start()
        while s > pos and (text[s - 1].isalnum() or text[s - 1].isspace() or text[s - 1] in "_:<>,"):
            s -= 1
        m = next((m for i in range(max(pos, s - 1), c.start() + 1) if (m := _DECL.match(text, i))), None)
        if m is None:
            pos = c.start() + 1  # no match starts at or before this candidate
            continue
        yield m
        pos = m.end()


def _unroll_values(header: str) -> tuple[str, list[str]] | None:
    """(variable, its values in the copies) of an unrolled `for (int k = A; k < B; k++)`: A..B-1 for
    literals (the first MAX_TRIPS), else UNKNOWN_TRIPS values (A, A + 1, ... or markers when A is not a
    literal)."""
    m = re.match(rf"\s*(?:const\s+)?(?:unsigned\s+)?\w+\s+({IDENT})\s*=\s*([^;]+);\s*\1\s*(<=?)\s*([^;]+);"
                 rf"\s*(?:\1\s*\+\+|\+\+\s*\1|\1\s*\+=\s*1)\s*$", header)
    if m is None:
        w = re.findall(rf"({IDENT})\s*=(?!=)", header)
        if not w:
            return None
        return w[0], [f"{MARK}{i}" for i in range(UNKNOWN_TRIPS)]
    var, a, op, b = m.group(1), m.group(2).strip(), m.group(3), m.group(4).strip()
    if re.fullmatch(r"\d+", a) and re.fullmatch(r"\d+", b):
        return var, [str(v) for v in range(int(a), int(b) + (op == "<="))][:MAX_TRIPS]
    if re.fullmatch(r"\d+", a):
        return var, [str(int(a) + i) for i in range(UNKNOWN_TRIPS)]
    return var, [f"{MARK}{i}" for i in range(UNKNOWN_TRIPS)]


class Expander:
    """One II=1 iteration's statements: unrolled loops copied, INLINE callees inlined."""

    def __init__(self, fns: dict[str, list[tuple[Function, str]]], outer: set[str], consts: set[str],
                 objects: dict[str, str] | None = None,
                 methods: Callable[[str, str, str], list[tuple[Function, str]]] | None = None):
        self.fns, self.consts = fns, consts
        self.outer = outer  # the arrays of the loop's function: a callee's own names must not clash
        self.n = 0
        # objects whose member calls (`obj(..)`, `obj.f(..)`) are inlined: name -> struct, and the member
        # functions of a struct for a call on an object (synth_bind.Binder.methods: members as `obj.m`)
        self.objects, self.methods = objects or {}, methods

    def fresh(self) -> int:
        self.n += 1
        return self.n

    def iteration(self, text: str, depth: int = 2) -> str:
        """text with nested loops unrolled (UNROLL) or dropped (their own iterations) and calls to INLINE
        functions followed by their bodies (depth levels)."""
        out, i = [], 0
        for at, header, b0, b1 in outer_loops(text):
            inner = text[b0:b1]
            out.append(self.calls(text[i:at], depth))
            if not _has(inner, r"PIPELINE\b"):  # PIPELINE unrolls the loops nested in it
                out.append(self.unrolled(header, inner, depth))
            i = b1
        out.append(self.calls(text[i:], depth))
        return "".join(out)

    def unrolled(self, header: str, inner: str, depth: int) -> str:
        """The copies of an unrolled loop's body, its variable replaced by each copy's value and the
        arrays declared in it renamed per copy."""
        uv = _unroll_values(header)
        body = self.iteration(inner, depth)
        if uv is None:
            return body * UNKNOWN_TRIPS
        var, values = uv
        copies = []
        own = sorted(set(arrays(body)) | {n for _, n, _ in local_inits(body)})  # each copy's own
        for v in values:
            c = sub_name(body, var, f"({v})" if not v.startswith(MARK) else f"{MARK}{self.fresh()}")
            for a in own:
                c = sub_name(c, a, f"{a}__c{self.fresh()}")
            copies.append(fold_locals(c, self.consts))
        return "\n".join(copies)

    def calls(self, text: str, depth: int) -> str:
        """text followed by the bodies of the INLINE functions it calls (parameters renamed to arguments)."""
        if depth <= 0:
            return text
        extra = []
        for m in CALL.finditer(text):
            if m.group(1) not in self.fns:
                continue
            e = match_bracket(text, m.end() - 1, "(", ")")
            args = [a.strip() for a in _split_top(text[m.end():e - 1])]
            args = [] if args == [""] else args
            bodies = [self.inlined(f, code, args, depth) for f, code in self.fns[m.group(1)]]
            bodies = [b for b in bodies if b is not None]
            if bodies:
                extra.append(max(bodies, key=len))
        for m in _OBJ_CALL.finditer(text) if self.objects and self.methods else ():
            if m.group(1) not in self.objects:
                continue
            e = match_bracket(text, m.end() - 1, "(", ")")
            args = [a.strip() for a in _split_top(text[m.end():e - 1])]
            args = [] if args == [""] else args
            defs = self.methods(self.objects[m.group(1)], m.group(2) or "operator()", m.group(1))
            bodies = [b for f, code in defs if (b := self.inlined(f, code, args, depth)) is not None]
            if bodies:
                extra.append(max(bodies, key=len))
        return text + "".join("\n" + b for b in extra)

    def inlined(self, f: Function, code: str, args: list[str], depth: int) -> str | None:
        """f's body as inlined at a call with args, or None when f is not INLINE or takes other arguments."""
        body = f.body(code)
        if not _has(body, r"INLINE\b(?!\s+off)") or _has(body, r"INLINE\s+off\b"):
            return None
        params = [p for p in _split_top(f.params) if p.strip()]
        if not sum("=" not in p for p in params) <= len(args) <= len(params):
            return None
        body = no_csim(body[1:-1])
        names = [re.findall(IDENT, re.sub(r"\[[^\]]*\]", "", p.split("=")[0])) for p in params]
        own = set(re.findall(IDENT, body)) & self.outer - {w[-1] for w in names if w} - set(self.objects)
        for name in own:  # the callee's own names that the caller's arrays also use
            body = sub_name(body, name, f"{name}__f{self.fresh()}")
        for w, a in zip(names, args, strict=False):
            if not w:
                continue
            plain = re.fullmatch(rf"{IDENT}(?:\.{IDENT})?(?:\s*\[[^\]]*\])*", a)  # array, member, sub-array
            body = sub_name(body, w[-1], a if plain else f"({a})")
        return self.iteration(fold_locals(body, self.consts), depth - 1)


_LOCAL = re.compile(r"(?:^|(?<=[;{}]))\s*(const\s+)?(?:unsigned\s+)?(?!return\b|else\b|delete\b)[\w:]+"
                    r"(?:\s*<[^;<>]*>)?\s+([A-Za-z_]\w*\s*=(?!=)[^;{}]*);", re.M)


def local_inits(text: str) -> Iterator[tuple[re.Match[str], str, str]]:
    """(declaration, name, initializer) of every scalar local `T x = e;` (`T x = e, y = f;`) in text."""
    for m in _LOCAL.finditer(text):
        for d in _split_top(m.group(2)):
            dm = re.match(rf"\s*({IDENT})\s*=(?!=)(.*)$", d, re.S)
            if dm:
                yield m, dm.group(1), dm.group(2)


def no_csim(text: str) -> str:
    """text without the C-simulation instrumentation (EDGELLM_DEP_R(...) etc., dep_check.h: nothing under
    synthesis)."""
    for m in reversed(list(re.finditer(r"\bEDGELLM_DEP_\w+\s*\(", text))):
        text = text[:m.start()] + text[match_bracket(text, m.end() - 1, "(", ")"):]
    return text


_CALLS = re.compile(rf"{IDENT}\s*(?:<[^;<>]*>)?\s*\(")


def fold_locals(text: str, consts: AbstractSet[str]) -> str:
    """Replace the later uses (up to a redeclaration) of a local `T x = e;` by `(e)` where x is `const` or
    never assigned again, and e is static (an index through x stays static) or reads no array and calls
    nothing (the copies of an unrolled loop then index apart where e depends on its variable, and alike
    where it does not)."""
    return _fold_locals(text, consts if isinstance(consts, frozenset) else frozenset(consts))


@functools.lru_cache(maxsize=4096)
def _fold_locals(text: str, consts: frozenset[str]) -> str:
    """fold_locals, once per text (an inlined callee's body comes back at every loop that calls it)."""
    for m, name, init in reversed(list(local_inits(text))):
        rest = text[m.end():]
        if name not in rest:  # every pattern below, and sub_name, needs the name
            continue
        if ("[" in init or _CALLS.search(init)) and not is_static(init, consts):
            continue
        stop = _redeclared(rest, name)
        if m.group(1) is None and _assigned(rest[:stop], name):
            continue
        text = text[:m.end()] + sub_name(rest[:stop], name, f"({norm(init)})") + rest[stop:]
    return text


def _redeclared(text: str, name: str) -> int:
    """Offset of the first later declaration `T name = ...` (`T a = 1, name = ...`) in text, else len(text).
    A match ends at a `name =` (not `==`) and spans no `;`: the regex starts at the first one's statement."""
    q = text.find(name)
    while q >= 0:
        e = _SPACE.match(text, q + len(name)).end()
        if text.startswith("=", e) and not text.startswith("=", e + 1):
            nxt = pattern(rf"[\w>]\s+(?:[^;]*,\s*)?{name}\s*=(?!=)").search(text, text.rfind(";", 0, q) + 1)
            return nxt.start() if nxt else len(text)
        q = text.find(name, q + 1)
    return len(text)


def _assigned(text: str, name: str) -> bool:
    """Whether text assigns name (`=`, a compound assignment, ++ / --). The regex runs from the first
    mention, less the `++ ` / `-- ` that may come before it."""
    q = text.find(name)
    if q < 0:
        return False
    while q > 0 and text[q - 1].isspace():
        q -= 1
    return pattern(rf"(?<![\w.]){name}\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+\s*{name}\b|\b{name}\s*\+\+"
                   rf"|--\s*{name}\b|\b{name}\s*--").search(text, max(0, q - 2)) is not None


@functools.lru_cache(maxsize=4096)
def literal_value(expr: str) -> int | None:
    """The value of integer literal arithmetic, else None (remembered: the copies repeat their indices)."""
    e = expr.strip()
    if not re.fullmatch(r"[\d\s()+\-*/%<>&|^~]+", e) or not re.search(r"\d", e):
        return None
    try:
        v = _int_value(ast.parse(e.replace("/", "//"), mode="eval").body)
    except (SyntaxError, ZeroDivisionError, TypeError, ValueError, RecursionError):
        return None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
           ast.BitXor: operator.xor}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_LIMIT = 1 << 64  # C++ integer literal arithmetic stays within 64 bits


def _int_value(node: ast.AST) -> int:
    """An integer expression's value: int constants, + - * / % << >> & | ^ ~ only, every intermediate
    within 64 bits (ValueError otherwise: no eval, so no `**` or huge shifts)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        v = node.value
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
        v = _UNOPS[type(node.op)](_int_value(node.operand))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _int_value(node.left), _int_value(node.right)
        if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= b < 64:
            raise ValueError("shift out of range")
        v = _BINOPS[type(node.op)](a, b)
    else:
        raise ValueError("not integer literal arithmetic")
    if abs(v) >= _LIMIT:
        raise ValueError("out of 64-bit range")
    return v


def norm(index: str) -> str:
    v = literal_value(index)
    return str(v) if v is not None else re.sub(r"\s+", "", index)


def is_static(index: str, consts: set[str]) -> bool:
    from edgellm.hw.synth_basic import idents

    return all(x in consts or x.startswith(MARK) for x in idents(index))
