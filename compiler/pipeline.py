"""The build: an ordered list of named steps with one signature, run into a temporary directory.

`edgellm compile` runs `run_steps(BuildConfig(...), compile_steps())`. Each step is `fn(ctx) -> None`.
The cheap options are checked before anything is created; the whole run holds an advisory lock
beside the output (compiler/outdir.py). Steps that write files record themselves and the files
they wrote (sha256, size) in `<out>.partial/build_state.json`, keyed on the configuration and the
model's content hash, so an interrupted build resumes: file-writing steps already done are skipped
while their files still check out, in-memory steps (cheap and deterministic) run again. On success
the directory is renamed to its final name, so a half-written project never looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import edgellm
from edgellm.compiler import outdir
from edgellm.compiler.build_state import STATE_FILE, BuildState, OutputTracker, model_content_hash, prune
from edgellm.errors import EdgeLLMError

Progress = Callable[[str, str], None]


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
    # a calibration file's figures (compile --measured; compiler/calibrate/measured.py Measured.to_config)
    measured: dict[str, Any] | None = None
    model_sha256: str | None = field(default=None, init=False)  # content hash, set by digest()

    def model_path(self) -> Path:
        """The checkpoint this config names (EdgeLLMError when it does not exist)."""
        from edgellm.models.shipped import resolve_model_path

        return resolve_model_path(Path(self.model) if self.model else None)

    def validate(self) -> None:
        """The cheap checks, made before anything is written: board, model path, option types."""
        from edgellm.boards import load_board

        load_board(self.board)
        self.model_path()
        n = self.reference_new_tokens
        if type(n) is not int or n < 0:
            raise EdgeLLMError(f"reference decode steps must be an integer >= 0, got {n!r}")
        if not isinstance(self.reference_prompt, str) or not self.reference_prompt.strip():
            raise EdgeLLMError("the reference prompt must be a non-empty string")
        if not isinstance(self.overrides, dict):
            raise EdgeLLMError(f"design overrides must be a mapping, got {type(self.overrides).__name__}")
        if self.measured is not None:  # a calibration of this board (the file was read and checked)
            from edgellm.compiler.calibrate.measured import Measured

            Measured.from_config(self.measured).apply(load_board(self.board))

    def digest(self) -> str:
        """Hash of what changes the output: the options (not out_dir/force), the model's content and
        resolved path (its name becomes the config's name) and the edgellm version. The model's
        content is hashed once per config."""
        path = self.model_path()
        if self.model_sha256 is None:
            try:
                self.model_sha256 = model_content_hash(path)
            except OSError as e:
                raise outdir.os_error(e, "cannot read the model", path) from None
        d = dataclasses.asdict(self)
        for k in ("force", "out_dir"):
            d.pop(k)
        d.update(model=str(path.resolve()), edgellm=edgellm.__version__)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class BuildContext:
    """State passed from step to step."""

    config: BuildConfig
    work: Path  # the temporary project directory
    state: dict[str, Any] = field(default_factory=dict)  # objects produced by steps
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """A named build step; `writes` steps are recorded for resume, with the ctx.state entries named
    in `keeps` (JSON values the later steps need) restored when the step is skipped."""

    name: str
    fn: Callable[[BuildContext], None]
    writes: bool = False
    keeps: tuple[str, ...] = ()


def run_steps(cfg: BuildConfig, steps: list[Step], progress: Progress | None = None) -> BuildContext:
    """Run steps into `<out_dir>.partial`, then rename it to out_dir. Returns the context."""
    cfg.validate()
    out = outdir.resolve_out(cfg.out_dir)
    digest = cfg.digest()
    work = outdir.partial_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise outdir.os_error(e, "cannot create", out.parent) from None
    with outdir.BuildLock(out):
        outdir.check_replaceable(out, cfg.force)
        ctx = BuildContext(cfg, work)
        _guarded(lambda: _run(ctx, digest, steps, progress or (lambda s, w: None)), "cannot write", work)
        (work / STATE_FILE).unlink(missing_ok=True)
        outdir.install(work, out, cfg.force)
    ctx.work = out
    return ctx


def _run(ctx: BuildContext, digest: str, steps: list[Step], progress: Progress) -> None:
    """The steps in order; writing steps resume from (or record to) the build state."""
    work = ctx.work
    state = _resume_state(work, digest, [s for s in steps if s.writes], progress)
    tracker = OutputTracker(work)
    tracker.adopt(state)
    for step in steps:
        if step.writes and step.name in state.done:
            ctx.state.update(state.kept.get(step.name, {}))
            progress(step.name, "resumed")
            continue
        if step.writes and not work.is_dir():
            work.mkdir()
        progress(step.name, "start")
        t0 = time.perf_counter()
        try:
            step.fn(ctx)
        except OSError as e:
            raise outdir.os_error(e, f"step {step.name} failed on", work) from None
        ctx.timings[step.name] = time.perf_counter() - t0
        if step.writes:
            tracker.record(step.name, state, {k: ctx.state[k] for k in step.keeps})
            state.save(work)
        progress(step.name, "done")


def _resume_state(work: Path, digest: str, writing: list[Step], progress: Progress) -> BuildState:
    """The usable part of a previous run's state (the writing steps done in order, each with what it
    keeps); everything else in work is deleted."""
    fresh = BuildState(digest)
    if not (work.exists() or work.is_symlink()):
        return fresh
    if work.is_symlink() or not work.is_dir():
        raise EdgeLLMError(f"{work} (the unfinished build) is not a directory; remove it")
    state = BuildState.load(work, digest) or fresh
    n = 0
    while (n < len(state.done) and n < len(writing) and state.done[n] == writing[n].name
           and set(writing[n].keeps) <= set(state.kept.get(state.done[n], {}))):
        n += 1
    if n < len(state.done):
        state.truncate(state.done[n])
    stale = state.stale_step(work)
    if stale:
        progress(stale[0], f"stale: {stale[1]}")
        state.truncate(stale[0])
    if not state.done:
        (work / STATE_FILE).unlink(missing_ok=True)
    prune(work, state.owned())
    return state


def _guarded(fn: Callable[[], None], what: str, path: Path) -> None:
    """Run fn; an OSError (disk full, permission, a file in the way) becomes one EdgeLLMError line."""
    try:
        fn()
    except OSError as e:
        raise outdir.os_error(e, what, path) from None
