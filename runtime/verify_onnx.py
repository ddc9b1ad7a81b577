"""`edgellm verify`'s onnx vs golden check: teacher-forced per layer and aware of rounding flips.

onnxruntime's float ops (ONNX reductions, exp, plain softmax, the linears' epilogue) differ from the
numerics contract's by an ulp. Deep in a real model one int8 requantization (codes = rint(x * qs),
qs = 127 / row max) then lands within an ulp of a .5 boundary, one code flips by 1 and every later value
diverges: end-to-end logits of a correct export differ by percents. So each layer i of golden runs on
onnxruntime's own input to it (`embed`, else `L{i-1}.h_out`) and every stage is compared in program
order: float stages to float noise, code stages equal or differing by one explained rounding flip (then
the rest of that layer is not compared). The head likewise, on onnxruntime's last `h_out`. The greedy
continuation is teacher-forced too (onnxruntime fed golden's tokens): its picks must equal golden's at
every step before the first rounding flip of the prompt or of the steps (the end-to-end logits likewise
gate only while no code differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgellm.models import numerics as nx
from edgellm.runtime.verify import Row, _agree, compare

PAIR = "onnx vs golden"
# Float stages: ORT's fp32 results differ from golden's by float noise, measured ~1e-6 of the stage's
# max |value| (an ulp in a norm, exp or reduction, carried through one layer); 1e-4 leaves 100x headroom
# and still fails a 1% change of any weight or scale.
FTOL_REL = 1e-4
# End-to-end logits: the old gate, kept while no code differs anywhere end to end.
E2E_TOL_REL = 1e-3
QUANTS = ("attn_in", "o_in", "ffn_in", "down_in")  # the layer's four requantizations (taps _x, _q)
LAYER_STAGES = ("attn_in_x", "attn_in_q", "q_rope", "k_rope", "v", "attn", "o_in_x", "o_in_q", "h_attn",
                "ffn_in_x", "ffn_in_q", "ffn_act", "down_in_x", "down_in_q", "h_out")  # program order


@dataclass
class Stage:
    """How one layer (or the head) compared: kind "noise" (every stage within float noise), "flip" (an
    explained rounding flip at `stage`, later stages not compared) or "fail" (at `stage`)."""

    kind: str
    stage: str = ""
    max_abs: float = 0.0
    note: str = ""


def ftol(want: np.ndarray) -> float:
    """The float-noise tolerance of a stage: FTOL_REL x max(1, max |golden|)."""
    return FTOL_REL * max(1.0, float(np.abs(want).max(initial=0.0)))


def float_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| (equal infinities count 0, a NaN makes it NaN)."""
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where(g == w, 0.0, np.abs(g - w))
    return float(d.max()) if d.size else 0.0


def classify_codes(gx: np.ndarray, ox: np.ndarray, gq: np.ndarray, oq: np.ndarray) -> tuple[str, str]:
    """Golden's int8 codes gq of float input gx vs onnxruntime's oq of ox (both (T, n)):
    ("equal", ""), ("flip", "<n> code(s)") when every differing code differs by exactly 1 and golden's
    x * qs lies within the float noise of a .5 boundary, else ("fail", why)."""
    gq32, oq32 = np.asarray(gq, np.int32), np.asarray(oq, np.int32)
    d = gq32 - oq32
    n = int(np.count_nonzero(d))
    if n == 0:
        return "equal", ""
    if np.abs(d).max() > 1:
        big = np.abs(d)
        return "fail", f"{int((big > 1).sum())} code(s) differ by more than 1 (up to {int(big.max())})"
    gx32 = np.asarray(gx, np.float32)
    _, qs = nx.quantize(gx32)
    v = gx32 * qs[..., None]  # golden's x / s, as nx.quantize computes it
    dist = np.abs(np.abs(v - np.floor(v)) - np.float32(0.5)).astype(np.float64)  # to the nearest k + .5
    noise = float_err(gx32, ox)
    if noise == 0.0:  # same inputs, same scale: only a different rounding (e.g. not half to even) differs
        return "fail", f"{n} code{'s' * (n != 1)} differ by 1 from identical inputs"
    # x moves by at most `noise`, and so does the row max behind qs: x * qs by at most 2 * noise * qs;
    # float32 rounding of the product adds an ulp or two of v; 1e-6 as the brief's slack
    bound = 2.0 * noise * qs[..., None] + 2.0 * np.spacing(np.abs(v)) + 1e-6
    far = (d != 0) & ~(dist <= bound)
    if far.any():
        k = np.argwhere(far)[0]
        return "fail", (f"{int(far.sum())} code(s) differ by 1 away from a .5 boundary (x/s "
                        f"{float(v[tuple(k)]):.4f}, noise {noise:.2e})")
    return "flip", f"{n} code{'s' * (n != 1)}"


