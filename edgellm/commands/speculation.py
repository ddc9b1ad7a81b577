"""The speculative-decoding options of `run`, `generate`, `chat` and `serve` (runtime/speculative.py):
one definition of each option, the configuration they make, its check against an engine, the summary
lines."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edgellm.errors import EdgeLLMError
from edgellm.runtime.spec_backend import DEFAULT_K_MAX  # noqa: F401  (the commands' --spec-k-max default)

SpeculateOpt = Annotated[str, typer.Option(
    "--speculate", help="off, lookup (prompt lookup drafts) or self (a calibrated subset of the model's "
                        "layers drafts); greedy output is identical to plain decode.")]
SpecKMaxOpt = Annotated[int, typer.Option("--spec-k-max", help="Most drafted tokens per verify pass.")]
SpecKMinOpt = Annotated[int, typer.Option("--spec-k-min", help="Fewest drafted tokens per verify pass when "
                                                               "the drafter has them (0: adaptive).")]
DraftLayersOpt = Annotated[str | None, typer.Option(
    "--draft-layers", help="--speculate self: the draft's layers ('0,1,2'; default: the project's "
                           "calibrated speculation.json).")]


def spec_config(mode: str, k_max: int, k_min: int, draft_layers: str | None, row_cost: float | None = None,
                draft_cost: float | None = None) -> Any:
    """SpecConfig from the options (one-line errors), or None for --speculate off."""
    from edgellm.runtime.speculative import MODES, SpecConfig

    if mode not in MODES:
        raise EdgeLLMError(f"unknown --speculate {mode!r}; choose one of {', '.join(MODES)}")
    if draft_layers is not None and mode != "self":
        raise EdgeLLMError("--draft-layers goes with --speculate self")
    layers: tuple[int, ...] = ()
    if draft_layers is not None:
        try:
            layers = tuple(int(x) for x in draft_layers.split(",") if x.strip())
        except ValueError:
            raise EdgeLLMError(f"--draft-layers must be layer numbers like '0,1,2', got {draft_layers!r}") \
                from None
        if not layers:
            raise EdgeLLMError("--draft-layers is empty")
    if mode == "off":
        return None
    extra: dict[str, float] = {}
    if row_cost is not None:
        extra["row_cost"] = row_cost
    if draft_cost is not None:
        extra["draft_cost"] = draft_cost
    return SpecConfig(mode=mode, k_max=k_max, k_min=k_min, draft_layers=layers, **extra)


def project_design(project: Any) -> tuple[Any, Any, Any]:
    """(model config, board, DesignParams) of a compiled project, rebuilt from its manifest; ImportError,
    KeyError, TypeError, ValueError or EdgeLLMError when the compiler cannot (a board-side install, an
    unknown board, a manifest of another version)."""
    import dataclasses

    from edgellm.boards import load_board
    from edgellm.compiler.design import DesignParams

    d = project.manifest["design"]
    kw = {f.name: tuple(d[f.name]) if isinstance(d[f.name], list) else d[f.name]
          for f in dataclasses.fields(DesignParams) if f.name in d}
    return project.config, load_board(project.manifest["board"]["name"]), DesignParams(**kw)


def for_project(spec: Any, project: Any) -> Any:
    """The configuration priced for the project's design and board when the compiler is importable and
    the manifest names a known board: the verify calls' projected costs (compiler/cost/speculative.py
    pass_costs) and, for `self` without an explicit draft cost, a draft token's (runtime/drafters.py
    draft_step_cost: the LM head's projected share of a decode step plus the draft layers' share of the
    rest). Otherwise unchanged (1 + row_cost k; a self draft priced at the default head share)."""
    if spec is None:
        return None
    import dataclasses

    from edgellm.runtime.drafters import DEFAULT_HEAD_SHARE, draft_step_cost, load_draft_layers

    head, changes = DEFAULT_HEAD_SHARE, {}
    try:
        from edgellm.compiler.cost.speculative import head_share, pass_costs

        cfg, board, design = project_design(project)
        pcs = pass_costs(cfg, board, design, spec.k_max)
        head = head_share(cfg, board, design)
        if len(pcs) > 1:
            changes["pass_costs"] = pcs
    except (ImportError, KeyError, TypeError, ValueError, ZeroDivisionError, EdgeLLMError):
        pass
    if spec.mode == "self" and not spec.draft_cost:
        n = project.config.n_layers
        layers = spec.draft_layers or load_draft_layers(project.path, n)
        if layers:
            changes["draft_cost"] = draft_step_cost(len(layers), n, head)
    return dataclasses.replace(spec, **changes) if changes else spec


def for_engine(spec: Any, engine: Any) -> Any:
    """The configuration checked against the engine `chat` and `serve` drive, before the first turn or
    request: the engine can move its KV position back, `self` has its draft layers (--draft-layers, or
    the project's calibrated speculation.json: the same one-line error as `run` without either); on a
    device session, priced for the project's design (for_project). None stays None."""
    if spec is None:
        return None
    from edgellm.runtime.drafters import make_drafter
    from edgellm.runtime.speculative import check_rewind

    check_rewind(engine)
    project = getattr(engine, "project", None)
    if project is not None:
        spec = for_project(spec, project)
    make_drafter(spec, engine)
    return spec


def acceptance_text(st: Any) -> str:
    """'65.0% (13/20)', or 'n/a' when nothing was drafted."""
    return "n/a" if st.acceptance is None else f"{100 * st.acceptance:.1f}% ({st.accepted}/{st.drafted})"


def per_pass_text(st: Any) -> str:
    """Decode tokens per pass over the weights, '1.72' (plain decode: 1.00), or 'n/a'."""
    return "n/a" if st.tokens_per_pass is None else f"{st.tokens_per_pass:.2f}"


def spec_brief(st: Any, mode: str) -> str:
    """The short form for a chat turn's or a served request's line: 'speculate lookup: acceptance
    65.0% (13/20), tokens per pass 1.72'."""
    return f"speculate {mode}: acceptance {acceptance_text(st)}, tokens per pass {per_pass_text(st)}"


def spec_line(res: Any, spec: Any, stats: dict[str, Any] | None = None) -> str | None:
    """The run's speculation summary: acceptance, tokens per pass, passes, projected speed-up; with a
    session's stats, its accelerator starts that ran every layer (layer passes, prefill included)."""
    st = getattr(res, "speculation", None)
    if st is None:
        return None
    acc, tpp = acceptance_text(st), per_pass_text(st)
    up = "n/a" if st.projected_speedup is None else f"{st.projected_speedup:.2f}x"
    return (f"[speculate {spec.mode}] acceptance {acc}, tokens per pass {tpp}, passes {st.passes} "
            f"({st.verify_passes} verify, {st.plain_passes} plain), draft passes {st.draft_passes}, "
            f"projected decode speed-up {up} ({costs(spec)}, draft token cost {spec.draft_cost:.3f} "
            "decode steps)"
            + (f", layer passes {stats['layer_passes']}" if stats and "layer_passes" in stats else "")
            + costly_hint(st, spec))


COSTLY_VERIFY = 1.5  # a k = 1 verify call dearer than this (decode steps): a design not ranked for it


def costly_hint(st: Any, spec: Any) -> str:
    """When no pass verified drafts and one draft's verify call costs more than COSTLY_VERIFY decode steps
    (a plain-ranked design: e.g. one LM-head lane, every extra row a head pass), where a design that
    verifies cheaper comes from; else ""."""
    pc = spec.pass_costs
    if st.verify_passes or len(pc) < 2 or pc[1] / pc[0] <= COSTLY_VERIFY:
        return ""
    return (f"; no pass verified drafts: one draft costs {pc[1] / pc[0]:.2f} decode steps on this design "
            f"(`edgellm compile --speculate {spec.mode}` ranks designs by speculation)")


def costs(spec: Any) -> str:
    """How verify calls were priced, for the summary line."""
    pc = spec.pass_costs
    if len(pc) > 1:
        rel = " ".join(f"{c / pc[0]:.2f}" for c in pc[1:])
        return f"verify calls k=1..{len(pc) - 1}: {rel} decode steps, projected for the design"
    return f"verify row cost {spec.row_cost:.3f}"
