"""The memories (banks) of a partitioned array that synth_check's port-budget rule (hw/synth_ports.py) counts
accesses against: the ARRAY_PARTITION pragmas parsed with their type and factor, and the bank an index
names on a cyclic or block partitioned dimension (Vitis HLS semantics, UG1399 `array_partition`):
  cyclic factor F  element i in bank i % F;
  block factor F   bank i / ceil(N / F) (N: the dimension's size);
  each bank one memory with the array's ports (BIND_STORAGE), dim = 0 every dimension.
A key is a str (one bank: accesses with the same str share it, different strs do not), a tuple
(group, offset): the index is X + S + l with X runtime or S static of unknown value, l of known value
(unrolled lanes), and of one group (X, S) the accesses with distinct offsets l are in distinct banks (a
rotation; accesses of other groups may be in any bank), or None (unknown: it counts against every bank).
Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from edgellm.hw.synth_iteration import is_static, literal_value, norm, sub_name
from edgellm.hw.synth_pragmas import IDENT, _pragma_var, _pragmas, _split_top


@dataclass(frozen=True)
class Part:
    """One ARRAY_PARTITION: its type (complete / cyclic / block), dimension (1-based; 0 every one) and
    factor text ('' for complete)."""

    kind: str
    dim: int
    factor: str = ""


@functools.lru_cache(maxsize=1024)
def _partitions(scope: str) -> tuple[tuple[str, tuple[Part, ...]], ...]:
    out: dict[str, list[Part]] = {}
    for m in _pragmas(scope, "ARRAY_PARTITION"):
        var = _pragma_var(m.group(1))
        if var is None:
            continue
        text = re.sub(rf"\bvariable\s*=\s*{IDENT}(?:\s*\.\s*{IDENT})*", " ", m.group(1))
        kind = re.search(r"\b(complete|cyclic|block)\b", text)
        dim = re.search(r"\bdim\s*=\s*(\d+)", text)
        factor = re.search(r"\bfactor\s*=\s*(.+?)\s*(?=\b(?:dim|type|variable|off)\s*=|$)", text)
        out.setdefault(var, []).append(Part(kind.group(1) if kind else "complete",
                                            int(dim.group(1)) if dim else 1,
                                            norm(factor.group(1)) if factor else ""))
    return tuple((a, tuple(p)) for a, p in out.items())


def partitions(scope: str) -> dict[str, tuple[Part, ...]]:
    """ARRAY_PARTITION pragmas per variable (both syntaxes: `type = cyclic` and a bare `cyclic`)."""
    return dict(_partitions(scope))


_VALUE = re.compile(rf"\b(?:const|constexpr)\b[^;(){{}}]*?\b({IDENT})\s*=\s*([^,;{{}}]+)|"
                    rf"\benum\b[^{{;]*\{{([^}}]*)\}}")


@functools.lru_cache(maxsize=256)
def _text_values(code: str) -> tuple[tuple[str, int | None], ...]:
    """Every `const` / `constexpr` / enumerator definition `NAME = e` of code: (NAME, e's value or None
    when e is not literal arithmetic); template parameters named NAME as (NAME, None)."""
    out: list[tuple[str, int | None]] = []
    for m in _VALUE.finditer(code):
        if m.group(1):
            out.append((m.group(1), literal_value(m.group(2))))
            continue
        for item in _split_top(m.group(3)):
            d = re.match(rf"\s*({IDENT})\s*=\s*(.+)$", item, re.S)
            if d:
                out.append((d.group(1), literal_value(d.group(2))))
    for m in re.finditer(r"template\s*<([^{;]*?)>", code):
        for p in _split_top(m.group(1)):
            if len(w := re.findall(IDENT, p.split("=")[0])) > 1:
                out.append((w[-1], None))
    return tuple(out)


def constant_values(codes: tuple[str, ...]) -> dict[str, int]:
    """Names defined as one integer literal (arithmetic) wherever they are defined in codes (a name also
    defined otherwise, or as a template parameter, is left out: its value is not known here)."""
    seen: dict[str, set[int | None]] = {}
    for code in codes:
        for name, v in _text_values(code):
            seen.setdefault(name, set()).add(v)
    return {n: next(iter(v)) for n, v in seen.items() if len(v) == 1 and None not in v}


def value(expr: str, values: dict[str, int]) -> int | None:
    """expr's value: integer literal arithmetic of literals and names of values."""
    v = literal_value(expr)
    if v is not None or not values:
        return v
    for name in set(re.findall(IDENT, expr)) & set(values):
        expr = sub_name(expr, name, f"({values[name]})")
    return literal_value(expr)


def _unwrap(text: str) -> str:
    """text without the parentheses around all of it."""
    while text.startswith("(") and text.endswith(")") and _closes_at_end(text):
        text = text[1:-1]
    return text