def classify_f16(g: np.ndarray, o: np.ndarray) -> tuple[str, str]:
    """Golden's f32 K or V g vs onnxruntime's o as an f16 cache stores them (nx.kv_store: round to nearest
    even): ("equal", ""), ("flip", "<n> value(s)") when every differing stored value is one f16 step from
    golden's and golden's f32 value lies within the float noise of the midpoint between the two (a
    rounding flip of the f16 store, as for the int8 codes), else ("fail", why)."""
    g32 = np.asarray(g, np.float32)
    o32 = np.asarray(o, np.float32).reshape(g32.shape)
    gh, oh = nx.kv_store(g32, "f16"), nx.kv_store(o32, "f16")
    diff = (gh != oh) & ~(np.isnan(gh) & np.isnan(oh))
    n = int(np.count_nonzero(diff))
    if n == 0:
        return "equal", ""
    noise = float_err(g32, o32)
    if noise == 0.0:
        return "fail", f"{n} f16 value{'s' * (n != 1)} differ from identical inputs"
    gd, od = gh[diff], oh[diff]
    one_step = np.nextafter(gd, od) == od
    mid = (gd.astype(np.float64) + od.astype(np.float64)) / 2.0
    near = np.abs(g32[diff].astype(np.float64) - mid) <= noise + np.spacing(np.abs(g32[diff]))
    bad = ~(one_step & near)
    if bad.any():
        return "fail", (f"{int(bad.sum())} f16 value(s) differ by more than one step or away from a "
                        f"rounding midpoint (noise {noise:.2e})")
    return "flip", f"{n} f16 value{'s' * (n != 1)}"


