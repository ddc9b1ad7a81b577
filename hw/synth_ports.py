"""synth_check's port-budget rule (hw/synth_check.py runs it beside hw/synth_pragmas.py's and
hw/synth_maxi.py's rules; it returns (offset, rule, detail) tuples).

  port-budget  in a loop pipelined at II = 1, more accesses (loads and stores) to one on-chip memory of
               a local array per iteration than the memory has ports: Vitis would serialize them
               (II > 1). The iteration is hw/synth_iteration.py's: nested loops without a PIPELINE of
               their own unrolled (a literal trip count as written, any other as three copies: more
               than two ports), `#pragma HLS INLINE` callees inlined two levels deep (`INLINE off` ones
               are modules of their own), locals folded into the indices that use them, C-simulation
               instrumentation (EDGELLM_DEP_*) dropped.
               Arrays: the function's locals (declared with brackets, or a typedef'd array an
               ARRAY_PARTITION names), those declared in the inlined code, and the storage a parameter is
               bound to through its callers (hw/synth_bind.py, with the declaring function's pragmas: a
               local array, a local struct's member array such as elementwise.h's `rows.r0`, its pragmas
               from the expanded EDGELLM_EW_ROWS macro, hw/synth_macros.py; a caller's local object's
               pointer members, `op.row`, whose INLINE member calls `op(u, i)` are inlined); parameters
               bound to one storage (in place) are one array. A member call whose body is one `return e;`
               (`st.index(j, i)` on a local struct) is inlined into the index.
               Memories: an array with no ARRAY_PARTITION is one memory; one partitioned on some
               dimensions is one memory per bank of those (hw/synth_banks.py: Vitis' banks, dim = 0
               every dimension). Complete: one bank per index; an access whose index there is static
               (literals, constants, unrolled loop variables, and arithmetic of them; also
               `(X * N + s) % N`, bank s) goes to the memory it names, one at a runtime index counts
               against every memory of the dimension (a multiplexer over shared ports), except that the
               accesses `(X * N + s) % M` of one aligned block with distinct s reach distinct memories
               (a rotation; where M == N in the instance the tool folds it to s). Cyclic by F (element i
               in bank i % F): an index `X * F + l` (l of known value: literals, unrolled lanes; X
               anything) is bank l (l % F where F is known: a literal or a constant of literal value;
               else one bank per distinct l); of `X + S + l` (X runtime, S static of unknown value) the
               accesses with one X and S and distinct l (mod F where known) reach distinct banks (a
               rotation), those of another S (`x + H`: H may be a multiple of F) may share any bank;
               a select `C ? A : B` is the bank of A where A and B name one bank, or are of one runtime
               part and offset l (static parts of unknown value: taken to differ by a multiple of F),
               else every bank; a modulus M around it (`(X + l) % M`, M static) is dropped
               where F divides M, kept in the rotation where that is not known (taken to wrap nowhere
               within the offsets), and where F and M are known and F does not divide M the index counts
               against every bank. Block by F (bank i / ceil(N / F)): a static index names its bank when
               its value, N and F are known; any other index counts against every bank. A cyclic / block
               factor of at least the dimension's size (its text, or both known) is a complete one.
               Budget a memory: two accesses (true dual port); one read and one write for BIND_STORAGE
               `ram_s2p`; one for `ram_1p` / `rom_1p`. The same index text read twice is one read (the
               tool shares it), and so is the same store.
               Exempt: arrays partitioned completely on every dimension (registers), `BIND_STORAGE ...
               impl = reg`, hls::stream arrays, and arrays declared inside the iteration whose every
               index is static (Vitis partitions them).
Limitations (heuristic by design: regular expressions over comment-free text): exclusive branches count
together; index texts that differ but name one address count as two accesses; a reference to a
sub-array (`auto &r = a[i]`) and a sub-array passed to a non-inlined function are not followed; storage
reached otherwise than hw/synth_bind.py follows is not counted; a symbolic cyclic factor is taken to
exceed the spread of the static offsets that share a runtime part, and the two static parts of a select
to differ by a multiple of it.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator

from edgellm.hw.synth_banks import (
    Part,
    _unwrap,
    block_key,
    constant_values,
    cyclic_key,
    dim_sizes,
    partitions,
    value,
)
from edgellm.hw.synth_bind import Binder, Leaf
from edgellm.hw.synth_iteration import (
    Expander,
    arrays,
    fold_locals,
    is_static,
    no_csim,
    norm,
    sub_name,
    subscripts,
)
from edgellm.hw.synth_pragmas import (
    Function,
    _pragma_var,
    _pragmas,
    functions,
    ii1_loops,
    loop_head,
    match_bracket,
)


def _accesses(text: str, name: str) -> list[tuple[str, tuple[str, ...]]]:
    """('r' / 'w', index texts) of every subscripted access `name[..]..` in text (a compound assignment or
    ++ / -- both); fewer subscripts than the array's dimensions (a sub-array passed on) are kept too."""
    out: list[tuple[str, tuple[str, ...]]] = []
    if name not in text:
        return out
    for at, e in subscripts(text, name):
        idx = []
        while e < len(text) and text[e] == "[":
            c = match_bracket(text, e, "[", "]")
            idx.append(norm(text[e + 1:c - 1]))
            e = c
            while e < len(text) and text[e].isspace():
                e += 1
        tail = text[e:e + 3]
        before = text[max(0, at - 8):at].rstrip()
        if re.match(r"=(?!=)", tail):
            kinds = "w"
        elif re.match(r"(?:[-+*/|&^%]|<<|>>)=|\+\+|--", tail) or before.endswith(("++", "--")):
            kinds = "rw"
        else:
            kinds = "r"
        out.extend((k, tuple(idx)) for k in kinds)
    return out


