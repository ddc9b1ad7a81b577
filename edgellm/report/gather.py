"""What the report page shows, gathered from a design-space exploration or from a compiled project.

A Section is one model on one board with one design: its estimate (resources per kernel, projected
speed with its range and assumptions), the decode and prefill time split by layer and stage, their
roofline points, the explored designs (DseResult.record(), which compile keeps in report/estimate.json
"dse") and, for a project, `edgellm verify --json` results when there are some.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgellm.boards import Board
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import TTFT_PROMPTS, UTIL_LIMITS, Estimate, estimate
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.report.roofline import Roof, roof
from edgellm.report.timing import TimeSplit, decode_split, prefill_split
from edgellm.runtime import jsonfile

if TYPE_CHECKING:
    from edgellm.report.lowbit import LowbitSection

ESTIMATE_FILE = "report/estimate.json"  # written by compile (compiler/steps.py step_report)
VERIFY_FILE = "report/build/verify.json"  # where the report looks for `edgellm verify --json` results
PAGE_FILE = "report/build/report.html"  # the page's default place in a project (a build-output folder)
MAX_JSON_BYTES = 16 << 20  # a report input larger than this is refused (no project writes one)
PREFILL_TOKENS = max(TTFT_PROMPTS)  # the prompt whose prefill is split and put on the roofline


@dataclass
class Section:
    """One model on one board with one design, and everything the page draws for it."""

    cfg: ModelConfig
    board: Board
    params: DesignParams
    estimate: Estimate
    decode: TimeSplit
    prefill: TimeSplit
    roofs: list[Roof]
    limits: dict[str, float]
    source: str
    dse: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def section(cfg: ModelConfig, board: Board, p: DesignParams, source: str,
            limits: dict[str, float] | None = None, dse: dict[str, Any] | None = None,
            verify: dict[str, Any] | None = None) -> Section:
    """Estimate design p and split its decode step and PREFILL_TOKENS-token prefill."""
    e = estimate(cfg, board, p)
    dec, pre = decode_split(cfg, board, p), prefill_split(cfg, board, p, PREFILL_TOKENS)
    return Section(cfg, board, p, e, dec, pre, [roof(cfg, board, p, dec), roof(cfg, board, p, pre)],
                   {**UTIL_LIMITS, **(limits or {})}, source, dse, verify)


def read_json(path: Path, what: str) -> Any:
    """A JSON file (a regular file, at most MAX_JSON_BYTES); EdgeLLMError naming it otherwise."""
    from edgellm.runtime.project_files import open_regular

    try:
        with open_regular(path) as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except EdgeLLMError as e:
        raise EdgeLLMError(f"{what}: {e}") from None
    except OSError as e:
        raise EdgeLLMError(f"{what} {path}: {e.strerror or e}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise EdgeLLMError(f"{what} {path}: larger than {MAX_JSON_BYTES >> 20} MiB; not a report file")
    try:
        return jsonfile.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EdgeLLMError(f"{what} {path}: not valid JSON ({' '.join(str(e).split())[:160]})") from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_dse(d: Any) -> str | None:
    """Why d is not a DseResult.record() (None: it is one)."""
    if not isinstance(d, dict) or not isinstance(d.get("designs"), list):
        return "no 'designs' list"
    for i, r in enumerate(d["designs"]):
        if not (isinstance(r, dict) and _number(r.get("decode_tok_s")) and _number(r.get("ttft_s"))
                and r.get("set") in ("scored", "sample") and isinstance(r.get("design"), str)):
            return f"design {i} is not {{decode_tok_s, ttft_s, set, design}}"
    if not isinstance(d.get("chosen"), str):
        return "no 'chosen' design"
    return None


def check_verify(d: Any) -> str | None:
    """Why d is not `edgellm verify --json` output (None: it is)."""
    if not isinstance(d, dict) or not isinstance(d.get("rows"), list):
        return "not an object with a 'rows' list"
    for i, r in enumerate(d["rows"]):
        if not (isinstance(r, dict) and isinstance(r.get("pair"), str) and isinstance(r.get("stage"), str)
                and isinstance(r.get("ok"), bool)):
            return f"row {i} lacks pair, stage or ok"
        for k in ("max_abs", "max_ulp"):
            if r.get(k) is not None and not _number(r[k]):
                return f"row {i}: {k} is not a number"
    return None


def _board(d: Any, where: str) -> Board:
    """The Board the manifest recorded (the figures the design was sized for), checked as a board file is
    (boards.board_from_record)."""
    from edgellm.boards import board_from_record

    return board_from_record(d, where)


def project_section(path: Path, verify_file: Path | None = None) -> Section | LowbitSection:
    """The Section of a compiled project: its manifest's model, board and design (the manifest and the
    closed file set are checked, not the hashes; compiler/reproject.py open_design), the explored designs
    compile recorded, and verify results from verify_file (default: VERIFY_FILE in the project when
    present). A low-bit design's is a LowbitSection (report/lowbit.py: the low-bit engine's model)."""
    from edgellm.compiler.reproject import open_design

    d = open_design(path)
    notes: list[str] = []
    recorded = None
    if (path / ESTIMATE_FILE).exists():
        recorded = read_json(path / ESTIMATE_FILE, "the project's estimate")
    else:
        notes.append(f"the project has no {ESTIMATE_FILE}")
    verify = None
    vf = verify_file if verify_file is not None else path / VERIFY_FILE
    if verify_file is not None or vf.exists():
        verify = read_json(vf, "verify results")
        why = check_verify(verify)
        if why is not None:
            raise EdgeLLMError(f"verify results {vf}: {why} (expected `edgellm verify --json` output)")
    if d.lowbit is not None:
        from edgellm.report.lowbit import lowbit_section, recorded_note

        limits = {**UTIL_LIMITS, **d.limits}
        ls = lowbit_section(d.cfg, d.board, d.params, d.lowbit, str(path), limits, verify)
        ls.notes += [*notes, *filter(None, [recorded_note(recorded, ls.estimate)])]
        return ls
    dse = None
    if recorded is not None:
        why = check_dse(recorded.get("dse") if isinstance(recorded, dict) else None)
        if why is None:
            dse = recorded["dse"]
        else:
            notes.append(f"{ESTIMATE_FILE} does not record the explored designs ({why}); recompile the "
                         "project with this edgellm to plot them")
    s = section(d.cfg, d.board, d.params, str(path), d.limits, dse, verify)
    s.notes += notes
    if isinstance(recorded, dict) and _number(recorded.get("projected_decode_tok_s")):
        was, now = recorded["projected_decode_tok_s"], s.estimate.decode_tok_s
        if abs(was - now) > 0.005 * max(abs(now), 1e-9):
            s.notes.append(f"compile projected {was:g} tok/s decode ({ESTIMATE_FILE}); this edgellm's "
                           f"performance model projects {now:.2f} for the same design (the model changed)")
    return s