def _stage(name: str, g: dict[str, np.ndarray], o: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    want = np.asarray(g[name])
    got = np.asarray(o[name])
    return want, got.reshape(want.shape)


KV_STAGES = ("k_rope", "v")  # what the cache stores: rounded to f16 with an f16 KV cache


def compare_stages(prefix: str, stages: tuple[str, ...], g: dict[str, np.ndarray],
                   o: dict[str, np.ndarray], kv16: bool = False) -> Stage:
    """Golden's taps g vs onnxruntime's o over `{prefix}{stage}` in program order (a `_q` stage's float
    input is the matching `_x` stage; with kv16 the K and V stages are also compared as the f16 cache
    stores them, a rounding flip there stopping the comparison as an int8 one does)."""
    worst = 0.0
    for s in stages:
        name = prefix + s
        if name not in o:
            return Stage("fail", s, worst, f"onnxruntime has no tap {name}")
        want, got = _stage(name, g, o)
        if s.endswith("_q"):
            x = name[:-2] + "_x"
            kind, why = classify_codes(g[x], _stage(x, g, o)[1], want, got)
            if kind != "equal":  # a flip names the requantization (o_in), a failure its codes (o_in_q)
                return Stage(kind, s[:-2] if kind == "flip" else s, worst, why)
            continue
        err, tol = float_err(got, want), ftol(want)
        if not err <= tol:
            return Stage("fail", s, max(worst, err), f"max|err| {err:.3g} > tol {tol:.2e}")
        worst = max(worst, err)
        if kv16 and s in KV_STAGES:
            kind, why = classify_f16(want, got)
            if kind != "equal":
                return Stage(kind, f"{s} f16 store", worst, why)
    return Stage("noise", max_abs=worst)


def teacher_forced_layers(gm: Any, o: dict[str, np.ndarray]) -> list[Stage]:
    """Each golden layer on onnxruntime's input to it (fresh KV cache, positions 0..), against
    onnxruntime's stages of that layer."""
    c = gm.cfg
    out = []
    h_in = np.asarray(o["embed"], np.float32).reshape(-1, c.hidden_size)
    for i in range(c.n_layers):
        g: dict[str, np.ndarray] = {}
        with np.errstate(over="ignore", invalid="ignore"):
            gm.layer(i, h_in.copy(), gm.new_cache(h_in.shape[0]), 0,
                     tap=lambda n, a, g=g: g.__setitem__(n, np.array(a)))
        out.append(compare_stages(f"L{i}.", LAYER_STAGES, g, o, gm.plan.kv_dtype == "f16"))
        h_in = np.asarray(o[f"L{i}.h_out"], np.float32).reshape(h_in.shape)
    return out


def teacher_forced_head(gm: Any, o: dict[str, np.ndarray], o_logits: np.ndarray) -> tuple[Stage, float]:
    """Golden's final norm and LM head on onnxruntime's last `h_out` (last token) vs its logits; returns
    the comparison and the logits' tolerance."""
    from edgellm.models.golden import lm_head

    c, qm = gm.cfg, gm.model
    h = np.asarray(o[f"L{c.n_layers - 1}.h_out"], np.float32).reshape(-1, c.hidden_size)[-1:]
    with np.errstate(over="ignore", invalid="ignore"):
        x = nx.rmsnorm(h, qm.final_norm, c.rms_eps, gm.plan.norm_lanes)
        logits = lm_head(x, qm.lm_head)[0]
    o = {**o, "logits": np.asarray(o_logits, np.float32).reshape(-1)}
    g = {"head_in_x": x, "head_in_q": nx.quantize(x)[0], "logits": logits}
    if "head_in_q" in o:
        o["head_in_x"] = np.asarray(o["head_in_x"]).reshape(-1, c.hidden_size)[-1:]
        o["head_in_q"] = np.asarray(o["head_in_q"]).reshape(-1, c.hidden_size)[-1:]
        return compare_stages("", ("head_in_x", "head_in_q", "logits"), g, o), ftol(logits)
    tol = E2E_TOL_REL * max(1.0, float(np.abs(logits).max()))  # no head taps: the old logits tolerance
    err = float_err(o["logits"], logits)
    if not err <= tol:
        return Stage("fail", "logits", err, f"max|err| {err:.3g} > tol {tol:.2e}"), tol
    return Stage("noise", max_abs=err), tol


def first_code_difference(g: dict[str, np.ndarray], o: dict[str, np.ndarray], n_layers: int,
                          kv16: bool = False) -> str | None:
    """The first requantization (program order, then the head) whose codes differ end to end; with kv16
    the f16 K/V stores count as requantizations too."""
    per_layer = [(f"{QUANTS[0]}_q", False), *((k, True) for k in KV_STAGES if kv16),
                 *((f"{q}_q", False) for q in QUANTS[1:])]  # program order: the K/V store after attn_in
    names = [(f"L{i}.{t}", f16) for i in range(n_layers) for t, f16 in per_layer] + [("head_in_q", False)]
    for tap, f16 in names:
        name = f"{tap}:f16" if f16 else tap
        if tap in g and tap in o:
            want = np.asarray(g[tap])
            got = np.asarray(o[tap]).reshape(want.shape) if f16 else \
                np.asarray(o[tap]).reshape(-1, want.shape[-1])[-want.shape[0]:]
            if f16:
                want, got = nx.kv_store(want, "f16"), nx.kv_store(got, "f16")
            if not np.array_equal(want, got, equal_nan=f16):
                return name
    return None


def summary(layers: list[Stage]) -> tuple[bool, str]:
    """The "layers (teacher-forced)" row's verdict and note."""
    fails = [(i, s) for i, s in enumerate(layers) if s.kind == "fail"]
    flips = [(i, s) for i, s in enumerate(layers) if s.kind == "flip"]
    n = len(layers)
    parts = [f"{n} layer{'s' * (n != 1)}: {n - len(fails) - len(flips)} to float noise"]
    if flips:
        named = "; ".join(f"L{i} {s.stage}: {s.note}" for i, s in flips[:3]) + "; ..." * (len(flips) > 3)
        parts.append(f"{len(flips)} to an explained rounding flip ({named})")
    if fails:
        parts.append(f"{len(fails)} FAIL (first L{fails[0][0]}.{fails[0][1].stage}: {fails[0][1].note})")
    return not fails, ", ".join(parts)


def _lowbit(qm: Any) -> bool:
    """Whether the model's linears are W{b}A8 low-bit ones."""
    from edgellm.models.weights import LowBitLinear

    return any(isinstance(lin, LowBitLinear) for L in qm.layers for lin in L.linears().values())


def onnx_rows(p: Any, qm: Any, prompt: list[int], n: int, g_logits: np.ndarray, g_toks: list[int],
              rep: Any, gm: Any = None, g_taps: dict[str, np.ndarray] | None = None) -> None:
    """onnx vs golden (runtime/verify_onnx.py): every layer and the head teacher-forced on the tapped
    export of qm; the end-to-end logits (gating only while no code differs end to end) and the greedy
    picks, teacher-forced on golden's tokens (greedy_row: gating the steps before the first rounding flip),
    on reference/model.onnx, or the export when there is none or it holds MatMulNBits linears.
    g_taps: golden's end-to-end taps over the prompt (recomputed when None)."""
    try:
        from edgellm.models.ort_runner import OrtBackend
    except ImportError as e:
        rep.notes.append(f"onnxruntime vs golden skipped: {e.name} is not installed")
        return
    from edgellm.models.golden import GoldenModel

    gm = gm or GoldenModel(qm, p.numerics if isinstance(p.numerics, nx.NumericsPlan) else None)
    if g_taps is None:
        g_taps = {}
        gm.forward(np.array(prompt), gm.new_cache(len(prompt)), tap=lambda k, a: g_taps.__setitem__(k, a),
                   all_logits=False)
    tapped = OrtBackend(qm, taps=True, kv_dtype=p.numerics.kv_dtype)
    t_logits = np.asarray(tapped.forward(np.array(prompt)), np.float32)[-1]
    o_taps = tapped.last_taps
    layers = teacher_forced_layers(gm, o_taps)
    head, head_tol = teacher_forced_head(gm, o_taps, t_logits)
    first_diff = first_code_difference(g_taps, o_taps, qm.config.n_layers, gm.plan.kv_dtype == "f16")
    ok, note = summary(layers)
    rep.rows.append(Row(PAIR, "layers (teacher-forced)", max((s.max_abs for s in layers), default=0.0),
                        ok=ok, note=note))
    for i, s in enumerate(layers):
        if s.kind == "fail":
            rep.rows.append(Row(PAIR, f"L{i}.{s.stage} (teacher-forced)", s.max_abs, ok=False, note=s.note))
    head_note = f"tol {head_tol:.2e}" if head.kind == "noise" else f"{head.stage}: {head.note}"
    if head.kind == "flip":
        head_note = f"not compared: explained rounding flip at {head.stage} ({head.note})"
    rep.rows.append(Row(PAIR, "logits (teacher-forced)", head.max_abs, ok=head.kind != "fail",
                        note=head_note))
    toks: list[int] | None = None
    if first_diff is not None:  # the prompt's flip ends the gated steps: no golden step needs running
        flip: tuple[int, str] | None = (0, first_diff)
    else:
        toks, flip = forced_steps(gm, tapped, prompt, t_logits, g_toks, gm.plan.kv_dtype == "f16")
    ref = p.path / "reference" / "model.onnx"
    if ref.is_file():
        del tapped, o_taps  # one model in memory at a time
        ort = OrtBackend(ref, kv_dtype=p.numerics.kv_dtype)
        if ort.lowbit_form != "contract" and _lowbit(qm):  # a reference written with MatMulNBits (float
            # sums in onnxruntime's order): the check runs on the contract-order export of the model instead
            rep.notes.append(f"{ref.name} has low-bit linears as onnx-nbits: onnx vs golden runs on the "
                             "contract-order export of the model")
            ort = OrtBackend(qm, kv_dtype=p.numerics.kv_dtype)
        logits = np.asarray(ort.forward(np.array(prompt)), np.float32)[-1]
        toks = forced_argmax(ort, logits, g_toks)  # the reference's own picks
    else:
        logits = t_logits
        if toks is None:
            toks = forced_argmax(tapped, t_logits, g_toks)
    rep.rows.append(_e2e_row(logits, g_logits, first_diff, sum(s.kind == "flip" for s in [*layers, head])))
    rep.tokens["onnx"] = toks
    rep.rows.append(greedy_row(toks, g_toks, flip))


def forced_steps(gm: Any, tapped: Any, prompt: list[int], first: np.ndarray, g_toks: list[int], kv16: bool
                 ) -> tuple[list[int], tuple[int, str] | None]:
    """The tapped export's greedy pick at every step, both models fed golden's tokens (teacher-forced:
    tapped has just run the prompt, `first` its last logits), and (step, requantization) of the first
    rounding flip in the steps after the prompt (None when every code of every step agrees). Step t >= 1
    is the forward of golden's token t - 1."""
    cache = gm.new_cache(len(prompt) + len(g_toks))
    gm.forward(np.array(prompt), cache, all_logits=False)
    picks, flip, logits = [], None, np.asarray(first, np.float32).reshape(-1)
    for t, tok in enumerate(g_toks):
        picks.append(int(np.argmax(logits)))
        if t + 1 == len(g_toks):
            break
        g_taps: dict[str, np.ndarray] = {}
        gm.forward(np.array([tok]), cache, tap=g_taps.__setitem__, all_logits=False)
        logits = np.asarray(tapped.forward(np.array([tok])), np.float32).reshape(-1)
        where = first_code_difference(g_taps, tapped.last_taps, gm.cfg.n_layers, kv16)
        if flip is None and where is not None:
            flip = (t + 1, where)
    return picks, flip


def forced_argmax(ort: Any, first: np.ndarray, g_toks: list[int]) -> list[int]:
    """onnxruntime's greedy pick at every step, fed golden's tokens (teacher-forced: one differing pick
    does not change what the later steps see); ort has just run the prompt, `first` its last logits."""
    picks, logits = [], np.asarray(first, np.float32).reshape(-1)
    for t, tok in enumerate(g_toks):
        picks.append(int(np.argmax(logits)))
        if t + 1 < len(g_toks):
            logits = np.asarray(ort.forward(np.array([tok])), np.float32).reshape(-1)
    return picks


def greedy_row(toks: list[int], g_toks: list[int], flip: tuple[int, str] | None) -> Row:
    """onnxruntime's teacher-forced greedy picks vs golden's tokens: every step before the first rounding
    flip (prompt or greedy steps, forced_steps) must pick golden's token; from the flip on both
    models compute from differently rounded codes (each layer checked teacher-forced above), so a near-tie
    may pick differently: those steps inform."""
    n = len(g_toks)
    gated = n if flip is None else flip[0]
    ok = toks[:gated] == g_toks[:gated]
    note = f"teacher-forced: {_agree(toks, g_toks)}"
    if flip is not None:
        where = "the prompt" if flip[0] == 0 else f"step {flip[0]}"
        note += f"; codes first differ in {where} ({flip[1]}): the {n - gated} step(s) from it not gated"
    return Row(PAIR, f"greedy {n} tokens", exact=toks == g_toks, ok=ok, note=note)


def _e2e_row(logits: np.ndarray, g_logits: np.ndarray, first_diff: str | None, flips: int) -> Row:
    """End-to-end last-token logits: within E2E_TOL_REL x max(1, max|logit|) while every requantization's
    codes agree end to end; after a rounding flip the values diverge, so the row only informs."""
    tol = E2E_TOL_REL * max(1.0, float(np.abs(g_logits).max()))
    row = compare(PAIR, "logits", logits, g_logits, tol)
    if first_diff is not None:  # diverged: its ULP count says nothing
        row.ok, row.max_ulp = True, None
        how = (f"after {flips} rounding flip{'s' * (flips != 1)}" if flips else
               "a rounding flip on golden's own path")
        row.note = f"end to end, {how} (codes first differ at {first_diff}): not gated"
    return row