def _budget(storage: str) -> tuple[int, int, int]:
    """(reads, writes, accesses) one memory takes per cycle under its BIND_STORAGE type."""
    if re.search(r"\b(?:ram|rom)_1p\b", storage):
        return 1, 1, 1
    if re.search(r"\bram_s2p\b", storage):
        return 1, 1, 2
    return 2, 2, 2


_MOD = re.compile(r"\(*(.+?)\*(\w+)\+\(?(\d+)\)?\)*%(\w+)")


def _key(index: str, consts: set[str]) -> str | tuple[str, str] | None:
    """The memory an index on a partitioned dimension names: its text when static; s for `(X * N + s) % N`
    (the tool folds it too); (`X * N % M`, s) for `(X * N + s) % M`, an aligned block of one rotation
    (its copies with distinct s reach distinct memories, as where M == N in the instance); else None
    (runtime: every memory)."""
    if is_static(index, consts):
        return index
    m = _MOD.fullmatch(index)
    if m is None:
        return None
    return m.group(3) if m.group(2) == m.group(4) else (f"{m.group(1)}*{m.group(2)}%{m.group(4)}", m.group(3))


def _shared(hit: list[tuple], dim: int) -> list[tuple]:
    """hit ((access, key) pairs that may reach one memory) less the rotation accesses that cannot be
    there together: of one rotation on dim, only those of one offset s (the most numerous)."""
    groups: dict[str, dict[str, list]] = {}
    for h in hit:
        if isinstance(h[1][dim], tuple):
            groups.setdefault(h[1][dim][0], {}).setdefault(h[1][dim][1], []).append(h)
    drop = [h for g in groups.values() for s in g.values() if s is not max(g.values(), key=len) for h in s]
    return [h for h in hit if h not in drop]


def _worst(acc: set[tuple[str, tuple[str, ...]]], banked: list[tuple[int, Part, str | None]],
           consts: set[str], values: dict[str, int], budget: tuple[int, int, int]) -> int:
    """The most accesses one memory of the array sees (0 when every memory is within its budget);
    banked: the partitioned dimensions (1-based) with their partition and size."""
    keys = []  # per access: the memory it names on each partitioned dimension (_bank)
    for _, idx in acc:
        keys.append(tuple(_bank(idx[d - 1], part, size, consts, values) if d - 1 < len(idx) else None
                          for d, part, size in banked))
    dims = range(len(banked))
    names = [sorted({k[i] for k in keys if isinstance(k[i], str)}) + [None] for i in dims]
    worst = 0
    for mem in itertools.islice(itertools.product(*names), 4096):
        pairs = [(a, k) for a, k in zip(acc, keys, strict=True)
                 if all(not isinstance(x, str) or x == y for x, y in zip(k, mem, strict=True))]
        for i in dims:
            pairs = _shared(pairs, i)
        hit = [a for a, _ in pairs]
        r, w = sum(k == "r" for k, _ in hit), sum(k == "w" for k, _ in hit)
        if r > budget[0] or w > budget[1] or r + w > budget[2]:
            worst = max(worst, r + w)
    return worst


