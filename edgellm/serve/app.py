"""The Starlette app: GET /v1/models, POST /v1/completions and /v1/chat/completions, GET /health.

A request is read (at most MAX_BODY bytes), checked (schemas.py), tokenized (a chat through the model's
template, runtime/chat_template.py) and checked against the context before it is queued; then it waits
for the worker (worker.py). Streaming answers are server-sent events, one chunk per text delta, then
`data: [DONE]`. While a request waits or runs, its connection is watched: a client that goes away
cancels its job, which frees the device at the next token. Every wait is bounded by the request's
timeout plus the device's own (one accelerator run).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgellm.errors import EdgeLLMError
from edgellm.runtime.chat_template import encode_rendered
from edgellm.runtime.sampling import SamplingParams
from edgellm.serve import schemas
from edgellm.serve.schemas import ApiError, GenRequest
from edgellm.serve.target import Target
from edgellm.serve.worker import Event, Job, Outcome, Worker, timeout_error

MAX_BODY = 4 << 20
Info = Callable[[str], None]


@dataclass
class ServeConfig:
    """What the app needs besides the target and the worker."""

    api_key: str | None = None
    request_timeout_s: float = 300.0
    device_timeout_s: float = 60.0  # one accelerator run: the grace after a request's deadline
    info: Info | None = None


def create_app(target: Target, worker: Worker, cfg: ServeConfig) -> Any:
    """The ASGI app (with the API key check in front when cfg.api_key is set)."""
    h = _Handlers(target, worker, cfg)
    routes = [Route("/v1/models", h.models, methods=["GET"]),
              Route("/v1/models/{model:path}", h.model, methods=["GET"]),
              Route("/v1/completions", h.completions, methods=["POST"]),
              Route("/v1/chat/completions", h.chat, methods=["POST"]),
              Route("/health", h.health, methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return _KeyCheck(app, cfg.api_key) if cfg.api_key else app


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 from routing, in the OpenAI error shape."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    msg = {404: f"no such endpoint: {where}", 405: f"method not allowed: {where}"}.get(exc.status_code,
                                                                                       str(exc.detail))
    return _error(ApiError(exc.status_code, msg, code="not_found" if exc.status_code == 404 else None))


def _error(e: ApiError) -> Response:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


class _KeyCheck:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <key>`."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key.encode("utf-8")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                err = ApiError(401, "missing or incorrect API key (send Authorization: Bearer <key>)",
                               code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                await _error(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Handlers:
    def __init__(self, target: Target, worker: Worker, cfg: ServeConfig) -> None:
        self.t, self.w, self.cfg = target, worker, cfg
        self.info = cfg.info or (lambda s: None)
        self.created = int(time.time())

    # ---- models, health ----

    def _card(self) -> dict[str, Any]:
        return {"id": self.t.name, "object": "model", "created": self.created, "owned_by": "edgellm",
                "context_length": self.t.context}

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._card()]})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self.t.name:
            return _error(self._no_model(name))
        return JSONResponse(self._card())

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.t.name, "device": self.t.device,
                             "busy": self.w.current is not None, "waiting": self.w.waiting,
                             "queue_size": self.w.queue_size, "served": self.w.served,
                             "speculation": self.w.spec_totals.report()})

    def _no_model(self, name: str) -> ApiError:
        return ApiError(404, f"The model `{name}` does not exist; this server serves `{self.t.name}`",
                        param="model", code="model_not_found")

    # ---- generation ----

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, schemas.completion_request)

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, schemas.chat_request)

    async def _generate(self, request: Request, parse: Callable[[dict[str, Any]], GenRequest]) -> Response:
        deadline = time.monotonic() + self.cfg.request_timeout_s
        try:
            req = parse(schemas.parse_json(await _read_body(request, self.cfg.request_timeout_s)))
            if req.model != self.t.name:
                raise self._no_model(req.model)
            ids = await asyncio.to_thread(self._tokenize, req)
            params = self._params(req, len(ids))
            events: asyncio.Queue[Event] = asyncio.Queue()
            loop = asyncio.get_running_loop()
            job = Job(ids, params, req.stop, deadline, _poster(loop, events),
                      label=f"{request.url.path} {uuid.uuid4().hex[:8]}")
            self.w.submit(job)
        except ApiError as e:
            self.info(f"[serve] {request.url.path}: {e.status} {e.message}")
            return _error(e)
        bound = deadline + self.cfg.device_timeout_s + 5.0
        watcher = asyncio.ensure_future(_disconnected(request.receive))
        if req.stream:
            body = _sse(req, self.t.name, job, events, watcher, bound, self.cfg.request_timeout_s)
            return _EventStream(body, job, watcher)
        try:
            text, out = await _collect(job, events, watcher, bound, self.cfg.request_timeout_s)
        except ApiError as e:
            return _error(e)
        finally:
            watcher.cancel()
        return JSONResponse(_final_body(req, self.t.name, text, out))

    def _tokenize(self, req: GenRequest) -> list[int]:
        """Prompt ids: a completion's text as `generate` tokenizes it (BOS in front), a chat through the
        template; 400 when empty, not UTF-8, out of the vocabulary or longer than the context."""
        t, what = self.t, "prompt" if req.kind == "completion" else "messages"
        try:
            if req.prompt_ids is not None:
                ids = req.prompt_ids
                bad = [i for i in ids if not 0 <= i < t.vocab_size]
                if bad:
                    raise EdgeLLMError(f"prompt token id {bad[0]} is outside the vocabulary "
                                       f"[0, {t.vocab_size})")
            elif req.kind == "completion":
                ids = encode_rendered(t.codec, req.prompt or "", True) if (req.prompt or "").strip() else []
            else:
                ids = encode_rendered(t.codec, t.template.render(req.messages, True), t.template.adds_bos)
        except EdgeLLMError as e:
            raise schemas.bad(str(e), param=what) from None
        if not ids:
            raise schemas.bad(f"the {what} is empty", param=what)
        if len(ids) > t.context:
            raise schemas.bad(f"This model's maximum context length is {t.context} tokens; the {what} "
                              f"has {len(ids)} tokens", param=what, code="context_length_exceeded")
        return ids

    def _params(self, req: GenRequest, n_prompt: int) -> SamplingParams:
        room = max(1, self.t.context - n_prompt)  # generation stops at the context's end anyway
        max_new = min(req.max_tokens or room, room)
        try:
            return SamplingParams(temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                                  repetition_penalty=req.repetition_penalty, seed=req.seed,
                                  max_new_tokens=max_new, eos_id=self.t.codec.eos_id,
                                  stop_ids=self._stop_ids(req))
        except EdgeLLMError as e:
            raise schemas.bad(str(e)) from None

    def _stop_ids(self, req: GenRequest) -> tuple[int, ...]:
        from edgellm.runtime.chat_template import end_of_turn_ids

        return end_of_turn_ids(self.t.template, self.t.codec) if req.kind == "chat" else ()


async def _read_body(request: Request, timeout_s: float) -> bytes:
    """The body, refused with 413 past MAX_BODY bytes (before reading it when Content-Length says so),
    with 408 when it takes longer than timeout_s to arrive and 499 when the client leaves before it is
    all there."""
    too_big = ApiError(413, f"the request body is larger than {MAX_BODY >> 20} MiB", code="body_too_large")
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_BODY:
        raise too_big

    async def read() -> bytes:
        chunks, n = [], 0
        async for c in request.stream():
            n += len(c)
            if n > MAX_BODY:
                raise too_big
            chunks.append(c)
        return b"".join(chunks)
    try:
        return await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g} s",
                       code="timeout") from None
    except ClientDisconnect:  # was a traceback in the server's log; 499: nginx's "client closed request"
        raise ApiError(499, "the client closed the connection before sending the whole body",
                       code="client_closed") from None


def _poster(loop: asyncio.AbstractEventLoop, events: asyncio.Queue[Event]) -> Callable[[Event], None]:
    """post(event) from the worker thread into the handler's queue (dropped once the loop is gone)."""
    def post(ev: Event) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, ev)
        except RuntimeError:  # the event loop closed: nobody is listening
            pass
    return post


