"""A compiled low-bit project re-projected through the low-bit engine's model (compiler/reproject_lowbit.py,
lowbit_estimate.estimate_design), not refused and not priced as ternary: `edgellm estimate DIR`, `edgellm
estimate DIR --check` and `edgellm build`'s re-projection against build summaries in the shape
compiler/build_reports.write_summary writes (fixtures, not tool outputs: tests/test_estimate_built.py's),
and `edgellm report DIR`. The manifest records the tensor formats compile projected (weights.lowbit_model);
a manifest without them is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from shared_build import build_summary, write_summary
from shared_lowbit_models import tiny_checkpoints
from typer.testing import CliRunner

from edgellm.boards import SCENARIOS
from edgellm.cli import app
from edgellm.compiler import lowbit_estimate as le
from edgellm.compiler.build_reports import BUILD_REPORTS, SUMMARY
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.reproject import open_design, reproject

runner = CliRunner()
BOARD = "kv260"
KINDS = ("llama-Q4_K_M", "qwen2-gptq")
WIDE = {"COLUMNS": "300"}  # the table on one line a row (rich reads COLUMNS)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """kind -> (checkpoint, its project compiled for BOARD)."""
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps

    d = tmp_path_factory.mktemp("lowbit_reproject")
    out = {}
    for kind, ckpt in tiny_checkpoints(d).items():
        proj = d / f"proj-{kind}"
        run_steps(BuildConfig(model=str(ckpt), board=BOARD, out_dir=str(proj), reference_onnx=False,
                              reference_new_tokens=2), compile_steps())
        out[kind] = (ckpt, proj)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_records_the_formats_compile_projected(built: dict, kind: str) -> None:
    """The manifest's weights.lowbit_model is the checkpoint's LowbitSource; estimate_design of the
    manifest's design reproduces estimate's projection for the checkpoint (the design compile built)."""
    ckpt, proj = built[kind]
    d = open_design(proj)
    src = le.from_path(ckpt)
    assert d.params.matmul == "lowbit" and d.lowbit is not None
    assert d.lowbit.model == src.model and d.lowbit.weights == src.weights and d.lowbit.notes == src.notes
    if kind == "qwen2-gptq":  # a format outside cost/lowbit FORMATS round-trips by its fields
        assert {f.name for layer in d.lowbit.model.layers for f in layer.values()} == {"GPTQ4"}
        assert d.lowbit.model.layers[0]["q"].group == 64
    want, got = le.estimate(src, d.board), le.estimate_design(d.lowbit, d.board, d.params)
    assert got.record() == want.record()


def test_estimate_dir_projects_a_lowbit_project(built: dict) -> None:
    """estimate DIR: the low-bit estimate's table and --json (equal to estimate MODEL's), not a refusal."""
    ckpt, proj = built["llama-Q4_K_M"]
    write_summary(proj, None)
    res = runner.invoke(app, ["estimate", str(proj), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    model = runner.invoke(app, ["estimate", str(ckpt), "--board", BOARD, "--json"])
    assert model.exit_code == 0, model.output
    want = json.loads(model.stdout)["boards"][BOARD]
    for key in ("projected_decode_tok_s", "ddr_bound_tok_s", "projected_ttft_128_s", "resources", "design"):
        assert got["lowbit"][key] == want[key], key
    assert got["design"]["matmul"] == "lowbit" and got["built"] is None and "summary" not in got
    assert got["mix"] == json.loads(model.stdout)["mix"] and got["notes"] == json.loads(model.stdout)["notes"]
    text = runner.invoke(app, ["estimate", str(proj)], env=WIDE)
    assert text.exit_code == 0, text.output
    src = open_design(proj)
    e = le.estimate_design(src.lowbit, src.board, src.params)
    for label, value in le.rows(src.lowbit, e, src.board):
        assert value in text.output, (label, value)
    flat = " ".join(text.output.split())  # the title wraps at the table's width
    assert ": low-bit, projected by compiler/cost/lowbit.py (not measured)" in flat and "not built" in flat


def test_estimate_dir_check_reprojects_lowbit_at_the_achieved_clock(built: dict) -> None:
    """A build that misses timing: the speeds at the achieved clock are the low-bit model's there, the
    utilisation is set against the low-bit resource model, --check exits 1; timing met: exit 0."""
    _, proj = built["llama-Q4_K_M"]
    d = open_design(proj)
    b, p, src = d.board, d.params, d.lowbit
    e = le.estimate_design(src, b, p)
    write_summary(proj, build_summary(p.clock_mhz, 0.2, lut=0.3 * b.lut))
    ok = runner.invoke(app, ["estimate", str(proj), "--check"], env=WIDE)
    assert ok.exit_code == 0, ok.output
    assert "fits: clock and utilisation within the plan" in ok.output and "MISFIT" not in ok.output

    half = build_summary(p.clock_mhz, -1000.0 / p.clock_mhz, lut=0.9 * b.lut)  # twice the period
    write_summary(proj, half)
    res = runner.invoke(app, ["estimate", str(proj), "--check", "--json"])
    assert res.exit_code == 1 and "misfit: the built design misses its plan" in res.stderr
    rec = json.loads(res.stdout)["built"]
    half = p.clock_mhz / 2
    for s in SCENARIOS:
        want = ls.project(src.cfg, b.with_scenario(s), src.model, e.engine, e.vector, half)
        assert rec["achieved"]["decode_tok_s"][s] == pytest.approx(want["decode"])
        assert rec["achieved"]["ttft_128_s"][s] == pytest.approx(want["ttft"])
        assert rec["planned"]["decode_tok_s"][s] > rec["achieved"]["decode_tok_s"][s]
    assert rec["planned"]["decode_tok_s"]["central"] == pytest.approx(e.decode["central"])
    assert rec["utilisation"]["lut"]["projected"] == e.resources["lut"]
    assert [m.split(":")[0] for m in rec["misfits"]] == ["clock", "lut"]
    text = runner.invoke(app, ["estimate", str(proj)], env=WIDE)
    assert text.exit_code == 0 and text.output.count("MISFIT:") == 2, text.output
    assert f"achieved clock ({half:g} MHz): decode {rec['achieved']['decode_tok_s']['central']:.1f}" \
        in text.output
    write_summary(proj, None)


def test_build_records_the_lowbit_reprojection(built: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.commands import build

    _, proj = built["llama-Q4_K_M"]
    d = open_design(proj)
    s = build_summary(d.params.clock_mhz, -1.0, lut=0.5 * d.board.lut)
    import edgellm.compiler.build_reports as br

    monkeypatch.setattr(br, "write_summary", lambda project, mhz: dict(s))
    out = build.report_summary(proj)
    saved = json.loads((proj / BUILD_REPORTS / SUMMARY).read_text())["reprojection"]
    assert saved == json.loads(json.dumps(out["reprojection"]))
    assert saved["model_used"].startswith("compiler/cost/lowbit.py")
    want = reproject(d.cfg, d.board, d.params, s, d.limits, d.lowbit)
    assert saved["achieved"]["decode_tok_s"] == pytest.approx(want["achieved"]["decode_tok_s"])
    write_summary(proj, None)


def test_report_dir_shows_the_lowbit_projection(built: dict, tmp_path: Path) -> None:
    """report DIR writes the page; its key figures are estimate DIR's rows, its time splits add up to
    the projection (1 / decode tok/s, TTFT), its resources per kernel to the low-bit total."""
    from edgellm.compiler.cost.memory import KINDS, total_of
    from edgellm.report.gather import project_section
    from edgellm.report.lowbit import LowbitSection

    _, proj = built["llama-Q4_K_M"]
    page = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(proj), "-o", str(page)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    est = json.loads(runner.invoke(app, ["estimate", str(proj), "--json"]).stdout)["lowbit"]
    dec = est["projected_decode_tok_s"]
    lo, hi = sorted((dec["low"], dec["high"]))
    assert f"decode {dec['central']:.1f} ({lo:.1f}-{hi:.1f}) tok/s projected" in html
    s = project_section(proj)
    assert isinstance(s, LowbitSection)
    from html import escape

    for label, value in le.rows(s.src, s.estimate, s.board):
        assert f"<th>{escape(label)}</th><td class='num'>{escape(value)}</td>" in html
    for plot in ("resources", "layers-decode", "layers-prefill", "stages-decode", "stages-prefill"):
        assert f"id=\"{plot}-{BOARD}\"" in html or f"id='{plot}-{BOARD}'" in html, plot
    assert "Projected, not measured." in html and "low-bit engine linears" in html
    assert s.decode.total == pytest.approx(1 / s.estimate.decode["central"], rel=1e-9)
    assert s.prefill.total == pytest.approx(s.estimate.ttft["central"], rel=1e-9)
    assert len(s.decode.layers) == s.cfg.n_layers and set(s.decode.stages) >= set(s.cfg.linear_shapes())
    total = total_of(s.parts.values())
    assert {k: float(getattr(total, k)) for k in KINDS} == s.estimate.resources


def test_a_lowbit_manifest_without_its_formats_is_one_error_line(built: dict, tmp_path: Path) -> None:
    """A low-bit manifest written before weights.lowbit_model (or a malformed one) is refused in one line
    by estimate DIR and report DIR; the project still opens."""
    from edgellm.runtime.project import Project

    _, proj = built["llama-Q4_K_M"]
    for case, edit, words in (
            ("old", lambda w: w.pop("lowbit_model"), "no weights.lowbit_model"),
            ("layers", lambda w: w["lowbit_model"]["layers"].pop(), "bad weights.lowbit_model (1 layers"),
            ("bits", lambda w: w["lowbit_model"]["formats"][0].update(bits=True), "formats[0].bits")):
        copy = tmp_path / case
        shutil.copytree(proj, copy)
        m = json.loads((copy / "manifest.json").read_text())
        edit(m["weights"])
        (copy / "manifest.json").write_text(json.dumps(m))
        Project.open(copy)
        for args in (("estimate", str(copy)), ("report", str(copy), "-o", str(tmp_path / "r.html"))):
            r = runner.invoke(app, list(args))
            assert r.exit_code == 2 and words in r.output, r.output
            assert r.output.strip().count("\n") == 0 and "Traceback" not in r.output, r.output
