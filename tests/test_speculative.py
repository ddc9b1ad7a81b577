"""Speculative decoding on the host (runtime/speculative.py, runtime/drafters.py): greedy output identical
to plain greedy decode (golden model), the KV cache after rejected rows, block rows equal to decode
rows bit for bit, the k controller's cost on text without matches, and the speculative-sampling rule
(chi-square against the exact distribution; a broken rule fails the same test)."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.errors import EdgeLLMError
from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model
from edgellm.runtime import speculative as sp
from edgellm.runtime.drafters import PromptLookup, SelfDraft, calibrate_draft_layers, candidate_subsets
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams, filtered_probs
from edgellm.runtime.speculative import KController, SpecConfig, generate_speculative

CFG = ModelConfig(hidden_size=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=40,
                  max_context=96, name="spec-tiny")
PROMPTS = [
    [1, 5, 9, 13, 5, 9, 13, 5, 9],  # repetitive: lookup drafts
    [3, 3, 3, 3, 3, 3],
    [7, 21, 8, 30, 2, 17, 11, 6, 25, 33, 12],  # no repeats
    [1, 2, 3, 4, 1, 2, 3, 4, 1, 2],
]


@pytest.fixture(scope="module")
def qm():
    return random_model(CFG, seed=11)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("spec", [SpecConfig("lookup", k_max=4, ngram_min=1),
                                  SpecConfig("lookup", k_max=2, k_min=2, ngram_min=1),
                                  SpecConfig("self", k_max=3, k_min=3, draft_layers=(0,)),
                                  SpecConfig("self", k_max=5, draft_layers=(0, 2))],
                         ids=["lookup", "lookup-k2-forced", "self-0", "self-02"])
def test_greedy_is_plain_greedy(qm, spec: SpecConfig) -> None:
    """Token for token, stop reason and final KV position as plain greedy decode, over several prompts,
    with a repetition penalty and a stop id (the stop may fall inside an accepted run)."""
    drafted = 0
    for prompt in PROMPTS:
        for params in (SamplingParams(max_new_tokens=40, stop_at_eos=False),
                       SamplingParams(max_new_tokens=25, repetition_penalty=1.3, stop_ids=(17,))):
            plain, fast = GoldenBackend(qm), GoldenBackend(qm)
            want = generate(plain, prompt, params)
            got = generate(fast, prompt, params, speculate=spec)
            assert got.tokens == want.tokens and got.stop_reason == want.stop_reason
            assert fast.length == plain.length
            st = got.speculation
            drafted += st.drafted
            assert st.decode_tokens == len(want.tokens) - 1 and st.accepted <= st.drafted
    assert drafted > 0  # the drafts were exercised, not skipped


def test_kv_cache_after_rejections_equals_plain(qm) -> None:
    """The KV rows below the position after speculation are the plain decode's bit for bit (rejected rows
    past it are stale and later overwritten); a conversation going on from there stays identical."""
    spec = SpecConfig("lookup", k_max=4, k_min=4, ngram_min=1)
    params = SamplingParams(max_new_tokens=30, stop_at_eos=False)
    plain, fast = GoldenBackend(qm), GoldenBackend(qm)
    want = generate(plain, PROMPTS[0], params)
    got = generate(fast, PROMPTS[0], params, speculate=spec)
    st = got.speculation
    assert st.accepted < st.drafted  # some rows were rejected and rewound
    n = plain.length
    assert fast.length == n
    assert np.array_equal(bits(fast.cache.k[:, :n]), bits(plain.cache.k[:, :n]))
    assert np.array_equal(bits(fast.cache.v[:, :n]), bits(plain.cache.v[:, :n]))
    hist = PROMPTS[0] + want.tokens[:-1]
    nxt = [want.tokens[-1], 4, 9]
    w2 = generate(plain, nxt, params, past=hist)
    g2 = generate(fast, nxt, params, past=hist, speculate=spec)
    assert g2.tokens == w2.tokens


def test_rewind_without_overwrite_would_be_wrong(qm) -> None:
    """The rejected rows really hold other K/V: reading them (no rewind) changes the logits, so the
    consistency above depends on the rewind + overwrite rule, not on luck."""
    b = GoldenBackend(qm)
    b.forward(np.array([1, 5, 9]))
    b.forward(np.array([13, 30, 31]), all_logits=True)  # two rejected drafts after 13
    sp.rewind(b, 4)
    after = b.forward(np.array([5]))
    ref = GoldenBackend(qm)
    ref.forward(np.array([1, 5, 9, 13]))
    assert np.array_equal(bits(after), bits(ref.forward(np.array([5]))))
    stale = GoldenBackend(qm)
    stale.forward(np.array([1, 5, 9, 13, 30, 31]))
    stale.cache.length = 6  # attend over the stale rows instead
    assert not np.array_equal(bits(stale.forward(np.array([5]))), bits(after))
    with pytest.raises(EdgeLLMError, match="cannot rewind"):
        sp.rewind(b, 99)


def test_block_rows_equal_decode_rows(qm) -> None:
    """Prefill-style (a verify block of k+1 rows) and decode-style (one row per call) logits are the
    same bits: per-row norm/quantize, exact integer matmuls, attention per query position."""
    prompt = np.array([2, 7, 1, 8, 2, 8])
    block = GoldenBackend(qm)
    block.forward(prompt)
    rows = block.forward(np.array([18, 28, 4, 5, 9]), all_logits=True)
    step = GoldenBackend(qm)
    step.forward(prompt)
    for i, t in enumerate([18, 28, 4, 5, 9]):
        assert np.array_equal(bits(rows[i]), bits(step.forward(np.array([t]))[0]))


def test_prompt_lookup() -> None:
    pl = PromptLookup(ngram_max=3, ngram_min=1)
    assert pl.find([1, 2, 3, 4, 9, 2, 3], 3) == [4, 9, 2]  # tail (2, 3) matched at 1
    assert pl.find([5, 1, 2, 7, 1, 2, 8, 1, 2], 2) == [8, 1]  # the latest match wins
    assert pl.find([1, 2, 3], 4) == []
    assert PromptLookup(3, 2).find([4, 1, 9, 1], 3) == []  # one-token matches below ngram_min
    assert pl.find([3, 3, 3], 5) == [3, 3, 3, 3, 3]  # past the history's end: the draft repeats the span


def test_prompt_lookup_reads_on_through_its_draft() -> None:
    """A continuation that reaches the history's end goes on with the matched span (the history extended
    by the draft as it is read), so a repeating period shorter than k still gives k tokens."""
    pl = PromptLookup(ngram_max=3, ngram_min=2)
    assert pl.find([1, 2, 3, 1, 2], 4) == [3, 1, 2, 3]
    assert pl.find([9, 5, 6, 7, 5, 6, 7, 5, 6], 7) == [7, 5, 6, 7, 5, 6, 7]
    assert pl.find([1, 2, 3, 1, 2], 1) == [3] and pl.find([4, 5, 6], 3) == []


class _Short:
    """A costly drafter (no `free`) that has only two tokens, both plain decode's, whatever k asks."""

    last_passes, last_cost = 0, 0.0

    def __init__(self, want: list[int], n_prompt: int) -> None:
        self.want, self.n_prompt = want, n_prompt

    def propose(self, target, history, k, params, rng):
        i = len(history) - self.n_prompt
        return self.want[i:i + min(k, 2)], None