async def _disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    """Returns when the client closes the connection."""
    while True:
        msg = await receive()
        if msg.get("type") == "http.disconnect":
            return


async def _next(events: asyncio.Queue[Event], watcher: asyncio.Future[Any], bound: float) -> Event:
    """The next event, ("gone", None) when the client left, ("late", None) past the bound."""
    get = asyncio.ensure_future(events.get())
    done, _ = await asyncio.wait({get, watcher}, timeout=max(0.0, bound - time.monotonic()),
                                 return_when=asyncio.FIRST_COMPLETED)
    if get in done:
        return get.result()
    get.cancel()
    return ("gone", None) if watcher in done else ("late", None)


async def _collect(job: Job, events: asyncio.Queue[Event], watcher: asyncio.Future[Any], bound: float,
                   timeout_s: float) -> tuple[str, Outcome]:
    """Wait for a non-streaming job: (its text, its outcome); ApiError on error or timeout."""
    parts: list[str] = []
    while True:
        kind, data = await _next(events, watcher, bound)
        if kind == "delta":
            parts.append(data)
        elif kind == "done":
            return "".join(parts), data
        elif kind == "error":
            raise data
        else:
            job.cancelled.set()
            raise timeout_error(timeout_s) if kind == "late" else ApiError(499, "client closed the request")


