"""Measured acceptance of speculative decoding on a fixed workload, and what it projects to on a board.

Runs every prompt of bench/data/speculative_prompts.json (the fixed workload) and of
bench/data/speculative_prompts_heldout.json (a held-out one of the same kinds, never used to tune the
drafter or the controller; --workload picks) greedily on the golden model, plain and with
prompt lookup (and, with --self, self-speculation through calibrated draft layers), checks that the
speculative tokens equal the plain ones, and prints per prompt and per kind (copy-heavy, control):
acceptance (accepted / drafted), tokens per weight pass (decode tokens / passes over the full model), and
decode tok/s projected for --preset on --board (default bitnet_b1_58-large on the KV260) on the design the
DSE ranks by speculation (--objective, default lookup: compiler/dse_spec.py, at the acceptance recorded
before this run; `off`: the plain-ranked headline design): plain decode (compiler/cost/model.py
decode_step, and the headline design's beside it) and speculative (every measured pass at the projected
seconds of its verify call, compiler/cost/speculative.py: "spec" with the multi-row LM head and the extra
rows' attention added in full, "hidden" with that attention hidden behind the weight stream, "row-heads"
with one OP_HEAD start per row, the call before the multi-row head). The acceptance is measured on the
model that ran (the shipped tiny model, or with --large a random model of the preset's shape); the tok/s
are projections for the preset's shapes with that acceptance, not measurements. Column `plain why`: the
plain passes (k = 0) by reason (runtime/speculative.py WHY): n no draft (no n-gram matched), c the
controller's choice, r no room (the output's last token).

python bench/speculative_acceptance.py [--n-new 64] [--k-max 7] [--workload fixed|heldout|both] [--self]
                                       [--large] [--temperature T] [--record] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from edgellm.boards import load_board
from edgellm.compiler import dse
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import speculative as cost_spec
from edgellm.compiler.design import DesignParams
from edgellm.errors import EdgeLLMError
from edgellm.models.backend import GoldenBackend
from edgellm.models.config import PRESETS
from edgellm.runtime.drafters import PromptLookup, calibrate_draft_layers
from edgellm.runtime.generation import generate
from edgellm.runtime.sampling import SamplingParams
from edgellm.runtime.speculative import DEFAULT_K_MAX, SpecConfig, verify_cost

WORKLOAD = Path(__file__).parent / "data" / "speculative_prompts.json"
HELDOUT = Path(__file__).parent / "data" / "speculative_prompts_heldout.json"
WHY_TAGS = (("no_draft", "n"), ("controller", "c"), ("room", "r"))


def load_workload(path: Path = WORKLOAD) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["prompts"]


def workloads(which: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(name, prompts) of the workloads `which` names; the held-out prompts' kinds get a "-heldout" suffix
    (their records stay apart from the fixed workload's, which the DSE objective ranks by)."""
    out = []
    if which in ("fixed", "both"):
        out.append((f"fixed ({WORKLOAD.name})", load_workload(WORKLOAD)))
    if which in ("heldout", "both"):
        held = [{**pr, "kind": f"{pr['kind']}-heldout"} for pr in load_workload(HELDOUT)]
        out.append((f"held-out ({HELDOUT.name})", held))
    return out


def run_prompt(backend: Any, ids: list[int], n_new: int, spec: SpecConfig, temperature: float = 0.0
               ) -> dict[str, Any]:
    """Plain and speculative greedy runs of one prompt; the tokens must agree. With a temperature, one
    seeded speculative sampling run (its distribution is plain sampling's: tests/test_speculative.py)."""
    params = SamplingParams(max_new_tokens=n_new, stop_at_eos=False, temperature=temperature, seed=0)
    fast = generate(backend, ids, params, speculate=spec)
    plain = fast
    if temperature == 0.0:
        plain = generate(backend, ids, params)
        if fast.tokens != plain.tokens:
            raise SystemExit(f"speculative tokens differ from plain decode ({spec.mode}): a bug")
    st = fast.speculation
    return {"decode_tokens": st.decode_tokens, "passes": st.passes, "plain_passes": st.plain_passes,
            "verify_passes": st.verify_passes, "drafted": st.drafted, "accepted": st.accepted,
            "rejections": st.rejections, "why": dict(getattr(st, "why", {})),
            "draft_passes": st.draft_passes, "k_counts": dict(st.k_counts), "tokens": plain.tokens}