def test_a_short_draft_is_priced_at_its_length(qm) -> None:
    """The controller re-prices a draft shorter than the k it asked for: with a cost table flat between
    2 and 3 drafts, two drafts are never worth a 3-draft call, so they go as one (no k = 2 pass), while
    the same draft lengths with a cheap k = 2 do go as two."""
    params = SamplingParams(max_new_tokens=40, stop_at_eos=False)
    want = generate(GoldenBackend(qm), PROMPTS[2], params).tokens
    flat = SpecConfig("lookup", k_max=4, pass_costs=(1.0, 1.3, 2.1, 2.1, 2.7))
    got = generate_speculative(GoldenBackend(qm), PROMPTS[2], params, flat, _Short(want, len(PROMPTS[2])))
    st = got.speculation
    assert got.tokens == want and st.accepted == st.drafted > 0
    assert 2 not in st.k_counts and st.k_counts[1] > 0
    cheap = SpecConfig("lookup", k_max=4, pass_costs=(1.0, 1.3, 1.4, 2.1, 2.7))
    got = generate_speculative(GoldenBackend(qm), PROMPTS[2], params, cheap, _Short(want, len(PROMPTS[2])))
    assert got.tokens == want and got.speculation.k_counts.get(2, 0) > 0


def test_plain_passes_by_reason(qm) -> None:
    """Every plain pass has one reason: no room (the output's last token), no draft (no n-gram matched),
    or the controller's choice (a draft was there); prompt lookup drafts before the controller chooses."""
    params = SamplingParams(max_new_tokens=30, stop_at_eos=False)
    for prompt in PROMPTS:
        st = generate(GoldenBackend(qm), prompt, params, speculate=SpecConfig("lookup", k_max=4)).speculation
        assert sum(st.why.values()) == st.plain_passes and set(st.why) <= set(sp.WHY)
        assert st.why.get("room", 0) <= 1  # only the last token can lack room (unless a pass ends there)

    class Nothing:
        last_passes, last_cost, free = 0, 0.0, True

        def propose(self, target, history, k, params, rng):
            return [], None

    six = SamplingParams(max_new_tokens=6, stop_at_eos=False)
    none = generate_speculative(GoldenBackend(qm), PROMPTS[2], six, SpecConfig("lookup"), Nothing())
    assert none.speculation.why == {"no_draft": 4, "room": 1}
    ctl = SpecConfig("lookup", k_max=4, pass_costs=(1.0, 9.0, 9.5, 9.9, 10.0))  # drafts never pay
    st = generate(GoldenBackend(qm), PROMPTS[1], params, speculate=ctl).speculation
    assert st.why.get("controller", 0) > 0 and st.summary()["why"] == dict(sorted(st.why.items()))


