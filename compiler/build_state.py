"""build_state.json and the model's content hash: what lets an interrupted build resume safely.

The state records, per finished file-writing step, every file the step wrote with its sha256 and
size. On resume each recorded file is re-hashed; the first step whose files are missing or changed
reruns, and so does every step after it. A state that does not parse as this schema is no state.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgellm.runtime import jsonfile

STATE_FILE = "build_state.json"

FileRec = dict[str, Any]  # {"sha256": str, "size": int}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def model_content_hash(path: Path) -> str:
    """sha256 over a checkpoint's content: a file (and the tokenizer.json beside it, which the build
    copies), or every regular file under a directory, sorted by relative path."""
    h = hashlib.sha256()
    if path.is_dir():
        files = sorted(regular_files(path, follow_file_links=True))
        root = path
    else:
        files = [path.name] + (["tokenizer.json"] if (path.parent / "tokenizer.json").is_file() else [])
        root = path.parent
    for rel in files:
        h.update(f"{rel}\0{sha256_file(root / rel)}\n".encode())
    return h.hexdigest()


def regular_files(root: Path, follow_file_links: bool = False) -> list[str]:
    """Relative paths (posix) of the regular files under root; directory links are not followed,
    file links only when asked."""
    out = []
    for d, _dirs, names in os.walk(root):
        for n in names:
            p = Path(d) / n
            if p.is_symlink() and not follow_file_links:
                continue
            if p.is_file():
                out.append(p.relative_to(root).as_posix())
    return out


def file_record(path: Path) -> FileRec:
    """What the state keeps of one output file."""
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


@dataclass
class BuildState:
    """The writing steps done so far (in order) and the files each one wrote."""

    digest: str
    done: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, FileRec]] = field(default_factory=dict)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> its in-memory results

    @classmethod
    def load(cls, work: Path, digest: str) -> BuildState | None:
        """The state in work, or None when absent, malformed or for another configuration."""
        try:
            st = jsonfile.loads((work / STATE_FILE).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not _well_formed(st) or st["digest"] != digest:
            return None
        kept = st.get("kept", {})
        return cls(digest, list(st["done"]), {s: dict(st["outputs"][s]) for s in st["done"]},
                   {s: dict(kept[s]) for s in st["done"] if s in kept})

    def save(self, work: Path) -> None:
        """Write atomically (a temporary file renamed over the old one)."""
        tmp = work / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"digest": self.digest, "done": self.done, "outputs": self.outputs,
                                   "kept": self.kept}, indent=1))
        tmp.replace(work / STATE_FILE)

    def stale_step(self, work: Path) -> tuple[str, str] | None:
        """(first done step whose outputs changed, why), or None when every output checks out."""
        for step in self.done:
            for rel, rec in sorted(self.outputs[step].items()):
                f = work / rel
                if f.is_symlink() or not f.is_file():
                    return step, f"{rel} is missing"
                if f.stat().st_size != rec["size"] or sha256_file(f) != rec["sha256"]:
                    return step, f"{rel} changed"
        return None

    def truncate(self, step: str) -> None:
        """Forget `step` and every step after it."""
        i = self.done.index(step)
        for s in self.done[i:]:
            self.outputs.pop(s, None)
            self.kept.pop(s, None)
        del self.done[i:]

    def owned(self) -> set[str]:
        """Every file recorded by a done step."""
        return {rel for s in self.done for rel in self.outputs[s]}


def _well_formed(st: Any) -> bool:
    if not isinstance(st, dict) or not isinstance(st.get("digest"), str):
        return False
    done, outs = st.get("done"), st.get("outputs")
    if not isinstance(done, list) or not all(isinstance(s, str) for s in done) or len(set(done)) != len(done):
        return False
    if not isinstance(outs, dict) or not all(isinstance(outs.get(s), dict) for s in done):
        return False
    kept = st.get("kept", {})
    if not isinstance(kept, dict) or not all(isinstance(v, dict) for v in kept.values()):
        return False
    for s in done:
        for rel, rec in outs[s].items():
            if not (isinstance(rel, str) and _safe_rel(rel) and isinstance(rec, dict)
                    and isinstance(rec.get("sha256"), str) and type(rec.get("size")) is int):
                return False
    return True


def _safe_rel(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and rel != STATE_FILE


def prune(work: Path, keep: set[str]) -> None:
    """Delete everything under work but the files in keep and the state file (links are removed,
    never followed); then the directories left empty."""
    for d, dirs, names in os.walk(work, topdown=False):
        for n in names + dirs:
            p = Path(d) / n
            rel = p.relative_to(work).as_posix()
            if p.is_symlink() or (p.is_file() and rel not in keep and rel != STATE_FILE):
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
            elif not p.is_dir() and not p.is_file():
                p.unlink()  # a FIFO, socket or device node: no step writes one


@dataclass
class OutputTracker:
    """Attributes the files that appear or change under work to the step that just ran."""

    work: Path
    seen: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # rel -> (ino, size, mtime_ns)
    owner: dict[str, str] = field(default_factory=dict)  # rel -> step

    def adopt(self, state: BuildState) -> None:
        """Start from the (already verified) outputs of the done steps."""
        for s in state.done:
            for rel in state.outputs[s]:
                self.seen[rel] = _sig(self.work / rel)
                self.owner[rel] = s

    def record(self, step: str, state: BuildState, kept: dict[str, Any] | None = None) -> None:
        """Give `step` the files it created or changed (taking them from earlier steps) in state, and
        the in-memory results it keeps for a resumed run."""
        mine: dict[str, FileRec] = {}
        now = set(regular_files(self.work)) - {STATE_FILE, STATE_FILE + ".tmp"}
        for rel in sorted(now):
            sig = _sig(self.work / rel)
            if self.seen.get(rel) == sig:
                continue
            prev = self.owner.get(rel)
            if prev is not None and prev in state.outputs:
                state.outputs[prev].pop(rel, None)
            mine[rel] = file_record(self.work / rel)
            self.seen[rel], self.owner[rel] = sig, step
        for rel in set(self.seen) - now:  # deleted by this step
            prev = self.owner.pop(rel, None)
            self.seen.pop(rel)
            if prev is not None and prev in state.outputs:
                state.outputs[prev].pop(rel, None)
        state.done.append(step)
        state.outputs[step] = mine
        if kept:
            state.kept[step] = kept


def _sig(p: Path) -> tuple[int, int, int]:
    st = p.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns
