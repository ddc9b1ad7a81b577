"""`edgellm report`, `estimate --html/--json`, `boards --json`: the data behind the plots (time splits that
add up to the performance model's projections, roofline points under their ceilings, the explored
designs the DSE keeps), the machine-readable outputs (parsed), bad input (one line, nothing written),
and the page itself loaded in headless Chromium (skipped only where no browser is installed)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm.boards import list_boards, load_board
from edgellm.cli import app
from edgellm.compiler import dse, dse_points
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig
from edgellm.report.plots import PLOTS
from edgellm.report.roofline import roof
from edgellm.report.timing import SEQUENTIAL, VECTOR_STAGES, decode_split, prefill_split

runner = CliRunner()
CFG = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                  max_context=64, bos_id=1, eos_id=2, name="rep")
BOARD = "pynq_z2"  # the smallest design space: the real exploration takes about a second here
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _designs() -> list[DesignParams]:
    return [DesignParams(tables=15, weight_ports=2, weight_buffer="bram", prefill_token_block=16),
            DesignParams(tables=10, rows=8, weight_buffer="bram", token_lanes=2, prefill_pipeline=True),
            DesignParams(tables=10, rows=8, weight_buffer="bram", overlap=False)]


@pytest.mark.parametrize("p", _designs(), ids=["sequential", "pipelined", "serial"])
def test_time_split_adds_up_to_the_projection(p: DesignParams) -> None:
    """Per-layer times plus the final norm are the Projection's 'layers' part; the total its seconds;
    the stages are named (cost_model's program has the shape timing.py names) and sum to the layers."""
    b = load_board("kv260")
    for s, proj in ((decode_split(CFG, b, p), cost_model.decode_step(CFG, b, p)),
                    (prefill_split(CFG, b, p, 100), cost_model.prefill(CFG, b, p, 100))):
        assert math.isclose(sum(s.layers) + s.final, proj.parts["layers"], rel_tol=1e-9), s.phase
        assert math.isclose(s.total, proj.seconds, rel_tol=1e-9)
        if p.overlap:
            assert math.isclose(sum(s.stages.values()), sum(s.layers), rel_tol=1e-9)
            names = set(VECTOR_STAGES) | {"q", "k", "v", "o", "gate", "up", "down"} if s.pipelined \
                else set(SEQUENTIAL)
            assert set(s.stages) == names, s.stages
            assert s.weight_bytes > 0 and s.final > 0
    assert prefill_split(CFG, b, p, 100).pipelined == (p.prefill_pipeline and p.overlap)


def test_roofline_points_stay_under_their_ceilings() -> None:
    """Every explored design's decode and prefill: attained ops/s at most the DDR roof and the TLMM
    peak (ops over the DDR bytes the model counts, at the time it projects)."""
    b = load_board(BOARD)
    res = dse.explore(CFG, b)
    for _, _, p in res.scored + res.sample:
        for s in (decode_split(CFG, b, p), prefill_split(CFG, b, p, 128)):
            r = roof(CFG, b, p, s)
            assert 0 < r.attained_ops_s <= r.roof(r.intensity) * (1 + 1e-9), (s.phase, p)
            assert r.roof(r.intensity) <= r.peak_ops_s and r.ddr_bytes_s <= r.ddr_peak_bytes_s


def test_dse_keeps_the_explored_designs() -> None:
    """DseResult.scored: the designs scored on TTFT, the chosen one first; sample: an even spread of the
    feasible designs by decode, with their projected TTFT; record(): JSON of both."""
    b = load_board(BOARD)
    res = dse.explore(CFG, b)
    assert res.scored and res.scored[0][2] == res.params and res.board == b
    assert [t for _, t, _ in res.scored] == sorted(t for _, t, _ in res.scored)
    assert 0 < len(res.sample) <= dse_points.SAMPLE_DESIGNS and len(res.sample) <= res.feasible
    decs = [d for d, _, _ in res.sample]
    assert decs == sorted(decs) and decs[-1] > decs[0]
    for d, t, p in res.sample[::20]:
        assert math.isclose(t, cost_model.prefill(CFG, b, p, dse.TTFT_TOKENS).seconds)
        assert math.isclose(d, cost_model.decode_step(CFG, b, p).tokens_per_s)
    rec = json.loads(json.dumps(res.record()))
    assert rec["chosen"] == dse_points.design_label(res.params) and rec["feasible"] == res.feasible
    assert {r["set"] for r in rec["designs"]} == {"scored", "sample"}
    assert rec["designs"][0]["design"] == rec["chosen"]


def test_estimate_json_parses_and_matches_the_exploration() -> None:
    r = runner.invoke(app, ["estimate", "--board", BOARD, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    e = dse.explore(ModelConfig.from_dict(d["model"]), load_board(BOARD)).estimate
    got = d["boards"][BOARD]
    assert got["fits"] and got["summary"] == json.loads(json.dumps(e.summary()))
    assert got["design"] == e.params.to_dict() and set(got["resources"]) >= {"tlmm", "total"}
    assert "projected" in d["label"]


def test_estimate_json_reports_boards_without_a_design() -> None:
    from edgellm.report.records import estimate_record

    res = dse.explore(CFG, load_board(BOARD))
    d = json.loads(json.dumps(estimate_record(CFG, {BOARD: res, "zcu104": "does not fit: LUT"}, True)))
    assert d["boards"]["zcu104"] == {"fits": False, "error": "does not fit: LUT"}
    assert d["calibration"] and {"source", "figure", "projected", "in_range"} <= set(d["calibration"][0])


def test_estimate_page_notes_boards_without_a_design(tmp_path: Path) -> None:
    from edgellm.report.records import write_estimate_page

    res = dse.explore(CFG, load_board(BOARD))
    out = tmp_path / "e.html"
    write_estimate_page(out, CFG, {BOARD: res, "zcu104": "LUT 1e6 > 75% of 230400"}, {})
    html = out.read_text()
    assert "zcu104: no design fits (LUT 1e6 &gt; 75% of 230400)" in html
    assert sorted(_svg_ids(html)) == sorted(f"{n}-{BOARD}" for n in (*PLOTS, "dse"))


def test_estimate_page_uses_the_board_the_search_saw(tmp_path: Path) -> None:
    """A board given to the search with other figures than its TOML file (a calibrated one): the page's
    ceilings are that board's (the page once reloaded the TOML's)."""
    import dataclasses

    from edgellm.report.records import write_estimate_page

    b = dataclasses.replace(load_board(BOARD), ddr_pl_fraction=(0.3, 0.35, 0.4))
    out = tmp_path / "e.html"
    write_estimate_page(out, CFG, {BOARD: dse.explore(CFG, b)}, {})
    assert f"DDR the PL gets: {b.ddr_achievable_gbps:.1f} GB/s" in out.read_text()
    assert f"{load_board(BOARD).ddr_achievable_gbps:.1f} GB/s" != f"{b.ddr_achievable_gbps:.1f} GB/s"


def test_estimate_html_bad_path_is_one_line(tmp_path: Path) -> None:
    for target in (tmp_path / "nope" / "e.html", tmp_path):
        r = subprocess.run(["edgellm", "estimate", "--board", BOARD, "--html", str(target)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("error: --html") and not r.stdout, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_boards_json_parses() -> None:
    r = runner.invoke(app, ["boards", "--json"])
    assert r.exit_code == 0, r.output
    got = {b["name"]: b for b in json.loads(r.stdout)["boards"]}
    assert list(got) == list_boards()
    for name, b in got.items():
        want = load_board(name)
        assert (b["lut"], b["part"]) == (want.lut, want.part)
        assert b["ddr_pl_fraction"] == list(want.ddr_pl_fraction)
        assert b["sources"] == want.sources and b["ddr_achievable_gbps"] == want.ddr_achievable_gbps


# ---- the page -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random model compiled for BOARD (the real exploration), with verify results as
    `edgellm verify --json` writes them (built through runtime.verify.Report; one failing row)."""
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model
    from edgellm.runtime.verify import STAGES, Report, Row

    d = tmp_path_factory.mktemp("report")
    ckpt = save_hf_bitnet(random_model(CFG, seed=5, density=0.5), d / "ckpt")
    run_steps(BuildConfig(model=str(ckpt), board=BOARD, out_dir=str(d / "proj"), reference_onnx=False,
                          reference_new_tokens=2), compile_steps())
    rep = Report(str(d / "proj"), "emulator (C simulation)", [1, 2, 3])
    rep.rows += [Row("device vs golden", f"L{i}.{s}", 0.0, 0, True)
                 for i in range(CFG.n_layers) for s in STAGES]
    rep.rows[3] = Row("device vs golden", rep.rows[3].stage, 0.5, 12, False, False, "differs")
    rep.rows.append(Row("onnx vs golden", "logits", 1e-6, 3, False, True, "tol 1e-4"))
    (d / "proj" / "report" / "build").mkdir(parents=True)
    (d / "proj" / "report" / "build" / "verify.json").write_text(json.dumps(rep.to_dict()))
    return d / "proj"


def _svg_ids(html: str) -> list[str]:
    return re.findall(r'<svg id="([^"]+)"', html)


def _check_self_contained(html: str) -> None:
    """No script, no stylesheet or image link, nothing fetched; every inline SVG is well-formed XML."""
    low = html.lower()
    for bad in ("<script", "<link", "<img", "<iframe", "url(", "http://", "https://", "@import"):
        assert bad not in low.replace('xmlns="http://www.w3.org/2000/svg"', ""), bad
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        ET.fromstring(svg)


def test_report_writes_a_self_contained_page(project: Path) -> None:
    from edgellm.runtime.project import Project

    r = runner.invoke(app, ["report", str(project)])
    assert r.exit_code == 0, r.output
    page = project / "report" / "build" / "report.html"
    html = page.read_text()
    _check_self_contained(html)
    ids = _svg_ids(html)
    assert sorted(ids) == sorted(f"{n}-{BOARD}" for n in (*PLOTS, "dse", "verify"))
    assert "Projected, not measured" in html and "differs" in html and "FAIL" in html
    for end in ("low", "central", "high"):  # the range's assumptions are on the page
        assert f"<b>{end}</b>:" in html
    Project.open(project)  # the project is still a valid closed set, hashes included


def test_report_without_recorded_designs_or_verify(project: Path, tmp_path: Path) -> None:
    """A project compiled before the DSE record (no 'dse' in report/estimate.json), no verify file: the
    page has the other plots and says why the explored designs are missing."""
    copy = tmp_path / "old"
    shutil.copytree(project, copy)
    shutil.rmtree(copy / "report" / "build")
    est = json.loads((copy / "report" / "estimate.json").read_text())
    del est["dse"]
    (copy / "report" / "estimate.json").write_text(json.dumps(est))
    out = tmp_path / "page.html"
    r = runner.invoke(app, ["report", str(copy), "-o", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert sorted(_svg_ids(html)) == sorted(f"{n}-{BOARD}" for n in PLOTS)
    assert "does not record the explored designs" in html
    assert not (copy / "report" / "build").exists()  # -o: nothing written into the project


@pytest.mark.parametrize("case", ["no-project", "bad-verify", "verify-not-json", "out-dir-missing",
                                  "out-is-dir"])
def test_report_bad_input_one_line(project: Path, tmp_path: Path, case: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": [{"pair": "x"}]}' if case == "bad-verify" else "{not json")
    args = {"no-project": [str(tmp_path)],
            "bad-verify": [str(project), "--verify", str(bad), "-o", str(tmp_path / "p.html")],
            "verify-not-json": [str(project), "--verify", str(bad), "-o", str(tmp_path / "p.html")],
            "out-dir-missing": [str(project), "-o", str(tmp_path / "nope" / "p.html")],
            "out-is-dir": [str(project), "-o", str(tmp_path)]}[case]
    r = subprocess.run(["edgellm", "report", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "p.html").exists() and not list(tmp_path.glob(".p.html*"))


def _browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _load(browser: str, page: Path, shot: Path, profile: Path) -> tuple[str, str]:
    """(the DOM after load, the browser's log) of `page` in headless Chromium, offline, and a screenshot."""
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--no-first-run", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,4200"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    pic = subprocess.run([*args, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert pic.returncode == 0, pic.stderr[-2000:]
    return dom.stdout, dom.stderr + pic.stderr


@pytest.mark.skipif(_browser() is None, reason="no Chromium installed (apt-get install chromium)")
def test_pages_in_a_real_browser(project: Path, tmp_path: Path) -> None:
    """The report and estimate --html pages in headless Chromium: no console message (the pages have no
    script: any message is an error), every plot in the DOM, a screenshot written."""
    pages = {"report": (project / "report" / "build" / "report.html", (*PLOTS, "dse", "verify")),
             "estimate": (tmp_path / "estimate.html", (*PLOTS, "dse"))}
    r = runner.invoke(app, ["report", str(project)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["estimate", "--board", BOARD, "--html", str(pages["estimate"][0])])
    assert r.exit_code == 0, r.output
    for name, (page, plots) in pages.items():
        shot = tmp_path / f"{name}.png"
        dom, log = _load(_browser() or "", page, shot, tmp_path / f"profile-{name}")
        console = [ln for ln in log.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
        assert not console, console
        assert sorted(_svg_ids(dom)) == sorted(f"{n}-{BOARD}" for n in plots), name
        assert dom.count("<svg") == len(plots)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, (name, len(data))
        print(f"{name}: screenshot {shot} ({len(data):,} bytes)")