@pytest.mark.parametrize("spec, free", [(SpecConfig("lookup", k_max=4), False),
                                        (SpecConfig("lookup", k_max=7, pass_costs=(1.0, 1.3, 1.89, 2.1, 2.71,
                                                                                   2.96, 3.42, 3.69)), True),
                                        (SpecConfig("self", k_max=4, pass_costs=(1.0, 1.215, 1.69),
                                                    draft_cost=0.62), False)],
                         ids=["cheap-drafts", "free-drafts-first", "dear-drafts"])
def test_controller_costs_little_without_matches(qm, spec: SpecConfig, free: bool) -> None:
    """A drafter whose drafts are always wrong: the controller backs off to k = 0 with occasional probes
    (rarer when drafting costs; a free drafter drafting before the controller chooses too); the
    projected cost stays within 3% of plain decode."""
    class Wrong:
        last_passes, last_cost = 0, 0.0

        def propose(self, target, history, k, params, rng):
            self.last_cost = k * spec.draft_cost
            return [(history[-1] * 7 + 3 + i) % CFG.vocab_size for i in range(k)], None

    params = SamplingParams(max_new_tokens=80, stop_at_eos=False)
    b = GoldenBackend(qm)
    want = generate(GoldenBackend(qm), PROMPTS[2], params)
    drafter = Wrong()
    drafter.free = free
    got = generate_speculative(b, PROMPTS[2], params, spec, drafter)
    st = got.speculation
    assert got.tokens == want.tokens
    assert st.cost_steps <= 1.03 * st.decode_tokens
    assert st.plain_passes > st.verify_passes


def test_controller_grows_k_on_acceptance() -> None:
    ctl = KController(SpecConfig("lookup", k_max=6))
    for _ in range(10):
        ctl.update(4, 4)
    assert ctl.choose(10) == 6 and ctl.choose(2) == 2
    for _ in range(30):
        ctl.update(4, 0)
    assert ctl.rate < 0.03 and ctl.choose(10) == 0
    assert KController(SpecConfig("lookup", k_max=6, k_min=3)).choose(10) >= 3
    with pytest.raises(EdgeLLMError, match="k_min"):
        SpecConfig("lookup", k_max=2, k_min=3)
    with pytest.raises(EdgeLLMError, match="unknown speculation mode"):
        SpecConfig("medusa")


def test_calibration_picks_a_subset(qm) -> None:
    assert len(candidate_subsets(3)) == 6 and all(0 < len(s) < 3 for s in candidate_subsets(3))
    big = candidate_subsets(24)
    assert (0, 1, 2, 3, 4, 5) in big and all(len(s) < 24 for s in big)
    rec = calibrate_draft_layers(GoldenBackend(qm), PROMPTS[:2], n_new=12, k=2, head_share=0.1,
                                 candidates=[(0,), (0, 1)])
    assert rec["draft_layers"] in ([0], [0, 1]) and len(rec["candidates"]) == 2
    best = max(r["speedup"] for r in rec["candidates"])
    assert rec["speedup"] == best


# ---- sampling: the token distribution is unchanged ----

V = 6


class Markov:
    """A toy target whose next-token logits depend on the last token only (exact distributions known)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table
        self.config = ModelConfig(hidden_size=32, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=48,
                                  vocab_size=V, max_context=64, name="markov")
        self.n = 0

    @property
    def length(self) -> int:
        return self.n

    def reset(self) -> None:
        self.n = 0

    def rewind(self, n: int) -> None:
        self.n = n

    def forward(self, tokens, all_logits=False):
        t = np.asarray(tokens).reshape(-1)
        self.n += t.size
        rows = self.table[t]
        return rows if all_logits else rows[-1:]


class MarkovDraft:
    """Draws drafts from its own (different) chain: q rows returned for the acceptance rule."""

    last_passes, last_cost = 0, 0.0

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def propose(self, target, history, k, params, rng):
        out, qs, last = [], [], history[-1]
        for _ in range(k):
            q = filtered_probs(self.table[last], params)
            last = sp.draw(q, rng)
            out.append(last)
            qs.append(q)
        return out, np.stack(qs)


def accept_resample_p(p, q, drafts, rng):
    """A broken rule: on rejection draw from p instead of the residual max(0, p - q)."""
    for i, x in enumerate(drafts):
        qx = 1.0 if q is None else float(q[i, x])
        if rng.random() * qx < float(p[i, x]):
            continue
        return i, sp.draw(p[i], rng)
    return len(drafts), sp.draw(p[len(drafts)], rng)


def chi2_critical(df: int, z: float = 3.719) -> float:
    """Upper chi-square quantile (Wilson-Hilferty; z = 3.719: p = 1e-4)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * np.sqrt(a)) ** 3


