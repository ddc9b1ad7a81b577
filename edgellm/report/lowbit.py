"""The report page's section of a low-bit project (`edgellm report DIR` on a design.matmul "lowbit"
manifest): the low-bit estimate of its design (compiler/lowbit_estimate.py estimate_design, the table
`edgellm estimate DIR` prints), the assumptions behind each end of its ranges, resources per kernel, and
the decode step and TTFT(128) split by layer and by linear (compiler/cost/lowbit.py run_seconds over one
layer or one linear at a time). Every figure is projected; the rooflines are the ternary engine's and are
not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from edgellm.boards import Board
from edgellm.compiler import lowbit_estimate as le
from edgellm.compiler.cost import lowbit_resources
from edgellm.compiler.cost import lowbit_run as lr
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.cost.memory import Resources, total_of
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig
from edgellm.report.timing import TimeSplit

ENGINE = "low-bit engine"  # the matmul engine's name on the plots
VECTOR = "element-wise + attention"  # the vector stages' name in a TimeSplit (one stage, every layer)


@dataclass
class LowbitSection:
    """One low-bit model on one board with its compiled design, and everything the page draws for it."""

    cfg: ModelConfig
    board: Board
    params: DesignParams
    src: le.LowbitSource
    estimate: le.LowbitEstimate
    parts: dict[str, Resources]
    decode: TimeSplit
    prefill: TimeSplit
    limits: dict[str, float]
    source: str
    verify: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _design(board: Board, e: le.LowbitEstimate) -> DesignParams:
    """The DesignParams cost/lowbit.py projects e's engine with, at its central clock."""
    return ls.design(board, e.engine, e.vector, e.clock["central"])


def kernel_parts(src: le.LowbitSource, board: Board, e: le.LowbitEstimate) -> dict[str, Resources]:
    """Resources per kernel, the ones cost/lowbit.py total_resources sums (to e.resources, whole blocks)."""
    from edgellm.compiler.cost import axi as cost_axi
    from edgellm.compiler.cost import resource_model

    q = _design(board, e)
    ew, attn = resource_model.vector_kernels(src.cfg, q)
    return {ENGINE: lowbit_resources.resources(e.engine), "elementwise": ew, "attention": attn,
            "axi": cost_axi.resources(q), "platform": resource_model.PLATFORM,
            "fetch": ls.fetch_resources(board, q), "lm_head": ls.head_resources(src.cfg, board, src.model, q)}


def time_split(src: le.LowbitSource, board: Board, e: le.LowbitEstimate, phase: str, tokens: int,
               context0: int) -> TimeSplit:
    """`tokens` new tokens after context0 cached ones on e's design in the central scenario, split by
    layer (its linears and vector work) and by linear (summed over the layers) plus the vector stages, as
    the one run against the weight fetchers times them (cost/lowbit_run.run_split); its total is the
    projection's (1 / decode tok/s, or TTFT)."""
    b, q = board.with_scenario("central"), _design(board, e)
    run = lr.run_split(src.cfg, b, src.model, e.engine, q, tokens, context0)
    return TimeSplit(phase, tokens, run.layers, {**run.linears, VECTOR: run.vector}, run.final, run.lm_head,
                     run.host)


def lowbit_section(cfg: ModelConfig, board: Board, p: DesignParams, src: le.LowbitSource, source: str,
                   limits: dict[str, float], verify: dict[str, Any] | None = None) -> LowbitSection:
    """Estimate the compiled low-bit design p and split its decode step and TTFT(PROMPT) prefill."""
    e = le.estimate_design(src, board, p)
    q = _design(board, e)
    return LowbitSection(cfg, board, p, src, e, kernel_parts(src, board, e),
                         time_split(src, board, e, "decode", 1, q.decode_context),
                         time_split(src, board, e, "prefill", le.PROMPT, 0), limits, source, verify)


def recorded_note(recorded: Any, e: le.LowbitEstimate) -> str | None:
    """A note when compile's projection (report/estimate.json "dse" "lowbit") differs from this one's."""
    rec = (recorded.get("dse") or {}).get("lowbit") if isinstance(recorded, dict) else None
    was = ((rec or {}).get("projected_decode_tok_s") or {}).get("central") if isinstance(rec, dict) else None
    now = e.decode["central"]
    if not isinstance(was, (int, float)) or isinstance(was, bool) or abs(was - now) <= 0.005 * abs(now):
        return None
    return (f"compile projected {was:g} tok/s decode (report/estimate.json); this edgellm's low-bit model "
            f"projects {now:.2f} for the same design (the model changed)")


def section_html(s: LowbitSection) -> str:
    """The section: key figures (estimate DIR's rows), the ranges' assumptions, notes, plots, verify."""
    from edgellm.compiler.reproject import _range
    from edgellm.report import plots
    from edgellm.report.page import _figure, _table, _verify_rows

    e, p = s.estimate, s.params
    assume = "".join(f"<li><b>{escape(end)}</b>: {escape(text)}</li>" for end, text in e.assumptions.items())
    notes = "".join(f"<li class='note'>{escape(n)}</li>"
                    for n in [*le.notes(s.src), *s.notes])
    total = total_of(s.parts.values())
    figs = [
        plots.resources_chart(s, s.parts, total),
        plots.layers(s, s.decode), plots.layers(s, s.prefill),
        plots.stages(s, s.decode, ENGINE), plots.stages(s, s.prefill, ENGINE),
    ]
    caps = [
        "Each kernel's LUT, FF, DSP, BRAM36 and URAM as a share of the board (the low-bit engine's and the "
        "vector engines' resource models, projected); dashed marks: the routing limits.",
        f"One decode step at {_design(s.board, e).decode_context} cached tokens per decoder layer (its "
        "linears on the low-bit engine, then its vector work), then the LM head and the host (projected).",
        f"Prefill of {le.PROMPT} tokens (time to first token) per layer (projected).",
        "A decode step's linears, each summed over the layers, and the vector stages (projected).",
        f"Prefill's linears and vector stages (projected; weights stream once per {p.prefill_token_block}"
        "-token block).",
    ]
    body = "".join(_figure(f, c) for f, c in zip(figs, caps, strict=True))
    ver = ""
    if s.verify is not None:
        body += _figure(plots.verify(s, s.verify), "Device vs golden model per layer and stage: green "
                        "bit-exact, yellow within tolerance, red failed (edgellm verify's results).")
        ver = f"<h3>verify</h3>{_verify_rows(s.verify)}"
    title = f"{s.cfg.name} (low-bit) on {s.board.display_name}"
    return (f"<section id='board-{escape(s.board.name)}'><h2>{escape(title)}</h2>"
            f"<p>source: {escape(s.source)}; design clock {p.clock_mhz:g} MHz; decode "
            f"{escape(_range(e.decode, '{:.1f}'))} tok/s projected (compiler/cost/lowbit.py)</p>"
            f"<h3>Key figures (projected)</h3>{_table(le.rows(s.src, e, s.board))}"
            "<h3>Assumptions behind each end of the projected ranges (central (low-high))</h3>"
            f"<ul>{assume}</ul><h3>Notes</h3><ul>{notes}</ul><div class='grid'>{body}</div>{ver}</section>")
