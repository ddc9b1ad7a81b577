"""`edgellm csim` (g++ C simulation of a project's hls/ against its reference/) and `edgellm build`
(Vitis HLS + Vivado: without tools, with fake tools recording their arguments, with real tools)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from shared_project import PROJECT_DECODE, PROJECT_VOCAB, make_project
from shared_tcl import run_hls
from typer.testing import CliRunner

from edgellm import cli
from edgellm.compiler.manifest import list_files

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("csim") / "proj")


def test_synth_check_findings_are_cached_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """csim's synth_check step (commands/csim.synth_check_findings) keeps its findings by content: an edit is
    seen, an identical copy elsewhere reuses them under its own path."""
    from edgellm.commands.csim import synth_check_findings

    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cache"))
    bad = "void f(int n) {\n  int *p = (int *)malloc(n * 4);\n  p[0] = 1;\n}\n"
    root = tmp_path / "a"
    (root / "hls").mkdir(parents=True)
    top = root / "hls" / "top.cpp"
    top.write_text(bad)
    found = synth_check_findings(root, [top])
    assert len(found) == 1 and found[0].startswith(f"{top}:2: dynamic-memory"), found
    assert synth_check_findings(root, [top]) == found  # (from the cache)
    other = tmp_path / "b"
    shutil.copytree(root, other)
    assert synth_check_findings(other, [other / "hls" / "top.cpp"]) == [
        found[0].replace(str(root), str(other), 1)]
    top.write_text(bad.replace("(int *)malloc(n * 4)", "nullptr"))
    assert synth_check_findings(root, [top]) == []


@pytest.mark.parametrize("threads", [False, True], ids=["sequential", "threads"])
def test_csim_passes_bit_exact(project: Path, threads: bool) -> None:
    """Sequential C simulation, and --threads: every stream-connected DATAFLOW process in its own thread
    over FIFOs of its declared depth (a deadlock would fail the testbench)."""
    res = runner.invoke(cli.app, ["csim", str(project), *(["--threads"] if threads else [])])
    print(res.output)
    assert res.exit_code == 0, res.output
    assert "synth_check: 0 finding(s)" in res.output
    assert res.output.count("logits mismatches 0/300") == PROJECT_DECODE + 1
    assert "tb_top: PASS: 0 logit mismatches, 0 of 17 steps differ" in res.output
    assert "csim: PASS" in res.output


def test_csim_fails_on_one_changed_reference_logit(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(project, bad)
    lg = np.fromfile(bad / "reference" / "logits.f32", np.float32)
    lg[5 * PROJECT_VOCAB + 7] = np.nextafter(lg[5 * PROJECT_VOCAB + 7], np.float32(np.inf))  # step 5: one ulp
    lg.tofile(bad / "reference" / "logits.f32")
    res = runner.invoke(cli.app, ["csim", str(bad), "--decode-steps", "6"])  # csim checks the sha256s
    assert res.exit_code == 2 and "logits.f32: sha256" in res.output and "refusing" in res.output
    m = json.loads((bad / "manifest.json").read_text())
    m["files"]["reference/logits.f32"] = list_files(bad)["reference/logits.f32"]
    (bad / "manifest.json").write_text(json.dumps(m))  # a deliberate edit: the testbench must catch it
    res = runner.invoke(cli.app, ["csim", str(bad), "--decode-steps", "6"])
    assert res.exit_code == 1, res.output
    assert "step  5 decode  pos   20: logits mismatches 1/300" in res.output
    assert "1 of 7 steps differ" in res.output and "csim: FAIL" in res.output


def test_csim_one_line_errors(project: Path, tmp_path: Path) -> None:
    res = runner.invoke(cli.app, ["csim", str(tmp_path)])
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0
    assert "not an edgellm project" in res.output
    partial = tmp_path / "partial"
    shutil.copytree(project, partial)
    (partial / "reference" / "ref.json").unlink()
    res = runner.invoke(cli.app, ["csim", str(partial)])
    assert res.exit_code == 2 and "ref.json is missing" in res.output


def test_build_without_tools_says_what_to_install(project: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    res = runner.invoke(cli.app, ["build", str(project)])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: edgellm build needs the AMD tools on PATH (vitis_hls and vivado "
                                 "not found): install")
    assert res.stderr.count("\n") == 1  # one error line, what to do in it (was six more lines)
    assert "vitis_hls and vivado not found" in res.output and "2024.1 or newer" in res.output
    assert "vitis_hls -f run_hls.tcl" in res.output and "vivado -mode batch -source build.tcl" in res.output
    res = runner.invoke(cli.app, ["build", str(tmp_path)])
    assert res.exit_code == 2 and "not an edgellm project" in res.output


FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
echo "cwd $(pwd)" >> "{log}"
echo "steps ${{EDGELLM_HLS_STEPS:-default}} profile ${{EDGELLM_COSIM_PROFILE:-0}}" >> "{log}"
echo "fake tool running"
{body}
exit {rc}
"""
SAMPLES = Path(__file__).parent / "data" / "build_reports"  # hand-written samples of the report formats
# Vitis HLS: the IP, the synthesis reports (and the cosim report when asked), burst messages on stdout
FAKE_HLS = f"""mkdir -p ip edgellm_hls/solution1/syn/report && echo '<component/>' > ip/component.xml
cd edgellm_hls/solution1/syn/report && cp {SAMPLES}/csynth.xml . && echo rpt > csynth.rpt && cd -
cat {SAMPLES}/vitis_hls.log
case "$EDGELLM_HLS_STEPS" in *cosim*) mkdir -p edgellm_hls/solution1/sim/report &&
  cp {SAMPLES}/edgellm_top_cosim.rpt edgellm_hls/solution1/sim/report/ ;; esac"""
