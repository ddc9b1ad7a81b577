"""The build: an ordered list of named steps with one signature, run into a temporary directory.

`edgellm compile` runs `run_build(BuildConfig(...))`. Each step is `fn(ctx) -> None`. Steps that
write files record themselves in `<out>.partial/build_state.json` with the config's hash, so an
interrupted build resumes: file-writing steps already done are skipped, in-memory steps (cheap
and deterministic) run again. On success the directory is renamed to its final name, so a
half-written project never looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError

STATE_FILE = "build_state.json"


@dataclass
class BuildConfig:
    """Everything that determines the project (serializable; its hash keys resume)."""

    model: str | None  # checkpoint path; None = the shipped tiny model
    board: str = "kv260"
    out_dir: str = "edgellm-out"
    force: bool = False
    reference_prompt: str = "Once upon a time"
    reference_new_tokens: int = 16  # greedy decode steps of the reference run (0: prefill only)
    reference_onnx: bool = True  # export reference/model.onnx
    overrides: dict[str, Any] = field(default_factory=dict)  # design parameter overrides

    def digest(self) -> str:
        """Hash of the fields that change the output (not out_dir/force)."""
        d = dataclasses.asdict(self)
        d.pop("force")
        d.pop("out_dir")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BuildContext:
    """State passed from step to step."""

    config: BuildConfig
    work: Path  # the temporary project directory
    state: dict[str, Any] = field(default_factory=dict)  # objects produced by steps
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """A named build step; `writes` steps are recorded for resume."""

    name: str
    fn: Callable[[BuildContext], None]
    writes: bool = False


def _load_state(work: Path, digest: str) -> list[str]:
    f = work / STATE_FILE
    if not f.is_file():
        return []
    try:
        st = json.loads(f.read_text())
    except json.JSONDecodeError:
        return []
    return st.get("done", []) if st.get("digest") == digest else []


def _save_state(work: Path, digest: str, done: list[str]) -> None:
    tmp = work / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"digest": digest, "done": done}, indent=1))
    tmp.replace(work / STATE_FILE)


def run_steps(cfg: BuildConfig, steps: list[Step],
              progress: Callable[[str, str], None] | None = None) -> BuildContext:
    """Run steps into `<out_dir>.partial`, then rename it to out_dir. Returns the context."""
    out = Path(cfg.out_dir).resolve()
    if out.exists() and not cfg.force:
        raise EdgeLLMError(f"{out} exists; pass --force to overwrite it")
    if out.exists() and not (out / "manifest.json").is_file() and any(out.iterdir()):
        raise EdgeLLMError(f"{out} exists and is not an edgellm project; refusing to overwrite it")
    work = out.parent / f".{out.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    digest = cfg.digest()
    done = _load_state(work, digest)
    if not done and any(p.name != STATE_FILE for p in work.iterdir()):
        shutil.rmtree(work)  # leftovers of a different configuration
        work.mkdir(parents=True)
    ctx = BuildContext(cfg, work)
    for step in steps:
        if step.writes and step.name in done:
            if progress:
                progress(step.name, "resumed")
            continue
        if progress:
            progress(step.name, "start")
        t0 = time.perf_counter()
        step.fn(ctx)
        ctx.timings[step.name] = time.perf_counter() - t0
        if step.writes:
            done.append(step.name)
            _save_state(work, digest, done)
        if progress:
            progress(step.name, "done")
    (work / STATE_FILE).unlink(missing_ok=True)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out)
    ctx.work = out
    return ctx
