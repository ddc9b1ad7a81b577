"""The calibration kit (`edgellm calibrate`, issue 19 item 5): the DDR probe's project, its C simulation
(the testbench, and the runtime over the emulator and over the emulated PYNQ board), its Tcl against the
accelerator's, the calibration file, and its use by `estimate --measured` / `compile --measured`.

C simulation measures nothing (the probe counts one beat per cycle per port there): these tests check
that the probe moves the bytes it says and that its counters are consistent, and that what the runtime
writes is marked emulated; the bandwidth itself needs a board."""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_fixtures import read_line
from shared_tcl import TCLSH, calls_of, run_hls_tcl, run_recorded
from typer.testing import CliRunner

from edgellm.boards import CCI_PATH, load_board
from edgellm.cli import app
from edgellm.compiler import hls_tcl
from edgellm.compiler.calibrate import codegen, measured
from edgellm.compiler.calibrate.kit import KIT_PYTHON, kit_design, write_kit
from edgellm.compiler.design import DesignParams
from edgellm.compiler.vivado_tcl import generate_vivado_tcl, port_assignment
from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.runtime import calibrate as cal
from edgellm.runtime import probe_kit as pk

runner = CliRunner()
HAVE_CSIM = importlib.util.find_spec("hls4ml") is not None and shutil.which(os.environ.get("CXX", "g++"))
needs_csim = pytest.mark.skipif(not HAVE_CSIM, reason="the C simulation needs g++ and hls4ml's ap_types")
HAVE_PYNQ = importlib.util.find_spec("pynq") is not None and importlib.util.find_spec("grpc") is not None
SMALL = 64 << 10  # bytes per port and run in these tests


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KV260 kit: four weight ports HP0-HP3 (HP1 and HP2 on XPI 4), the data port on HPC0 (the CCI)."""
    return write_kit(load_board("kv260"), tmp_path_factory.mktemp("kit") / "kv260")


@pytest.fixture(scope="module")
def kit_z2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PYNQ-Z2 kit with one weight port: 64-bit ports, the zynq7 PS, a port slot the probe lacks."""
    return write_kit(load_board("pynq_z2"), tmp_path_factory.mktemp("kit") / "z2", weight_ports=1)


@pytest.fixture(scope="module")
def emulated(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The calibration file the emulator writes for the KV260 kit."""
    if not HAVE_CSIM:
        pytest.skip("the C simulation needs g++ and hls4ml's ap_types")
    out = tmp_path_factory.mktemp("cal") / "emu.json"
    res = runner.invoke(app, ["calibrate", str(kit), "--device", "emu", "-o", str(out), "--bytes-per-port",
                              str(SMALL), "--repeat", "2"])
    assert res.exit_code == 0, res.output
    assert "EMULATED" in res.output and f"calibration written to {out}" in res.output
    return json.loads(out.read_text())


def _one_line_error(res) -> str:  # noqa: ANN001
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output, res.output
    return err


# ---- the kit: same ports, bundles, widths and burst settings as the accelerator ----

def test_kit_is_a_closed_set_wired_like_the_accelerator(kit: Path) -> None:
    k = pk.ProbeKit.open(kit)
    board = load_board("kv260")
    assert k.board == "kv260" and k.weight_ports == 4 and k.beat_bytes == k.data_beat_bytes == 16
    assert k.clock_mhz == board.pl_clock_mhz
    # the accelerator's port plan for four weight ports (cost_ddr.port_plan through vivado_tcl)
    assert k.ports == dict(port_assignment(board, 4))
    assert k.ports == {"w0": "S_AXI_HP0_FPD", "w1": "S_AXI_HP1_FPD", "w2": "S_AXI_HP2_FPD",
                       "w3": "S_AXI_HP3_FPD", "data": "S_AXI_HPC0_FPD"}
    assert k.ddr_paths == {"w0": "XPI3", "w1": "XPI4", "w2": "XPI4", "w3": "XPI5", "data": CCI_PATH}
    assert k.iface.registers == codegen.register_map(4)
    m = json.loads((kit / "manifest.json").read_text())
    assert m["axi"] == dataclasses.asdict(hls_tcl.AxiSettings.for_design(kit_design(board)))
    assert "edgellm_ddr_probe.hwh" not in m["files"] and (kit / "edgellm_ddr_probe.hwh").is_file()
    assert {"hls/top.cpp", "hls/edgellm/ddr_probe.h", "vivado/build.tcl", "run_calibration.py",
            "python/edgellm/runtime/calibrate.py"} <= set(m["files"])
    assert cal.CCI_PATH == CCI_PATH


def test_board_side_runtime_is_the_kits_own(kit: Path) -> None:
    """run_calibration.py's imports come from the kit's python/ copy (numpy and pynq besides): every
    edgellm module it loads is the kit's, and nothing heavy is imported."""
    code = ("import sys\n"
            f"sys.path.insert(0, {str(kit / 'python')!r})\n"
            "import edgellm.runtime.calibrate, edgellm.runtime.pynq_device, edgellm.runtime.pynq_remote\n"
            "mods = [m.__file__ for n, m in sys.modules.items() if n.startswith('edgellm')]\n"
            "print(len(mods), all(f.startswith(sys.path[0]) for f in mods))\n"
            "heavy = ('torch', 'onnx', 'onnxruntime', 'typer', 'rich', 'pynq')\n"
            "print([m for m in heavy if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [f"{len(KIT_PYTHON)} True", "[]"], out.stdout


def test_is_kit(kit: Path, tmp_path: Path) -> None:
    """What `edgellm board-emulator DIR` tells apart: a kit, not a project or anything else."""
    assert pk.is_kit(kit) and not pk.is_kit(tmp_path) and not pk.is_kit(tmp_path / "absent")
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "edgellm.manifest/1"}))
    assert not pk.is_kit(tmp_path)
    fifo = tmp_path / "f"
    fifo.mkdir()
    os.mkfifo(fifo / "manifest.json")
    assert not pk.is_kit(fifo)  # refused without blocking on it