def chi2_of(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    n = counts.sum()
    e = n * probs
    keep = e > 5
    stat = float(((counts[keep] - e[keep]) ** 2 / e[keep]).sum() + 0.0)
    rest_o, rest_e = counts[~keep].sum(), e[~keep].sum()
    if rest_e > 0:
        stat += (rest_o - rest_e) ** 2 / rest_e
    return stat, int(keep.sum()) + (1 if rest_e > 0 else 0) - 1


def joint3(table: np.ndarray, params: SamplingParams, start: int) -> np.ndarray:
    """Exact distribution of the first three sampled tokens after `start` (V^3 cells)."""
    p = np.stack([filtered_probs(table[i], params) for i in range(V)])
    return np.einsum("a,ab,bc->abc", p[start], p, p).reshape(-1)


def sample_counts(target_t: np.ndarray, draft_t: np.ndarray | None, params: SamplingParams, n: int,
                  accept=sp.accept_sampling, k: int = 3) -> np.ndarray:
    counts = np.zeros(V ** 3, np.int64)
    tgt = Markov(target_t)
    spec = SpecConfig("lookup", k_max=k, k_min=k)
    drafter = MarkovDraft(draft_t if draft_t is not None else target_t)
    for s in range(n):
        p = SamplingParams(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                           max_new_tokens=5, stop_at_eos=False, seed=s)
        res = generate_speculative(tgt, [0], p, spec, drafter, accept=accept)  # t1..t3 from one pass
        assert res.speculation.drafted >= k
        a, b, c = res.tokens[:3]
        counts[(a * V + b) * V + c] += 1
    return counts


@pytest.fixture(scope="module")
def chains():
    rng = np.random.default_rng(3)
    return rng.normal(0, 1.5, (V, V)), rng.normal(0, 1.5, (V, V))


@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0),
                                    SamplingParams(temperature=0.7, top_k=4)], ids=["t1", "t0.7-top4"])
def test_sampling_distribution_unchanged(chains, params: SamplingParams) -> None:
    target, draft = chains
    probs = joint3(target, params, 0)
    counts = sample_counts(target, draft, params, 6000)
    stat, df = chi2_of(counts, probs)
    assert stat < chi2_critical(df), (stat, df)


def test_broken_rule_fails_the_chi_square(chains) -> None:
    target, draft = chains
    params = SamplingParams(temperature=1.0)
    probs = joint3(target, params, 0)
    counts = sample_counts(target, draft, params, 6000, accept=accept_resample_p)
    stat, df = chi2_of(counts, probs)
    assert stat > chi2_critical(df), (stat, df)


def test_sampling_with_a_deterministic_drafter_matches(qm) -> None:
    """Lookup drafts (one-hot q) with sampling on the golden model: the rule runs, every token is
    valid and a seeded run is reproducible."""
    params = SamplingParams(temperature=0.8, top_p=0.9, seed=5, max_new_tokens=30, stop_at_eos=False)
    spec = SpecConfig("lookup", k_max=3, ngram_min=1)
    a = generate(GoldenBackend(qm), PROMPTS[0], params, speculate=spec)
    b = generate(GoldenBackend(qm), PROMPTS[0], params, speculate=spec)
    assert a.tokens == b.tokens and len(a.tokens) == 30 and a.speculation.drafted > 0


def test_self_draft_needs_layers(qm) -> None:
    with pytest.raises(EdgeLLMError, match="needs draft layers"):
        generate(GoldenBackend(qm), [1, 2], SamplingParams(max_new_tokens=3), speculate=SpecConfig("self"))
    with pytest.raises(EdgeLLMError, match="draft layers"):
        generate(GoldenBackend(qm), [1, 2], SamplingParams(max_new_tokens=3),
                 speculate=SpecConfig("self", draft_layers=(0, 7)))
    with pytest.raises(EdgeLLMError, match="at least one"):
        SelfDraft(())