def _bank(index: str, part: Part, size: str | None, consts: set[str], values: dict[str, int]
          ) -> str | tuple[str, str] | None:
    """The memory an index names on a dimension under its partition (_key for complete ones;
    hw/synth_banks.py for cyclic and block ones)."""
    if part.kind == "cyclic":
        alt = _select(index)
        if alt is None:
            return cyclic_key(index, part.factor, consts, values)
        a, b = (cyclic_key(x, part.factor, consts, values) for x in alt)
        if a == b or (isinstance(a, tuple) and isinstance(b, tuple) and a[1] == b[1]
                      and a[0].split("|")[0] == b[0].split("|")[0]):
            return a  # one bank either way; or one runtime part and lane, static parts of unknown value
        return None
    if part.kind == "block":
        return block_key(index, part.factor, size, values)
    return _key(index, consts)


def _select(index: str) -> tuple[str, str] | None:
    """(A, B) of an index `C ? A : B` (one conditional at the top, parentheses around it dropped)."""
    text = _unwrap(index)
    depth, q = 0, -1
    for i, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and ch == "?":
            if q >= 0:
                return None
            q = i
    if q < 0:
        return None
    depth = 0
    for i in range(q + 1, len(text)):
        depth += (text[i] in "([") - (text[i] in ")]")
        if depth == 0 and text[i] == ":" and text[i - 1:i + 1] != "::" and text[i:i + 2] != "::":
            return text[q + 1:i], text[i + 1:]
    return None


def _local_arrays(body: str) -> dict[str, int]:
    """The arrays a function body declares (not hls::stream ones): name -> dimensions (0: a typedef'd
    array an ARRAY_PARTITION names, its dimensions taken from its accesses)."""
    return dict(_local_array_items(body))


@functools.lru_cache(maxsize=1024)
def _local_array_items(body: str) -> tuple[tuple[str, int], ...]:
    """_local_arrays(body)'s items (one parse per body: _bindings reads every caller's per callee)."""
    out = {a: n for a, (n, stream) in arrays(body).items() if not stream}
    for m in _pragmas(body, "ARRAY_PARTITION"):
        var = _pragma_var(m.group(1))
        if var and "." not in var and var not in out and \
                re.search(rf"[\w>]\s+(?:[^;(){{}}]*,\s*)?{re.escape(var)}\s*[,;]", body):
            out[var] = 0
    return tuple(out.items())


_BINDER: list = [None, None]  # (the fns of the last run, its Binder): one per check_paths, not per file


def binder(fns: dict[str, list[tuple[Function, str]]]) -> Binder:
    """The Binder of fns (kept while the same fns come back: synth_check runs the rule per file)."""
    if _BINDER[0] is not fns:
        _BINDER[:] = [fns, Binder(fns)]
    return _BINDER[1]


def port_budget(code: str, fn: Function, consts: set[str], fns: dict[str, list[tuple[Function, str]]],
                values: dict[str, int] | None = None) -> Iterator[tuple[int, str, str]]:
    """More accesses to one memory of a local array (or of a caller's local array bound to a parameter)
    per II=1 iteration than its ports; values: the constants of known integer value (synth_banks)."""
    values = {} if values is None else values
    body = fn.body(code)
    loops = list(ii1_loops(body))
    if not loops:
        return
    local = _local_arrays(body)
    bind = binder(fns)
    bindings = bind.bindings(fn)
    types = bind.local_types(body)
    outer = set(local) | {p.split(".")[0] for _, b in bindings for p in b}
    for at, _ in loops:
        _, b0, b1 = loop_head(body, at)
        loop = fold_locals(bind.member_calls(no_csim(body[b0 + 1:b1 - 1]), types, consts), consts)
        it = Expander(fns, outer, consts).iteration(loop)
        inner = {a: n for a, (n, stream) in arrays(it).items() if not stream}
        worst = _loop_worst(it, {**local, **inner}, set(inner), body[:b0], consts, values)
        per_objects = {(): it}  # the iteration with the member calls of the objects bound at a call site
        for objs, bound in bindings:  # the parameters bound to a caller's storage, under its pragmas
            key = tuple(sorted(objs.items()))
            if key not in per_objects:
                per_objects[key] = Expander(fns, outer, consts, objs, bind.methods).iteration(loop)
            for a, n in _bound_worst(per_objects[key], bound, body[:b0], consts, values).items():
                worst[a] = max(worst.get(a, 0), n)
        for a, n in sorted(worst.items()):
            if n:
                yield (fn.start + at, "port-budget",
                       f"{a} {n} accesses on one memory per iteration of an II=1 loop in {fn.name}")


