"""Static synthesizability check for HLS C++ sources (hw/ and generated project hls/ directories).

Rules (each finding is "file:line: rule: detail"); the first five are hw/synth_basic.py's:
  dynamic-memory  malloc / calloc / realloc / free / new / delete
  std-container   std::vector, std::map, std::string, ... or including their headers
  recursion       a function that calls itself directly (unqualified call inside its own body)
  unbounded-loop  while(1) / while(true) / for(;;), and while / do-while loops without a
                  LOOP_TRIPCOUNT pragma in their body
  runtime-bound   a for loop whose condition has no conjunct bounded by constants (literals,
                  template parameters, const/constexpr names, enumerators, X::Y members, or the
                  variables of enclosing constant-bounded loops) and no LOOP_TRIPCOUNT in its body
  the m_axi rules of hw/synth_maxi.py: maxi-select, maxi-dependence, maxi-cast, maxi-access; and the
  pragma rules of hw/synth_pragmas.py: dataflow-inline, shared-call, partitioned-dependence,
  double-store, dep-unchecked; and hw/synth_ports.py's port-budget (more accesses to one on-chip memory
  per iteration of an II=1 loop than its ports), and hw/synth_dataflow.py's stream-fanout and
  array-fanout (a stream or array of a DATAFLOW region two of its processes write, or two read), and
  hw/synth_recurrence.py's float-recurrence (a float carried from one iteration of an II = 1 loop to the
  next through an add), and hw/synth_syntax.py's pragma-syntax (a pragma, option or value the Vitis HLS
  pragma reference does not define) and pragma-variable (a pragma naming a variable its function does not
  declare)
  (docs/hls.md "Pragmas and synth_check's rules").
Testbench files (a `tb` folder, *_tb.*, tb_*.*, test*) and the threaded C simulation's runtime
(a `csim_threads` folder) are C-simulation only and are skipped, and so are the branches of a source
that synthesis never compiles (`#ifndef __SYNTHESIS__`, `#if ... && !defined(__SYNTHESIS__)`). The
project's pragma macros (function-like `#define`s reaching `_Pragma`: EDGELLM_PRAGMA, EDGELLM_ACT_BIND,
EDGELLM_EW_ROWS) are expanded where used (hw/synth_macros.py); every other `#define` line is blanked.
Heuristic by design (regular expressions over comment-free text), tuned to be strict.

Usage: python -m edgellm.hw.synth_check DIR [DIR ...]   (exit 1 on findings, 2 on bad arguments)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from edgellm.hw import (
    synth_basic,
    synth_calls,
    synth_dataflow,
    synth_macros,
    synth_maxi,
    synth_ports,
    synth_pragmas,
    synth_recurrence,
    synth_syntax,
)
from edgellm.hw.synth_basic import IDENT_RE
from edgellm.hw.synth_pragmas import match_bracket

SUFFIXES = {".h", ".hpp", ".hh", ".cpp", ".cc", ".cxx", ".c", ".tcc", ".inl"}


@dataclass(frozen=True)
class Finding:
    """One violation."""

    path: Path
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


def _csim_cond(expr: str) -> bool:
    """An #if condition false under synthesis: a conjunction with a `!defined(__SYNTHESIS__)` term."""
    return "||" not in expr and re.search(r"!\s*defined\s*\(?\s*__SYNTHESIS__\b", expr) is not None


def blank_csim_only(text: str) -> str:
    """Blank (newlines kept) the code of preprocessor branches that synthesis never compiles:
    `#ifndef __SYNTHESIS__`, `#if ... && !defined(__SYNTHESIS__)`, the `#else` of `#ifdef __SYNTHESIS__`.
    The directives themselves stay (strip_source blanks them)."""
    out, stack = [], []  # stack: [branch now C-simulation only, the #else branch C-simulation only]
    for line in text.split("\n"):
        m = re.match(r"\s*#\s*(ifndef|ifdef|if|elif|else|endif)\b(.*)", line)
        if m:
            kind, rest = m.group(1), m.group(2)
            syn = rest.strip() == "__SYNTHESIS__"
            if kind == "ifndef":
                stack.append([syn, False])
            elif kind == "ifdef":
                stack.append([False, syn])
            elif kind == "if":
                stack.append([_csim_cond(rest), False])
            elif stack and kind == "elif":
                stack[-1] = [_csim_cond(rest), False]
            elif stack and kind == "else":
                stack[-1] = [stack[-1][1], False]
            elif stack and kind == "endif":
                stack.pop()
            out.append(line)
        else:
            out.append(" " * len(line) if any(s[0] for s in stack) else line)
    return "\n".join(out)


