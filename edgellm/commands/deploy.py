"""`edgellm deploy DIR [-o ARCHIVE]`: one .tar.gz with everything the board needs.

Layout of the archive (one top folder, so it extracts cleanly):

    <name>/README.md          install and run commands
    <name>/run_on_board.py    `run` and `verify` with only numpy + pynq (no typer/rich needed)
    <name>/project/           manifest.json, weights.bin, embed.bin, tokenizer.json, <ip>.bit, <ip>.hwh,
                              hls/ (for the emulator on a host), reference/golden.json
    <name>/python/edgellm/    the runtime's sources (runtime, interface, numerics, golden model)

The project is opened as `run` opens it (a closed set of listed files, every sha256), and only
manifest-listed regular files (plus the build's <ip>.bit / <ip>.hwh) are packed, read without
following symbolic links and re-hashed as they are packed; every member is a regular file under
<name>/, a plain name taken from ARCHIVE. The archive's manifest.json is the project's with `files`
narrowed to what the archive holds (the bitstream's sha256 added), so the board opens a closed set too.
Written to a temporary file beside ARCHIVE, then renamed: a failed deploy leaves nothing behind. An
existing ARCHIVE is replaced only with --force (as compile and calibrate replace their output).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgellm.errors import EdgeLLMError

if TYPE_CHECKING:
    from edgellm.runtime.project import Project

# Runtime sources shipped to the board: (subpackage, glob) -> python/edgellm/<subpackage>/...
RUNTIME_SOURCES = (
    ("", "__init__.py"), ("", "errors.py"), ("runtime", "*.py"), ("compiler", "__init__.py"),
    ("compiler", "interface.py"), ("compiler", "packing.py"), ("models", "__init__.py"),
    ("models", "config.py"), ("models", "numerics.py"), ("models", "golden.py"), ("models", "weights.py"),
    ("hw", "__init__.py"), ("hw", "csim.py"), ("hw", "include/edgellm/*.h"),
)
# what the board needs of a project (besides manifest.json, the bitstream and hls/ for the emulator)
BOARD_FILES = ("reference/golden.json",)
ARCHIVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")

BOARD_SCRIPT = '''"""Run or verify an edgellm project on a PYNQ board with only numpy and pynq installed."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))