# Vivado (vivado/build.tcl): the run's bitstream and .hwh, the reports and timing.json
FAKE_VIVADO = f"""mkdir -p build/p.runs/impl_1 ../report/build/vivado
echo bit > build/p.runs/impl_1/design_1_wrapper.bit && cp HWH ../edgellm_top.hwh
cp {SAMPLES}/utilization.rpt ../report/build/vivado/
echo '{{"wns_ns": WNS, "whs_ns": 0.01, "tns_ns": 0.0}}' > ../report/build/vivado/timing.json"""


def vivado_hwh(project: Path, dest: Path, move: dict[str, int] | None = None) -> Path:
    """A .hwh as Vivado would write it for the project's block design (the generator's, unmarked);
    move: registers put at other offsets (a bitstream built from other sources)."""
    from edgellm.compiler.hwh import generate_hwh, spec_for_manifest

    spec = spec_for_manifest(json.loads((project / "manifest.json").read_text()))
    if move:
        spec = dataclasses.replace(spec, registers={**spec.registers, **move})
    dest.write_text(generate_hwh(spec).replace('EDGELLM_GENERATED="1"', ""))
    return dest


def fake_tools(bin_dir: Path, log: Path, hls_rc: int = 0, vivado_rc: int = 0, wns: float = 0.08,
               hwh: Path | None = None) -> None:
    bin_dir.mkdir(exist_ok=True)
    vivado = FAKE_VIVADO.replace("WNS", str(wns)).replace("HWH", str(hwh or "/dev/null"))
    bodies = {"vitis_hls": FAKE_HLS, "vivado": vivado}
    for name, rc in (("vitis_hls", hls_rc), ("vivado", vivado_rc)):
        f = bin_dir / name
        f.write_text(FAKE.format(log=log, body=bodies[name], rc=rc))
        f.chmod(f.stat().st_mode | stat.S_IXUSR)


