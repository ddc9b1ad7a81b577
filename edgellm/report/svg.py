"""A small SVG plotting kit for the report page: scales with ticks, axes, bars, points and lines.

No plotting library and no JavaScript: a Chart collects SVG elements in data coordinates and renders
one inline <svg> (every text escaped; <title> children give hover tooltips in any browser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#bcbd22")
FONT = "font-family:system-ui,sans-serif"


def si(v: float, digits: int = 3) -> str:
    """v with an SI suffix (1.5k, 12M, 3.2G); small values as 1.2m, 5\u00b5."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"),
                          (1e-6, "\u00b5"), (1e-9, "n")):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


@dataclass
class Scale:
    """A linear or log10 map from [lo, hi] to pixels [a, b]."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo, self.hi = max(self.lo, 1e-30), max(self.hi, 1e-30)
        if self.hi <= self.lo:
            self.hi = self.lo * 10 if self.log else self.lo + 1

    def __call__(self, v: float) -> float:
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, 1e-30))
        else:
            lo, hi = self.lo, self.hi
        return self.a + (v - lo) / (hi - lo) * (self.b - self.a)

    def ticks(self) -> list[float]:
        """Tick values: decades (and 2, 5 between few decades) for log, 1-2-5 steps for linear."""
        if self.log:
            lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            mults = (1, 2, 5) if hi - lo <= 3 else (1,)
            vals = [m * 10.0 ** e for e in range(lo, hi + 1) for m in mults]
            return [v for v in vals if self.lo * (1 - 1e-9) <= v <= self.hi * (1 + 1e-9)]
        raw = (self.hi - self.lo) / 6
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step - 1e-9) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def log_range(values: list[float], pad: float = 1.5) -> tuple[float, float]:
    """A log axis range around positive values, padded by a factor."""
    pos = [v for v in values if v > 0 and math.isfinite(v)] or [1.0]
    return min(pos) / pad, max(pos) * pad


@dataclass
class Chart:
    """One plot: pixel size, plot margins, x/y scales, and the SVG elements drawn so far."""

    ident: str
    title: str
    width: int = 560
    height: int = 360
    margin: tuple[int, int, int, int] = (34, 24, 52, 80)  # top, right, bottom, left
    parts: list[str] = field(default_factory=list)
    x: Scale | None = None
    y: Scale | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the plot area in pixels."""
        t, r, b, left = self.margin
        return left, t, self.width - r, self.height - b

    def scales(self, x: tuple[float, float], y: tuple[float, float], xlog: bool = False,
               ylog: bool = False) -> None:
        """Set the data ranges of both axes."""
        left, top, right, bottom = self.box
        self.x = Scale(*x, left, right, xlog)
        self.y = Scale(*y, bottom, top, ylog)

    def text(self, x: float, y: float, s: str, anchor: str = "start", size: int = 11, color: str = "#222",
             extra: str = "") -> None:
        """Text at pixel (x, y)."""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                          f'fill="{color}" {extra}>{escape(s)}</text>')

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, tip: str = "") -> None:
        """A filled rectangle between two pixel corners, with a tooltip."""
        x, y = min(x0, x1), min(y0, y1)
        w, h = abs(x1 - x0), abs(y1 - y0)
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}">'
                          f'{title}</rect>')

    def line(self, pts: list[tuple[float, float]], color: str, width: float = 1.5, dash: str = "",
             tip: str = "") -> None:
        """A polyline through pixel points."""
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        title = f"<title>{escape(tip)}</title>" if tip else ""
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}"'
                          f'{dashes}>{title}</polyline>')

    def point(self, x: float, y: float, color: str, r: float = 3.0, tip: str = "", ring: bool = False,
              opacity: float = 1.0) -> None:
        """A dot (or a ring) at pixel (x, y)."""
        fill = "none" if ring else color
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="{color}" '
                          f'stroke-width="{2 if ring else 0.5}" fill-opacity="{opacity}">{title}</circle>')

    def axes(self, xlabel: str, ylabel: str, xfmt=si, yfmt=si, xticks: bool = True,  # noqa: ANN001
             yticks: bool = True) -> None:
        """Axis lines, ticks with labels and light grid lines (where asked), and the axis titles."""
        left, top, right, bottom = self.box
        for axis, fmt, grid in ((self.x, xfmt, xticks), (self.y, yfmt, yticks)):
            if axis is None or not grid:
                continue
            for v in axis.ticks():
                p = axis(v)
                if axis is self.x:
                    self.line([(p, top), (p, bottom)], "#e4e4e4", 1)
                    self.text(p, bottom + 14, fmt(v), "middle", 10)
                else:
                    self.line([(left, p), (right, p)], "#e4e4e4", 1)
                    self.text(left - 5, p + 3.5, fmt(v), "end", 10)
        self.line([(left, top), (left, bottom), (right, bottom)], "#555", 1)
        self.text((left + right) / 2, self.height - 14, xlabel, "middle", 11)
        self.text(14, (top + bottom) / 2, ylabel, "middle", 11,
                  extra=f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})"')

    def legend(self, items: list[tuple[str, str]], x: float | None = None, y: float | None = None) -> None:
        """Colour swatches with names in rows from the top of the chart (wrapping; the top margin leaves
        room for two rows)."""
        left, _, right, _ = self.box
        cx, cy = (left if x is None else x), (16 if y is None else y)
        for name, color in items:
            w = 16 + 6.2 * len(name)
            if cx + w > right and cx > left:
                cx, cy = left, cy + 14
            self.rect(cx, cy - 8, cx + 10, cy + 1, color)
            self.text(cx + 13, cy, name, size=10)
            cx += w + 10

    def render(self) -> str:
        """The <svg> element."""
        head = (f'<svg id="{escape(self.ident)}" xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'style="{FONT}"><title>{escape(self.title)}</title>')
        return head + "".join(self.parts) + "</svg>"
