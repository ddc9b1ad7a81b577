"""The on-chip storage a function's parameters are bound to through its callers, for synth_check's
port-budget rule (hw/synth_ports.py): a pointer / array / reference parameter whose argument at a call
site is
  - a local array of the caller (`f32 buf[N]`): that array, under the caller's ARRAY_PARTITION /
    BIND_STORAGE pragmas for it;
  - a member array of a local struct of the caller (`rows.r0`, the struct `EwRows<E> rows;` whose
    definition declares `f32 r0[..]`): that member, under the caller's pragmas for `rows.r0` (as
    elementwise.h EDGELLM_EW_ROWS declares it, hw/synth_macros.py);
  - a parameter of the caller: the same question one level up, MAX_LEVELS levels at most;
  - a member of a struct parameter taken by reference (`rows.r0` of `EwRows<E> &rows`): the member of every
    local of that struct the sources declare (its declarations, not its call chain: the layer reaches the
    engine through DATAFLOW process macros, EDGELLM_PROCESS, that synth_check blanks);
  - at a call `BODY::run(..)` of a caller's template type parameter BODY, only the members of the structs
    given for BODY where the caller is called (`TlmmBuffers<..>::template run<CFG, TlmmBody<..> >(..)`:
    the TLMM's banks, weight_storage.h, reach TlmmBody::run so); a trailing pack expansion (`args...`)
    stands for any number of arguments, bound to nothing;
  - a local object of the caller passed to a reference parameter (ew_fused.h: `OP op;` with `typedef
    EwLoadOp<..> OP`, to ew_fused_pass's `OP &op`): the object's struct (its member calls are inlined,
    synth_iteration.Expander, members as `op.m`) and the storage of its pointer members assigned from a
    storage path in the caller (`op.row = row`), as `op.row`.
Anything else (an expression, a sub-array, a global, an unassigned pointer member, a struct not defined in
the sources, one defined twice) binds to nothing: no claim. Each binding names its storage (the declaring
function and the path), so two parameters bound to one storage (a pass in place, x = y = rows.r0) count
as one array. Also here: the inlining of a local struct's one-return member call into an index
(member_calls). Heuristic by design (regular expressions over comment-free text).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Set as AbstractSet

from edgellm.hw.synth_iteration import CALL, arrays, norm, sub_name
from edgellm.hw.synth_pragmas import IDENT, Function, _pragma_var, _pragmas, _split_top, match_bracket

MAX_LEVELS = 8  # call levels followed up from a loop's function to the storage's declaration
MAX_COMBOS = 64  # bindings of one call site at most (one storage per parameter each)
_PATH = re.compile(rf"{IDENT}(?:\.{IDENT})?")
Fns = dict[str, list[tuple[Function, str]]]
_STRUCT = re.compile(rf"\b(?:struct|class)\s+({IDENT})\s*(?:<[^{{;]*>)?\s*(?::[^{{;]*)?\{{")
_OBJ = re.compile(rf"(?:^|[;{{}}])\s*(?:::)?(?:{IDENT}::)*({IDENT})\s*(?:<[^;{{}}()]*>)?\s+({IDENT})\s*;",
                  re.M)
_KEEP = {"true", "false", "this", "sizeof", "int", "long", "unsigned", "const", "static_cast", "f32"}
Leaf = tuple[str, int, str, str]  # (storage key, dimensions (0 unknown), its pragmas, their variable)


def _data_members(body: str) -> set[str]:
    """The data members a struct body declares (its member functions' bodies and enums left out)."""
    flat, depth = [], 0
    for ch in body:
        depth += ch == "{"
        flat.append(ch if depth == 0 else " ")
        depth -= ch == "}"
        if ch == "}" and depth == 0:
            flat.append(";")  # a member function's body ends its statement
    out = set()
    for stmt in "".join(flat).split(";"):
        if "(" in stmt or re.search(r"\b(?:enum|typedef|using|static|return|struct|class)\b", stmt):
            continue
        for k, part in enumerate(_split_top(stmt)):
            w = re.findall(IDENT, re.sub(r"\[[^\]]*\]", "", part.split("=")[0]))
            if len(w) >= (2 if k == 0 else 1):  # the first declarator after its type
                out.add(w[-1])
    return out


def _instance(expr: str, args: dict, obj: str, consts: AbstractSet[str]) -> str:
    """A member's return expression at a call on obj: parameters replaced by the arguments, constants kept,
    the struct's other names (its members) as `obj.name`."""
    def repl(w: re.Match[str]) -> str:
        name = w.group(0)
        if name in args:
            return f"({args[name]})"
        return name if name in consts or name in _KEEP else f"{obj}.{name}"

    return re.sub(rf"(?<![\w.:>]){IDENT}\b(?!\s*(?:\(|::|<))", repl, expr)


def param_names(params: str) -> list[str | None]:
    """The name of each parameter of a parameter list (None for an unnamed one)."""
    out: list[str | None] = []
    for p in _split_top(params):
        w = re.findall(IDENT, re.sub(r"\[[^\]]*\]", "", p.split("=")[0]))
        out.append(w[-1] if len(w) > 1 else None)
    return out


def template_params(code: str, fn: Function) -> list[str]:
    """The template parameter names of fn's own template header (`template <class CFG, class BODY, class...
    A>` just before its declaration; [] for none)."""
    if fn.at < 0:
        return []
    start = max(code.rfind(c, 0, fn.at) for c in ";{}") + 1
    head = re.search(r"\btemplate\s*<(.*)>[^<>]*$", code[start:fn.at], re.S)
    if head is None:
        return []
    return [w[-1] for p in _split_top(head.group(1)) if (w := re.findall(IDENT, p.split("=")[0]))]


def _indirect(param: str) -> bool:
    """A parameter that may name storage: a pointer, an array or a reference."""
    return any(c in param.split("=")[0] for c in "*&[")


def pragmas_of(body: str, var: str) -> str:
    """body's ARRAY_PARTITION and BIND_STORAGE pragmas for var (a name or a member path)."""
    return "\n".join(x.group(0) for kind in ("ARRAY_PARTITION", "BIND_STORAGE")
                     for x in _pragmas(body, kind) if _pragma_var(x.group(1)) == var)


class Binder:
    """The storage of parameters over one set of function definitions (fns: short name -> definitions
    with their texts); call sites, struct members and answers remembered."""

    def __init__(self, fns: Fns):
        self.fns = fns
        self._sites: dict[Function, list[tuple[Function, str, list[str]]]] = {}
        self._up: dict[tuple[Function, str, int], list[Leaf]] = {}
        self._members: dict[str, dict[str, int] | None] = {}
        self._names: set[str] | None = None
        self._methods: dict[tuple[str, str, str], list[tuple[Function, str]]] = {}
        self._returns: dict[str, list[tuple[list[str | None], str]]] = {}
        self._codes = list(dict.fromkeys(c for defs in fns.values() for _, c in defs))

    def sites(self, fn: Function) -> list[tuple[Function, str, list[str]]]:
        """(caller, its text, the arguments) of every call of fn (its short name, its arity) in fns."""
        if fn in self._sites:
            return self._sites[fn]
        short = fn.name.split("::")[-1]
        n = len([p for p in _split_top(fn.params) if p.strip()])
        out = []
        for defs in self.fns.values():
            for caller, ccode in defs:
                if caller.start == fn.start or ccode.find(short, caller.start, caller.end) < 0:
                    continue
                body = caller.body(ccode)
                for m in CALL.finditer(body):
                    if m.group(1) != short:
                        continue
                    e = match_bracket(body, m.end() - 1, "(", ")")
                    args = [norm(a) for a in _split_top(body[m.end():e - 1])]
                    qual = re.search(rf"({IDENT})\s*::\s*(?:template\s+)?$", body[:m.start()])
                    tparams = template_params(ccode, caller) if qual else []
                    if qual and qual.group(1) in tparams:
                        if not self._instantiates(caller, tparams.index(qual.group(1)), fn):
                            continue  # BODY::run(..) of a template parameter BODY: only the structs given
                    if args and args[-1].endswith("..."):  # a pack expansion: any number of arguments,
                        if n < len(args) - 1:              # none of them bound
                            continue
                        args = args[:-1] + [""] * (n - len(args) + 1)
                    if len(args) == n or (n == 0 and args == [""]):
                        out.append((caller, ccode, args))
        self._sites[fn] = out
        return out

    def _instantiates(self, caller: Function, pos: int, fn: Function) -> bool:
        """Whether fn (a member `S::f`) may be what caller's template parameter at position pos names: S
        there in the template arguments of a call of caller (`TlmmBuffers<..>::template run<CFG,
        TlmmBody<..> >(..)` for the `BODY::run(..)` of `template <class CFG, class BODY, class... A>
        static void run(..)`)."""
        struct = fn.name.rpartition("::")[0]
        if not struct:
            return False
        short = caller.name.split("::")[-1]
        for code in self._codes:
            for m in re.finditer(rf"(?<![\w.]){re.escape(short)}\s*<", code):
                close = match_bracket(code, m.end() - 1, "<", ">")
                if not re.match(r"\s*\(", code[close:]):
                    continue  # not a call (a declaration, a type)
                targs = _split_top(code[m.end():close - 1])
                if len(targs) > pos and re.match(rf"\s*(?:{IDENT}::)*{re.escape(struct)}\b", targs[pos]):
                    return True
        return False

    def members(self, struct: str) -> dict[str, int] | None:
        """The member arrays (name -> dimensions) of the one struct / class definition named struct in the
        sources, None when there is none or several."""
        if struct not in self._members:
            found = []
            pat = re.compile(rf"\b(?:struct|class)\s+{re.escape(struct)}\s*(?::[^{{;]*)?\{{")
            for code in self._codes:
                for m in pat.finditer(code):
                    body = code[m.end():match_bracket(code, m.end() - 1, "{", "}") - 1]
                    found.append({a: n for a, (n, stream) in arrays(body).items() if not stream})
            self._members[struct] = found[0] if len(found) == 1 else None
        return self._members[struct]

    def _struct_bodies(self, struct: str) -> list[str]:
        """The bodies of every definition (specialization) of struct in the sources."""
        pat = re.compile(rf"\b(?:struct|class)\s+{re.escape(struct)}\s*(?:<[^{{;]*>)?\s*(?::[^{{;]*)?\{{")
        return [code[m.end():match_bracket(code, m.end() - 1, "{", "}") - 1]
                for code in self._codes for m in pat.finditer(code)]

    def methods(self, struct: str, method: str, obj: str) -> list[tuple[Function, str]]:
        """struct's member functions named method (`operator()` for a call of the object itself) as
        (definition, its text) with the struct's data members renamed `obj.member`: the bodies a call on
        obj inlines (synth_iteration.Expander)."""
        key = (struct, method, obj)
        if key not in self._methods:
            out = []
            name = r"\boperator\s*\(\s*\)" if method == "operator()" else rf"\b{re.escape(method)}"
            pat = re.compile(rf"{name}\s*\(([^()]*)\)\s*(?:const\s*)?\{{")
            for body in self._struct_bodies(struct):
                data = _data_members(body)
                for m in pat.finditer(body):
                    text = body[m.end() - 1:match_bracket(body, m.end() - 1, "{", "}")]
                    params = {w for w in param_names(m.group(1)) if w}
                    for d in sorted(data - params):
                        text = sub_name(text, d, f"{obj}.{d}")
                    out.append((Function(f"{struct}::{method}", m.group(1), 0, len(text)), text))
            self._methods[key] = out
        return self._methods[key]

    def struct_of(self, body: str, name: str) -> str | None:
        """The struct (defined in the sources) of a local `T name;` in body: T, or the struct T typedefs."""
        for m in _OBJ.finditer(body):
            if m.group(2) != name:
                continue
            t = m.group(1)
            td = re.search(rf"\btypedef\s+(?:typename\s+)?(?:{IDENT}::)*({IDENT})\s*(?:<[^;{{}}()]*>)?\s*"
                           rf"{re.escape(t)}\s*;", body)
            t = td.group(1) if td else t
            return t if t in self._struct_names() else None
        return None

    def objects(self, caller: Function, ccode: str, param: str, arg: str
                ) -> tuple[str, dict[str, list[Leaf]]] | None:
        """A reference parameter bound to a local object of the caller (arg): (its struct, the storages of
        its pointer members assigned from a storage path (`op.row = row`), as `param.member`)."""
        body = caller.body(ccode)
        struct = self.struct_of(body, arg) if re.fullmatch(IDENT, arg) else None
        if struct is None:
            return None
        out: dict[str, list[Leaf]] = {}
        for m in re.finditer(rf"(?<![\w.]){re.escape(arg)}\s*\.\s*({IDENT})\s*=(?!=)\s*([^,;]+)", body):
            leaves = self._arg(caller, ccode, norm(m.group(2)), "", MAX_LEVELS)
            if leaves and f"{param}.{m.group(1)}" not in out:
                out[f"{param}.{m.group(1)}"] = leaves
        return struct, out

    def local_types(self, body: str) -> dict[str, str]:
        """The locals a function body declares as a struct defined in the sources: name -> struct."""
        out = {}
        for m in _OBJ.finditer(body):
            if m.group(1) in self._struct_names():
                out[m.group(2)] = m.group(1)
        return out

    def _struct_names(self) -> set[str]:
        if self._names is None:
            self._names = {m.group(1) for code in self._codes for m in _STRUCT.finditer(code)}
        return self._names

    def returns(self, struct: str, method: str) -> list[tuple[list[str | None], str]]:
        """(parameter names, expression) of every definition of struct's member `method` whose body is one
        `return e;` (each specialization of the struct)."""
        key = f"{struct}::{method}"
        if key not in self._returns:
            out = []
            pat = re.compile(rf"\b(?:struct|class)\s+{re.escape(struct)}\s*(?:<[^{{;]*>)?\s*(?::[^{{;]*)?\{{")
            fn = re.compile(rf"\b{re.escape(method)}\s*\(([^()]*)\)\s*(?:const\s*)?\{{"
                            r"\s*return\s+([^;{}]+);\s*\}")
            for code in self._codes:
                for m in pat.finditer(code):
                    body = code[m.end():match_bracket(code, m.end() - 1, "{", "}") - 1]
                    out += [(param_names(f.group(1)), f.group(2).strip()) for f in fn.finditer(body)]
            self._returns[key] = out
        return self._returns[key]

    def member_calls(self, text: str, types: dict[str, str], consts: AbstractSet[str]) -> str:
        """text with each call `obj.f(args)` of a local struct's member f whose body is one `return e;`
        replaced by `(e)`: its parameters by the arguments, the struct's other names by `obj.name` (the
        tool inlines such a function; its value then indexes like any expression). With several
        definitions (specializations) the longest e, as for overloads (synth_iteration.Expander)."""
        if not types:
            return text
        for m in reversed(list(re.finditer(rf"(?<![\w.>])({IDENT})\s*\.\s*({IDENT})\s*\(", text))):
            if m.group(1) not in types:
                continue
            defs = self.returns(types[m.group(1)], m.group(2))
            e = match_bracket(text, m.end() - 1, "(", ")")
            args = [a.strip() for a in _split_top(text[m.end():e - 1])]
            args = [] if args == [""] else args
            defs = [(w, x) for w, x in defs if len(w) == len(args) or (not args and w == [None])]
            if not defs:
                continue
            names, expr = max(defs, key=lambda d: len(d[1]))
            expr = _instance(expr, dict(zip(names, args, strict=False)), m.group(1), consts)
            text = text[:m.start()] + f"({expr})" + text[e:]
        return text

    def local(self, caller: Function, ccode: str, path: str) -> Leaf | None:
        """The storage path names among caller's locals: a local array, a member array of a local struct."""
        body = caller.body(ccode)
        root, _, member = path.partition(".")
        found = arrays(body)
        if not member:
            if root not in found or found[root][1]:
                return None
            ndim = found[root][0]
        else:
            decl = re.search(rf"(?:^|[;{{}}])\s*(?:::)?(?:{IDENT}::)*({IDENT})\s*(?:<[^;{{}}()]*>)?\s+"
                             rf"{re.escape(root)}\s*;", body)
            arrays_of = self.members(decl.group(1)) if decl else None
            if not arrays_of or member not in arrays_of:
                return None
            ndim = arrays_of[member]
        return f"{caller.name}@{caller.start}:{path}", ndim, pragmas_of(body, path), path

    def storage(self, fn: Function, path: str, levels: int) -> list[Leaf]:
        """The storages the path (`param` or `param.member`) of fn's parameters is bound to at fn's call
        sites (followed levels more levels up)."""
        key = (fn, path, levels)
        if key in self._up:
            return self._up[key]
        self._up[key] = []  # a call cycle binds to nothing
        root, _, member = path.partition(".")
        names = param_names(fn.params)
        out: list[Leaf] = []
        if root in names:
            i = names.index(root)
            ref = re.search(rf"({IDENT})\s*(?:<[^;{{}}()]*>)?\s*&\s*{re.escape(root)}\s*$",
                            _split_top(fn.params)[i].split("=")[0])
            arrays_of = self.members(ref.group(1)) if ref and member else None
            if arrays_of and member in arrays_of:  # a member array of a struct passed by reference
                self._up[key] = self.typed(ref.group(1), member)
                return self._up[key]
            for caller, ccode, args in self.sites(fn):
                out += [x for x in self._arg(caller, ccode, args[i], member, levels) if x not in out]
        self._up[key] = out
        return out

    def typed(self, struct: str, member: str) -> list[Leaf]:
        """The member array of every local `struct<..> name;` that the functions of fns declare: what a
        reference to the struct may be bound to (its declarations, not its call chain: the layer reaches
        the element-wise engine through DATAFLOW process macros synth_check does not expand)."""
        out = []
        for defs in self.fns.values():
            for f, code in defs:
                if code.find(struct, f.start, f.end) < 0:
                    continue
                body = f.body(code)
                for m in re.finditer(rf"(?:^|[;{{}}])\s*(?:::)?(?:{IDENT}::)*{re.escape(struct)}\s*"
                                     rf"(?:<[^;{{}}()]*>)?\s+({IDENT})\s*;", body):
                    leaf = self.local(f, code, f"{m.group(1)}.{member}")
                    if leaf is not None and leaf not in out:
                        out.append(leaf)
        return out

    def _arg(self, caller: Function, ccode: str, arg: str, member: str, levels: int) -> list[Leaf]:
        """The storages an argument (with the member the callee takes of it) names in caller."""
        path = f"{arg}.{member}" if member else arg
        if not _PATH.fullmatch(path):
            return []
        leaf = self.local(caller, ccode, path)
        if leaf is not None:
            return [leaf]
        return self.storage(caller, path, levels - 1) if levels > 1 else []

    def bindings(self, fn: Function) -> list[tuple[dict[str, str], dict[str, Leaf]]]:
        """Per call site of fn (and per storage its arguments may come from): (the reference parameters
        bound to a local object of the caller -> its struct, the parameters and the objects' pointer
        members `param.member` bound to a storage -> it)."""
        params = _split_top(fn.params)
        names = param_names(fn.params)
        out: list[tuple[dict[str, str], dict[str, Leaf]]] = []
        for caller, ccode, args in self.sites(fn):
            per: dict[str, list[Leaf]] = {}
            types: dict[str, str] = {}
            for p, w, a in zip(params, names, args, strict=False):
                if not w or not _indirect(p):
                    continue
                obj = self.objects(caller, ccode, w, a) if "*" not in p.split("=")[0] else None
                if obj is not None:
                    types[w] = obj[0]
                    per.update(obj[1])
                    continue
                leaves = self._arg(caller, ccode, a, "", MAX_LEVELS)
                if leaves:
                    per[w] = leaves
            for combo in itertools.islice(itertools.product(*per.values()), MAX_COMBOS):
                bound = dict(zip(per, combo, strict=True))
                if (bound or types) and (types, bound) not in out:
                    out.append((types, bound))
        return out
