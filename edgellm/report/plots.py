"""The report's plots, one function each, from a Section: SVG strings (edgellm.report.svg).

Plot ids: <name>-<board> (resources, roofline-decode, roofline-prefill, layers-decode, layers-prefill,
stages-decode, stages-prefill, dse, verify); PLOTS lists the names every section has.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edgellm.compiler.cost.memory import KINDS, Resources
from edgellm.report.gather import Section
from edgellm.report.roofline import Roof
from edgellm.report.svg import PALETTE, Chart, Scale, log_range, si
from edgellm.report.timing import TimeSplit

PLOTS = ("resources", "roofline-decode", "roofline-prefill", "layers-decode", "layers-prefill",
         "stages-decode", "stages-prefill")
KIND_LABEL = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram36": "BRAM36", "uram": "URAM"}
OK, FAIL, SOFT = "#59a14f", "#e15759", "#edc948"
W = 570  # plot width in pixels: two plots side by side on the page


def plot_id(name: str, s: Section) -> str:
    """The element id of plot `name` in section s."""
    return f"{name}-{re.sub(r'[^A-Za-z0-9_-]', '_', s.board.name)}"


def seconds(v: float) -> str:
    """Seconds with an SI prefix (12.3 ms)."""
    return f"{si(v)}s"


def resources(s: Section) -> str:
    """Stacked bars: each kernel's share of each resource, as % of the board, with the routing limits."""
    parts = {k: r for k, r in s.estimate.resources.items() if k != "total"}
    return resources_chart(s, parts, s.estimate.resources["total"])


def resources_chart(s: Section, parts: dict[str, Resources], total: Resources) -> str:
    """resources' chart of any section (s.board, s.limits): parts stacked, total's share labelled."""
    kinds = [k for k in KINDS if s.board.resource(k) > 0]
    util = {k: 100 * getattr(total, k) / s.board.resource(k) for k in kinds}
    c = Chart(plot_id("resources", s), "Resources per kernel against the board (projected)", W,
              60 + 34 * len(kinds) + 40, (60, 24, 40, 70))
    c.scales((0, max(100.0, *util.values()) * 1.04), (0, len(kinds)))
    c.axes("% of the board's resources (projected)", "", xfmt=lambda v: f"{v:g}%", yticks=False)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(parts)}
    c.legend([(n, colors[n]) for n in parts])
    assert c.x is not None and c.y is not None
    for i, k in enumerate(kinds):
        row, have = len(kinds) - 1 - i, s.board.resource(k)
        y0, y1 = c.y(row + 0.2), c.y(row + 0.8)
        acc = 0.0
        for name, r in parts.items():
            v = getattr(r, k)
            if v <= 0:
                continue
            c.rect(c.x(acc), y0, c.x(acc + 100 * v / have), y1, colors[name],
                   f"{name}: {v:,.1f} {KIND_LABEL[k]} ({100 * v / have:.1f}% of {have:,}), projected")
            acc += 100 * v / have
        c.text(c.box[0] - 6, (y0 + y1) / 2 + 4, KIND_LABEL[k], "end", 11)
        lim = 100 * s.limits.get(k, 1.0)
        at = acc if c.x(acc) + 34 < c.x(lim) or acc > lim else lim  # beside the bar unless the mark is there
        c.text(c.x(at) + 4, (y0 + y1) / 2 + 4, f"{util[k]:.0f}%", size=10)
        c.line([(c.x(lim), y1 - 3), (c.x(lim), y0 + 3)], "#222", 2, "4 2",
               f"routing limit for {KIND_LABEL[k]}: {lim:g}% (the design-space exploration's cap)")
    c.line([(c.x(100), c.box[1]), (c.x(100), c.box[3])], "#999", 1, tip="100% of the board")
    return c.render()


