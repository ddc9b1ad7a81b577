"""One device, one request at a time: a bounded queue of jobs and the thread that runs them.

A job is a tokenized prompt with its sampling parameters. The worker thread takes jobs in arrival order
and generates (runtime/generation.py) on the target's engine, which only this thread touches. Events
go back to the request's handler through `post` (thread-safe): ("delta", text) as text is released,
then ("done", Outcome) or ("error", ApiError). Before each token is sent the worker checks the job: a
cancelled job (its client went away) or one past its deadline stops there and frees the device; a job
whose deadline passed while it waited is answered with a timeout without running. When the target
speculates (serve --speculate), each job decodes through runtime/speculative.py with a fresh drafter:
the same tokens as plain decode (greedy, or a lookup drafter with the same seed), fewer passes; its
SpecStats go into the response's usage and the worker's totals (serve/speculation.py).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgellm.commands.speculation import spec_brief
from edgellm.errors import EdgeLLMError
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams
from edgellm.serve.schemas import ApiError
from edgellm.serve.speculation import Totals, usage_fields
from edgellm.serve.target import Target
from edgellm.serve.textstream import TextStream

Event = tuple[str, Any]
POLL_S = 0.2  # how often the idle worker looks for a stop request


@dataclass
class Outcome:
    """A finished generation, as the response reports it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    ttft_s: float
    decode_tokens_per_s: float | None
    usage_extra: dict[str, Any] = field(default_factory=dict)  # speculation's fields (usage_fields)


@dataclass
class Job:
    """A request waiting for, or running on, the device."""

    ids: list[int]
    params: SamplingParams
    stops: tuple[str, ...]
    deadline: float  # time.monotonic() after which the request has timed out
    post: Callable[[Event], None]
    label: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    speculation: Any = None  # the SpecStats of its generation, once it runs speculatively


class _Abort(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def timeout_error(seconds: float) -> ApiError:
    """504: the request did not finish within its timeout."""
    return ApiError(504, f"the request did not finish within its {seconds:g} s timeout "
                         "(edgellm serve --request-timeout)", "timeout_error", code="timeout")


class Worker:
    """The device thread and its bounded queue."""

    def __init__(self, target: Target, queue_size: int, request_timeout_s: float,
                 info: Callable[[str], None] | None = None) -> None:
        if queue_size < 1:
            raise EdgeLLMError(f"--queue-size must be >= 1, got {queue_size}")
        self.target, self.queue_size, self.request_timeout_s = target, queue_size, request_timeout_s
        self.info = info or (lambda s: None)
        self._q: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgellm-device", daemon=True)
        self.current: Job | None = None
        self.served = 0
        self.spec_totals = Totals(target.spec.mode if target.spec is not None else "off")
        self._mean_s = 1.0  # running mean of a request's time on the device (for Retry-After)

    @property
    def waiting(self) -> int:
        """Jobs in the queue (the running one not counted)."""
        return self._q.qsize()

    def start(self) -> None:
        """Start the device thread."""
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; ApiError 429 with Retry-After when the queue is full."""
        if self._stop.is_set():
            raise ApiError(503, "the server is shutting down", "server_error", code="shutting_down")
        try:
            self._q.put_nowait(job)
        except queue.Full:
            wait = max(1, math.ceil(self._mean_s * (self.waiting + 1)))
            raise ApiError(429, f"the device is busy and {self.queue_size} requests are already waiting; "
                                f"retry in about {wait} s", "rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(wait)}) from None

    def close(self, timeout_s: float) -> bool:
        """Refuse new jobs, answer the queued ones with 503, stop the running one at its next token and
        wait up to timeout_s for the thread; True when it ended."""
        self._stop.set()
        if self.current is not None:
            self.current.cancelled.set()
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                break
            job.post(("error", ApiError(503, "the server is shutting down", "server_error",
                                        code="shutting_down")))
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if job.cancelled.is_set():
                continue
            if time.monotonic() > job.deadline:
                job.post(("error", timeout_error(self.request_timeout_s)))
                continue
            self.current = job
            t0 = time.monotonic()
            try:
                self._serve(job)
            finally:
                self.current = None
                self.served += 1
                if job.speculation is not None:
                    self.spec_totals.add(job.speculation)
                self._mean_s += (time.monotonic() - t0 - self._mean_s) / min(self.served, 20)

    def _serve(self, job: Job) -> None:
        try:
            out = run_job(self.target, job)
        except _Abort as a:
            if a.why == "timeout":
                job.post(("error", timeout_error(self.request_timeout_s)))
            self.info(f"[serve] {job.label}: {'client went away' if a.why == 'cancelled' else a.why}; "
                      "the device is free")
            return
        except EdgeLLMError as e:
            job.post(("error", ApiError(500, f"the device failed: {e}", "server_error")))
            self.info(f"[serve] {job.label}: error: {e}")
            return
        except Exception as e:  # noqa: BLE001 - a bug must not kill the device thread
            job.post(("error", ApiError(500, f"internal error ({type(e).__name__}: {e})", "server_error")))
            self.info(f"[serve] {job.label}: internal error ({type(e).__name__}: {e})")
            return
        job.post(("done", out))
        tps = out.decode_tokens_per_s
        spec = self.target.spec
        brief = f", {spec_brief(job.speculation, spec.mode)}" if spec is not None else ""
        self.info(f"[serve] {job.label}: prompt {out.prompt_tokens} tokens, generated "
                  f"{out.completion_tokens}, TTFT {out.ttft_s * 1e3:.1f} ms, decode "
                  f"{'n/a' if tps is None else f'{tps:.2f}'} tok/s, finish: {out.finish_reason}{brief}")


def run_job(target: Target, job: Job) -> Outcome:
    """Generate for one job, posting text deltas; _Abort("cancelled" | "timeout") stops it early."""
    stream = TextStream(target.codec, job.stops)
    times: list[float] = []
    t0 = time.perf_counter()

    def on_token(tok: int) -> None:
        times.append(time.perf_counter())
        if job.cancelled.is_set():
            raise _Abort("cancelled")
        piece = stream.push(tok)
        if piece:
            job.post(("delta", piece))
        if stream.stopped:
            raise _Abort("stop")
        if time.monotonic() > job.deadline:
            raise _Abort("timeout")

    try:
        res = _decode(target, job, on_token)
        n, finish = len(res.tokens), ("stop" if res.stop_reason in ("eos", "stop_id") else "length")
        times = [t0 + sum(res.token_latencies_s[:i + 1]) for i in range(len(res.token_latencies_s))]
    except _Abort as a:
        if a.why != "stop":
            raise
        n, finish = len(stream.ids), "stop"
    tail = stream.finish()
    if tail:
        job.post(("delta", tail))
    ttft = (times[0] - t0) if times else 0.0
    tps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    extra = usage_fields(job.speculation, target.spec.mode) if job.speculation is not None else {}
    return Outcome(stream.text, len(job.ids), n, finish, ttft, tps, extra)


def _decode(target: Target, job: Job, on_token: Callable[[int], None]) -> Any:
    """generate(), or with the target's speculation its speculative loop counting into job.speculation
    (kept when on_token stops the generation: a stop string, a client gone, the deadline)."""
    spec = target.spec
    if spec is None:
        return generate(target.engine, job.ids, job.params, on_token=on_token)
    from edgellm.runtime.drafters import make_drafter
    from edgellm.runtime.speculative import SpecStats, generate_speculative

    job.speculation = SpecStats()
    return generate_speculative(target.engine, job.ids, job.params, spec, make_drafter(spec, target.engine),
                                on_token, stats=job.speculation)
