"""`edgellm serve` against the official `openai` client, on a live server on 127.0.0.1 (a free port).

Most tests serve the shipped tiny model on the golden CPU backend in-process (uvicorn on a thread,
stopped by its context manager); a gate around the engine holds the device busy where a test needs a
queue. One test runs the `edgellm serve` command itself and stops it with SIGTERM/SIGINT; one (slow)
serves a compiled project on the emulator. Every wait is bounded; no address but 127.0.0.1 is used.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared_chat import QWEN2, hf_tokenizer, write_chatml_checkpoint, write_tokenizer
from shared_serve import WAIT_S, client, generate_text, serving, wait_until

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

PROMPTS = ["Emma was", "Mr. Knightley", "It is a truth", "Harriet", "The evening", "Mrs. Weston",
           "Her father", "They walked"]


class Gate:
    """An engine wrapper: forward waits for the gate (bounded), then sleeps `delay`; counts forwards."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner, self.config, self.delay = inner, inner.config, delay
        self.open = threading.Event()
        self.open.set()
        self.forwards = 0

    @property
    def length(self) -> int:
        return int(self.inner.length)

    def reset(self) -> None:
        self.inner.reset()

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        if not self.open.wait(WAIT_S):
            raise RuntimeError("the test never opened the gate")
        self.forwards += 1
        if self.delay:
            time.sleep(self.delay)
        return self.inner.forward(tokens, all_logits)


@pytest.fixture(scope="module")
def tiny() -> Any:
    from edgellm.serve.target import open_target

    return open_target(None)


def in_line(worker: Any) -> int:
    """Requests waiting for or running on the device."""
    return int(worker.waiting + (worker.current is not None))


def call(srv: Any, method: str, path: str, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body) of one plain HTTP request (http.client, bounded)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=WAIT_S)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def srv(tiny: Any) -> Iterator[Any]:
    with serving(tiny) as (s, _):
        yield s


def test_models_and_health(srv: Any) -> None:
    models = client(srv).models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert client(srv).models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client(srv).models.retrieve("gpt-4")
    status, h = call(srv, "GET", "/health")
    assert status == 200 and h["status"] == "ok" and h["busy"] is False and h["waiting"] == 0


def test_completion_equals_generate(srv: Any) -> None:
    want = generate_text("--prompt", "Emma was", "-n", "12", "--ignore-eos")
    c = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=12, temperature=0)
    assert c.choices[0].text == want and len(set(want)) > 3
    assert c.choices[0].finish_reason == "length"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (3, 12, 15)
    chunks = list(client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=12,
                                                 temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == want
    assert len(chunks) > 5 and chunks[-1].choices[0].finish_reason == "length"


def test_chat_equals_generate_without_a_template(srv: Any) -> None:
    """The tiny model has no template: a chat is its messages as plain text (here one user message)."""
    want = generate_text("--prompt", "Mr. Knightley", "-n", "10", "--ignore-eos")
    msgs = [{"role": "user", "content": "Mr. Knightley"}]
    c = client(srv).chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0)
    assert c.choices[0].message.content == want and c.choices[0].message.role == "assistant"
    assert c.usage.completion_tokens == 10
    stream = client(srv).chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == want
    assert chunks[-1].usage.completion_tokens == 10 and chunks[-1].choices == []


def test_sampling_and_stop(srv: Any) -> None:
    want = generate_text("--prompt", "Emma was", "-n", "12", "--temperature", "0.8", "--seed", "3")
    kw: dict[str, Any] = {"model": "tiny", "prompt": "Emma was", "max_tokens": 12, "temperature": 0.8,
                          "seed": 3}
    assert client(srv).completions.create(**kw).choices[0].text == want
    greedy = generate_text("--prompt", "Emma was", "-n", "12", "--ignore-eos")
    stop = greedy.split()[3]  # a word the greedy text has
    c = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=12, temperature=0,
                                       stop=[stop, "zzz"])
    assert c.choices[0].text == greedy[:greedy.index(stop)] and c.choices[0].finish_reason == "stop"
    streamed = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=12, temperature=0,
                                              stop=stop, stream=True)
    assert "".join(ch.choices[0].text for ch in streamed) == c.choices[0].text


