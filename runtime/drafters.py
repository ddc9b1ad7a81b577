"""Drafters for speculative decoding (runtime/speculative.py), numpy only (they run on the board's ARM).

- PromptLookup: match the last n tokens (n from ngram_max down to ngram_min) against the prompt and
  the output so far; the most recent earlier occurrence's continuation is the draft, read on through
  the draft itself where it reaches the history's end (a repeating span keeps repeating, as in
  prompt lookup / lookahead decoding's n-gram pools), so a match always gives k tokens. Free: no
  accelerator call, a numpy scan of the history.
- SelfDraft: self-speculation, a subset of the model's own layers as the draft model (LayerSkip /
  SWIFT style): each draft token is one pass through the kept layers and the LM head at the next
  position, reading the KV cache the full model wrote for those layers and writing draft K/V at
  positions >= the pending token's, which the verify pass then overwrites with the full model's.
  The subset comes from a calibration run (calibrate_draft_layers) stored in the project as
  speculation.json (listed in the manifest with its sha256, so the project stays a closed set).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime import project_files as pf
from edgellm.runtime.sampling import SamplingParams, filtered_probs
from edgellm.runtime.spec_accept import draw
from edgellm.runtime.speculative import SpecConfig

DRAFT_FILE = "speculation.json"
# The costs calibrate_draft_layers assumes when none are projected for a design (plain decode steps): the LM
# head's share of a decode step and one extra verify row. Defaults, not projections.
DEFAULT_HEAD_SHARE, DEFAULT_ROW_COST = 0.2, 0.03


class PromptLookup:
    """Prompt lookup decoding: the continuation of the latest earlier match of the history's tail."""

    last_passes = 0
    last_cost = 0.0
    free = True  # drafting costs no accelerator pass: the generation loop drafts before choosing k

    def __init__(self, ngram_max: int = 3, ngram_min: int = 2) -> None:
        self.ngram_max, self.ngram_min = ngram_max, ngram_min

    def find(self, history: Sequence[int], k: int) -> list[int]:
        """k tokens following the latest earlier occurrence of the longest matching tail ([] when none
        matches): h[j], h[j+1], ... where h is the history extended by the draft as it is read, so a
        continuation that reaches the history's end goes on with the matched span again."""
        h = np.asarray(history, np.int64)
        n_all = h.size
        for n in range(min(self.ngram_max, n_all - 1), self.ngram_min - 1, -1):
            tail = h[n_all - n:]
            # starts j of earlier occurrences: h[j:j+n] == tail with j + n <= n_all - 1
            win = np.lib.stride_tricks.sliding_window_view(h[:n_all - 1], n)
            hits = np.flatnonzero((win == tail).all(axis=1))
            if hits.size:
                j = int(hits[-1]) + n
                ext = [int(t) for t in h[j:j + k]]
                period = n_all - j  # the draft read past the end repeats the span h[j:]
                while len(ext) < k:
                    ext.append(ext[len(ext) - period])
                return ext
        return []

    def propose(self, target: Any, history: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> tuple[list[int], np.ndarray | None]:
        return self.find(history, k), None  # deterministic: q is one-hot at each draft


def draft_logits(backend: Any, token: int, pos: int, layers: Sequence[int]) -> np.ndarray:
    """(vocab,) logits of `token` at position pos through the given layers and the LM head, the
    backend's position unchanged. Sessions run it on the accelerator (Session.draft_logits); the
    golden backend with the golden model's own layer and head."""
    if hasattr(backend, "draft_logits"):
        return np.asarray(backend.draft_logits(token, pos, layers))
    gm = getattr(backend, "golden", None)
    if gm is None:
        raise EdgeLLMError(f"backend {type(backend).__name__} cannot run a layer-subset draft")
    from edgellm.models import numerics as nx
    from edgellm.models.golden import lm_head

    h = gm.model.embed_rows(np.asarray([token], np.int64))
    for i in layers:
        h = gm.layer(int(i), h, backend.cache, pos)
    x = nx.rmsnorm(h, gm.model.final_norm, gm.cfg.rms_eps, gm.plan.norm_lanes)
    return lm_head(x, gm.model.lm_head)[0]


class SelfDraft:
    """Self-speculation through a subset of the model's layers; draft_cost per drafted token (in plain
    decode steps) is charged to the pass."""

    def __init__(self, layers: Sequence[int], draft_cost: float = 0.0) -> None:
        if not layers:
            raise EdgeLLMError("self-speculation needs at least one draft layer")
        self.layers = tuple(int(i) for i in layers)
        self.draft_cost = draft_cost
        self.last_passes, self.last_cost = 0, 0.0

    def propose(self, target: Any, history: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> tuple[list[int], np.ndarray | None]:
        pos = int(target.length)
        drafts: list[int] = []
        qs: list[np.ndarray] = []
        hist = list(history)
        for i in range(k):
            logits = draft_logits(target, hist[-1], pos + i, self.layers)
            q = filtered_probs(logits, params, hist)
            tok = int(np.argmax(q)) if params.greedy else draw(q, rng)
            drafts.append(tok)
            qs.append(q)
            hist.append(tok)
        self.last_passes, self.last_cost = k, k * self.draft_cost
        return drafts, (np.stack(qs) if qs and not params.greedy else None)


def draft_step_cost(n_draft_layers: int, n_layers: int, head_share: float) -> float:
    """One draft token's cost in plain decode steps: the LM head's share of a decode step plus the
    kept layers' share of the rest (a projection; compiler/cost/speculative.py gives head_share)."""
    return head_share + (1.0 - head_share) * n_draft_layers / n_layers


def make_drafter(spec: SpecConfig, backend: Any) -> Any:
    """The drafter a configuration names."""
    if spec.mode == "lookup":
        return PromptLookup(spec.ngram_max, spec.ngram_min)
    if spec.mode == "self":
        layers = spec.draft_layers or tuple(getattr(backend, "draft_layers", ()) or ())
        if not layers:
            raise EdgeLLMError("--speculate self needs draft layers: run `edgellm calibrate-draft DIR` "
                               "(or pass --draft-layers)")
        n = backend.config.n_layers
        if any(not 0 <= i < n for i in layers) or len(set(layers)) != len(layers):
            raise EdgeLLMError(f"draft layers {list(layers)} must be distinct layers of 0..{n - 1}")
        return SelfDraft(layers, spec.draft_cost)
    raise EdgeLLMError(f"speculation mode {spec.mode!r} has no drafter")


# ---- calibration of the draft layers ----

def candidate_subsets(n_layers: int) -> list[tuple[int, ...]]:
    """Layer subsets to try: every proper non-empty subset up to 6 layers; beyond, early exits
    (the first L/4, L/2, 3L/4 layers), every other layer, and the first and last quarters."""
    if n_layers <= 6:
        out = []
        for mask in range(1, (1 << n_layers) - 1):
            out.append(tuple(i for i in range(n_layers) if mask >> i & 1))
        return out
    q = max(1, n_layers // 4)
    cands = {tuple(range(m)) for m in (q, 2 * q, 3 * q)}
    cands.add(tuple(range(0, n_layers, 2)))
    cands.add(tuple(range(q)) + tuple(range(n_layers - q, n_layers)))
    return sorted(cands, key=lambda s: (len(s), s))


def calibrate_draft_layers(backend: Any, prompts: Sequence[Sequence[int]], n_new: int = 32, k: int = 3,
                           head_share: float = DEFAULT_HEAD_SHARE, row_cost: float = DEFAULT_ROW_COST,
                           candidates: Sequence[Sequence[int]] | None = None,
                           on_candidate: Callable[[int, int, tuple[int, ...]], None] | None = None
                           ) -> dict[str, Any]:
    """Run greedy self-speculation with a fixed k for each candidate subset over the prompts and keep
    the subset with the best projected speed-up (decode tokens per projected cost). Returns the
    record save_draft_calibration stores: draft_layers, k, acceptance, speedup, the costs used and
    every candidate's figures. on_candidate(done, total, layers) is told each candidate as it starts."""
    from edgellm.runtime.speculative import generate_speculative

    n_layers = backend.config.n_layers
    params = SamplingParams(max_new_tokens=n_new, stop_at_eos=False)
    rows = []
    cands = [tuple(int(i) for i in c) for c in (candidates or candidate_subsets(n_layers))]
    for done, layers in enumerate(cands):
        if on_candidate is not None:
            on_candidate(done, len(cands), layers)
        dc = draft_step_cost(len(layers), n_layers, head_share)
        spec = SpecConfig(mode="self", k_max=k, k_min=k, row_cost=row_cost, draft_cost=dc,
                          draft_layers=tuple(layers))
        drafted = accepted = tokens = 0
        cost = 0.0
        for p in prompts:
            st = generate_speculative(backend, p, params, spec, SelfDraft(layers, dc)).speculation
            drafted, accepted = drafted + st.drafted, accepted + st.accepted
            tokens, cost = tokens + st.decode_tokens, cost + st.cost_steps
        rows.append({"draft_layers": list(layers), "acceptance": accepted / drafted if drafted else 0.0,
                     "speedup": tokens / cost if cost else 0.0})
    if not rows:
        raise EdgeLLMError("no draft-layer candidates to calibrate")
    best = max(rows, key=lambda r: (r["speedup"], -len(r["draft_layers"])))
    return {"draft_layers": best["draft_layers"], "k": k, "acceptance": best["acceptance"],
            "speedup": best["speedup"], "head_share": head_share, "row_cost": row_cost,
            "n_new": n_new, "prompts": len(prompts), "candidates": rows}


def save_draft_calibration(project_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write speculation.json into a project and list it in manifest.json's files with its sha256
    (both through a temporary file and a rename; when the manifest's write fails or is interrupted,
    speculation.json goes back to what it was, so the project stays as it was)."""
    import hashlib

    d = Path(project_dir)
    man_path = d / "manifest.json"
    try:
        man = jsonfile.loads(man_path.read_text())
    except (OSError, ValueError) as e:
        raise EdgeLLMError(f"{man_path}: cannot read the project's manifest ({e})") from e
    data = (json.dumps(record, indent=1) + "\n").encode()
    dest = d / DRAFT_FILE
    old = dest.read_bytes() if dest.is_file() and not dest.is_symlink() else None
    man.setdefault("files", {})[DRAFT_FILE] = hashlib.sha256(data).hexdigest()
    pf.write_atomic(dest, data)
    try:
        pf.write_atomic(man_path, json.dumps(man, indent=1).encode())
    except BaseException:
        if old is None:
            dest.unlink(missing_ok=True)
        else:
            pf.write_atomic(dest, old)
        raise
    return dest


def load_draft_layers(project_dir: str | Path, n_layers: int) -> tuple[int, ...]:
    """The calibrated draft layers of a project (() when it has no speculation.json)."""
    f = Path(project_dir) / DRAFT_FILE
    if not f.is_file():
        return ()
    try:
        layers = jsonfile.loads(f.read_text())["draft_layers"]
        out = tuple(int(i) for i in layers)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgeLLMError(f"{f}: not a draft-layer calibration ({e})") from e
    if not out or any(not 0 <= i < n_layers for i in out):
        raise EdgeLLMError(f"{f}: draft layers {list(out)} must be layers of 0..{n_layers - 1}")
    return out