def test_build_with_fake_tools(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    log = tmp_path / "calls.log"
    fake_tools(tmp_path / "bin", log, hwh=vivado_hwh(proj, tmp_path / "v.hwh"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = runner.invoke(cli.app, ["build", str(proj), "--cosim"])
    assert res.exit_code == 0, res.output
    calls = log.read_text().splitlines()
    assert calls[:3] == ["vitis_hls -f run_hls.tcl", f"cwd {proj / 'hls'}",
                         "steps csim csynth cosim export profile 0"]
    assert calls[3] == "vivado -mode batch -nojournal -notrace -source build.tcl"
    assert calls[4] == f"cwd {proj / 'vivado'}"
    assert (proj / "edgellm_top.bit").read_text() == "bit\n"  # copied from vivado/build
    assert (proj / "edgellm_top.hwh").read_text() == (tmp_path / "v.hwh").read_text()
    assert "fake tool running" in (proj / "report" / "vitis_hls.log").read_text()
    assert "fake tool running" in (proj / "report" / "vivado.log").read_text()
    # the reports gathered for the calibration work, and their summary
    rep = proj / "report" / "build"
    for rel in ("hls/csynth.xml", "hls/csynth.rpt", "cosim/edgellm_top_cosim.rpt", "vivado/utilization.rpt"):
        assert (rep / rel).is_file(), rel
    summary = json.loads((rep / "summary.json").read_text())
    assert summary["hls"]["resources"]["bram36"] == 98.5 and summary["cosim"]["status"] == "Pass"
    assert summary["vivado"]["timing"]["wns_ns"] == 0.08 and len(summary["hls_messages"]["bursts"]) == 2
    out = res.output
    assert "csynth: estimated clock 2.92 ns (target 4.0 ns)" in out
    assert "loops above II=1: ew_engine/VITIS_LOOP_161_1 II=2" in out
    assert "HLS log: 2 burst messages, 2 burst/widen warnings, 1 dataflow warnings" in out
    assert "cosim: Pass" in out and "vivado: WNS 0.08 ns, WHS 0.01 ns, achieved 255.102 MHz" in out
    from edgellm.runtime.project import Project

    Project.open(proj)  # the reports are build outputs: the project is still a closed set


def test_build_timing_not_met(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bitstream with negative slack is written (and its reports gathered) but the build is an error."""
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    fake_tools(tmp_path / "bin", tmp_path / "calls.log", wns=-0.25, hwh=vivado_hwh(proj, tmp_path / "v.hwh"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = runner.invoke(cli.app, ["build", str(proj)])
    assert res.exit_code == 2, res.output
    assert "error: timing not met (WNS -0.25 ns, WHS 0.01 ns" in res.output and "lower clock" in res.output
    assert (proj / "edgellm_top.bit").is_file() and (proj / "report" / "build" / "summary.json").is_file()


def test_build_refuses_a_hwh_that_moved_a_register(project: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Vivado's .hwh must agree with the manifest's register map (else the bitstream came from other
    sources): one line naming the register."""
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    moved = vivado_hwh(proj, tmp_path / "v.hwh", {"n_desc": 0x200})
    fake_tools(tmp_path / "bin", tmp_path / "calls.log", hwh=moved)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = runner.invoke(cli.app, ["build", str(proj)])
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "n_desc" in err[0] and "Vivado's" in err[0], res.output


def test_build_reports_tool_failure(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    fake_tools(tmp_path / "bin", tmp_path / "calls.log", hls_rc=3)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = runner.invoke(cli.app, ["build", str(proj)])
    assert res.exit_code == 2 and "error: Vitis HLS failed (exit 3)" in res.output
    assert not (proj / "edgellm_top.bit").exists()
    assert (proj / "report" / "build" / "hls" / "csynth.rpt").is_file()  # gathered for the diagnosis


def test_build_cosim_profile(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    log = tmp_path / "calls.log"
    fake_tools(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = runner.invoke(cli.app, ["build", str(proj), "--cosim-profile"])
    assert res.exit_code == 2 and "error: --cosim-profile needs --cosim" in res.output and not log.exists()
    res = runner.invoke(cli.app, ["build", str(proj), "--cosim", "--cosim-profile", "--hls-only"])
    assert res.exit_code == 0, res.output
    assert log.read_text().splitlines()[2] == "steps csim csynth cosim export profile 1"
    assert "vivado" not in log.read_text() and (proj / "report" / "build" / "summary.json").is_file()


def run_hls_tcl(hls: Path, tmp_path: Path, extra: str = "", env: dict[str, str] | None = None
                ) -> tuple[int, str, list[list[str]]]:
    """(exit code, output lines that are not calls, recorded calls) of hls/run_hls.tcl under tclsh."""
    return run_hls(hls / "run_hls.tcl", tmp_path / "driver.tcl", extra, env)


TCLSH = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")


@TCLSH
def test_run_hls_tcl_axi_settings_match_the_pragmas(project: Path, tmp_path: Path) -> None:
    """config_interface (compiler/hls_tcl.py AxiSettings) agrees with top.cpp's m_axi pragmas: the widen
    limit of every bundle, 64-bit pointers (the register map's 3 words each), an alignment of one beat."""
    rc, _, calls = run_hls_tcl(project / "hls", tmp_path)
    assert rc == 0
    cfg = {}
    for c in calls:
        if c[0] == "config_interface":
            opt, _, val = c[1].partition("=")
            cfg[opt] = val or c[2]
    widths = {int(w) for w in re.findall(r"m_axi port = \w+ .*max_widen_bitwidth = (\d+)",
                                         (project / "hls" / "top.cpp").read_text())}
    assert widths and int(cfg["-m_axi_max_widen_bitwidth"]) == max(widths)
    assert int(cfg["-m_axi_alignment_byte_size"]) == max(widths) // 8 and cfg["-m_axi_addr64"] == "true"
    for opt in ("max_read_burst_length", "max_write_burst_length", "num_read_outstanding",
                "num_write_outstanding", "latency"):
        assert int(cfg[f"-m_axi_{opt}"]) >= 1
    names = [c[0] for c in calls]
    assert names.index("create_clock") < names.index("config_interface") < names.index("csynth_design")


@TCLSH
def test_run_hls_tcl_stops_at_a_failing_step(project: Path, tmp_path: Path) -> None:
    fail = "proc csynth_design {} { error {ERROR: [HLS 214-1] x} }\n"
    rc, text, calls = run_hls_tcl(project / "hls", tmp_path, fail)
    assert rc == 1 and "edgellm: ERROR: csynth failed: ERROR: [HLS 214-1] x" in text
    names = [c[0] for c in calls]
    assert "csim_design" in names and "export_design" not in names and "cosim_design" not in names
    rc, text, calls = run_hls_tcl(project / "hls", tmp_path, "", {"EDGELLM_HLS_STEPS": "csim synth"})
    assert rc == 2 and "unknown step 'synth'" in text and "open_project" not in [c[0] for c in calls]


@TCLSH
@pytest.mark.parametrize("profile", [False, True])
def test_run_hls_tcl_cosim_options(project: Path, tmp_path: Path, profile: bool) -> None:
    env = {"EDGELLM_HLS_STEPS": "csynth cosim", **({"EDGELLM_COSIM_PROFILE": "1"} if profile else {})}
    rc, _, calls = run_hls_tcl(project / "hls", tmp_path, "", env)
    assert rc == 0
    (cosim,) = [c for c in calls if c[0] == "cosim_design"]
    assert cosim[1:3] == ["-argv", f"{project.resolve()} --decode-steps 1"]
    assert cosim[cosim.index("-trace_level") + 1] == "none" and "-disable_deadlock_detection" not in cosim
    assert ("-enable_dataflow_profiling" in cosim) == profile


@pytest.mark.vivado
@pytest.mark.skipif(not (shutil.which("vitis_hls") or shutil.which("vitis-run"))
                    or not shutil.which("vivado"), reason="needs Vitis HLS and Vivado on PATH")
def test_build_with_real_tools(project: Path, tmp_path: Path) -> None:
    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    res = runner.invoke(cli.app, ["build", str(proj)])
    assert res.exit_code == 0, res.output[-4000:]
    assert (proj / "hls" / "ip" / "component.xml").is_file()
    assert (proj / "edgellm_top.bit").stat().st_size > 0 and (proj / "edgellm_top.hwh").stat().st_size > 0