def strip_source(text: str) -> str:
    """Blank comments, string/char literals, non-pragma preprocessor lines and C-simulation-only
    branches (blank_csim_only), newlines kept."""
    text = blank_csim_only(text)
    out: list[str] = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#" or (line_start and text[i:].lstrip(" \t").startswith("#")
                                       and c in " \t"):
            j = i
            while True:  # the directive with its continuation lines
                e = text.find("\n", j)
                e = n if e < 0 else e
                if e > j and text[e - 1] == "\\":
                    j = e + 1
                    continue
                break
            directive = text[i:e]
            if re.match(r"\s*#\s*pragma\b", directive):
                out.append(re.sub(r"//.*|/\*.*?\*/", "", directive))
            elif re.match(r"\s*#\s*include\b", directive):
                out.append(directive)
            else:
                out.append(re.sub(r"[^\n]", " ", directive))
            i = e
            continue
        if text.startswith("//", i):
            e = text.find("\n", i)
            e = n if e < 0 else e
            out.append(" " * (e - i))
            i = e
            continue
        if text.startswith("/*", i):
            e = text.find("*/", i + 2)
            e = n if e < 0 else e + 2
            out.append(re.sub(r"[^\n]", " ", text[i:e]))
            i = e
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j]) + c)
            i = j + 1
            line_start = False
            continue
        out.append(c)
        if c == "\n":
            line_start = True
        elif not c.isspace():
            line_start = False
        i += 1
    return "".join(out)


