"""Request bodies of the OpenAI API, checked field by field; errors in OpenAI's shape (standard library only).

A field of the wrong type or out of range, an unknown field, or a feature edgellm does not have
(n > 1, logprobs, tools, penalties other than repetition_penalty) is an ApiError with status 400 and
the OpenAI error body {"error": {"message", "type", "param", "code"}}. top_k and repetition_penalty are
accepted as extensions (as vLLM and llama.cpp's server accept them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgellm.runtime import jsonfile

Body = dict[str, Any]
MAX_STOPS = 4
MAX_SEED = 2**63


class ApiError(Exception):
    """An HTTP error answered with the OpenAI error body."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> Body:
        """{"error": {...}} as OpenAI writes it."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 invalid_request_error."""
    return ApiError(400, message, param=param, code=code)


@dataclass
class GenRequest:
    """A completion or chat request, checked."""

    kind: str  # "completion" | "chat"
    model: str
    prompt: str | None = None
    prompt_ids: list[int] | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False


def parse_json(raw: bytes) -> Body:
    """The body as a JSON object; 400 for anything else (NaN and Infinity are not JSON)."""
    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")
    try:
        body = jsonfile.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except UnicodeDecodeError:
        raise bad("the request body is not UTF-8 text") from None
    except ValueError as e:
        raise bad(f"the request body is not valid JSON ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, got {_kind(body)}")
    return body


def _kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _get(body: Body, name: str, ok: Any, want: str, default: Any = None) -> Any:
    """body[name] when present and not null, checked by ok(value); default otherwise."""
    v = body.get(name)
    if v is None:
        return default
    if not ok(v):
        raise bad(f"{name} must be {want}, got {_kind(v)} {_short(v)}", param=name)
    return v


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:40] + "..."


COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "n", "stream",
          "stream_options", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "user",
          "logprobs", "store", "metadata", "service_tier"}
COMPLETION_FIELDS = COMMON | {"prompt", "echo", "best_of", "suffix"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
                        "tool_choice", "parallel_tool_calls", "functions", "function_call"}


def completion_request(body: Body) -> GenRequest:
    """POST /v1/completions."""
    _known(body, COMPLETION_FIELDS)
    r = _common(body, "completion", default_max=16)
    _absent(body, "echo", lambda v: v is False, "echo is not supported")
    _absent(body, "best_of", lambda v: v == 1, "best_of other than 1 is not supported")
    _absent(body, "suffix", lambda v: v == "", "suffix is not supported")
    _absent(body, "logprobs", lambda v: False, "logprobs are not supported")
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        p = p[0]  # a batch of one
    if isinstance(p, str):
        r.prompt = p
    elif isinstance(p, list) and p and all(_int(t) for t in p):
        r.prompt_ids = [int(t) for t in p]
    elif p is None:
        raise bad("prompt is required", param="prompt")
    else:
        raise bad("prompt must be a string, an array of token ids, or a batch of one of them "
                  "(edgellm answers one prompt per request)", param="prompt")
    return r


def chat_request(body: Body) -> GenRequest:
    """POST /v1/chat/completions."""
    _known(body, CHAT_FIELDS)
    r = _common(body, "chat", default_max=None)
    mct = _get(body, "max_completion_tokens", lambda v: _int(v) and v >= 1, "an integer >= 1")
    r.max_tokens = mct if mct is not None else r.max_tokens
    _absent(body, "logprobs", lambda v: v is False, "logprobs are not supported")
    _absent(body, "top_logprobs", lambda v: False, "top_logprobs is not supported")
    _absent(body, "response_format", lambda v: v == {"type": "text"}, "response_format other than text is "
                                                                      "not supported")
    _absent(body, "tools", lambda v: v == [], "tools are not supported")
    _absent(body, "tool_choice", lambda v: v == "none", "tool_choice is not supported")
    _absent(body, "functions", lambda v: v == [], "functions are not supported")
    _absent(body, "function_call", lambda v: v == "none", "function_call is not supported")
    _get(body, "parallel_tool_calls", lambda v: isinstance(v, bool), "a boolean")
    r.messages = _messages(body.get("messages"))
    return r


def _known(body: Body, allowed: set[str]) -> None:
    for k in body:
        if k not in allowed:
            raise bad(f"Unrecognized request argument supplied: {k}", param=k)