def test_eight_streaming_clients_served_in_full_and_in_order(tiny: Any) -> None:
    gate = Gate(tiny.engine)
    gate.open.clear()  # the device is held until all eight wait
    t = dataclasses.replace(tiny, engine=gate)
    want = [generate_text("--prompt", p, "-n", "8", "--ignore-eos") for p in PROMPTS]
    got: list[list[tuple[float, str]]] = [[] for _ in PROMPTS]
    errors: list[BaseException] = []
    with serving(t) as (srv, worker):
        def run(i: int) -> None:
            try:
                for ch in client(srv).completions.create(model="tiny", prompt=PROMPTS[i], max_tokens=8,
                                                         temperature=0, stream=True):
                    got[i].append((time.monotonic(), ch.choices[0].text))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = []
        for i in range(len(PROMPTS)):
            threads.append(threading.Thread(target=run, args=(i,)))
            threads[-1].start()
            wait_until(lambda i=i: in_line(worker) == i + 1, f"client {i} queued")
        gate.open.set()
        for th in threads:
            th.join(WAIT_S)
        assert not any(th.is_alive() for th in threads) and not errors, errors
    for i, w in enumerate(want):
        assert "".join(text for _, text in got[i]) == w, i
    for i in range(1, len(PROMPTS)):  # one at a time, in arrival order (client i's second chunk: one
        assert got[i - 1][-1][0] <= got[i][1][0], i  # decode step of margin for the threads' timing)


def test_disconnect_frees_the_device(tiny: Any) -> None:
    gate = Gate(tiny.engine, delay=0.02)
    t = dataclasses.replace(tiny, engine=gate)
    with serving(t) as (srv, worker):
        stream = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=400,
                                                temperature=0, stream=True)
        it = iter(stream)
        next(it)
        next(it)
        stream.close()
        wait_until(lambda: worker.current is None, "the device to be freed")
        assert gate.forwards < 100  # 400 tokens take 8 s; the job stopped soon after the client left
        c = client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=3, temperature=0)
        assert c.usage.completion_tokens == 3


def test_full_queue_is_429(tiny: Any) -> None:
    gate = Gate(tiny.engine)
    gate.open.clear()
    t = dataclasses.replace(tiny, engine=gate)
    with serving(t, queue_size=2) as (srv, worker):
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(client(srv).completions.create(
            model="tiny", prompt="Emma was", max_tokens=2, temperature=0))) for _ in range(3)]
        for i, th in enumerate(threads):
            th.start()
            wait_until(lambda i=i: in_line(worker) == i + 1, "queued")
        with pytest.raises(openai.RateLimitError) as ei:
            client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=2)
        assert ei.value.status_code == 429 and int(ei.value.response.headers["retry-after"]) >= 1
        assert ei.value.body["code"] == "queue_full"
        gate.open.set()
        for th in threads:
            th.join(WAIT_S)
        assert len(results) == 3 and all(r.usage.completion_tokens == 2 for r in results)


def test_request_timeout_is_504(tiny: Any) -> None:
    t = dataclasses.replace(tiny, engine=Gate(tiny.engine, delay=0.05))
    with serving(t, request_timeout=0.5) as (srv, worker):
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as ei:
            client(srv).completions.create(model="tiny", prompt="Emma was", max_tokens=200)
        assert ei.value.status_code == 504 and ei.value.body["code"] == "timeout"
        assert time.monotonic() - t0 < 5
        wait_until(lambda: worker.current is None, "the device to be freed")
        with socket.create_connection((srv.host, srv.port), timeout=WAIT_S) as sock:  # a body that stalls
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")