def clairvoyant(ids: list[int], tokens: list[int], spec: SpecConfig) -> dict[str, Any]:
    """The best any k controller could do with this drafter on a greedy run whose tokens are known: the
    passes (plain, or a verify call of k <= the drafter's draft, at spec's verify costs) that produce the
    tokens at the least projected cost (dynamic programming over the position). A bound, not a
    controller: it knows which drafts will be accepted."""
    drafter = PromptLookup(spec.ngram_max, spec.ngram_min)
    full = [*ids, *tokens]
    n0, end = len(ids) + 1, len(full)  # the first token comes from the prefill
    best: list[tuple[float, int, int]] = [(0.0, 0, 0)] * (end + 1)  # (cost to the end, k, next position)
    for i in range(end - 1, n0 - 1, -1):
        best[i] = (1.0 + best[i + 1][0], 0, i + 1)
        draft = drafter.find(full[:i], min(spec.k_max, end - i - 1))
        for k in range(1, len(draft) + 1):
            acc = next((j for j in range(k) if draft[j] != full[i + j]), k)
            c = verify_cost(spec, k) + best[i + acc + 1][0]
            if c < best[i][0]:
                best[i] = (c, k, i + acc + 1)
    kc: dict[int, int] = {}
    plain, i = 0, n0
    while i < end:
        _, k, i = best[i]
        if k:
            kc[k] = kc.get(k, 0) + 1
        else:
            plain += 1
    return {"decode_tokens": end - n0, "passes": plain + sum(kc.values()), "plain_passes": plain,
            "verify_passes": sum(kc.values()), "drafted": 0, "accepted": 0, "rejections": 0,
            "draft_passes": 0, "k_counts": kc}


def bound_line(encoded: list[list[int]], rows: list[dict[str, Any]], spec: SpecConfig, cfg: Any, board: Any,
               p: DesignParams) -> str:
    """The clairvoyant bound of a kind's greedy lookup runs, projected as the runs are."""
    b = merge([clairvoyant(ids, r["tokens"], spec) for ids, r in zip(encoded, rows, strict=True)])
    pb = project(b, cfg, board, p, 0.0)
    return (f"{'  bound':<20} {'':>16} {b['decode_tokens'] / b['passes']:>7.2f} {pb['plain_tok_s']:>8.1f} "
            f"{pb['spec_tok_s']:>8.1f} {pb['spec_tok_s'] / pb['plain_tok_s']:>6.2f}x  (the same drafter, a "
            "clairvoyant k choice: the most any controller could give)")


def merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in
                           ("decode_tokens", "passes", "plain_passes", "verify_passes", "drafted", "accepted",
                            "rejections", "draft_passes")}
    kc: dict[int, int] = {}
    for r in rows:
        for k, n in r["k_counts"].items():
            kc[int(k)] = kc.get(int(k), 0) + n
    out["k_counts"] = kc
    why: dict[str, int] = {}
    for r in rows:
        for w, n in r.get("why", {}).items():
            why[w] = why.get(w, 0) + n
    out["why"] = why
    return out


def project(agg: dict[str, Any], cfg: Any, board: Any, p: DesignParams, draft_s: float,
            sampled: bool = False) -> dict[str, float]:
    """The run's projected tok/s: plain decode and speculative (multi-row head, its attention hidden, per-row
    heads); `sampled`: the host reads every row's logits (greedy reads the head's argmax)."""
    plain = 1.0 / cost_spec.verify_call(cfg, board, p, 0, logits=sampled).seconds
    kw = dict(decode_tokens=agg["decode_tokens"], plain_passes=agg["plain_passes"], k_counts=agg["k_counts"],
              draft_tokens=agg["draft_passes"], draft_s=draft_s, logits=sampled)
    multi = cost_spec.workload_tokens_per_s(cfg, board, p, **kw)
    hidden = cost_spec.workload_tokens_per_s(cfg, board, p, hide_attention=True, **kw)
    per_row = cost_spec.workload_tokens_per_s(cfg, board, p, multi_row_head=False, **kw)
    return {"plain_tok_s": plain, "spec_tok_s": multi, "spec_tok_s_attn_hidden": hidden,
            "spec_tok_s_row_heads": per_row}