def test_generated_hwh_matches_the_probe(kit: Path) -> None:
    from edgellm.compiler import hwh

    spec = hwh.spec_for_manifest(json.loads((kit / "manifest.json").read_text()))
    info = hwh.check_hwh(kit / "edgellm_ddr_probe.hwh", spec)
    assert info.generated and info.registers["hdr_off"] == codegen.register_map(4)["hdr_off"]


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")
@pytest.mark.parametrize("board_name, n", [("kv260", 4), ("kv260", 3), ("pynq_z2", 1), ("ultra96v2", 2)])
def test_vivado_tcl_is_the_accelerators(tmp_path: Path, board_name: str, n: int) -> None:
    """The kit's build.tcl under tclsh (tests/shared_tcl.py's Vivado recorder) makes the very calls the
    accelerator's does for the same ports and widths, with the probe's IP in place of the accelerator."""
    board = load_board(board_name)
    k = write_kit(board, tmp_path / "kit", weight_ports=n)
    probe = run_recorded(k / "vivado" / "build.tcl")
    acc_dir = tmp_path / "acc" / "vivado"
    acc_dir.mkdir(parents=True)
    (acc_dir / "build.tcl").write_text(generate_vivado_tcl(board, kit_design(board, n), "edgellm_top"))
    acc = run_recorded(acc_dir / "build.tcl")

    def norm(calls: list[list[str]], root: Path) -> list[list[str]]:
        return [[a.replace(str(root), "ROOT").replace("edgellm_ddr_probe", "edgellm_top") for a in c]
                for c in calls]

    assert norm(probe, k) == norm(acc, tmp_path / "acc")
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls_of(probe, "create_bd_cell")}
    assert cells["edgellm_ddr_probe_0"] == "xilinx.com:hls:edgellm_ddr_probe:1.0"
    copies = [c[-1] for c in calls_of(probe, "file") if c[1] == "copy"]
    assert str(k / "vivado" / ".." / "edgellm_ddr_probe.bit") in copies


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")
def test_run_hls_tcl_like_the_accelerators(kit: Path, tmp_path: Path) -> None:
    """run_hls.tcl under tclsh (tests/shared_tcl.py's HLS recorder): the probe's top, sources and
    testbench, the board's part and clock, and the accelerator's m_axi settings (config_interface)."""
    work = tmp_path / "k"
    shutil.copytree(kit, work)
    hls = (work / "hls").resolve()
    calls = run_hls_tcl(hls / "run_hls.tcl", None)
    names = [c[0] for c in calls]
    assert ["set_top", "edgellm_ddr_probe"] in calls and ["set_part", "xck26-sfvc784-2LV-c"] in calls
    assert ["create_clock", "-period", "4", "-name", "default"] in calls
    adds = [c for c in calls if c[0] == "add_files"]
    files = [c[1] for c in adds]
    assert str(hls / "top.cpp") in files and str(hls / "edgellm" / "ddr_probe.h") in files
    assert ["add_files", "-tb", str(hls / "tb_top.cpp")] == adds[-1][:3]
    acc = hls_tcl.AxiSettings.for_design(DesignParams(port_width_bits=128, data_port_width_bits=128))
    got = [" ".join(c) for c in calls if c[0] == "config_interface"]
    assert got == acc.config_interface()
    ex = calls[names.index("export_design")]
    assert ex[ex.index("-ipname") + 1] == "edgellm_ddr_probe"


def test_probe_sources_pass_synth_check(kit: Path, kit_z2: Path) -> None:
    """synth_check's rules, and the synthesis view (hw/synth_view.py: the top as Vitis HLS's front end
    reads it, __SYNTHESIS__ defined) where a compiler is installed."""
    import shutil

    from edgellm.hw import synth_check, synth_view

    for k in (kit, kit_z2):
        found = synth_check.check_paths([k / "hls"])
        assert found == [], "\n".join(map(str, found))
        if shutil.which(csim.cxx()):
            assert synth_view.check(synth_view.front_end(), k / "hls" / "top.cpp", csim.ap_types_dir()) == []


# ---- the probe's C simulation ----

