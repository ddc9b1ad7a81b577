"""The output directory of a build: where it may go, the advisory lock, what --force may replace,
and the final rename that makes the project appear whole or not at all.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from types import TracebackType

from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20


def os_error(e: OSError, what: str, path: Path) -> EdgeLLMError:
    """An OSError as one line naming the path (the error's own file name when it has one)."""
    where = e.filename if e.filename else path
    why = e.strerror or str(e) or type(e).__name__
    return EdgeLLMError(f"{what} {where}: {why}")


def resolve_out(out_dir: str) -> Path:
    """The absolute output directory; refuses one whose parent path runs through a file."""
    if not str(out_dir).strip():
        raise EdgeLLMError("the output directory (-o) is empty")
    out = Path(out_dir).expanduser().absolute()
    for anc in [out, *out.parents]:
        if anc.exists() or anc.is_symlink():
            if not anc.is_dir():
                what = "exists and is not a directory" if anc == out else "is not a directory"
                raise EdgeLLMError(f"cannot write the project to {out}: {anc} {what}")
            break
    out = out.resolve()
    if out.parent == out:
        raise EdgeLLMError(f"cannot write the project to {out}: choose a directory below it")
    return out


def partial_dir(out: Path) -> Path:
    """The hidden directory the build writes into (renamed to out at the end)."""
    return out.parent / f".{out.name}.partial"


class BuildLock:
    """Exclusive, non-blocking flock on `.<name>.lock` beside the output directory.

    The lock file is removed on release; a taker checks that the file it locked is still the one
    at the path, so a release racing with a new taker never lets two builds in.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.parent / f".{out.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> BuildLock:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise os_error(e, "cannot create the build lock", self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise EdgeLLMError(f"another edgellm compile is writing {self.out} (lock {self.path}"
                                   f"{f', pid {holder}' if holder else ''})") from None
            except OSError as e:
                os.close(fd)
                raise os_error(e, "cannot lock", self.path) from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return self
            os.close(fd)  # released and removed by its holder meanwhile: take the new file
        raise EdgeLLMError(f"cannot take the build lock {self.path}: it keeps being replaced")

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_replaceable(out: Path, force: bool) -> None:
    """Refuse an existing out unless --force and it is an edgellm project holding nothing foreign."""
    if not out.exists():
        return
    if not force:
        raise EdgeLLMError(f"{out} exists; pass --force to overwrite it")
    try:
        if not any(out.iterdir()):
            return
        foreign = foreign_file(out)
    except OSError as e:
        raise os_error(e, "cannot read", out) from None
    if foreign:
        raise EdgeLLMError(f"{out} is not (only) an edgellm project: {foreign}; refusing to overwrite it")


def foreign_file(out: Path) -> str | None:
    """Why out may not be replaced (the first file edgellm did not write), or None.

    out must hold a manifest.json with edgellm's schema whose "files" (plus manifest.json itself and
    the outputs of `edgellm build`) cover every file in it: runtime/project_files.py's closed set.
    A link or special file in it raises ProjectError.
    """
    from edgellm.runtime.project import SCHEMA, ProjectError
    from edgellm.runtime.project_files import scan

    mf = out / MANIFEST
    if mf.is_symlink() or not mf.is_file():
        return f"it has no {MANIFEST}"
    if mf.stat().st_size > MAX_MANIFEST_BYTES:
        return f"{MANIFEST} is too large to be an edgellm manifest"
    try:
        m = jsonfile.loads(mf.read_text())
    except (UnicodeDecodeError, ValueError):
        return f"{MANIFEST} is not valid JSON"
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        return f"{MANIFEST} is not an edgellm manifest (schema {SCHEMA!r})"
    files = m.get("files")
    if not isinstance(files, (dict, list)) or not all(isinstance(f, str) for f in files):
        return f"{MANIFEST} has no list of the project's files"
    iface = m.get("interface")
    ip = iface.get("ip_name") if isinstance(iface, dict) else None
    try:
        tree = scan(out, ip if isinstance(ip, str) else "edgellm_top")
    except ProjectError as e:
        return str(e)
    return next((f"{rel} is not listed in its {MANIFEST}" for rel in tree if rel not in files), None)


def install(work: Path, out: Path, force: bool) -> None:
    """Rename work to out, replacing an old project; on failure the old project stays in place."""
    if not out.exists():
        try:
            work.rename(out)
        except OSError as e:
            raise os_error(e, "cannot rename the finished build to", out) from None
        return
    check_replaceable(out, force)  # again: files may have appeared while the build ran
    old = out.parent / f".{out.name}.old"
    try:
        if old.exists() or old.is_symlink():
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        out.rename(old)
    except OSError as e:
        raise os_error(e, "cannot move aside the old project", out) from None
    try:
        work.rename(out)
    except OSError as e:
        old.rename(out)
        raise os_error(e, "cannot rename the finished build to", out) from None
    shutil.rmtree(old, ignore_errors=True)
