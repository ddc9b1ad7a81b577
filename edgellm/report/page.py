"""The report page: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

import datetime as _dt
from html import escape
from typing import Any

import edgellm
from edgellm.report import plots
from edgellm.report.gather import PREFILL_TOKENS, Section
from edgellm.report.lowbit import LowbitSection
from edgellm.report.lowbit import section_html as lowbit_section_html
from edgellm.report.svg import si

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:0 0 4px}
.banner{background:#fff6dd;border:1px solid #e8c95a;padding:8px 12px;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:18px} figure{margin:0;flex:0 0 auto}
figcaption{font-size:.85em;color:#555;max-width:570px;margin-top:2px}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.fail td{background:#fdd}
.note{color:#7a5a00} code{background:#f3f3f3;padding:0 3px}
"""


def _table(rows: list[tuple[str, str]], cls: str = "") -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td class='num'>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table class='{cls}'>{body}</table>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _summary(s: Section) -> str:
    """Key figures (edgellm estimate's rows), the range's assumptions and the notes."""
    from edgellm.commands.estimate import estimate_rows

    e = s.estimate
    assume = "".join(f"<li><b>{escape(a.name)}</b>: {escape(a.assumes)}</li>" for a in e.assumptions.values())
    notes = "".join(f"<li class='note'>{escape(n)}</li>"
                    for n in [*s.notes, *s.decode.notes, *s.prefill.notes])
    return (f"<h3>Key figures (projected)</h3>{_table(estimate_rows(e, s.board))}"
            "<h3>Assumptions behind each end of the projected ranges (central (low-high))</h3>"
            f"<ul>{assume}</ul>" + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else ""))


def _num(v: Any) -> str:
    """A verify figure: '-' for none, 3 significant digits for a float."""
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else escape(str(v))


def _verify_rows(d: dict[str, Any]) -> str:
    """The verify rows that are not per-layer taps (logits, argmax/top-k, greedy tokens, onnx)."""
    rows = [r for r in d["rows"] if not (r["stage"][:1] == "L" and "." in r["stage"])]
    body = "".join(
        f"<tr class='{'ok' if r['ok'] else 'fail'}'><td>{escape(r['pair'])}</td><td>{escape(r['stage'])}</td>"
        f"<td class='num'>{_num(r.get('max_abs'))}</td>"
        f"<td class='num'>{_num(r.get('max_ulp'))}</td><td>{'pass' if r['ok'] else 'FAIL'}</td>"
        f"<td>{escape(str(r.get('note', '')))}</td></tr>" for r in rows)
    n_ok = sum(r["ok"] for r in d["rows"])
    return (f"<p>{n_ok} of {len(d['rows'])} checks passed (device: {escape(str(d.get('device', '?')))}; "
            f"measured by <code>edgellm verify</code>, not projected).</p>"
            "<table><tr><th>pair</th><th>stage</th><th>max |err|</th><th>max ULP</th><th>result</th>"
            f"<th>note</th></tr>{body}</table>")


def section_html(s: Section | LowbitSection) -> str:
    """One board's part of the page: summary, then every plot with its caption (a low-bit design's:
    report/lowbit.py)."""
    if isinstance(s, LowbitSection):
        return lowbit_section_html(s)
    e, p = s.estimate, s.params
    dec, pre = s.roofs
    figs = [
        _figure(plots.resources(s), "Each kernel's LUT, FF, DSP, BRAM36 and URAM as a share of the board "
                "(resource model, projected); dashed marks: the routing limits the exploration keeps under."),
        _figure(plots.roofline(s, dec), f"Decode step at {p.decode_context} cached tokens: {si(dec.ops)}op "
                f"over {si(dec.nbytes)}B of DDR traffic in {plots.seconds(dec.seconds)} (projected). A "
                "decode step uses one TLMM token lane."),
        _figure(plots.roofline(s, pre), f"Prefill of {PREFILL_TOKENS} tokens: {si(pre.ops)}op over "
                f"{si(pre.nbytes)}B in {plots.seconds(pre.seconds)} (projected; weights stream once per "
                f"{p.prefill_token_block}-token block)."),
        _figure(plots.layers(s, s.decode), "One decode step per decoder layer, then the final norm, the LM "
                "head and the host's call and sampling (performance model, projected; a layer's time "
                "includes its waits for weights)."),
        _figure(plots.layers(s, s.prefill), f"Prefill of {PREFILL_TOKENS} tokens (time to first token) per "
                "layer (projected)."),
        _figure(plots.stages(s, s.decode), "A decode step's stages summed over the layers (projected)."),
        _figure(plots.stages(s, s.prefill), "Prefill's stages summed over the layers (projected)"
                + ("; with the prefill pipeline the TLMM and the vector engines overlap, so a vector stage "
                   "shows only the time it adds beyond the linears it runs beside." if s.prefill.pipelined
                   else ".")),
    ]
    if s.dse is not None:
        d = s.dse
        figs.append(_figure(plots.dse(s, d), f"{d.get('feasible', '?')} feasible designs of "
                            f"{d.get('explored', '?')} explored; shown: the designs scored on TTFT and an "
                            "even spread of the others by decode speed (performance model, projected). Ring: "
                            "the chosen design; hover a point for its parameters."))
    ver = ""
    if s.verify is not None:
        figs.append(_figure(plots.verify(s, s.verify), "Device vs golden model per layer and stage: green "
                            "bit-exact, yellow within tolerance, red failed (edgellm verify's results)."))
        ver = f"<h3>verify</h3>{_verify_rows(s.verify)}"
    title = f"{s.cfg.name} on {s.board.display_name}"
    return (f"<section id='board-{escape(s.board.name)}'><h2>{escape(title)}</h2>"
            f"<p>source: {escape(s.source)}; design clock {p.clock_mhz:g} MHz; decode "
            f"{escape(e.ranges['decode_tok_s'].text('{:.1f}') if 'decode_tok_s' in e.ranges else '')} "
            f"tok/s projected</p>{_summary(s)}<div class='grid'>{''.join(figs)}</div>{ver}</section>")


def page(sections: list[Section | LowbitSection], title: str, notes: list[str] | None = None) -> str:
    """The whole HTML page (with links to the sections when there are several, and page-wide notes)."""
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = [escape(s.board.name) for s in sections]
    links = " | ".join(f"<a href='#board-{n}'>{n}</a>" for n in names)
    body = (f"<p>{links}</p>" if len(sections) > 1 else "") + "".join(
        f"<p class='note'>{escape(n)}</p>" for n in notes or []) + "".join(section_html(s) for s in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><h1>{escape(title)}</h1>
<p>edgellm {escape(edgellm.__version__)}, {when}</p>
<p class="banner"><b>Projected, not measured.</b> Every speed, time and resource figure on this page comes
from edgellm's performance and resource models (docs/performance.md), with the assumptions listed beside it;
none was measured on a board or reported by Vitis HLS or Vivado. Only the verify results (when shown) are
measurements, of the C simulation or the board against the golden model.</p>
{body}</body></html>
"""
