"""Progress of the long commands (compile steps, the design search, C-simulation builds, verify, eval
windows, calibration): a status line on stderr, redrawn in place with the elapsed time, and a bar where
the total is known.

Shown only when stderr is a terminal: never in piped or redirected output, nor where CI is set.
`edgellm --progress` (or EDGELLM_PROGRESS=1) forces it on any stream, as plain lines (one per change,
no redrawing: a log stays readable); `--no-progress` (EDGELLM_PROGRESS=0) turns it off. Every wait is
bounded: the ticker thread wakes at least every TICK_S and is joined with a timeout.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import IO

ENV = "EDGELLM_PROGRESS"
TICK_S = 0.25  # redraw interval of the elapsed time on a terminal
JOIN_S = 2.0  # the longest a finished status waits for its ticker thread
BAR = 20  # bar width in characters
WIDTH = 79  # a status line never wraps an 80-column terminal


def mode(stream: IO[str]) -> str:
    """'tty' (redraw in place), 'lines' (forced on a stream that is not a terminal) or 'off'."""
    v = os.environ.get(ENV, "").strip().lower()
    if v in ("0", "false", "no", "off"):
        return "off"
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a file
        tty = False
    if v in ("1", "true", "yes", "on"):
        return "tty" if tty else "lines"
    if os.environ.get("CI"):
        return "off"
    return "tty" if tty else "off"


def _bar(done: int, total: int) -> str:
    n = BAR * min(max(done, 0), total) // max(total, 1)
    return f"[{'#' * n}{'.' * (BAR - n)}] {done}/{total}"


class Status:
    """A context manager showing what is running: update(text, done, total) changes it; note(text) writes
    a lasting line above it. Silent (every call a no-op) when mode() is 'off'."""

    def __init__(self, text: str = "", stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode(self.stream)
        self.text, self.done, self.total = text, 0, 0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown: tuple[str, int, int] | None = None  # the state last written in "lines" mode

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def line(self) -> str:
        """The status as shown: bar (when the total is known), text, elapsed seconds; cut to WIDTH."""
        parts = [_bar(self.done, self.total)] if self.total else []
        parts += [self.text, f"({time.monotonic() - self._t0:.0f} s)"]
        s = " ".join(p for p in parts if p)
        return s if len(s) <= WIDTH else s[:WIDTH - 1] + "…"

    def _write(self, s: str) -> None:
        try:
            self.stream.write(s)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not worth an error
            self.mode = "off"

    def _draw(self) -> None:
        if self.mode == "tty":
            self._write("\r\x1b[K" + self.line())
        elif self.mode == "lines":
            key = (self.text, self.done, self.total)
            if key != self._shown:  # one line per change, never a redraw of the same state
                self._shown = key
                self._write(self.line() + "\n")

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                if self.mode == "tty":
                    self._draw()

    def update(self, text: str | None = None, done: int | None = None, total: int | None = None) -> None:
        """Change the status (text, and/or done of total)."""
        if not self.on:
            return
        with self._lock:
            if text is not None:
                self.text = text
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            self._draw()

    def note(self, text: str) -> None:
        """A lasting line (above the status on a terminal); nothing when progress is off."""
        if not self.on:
            return
        with self._lock:
            self._write(("\r\x1b[K" if self.mode == "tty" else "") + text + "\n")
            if self.mode == "tty":
                self._draw()

    def __enter__(self) -> Status:
        if self.on:
            with self._lock:
                self._draw()
            if self.mode == "tty":
                self._thread = threading.Thread(target=self._tick, name="edgellm-progress", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
        if self.mode == "tty":
            with self._lock:
                self._write("\r\x1b[K")  # the status goes; the command's own output stays
