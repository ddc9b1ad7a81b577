"""Sampling, the generation loop and perplexity metrics (runtime/sampling, generation, metrics)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from edgellm.errors import EdgeLLMError
from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.random_model import random_model
from edgellm.runtime.generation import generate
from edgellm.runtime.metrics import evaluate, token_nll, windows
from edgellm.runtime.sampling import Sampler, SamplingParams, apply_repetition_penalty, filtered_probs

RNG = np.random.default_rng(1234)


def draws(params: SamplingParams, logits: np.ndarray, n: int, history=()) -> list[int]:
    s = Sampler(params)
    return [s.next(logits, history) for _ in range(n)]


# ---------------------------------------------------------------- sampler

def test_greedy_is_argmax_and_ties_go_to_lowest_id():
    for _ in range(20):
        x = RNG.standard_normal(97).astype(np.float32)
        assert Sampler(SamplingParams()).next(x) == int(np.argmax(x))
    x = np.array([0.0, 3.0, 1.0, 3.0, 3.0], np.float32)
    assert Sampler(SamplingParams()).next(x) == 1
    assert Sampler(SamplingParams()).next(x[None, :]) == 1  # (1, vocab) accepted
    # greedy ignores top-k/top-p and the seed
    assert Sampler(SamplingParams(top_k=2, top_p=0.1, seed=5)).next(x) == 1


def test_seeded_sampling_is_deterministic_and_seed_dependent():
    x = RNG.standard_normal(200)
    p = SamplingParams(temperature=1.0, seed=7)
    a, b = draws(p, x, 50), draws(p, x, 50)
    assert a == b
    c = draws(SamplingParams(temperature=1.0, seed=8), x, 50)
    assert a != c
    assert len(set(a)) > 5  # it really samples


def test_top_k_restricts_the_support():
    x = RNG.standard_normal(100)
    top5 = set(np.argsort(-x)[:5].tolist())
    p = SamplingParams(temperature=2.0, top_k=5, seed=0)
    probs = filtered_probs(x, p)
    assert set(np.flatnonzero(probs).tolist()) == top5
    assert probs.sum() == pytest.approx(1.0)
    got = draws(p, x, 500)
    assert set(got) == top5  # every allowed token drawn at T=2, nothing else
    # top_k=1 is greedy whatever the temperature
    assert set(draws(SamplingParams(temperature=5.0, top_k=1, seed=1), x, 50)) == {int(np.argmax(x))}


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    probs = np.array([0.05, 0.5, 0.15, 0.3])
    x = np.log(probs)
    def support(top_p: float) -> set[int]:
        return set(np.flatnonzero(filtered_probs(x, SamplingParams(temperature=1.0, top_p=top_p))).tolist())
    assert support(0.4) == {1}
    assert support(0.75) == {1, 3}
    assert support(0.85) == {1, 3, 2}
    assert support(1.0) == {0, 1, 2, 3}
    kept = filtered_probs(x, SamplingParams(temperature=1.0, top_p=0.75))
    np.testing.assert_allclose(kept[[1, 3]], [0.5 / 0.8, 0.3 / 0.8])
    got = draws(SamplingParams(temperature=1.0, top_p=0.75, seed=3), x, 400)
    assert set(got) == {1, 3}


def test_draw_frequencies_follow_the_distribution():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    got = np.bincount(draws(SamplingParams(temperature=1.0, seed=11), np.log(probs), 8000), minlength=4)
    np.testing.assert_allclose(got / 8000, probs, atol=0.02)


def test_temperature_flattens_and_sharpens():
    x = np.array([2.0, 1.0, 0.0])
    def entropy(t: float) -> float:
        p = filtered_probs(x, SamplingParams(temperature=t))
        return float(-(p * np.log(p)).sum())
    assert entropy(0.5) < entropy(1.0) < entropy(3.0)
    # tiny temperature does not overflow
    p = filtered_probs(np.array([1e30, 0.0, -1e30]), SamplingParams(temperature=1e-9))
    np.testing.assert_array_equal(p, [1.0, 0.0, 0.0])


def test_repetition_penalty_values_and_effect():
    x = np.array([2.0, -1.0, 0.5, 1.9])
    out = apply_repetition_penalty(x, [0, 1, 1], 2.0)
    np.testing.assert_allclose(out, [1.0, -2.0, 0.5, 1.9])
    assert Sampler(SamplingParams()).next(x, history=[0]) == 0
    assert Sampler(SamplingParams(repetition_penalty=1.5)).next(x, history=[0]) == 3
    # ids outside the vocabulary in the history are ignored
    np.testing.assert_allclose(apply_repetition_penalty(x, [99, -1], 2.0), x)


def test_matches_hugging_face_logits_processors():
    torch = pytest.importorskip("torch")
    lp = pytest.importorskip("transformers.generation.logits_process")
    for trial in range(30):
        x = RNG.standard_normal(64) * 3
        hist = RNG.integers(0, 64, 10)
        t, k, tp, rp = [(0.7, 10, 0.9, 1.3), (1.5, 0, 0.6, 1.0), (1.0, 5, 1.0, 2.0)][trial % 3]
        ids = torch.tensor(hist[None, :])
        s = torch.tensor(x[None, :], dtype=torch.float64)
        s = lp.RepetitionPenaltyLogitsProcessor(rp)(ids, s)
        s = lp.TemperatureLogitsWarper(t)(ids, s)
        if k:
            s = lp.TopKLogitsWarper(k)(ids, s)
        if tp < 1.0:
            s = lp.TopPLogitsWarper(tp)(ids, s)
        ref = torch.softmax(s, dim=-1)[0].numpy()
        params = SamplingParams(temperature=t, top_k=k, top_p=tp, repetition_penalty=rp)
        ours = filtered_probs(x, params, hist)
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(temperature=-1.0), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5),
                                dict(repetition_penalty=0.0), dict(max_new_tokens=0), dict(seed=-3)])
def test_bad_params_are_rejected(kw):
    with pytest.raises(EdgeLLMError):
        SamplingParams(**kw)


def test_nan_logits_are_an_error():
    with pytest.raises(EdgeLLMError, match="NaN"):
        Sampler(SamplingParams()).next(np.array([0.0, np.nan]))


def test_sampling_and_generation_do_not_import_torch_or_onnx():
    code = ("import sys, edgellm.runtime.sampling, edgellm.runtime.generation, edgellm.runtime.metrics; "
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- generation loop

@dataclass
class _Cfg:
    max_context: int
    vocab_size: int


class ScriptedBackend:
    """Emits logits whose argmax is script[position - 1] (the token after the last one fed)."""

    name = "scripted"

    def __init__(self, script: list[int], vocab: int = 16, context: int = 32) -> None:
        self.script, self.config = script, _Cfg(context, vocab)
        self.fed: list[int] = []
        self.resets = 0

    @property
    def length(self) -> int:
        return len(self.fed)

    def reset(self) -> None:
        self.fed, self.resets = [], self.resets + 1

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        assert not all_logits
        self.fed += [int(t) for t in tokens]
        assert len(self.fed) <= self.config.max_context
        out = np.zeros((1, self.config.vocab_size), np.float32)
        out[0, self.script[(len(self.fed) - 1) % len(self.script)]] = 5.0
        return out


def test_generate_stops_at_eos_and_streams_all_but_the_stop_token():
    be = ScriptedBackend([9, 9, 5, 2, 7, 7, 7])  # after 3 prompt tokens: 5, 2(eos), 7, 7
    seen: list[int] = []
    res = generate(be, [1, 3, 3], SamplingParams(max_new_tokens=10, eos_id=2), on_token=seen.append)
    assert res.tokens == [5, 2] and res.stop_reason == "eos"
    assert res.text_tokens == [5] and seen == [5]
    assert be.fed == [1, 3, 3, 5] and be.resets == 1
    assert len(res.token_latencies_s) == 2 and res.ttft_s == res.token_latencies_s[0] >= 0
    # ignoring EOS runs to max_new_tokens
    res = generate(be, [1, 3, 3], SamplingParams(max_new_tokens=4, eos_id=2, stop_at_eos=False))
    assert res.tokens == [5, 2, 7, 7] and res.stop_reason == "max_new_tokens"
    assert be.resets == 2 and be.fed == [1, 3, 3, 5, 2, 7]
    # extra stop ids
    res = generate(be, [1, 3, 3], SamplingParams(max_new_tokens=10, stop_ids=(5,)))
    assert res.tokens == [5] and res.stop_reason == "stop_id"
    assert res.decode_tokens_per_s is None


def test_generate_stops_at_the_end_of_the_context():
    be = ScriptedBackend([6], context=8)
    res = generate(be, [1, 2, 3, 4, 5], SamplingParams(max_new_tokens=100))
    assert res.stop_reason == "context"
    assert len(res.prompt_ids) + len(res.tokens) == 8 and len(be.fed) == 7
    res = generate(be, list(range(8)), SamplingParams(max_new_tokens=100))  # prompt fills the context
    assert res.tokens == [6] and res.stop_reason == "context"


def test_generate_rejects_bad_prompts():
    be = ScriptedBackend([1], context=8)
    with pytest.raises(EdgeLLMError, match="empty prompt"):
        generate(be, [], SamplingParams())
    with pytest.raises(EdgeLLMError, match="9 tokens is longer than the model's context of 8"):
        generate(be, list(range(9)), SamplingParams())
    with pytest.raises(EdgeLLMError, match="outside the vocabulary"):
        generate(be, [1, 16], SamplingParams())


@pytest.fixture(scope="module")
def small_model():
    cfg = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=64, vocab_size=97,
                      max_context=48, bos_id=1, eos_id=2)
    return random_model(cfg, seed=3)


def test_greedy_generation_on_golden_matches_a_full_recompute(small_model):
    prompt = [1, 10, 20, 30, 40]
    res = generate(GoldenBackend(small_model), prompt, SamplingParams(max_new_tokens=12, stop_at_eos=False))
    assert len(res.tokens) == 12
    g = GoldenModel(small_model)
    seq = list(prompt)
    for _ in range(12):  # no KV reuse: every step recomputes the whole sequence
        seq.append(int(np.argmax(g.forward(np.array(seq), g.new_cache(), all_logits=False)[0])))
    assert res.tokens == seq[len(prompt):]


def test_seeded_generation_is_reproducible(small_model):
    p = SamplingParams(max_new_tokens=15, temperature=3.0, top_k=30, seed=42, stop_at_eos=False)
    a = generate(GoldenBackend(small_model), [1, 5, 6], p).tokens
    b = generate(GoldenBackend(small_model), [1, 5, 6], p).tokens
    assert a == b and len(set(a)) > 3


# ---------------------------------------------------------------- metrics

def test_token_nll_and_windows():
    x = RNG.standard_normal((5, 11))
    t = RNG.integers(0, 11, 5)
    ref = -np.log(np.exp(x[np.arange(5), t]) / np.exp(x).sum(1))
    np.testing.assert_allclose(token_nll(x, t), ref, rtol=1e-12)
    assert windows(list(range(7)), 3) == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]  # overlap by one token
    assert windows(list(range(8)), 3)[-1] == [6, 7]
    assert windows([4], 3) == []
    with pytest.raises(EdgeLLMError):
        windows([1, 2, 3], 1)


def test_evaluate_perplexity_and_agreement(small_model):
    ids = RNG.integers(0, 97, 70).tolist()
    rep = evaluate([GoldenBackend(small_model), GoldenBackend(small_model)], ids, window=32)
    assert rep.n_windows == 3  # 32 + 32 + 8 tokens, overlapping by one
    a, b = rep.scores
    assert a.n_pred == 69  # every token after the first, once
    g = GoldenModel(small_model)
    nll = sum(token_nll(g.forward(np.array(w), g.new_cache())[:-1], np.array(w[1:])).sum()
              for w in windows(ids, 32))
    assert a.perplexity == pytest.approx(np.exp(nll / a.n_pred), rel=1e-12)
    assert b.agreement == 1.0 and b.max_abs_diff == 0.0 and a.perplexity == b.perplexity
    with pytest.raises(EdgeLLMError, match="at least 2"):
        evaluate([GoldenBackend(small_model)], [5], window=32)


def test_sampling_from_the_top_logits_is_the_same_pick() -> None:
    """Sampler.next_from_top (the LM head's top-K: ids descending by logit, ties by lower id) picks what
    next() picks over the whole logits, draw for draw with the same seed, under top-k (at most K), top-p and
    temperature, with ties at the top; it refuses what the top logits cannot decide."""
    from edgellm.runtime.sampling import Sampler, SamplingParams, topk_samplable

    rng = np.random.default_rng(0)
    for trial in range(60):
        x = (rng.standard_normal(500) * 3).astype(np.float32)
        x[rng.integers(0, 500, 20)] = x.max()  # 20 ties at the top, more than some top-k
        order = np.argsort(-x.astype(np.float64), kind="stable")[:64]
        for k, top_p, t in ((40, 1.0, 0.8), (10, 0.9, 1.3), (64, 0.5, 0.5), (1, 1.0, 1.0), (5, 0.99, 50.0)):
            params = SamplingParams(temperature=t, top_k=k, top_p=top_p, seed=trial)
            a, b = Sampler(params), Sampler(params)
            for _ in range(3):
                assert a.next(x) == b.next_from_top(order, x[order])
    assert not topk_samplable(SamplingParams(temperature=1.0), 64)  # no top-k filter: every logit counts
    assert not topk_samplable(SamplingParams(temperature=1.0, top_k=65), 64)
    assert not topk_samplable(SamplingParams(temperature=1.0, top_k=5, repetition_penalty=1.2), 64)
    assert not topk_samplable(SamplingParams(), 64)  # greedy: the argmax path
    with pytest.raises(EdgeLLMError, match="top_k in 1..3"):
        Sampler(SamplingParams(temperature=1.0, top_k=5)).next_from_top(order[:3], x[order[:3]])