def _absent(body: Body, name: str, default_ok: Any, message: str) -> None:
    """A feature edgellm lacks: only null (or its do-nothing value) is accepted."""
    v = body.get(name)
    if v is not None and not default_ok(v):
        raise bad(message, param=name)


def _common(body: Body, kind: str, default_max: int | None) -> GenRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model is required (a string: the id GET /v1/models lists)", param="model")
    r = GenRequest(kind=kind, model=model)
    r.max_tokens = _get(body, "max_tokens", lambda v: _int(v) and v >= 1, "an integer >= 1", default_max)
    r.temperature = float(_get(body, "temperature", lambda v: _number(v) and 0 <= v <= 2,
                               "a number in [0, 2]", 1.0))
    r.top_p = float(_get(body, "top_p", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]", 1.0))
    top_k = _get(body, "top_k", lambda v: _int(v) and v >= -1, "an integer >= -1 (-1 or 0: off)", 0)
    r.top_k = max(0, top_k)
    r.repetition_penalty = float(_get(body, "repetition_penalty", lambda v: _number(v) and 0 < v <= 100,
                                      "a number in (0, 100]", 1.0))
    r.seed = _get(body, "seed", lambda v: _int(v) and 0 <= v < MAX_SEED, "an integer in [0, 2^63)")
    _get(body, "n", lambda v: v == 1 and _int(v), "1 (edgellm answers with one choice)")
    r.stream = _get(body, "stream", lambda v: isinstance(v, bool), "a boolean", False)
    opts = _get(body, "stream_options", lambda v: isinstance(v, dict) and set(v) <= {"include_usage"} and
                isinstance(v.get("include_usage", False), bool), 'an object {"include_usage": boolean}')
    if opts is not None and not r.stream:
        raise bad("stream_options is only allowed when stream is true", param="stream_options")
    r.include_usage = bool((opts or {}).get("include_usage", False))
    r.stop = _stops(body.get("stop"))
    for name in ("presence_penalty", "frequency_penalty"):
        _get(body, name, lambda v: _number(v) and -2 <= v <= 2, "a number in [-2, 2]")
        _absent(body, name, lambda v: v == 0, f"{name} is not supported (use repetition_penalty)")
    _absent(body, "logit_bias", lambda v: v == {}, "logit_bias is not supported")
    _get(body, "user", lambda v: isinstance(v, str), "a string")
    _get(body, "store", lambda v: isinstance(v, bool), "a boolean")
    _get(body, "metadata", lambda v: isinstance(v, dict), "an object")
    _get(body, "service_tier", lambda v: isinstance(v, str), "a string")
    return r


def _stops(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("stop must be a string or an array of strings", param="stop")
    if len(stops) > MAX_STOPS:
        raise bad(f"stop takes at most {MAX_STOPS} strings, got {len(stops)}", param="stop")
    if any(not s for s in stops):
        raise bad("stop strings must not be empty", param="stop")
    return tuple(stops)


ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _messages(v: Any) -> list[dict[str, str]]:
    if v is None:
        raise bad("messages is required", param="messages")
    if not isinstance(v, list) or not v:
        raise bad("messages must be a non-empty array", param="messages")
    out = []
    for i, m in enumerate(v):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object, got {_kind(m)}", param=where)
        for k in m:
            if k not in ("role", "content", "name"):
                raise bad(f"{where}.{k} is not supported", param=f"{where}.{k}")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of system, developer, user, assistant; got {_short(role)}",
                      param=f"{where}.role")
        msg = {"role": ROLES[role], "content": _content(m.get("content"), f"{where}.content")}
        if m.get("name") is not None:
            if not isinstance(m["name"], str):
                raise bad(f"{where}.name must be a string", param=f"{where}.name")
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _content(v: Any, where: str) -> str:
    """A string, or an array of text parts joined."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(p, dict) for p in v):
        parts = []
        for j, p in enumerate(v):
            if p.get("type") != "text" or not isinstance(p.get("text"), str) or set(p) - {"type", "text"}:
                raise bad(f"{where}[{j}] must be a text part {{\"type\": \"text\", \"text\": string}} "
                          "(edgellm models read text only)", param=f"{where}[{j}]")
            parts.append(p["text"])
        return "\n".join(parts)  # as vLLM joins text parts
    raise bad(f"{where} must be a string or an array of text parts, got {_kind(v)}", param=where)
