"""Session + driver end to end on the emulator bus with the Python model of the top (no compiler
needed): multi-block prefill, decode, all-logits, context limit and the sliding-window policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, emulator_for, write_project

from edgellm.errors import EdgeLLMError
from edgellm.models.backend import GoldenBackend
from edgellm.models.golden import GoldenModel
from edgellm.models.random_model import random_model
from edgellm.runtime.device import DeviceTimeout
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams
from edgellm.runtime.session import Session


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=7)


@pytest.fixture
def session(qm, tmp_path: Path) -> Session:
    p, dev = emulator_for(write_project(tmp_path / "proj", qm, max_t=4, max_ctx=32))
    return Session(p, dev)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def test_greedy_generation_equals_golden(qm, session: Session) -> None:
    prompt = [1, 9, 33, 4, 71, 12, 5, 88, 40, 2]  # 10 tokens: blocks of 4, 4, 2
    params = SamplingParams(max_new_tokens=12, stop_at_eos=False)
    got = generate(session, prompt, params)
    want = generate(GoldenBackend(qm, session.project.numerics), prompt, params)
    assert got.tokens == want.tokens and len(got.tokens) == 12
    assert session.length == len(prompt) + 11  # the last sampled token is not fed back
    assert session.driver.starts == 3 + 11  # one start per prefill block, one per decode step
    assert got.ttft_s > 0 and got.decode_tokens_per_s is not None


def test_logits_bit_exact_prefill_and_decode(qm, session: Session) -> None:
    gm = GoldenModel(qm, session.project.numerics)
    cache = gm.new_cache(32)
    toks = np.array([3, 14, 15, 92, 65, 35, 89])
    assert np.array_equal(bits(session.forward(toks)), bits(gm.forward(toks, cache, all_logits=False)))
    for t in (26, 53):
        assert np.array_equal(bits(session.forward(np.array([t]))), bits(gm.forward(np.array([t]), cache,
                                                                                     all_logits=False)))


def test_all_logits(qm, session: Session) -> None:
    gm = GoldenModel(qm, session.project.numerics)
    toks = np.array([7, 1, 8, 2, 8, 1])
    got = session.forward(toks, all_logits=True)
    want = gm.forward(toks, gm.new_cache(32), all_logits=True)
    assert got.shape == (6, TINY.vocab_size)
    assert np.array_equal(bits(got), bits(want))


def test_context_full_is_an_error(session: Session) -> None:
    assert session.config.max_context == 32
    session.forward(np.arange(30) % TINY.vocab_size)
    with pytest.raises(EdgeLLMError, match="context full: 30 \\+ 3 tokens exceed the KV cache of 32"):
        session.forward(np.array([1, 2, 3]))
    res = generate(session, list(range(1, 29)), SamplingParams(max_new_tokens=50, stop_at_eos=False))
    assert res.stop_reason == "context" and len(res.tokens) == 32 - 28  # the 4th token fills the cache


def test_sliding_window(qm, tmp_path: Path) -> None:
    p, dev = emulator_for(write_project(tmp_path / "proj", qm, max_t=4, max_ctx=16))
    s = Session(p, dev, context_policy="sliding", sink=2, window=8)
    res = generate(s, [1, 5, 9, 13, 17, 21], SamplingParams(max_new_tokens=30, stop_at_eos=False))
    assert len(res.tokens) == 30 and res.stop_reason == "max_new_tokens"
    assert s.refills >= 3 and s.length <= 16
    # a refill keeps sink + window tokens at fresh positions 0..: the logits equal the golden
    # model run from scratch on exactly those tokens
    s.reset()
    seq = [int(x) for x in (np.arange(16) * 5 + 3) % TINY.vocab_size]
    s.forward(np.array(seq))
    got = s.forward(np.array([42]))
    keep = seq[:2] + (seq + [42])[-8:]
    gm = GoldenModel(qm, p.numerics)
    want = gm.forward(np.array(keep), gm.new_cache(16), all_logits=False)
    assert s.length == 10 and s._tokens == keep
    assert np.array_equal(bits(got), bits(want))


def test_sliding_window_bad_sizes(qm, tmp_path: Path) -> None:
    p, dev = emulator_for(write_project(tmp_path / "proj", qm, max_t=4, max_ctx=16))
    with pytest.raises(EdgeLLMError, match="sink 4 \\+ window 12"):
        Session(p, dev, context_policy="sliding", sink=4, window=12)
    with pytest.raises(EdgeLLMError, match="unknown context policy"):
        Session(p, dev, context_policy="wrap")


def test_timeout_then_usable(qm, session: Session) -> None:
    dev = session.driver.dev
    session.driver.timeout_s = 0.05
    dev.hang = True
    with pytest.raises(DeviceTimeout, match="did not raise ap_done within 0.05 s"):
        session.forward(np.array([1, 2]))
    dev.hang = False
    session.reset()
    gm = GoldenModel(qm, session.project.numerics)
    want = gm.forward(np.array([1, 2]), gm.new_cache(32), all_logits=False)
    assert np.array_equal(bits(session.forward(np.array([1, 2]))), bits(want))


def test_bad_tokens(session: Session) -> None:
    with pytest.raises(EdgeLLMError, match="out of range"):
        session.forward(np.array([TINY.vocab_size]))
    with pytest.raises(EdgeLLMError, match="empty"):
        session.forward(np.array([], np.int64))