def _ids(req: GenRequest) -> tuple[str, str, str]:
    """(response id, object, chunk object)."""
    if req.kind == "chat":
        return f"chatcmpl-{uuid.uuid4().hex}", "chat.completion", "chat.completion.chunk"
    return f"cmpl-{uuid.uuid4().hex}", "text_completion", "text_completion"


def _usage(out: Outcome) -> dict[str, Any]:
    """OpenAI's counts, and what speculation measured when the server speculates (serve/speculation.py)."""
    return {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens, **out.usage_extra}


def _timings(out: Outcome) -> dict[str, Any]:
    return {"ttft_s": round(out.ttft_s, 6), "decode_tokens_per_s": out.decode_tokens_per_s}


def _final_body(req: GenRequest, model: str, text: str, out: Outcome) -> dict[str, Any]:
    rid, obj, _ = _ids(req)
    if req.kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": out.finish_reason}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": out.finish_reason}
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice],
            "usage": _usage(out), "timings": _timings(out)}


def _chunk(req: GenRequest, head: dict[str, Any], text: str | None, finish: str | None,
           role: bool = False) -> bytes:
    if req.kind == "chat":
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
    return _data({**head, "choices": [choice]})


def _data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"


async def _sse(req: GenRequest, model: str, job: Job, events: asyncio.Queue[Event],
               watcher: asyncio.Future[Any], bound: float, timeout_s: float) -> AsyncIterator[bytes]:
    """The event stream of a job: a chunk per text delta, the finish chunk, usage if asked, [DONE]."""
    rid, _, obj = _ids(req)
    head = {"id": rid, "object": obj, "created": int(time.time()), "model": model}
    if req.kind == "chat":
        yield _chunk(req, head, None, None, role=True)
    while True:
        kind, data = await _next(events, watcher, bound)
        if kind == "delta":
            yield _chunk(req, head, data, None)
        elif kind == "done":
            yield _chunk(req, head, None if req.kind == "chat" else "", data.finish_reason)
            if req.include_usage:
                yield _data({**head, "choices": [], "usage": _usage(data), "timings": _timings(data)})
            yield b"data: [DONE]\n\n"
            return
        elif kind == "error":
            yield _data(data.body())
            return
        else:
            job.cancelled.set()
            if kind == "late":
                yield _data(timeout_error(timeout_s).body())
            return


class _EventStream(Response):
    """A text/event-stream response that cancels its job when the client goes away or the stream ends."""

    def __init__(self, body: AsyncIterator[bytes], job: Job, watcher: asyncio.Future[Any]) -> None:
        super().__init__(status_code=200, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # streamed
        self.stream, self.job, self.watcher = body, job, watcher

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(start)
            async for chunk in self.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away mid-send
            pass
        finally:
            self.job.cancelled.set()  # no effect on a finished job; frees the device otherwise
            self.watcher.cancel()