def _closes_at_end(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return i == len(text) - 1
    return False


_LOWER = re.compile(r"[?<>&|^=!:]")  # operators below + and - (at the top: the index is no sum)


def _top(text: str) -> str:
    """text with what is inside brackets dropped (its top level)."""
    out, depth = [], 0
    for ch in text:
        depth += ch in "(["
        if depth == 0:
            out.append(ch)
        depth -= ch in ")]"
    return "".join(out)


def _terms(index: str) -> list[str]:
    """The top-level summands of an index, each with its sign (`+a`, `-b`); one term when it is no sum."""
    text = _unwrap(norm(index))
    if _LOWER.search(_top(text).replace("->", "").replace("::", "")):
        return ["+" + text]  # `a + b << 2`, `c ? a + 1 : b`: no sum at the top
    out, start = [], 0
    for i, ch in _top_level(text):
        if ch in "+-" and i > start and text[i - 1] not in "*/%+-<>=&|^(" and text[i + 1:i + 2] != ">":
            out.append(text[start:i])
            start = i
    out.append(text[start:])
    return [t if t[:1] in "+-" else "+" + t for t in out if t]


def _multiple(term: str, factor: str, f: int | None, values: dict[str, int]) -> bool:
    """Whether a product term is a multiple of the factor: it has the factor's text as a factor, or (the
    factor's value known) a factor whose value is a multiple of it."""
    parts = _split_star(_unwrap(term.lstrip("+-")))  # a sum in parentheses stays one factor
    for k, p in enumerate(parts):
        if any(re.search(r"[/%]|<<|>>", re.sub(r"\([^()]*\)", "", q)) for q in parts[k + 1:]):
            continue  # (F * a) / 2: not a multiple of F
        v = value(p, values) if f else None
        if _unwrap(p) == _unwrap(factor) or (f and v is not None and v % f == 0):
            return True
    return False


def _split_star(text: str) -> list[str]:
    """text's top-level factors (split at `*`)."""
    out, start = [], 0
    for i, ch in _top_level(text):
        if ch == "*":
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _top_level(text: str) -> list[tuple[int, str]]:
    """(offset, character) of text's characters outside every bracket, brackets themselves left out."""
    out, depth = [], 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0:
            out.append((i, ch))
    return out


def _peel_mod(index: str, consts: set[str]) -> tuple[str, list[str]]:
    """index `((Y) % M1) % M2` as (Y, [M1, M2]): the static moduli around it (outermost last)."""
    text, mods = _unwrap(norm(index)), []
    while len(_terms(text)) == 1 and text[:1] not in "+-" and \
            not _LOWER.search(_top(text).replace("->", "").replace("::", "")):
        depth, at = 0, -1
        for i, ch in enumerate(text):
            depth += (ch in "([") - (ch in ")]")
            if depth == 0 and ch in "*/%":
                at = i
        if at < 0 or text[at] != "%" or not is_static(text[at + 1:], consts):
            break
        mods.insert(0, text[at + 1:])
        text = _unwrap(text[:at])
    return text, mods


def _flat(text: str, sign: str = "+") -> list[str]:
    """text's summands with the parenthesized sums among them opened (signs carried: `-(a - b)` is -a, +b)."""
    out = []
    for t in _terms(text):
        s = t[0] if sign == "+" else "+-"[t[0] == "+"]
        body = t[1:]
        inner = _unwrap(body)
        if inner != body and len(_terms(inner)) > 1:
            out += _flat(inner, s)
        else:
            out.append(s + body)
    return out


def cyclic_key(index: str, factor: str, consts: set[str], values: dict[str, int]
               ) -> str | tuple[str, str] | None:
    """The bank of an index on a dimension cyclic by factor F. The index is X + S + l: X the runtime
    summands less the multiples of F, S the static ones of unknown value, l the sum of those of known
    value (literals: unrolled lanes). Without X and S, bank l (l % F where F is known); else (group X and S,
    offset l (% F where known)): of one group, distinct offsets are distinct banks (a rotation: a symbolic
    F is taken to exceed the lanes' spread), and groups that differ (S = H may be a multiple of F) may
    share any bank. Static moduli around it (`(X + l) % M`) are dropped where F divides M (the text of F a
    factor of M, or both known); where that is not known they stay in the group (a rotation that wraps
    nowhere within its offsets, as synth_ports' `(X * N + s) % M`); where F and M are known and F does not
    divide M the index is unknown (None: every bank)."""
    f = value(factor, values)
    inner, mods = _peel_mod(index, consts)
    kept = [m for m in mods if not _multiple(m, factor, f, values)]
    if f and any(value(m, values) is not None for m in kept):
        return None  # a known modulus that F does not divide: banks of no simple form
    runtime, sym, lit = [], [], 0
    for t in _flat(inner):
        if not kept and _multiple(t, factor, f, values):
            continue  # k * F: bank 0
        v = value(t, values) if is_static(t, consts) else None
        if v is not None:
            lit += v
        else:
            (sym if is_static(t, consts) else runtime).append(t)
    bank = str(lit % f) if f and not kept else str(lit)
    if not runtime and not sym:
        return bank
    group = "".join(sorted(runtime)) + "".join(f"%{m}" for m in kept) + "|" + "".join(sorted(sym))
    return f"{group}%{factor}", bank


def block_key(index: str, factor: str, size: str | None, values: dict[str, int]) -> str | None:
    """The bank of an index on a dimension of size N split in factor blocks: a static index of known value
    with N and the factor known names it (i / ceil(N / F)); anything else is unknown (every bank)."""
    v, f = value(index, values), value(factor, values)
    n = value(size, values) if size is not None else None
    if v is None or not f or n is None:
        return None
    return str(v // -(-n // f))


def dim_sizes(scope: str, name: str) -> list[str]:
    """The bracketed sizes of name's declaration in scope (`T name[A][B]`), [] when not declared there."""
    m = re.search(rf"[\w>]\s+{re.escape(name)}\s*((?:\[[^\]]+\])+)", scope)
    return [norm(x) for x in re.findall(r"\[([^\]]+)\]", m.group(1))] if m else []