from edgellm.errors import EdgeLLMError  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("command", choices=["run", "verify"])
    ap.add_argument("project")
    ap.add_argument("--prompt")
    ap.add_argument("--prompt-ids")
    ap.add_argument("--device", default="auto", choices=["auto", "pynq", "emu"])
    ap.add_argument("-n", "--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    from edgellm.runtime.bpe import load_tokenizer
    from edgellm.runtime.project import Project
    from edgellm.runtime.session import Session, open_device

    p = Project.open(a.project)
    tok = load_tokenizer(p.tokenizer_path, p.config.bos_id, p.config.eos_id) if p.tokenizer_path else None
    from edgellm.runtime.text import check_utf8, parse_token_ids
    from edgellm.runtime.verify import reference_prompt

    vocab = p.config.vocab_size
    ids = None
    if a.prompt_ids:
        ids = parse_token_ids(a.prompt_ids, "--prompt-ids", vocab)
    elif a.prompt and tok is not None:
        bos = tok.bos_id if tok.bos_id is not None else None
        ids = ([bos] if bos is not None else []) + tok.encode(check_utf8(a.prompt, "--prompt"))
    elif a.command == "verify":
        ids = reference_prompt(a.project, vocab)
    if not ids:
        raise EdgeLLMError("pass --prompt TEXT (with a tokenizer) or --prompt-ids 1,2,3")
    dev = open_device(p, a.device)
    print(f"[device] {dev.name}", file=sys.stderr)
    if a.command == "verify":
        from edgellm.runtime.verify import run_verify
        rep = run_verify(p, dev, ids, new_tokens=8, onnx=False, timeout_s=a.timeout)
        for r in rep.rows:
            print(f"{'pass' if r.ok else 'FAIL'}  {r.pair:18s} {r.stage:22s} max|err| {r.max_abs} {r.note}")
        print("verify passed" if rep.ok else "verify FAILED")
        return 0 if rep.ok else 1
    from edgellm.runtime.generation import generate
    from edgellm.runtime.sampling import SamplingParams
    params = SamplingParams(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed,
                            max_new_tokens=a.max_new_tokens, eos_id=tok.eos_id if tok else None)
    sess = Session(p, dev, timeout_s=a.timeout)
    out, shown = [], [""]
    def show(t):
        out.append(t)
        if tok is None:
            sys.stdout.write(f" {t}")
        else:
            text = tok.decode(out)
            if not text.endswith("\ufffd"):  # wait for the rest of a UTF-8 character
                sys.stdout.write(text[len(shown[0]):])
                shown[0] = text
        sys.stdout.flush()
    res = generate(sess, ids, params, on_token=show)
    tps = res.decode_tokens_per_s
    print(f"\\n[{dev.name}] prompt {len(ids)} tokens, generated {len(res.tokens)}, "
          f"TTFT {res.ttft_s * 1e3:.1f} ms, decode {tps if tps is None else round(tps, 2)} tok/s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgeLLMError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        print(f"error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - never a traceback on the board
        if os.environ.get("EDGELLM_DEBUG"):
            raise
        print(f"error: internal error ({type(e).__name__}: {' '.join(str(e).split())})", file=sys.stderr)
        sys.exit(3)
'''


def readme(name: str, ip: str, has_bit: bool) -> str:
    """Install and run instructions for the board."""
    warn = "" if has_bit else (
        f"\n**No bitstream in this archive** ({ip}.bit / {ip}.hwh were missing when it was made): run "
        "`edgellm build` on the project and deploy again before running on the board.\n")
    return f"""# {name}: edgellm deployment
{warn}
The board needs Python 3 with numpy and pynq >= 3.0 (PYNQ images have both). Nothing else.

```
scp {name}.tar.gz xilinx@<board>:~
ssh xilinx@<board>
tar xzf {name}.tar.gz && cd {name}
sudo -E python3 run_on_board.py run project --prompt "Once upon a time" -n 64
sudo -E python3 run_on_board.py verify project        # board vs golden, bit for bit per layer
```

(On PYNQ images run `source /etc/profile.d/pynq_venv.sh` first, or use the Jupyter terminal.)
With edgellm installed (`pip install edgellm[board]`), `edgellm run project --prompt ...` and
`edgellm verify project --no-onnx` do the same with the richer CLI. From a host, set
`PYNQ_REMOTE_DEVICES` to drive a board over the network with the same commands.
`project/` holds the bitstream, the DDR image (weights.bin), the host embedding table (embed.bin),
the tokenizer and the manifest, which lists every file of `project/` with its sha256: the runtime
checks them when it opens the project and refuses a file the manifest does not list.
"""


def package_dir(sub: str) -> Path:
    """Where edgellm[.sub] lives (an editable install maps runtime/ etc. from the repository root)."""
    import importlib.util

    spec = importlib.util.find_spec(f"edgellm.{sub}" if sub else "edgellm")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeLLMError(f"package edgellm.{sub} not found")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _add_bytes(tar: tarfile.TarFile, arc: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arc)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


class _Hashing(io.RawIOBase):
    """A file object that hashes what tarfile reads from it."""

    def __init__(self, f: io.BufferedIOBase) -> None:
        self.f, self.h = f, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.h.update(b)
        return b


def _add_file(tar: tarfile.TarFile, src: Path, arc: str, sha256: str | None = None) -> None:
    """src as a regular-file member arc (never a link): opened without following a symbolic link,
    its sha256 checked against the manifest's as it is packed."""
    from edgellm.runtime.project_files import open_regular

    with open_regular(src) as f:
        st = os.fstat(f.fileno())
        info = tarfile.TarInfo(arc)
        info.size, info.mtime = st.st_size, int(st.st_mtime)
        info.mode = 0o755 if st.st_mode & 0o100 else 0o644
        src_f = _Hashing(f)
        tar.addfile(info, src_f)  # type: ignore[arg-type]
    if sha256 is not None and src_f.h.hexdigest() != sha256:
        raise EdgeLLMError(f"{src} changed while it was packed (sha256 no longer matches the manifest)")


def archive_name(out: Path) -> str:
    """The archive's top folder: ARCHIVE's file name without .tar.gz / .tgz, which must be a plain name
    (no '..', no '/', no leading dot), so no member can extract outside that folder."""
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise EdgeLLMError(f"archive name {out.name!r} must end in .tar.gz")
    name = out.name.removesuffix(".tar.gz") if out.name.endswith(".tar.gz") else out.name.removesuffix(".tgz")
    if not ARCHIVE_NAME.fullmatch(name) or name in (".", ".."):
        raise EdgeLLMError(f"archive name {out.name!r}: the part before .tar.gz becomes the archive's top "
                           "folder and must be a plain name (letters, digits, '.', '_', '+', '-'; starting "
                           "with a letter or digit)")
    return name


def board_files(p: Project) -> dict[str, str]:
    """The listed files the board needs (relative path -> sha256) and the build's bitstream pair."""
    m, listed = p.manifest, p.listed
    want = {m["weights"]["file"], m["host"]["embed_file"], *BOARD_FILES}
    for field in ("tokenizer", "chat_template"):
        if m.get(field):
            want.add(m[field])
    return {rel: h for rel, h in listed.items() if rel in want or rel.startswith("hls/")}


def bitstream(p: Project) -> dict[str, str]:
    """<ip>.bit and <ip>.hwh -> sha256 when both are there (regular files, not links); else {}."""
    from edgellm.runtime.project_files import check_regular, sha256_file

    ip, root = p.iface.ip_name, p.path.resolve()
    rels = [f"{ip}.bit", f"{ip}.hwh"]
    if not all(os.path.lexists(root / r) for r in rels):
        return {}
    return {r: p.listed.get(r) or sha256_file(check_regular(root, r)) for r in rels}


def board_manifest(p: Project, files: dict[str, str]) -> bytes:
    """The project's manifest with `files` narrowed to (and the bitstream added from) what the archive
    holds: the deployed project is a closed set too."""
    m = copy.deepcopy(p.manifest)
    m["files"] = dict(sorted(files.items()))
    m["deploy"] = {"from": p.path.resolve().name, "omitted": sorted(set(p.listed) - set(files))}
    return json.dumps(m, indent=1).encode()


def _check_output(project: Path, out: Path, force: bool = False) -> None:
    """ARCHIVE must not land inside the project (an unlisted file there), replace a folder, or replace an
    existing file unless `force`."""
    root, dest = project.resolve(), out.parent.resolve() / out.name
    if root == dest or root in dest.parents:
        raise EdgeLLMError(f"{out} lies inside the project {project}; a project holds only the files its "
                           "manifest lists: write the archive elsewhere")
    if dest.is_dir():
        raise EdgeLLMError(f"{out} is a directory; name the archive file (…/NAME.tar.gz)")
    if os.path.lexists(dest) and not force:
        raise EdgeLLMError(f"{out} exists; pass --force to replace it")
    anc = next((a for a in out.absolute().parents if a.exists()), None)  # the folders made for it
    if anc is not None and not anc.is_dir():  # was "cannot write afile/x.tar.gz: File exists"
        raise EdgeLLMError(f"cannot write {out}: {anc} is not a directory")


def build_archive(project: Path, out: Path, allow_missing_bitstream: bool = False,
                  force: bool = False) -> list[str]:
    """Write the archive atomically (an existing one replaced only with `force`); return the member
    names."""
    from edgellm.runtime.project import Project

    name = archive_name(out)
    p = Project.open(project)  # validates: the closed set of listed files, every sha256
    _check_output(p.path, out, force)
    ip = p.iface.ip_name
    bits = bitstream(p)
    if not bits and not allow_missing_bitstream:
        raise EdgeLLMError(f"{ip}.bit / {ip}.hwh not found in {p.path}: run `edgellm build {p.path}` "
                           "first (or pass --allow-missing-bitstream to package without it)")
    files = {**board_files(p), **bits}
    root = p.path.resolve()
    members: list[tuple[Path, str, str | None]] = [(root / rel, f"{name}/project/{rel}", h)
                                                   for rel, h in sorted(files.items())]
    for sub, pat in RUNTIME_SOURCES:
        src = package_dir(sub)
        found = sorted(src.glob(pat))
        if not found:
            raise EdgeLLMError(f"runtime source {pat} not found under {src}")
        dest = f"{name}/python/edgellm/{sub + '/' if sub else ''}"
        members += [(f, dest + str(f.relative_to(src)), None) for f in found]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # a fresh file created 0666 & ~umask, as any file the user writes (mkstemp's 0600 kept the
        # archive from the users the umask lets read it)
        tmp = str(out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise EdgeLLMError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _add_bytes(tar, f"{name}/README.md", readme(name, ip, bool(bits)).encode())
            _add_bytes(tar, f"{name}/run_on_board.py", BOARD_SCRIPT.encode(), 0o755)
            _add_bytes(tar, f"{name}/project/manifest.json", board_manifest(p, files))
            for src, arc, h in members:
                _add_file(tar, src, arc, h)
        os.replace(tmp, out)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise EdgeLLMError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return [f"{name}/README.md", f"{name}/run_on_board.py", f"{name}/project/manifest.json",
            *(a for _, a, _ in members)]


def deploy_cmd(
    project: Annotated[Path, typer.Argument(help="Compiled (and built) project directory.",
                                            show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Archive path (.tar.gz); default "
                                                                 "<project>-deploy.tar.gz")] = None,
    allow_missing_bitstream: Annotated[bool, typer.Option(
        "--allow-missing-bitstream", help="Package even without the .bit/.hwh (README says so).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing ARCHIVE.")] = False,
) -> None:
    """Package a project for the board: bitstream, weights, tokenizer, runtime, README."""
    project = Path(project)
    archive = out or project.resolve().parent / f"{project.resolve().name}-deploy.tar.gz"
    names = build_archive(project, archive, allow_missing_bitstream, force)
    size = archive.stat().st_size
    typer.echo(f"wrote {archive} ({len(names)} files, {size / 2**20:.1f} MiB)")
    if not any(n.endswith(".bit") for n in names):
        typer.echo("note: no bitstream packaged; run `edgellm build` before using it on a board", err=True)


def register(app: typer.Typer) -> None:
    """Add `edgellm deploy`."""
    app.command("deploy")(deploy_cmd)
