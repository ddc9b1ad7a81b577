"""Seeded fuzzing of edgellm's inputs: mutate a file, run one CLI command on it, classify the outcome.

Run as `python tests/fuzz/driver.py TARGET SEED N WORKDIR [--subprocess]`; prints one JSON line per
case: {"case", "target", "mutation", "exit", "stderr_tail", "verdict"}. A verdict is "ok" (exit 0, or
exit 2 whose last stderr line is `error: ...`) or names what went wrong: "traceback", "internal"
(the CLI's last resort caught an exception edgellm did not expect), "bad-exit", "signal", "hang".

Targets (each one command on one mutated input):
  checkpoint  the shipped tiny model's safetensors + config.json -> `edgellm generate DIR`
  gguf        a small TQ2_0 GGUF written by gguf-py                -> `edgellm generate FILE`
  manifest    a compiled tiny project's manifest.json              -> `edgellm run DIR` (emulator)
  image       weights.bin's header and layer table, checksums fixed -> `edgellm run DIR` (emulator)

In-process targets run every case in this process with stdout/stderr redirected at the file
descriptor level (fast); `--subprocess` runs each case as its own `python -m edgellm.cli` so a
signal (a crash in the C simulation) is seen per case. Every case has a time bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutate  # noqa: E402  (tests/fuzz/mutate.py)

CASE_TIMEOUT_S = 60
RUN_ARGS = ["--prompt-ids", "1,2,3", "-n", "2", "--timeout", "30"]


class CaseHang(Exception):
    """A case ran past CASE_TIMEOUT_S."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise CaseHang()


@contextlib.contextmanager
def _captured(path: Path):
    """Redirect fds 1 and 2 to `path` for the duration (C code's prints included)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def classify(code: int | None, text: str) -> str:
    """The verdict for one case from its exit code and its combined output."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if code is None:
        return "hang"
    if code < 0:
        return "signal"
    if "Traceback (most recent call last)" in text:
        return "traceback"
    if any(ln.startswith("error: internal error") for ln in lines):
        return "internal"
    if code == 0:
        return "ok"
    if code == 2 and lines and lines[-1].startswith("error: "):
        return "ok"
    return "bad-exit"


def run_inprocess(argv: list[str], log: Path) -> tuple[int | None, str]:
    """cli.main(argv) here, output captured, bounded by CASE_TIMEOUT_S."""
    from edgellm import cli

    code: int | None = 0
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        with _captured(log):
            try:
                cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except CaseHang:
                code = None
            except BaseException:  # noqa: BLE001 - what cli.main let through is a traceback
                import traceback

                traceback.print_exc()
                code = 1
    finally:
        signal.alarm(0)
    return code, log.read_text(errors="replace")


def run_subprocess(argv: list[str], log: Path) -> tuple[int | None, str]:
    """`python -m edgellm.cli argv` in its own process group, bounded by CASE_TIMEOUT_S."""
    env = {k: v for k, v in os.environ.items() if k != "EDGELLM_DEBUG"}
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "edgellm.cli", *argv], stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            code: int | None = p.wait(CASE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            code = None
    return code, log.read_text(errors="replace")


# ---- targets: (prepare the seed input once, make case i's input and its argv) ----

def _tiny_dir() -> Path:
    from edgellm.models.shipped import tiny_model_dir

    return tiny_model_dir()


def checkpoint_case(rng: np.random.Generator, base: Path, case: Path) -> tuple[str, list[str]]:
    """Mutate the tiny model's model.safetensors or config.json."""
    shutil.copytree(_tiny_dir(), case, ignore=shutil.ignore_patterns("*.jsonl", "eval_slice.txt"))
    if rng.random() < 0.35:
        cfg = case / "config.json"
        text, what = mutate.json_text(rng, cfg.read_text())
        cfg.write_text(text)
    else:
        st = case / "model.safetensors"
        data, what = mutate.safetensors(rng, st.read_bytes())
        st.write_bytes(data)
    return what, ["generate", str(case), "--prompt-ids", "1,2,3", "-n", "2", "--no-stream"]


def gguf_seed(base: Path) -> Path:
    """A small TQ2_0 GGUF (random ternary weights) written by gguf-py, as the loader tests do."""
    f = base / "seed.gguf"
    if not f.is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from test_loaders_gguf import CFG, f16_scaled, write_gguf

        write_gguf(f16_scaled(CFG), f)
    return f


def gguf_case(rng: np.random.Generator, base: Path, case: Path) -> tuple[str, list[str]]:
    """Mutate the GGUF's bytes (header, metadata, tensor infos, data)."""
    case.mkdir()
    data, what = mutate.gguf(rng, gguf_seed(base).read_bytes())
    f = case / "m.gguf"
    f.write_bytes(data)
    return what, ["generate", str(f), "--prompt-ids", "1,2,3", "-n", "2", "--no-stream"]


def project_seed(base: Path) -> Path:
    """The tiny model compiled for the KV260 once (no ONNX reference: faster)."""
    proj = base / "proj"
    if not (proj / "manifest.json").is_file():
        cmd = ["compile", "-o", str(proj), "--no-onnx-reference", "--reference-decode", "2"]
        subprocess.run([sys.executable, "-m", "edgellm.cli", *cmd], check=True, capture_output=True,
                       timeout=600)
    return proj


def manifest_case(rng: np.random.Generator, base: Path, case: Path) -> tuple[str, list[str]]:
    """Mutate one field of manifest.json (types, ranges, structure)."""
    shutil.copytree(project_seed(base), case)
    mf = case / "manifest.json"
    text, what = mutate.json_text(rng, mf.read_text())
    mf.write_text(text)
    return what, ["run", str(case), "--device", "emu", *RUN_ARGS]


def image_case(rng: np.random.Generator, base: Path, case: Path) -> tuple[str, list[str]]:
    """Mutate weights.bin's header and layer table, then fix the checksums the manifest holds."""
    shutil.copytree(project_seed(base), case)
    what = mutate.image_fields(rng, case)
    return what, ["run", str(case), "--device", "emu", *RUN_ARGS]


TARGETS: dict[str, Callable[[np.random.Generator, Path, Path], tuple[str, list[str]]]] = {
    "checkpoint": checkpoint_case, "gguf": gguf_case, "manifest": manifest_case, "image": image_case,
}


def main(argv: list[str]) -> int:
    """Run N seeded cases of one target; one JSON line per case on stdout."""
    target, seed, n, work = argv[0], int(argv[1]), int(argv[2]), Path(argv[3])
    sub = "--subprocess" in argv
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EDGELLM_CACHE", str(work / "cache"))
    out = os.fdopen(os.dup(1), "w", buffering=1)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        case = Path(tempfile.mkdtemp(dir=work, prefix=f"{target}-{i}-"))
        shutil.rmtree(case)
        what, args = TARGETS[target](rng, work, case)
        t0 = time.perf_counter()
        code, text = (run_subprocess if sub else run_inprocess)(args, work / f"{target}-{i}.log")
        verdict = classify(code, text)
        tail = [ln for ln in text.splitlines() if ln.strip()][-3:]
        out.write(json.dumps({"case": i, "target": target, "mutation": what, "exit": code,
                              "seconds": round(time.perf_counter() - t0, 2), "stderr_tail": tail,
                              "verdict": verdict}) + "\n")
        if verdict == "ok":
            shutil.rmtree(case, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