@needs_csim
@pytest.mark.parametrize("which", ["kv260", "z2"])
def test_probe_testbench(which: str, kit: Path, kit_z2: Path, tmp_path: Path) -> None:
    """hls/tb_top.cpp (what Vitis csim_design and cosim run) built with g++: every port set moves the beats
    asked for with the right word sums, counters no smaller than the beats, the written region holds the
    pattern and nothing else changed; malformed programs are refused with their status, moving nothing."""
    hls = (kit if which == "kv260" else kit_z2) / "hls"
    exe = tmp_path / "tb"
    flags = [f for f in csim.CXXFLAGS if f not in ("-shared", "-fPIC")]
    csim.run_compiler([csim.cxx(), *flags, *csim.include_flags([hls]), str(hls / "tb_top.cpp"),
                       str(hls / "top.cpp"), "-o", str(exe)], "the probe's testbench")
    res = subprocess.run([str(exe), str(hls.parent), "--decode-steps", "1"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("0 failed")
    assert "misaligned offset -> status 8" in res.stdout
    assert "write over the header -> status 10" in res.stdout
    assert "rows that do not divide the beats -> status 11" in res.stdout
    assert "rows that overlap -> status 11" in res.stdout and "rows past the buffer -> status 9" in res.stdout
    assert ("a port the probe lacks -> status 6" in res.stdout) == (which == "z2")


@needs_csim
def test_layout_constants_agree(kit: Path) -> None:
    """hw/include/edgellm/ddr_probe.h and runtime/probe_kit.py describe the same interface."""
    from edgellm.runtime.emulator import build_csim_library

    lib = ctypes.CDLL(str(build_csim_library(kit, "edgellm_ddr_probe")))
    out = np.zeros(32, np.int64)
    n = lib.edgellm_probe_layout(out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(32))
    assert list(out[:n]) == [pk.MAGIC, pk.VERSION, pk.MAX_WEIGHT_PORTS, pk.SLOTS, pk.DATA_SLOT, pk.MAX_DESC,
                             pk.MAX_BEATS, pk.PH_WORDS, pk.PD_WORDS, pk.PR_WORDS, pk.PR_SLOT_WORDS, 4, 16, 16]


def test_emulated_calibration_file(emulated: dict, kit: Path) -> None:
    """The emulator's file: marked emulated, every port set of the plan, counters at one beat per cycle
    (the C simulation's ideal: 16 B x 250 MHz = 4 GB/s per port), the figures the model takes."""
    assert emulated["format"] == cal.FORMAT and emulated["emulated"] is True and "not a measurement" in \
        emulated["note"]
    assert emulated["board"] == "kv260" and emulated["clock_mhz"] == 250.0
    assert emulated["date"] and emulated["tools"]["edgellm"] and emulated["tools"]["kit"]
    assert emulated["clock_mhz_from_counter"] is None
    names = [r["name"] for r in emulated["runs"]]
    assert names == ["w0 alone", "w1 alone", "w2 alone", "w3 alone", "data reading alone",
                     "data writing alone", "w1+w2 together (XPI4)", "weights together",
                     "weights at their rates' shares", "LM head rows", "weights + data writing"]
    beats = SMALL // 16
    for r in emulated["runs"]:
        assert len(r["samples"]) == 2
        for s in r["samples"]:
            assert set(s["cycles"]) == set(r["ports"]) and all(c == beats for c in s["cycles"].values())
            assert s["total_cycles"] == beats
        assert all(v == 4.0 for v in r["gbps"].values()) and r["total_gbps"] == 4.0 * len(r["ports"])
    assert emulated["runs"][-1]["ports"] == {"w0": "read", "w1": "read", "w2": "read", "w3": "read",
                                             "data": "write"}
    f = emulated["figures"]
    assert (f["weights_gbps"], f["all_gbps"], f["ddr_pl_gbps"]) == (16.0, 20.0, 20.0)
    assert f["shared_path_gbps"] == 8.0 and f["shared_paths_gbps"] == {"XPI4": 8.0}
    assert f["cci_stream_gbps"] == 4.0  # the data port, on HPC0, in the decode-like run
    assert f["port_stream_gbps"] == 4.0  # w0 and w3 (HP0, HP3), each alone on its XPI
    assert f["head_gbps"] == 16.0 and f["head_stream_ratio"] == 1.0 and emulated["head_row_bytes"] == 2048
    # the emulator's ports all stream at one beat a cycle: equal rates, equal shares, all finish together
    assert (f["shares"], f["shares_gbps"], f["shares_finish_spread"]) == ([1, 1, 1, 1], 16.0, 1.0)


def test_shares_run_moves_each_ports_share(kit: Path, tmp_path: Path) -> None:
    """--shares 9:7:7:9: the shares run's ports move 9 / 7 / 7 / 9 ninths of the bytes (checked by the
    probe's beat counts and word sums), the emulator's ports one beat a cycle each, so the run ends with
    w0 / w3 at (9 + 7 + 7 + 9) / 9 x 4 GB/s and the 7-share ports finish 9 / 7 earlier; the figures and the
    summary carry it; a bad --shares is one line, before anything runs."""
    if not HAVE_CSIM:
        pytest.skip("the C simulation needs g++ and hls4ml's ap_types")
    out = tmp_path / "emu.json"
    res = runner.invoke(app, ["calibrate", str(kit), "--device", "emu", "-o", str(out), "--bytes-per-port",
                              str(SMALL), "--repeat", "1", "--shares", "9:7:7:9"])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    run = next(r for r in rec["runs"] if r["name"] == "weights at their rates' shares")
    beats = SMALL // 16
    assert run["shares"] == [9, 7, 7, 9]
    assert run["port_bytes"] == {"w0": SMALL, "w1": 16 * (beats * 7 // 9), "w2": 16 * (beats * 7 // 9),
                                 "w3": SMALL}
    assert run["samples"][0]["cycles"] == {b: n // 16 for b, n in run["port_bytes"].items()}
    f = rec["figures"]
    assert f["shares"] == [9, 7, 7, 9] and f["shares_gbps"] == pytest.approx(4.0 * sum(
        run["port_bytes"].values()) / SMALL, abs=1e-3)
    assert f["shares_finish_spread"] == pytest.approx(9 / 7, abs=2e-3)
    assert "at shares 9:7:7:9" in res.output
    # the host reads the shares run back and sets the model's weights at those shares beside it
    m = measured.read_measured(out, allow_emulated=True)
    assert (m.shares, m.shares_gbps) == ((9, 7, 7, 9), f["shares_gbps"])
    assert measured.Measured.from_config(m.to_config()) == m
    model, got = measured.shares_check(m, load_board("kv260"))
    assert got == f["shares_gbps"] and model > 0
    assert f"at 9:7:7:9 shares {model:.2f}, measured {got:.2f}" in measured.note(m, load_board("kv260"))
    rec["figures"]["shares"] = [9, 7, 7]
    (tmp_path / "bad.json").write_text(json.dumps(rec))
    with pytest.raises(measured.CalibrationFileError, match="figures.shares must list a share"):
        measured.read_measured(tmp_path / "bad.json", allow_emulated=True)
    for bad in ("9:7:7", "9:7:7:0", "9:x:7:9", "60:7:7:9"):
        res = runner.invoke(app, ["calibrate", str(kit), "--device", "emu", "-o", str(tmp_path / "b.json"),
                                  "--shares", bad])
        assert "--shares" in _one_line_error(res) and not (tmp_path / "b.json").exists()


def _rates(streams: dict[str, float], data: float) -> list[dict]:
    """Synthetic port-set records (the shape summarize() writes) for figures()."""
    def run(name: str, gbps: dict[str, float]) -> dict:
        return {"name": name, "gbps": gbps, "total_gbps": round(len(gbps) * min(gbps.values()), 4)}
    runs = [run(f"{b} alone", {b: 4.0}) for b in streams]
    runs += [run("data reading alone", {"data": 3.9}), run("data writing alone", {"data": 3.8})]
    runs += [run("weights together", streams), run("weights + data writing", {**streams, "data": data})]
    return runs


def test_figures_from_measured_rates(kit: Path) -> None:
    """The model's parameters from a board-like measurement: XPI 4's share is twice its slower stream,
    the CCI stream the data port's (it sits on HPC0), the DDR ceiling the highest aggregate."""
    runs = _rates({"w0": 4.0, "w1": 3.1, "w2": 3.0, "w3": 4.0}, 2.9)
    f = cal.figures(pk.ProbeKit.open(kit), runs)
    assert f["weights_gbps"] == 12.0 and f["all_gbps"] == 14.5 and f["ddr_pl_gbps"] == 14.5
    assert f["shared_path_gbps"] == 6.0 and f["cci_stream_gbps"] == 2.9
    assert f["port_stream_gbps"] == 4.0  # the slower of HP0 and HP3, the streams alone on their XPI
    assert cal.figures(pk.ProbeKit.open(kit), _rates({"w0": 3.8, "w1": 3.1, "w2": 3.0, "w3": 3.9}, 2.9)
                       )["port_stream_gbps"] == 3.8
    assert f["port_alone_gbps"] == {"w0": 4.0, "w1": 4.0, "w2": 4.0, "w3": 4.0, "data read": 3.9,
                                    "data write": 3.8}


def test_figures_head_ratio(kit: Path) -> None:
    """The LM head's pattern ratio: its rows over the weight streams on the same ports; a record without
    a head run (a kit before it) gives none."""
    runs = _rates({"w0": 4.0, "w1": 3.1, "w2": 3.0, "w3": 4.0}, 2.9)
    runs.append({"name": cal.HEAD_RUN, "gbps": {}, "total_gbps": 10.8})
    f = cal.figures(pk.ProbeKit.open(kit), runs)
    assert f["head_gbps"] == 10.8 and f["head_stream_ratio"] == 0.9
    f = cal.figures(pk.ProbeKit.open(kit), runs[:-1])
    assert f["head_gbps"] is None and f["head_stream_ratio"] is None


@needs_csim
@pytest.mark.parametrize("row", [1536, 2560])
def test_head_run_reads_rows(kit: Path, row: int) -> None:
    """The head run reads port k's rows k, k + 4, ... of the weight regions (rows that do not divide a
    port's bytes: the whole rows only): the runtime checks each port's word sum against exactly those rows,
    so a probe reading anything else fails the run."""
    from edgellm.runtime.emulator import EmulatorDevice

    k = pk.ProbeKit.open(kit)
    dev = EmulatorDevice(_lying_top(kit, "none"), k.iface.registers, name="probe")
    rec = cal.calibrate(k, dev, emulated=True, clock_mhz=250.0, bytes_per_port=SMALL, repeat=1,
                        head_row_bytes=row)
    (head,) = [r for r in rec["runs"] if r["name"] == cal.HEAD_RUN]
    rows = SMALL // row
    assert head["bytes_per_port"] == rows * row and rec["head_row_bytes"] == row
    assert head["samples"][0]["cycles"] == {f"w{i}": rows * row // 16 for i in range(4)}
    assert rec["figures"]["head_stream_ratio"] == 1.0  # C simulation: a beat per cycle either way
    d = pk.descriptor({0: (4096, 96)}, False, 0, 64, 96, 4 * row)
    assert (d[pk.PD_ROW_BEATS], d[pk.PD_ROW_STRIDE]) == (96, 4 * row)


@needs_csim
def test_runtime_catches_a_probe_reading_sequentially(kit: Path) -> None:
    """A probe that ignores the row pattern (reads each port's beats in one run from its first row) moves
    the right number of beats with the wrong word sums: the runtime refuses the head run."""
    from edgellm.runtime.emulator import CSIM_ARGTYPES, EmulatorDevice, build_csim_library

    lib = ctypes.CDLL(str(build_csim_library(kit, "edgellm_ddr_probe")))
    fn = lib.edgellm_csim_run
    fn.argtypes, fn.restype = CSIM_ARGTYPES, None

    def sequential(ptr, size, hdr_off, prog_off, n_desc):  # noqa: ANN001, ANN202
        mem = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(ptr.value)).view(np.uint32)
        mem[prog_off // 4 + pk.PD_ROW_BEATS] = 0
        fn(ptr, size, hdr_off, prog_off, n_desc)

    k = pk.ProbeKit.open(kit)
    dev = EmulatorDevice(sequential, k.iface.registers, name="sequential probe")
    with pytest.raises(cal.CalibrationError, match="run 'LM head rows': w0's word sum .* did not move"):
        cal.calibrate(k, dev, emulated=True, clock_mhz=250.0, bytes_per_port=SMALL, repeat=1)


@pytest.mark.parametrize("row", [8, 1000, SMALL + 4096, "2048"])
def test_head_row_option_errors(kit: Path, row: object) -> None:
    with pytest.raises(EdgeLLMError, match="head row bytes") as e:
        cal.check_options(pk.ProbeKit.open(kit), SMALL, 1, 10.0, row)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


# ---- the runtime's checks catch a probe that lies ----

def _lying_top(kit: Path, how: str):  # noqa: ANN202
    """The probe's C simulation with its report corrupted afterwards (`how`), as a broken bitstream might."""
    from edgellm.runtime.emulator import CSIM_ARGTYPES, build_csim_library

    lib = ctypes.CDLL(str(build_csim_library(kit, "edgellm_ddr_probe")))
    fn = lib.edgellm_csim_run
    fn.argtypes, fn.restype = CSIM_ARGTYPES, None

    def top(ptr, size, hdr_off, prog_off, n_desc):  # noqa: ANN001, ANN202
        fn(ptr, size, hdr_off, prog_off, n_desc)
        mem = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(ptr.value))
        words = mem.view(np.uint32)
        d = words[prog_off // 4: prog_off // 4 + pk.PD_WORDS]
        res = words[d[pk.PD_RESULT] // 4: d[pk.PD_RESULT] // 4 + pk.PR_WORDS]
        active = [s for s in range(pk.SLOTS) if d[pk.PD_ACTIVE] >> s & 1]
        s0 = active[0] * pk.PR_SLOT_WORDS
        if how == "beats":
            res[s0 + pk.PR_BEATS] -= 1
        elif how == "sum":
            res[s0 + pk.PR_SUM] ^= 1
        elif how == "cycles":
            res[s0 + pk.PR_CYCLE_LO] = 1
        elif how == "total":
            res[pk.PR_TOTAL_LO] = 1
        elif how == "idle":
            idle = next(s for s in range(pk.SLOTS) if s not in active)
            res[idle * pk.PR_SLOT_WORDS + pk.PR_BEATS] = 7
        elif how == "pattern" and d[pk.PD_DATA_WRITE]:
            words[d[pk.PD_PORTS + 2 * pk.DATA_SLOT] // 4 + 5] ^= 0x100
        elif how == "status":
            words[hdr_off // 4 + pk.PH_STATUS] = 9
    return top


@needs_csim
@pytest.mark.parametrize("how, says", [("beats", "beats, 4096 were asked"), ("sum", "did not move the bytes"),
                                       ("cycles", "at most one beat per cycle"), ("total", "end before"),
                                       ("idle", "outside its set"), ("pattern", "differs from what it wrote"),
                                       ("status", "refused run 'w0 alone': range outside the buffer")])
def test_runtime_catches_a_lying_probe(kit: Path, how: str, says: str) -> None:
    from edgellm.runtime.emulator import EmulatorDevice

    k = pk.ProbeKit.open(kit)
    dev = EmulatorDevice(_lying_top(kit, how), k.iface.registers, name="lying probe")
    with pytest.raises(cal.CalibrationError, match=says) as e:
        cal.calibrate(k, dev, emulated=True, clock_mhz=250.0, bytes_per_port=SMALL, repeat=1)
    assert "\n" not in str(e.value)


@needs_csim
def test_honest_probe_passes_the_same_checks(kit: Path) -> None:
    from edgellm.runtime.emulator import EmulatorDevice

    k = pk.ProbeKit.open(kit)
    dev = EmulatorDevice(_lying_top(kit, "none"), k.iface.registers, name="probe")
    rec = cal.calibrate(k, dev, emulated=True, clock_mhz=200.0, bytes_per_port=SMALL, repeat=1)
    assert rec["figures"]["weights_gbps"] == pytest.approx(4 * 16 * 0.2)  # a beat per cycle at 200 MHz


# ---- the pynq path: the kit's own board script against the emulated board ----

@pytest.mark.usefixtures("pynq_client_lock")  # one test at a time drives pynq's client (conftest.py)
@needs_csim
@pytest.mark.skipif(not HAVE_PYNQ, reason="pynq / grpcio not installed (pip install edgellm[board])")
def test_board_script_over_pynq_on_the_emulated_board(kit: Path, emulated: dict, tmp_path: Path) -> None:
    """run_calibration.py, with only the kit's python/ copy of the runtime, drives the probe through the
    real pynq package (Overlay of the kit's .hwh, Clocks, allocate, MMIO) on `edgellm board-emulator`'s
    board serving the kit: the same figures as the emulator, and the file says it is emulated."""
    from edgellm.board_emulator.server import BoardServer, make_board, prepare

    work = tmp_path / "kit"
    shutil.copytree(kit, work)
    k = pk.ProbeKit.open(work)
    prepared = prepare(k)
    try:
        board = make_board(k, prepared)
        server = BoardServer(board, "127.0.0.1", 0)
        server.start()
        try:
            out = tmp_path / "pynq.json"
            env = {**os.environ, "PYNQ_REMOTE_DEVICES": server.address, "PYTHONPATH": ""}
            res = subprocess.run([sys.executable, str(work / "run_calibration.py"), "-o", str(out),
                                  "--bytes-per-port", str(SMALL), "--repeat", "2", "--device", "pynq"],
                                 capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        finally:
            server.stop()
    finally:
        prepared.cleanup()
    assert res.returncode == 0, res.stdout + res.stderr
    rec = json.loads(out.read_text())
    assert rec["emulated"] is True and rec["device"].startswith("pynq:edgellm_ddr_probe_0@127.0.0.1:")
    assert rec["clock_mhz"] == pytest.approx(250.0, rel=1e-3) and rec["tools"]["pynq"]
    # the same counts as the emulator's; GB/s at the PL clock pynq reports (the PLL's 249.99.. MHz)
    def counts(record: dict) -> list:
        return [[(s["cycles"], s["total_cycles"]) for s in r["samples"]] for r in record["runs"]]
    assert counts(rec) == counts(emulated)
    for k in ("weights_gbps", "all_gbps", "ddr_pl_gbps", "shared_path_gbps", "cci_stream_gbps"):
        assert rec["figures"][k] == pytest.approx(emulated["figures"][k] * rec["clock_mhz"] / 250.0, abs=1e-3)
    assert board.state()["downloads"] == 1 and board.state()["starts"] == 2 * len(rec["runs"])
    assert not (work / "edgellm_ddr_probe.bit").exists()  # the emulation bitstream went with the board


@pytest.mark.usefixtures("pynq_client_lock")  # one test at a time drives pynq's client (conftest.py)
@needs_csim
@pytest.mark.skipif(not HAVE_PYNQ, reason="pynq / grpcio not installed (pip install edgellm[board])")
def test_board_emulator_command_serves_a_kit(kit: Path, tmp_path: Path) -> None:
    """`edgellm board-emulator KIT` serves the probe; `edgellm calibrate KIT --device pynq` over
    PYNQ_REMOTE_DEVICES writes an emulated file; SIGTERM stops the board and removes its bitstream."""
    import signal

    work = tmp_path / "kit"
    shutil.copytree(kit, work)
    cmd = [sys.executable, "-m", "edgellm.cli", "board-emulator", str(work), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = read_line(proc, 60)
        assert "edgellm_ddr_probe of" in line and (work / "edgellm_ddr_probe.bit").is_file()
        port = int(line.split("on 127.0.0.1:")[1].split()[0])
        assert f"edgellm calibrate {work} --device pynq" in read_line(proc, 10)
        out = tmp_path / "c.json"
        env = {**os.environ, "PYNQ_REMOTE_DEVICES": f"127.0.0.1:{port}"}
        res = subprocess.run([sys.executable, "-m", "edgellm.cli", "calibrate", str(work), "--device", "pynq",
                              "-o", str(out), "--bytes-per-port", str(SMALL), "--repeat", "1"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(out.read_text())["emulated"] is True and "EMULATED" in res.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not (work / "edgellm_ddr_probe.bit").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---- the calibration file in estimate and compile ----

def _real(emulated: dict, tmp_path: Path, **figures: object) -> Path:
    """A board-like (not emulated) calibration file: the emulated one with measured-class figures."""
    d = json.loads(json.dumps(emulated))
    d.update(emulated=False, note="", clock_mhz=249.9975)
    d["figures"].update(weights_gbps=12.0, all_gbps=13.5, ddr_pl_gbps=13.5, shared_path_gbps=6.0,
                        cci_stream_gbps=2.9, port_stream_gbps=3.8)
    d["figures"].update(figures)
    p = tmp_path / "real.json"
    p.write_text(json.dumps(d))
    return p


def test_measured_board_reproduces_the_measurement(emulated: dict, tmp_path: Path) -> None:
    """The measured figures become the central entries (the ends widened to include them), the board's
    sources name the file, and the model gives back the measured weight stream for the kit's ports."""
    m = measured.read_measured(_real(emulated, tmp_path))
    board = load_board("kv260")
    b = m.apply(board)
    assert b.ddr_pl_fraction == (board.ddr_pl_fraction[0], 13.5 / 19.2, board.ddr_pl_fraction[2])
    assert b.shared_path_gbps == (5.62, 6.0, 7.60) and b.cci_stream_gbps == (2.9, 2.9, 2.99)
    assert b.port_stream_gbps == (3.69, 3.8, 3.94)  # the lone stream's central: the rate shares follow it
    assert measured.read_measured(_real(emulated, tmp_path, port_stream_gbps=None)).apply(board
                                  ).port_stream_gbps == board.port_stream_gbps  # an older file: the board's
    assert b.head_stream_ratio == 1.0  # the emulated file's head run: the same beat per cycle
    assert "measured on the board by" in b.sources["measured"] and "real.json" in b.sources["measured"]
    model, got = measured.model_check(m, board)
    assert model == pytest.approx(got, rel=1e-9) and got == 12.0
    assert measured.Measured.from_config(m.to_config()) == m


def test_measured_head_ratio_prices_the_head(emulated: dict, tmp_path: Path) -> None:
    """The kit's head run prices the design's LM head: rows measured at 0.8 of the weight streams move at
    0.8 of their per-port rate; a file from before the head run leaves the head priced as the weight
    streams (and still reads)."""
    from edgellm.compiler.cost import ddr, lm_head
    from edgellm.models.config import PRESETS

    cfg, board = PRESETS["bitnet_b1_58-large"], load_board("kv260")
    p = DesignParams(rows=16, weight_ports=4, clock_mhz=249.9975)
    slow = measured.read_measured(_real(emulated, tmp_path, head_stream_ratio=0.8)).apply(board)
    assert slow.head_stream_ratio == 0.8 and "LM head rows 0.800 x" in slow.sources["measured"]
    d = json.loads(_real(emulated, tmp_path).read_text())
    del d["figures"]["head_stream_ratio"], d["figures"]["head_gbps"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(d))
    m = measured.read_measured(old)
    assert m.head_stream_ratio is None and measured.Measured.from_config(m.to_config()) == m
    plain = m.apply(board)
    assert plain.head_stream_ratio is None
    for fn, arg in ((ddr.port_bytes_per_cycle, 16), (ddr.head_stream_bytes_per_s, 4)):
        assert fn(slow, p, arg) == pytest.approx(0.8 * fn(plain, p, arg))
    assert lm_head.seconds(cfg, slow, p) > 1.2 * lm_head.seconds(cfg, plain, p)  # the head is stream-bound


def _fixed_explore(seen: dict):  # noqa: ANN202
    """dse.explore replaced by a fixed design (the search is other tests' subject, and slow); records the
    board and clock it was given."""
    from edgellm.compiler import dse
    from edgellm.compiler.estimate import estimate

    def fixed(cfg, board, base=None, limits=None, clock_mhz=None, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.update(board=board, clock=clock_mhz)
        p = DesignParams(tables=15, weight_ports=4, weight_buffer="bram", prefill_token_block=8,
                         clock_mhz=clock_mhz or board.pl_clock_mhz)
        return dse.DseResult(p, estimate(cfg, board, p), 1, 1)
    return fixed


def test_estimate_measured(emulated: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.compiler import dse

    seen: dict = {}
    monkeypatch.setattr(dse, "explore", _fixed_explore(seen))
    f = _real(emulated, tmp_path)
    res = runner.invoke(app, ["estimate", "--board", "kv260", "--measured", str(f)])
    assert res.exit_code == 0, res.output
    assert seen["clock"] == 249.9975 and seen["board"].ddr_achievable_gbps == pytest.approx(13.5)
    text = " ".join(res.stdout.split())
    assert "kv260 central: 249.998 MHz" in text and f"measured on the board by {f}" in text
    assert "the model gives 12.00 GB/s of weights for the kit's 4 ports, measured 12.00 (+0.0%)" in text
    res = runner.invoke(app, ["estimate", "--board", "kv260", "--measured", str(f), "--clock", "200"])
    assert res.exit_code == 0 and seen["clock"] == 200.0


def test_estimate_refuses_an_emulated_file_unless_allowed(emulated: dict, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.compiler import dse

    seen: dict = {}
    monkeypatch.setattr(dse, "explore", _fixed_explore(seen))
    f = tmp_path / "emu.json"
    f.write_text(json.dumps(emulated))
    err = _one_line_error(runner.invoke(app, ["estimate", "--board", "kv260", "--measured", str(f)]))
    assert "is emulated" in err and "--allow-emulated" in err and not seen
    res = runner.invoke(app, ["estimate", "--board", "kv260", "--measured", str(f), "--allow-emulated"])
    assert res.exit_code == 0, res.output
    assert "EMULATED (C simulation, not a measurement)" in " ".join(res.stdout.split())
    assert seen["board"].ddr_pl_fraction[1] == 1.0  # its ideal 20 GB/s, capped at the DDR peak


@pytest.mark.parametrize("case, says", [
    ("not json", "not valid JSON"), ("nan", "NaN is not a number"),
    ("negative", "must be a finite number > 0"), ("zero", "must be a finite number > 0"),
    ("string", "must be a finite number > 0"),
    ("other board", "was measured on zcu104: use it with --board zcu104"), ("no figures", "must be objects"),
    ("format", "not an edgellm calibration file"), ("above peak", "exceeds the kv260's DDR peak"),
    ("weights above all", "exceeds ddr_pl_gbps"), ("missing", "no such calibration file"),
    ("clock", "clock_mhz must be a finite number > 0"), ("list", "not an edgellm calibration file"),
    ("head ratio", "head_stream_ratio 2: the LM head's rows cannot outrun")])
def test_bad_calibration_file_is_one_line(emulated: dict, tmp_path: Path, case: str, says: str) -> None:
    f = _real(emulated, tmp_path)
    d = json.loads(f.read_text())
    text = None
    if case == "not json":
        text = '{"format": "edgellm.calibration/1", '
    elif case == "nan":
        text = f.read_text().replace('"weights_gbps": 12.0', '"weights_gbps": NaN')
    elif case in ("negative", "zero", "string"):
        d["figures"]["shared_path_gbps"] = {"negative": -6.0, "zero": 0, "string": "6"}[case]
    elif case == "other board":
        d["board"] = "zcu104"
    elif case == "no figures":
        del d["figures"]
    elif case == "format":
        d["format"] = "edgellm.calibration/0"
    elif case == "above peak":
        d["figures"].update(ddr_pl_gbps=25.0, weights_gbps=24.0)
    elif case == "weights above all":
        d["figures"]["weights_gbps"] = 20.0
    elif case == "missing":
        f = tmp_path / "absent.json"
    elif case == "clock":
        d["clock_mhz"] = -250
    elif case == "list":
        text = "[1, 2]"
    elif case == "head ratio":
        d["figures"]["head_stream_ratio"] = 2.0
    if case != "missing":
        f.write_text(text if text is not None else json.dumps(d))
    err = _one_line_error(runner.invoke(app, ["estimate", "--board", "kv260", "--measured", str(f)]))
    assert says in err, err


def test_measured_option_errors(emulated: dict, tmp_path: Path) -> None:
    f = _real(emulated, tmp_path)
    assert "--board kv260 (not" in _one_line_error(runner.invoke(app, ["estimate", "--board", "all",
                                                                       "--measured", str(f)]))
    assert "--allow-emulated goes with --measured" in _one_line_error(
        runner.invoke(app, ["estimate", "--allow-emulated"]))
    assert "use it with --board kv260" in _one_line_error(
        runner.invoke(app, ["compile", "--board", "zcu104", "--measured", str(f), "-o", str(tmp_path / "p")]))
    assert not (tmp_path / "p").exists()


def test_compile_measured(emulated: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile --measured: the DSE sees the measured board at the measured clock, report/estimate.json
    names the file as the central assumption, the manifest records the figures it was built with."""
    from edgellm.compiler import dse
    from edgellm.models.config import ModelConfig
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    seen: dict = {}
    monkeypatch.setattr(dse, "explore", _fixed_explore(seen))
    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                      max_context=64, bos_id=1, eos_id=2, name="cal")
    ckpt = save_hf_bitnet(random_model(cfg, seed=3, density=0.5), tmp_path / "ckpt")
    f = _real(emulated, tmp_path)
    out = tmp_path / "proj"
    res = runner.invoke(app, ["compile", str(ckpt), "--board", "kv260", "-o", str(out), "--measured", str(f),
                              "--no-onnx-reference", "--reference-decode", "1"])
    assert res.exit_code == 0, res.output
    assert seen["clock"] == 249.9975 and seen["board"].sources["measured"].startswith("measured on the board")
    rep = json.loads((out / "report" / "estimate.json").read_text())
    assert f"measured on the board by {f}" in rep["assumptions"]["central"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["build"]["config"]["measured"]["weights_gbps"] == 12.0
    assert man["board"]["ddr_pl_fraction"][1] == pytest.approx(13.5 / 19.2)
    assert man["design"]["clock_mhz"] == 249.9975


# ---- writing and running a kit: bad input ----

def test_kit_write_errors(tmp_path: Path, kit: Path) -> None:
    out = tmp_path / "k"
    assert "1..4 weight ports" in _one_line_error(runner.invoke(app, ["calibrate", "--weight-ports", "5",
                                                                      "-o", str(out)]))
    for clock in ("nan", "-1", "0"):
        res = runner.invoke(app, ["calibrate", "--clock", clock, "-o", str(out)])
        assert "--clock" in _one_line_error(res)
    assert "unknown board" in _one_line_error(runner.invoke(app, ["calibrate", "--board", "nope"]))
    assert "only when running a kit" in _one_line_error(runner.invoke(app, ["calibrate", "--device", "emu"]))
    assert not out.exists()
    assert runner.invoke(app, ["calibrate", "-o", str(out)]).exit_code == 0
    before = (out / "manifest.json").read_text()
    assert "exists; pass --force" in _one_line_error(runner.invoke(app, ["calibrate", "-o", str(out)]))
    assert runner.invoke(app, ["calibrate", "-o", str(out), "--force", "--weight-ports", "2"]).exit_code == 0
    assert pk.ProbeKit.open(out).weight_ports == 2 and (out / "manifest.json").read_text() != before
    (out / "notes.txt").write_text("mine")
    err = _one_line_error(runner.invoke(app, ["calibrate", "-o", str(out), "--force"]))
    assert "notes.txt is not listed" in err and (out / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.bin").write_bytes(b"x")
    assert "not (only) a calibration kit" in _one_line_error(
        runner.invoke(app, ["calibrate", "-o", str(other), "--force"]))
    assert (other / "data.bin").read_bytes() == b"x"
    assert not list(tmp_path.glob(".*partial"))


def test_kit_run_errors(tmp_path: Path, kit: Path) -> None:
    work = tmp_path / "k"
    shutil.copytree(kit, work)
    res_file = tmp_path / "c.json"
    assert "a kit for kv260, not zcu104" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--board", "zcu104", "--device", "emu"]))
    assert "shape a kit when writing it" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--clock", "200"]))
    for bad in ("4000", "0", "4097", "-4096", str(1 << 40)):
        assert "bytes per port" in _one_line_error(runner.invoke(
            app, ["calibrate", str(work), "--device", "emu", "--bytes-per-port", bad, "-o", str(res_file)]))
    for bad in ("0", "-1", "101"):
        assert "repeat must be" in _one_line_error(
            runner.invoke(app, ["calibrate", str(work), "--repeat", bad, "-o", str(res_file)]))
    assert "auto, emu or pynq" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--device", "fpga", "-o", str(res_file)]))
    assert "timeout must be" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--timeout", "nan", "-o", str(res_file)]))
    res_file.write_text("keep")
    assert "exists; pass --force" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--device", "emu", "-o", str(res_file)]))
    assert res_file.read_text() == "keep"
    (work / "hls" / "top.cpp").write_text((work / "hls" / "top.cpp").read_text() + "\n// edited\n")
    assert "does not match the manifest" in _one_line_error(
        runner.invoke(app, ["calibrate", str(work), "--device", "emu", "-o", str(tmp_path / "d.json")]))
    assert "not a calibration kit" in _one_line_error(
        runner.invoke(app, ["calibrate", str(tmp_path), "--device", "emu"]))
    assert not (tmp_path / "d.json").exists()


def test_kit_on_a_board_needs_its_bitstream(kit: Path, tmp_path: Path) -> None:
    work = tmp_path / "k"
    shutil.copytree(kit, work)
    with pytest.raises(EdgeLLMError, match="edgellm_ddr_probe.bit and .* are needed on a board"):
        cal.open_device(pk.ProbeKit.open(work), "pynq")
