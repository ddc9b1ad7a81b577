"""Speculative decoding through the runtime's Session and driver on the emulator bus (the Python model of
the top: tests/test_runtime_support.py): the same greedy tokens as plain decode and the golden model,
fewer passes over the layers, verify / rewind / draft_logits checks, the draft calibration stored in
the project (a closed set still)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, emulator_for, write_project

from edgellm.errors import EdgeLLMError
from edgellm.models.backend import GoldenBackend
from edgellm.models.random_model import random_model
from edgellm.runtime.drafters import DRAFT_FILE, draft_logits, save_draft_calibration
from edgellm.runtime.generation import generate
from edgellm.runtime.project import Project
from edgellm.runtime.sampling import SamplingParams
from edgellm.runtime.session import Session
from edgellm.runtime.speculative import SpecConfig

PROMPT = [1, 9, 33, 4, 9, 33, 4, 9, 33, 4, 71]


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=7)


@pytest.fixture
def proj(qm, tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", qm, max_t=4, max_ctx=48)


def session(proj: Path) -> Session:
    p, dev = emulator_for(proj)
    return Session(p, dev)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("spec", [SpecConfig("lookup", k_max=3, ngram_min=1),
                                  SpecConfig("self", k_max=3, k_min=2, draft_layers=(1,))],
                         ids=["lookup", "self"])
def test_session_speculation_equals_plain(qm, proj: Path, spec: SpecConfig) -> None:
    params = SamplingParams(max_new_tokens=24, stop_at_eos=False)
    plain, fast = session(proj), session(proj)
    want = generate(plain, PROMPT, params)
    got = generate(fast, PROMPT, params, speculate=spec)
    gold = generate(GoldenBackend(qm, plain.project.numerics), PROMPT, params, speculate=spec)
    assert got.tokens == want.tokens == gold.tokens
    assert fast.length == plain.length
    st = got.speculation
    assert st.drafted > 0
    # every verify pass is one start over the layers: fewer than one per token when drafts are accepted
    assert fast.layer_passes == plain.layer_passes - st.accepted
    # the KV rows below the position are the plain session's, bit for bit
    k_off, _ = plain.project.region("k_cache")
    n = 4 * plain.length
    for s in (plain, fast):
        s.driver.dev.sync_from_device(s.driver.buf, 0, s.driver.buf.nbytes)
    assert np.array_equal(fast.driver.buf.array[k_off:k_off + n], plain.driver.buf.array[k_off:k_off + n])
    if spec.mode == "self":
        assert fast.draft_passes == st.draft_passes > 0


def test_verify_rows_and_draft_logits_bit_exact(qm, proj: Path) -> None:
    s = session(proj)
    g = GoldenBackend(qm, s.project.numerics)
    s.forward(np.array([3, 14, 15, 92 % TINY.vocab_size]))
    g.forward(np.array([3, 14, 15, 92 % TINY.vocab_size]))
    d_s = s.draft_logits(7, s.length, (0,))
    d_g = draft_logits(g, 7, g.length, (0,))
    assert s.length == 4 and np.array_equal(bits(d_s), bits(d_g))
    rows = s.verify(np.array([7, 8, 9]))
    want = g.forward(np.array([7, 8, 9]), all_logits=True)
    assert rows.shape == (3, TINY.vocab_size) and np.array_equal(bits(rows), bits(want))
    starts = s.driver.starts
    s.verify(np.array([1, 2]))
    assert s.driver.starts == starts + 1  # layers and one OP_HEAD over both rows (multi-row head): one start
    s.rewind(5)
    assert s.length == 5
    with pytest.raises(EdgeLLMError, match="cannot rewind"):
        s.rewind(6)
    with pytest.raises(EdgeLLMError, match="verify block of 5 tokens"):
        s.verify(np.arange(5))
    with pytest.raises(EdgeLLMError, match="draft position"):
        s.draft_logits(1, 2, (0,))


def test_context_end_and_sliding_fall_back_to_plain_steps(qm, tmp_path: Path) -> None:
    """Near the end of the cache k shrinks to the room left; the sliding policy keeps working."""
    proj = write_project(tmp_path / "p", qm, max_t=4, max_ctx=16)
    params = SamplingParams(max_new_tokens=40, stop_at_eos=False)
    spec = SpecConfig("lookup", k_max=3, ngram_min=1)
    prompt = [5, 6, 5, 6, 5, 6]
    want = generate(session(proj), prompt, params)
    got = generate(session(proj), prompt, params, speculate=spec)
    assert got.tokens == want.tokens and got.stop_reason == want.stop_reason == "context"
    p, dev = emulator_for(proj)
    sl = Session(p, dev, context_policy="sliding", sink=2, window=6)
    p2, dev2 = emulator_for(proj)
    sl_plain = Session(p2, dev2, context_policy="sliding", sink=2, window=6)
    got = generate(sl, prompt, params, speculate=spec)
    want = generate(sl_plain, prompt, params)
    assert got.tokens == want.tokens and len(got.tokens) == 40


def test_calibration_stored_in_the_project(qm, proj: Path) -> None:
    save_draft_calibration(proj, {"draft_layers": [1], "k": 2})
    p = Project.open(proj)  # still a closed set: the file is listed with its sha256
    assert DRAFT_FILE in p.manifest["files"]
    s = session(proj)
    assert s.draft_layers == (1,)
    res = generate(s, PROMPT, SamplingParams(max_new_tokens=6, stop_at_eos=False),
                   speculate=SpecConfig("self", k_max=2))
    assert res.speculation.draft_passes > 0
    (proj / DRAFT_FILE).write_text('{"draft_layers": [5]}')
    with pytest.raises(EdgeLLMError, match="sha256"):
        Project.open(proj)