def _bound_worst(it: str, bound: dict[str, Leaf], before: str, consts: set[str], values: dict[str, int]
                 ) -> dict[str, int]:
    """_loop_worst of the parameters (and objects' members) bound to storage (synth_bind), under the
    storage's pragmas renamed to them; those bound to one storage (a pass in place) count as one array."""
    names, extra = {}, [before]
    for p, (key, ndim, prag, var) in bound.items():
        first = next(q for q, leaf in bound.items() if leaf[0] == key)
        if first != p:
            it = sub_name(it, p, first)
            continue
        names[p] = ndim
        extra.append(sub_name(prag, var, p))
    return _loop_worst(it, names, set(), "\n".join(extra), consts, values)


def _loop_worst(it: str, names: dict[str, int], inner: set[str], before: str, consts: set[str],
                values: dict[str, int]) -> dict[str, int]:
    """The most accesses on one memory of each array of names (its dimensions, 0 unknown) in one
    iteration `it` (0: within budget); inner: those declared in it; before: the function's text before
    the loop (its pragmas), with a caller's pragmas for arrays bound to parameters."""
    scope = before + "\n" + it  # the pragmas of the function and of the inlined code
    parts = partitions(scope)
    worst: dict[str, int] = {}
    for a, ndim in sorted(names.items()):
        found = _accesses(it, a)
        ndim = max([ndim] + [len(i) for _, i in found])
        banked = _banked(parts.get(a, ()), ndim, dim_sizes(scope, a) if parts.get(a) else [], values)
        if not found or _exempt(scope, a, banked, ndim):
            continue
        acc = {x for x in found if len(x[1]) == ndim}
        if a in inner and all(is_static(i, consts) for _, idx in acc for i in idx):
            continue  # declared in the iteration, every index static: registers
        storage = " ".join(x.group(1) for x in _pragmas(scope, "BIND_STORAGE")
                           if _pragma_var(x.group(1)) == a)
        base = a.split("__")[0]
        worst[base] = max(worst.get(base, 0), _worst(acc, banked, consts, values, _budget(storage)))
    return worst


def _banked(parts: tuple[Part, ...], ndim: int, sizes: list[str], values: dict[str, int]
            ) -> list[tuple[int, Part, str | None]]:
    """(dimension, its partition, its size text or None) of every partitioned dimension (dim = 0: each one;
    the first pragma on a dimension); a cyclic or block factor of at least the size (the same text, or
    both known) is a complete partition (banks of one element)."""
    out: dict[int, Part] = {}
    for p in parts:
        for d in range(1, ndim + 1) if p.dim == 0 else [p.dim]:
            out.setdefault(d, p)
    banked = []
    for d, p in sorted(out.items()):
        size = sizes[d - 1] if d - 1 < len(sizes) else None
        f, n = value(p.factor, values), value(size, values) if size else None
        if p.kind != "complete" and size and (p.factor == size or (f and n and f >= n)):
            p = Part("complete", d)
        banked.append((d, p, size))
    return banked


def _exempt(scope: str, a: str, banked: list[tuple[int, Part, str | None]], ndim: int) -> bool:
    """Registers: complete on every dimension, or impl = reg."""
    if ndim and {d for d, p, _ in banked if p.kind == "complete"} >= set(range(1, ndim + 1)):
        return True
    return any(_pragma_var(x.group(1)) == a and re.search(r"\bimpl\s*=\s*\w*reg", x.group(1))
               for x in _pragmas(scope, "BIND_STORAGE"))


def run(code: str, consts: set[str], fns: dict[str, list[tuple[Function, str]]] | None = None
        ) -> list[tuple[int, str, str]]:
    """Findings of the port-budget rule over one comment-free source text; fns: the functions a loop may
    call (every scanned file's and the library's; default this text's)."""
    if fns is None:
        fns = {}
        for f in functions(code):
            fns.setdefault(f.name.split("::")[-1], []).append((f, code))
    found: list[tuple[int, str, str]] = []
    frozen = frozenset(consts)  # fold_locals remembers its results per text and constants
    values = {n: v for n, v in constant_values(tuple(dict.fromkeys(
        [code] + [c for defs in fns.values() for _, c in defs]))).items() if n in consts}  # not shadowed
    for fn in functions(code):
        found.extend(port_budget(code, fn, frozen, fns, values))
    return found
