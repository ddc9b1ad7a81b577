"""Machine-readable output of `edgellm estimate --json` and `edgellm boards --json`, and the page of
`edgellm estimate --html` (docs/cli.md documents the keys)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from edgellm.boards import Board
from edgellm.compiler.dse import DseResult
from edgellm.models.config import ModelConfig

LABEL = "projected by the performance model (docs/performance.md), not measured"


def _finite(v: Any) -> Any:
    """v with non-finite floats as None (JSON has no inf or NaN), recursively."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def board_record(b: Board) -> dict[str, Any]:
    """Every field of a board (boards/<name>.toml, sources included) plus the derived DDR figures."""
    d = dataclasses.asdict(b)
    d.pop("scenario", None)
    d.update(ddr_achievable_gbps=b.ddr_achievable_gbps, ddr_available_bytes=b.ddr_available_bytes)
    return _finite(d)


def boards_record(boards: list[Board]) -> dict[str, Any]:
    """`edgellm boards --json`: {"boards": [board_record, ...]}."""
    return {"boards": [board_record(b) for b in boards]}


def estimate_record(cfg: ModelConfig, results: dict[str, DseResult | str],
                    calibration: bool = False, top: int = 0) -> dict[str, Any]:
    """`edgellm estimate --json`: the model, then per board either the chosen design with its estimate
    (summary: every projected figure with its low/high ends and assumptions; resources per kernel; the
    exploration's counts; with top, the `top` best designs it scored) or why no design fits."""
    boards: dict[str, Any] = {}
    for name, r in results.items():
        if isinstance(r, str):
            boards[name] = {"fits": False, "error": r}
            continue
        e = r.estimate
        boards[name] = {"fits": True, "summary": e.summary(), "design": e.params.to_dict(),
                        "resources": {k: dataclasses.asdict(v) for k, v in e.resources.items()},
                        "explored": r.explored, "feasible": r.feasible}
        if top:  # estimate --top N: the best designs the search scored, best first (the chosen one first)
            boards[name]["top"] = [{"decode_tok_s": d, "ttft_s": t, "chosen": p == r.params,
                                    "design": p.to_dict()} for d, t, p in r.scored[:top]]
    out: dict[str, Any] = {"label": LABEL, "model": cfg.to_dict(), "boards": boards}
    if calibration:
        from edgellm.compiler.cost.calibration import calibration as anchors

        out["calibration"] = [
            {"source": a.source, "figure": a.figure, "status": a.status, "published": list(a.published),
             "projected": dataclasses.asdict(a.projected), "error_pct": a.error, "in_range": a.in_range,
             "note": a.note} for a in anchors()]
    return _finite(out)


def write_estimate_page(path: Path, cfg: ModelConfig, results: dict[str, DseResult | str],
                        limits: dict[str, float]) -> None:
    """The report page of every board that has a design (edgellm estimate --html FILE)."""
    from edgellm.boards import load_board
    from edgellm.commands.verify import write_atomic
    from edgellm.report.gather import section
    from edgellm.report.page import page

    sections = []
    for name, r in results.items():
        if isinstance(r, DseResult):
            board = r.board or load_board(name)  # the board the exploration saw (a calibrated one included)
            sections.append(section(cfg, board, r.params, "edgellm estimate", limits, r.record()))
    boards = ", ".join(s.board.name for s in sections) or "no board"
    notes = [f"{name}: no design fits ({r})" for name, r in results.items() if isinstance(r, str)]
    write_atomic(path, page(sections, f"edgellm estimate: {cfg.name} on {boards}", notes))