def line(name: str, agg: dict[str, Any], pr: dict[str, float]) -> str:
    acc = agg["accepted"] / agg["drafted"] if agg["drafted"] else 0.0
    tpp = agg["decode_tokens"] / agg["passes"] if agg["passes"] else 0.0
    return (f"{name:<20} {100 * acc:>6.1f}% {agg['accepted']:>4}/{agg['drafted']:<4} {tpp:>7.2f} "
            f"{pr['plain_tok_s']:>8.1f} {pr['spec_tok_s']:>8.1f} "
            f"{pr['spec_tok_s'] / pr['plain_tok_s']:>6.2f}x {pr['spec_tok_s_attn_hidden']:>8.1f} "
            f"{pr['spec_tok_s_row_heads']:>9.1f}  {why_cell(agg)}")


def why_cell(agg: dict[str, Any]) -> str:
    """The plain passes by reason: `P = n+c+r` (no draft, the controller's choice, no room)."""
    w = agg.get("why", {})
    return f"{agg['plain_passes']:>3} = " + "+".join(f"{w.get(k, 0)}{t}" for k, t in WHY_TAGS)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-new", type=int, default=64)
    ap.add_argument("--k-max", type=int, default=DEFAULT_K_MAX,
                    help="most drafts per verify call (the controller picks k <= this by the design's costs)")
    ap.add_argument("--workload", default="both", choices=("fixed", "heldout", "both"),
                    help=f"the fixed workload ({WORKLOAD.name}), the held-out one ({HELDOUT.name}) or both")
    ap.add_argument("--preset", default="bitnet_b1_58-large", choices=sorted(PRESETS))
    ap.add_argument("--board", default="kv260")
    ap.add_argument("--self", dest="self_spec", action="store_true", help="also self-speculation")
    ap.add_argument("--large", action="store_true", help="also a random model of the preset's shape (slow)")
    ap.add_argument("--large-n-new", type=int, default=16, help="--large: tokens per prompt")
    ap.add_argument("--large-prompts", default="code-like,control-story",
                    help="--large: the workload's prompts it runs (comma-separated names)")
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="sample at this temperature instead of greedy decode (no token comparison)")
    ap.add_argument("--objective", default="lookup", choices=("off", "lookup", "self"),
                    help="the DSE objective that picks the projected design (off: the plain headline one)")
    ap.add_argument("--lut-cap", type=float, default=None,
                    help="rank the designs under this LUT fraction (default the DSE's routing margin, "
                         "75%%); a sensitivity run: not with --record (estimate projects the default cap's)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--record", action="store_true",
                    help=f"write the measured acceptance by kind to {cost_spec.MEASURED_FILE.name} "
                         "beside compiler/cost/speculative.py (edgellm estimate reads it)")
    return ap.parse_args()


def self_mode(backend: Any, tok: Any, model: Any, cfg: Any, board: Any, p: DesignParams, pcs: tuple,
              rc: float, k_max: int, mname: str) -> tuple[SpecConfig, float, float]:
    """Calibrate the draft layers on held-out text (the tiny model's validation slice, not the workload);
    (config, seconds per draft token projected for the preset, the draft layers' share)."""
    hs = cost_spec.head_share(cfg, board, p)
    paras = (Path(__file__).parents[1] / "models" / "tiny" / "eval_slice.txt").read_text().split("\n")
    calib = [[1, *tok.encode(t)[:32]] for t in paras[2:5] if t.strip()]
    rec = calibrate_draft_layers(backend, calib, n_new=16, k=2, head_share=hs, row_cost=rc)
    layers = tuple(rec["draft_layers"])
    fraction = len(layers) / model.config.n_layers
    ds = cost_spec.draft_token_s(cfg, board, p, max(1, round(fraction * cfg.n_layers)))
    dc = ds / cost_model.decode_step(cfg, board, p).seconds
    print(f"[{mname}] self-speculation calibrated: draft layers {list(layers)}, acceptance "
          f"{rec['acceptance']:.2f}; projected draft token {dc:.2f} decode steps")
    return SpecConfig("self", k_max=k_max, pass_costs=pcs, draft_cost=dc, draft_layers=layers), ds, fraction