def constant_names(code: str) -> set[str]:
    """Names that are compile-time constants: template parameters, enumerators, and const /
    constexpr variables whose initializers are themselves constant (iterated to a fixed point).
    Names also declared as function parameters or non-const variables are never constant."""
    names: set[str] = set()
    inits: dict[str, str] = {}
    for m in re.finditer(r"template\s*<", code):
        params = code[m.end() - 1:match_bracket(code, m.end() - 1, "<", ">")]
        for p in re.split(r",", params.strip("<>")):
            w = IDENT_RE.findall(p.split("=")[0])
            if len(w) >= 2:
                names.add(w[-1])
    for m in re.finditer(r"\benum\b[^{;]*\{([^}]*)\}", code):
        for item in m.group(1).split(","):
            w = IDENT_RE.findall(item.split("=")[0])
            if w:
                names.add(w[0])
    for m in re.finditer(r"\b(?:const|constexpr)\b[^;(){}]*(?:\([^;{}]*\)[^;(){}]*)*;", code):
        decl = m.group(0)
        for d in re.finditer(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*=(?!=)([^,;]*)", decl):
            inits.setdefault(d.group(1), "")
            inits[d.group(1)] += " " + d.group(2)
    no_tpl = re.sub(r"template\s*<[^{};]*?>\s*(?=(struct|class|void|inline|static|[A-Za-z_]))", " ", code)
    runtime = {m.group(1) for m in re.finditer(
        r"(?<![\w:])(?:unsigned\s+)?(?:int|long|short|size_t|bool|char|int\d+_t|uint\d+_t|f32|float)\s+"
        r"([A-Za-z_]\w*)\s*[,)=;]", no_tpl)}
    runtime -= {n for n in inits if re.search(rf"\b(?:const|constexpr)\b[^;]*\b{re.escape(n)}\s*=", code)}
    changed = True
    while changed:
        changed = False
        for n, e in inits.items():
            if n not in names and n not in runtime and all(x in names for x in synth_basic.idents(e)):
                names.add(n)
                changed = True
    return names - runtime


def shared_constants(code: str) -> set[str]:
    """constant_names of the text with every function body blanked: the namespace- and struct-level
    constants, template parameters and enumerators other files may use. A function's own const locals and
    enumerators are its alone (function_constants): a `const long n` in one function must not make every
    `i < n` elsewhere look constant-bounded."""
    out, at = [], 0
    for f in sorted(synth_pragmas.functions(code), key=lambda f: f.start):
        if f.start < at:
            continue  # inside a body blanked already
        out += [code[at:f.start + 1], re.sub(r"[^\n]", " ", code[f.start + 1:f.end - 1])]
        at = f.end - 1
    return constant_names("".join(out) + code[at:])


def function_constants(code: str) -> list[tuple[int, int, set[str]]]:
    """(body start, body end, constant_names of the body) of every function definition in code."""
    return [(f.start, f.end, constant_names(f.body(code))) for f in synth_pragmas.functions(code)]


def _line(code: str, i: int) -> int:
    return code.count("\n", 0, i) + 1


def prepare(text: str, macros: synth_macros.Macros, done: dict[str, str] | None = None) -> str:
    """The text the rules read: strip_source's, with the project's pragma macros expanded where they are
    used (hw/synth_macros.py); done: the texts prepared already (one run's macros)."""
    if done is not None and text in done:
        return done[text]
    code = synth_macros.expand(strip_source(text), macros)
    if done is not None:
        done[text] = code
    return code


def check_text(path: Path, text: str, consts: set[str], units: set[str] | None = None,
               fns: synth_maxi.Callees | None = None, macros: synth_macros.Macros | None = None,
               done: dict[str, str] | None = None) -> list[Finding]:
    """All findings of one source text; consts are the shared constant names of every scanned file
    (shared_constants; each function's own are added for its loops: function_constants), units the
    non-inlined functions (synth_pragmas.hardware_units) and fns the function definitions
    (synth_maxi.callees) of every scanned file and the library, macros the pragma macros they define
    (default: this text's), done prepare's texts of this run."""
    if macros is None:
        macros = synth_macros.pragma_macros(synth_macros.defines(text))
    code = prepare(text, macros, done)
    if units is None:
        units = synth_pragmas.hardware_units(code, synth_pragmas.functions(code))
    hits = synth_pragmas.run(code, units) + synth_maxi.run(code, fns) + synth_ports.run(code, consts, fns)
    hits += synth_basic.memory_rules(code) + synth_basic.recursion(code)
    hits += synth_basic.loop_rules(code, consts, function_constants(code))
    hits += synth_dataflow.run(code, fns)
    hits += synth_recurrence.run(code, consts, fns)
    hits += list(synth_syntax.run(code, synth_calls.object_macros()))
    return [Finding(path, _line(code, at), rule, detail) for at, rule, detail in hits]


def is_testbench(path: Path) -> bool:
    """C-simulation-only files, which are never synthesized: testbenches, and the threaded C
    simulation's runtime (a `csim_threads` folder: threads, bounded streams)."""
    n = path.name.lower()
    folders = {p.lower() for p in path.parts[:-1]}
    return ("tb" in folders or "csim_threads" in folders or n.startswith(("tb_", "test"))
            or Path(n).stem.endswith("_tb"))


def sources(root: Path) -> list[Path]:
    """Synthesizable C/C++ sources under root (a file or a directory), sorted."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*")
                  if p.suffix in SUFFIXES and not is_testbench(p.relative_to(root)))


def check_paths(roots: list[Path]) -> list[Finding]:
    """Findings over every source under roots (constants are gathered across all of them and
    across hw/include, so a generated top may use the library's constants; a function or pragma macro the
    roots define is taken from them, the library's only for the others)."""
    files = [f for r in roots for f in sources(Path(r))]
    lib = sources(Path(__file__).resolve().parent / "include")
    consts: set[str] = set()
    units: set[str] = set()
    fns: synth_maxi.Callees = {}
    texts = {}
    scanned = set(files)
    own: set[str] = set()  # functions the scanned sources define: their definitions, not the library's
    found: dict[str, set] = {}
    own_macros: set[str] = set()
    for f in dict.fromkeys(files + lib):  # a macro the scanned sources define: their definitions only
        texts[f] = f.read_text(errors="replace")
        for name, bodies in synth_macros.defines(texts[f]).items():
            if f in scanned:
                own_macros.add(name)
            elif name in own_macros:
                continue
            found.setdefault(name, set()).update(bodies)
    macros = synth_macros.pragma_macros(found)
    done: dict[str, str] = {}
    for f in dict.fromkeys(files + lib):
        code = prepare(texts[f], macros, done)
        consts |= shared_constants(code)
        units |= synth_pragmas.hardware_units(code, synth_pragmas.functions(code))
        for name, defs in synth_maxi.callees(code).items():
            if f in scanned:
                own.add(name)
            elif name in own:
                continue  # a project's own copy of a library header (maybe an older one) is what it builds
            fns.setdefault(name, []).extend(defs)
    return sorted((x for f in files for x in check_text(f, texts[f], consts, units, fns, macros, done)),
                  key=lambda x: (str(x.path), x.line, x.rule))


def main(argv: list[str] | None = None) -> int:
    """CLI: print findings, exit 1 if any, 2 on a missing path."""
    args = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m edgellm.hw.synth_check DIR [DIR ...]"
    if any(a in ("-h", "--help") for a in args):
        print(f"{usage}\n{__doc__.strip().splitlines()[0]}")
        return 0
    if not args:
        print(usage, file=sys.stderr)
        return 2
    for a in args:
        if not Path(a).exists():
            print(f"error: {a}: no such file or directory", file=sys.stderr)
            return 2
    found = check_paths([Path(a) for a in args])
    for f in found:
        print(f)
    n = sum(len(sources(Path(a))) for a in args)
    print(f"synth_check: {len(found)} finding(s) in {n} file(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
