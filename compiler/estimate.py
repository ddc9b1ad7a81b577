"""Estimate = resources vs the board + projected decode/prefill speed as a range (low, central, high,
each with its named assumptions) + the DDR limit (docs/performance.md). Every speed here is projected;
compiler/cost/calibration.py holds the published designs the model is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgellm.boards import SCENARIOS, Board
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.memory import KINDS, Resources
from edgellm.compiler.cost.resource_model import estimate_resources
from edgellm.compiler.design import DesignParams
from edgellm.compiler.design_bytes import bits_per_weight, ddr_footprint
from edgellm.models.config import ModelConfig

TTFT_PROMPTS = (64, 128)  # prompt lengths TeLLMe reports TTFT for
# The low end of every range runs the design at this fraction of its clock (200 MHz for 250): a design
# that fills the fabric may not close timing at the board's PL clock (no timing model; policy).
LOW_CLOCK_FRACTION = 0.8
# Clocks the sensitivity is printed at, as fractions of the design's clock (225 and 200 MHz for 250).
SENSITIVITY_CLOCKS = (0.9, 0.8)
# Routing headroom: a design must leave room to place and route (DSE constraint; `edgellm estimate
# --lut-cap` changes the LUT cap). Policy: LUTs at most 75%, i.e. 5 points of margin below the 80% the
# DSE used to fill to (its KV260 designs sat at 79.3-79.7%) for routing and timing closure; no timing
# model stands behind it. For scale: TeLLMe v2 closed 250 MHz at 84% of the same part's LUTs, and
# bitnet-kv260 closed 250 MHz at 36% with 0.108 ns of slack.
UTIL_LIMITS = {"lut": 0.75, "ff": 0.85, "dsp": 0.85, "bram36": 0.85, "uram": 0.85}

@dataclass(frozen=True)
class Scenario:
    """One end (or the middle) of a projected range: the bandwidth scenario, the clock, what it assumes."""

    name: str  # "low", "central" or "high" (boards.SCENARIOS)
    clock_mhz: float
    assumes: str


def scenarios(board: Board, p: DesignParams) -> dict[str, Scenario]:
    """The named assumptions behind the low, central and high projections of design p on board."""
    def gbps(s: str) -> str:
        b = board.with_scenario(s)
        return (f"{cost_ddr.bandwidth(b, p.replace(clock_mhz=clock[s])).weights / 1e9:.1f} GB/s of weights "
                f"({b.ddr_achievable_gbps:.1f} GB/s DDR ceiling)")

    clock = {"low": round(LOW_CLOCK_FRACTION * p.clock_mhz, 1), "central": p.clock_mhz, "high": p.clock_mhz}
    text = {
        "low": "measured-class bandwidth at its worst (shared-path phases), a clock that did not close at "
               "the board's PL clock",
        # a calibration file (edgellm estimate --measured) names itself: compiler/calibrate/measured.py
        "central": board.sources.get("measured")
        or "the bandwidth measured for this port arrangement (or the board's central figure)",
        "high": "the best bandwidth measured (shared paths at their best address arrangement, every port at "
                "most its beat rate, up to the DDR ceiling)",
    }
    return {s: Scenario(s, clock[s], f"{clock[s]:g} MHz, {gbps(s)}: {text[s]}") for s in SCENARIOS}


@dataclass(frozen=True)
class Range:
    """A projected figure: central with its low and high ends (low/high: the slow and the fast end)."""

    central: float
    low: float
    high: float

    def text(self, fmt: str = "{:.1f}", unit: str = "") -> str:
        """'central (a-b)' with the ends in increasing order."""
        a, b = sorted((self.low, self.high))
        return f"{fmt.format(self.central)}{unit} ({fmt.format(a)}-{fmt.format(b)}{unit})"


@dataclass(frozen=True)
class Estimate:
    """Projected figures of one model on one board with one design. Speeds are projections."""

    model: str
    board: str
    params: DesignParams
    resources: dict[str, Resources]
    utilization: dict[str, float]
    fits: bool
    decode: cost_model.Projection
    ttft: dict[int, cost_model.Projection]
    bytes_per_token: int
    ddr_bound_tok_s: float
    ddr_achievable_gbps: float
    bits_per_weight: float
    ddr_footprint: dict[str, int]
    ddr_available: int
    fetch_fifo_bytes: int = 0  # the weight fetcher FIFOs together (0: no fetcher, overlap=False)
    extra: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)  # decode_tok_s, ttft_<n>_s, ddr_bound_tok_s
    assumptions: dict[str, Scenario] = field(default_factory=dict)
    sensitivity: dict[float, tuple[float, float]] = field(default_factory=dict)  # MHz -> (tok/s, TTFT128 s)

    @property
    def decode_tok_s(self) -> float:
        """Projected decode tokens/s at params.decode_context cached tokens."""
        return self.decode.tokens_per_s

    def summary(self) -> dict[str, Any]:
        """Flat dict for reports and manifests (labelled projected)."""
        tot = self.resources["total"]
        return {
            "model": self.model, "board": self.board,
            **{f"{k}": getattr(tot, k) for k in KINDS},
            **{f"{k}_util": round(v, 4) for k, v in self.utilization.items()},
            "fits": self.fits,
            "projected_decode_tok_s": round(self.decode_tok_s, 2),
            "decode_context": self.params.decode_context,
            "fetch_fifo_kib": self.fetch_fifo_bytes / 1024,
            **{f"projected_ttft_{n}_s": round(p.seconds, 4) for n, p in self.ttft.items()},
            "ddr_bytes_per_token": self.bytes_per_token,
            "ddr_bound_tok_s": round(self.ddr_bound_tok_s, 2),
            "ddr_achievable_gbps": self.ddr_achievable_gbps,
            "bits_per_weight": round(self.bits_per_weight, 4),
            "ddr_footprint_bytes": sum(self.ddr_footprint.values()),
            "ddr_available_bytes": self.ddr_available,
            **{f"projected_{k}_{end}": round(getattr(r, end), 4) for k, r in self.ranges.items()
               for end in ("low", "high")},
            "assumptions": {s.name: s.assumes for s in self.assumptions.values()},
            "clock_sensitivity": {f"{mhz:g} MHz": {"decode_tok_s": round(d, 2), "ttft_128_s": round(t, 4)}
                                  for mhz, (d, t) in self.sensitivity.items()},
        }


def fits_board(total: Resources, board: Board, limits: dict[str, float] = UTIL_LIMITS) -> list[str]:
    """Reasons the resources exceed the board's headroom limits (empty list: it fits)."""
    util = total.utilization(board)
    return [f"{k} {getattr(total, k):g} > {limits[k]:.0%} of {board.resource(k)}"
            for k in KINDS if util[k] > limits[k]]