BAD = [
    ({"model": "tiny", "prompt": "x", "max_tokens": "5"}, "max_tokens"),
    ({"model": "tiny", "prompt": "x", "temperature": "hot"}, "temperature"),
    ({"model": "tiny", "prompt": "x", "temperature": 3}, "temperature"),
    ({"model": "tiny", "prompt": "x", "top_p": 0}, "top_p"),
    ({"model": "tiny", "prompt": "x", "n": 2}, "n"),
    ({"model": "tiny", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "tiny", "prompt": "x", "seed": -1}, "seed"),
    ({"model": "tiny", "prompt": "x", "stream": "yes"}, "stream"),
    ({"model": "tiny", "prompt": "x", "frequency_penalty": 0.5}, "frequency_penalty"),
    ({"model": "tiny", "prompt": "x", "bogus": 1}, "bogus"),
    ({"model": "tiny", "prompt": 5}, "prompt"),
    ({"model": "tiny", "prompt": "   "}, "prompt"),
    ({"model": "tiny", "prompt": [1, 99999]}, "prompt"),
    ({"model": "tiny", "prompt": "\ud800"}, "prompt"),
    ({"model": "tiny", "prompt": "Emma " * 600}, "prompt"),
    ({"model": "tiny"}, "prompt"),
    ({"prompt": "x"}, "model"),
]
BAD_CHAT = [
    ({"model": "tiny", "messages": "hi"}, "messages"),
    ({"model": "tiny", "messages": []}, "messages"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "tiny", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x", "tool_calls": []}]},
     "messages[0].tool_calls"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
     "tools"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
]


def test_bad_requests_are_400(srv: Any) -> None:
    for path, cases in (("completions", BAD), ("chat/completions", BAD_CHAT)):
        for body, param in cases:
            status, r = call(srv, "POST", f"/v1/{path}", body)
            assert status == 400, (body, r)
            err = r["error"]
            assert err["type"] == "invalid_request_error" and err["param"] == param, (body, err)
    over = call(srv, "POST", "/v1/completions", BAD[-3][0])[1]["error"]
    assert over["code"] == "context_length_exceeded" and "maximum context length is 512" in over["message"]
    for raw in (b"{bad", b"[1, 2]", b'{"model": NaN}', b"\xff\xfe", b"[" * 100000):
        status, r = call(srv, "POST", "/v1/completions", raw=raw)
        assert status == 400 and r["error"]["message"], raw[:10]
    assert call(srv, "POST", "/v1/completions", raw=b" " * (5 << 20))[0] == 413
    with pytest.raises(openai.BadRequestError) as ei:
        client(srv).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], n=2)
    assert ei.value.status_code == 400
    with pytest.raises(openai.NotFoundError) as nf:
        client(srv).completions.create(model="gpt-3.5-turbo-instruct", prompt="x")
    assert nf.value.body["code"] == "model_not_found"
    assert call(srv, "GET", "/v1/nope")[0] == 404
    assert call(srv, "GET", "/v1/completions")[0] == 405


def test_api_key(tiny: Any) -> None:
    with serving(tiny, api_key="s3cret") as (srv, _):
        for key in ("none", "s3cret-not"):
            with pytest.raises(openai.AuthenticationError):
                client(srv, key).models.list()
        assert call(srv, "GET", "/health")[0] == 401
        assert call(srv, "GET", "/health", headers={"Authorization": "Bearer s3cret"})[0] == 200
        c = client(srv, "s3cret").completions.create(model="tiny", prompt="Emma", max_tokens=2)
        assert c.usage.completion_tokens == 2


def test_chat_through_the_models_template(tmp_path: Path) -> None:
    """A model with a chat template (ChatML): the prompt is the template's rendering, tokenized as
    transformers tokenizes it, and the greedy answer is `edgellm generate`'s for those ids."""
    from edgellm.serve.target import open_target

    tok_file = write_tokenizer(tmp_path / "tokenizer.json")
    chat_ckpt = write_chatml_checkpoint(tmp_path / "chatml", tok_file)

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    hf = hf_tokenizer(tok_file, None, "<|im_end|>")
    ids = hf.apply_chat_template(msgs, chat_template=QWEN2, return_dict=False, add_generation_prompt=True)
    want = generate_text(str(chat_ckpt), "--prompt-ids", ",".join(map(str, ids)), "-n", "5")
    with serving(open_target(chat_ckpt)) as (srv, _):
        c = client(srv).chat.completions.create(model="chatml", messages=msgs, max_tokens=5, temperature=0)
    assert c.usage.prompt_tokens == len(ids) and c.choices[0].message.content == want


def test_textstream_holds_back_stop_prefixes() -> None:
    from edgellm.serve.textstream import TextStream

    class Chars:
        def decode(self, ids: list[int]) -> str:
            return "".join(chr(i) for i in ids)

    s = TextStream(Chars(), ("END", "xy"))
    out = [s.push(ord(c)) for c in "abEN"]
    assert out == ["a", "b", "", ""] and s.text == "ab"
    assert s.push(ord("X")) == "ENX"  # "ENX" is no stop's beginning any more
    assert [s.push(ord(c)) for c in "xE"] == ["", "x"] and s.push(ord("N")) == ""
    assert s.push(ord("D")) == "" and s.stopped and s.text == "abENXx" and s.finish() == ""
    s = TextStream(Chars(), ("END",))
    assert s.push(ord("E")) == "" and s.finish() == "E"
