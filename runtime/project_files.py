"""A project directory is a closed set: every file under it is listed in manifest.json with its sha256,
or is an output of `edgellm build` at a fixed place (BUILD_OUTPUT_DIRS / BUILD_OUTPUT_FILES); no
symbolic links, no special files. docs/threat_model.md says what this does and does not promise.
Board-side: standard library only, Python 3.10.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from edgellm.runtime.manifest_schema import MANIFEST, ProjectError

# What `edgellm build` (Vitis HLS, Vivado) adds after compile: trees that are never walked, compiled
# or shipped (compiler/hls_tcl.py HLS_PROJECT and hls/ip; compiler/vivado_tcl.py's vivado/build and
# REPORT_DIR under report/build), and files by folder and name pattern. {ip} is interface.ip_name.
BUILD_OUTPUT_DIRS = ("hls/edgellm_hls", "hls/ip", "hls/.Xil", "vivado/build", "vivado/.Xil", ".Xil",
                     "report/build")
BUILD_OUTPUT_FILES = ("{ip}.bit", "{ip}.hwh", "report/*.log", "hls/*.log", "vivado/*.log", "vivado/*.jou",
                      "vivado/*.str")
MAX_ENTRIES = 200_000  # directory entries walked outside the build-output trees
O_SAFE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def is_build_output(rel: str, ip: str) -> bool:
    """rel (a file) is one of the build outputs that may sit in a project unlisted."""
    folder, _, name = rel.rpartition("/")
    for pat in BUILD_OUTPUT_FILES:
        pfolder, _, pname = pat.format(ip=ip).rpartition("/")
        if folder == pfolder and fnmatch.fnmatchcase(name, pname):
            return True
    return False


def scan(root: Path, ip: str | None = None) -> list[str]:
    """Sorted relative paths of the regular files under root, without manifest.json, and (with ip) without
    the build outputs; ProjectError at a symbolic link, a special file or too many entries."""
    out: list[str] = []
    stack, seen = [""], 0
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise ProjectError(f"{root / rel_dir}: cannot list the folder ({e.strerror})") from None
        for e in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                raise ProjectError(f"{root}: more than {MAX_ENTRIES} files and folders; not a project")
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            if e.is_symlink():
                raise ProjectError(f"{root / rel} is a symbolic link; a project holds only regular files "
                                   f"(listed in {MANIFEST})")
            if e.is_dir(follow_symlinks=False):
                if ip is None or rel not in BUILD_OUTPUT_DIRS:
                    stack.append(rel)
            elif e.is_file(follow_symlinks=False):
                if rel != MANIFEST and (ip is None or not is_build_output(rel, ip)):
                    out.append(rel)
            else:
                raise ProjectError(f"{root / rel} is not a regular file (a device, FIFO or socket); refusing "
                                   "the project")
    return sorted(out)


def check_regular(root: Path, rel: str) -> Path:
    """root/rel, a regular file reached without symbolic links; ProjectError otherwise."""
    cur = root
    parts = rel.split("/")
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise ProjectError(f"{root / rel} is missing (listed in {MANIFEST})") from None
        except OSError as e:
            raise ProjectError(f"{cur}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise ProjectError(f"{cur} is a symbolic link; a project holds only regular files")
        last = i == len(parts) - 1
        if last and not stat.S_ISREG(st.st_mode) or not last and not stat.S_ISDIR(st.st_mode):
            what = "a regular file" if last else "a folder"
            raise ProjectError(f"{cur} is not {what} (listed in {MANIFEST} as {rel!r})")
    return cur


def check_tree(root: Path, listed: dict[str, str], ip: str) -> None:
    """Every file under root is listed (or a build output); every listed file is a regular file."""
    for rel in scan(root, ip):
        if rel not in listed:
            raise ProjectError(f"{root / rel} is not listed in {MANIFEST}; a project holds only the files "
                               "its manifest lists (remove it, or recompile the project)")
    for rel in sorted(listed):
        check_regular(root, rel)


def open_regular(path: Path) -> BinaryIO:
    """path opened for reading without following a symbolic link and without blocking on a FIFO;
    ProjectError unless it is a regular file."""
    try:
        fd = os.open(path, O_SAFE)
    except OSError as e:
        link = " (a symbolic link: refused)" if os.path.islink(path) else ""
        raise ProjectError(f"{path}: {e.strerror}{link}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ProjectError(f"{path} is not a regular file; refusing it")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a regular file, streamed."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def check_hashes(root: Path, listed: dict[str, str]) -> None:
    """sha256 of every listed file against the manifest; ProjectError naming the first mismatch."""
    for rel in sorted(listed):
        f = root / rel
        got, want = sha256_file(f), listed[rel]
        if got != want:
            raise ProjectError(f"{f}: sha256 {got[:16]}... does not match the manifest's {want[:16]}...; "
                               "the file is corrupt or was modified, refusing it")


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file beside it and a rename: a reader sees the old file or
    the whole new one, never half of it (the temporary file goes if the write fails)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