def _ranges(cfg: ModelConfig, board: Board, p: DesignParams, decode: float, ttft: dict[int, float],
            assume: dict[str, Scenario]) -> dict[str, Range]:
    """decode tok/s, TTFT per prompt and the DDR bound at the low and high ends of the assumptions."""
    ends: dict[str, dict[str, float]] = {}
    for end in ("low", "high"):
        b, q = board.with_scenario(end), p.replace(clock_mhz=assume[end].clock_mhz)
        ends[end] = {"decode_tok_s": cost_model.decode_step(cfg, b, q).tokens_per_s,
                     "ddr_bound_tok_s": cost_ddr.ddr_bound_tokens_per_s(cfg, b, q),
                     **{f"ttft_{n}_s": cost_model.prefill(cfg, b, q, n).seconds for n in ttft}}
    central = {"decode_tok_s": decode, "ddr_bound_tok_s": cost_ddr.ddr_bound_tokens_per_s(cfg, board, p),
               **{f"ttft_{n}_s": t for n, t in ttft.items()}}
    return {k: Range(v, ends["low"][k], ends["high"][k]) for k, v in central.items()}


def clock_sensitivity(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[float, tuple[float, float]]:
    """Decode tok/s and TTFT(128) of p at SENSITIVITY_CLOCKS of its clock (central bandwidth)."""
    out = {}
    for frac in SENSITIVITY_CLOCKS:
        q = p.replace(clock_mhz=round(frac * p.clock_mhz, 1))
        out[q.clock_mhz] = (cost_model.decode_step(cfg, board, q).tokens_per_s,
                            cost_model.prefill(cfg, board, q, 128).seconds)
    return out


def estimate(cfg: ModelConfig, board: Board, p: DesignParams, ranges: bool = True) -> Estimate:
    """Resources, projected decode and TTFT (with their low/high ends and the clock sensitivity unless
    `ranges` is False), DDR-bound and footprint for one configuration. (A generated-engine design whose
    tables the engine would not build as given never gets here: DesignParams.validate refuses it.)"""
    res = estimate_resources(cfg, board, p)
    total = res["total"]
    decode = cost_model.decode_step(cfg, board, p)
    ttft = {n: cost_model.prefill(cfg, board, p, n) for n in TTFT_PROMPTS}
    assume = scenarios(board, p) if ranges else {}
    return Estimate(
        model=cfg.name, board=board.name, params=p, resources=res,
        utilization=total.utilization(board), fits=not fits_board(total, board),
        decode=decode, ttft=ttft,
        bytes_per_token=cost_ddr.decode_bytes_per_token(cfg, p),
        ddr_bound_tok_s=cost_ddr.ddr_bound_tokens_per_s(cfg, board, p),
        ddr_achievable_gbps=board.ddr_achievable_gbps, bits_per_weight=bits_per_weight(cfg, p),
        ddr_footprint=ddr_footprint(cfg, p), ddr_available=board.ddr_available_bytes,
        fetch_fifo_bytes=cost_model.fetch_capacity_bytes(board, p) if p.overlap else 0,
        ranges=_ranges(cfg, board, p, decode.tokens_per_s, {n: t.seconds for n, t in ttft.items()}, assume)
        if ranges else {},
        assumptions=assume, sensitivity=clock_sensitivity(cfg, board, p) if ranges else {})
