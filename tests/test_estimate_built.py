"""A built project re-projected (compiler/reproject.py): `edgellm estimate PROJECT_DIR [--check]` and
`edgellm build`'s summary re-project the design at the clock Vivado achieved and compare the achieved
utilisation with the board and the routing limits. The build summaries here are fixtures in the shape
compiler/build_reports.write_summary writes (tests/test_build_reports.py), not tool outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_build import build_summary, write_summary
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.compiler.build_reports import BUILD_REPORTS, SUMMARY
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.reproject import achieved_clock, lines, project_design, reproject
from edgellm.models.config import ModelConfig

runner = CliRunner()
CFG = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                  max_context=64, bos_id=1, eos_id=2, name="built")
BOARD = "pynq_z2"  # the smallest design space: the exploration takes about a second


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    d = tmp_path_factory.mktemp("built")
    ckpt = save_hf_bitnet(random_model(CFG, seed=3, density=0.5), d / "ckpt")
    run_steps(BuildConfig(model=str(ckpt), board=BOARD, out_dir=str(d / "proj"), reference_onnx=False,
                          reference_new_tokens=2), compile_steps())
    return d / "proj"


def test_slow_clock_reprojects_lower(project: Path) -> None:
    cfg, b, p, limits = project_design(project)
    slow = build_summary(p.clock_mhz, wns=2.5, lut=0.3 * b.lut)  # positive slack: headroom, not speed
    rec = reproject(cfg, b, p, slow, limits)
    assert rec["clock"]["run_mhz"] == p.clock_mhz and rec["misfits"] == []
    assert rec["achieved"]["decode_tok_s"] == rec["planned"]["decode_tok_s"]
    slow = build_summary(p.clock_mhz, wns=-2.5, lut=0.3 * b.lut)
    rec = reproject(cfg, b, p, slow, limits)
    run = 1000.0 / (1000.0 / p.clock_mhz + 2.5)
    assert rec["clock"]["run_mhz"] == pytest.approx(run, abs=1e-3) and run < p.clock_mhz
    want = cost_model.decode_step(cfg, b, p.replace(clock_mhz=rec["clock"]["run_mhz"])).tokens_per_s
    got, planned = rec["achieved"]["decode_tok_s"], rec["planned"]["decode_tok_s"]
    assert got["central"] == pytest.approx(want) and got["central"] < planned["central"]
    assert got["low"] <= got["central"] <= got["high"]
    assert rec["achieved"]["ttft_128_s"]["central"] > rec["planned"]["ttft_128_s"]["central"]
    assert [m.split(":")[0] for m in rec["misfits"]] == ["clock"]
    text = lines(rec)
    at = f"projected at the achieved clock ({rec['clock']['run_mhz']:g} MHz)"
    assert any(t.startswith(at) for t in text)
    assert sum(t.startswith("MISFIT: clock") for t in text) == 1


def test_over_utilised_is_flagged(project: Path) -> None:
    cfg, b, p, limits = project_design(project)
    assert achieved_clock({}, p.clock_mhz) is None
    over_limit = reproject(cfg, b, p, build_summary(p.clock_mhz, 0.1, lut=0.8 * b.lut), limits)
    assert over_limit["misfits"] == [f"lut: {0.8 * b.lut:,.0f} used = 80% of the board > the 75% routing "
                                     "limit the design was sized under (Vivado post-route utilisation)"]
    over_board = reproject(cfg, b, p, {"hls": {"resources": {"lut": 100, "ff": 2.0 * b.ff}}}, limits)
    assert over_board["clock"] is None and "achieved" not in over_board
    assert over_board["misfits"] == [f"ff: {2.0 * b.ff:,.0f} used > {b.ff:,} on the board "
                                     "(Vitis HLS csynth estimate)"]
    u = over_board["utilisation"]["lut"]
    assert u["projected"] > 0 and u["available"] == b.lut


def test_estimate_project_cli(project: Path) -> None:
    cfg, b, p, _ = project_design(project)
    write_summary(project, None)
    res = runner.invoke(app, ["estimate", str(project)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "not built" in res.output and "decode tok/s (projected" in res.output
    bad = runner.invoke(app, ["estimate", str(project), "--check"])
    assert bad.exit_code == 2 and "no report/build/summary.json" in bad.output
    assert runner.invoke(app, ["estimate", str(project), "--board", "kv260"]).exit_code == 2

    write_summary(project, build_summary(p.clock_mhz, 0.2, lut=0.3 * b.lut))
    ok = runner.invoke(app, ["estimate", str(project), "--check"], terminal_width=200)
    assert ok.exit_code == 0, ok.output
    assert "fits: clock and utilisation within the plan" in ok.output and "MISFIT" not in ok.output

    half = build_summary(p.clock_mhz, -1000.0 / p.clock_mhz, lut=0.9 * b.lut)  # twice the period
    write_summary(project, half)
    res = runner.invoke(app, ["estimate", str(project)], terminal_width=200)
    assert res.exit_code == 0 and res.output.count("MISFIT:") == 2, res.output
    half = cost_model.decode_step(cfg, b, p.replace(clock_mhz=p.clock_mhz / 2)).tokens_per_s
    assert f"achieved clock ({p.clock_mhz / 2:g} MHz): decode {half:.1f}" in res.output
    checked = runner.invoke(app, ["estimate", str(project), "--check", "--json"], terminal_width=200)
    assert checked.exit_code == 1
    rec = json.loads(checked.stdout)
    assert rec["built"]["achieved"]["decode_tok_s"]["central"] == pytest.approx(half)
    assert rec["summary"]["projected_decode_tok_s"] > half and len(rec["built"]["misfits"]) == 2
    assert "misfit: the built design misses its plan" in checked.stderr
    write_summary(project, None)


def test_build_records_the_reprojection(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.commands import build

    _, b, p, _ = project_design(project)
    s = build_summary(p.clock_mhz, -1.0, lut=0.5 * b.lut)
    import edgellm.compiler.build_reports as br

    monkeypatch.setattr(br, "write_summary", lambda proj, mhz: dict(s))
    out = build.report_summary(project)
    saved = json.loads((project / BUILD_REPORTS / SUMMARY).read_text())
    assert saved["reprojection"]["misfits"] == out["reprojection"]["misfits"]
    assert saved["reprojection"]["clock"]["run_mhz"] < p.clock_mhz
    write_summary(project, None)