def roofline(s: Section, r: Roof) -> str:
    """Log-log roofline of one phase: DDR (achievable, peak) and TLMM ceilings and the projected point."""
    ident = plot_id(f"roofline-{r.phase}", s)
    c = Chart(ident, f"Roofline of {r.phase} (projected)", W, 390, (60, 24, 52, 80))
    ridge = r.peak_ops_s / r.ddr_bytes_s
    xs = log_range([r.intensity, ridge, ridge * 10, r.intensity / 10], 1.2)
    c.scales(xs, log_range([r.peak_ops_s * 2, r.attained_ops_s, r.ddr_bytes_s * xs[0]], 1.3), True, True)
    c.axes("arithmetic intensity (ops per DDR byte)", "ops/s", yfmt=lambda v: f"{si(v)}")
    assert c.x is not None and c.y is not None
    grid = [xs[0] * (xs[1] / xs[0]) ** (i / 60) for i in range(61)]
    for bw, color, dash, name in ((r.ddr_peak_bytes_s, "#999", "5 3", "DDR theoretical peak"),
                                  (r.ddr_bytes_s, PALETTE[0], "", "DDR the PL gets (central)")):
        tip = f"{name}: {bw / 1e9:.1f} GB/s"
        c.line([(c.x(x), c.y(min(r.peak_ops_s, x * bw))) for x in grid], color, 2, dash, tip)
    lanes = "1 token lane" if r.phase == "decode" else "every token lane"
    c.line([(c.box[0], c.y(r.peak_ops_s)), (c.box[2], c.y(r.peak_ops_s))], PALETTE[1], 1.5, "6 3",
           f"TLMM peak ({lanes}): {si(r.peak_ops_s)}op/s")
    c.point(c.x(r.intensity), c.y(r.attained_ops_s), PALETTE[3], 6,
            f"{r.phase}: {si(r.attained_ops_s)}op/s at {r.intensity:.3g} op/B (projected)")
    px = c.x(r.intensity)
    c.text(px + (9 if px < c.box[2] - 200 else -9), c.y(r.attained_ops_s) + 4,
           f"{r.phase} ({r.tokens} token{'s' if r.tokens > 1 else ''}): {si(r.attained_ops_s)}op/s",
           "start" if px < c.box[2] - 200 else "end", 11, PALETTE[3])
    c.legend([(f"DDR the PL gets: {r.ddr_bytes_s / 1e9:.1f} GB/s", PALETTE[0]),
              (f"DDR peak: {r.ddr_peak_bytes_s / 1e9:.1f} GB/s", "#999"),
              (f"TLMM peak ({lanes}): {si(r.peak_ops_s)}op/s", PALETTE[1])])
    return c.render()


def layers(s: Section, t: TimeSplit) -> str:
    """Bars: time per decoder layer, then the final norm, the LM head and the host."""
    names = [f"L{i}" for i in range(len(t.layers))] + ["norm", "head", "host"]
    vals = [*t.layers, t.final, t.lm_head, t.host]
    c = Chart(plot_id(f"layers-{t.phase}", s), f"Time per layer, {t.phase} (projected)", W, 300,
              (30, 24, 56, 80))
    c.scales((0, len(vals)), (0, max(vals) * 1.1 or 1))
    c.axes("", "seconds (projected)", yfmt=seconds, xticks=False)
    assert c.x is not None and c.y is not None
    bar = c.x(1) - c.x(0)  # pixels per bar
    step = max(1, math.ceil(14 / bar))  # a layer label every `step` bars where they would crowd
    for i, (n, v) in enumerate(zip(names, vals, strict=True)):
        color = PALETTE[0] if i < len(t.layers) else PALETTE[1 + i - len(t.layers)]
        c.rect(c.x(i + 0.12), c.y(0), c.x(i + 0.88), c.y(v), color, f"{n}: {seconds(v)} (projected)")
        if i % step == 0 or i >= len(t.layers):
            x, y = c.x(i + 0.5), c.box[3] + 14
            if bar >= 30:
                c.text(x, y, n, "middle", 10)
            else:  # narrow bars: labels slanted below them
                c.text(x + 3, y - 4, n, "end", 10, extra=f'transform="rotate(-45 {x + 3:.1f} {y - 4:.1f})"')
    c.text(c.box[0], c.margin[0] - 12, f"total {seconds(t.total)} for {t.tokens} token"
           f"{'s' if t.tokens > 1 else ''}", size=11)
    return c.render()


def stages(s: Section, t: TimeSplit, engine: str = "TLMM") -> str:
    """Horizontal bars: each stage of a layer, summed over every layer (and block); engine names the
    matmul engine the linears run on (the legend)."""
    items = list(t.stages.items())
    c = Chart(plot_id(f"stages-{t.phase}", s), f"Time per stage, {t.phase} (projected)", W,
              50 + 22 * len(items) + 40, (30, 70, 40, 190))
    c.scales((0, max(v for _, v in items) * 1.05 or 1), (0, len(items)))
    c.axes("seconds over every layer (projected)", "", xfmt=seconds, yticks=False)
    assert c.x is not None and c.y is not None
    total = sum(v for _, v in items) or 1.0
    for row, (name, v) in enumerate(items):
        y0, y1 = c.y(len(items) - row - 0.15), c.y(len(items) - row - 0.85)
        linear = name in ("q", "k", "v", "o", "gate", "up", "down")
        c.rect(c.x(0), y0, c.x(v), y1, PALETTE[0] if linear else PALETTE[2],
               f"{name}: {seconds(v)} ({100 * v / total:.1f}%), projected")
        c.text(c.box[0] - 6, (y0 + y1) / 2 + 4, name, "end", 10)
        c.text(c.x(v) + 4, (y0 + y1) / 2 + 4, f"{100 * v / total:.0f}%", size=10)
    c.legend([(f"{engine} linears", PALETTE[0]), ("element-wise / attention", PALETTE[2])])
    return c.render()