def run_mode(a: argparse.Namespace, backend: Any, prompts: list[dict[str, Any]], encoded: list[list[int]],
             spec: SpecConfig, ds: float, fraction: float, mname: str, cfg: Any, board: Any, p: DesignParams,
             out: dict[str, Any], measured: list[dict[str, Any]], n_new: int) -> None:
    """Every prompt with one drafter: per prompt and per kind lines, results and measured records."""
    mode = spec.mode
    how = (f"sampled at temperature {a.temperature:g}, seed 0" if a.temperature
           else "greedy, identical to plain decode")
    print(f"\n[{mname}] {mode}: {n_new} tokens per prompt ({how})")
    print(f"{'prompt':<20} {'accept':>7} {'acc/draft':>9} {'tok/pass':>7} {'plain':>8} {'spec':>8} "
          f"{'x':>7} {'hidden':>8} {'row-heads':>9}  plain why  (tok/s projected)")
    kinds: dict[str, list[dict[str, Any]]] = {}
    bounds: dict[str, list[list[int]]] = {}  # the prompts' ids by kind, for the clairvoyant bound
    for pr, ids in zip(prompts, encoded, strict=True):
        r = run_prompt(backend, ids, n_new, spec, a.temperature)
        kinds.setdefault(pr["kind"], []).append(r)
        bounds.setdefault(pr["kind"], []).append(ids)
        pj = project(r, cfg, board, p, ds, bool(a.temperature))
        print(line(pr["name"], r, pj))
        out["results"].append({"model": mname, "mode": mode, "prompt": pr["name"], "kind": pr["kind"],
                               **{k: v for k, v in r.items() if k != "tokens"}, **pj})
    for kind, rows in kinds.items():
        agg = merge(rows)
        n = agg["accepted"] + agg["rejections"]
        measured.append({"model": mname, "drafter": mode, "kind": kind, "n_new": n_new, "k_max": spec.k_max,
                         "temperature": a.temperature, "prompts": len(rows),
                         "acceptance": agg["accepted"] / max(1, agg["drafted"]),
                         "rate": agg["accepted"] / n if n else 0.0,
                         "tokens_per_pass": agg["decode_tokens"] / max(1, agg["passes"]),
                         "decode_tokens": agg["decode_tokens"], "plain_passes": agg["plain_passes"],
                         "k_counts": agg["k_counts"], "why": agg["why"], "draft_tokens": agg["draft_passes"],
                         "draft_layer_fraction": fraction,
                         "pass_steps": [round(c / spec.pass_costs[0], 4) for c in spec.pass_costs]})
        pj = project(agg, cfg, board, p, ds, bool(a.temperature))
        print(line(f"= {kind}", agg, pj))
        out["results"].append({"model": mname, "mode": mode, "prompt": f"all {kind}", "kind": kind,
                               **agg, **pj})
        if mode == "lookup" and not a.temperature:
            print(bound_line(bounds[kind], rows, spec, cfg, board, p))


def record(measured: list[dict[str, Any]]) -> None:
    """Write the measured runs for edgellm estimate, replacing those of the same model, drafter, kind and
    temperature."""
    key = lambda r: (r["model"], r["drafter"], r["kind"], r.get("temperature", 0.0))  # noqa: E731
    new = {key(r) for r in measured}
    rows = [r for r in cost_spec.measured_rates() if key(r) not in new] + measured
    cost_spec.MEASURED_FILE.write_text(json.dumps({
        "about": "Runs measured by bench/speculative_acceptance.py on the golden model (greedy, or sampled "
                 "at `temperature`; bench/data/speculative_prompts.json, kinds *-heldout: "
                 "bench/data/speculative_prompts_heldout.json); rate = per-token acceptance; why = plain "
                 "passes by reason (runtime/speculative.py WHY); pass_steps = the verify calls' costs in "
                 "decode steps (k = 0 ..) the k controller ran with",
        "measured": rows}, indent=1) + "\n")


