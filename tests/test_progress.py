"""Progress of long commands (issue 20 #4): a status line on stderr only on a terminal (or forced), never in
piped output or CI, every wait bounded; checked on fake terminals (an isatty stream, a pseudo-terminal)."""

from __future__ import annotations

import io
import os
import pty
import re
import shutil
import subprocess
import threading
import time

import pytest
from typer.testing import CliRunner

from edgellm import cli
from edgellm.commands import progress

EXE = shutil.which("edgellm") or "edgellm"
runner = CliRunner()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Broken(FakeTTY):
    def write(self, s: str) -> int:
        raise OSError(5, "Input/output error")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in (progress.ENV, "CI"):
        monkeypatch.delenv(k, raising=False)


def test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress.mode(FakeTTY()) == "tty" and progress.mode(io.StringIO()) == "off"
    monkeypatch.setenv("CI", "true")
    assert progress.mode(FakeTTY()) == "off"  # quiet in CI
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.mode(FakeTTY()) == "tty" and progress.mode(io.StringIO()) == "lines"
    monkeypatch.setenv(progress.ENV, "0")
    assert progress.mode(FakeTTY()) == "off"


def test_status_on_a_terminal_redraws_one_line_and_clears_it() -> None:
    out = FakeTTY()
    with progress.Status("compile", stream=out) as st:
        st.update("step dse", 2, 8)
        st.note("resuming past load")
    text = out.getvalue()
    assert "\r\x1b[K[#####..............." in text and "2/8 step dse (0 s)" in text
    assert "resuming past load\n" in text
    assert text.endswith("\r\x1b[K")  # nothing of the status stays behind the command's own output
    assert all(len(seg) <= progress.WIDTH for seg in text.replace("\n", "\r").split("\r"))


def test_status_piped_writes_nothing_and_forced_writes_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    with progress.Status("compile", stream=out) as st:
        st.update("step dse", 1, 3)
        st.note("a note")
    assert out.getvalue() == ""
    monkeypatch.setenv(progress.ENV, "1")
    out = io.StringIO()
    with progress.Status("x", stream=out) as st:
        st.update("step a", 0, 2)
        st.update("step a", 0, 2)  # the same state: no second line
        st.update(done=1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert [ln.split(" (")[0] for ln in lines] == ["x", "[....................] 0/2 step a",
                                                   "[##########..........] 1/2 step a"]


def test_every_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ticker wakes every TICK_S and is joined with a timeout; a broken terminal turns progress off."""
    monkeypatch.setattr(progress, "TICK_S", 0.01)
    out = FakeTTY()
    with progress.Status("slow", stream=out) as st:
        time.sleep(0.1)
        thread = st._thread
    assert thread is not None and not thread.is_alive()
    assert out.getvalue().count("slow (") >= 3  # redrawn while nothing else happened
    with progress.Status("x", stream=Broken()) as st:
        st.update("y")
    assert st.mode == "off"
    names = [t.name for t in threading.enumerate()]
    assert "edgellm-progress" not in names


def _run_on_pty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run edgellm with stderr on a pseudo-terminal and stdout on a pipe -> (rc, stdout, terminal)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=slave, text=True,
                             env={**os.environ, **env})
        os.close(slave)
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    b = os.read(master, 4096)
                except OSError:  # EIO: the terminal's last writer closed it
                    return
                if not b:
                    return
                chunks.append(b)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        out, _ = p.communicate(timeout=300)
        t.join(10)
    finally:
        os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory):
    f = tmp_path_factory.mktemp("t") / "t.txt"
    f.write_text("Once upon a time there was a little fox. " * 8)
    return f


def test_eval_shows_progress_on_a_terminal_and_not_when_piped(text_file) -> None:
    env = {"CI": "", progress.ENV: ""}
    args = ["eval", "--text", str(text_file), "--window", "16"]
    rc, out, tty = _run_on_pty(args, env)
    assert rc == 0, tty
    assert "scoring " in tty and "\x1b[K" in tty and re.search(r"\[#{20}\] (\d+)/\1 scoring", tty), tty
    assert "scoring" not in out and "\x1b" not in out and "\r" not in out  # stdout stays clean
    piped = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **env})
    def untimed(t: str) -> str:  # the table without its seconds column
        return re.sub(r"[\d.]+ │\n", "│\n", t)

    assert piped.returncode == 0 and piped.stderr == "" and untimed(piped.stdout) == untimed(out)
    rc, _, tty = _run_on_pty(["--no-progress", *args], env)
    assert rc == 0 and "scoring" not in tty
    rc, _, tty = _run_on_pty(args, {"CI": "1", progress.ENV: ""})
    assert rc == 0 and "scoring" not in tty  # quiet in CI


def test_estimate_says_which_board_it_explores(monkeypatch: pytest.MonkeyPatch) -> None:
    """`estimate --board all` was silent for 51 s: a status per board (forced here: not a terminal)."""
    r = runner.invoke(cli.app, ["--progress", "estimate"])
    os.environ.pop(progress.ENV, None)  # --progress sets it for the process
    assert r.exit_code == 0, r.output
    assert re.match(r"design search \(\d+ s\)\n\[\.{20}\] 0/1 exploring designs for kv260 \(\d+ s\)\n$",
                    r.stderr), r.stderr
    assert "exploring" not in r.stdout


def test_forced_progress_lines_in_a_pipe(text_file) -> None:
    r = runner.invoke(cli.app, ["--progress", "eval", "--text", str(text_file), "--window", "16"])
    try:
        assert r.exit_code == 0, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
        steps = [re.fullmatch(r"\[[#.]{20}\] (\d+)/(\d+) scoring \d+ tokens on golden \(\d+ s\)", ln)
                 for ln in lines]
        assert all(steps), lines
        done = [int(m.group(1)) for m in steps if m]
        total = int(steps[-1].group(2))  # type: ignore[union-attr]
        assert total > 1 and done == list(range(1, total + 1))  # one line per window, in order
        assert "scoring" not in r.stdout
    finally:
        os.environ.pop(progress.ENV, None)  # --progress sets it for the process


def test_verify_reports_each_rung(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's stages as progress: golden taps, device taps, the two greedy runs (onnx: a fifth)."""
    from helpers import TINY, PythonTop, write_project

    import edgellm.runtime.session as session_mod
    from edgellm.models.random_model import random_model
    from edgellm.runtime.emulator import EmulatorDevice
    from edgellm.runtime.project import Project
    from edgellm.runtime.verify import run_verify

    proj = Project.open(write_project(tmp_path / "p", random_model(TINY, seed=21), max_t=4, max_ctx=32))

    def python_top(p, kind="auto"):
        return EmulatorDevice(PythonTop(p.config, p.numerics), p.iface.registers, name="python-top")

    seen: list[tuple[str, int, int]] = []
    rep = run_verify(proj, python_top(proj), [5, 6, 7], new_tokens=3, onnx=False,
                     on_stage=lambda *a: seen.append(a))
    assert rep.ok and [(d, t) for _, d, t in seen] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert seen[3][0] == "device greedy 3 tokens"
    monkeypatch.setattr(session_mod, "open_device", python_top)
    r = runner.invoke(cli.app, ["--progress", "verify", str(proj.path), "--prompt-ids", "5,6,7", "-n", "3",
                                "--no-onnx"])
    os.environ.pop(progress.ENV, None)  # --progress sets it for the process
    assert r.exit_code == 0, r.output
    lines = [ln.split(" (")[0] for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert lines[-1] == "[###############.....] 3/4 verify: device greedy 3 tokens", r.stderr
    assert "verify:" not in r.stdout
