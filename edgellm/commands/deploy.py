"""`edgellm deploy DIR [-o ARCHIVE]`: one .tar.gz with everything the board needs.

Layout of the archive (one top folder, so it extracts cleanly):

    <name>/README.md          install and run commands
    <name>/run_on_board.py    `run` and `verify` with only numpy + pynq (no typer/rich needed)
    <name>/project/           manifest.json, weights.bin, embed.bin, tokenizer.json, <ip>.bit, <ip>.hwh,
                              hls/ (for the emulator on a host), reference/golden.json
    <name>/python/edgellm/    the runtime's sources (runtime, interface, numerics, golden model)

Written to a temporary file beside ARCHIVE, then renamed: a failed deploy leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from edgellm.errors import EdgeLLMError

# Runtime sources shipped to the board: (subpackage, glob) -> python/edgellm/<subpackage>/...
RUNTIME_SOURCES = (
    ("", "__init__.py"), ("", "errors.py"), ("runtime", "*.py"), ("compiler", "__init__.py"),
    ("compiler", "interface.py"), ("compiler", "packing.py"), ("models", "__init__.py"),
    ("models", "config.py"), ("models", "numerics.py"), ("models", "golden.py"), ("models", "weights.py"),
    ("hw", "__init__.py"), ("hw", "csim.py"), ("hw", "include/edgellm/*.h"),
)
PROJECT_FILES = ("manifest.json", "weights.bin", "embed.bin", "tokenizer.json", "reference/golden.json")

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
    tok = load_tokenizer(p.tokenizer_path) if p.tokenizer_path else None
    if a.prompt_ids:
        ids = [int(t) for t in a.prompt_ids.replace(",", " ").split()]
    elif a.prompt and tok is not None:
        bos = tok.bos_id if tok.bos_id is not None else None
        ids = ([bos] if bos is not None else []) + tok.encode(a.prompt)
    elif a.command == "verify":
        import json
        ids = json.load(open(os.path.join(a.project, "reference", "golden.json")))["prompt_ids"]
    else:
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
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
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
the tokenizer and the manifest (checked by sha256 when the runtime opens the project).
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


def build_archive(project: Path, out: Path, allow_missing_bitstream: bool = False) -> list[str]:
    """Write the archive atomically; return the member names."""
    from edgellm.runtime.project import Project

    p = Project.open(project)  # validates and checks sha256
    ip = p.iface.ip_name
    bit, hwh = p.path / f"{ip}.bit", p.path / f"{ip}.hwh"
    has_bit = bit.is_file() and hwh.is_file()
    if not has_bit and not allow_missing_bitstream:
        raise EdgeLLMError(f"{bit.name} / {hwh.name} not found in {p.path}: run `edgellm build {p.path}` "
                           "first (or pass --allow-missing-bitstream to package without it)")
    name = out.name.removesuffix(".tar.gz").removesuffix(".tgz") or "edgellm-deploy"
    members: list[tuple[Path, str]] = []
    for rel in PROJECT_FILES:
        if (p.path / rel).is_file():
            members.append((p.path / rel, f"{name}/project/{rel}"))
    if has_bit:
        members += [(bit, f"{name}/project/{bit.name}"), (hwh, f"{name}/project/{hwh.name}")]
    for f in sorted((p.path / "hls").rglob("*")) if (p.path / "hls").is_dir() else []:
        if f.is_file():
            members.append((f, f"{name}/project/{f.relative_to(p.path)}"))
    for sub, pat in RUNTIME_SOURCES:
        root = package_dir(sub)
        found = sorted(root.glob(pat))
        if not found:
            raise EdgeLLMError(f"runtime source {pat} not found under {root}")
        dest = f"{name}/python/edgellm/{sub + '/' if sub else ''}"
        members += [(f, dest + str(f.relative_to(root))) for f in found]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _add_bytes(tar, f"{name}/README.md", readme(name, ip, has_bit).encode())
            _add_bytes(tar, f"{name}/run_on_board.py", BOARD_SCRIPT.encode(), 0o755)
            for src, arc in members:
                tar.add(src, arc, recursive=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return [f"{name}/README.md", f"{name}/run_on_board.py", *(a for _, a in members)]


def deploy_cmd(
    project: Annotated[Path, typer.Argument(help="Compiled (and built) project directory.",
                                            show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Archive path (.tar.gz); default "
                                                                 "<project>-deploy.tar.gz")] = None,
    allow_missing_bitstream: Annotated[bool, typer.Option(
        "--allow-missing-bitstream", help="Package even without the .bit/.hwh (README says so).")] = False,
) -> None:
    """Package a project for the board: bitstream, weights, tokenizer, runtime, README."""
    project = Path(project)
    archive = out or project.resolve().parent / f"{project.resolve().name}-deploy.tar.gz"
    if not archive.name.endswith((".tar.gz", ".tgz")):
        raise EdgeLLMError(f"archive name {archive.name} must end in .tar.gz")
    names = build_archive(project, archive, allow_missing_bitstream)
    size = archive.stat().st_size
    typer.echo(f"wrote {archive} ({len(names)} files, {size / 2**20:.1f} MiB)")
    if not any(n.endswith(".bit") for n in names):
        typer.echo("note: no bitstream packaged; run `edgellm build` before using it on a board", err=True)


def register(app: typer.Typer) -> None:
    """Add `edgellm deploy`."""
    app.command("deploy")(deploy_cmd)