def dse(s: Section, d: dict[str, Any]) -> str:
    """Scatter of the explored designs: TTFT against decode tok/s, the chosen design marked."""
    rows = d["designs"]
    n = d.get("ttft_tokens", 128)
    e = s.estimate
    dec_r, ttft_r = e.ranges.get("decode_tok_s"), e.ranges.get(f"ttft_{n}_s")
    chosen = (e.decode_tok_s, e.ttft[n].seconds if n in e.ttft else rows[0]["ttft_s"])
    xs = [r["ttft_s"] for r in rows] + [chosen[1]] + ([ttft_r.low, ttft_r.high] if ttft_r else [])
    ys = [r["decode_tok_s"] for r in rows] + [chosen[0]] + ([dec_r.low, dec_r.high] if dec_r else [])
    c = Chart(plot_id("dse", s), "Explored designs (projected)", W, 410, (60, 24, 52, 80))
    span = max(xs) / max(min(xs), 1e-12)
    c.scales((min(xs) / 1.1, max(xs) * 1.1) if span > 20 else (0, max(xs) * 1.08), (0, max(ys) * 1.08),
             xlog=span > 20)
    c.axes(f"TTFT for a {n}-token prompt (s, projected)", "decode tok/s (projected)", xfmt=seconds)
    assert c.x is not None and c.y is not None
    for kind, color, r in (("sample", PALETTE[9], 2.5), ("scored", PALETTE[0], 3.5)):
        for row in (x for x in rows if x["set"] == kind):
            tip = f"{row['design']}: {row['decode_tok_s']:g} tok/s, TTFT {seconds(row['ttft_s'])}"
            c.point(c.x(row["ttft_s"]), c.y(row["decode_tok_s"]), color, r, tip, opacity=0.75)
    cx, cy = c.x(chosen[1]), c.y(chosen[0])
    if dec_r and ttft_r:
        c.line([(cx, c.y(dec_r.low)), (cx, c.y(dec_r.high))], PALETTE[3], 1.5,
               tip=f"decode {dec_r.text()} tok/s (projected)")
        c.line([(c.x(ttft_r.low), cy), (c.x(ttft_r.high), cy)], PALETTE[3], 1.5,
               tip=f"TTFT {ttft_r.text('{:.4f}', ' s')} (projected)")
    c.point(cx, cy, PALETTE[3], 8, f"chosen: {d['chosen']}: {chosen[0]:.1f} tok/s, TTFT {seconds(chosen[1])}",
            ring=True)
    right = cx > (c.box[0] + c.box[2]) / 2
    ty = cy - 12 if cy - 26 > c.box[1] else cy + 22  # below the point when it is near the top
    c.text(cx + (-12 if right else 12), ty, f"chosen: {chosen[0]:.1f} tok/s, {seconds(chosen[1])}",
           "end" if right else "start", 11, PALETTE[3], 'font-weight="bold"')
    c.legend([("sampled feasible designs", PALETTE[9]), ("designs scored on TTFT", PALETTE[0]),
              ("chosen (whiskers: low-high range)", PALETTE[3])])
    return c.render()


def verify(s: Section, d: dict[str, Any]) -> str:
    """Grid of the layer x stage comparisons (device vs golden): green exact, yellow within tolerance, red
    failed."""
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    for r in d["rows"]:
        m = re.fullmatch(r"L(\d+)\.(\w+)", r["stage"])
        if m:
            cells[(int(m.group(1)), m.group(2))] = r
    nl = max((i for i, _ in cells), default=-1) + 1
    names = list(dict.fromkeys(st for _, st in sorted(cells, key=lambda k: k[0])))
    c = Chart(plot_id("verify", s), "verify: device vs golden per layer and stage", W,
              60 + 22 * max(nl, 1) + 30, (40, 24, 30, 70))
    c.y = Scale(0, max(nl, 1), c.box[1], c.box[3])
    c.x = Scale(0, max(len(names), 1), c.box[0], c.box[2])
    for j, st in enumerate(names):
        c.text(c.x(j + 0.5), c.box[1] - 6, st, "middle", 10)
    for i in range(nl):
        c.text(c.box[0] - 6, c.y(i + 0.5) + 4, f"L{i}", "end", 10)
        for j, st in enumerate(names):
            r = cells.get((i, st))
            if r is None:
                continue
            color = FAIL if not r["ok"] else OK if r.get("exact") else SOFT
            tip = (f"L{i}.{st} {r['pair']}: {'pass' if r['ok'] else 'FAIL'}, max |err| {r.get('max_abs')}, "
                   f"max ULP {r.get('max_ulp')}" + (f", {r['note']}" if r.get("note") else ""))
            c.rect(c.x(j) + 2, c.y(i) + 2, c.x(j + 1) - 2, c.y(i + 1) - 2, color, tip)
            label = "exact" if r.get("exact") else f"{r.get('max_ulp')} ULP" if r.get("max_ulp") is not None \
                else "pass" if r["ok"] else "FAIL"
            c.text(c.x(j + 0.5), c.y(i + 0.5) + 4, label, "middle", 10, "#fff" if color != SOFT else "#222")
    return c.render()