def main() -> None:
    a = parse_args()
    if a.record and a.lut_cap is not None:
        raise SystemExit("error: --record with --lut-cap: the recorded runs follow the default cap's design")
    cfg, board = PRESETS[a.preset], load_board(a.board)
    t0 = time.perf_counter()
    limits = {"lut": a.lut_cap} if a.lut_cap is not None else dse.UTIL_LIMITS
    try:  # a bad --lut-cap: explore checks the limits before any work
        p = dse.explore(cfg, board, DesignParams(), limits, speculate=a.objective).params
    except EdgeLLMError as e:
        raise SystemExit(f"error: {e}") from None
    headline = dse.explore(cfg, board, DesignParams(), limits).params
    bw = cost_ddr.bandwidth(board, p)
    rc = cost_spec.row_cost(cfg, board, p, a.k_max)
    pcs = cost_spec.pass_costs(cfg, board, p, a.k_max)
    print(f"projections: {cfg.name} on {board.name} ({board.scenario} bandwidth scenario: weight streams "
          f"{bw.weights / 1e9:.2f} GB/s, DDR {bw.ddr / 1e9:.2f} GB/s), DSE design (objective {a.objective}) "
          f"G{p.group_size} T{p.tables} R{p.rows} TP{p.token_lanes} DSP{p.dsp_lanes} "
          f"PB{p.prefill_token_block}{' pipe' if p.prefill_pipeline else ''} "
          f"head lanes {cost_spec.head_lanes(cfg, p)}, "
          f"{p.clock_mhz:g} MHz, context {p.decode_context}, attention lanes {p.attn_lanes}, LUT cap "
          f"{100 * limits['lut']:.0f}%; verify row cost {rc:.3f} decode steps; plain "
          f"decode {cost_model.decode_step(cfg, board, p).tokens_per_s:.1f} tok/s, the headline "
          f"(plain-ranked) design's {cost_model.decode_step(cfg, board, headline).tokens_per_s:.1f} (DSE "
          f"{time.perf_counter() - t0:.0f} s). Projected, not measured.")
    print("verify call of k drafts, projected, in decode steps: "
          + ", ".join(f"k={k} {c / pcs[0]:.2f}" for k, c in enumerate(pcs)))
    from edgellm.models.loaders import load_model

    qm, tok = load_model(Path(__file__).parents[1] / "models" / "tiny")
    models = [("tiny", qm)]
    if a.large:
        from edgellm.models.random_model import random_model

        models.append((f"random {cfg.name}", random_model(cfg, seed=1)))
    out: dict[str, Any] = {"preset": cfg.name, "board": board.name, "objective": a.objective,
                           "design": p.to_dict(), "headline_plain_tok_s":
                           cost_model.decode_step(cfg, board, headline).tokens_per_s,
                           "pass_costs": pcs, "results": []}
    measured: list[dict[str, Any]] = []
    for mname, model in models:
        backend = GoldenBackend(model)
        modes = [(SpecConfig("lookup", k_max=a.k_max, pass_costs=pcs), 0.0, 0.0)]
        if a.self_spec and mname == "tiny":  # calibrating a large model's layer subsets: hours here
            modes.append(self_mode(backend, tok, model, cfg, board, p, pcs, rc, a.k_max, mname))
        for wname, prompts in workloads(a.workload if mname == "tiny" else "fixed"):
            if mname != "tiny":  # the random large-shape model: a few prompts (golden: seconds a token)
                keep = set(a.large_prompts.split(","))
                prompts = [pr for pr in prompts if pr["name"] in keep]
            encoded = [[1, *tok.encode(pr["text"])] for pr in prompts]
            for spec, ds, fraction in modes:
                n_new = a.n_new if mname == "tiny" else a.large_n_new
                print(f"\n[{mname}] workload: {wname}", end="")
                run_mode(a, backend, prompts, encoded, spec, ds, fraction, mname, cfg, board, p, out,
                         measured, n_new)
    if a.record:
        record(measured)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
