"""A project is a closed set (issue 14): run, verify, csim, build and deploy refuse unlisted, missing,
changed, symlinked and special files with one line naming the file; the C-simulation include path puts
the toolkit's headers before the project's; deploy packs only listed regular files under a safe top
folder; the csim testbench and the cache folder are bounded / checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from shared_project import make_project
from typer.testing import CliRunner

from edgellm import cli
from edgellm.compiler.manifest import list_files
from edgellm.errors import EdgeLLMError
from edgellm.runtime.project import Project, ProjectError

runner = CliRunner()
FOREIGN = '#error "a foreign header was compiled"\n'


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("closed") / "proj")


@pytest.fixture
def proj(pristine: Path, tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    shutil.copytree(pristine, d, symlinks=True)
    return d


def edit_manifest(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def one_line_error(res, *needles: str) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, res.output
    assert out.startswith("error: ") and "\n" not in out and "Traceback" not in out, out
    for n in needles:
        assert n in out, out
    return out


def _unlisted(d: Path) -> str:
    (d / "hls" / "hls_stream.h").write_text(FOREIGN)
    return "hls/hls_stream.h is not listed in manifest.json"


def _missing(d: Path) -> str:
    (d / "hls" / "tb_top.cpp").unlink()
    return "hls/tb_top.cpp is missing"


def _changed(d: Path) -> str:
    f = d / "hls" / "edgellm_config.h"
    f.write_text(f.read_text() + "\n// edited\n")
    return "hls/edgellm_config.h: sha256"


def _symlinked_file(d: Path) -> str:
    f = d / "hls" / "top.cpp"
    outside = d.parent / "top_copy.cpp"
    shutil.copyfile(f, outside)
    f.unlink()
    f.symlink_to(outside)  # same bytes, same sha256: refused for being a link
    return "hls/top.cpp is a symbolic link"


def _symlinked_dir(d: Path) -> str:
    shutil.move(d / "hls", d.parent / "hls_elsewhere")
    (d / "hls").symlink_to(d.parent / "hls_elsewhere")
    return "hls is a symbolic link"


def _fifo(d: Path) -> str:
    os.mkfifo(d / "reference" / "pipe")
    return "reference/pipe is not a regular file"


FAULTS = {"unlisted": _unlisted, "missing": _missing, "changed": _changed, "symlinked-file": _symlinked_file,
          "symlinked-dir": _symlinked_dir, "fifo": _fifo}
COMMANDS = {"run": ["run", "{d}", "--prompt-ids", "1,2,3", "--device", "emu", "-n", "1"],
            "verify": ["verify", "{d}", "--device", "emu", "--no-onnx"],
            "csim": ["csim", "{d}"], "build": ["build", "{d}"],
            "deploy": ["deploy", "{d}", "-o", "{tmp}/out.tar.gz", "--allow-missing-bitstream"]}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_open_set(proj: Path, tmp_path: Path, fault: str, command: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: unlisted files were not looked at (a foreign hls/hls_stream.h was compiled into the edgellm
    process by run/verify, by csim, synthesized by build, shipped by deploy); csim checked no sha256;
    links were followed. Now each command stops at open with one line naming the file."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools") + os.pathsep + os.environ["PATH"])
    needle = FAULTS[fault](proj)
    args = [a.format(d=proj, tmp=tmp_path) for a in COMMANDS[command]]
    one_line_error(runner.invoke(cli.app, args), needle)
    assert not (tmp_path / "out.tar.gz").exists()


def test_build_outputs_may_sit_unlisted(proj: Path) -> None:
    """What `edgellm build` adds (Vitis HLS / Vivado trees, logs, reports, <ip>.bit/.hwh) does not open
    the set; the same names elsewhere, or a header beside the sources, do."""
    for rel in ("hls/edgellm_hls/solution1/syn/verilog/x.v", "hls/ip/component.xml", "vivado/build/p.xpr",
                "vivado/.Xil/x", "vivado/vivado.log", "vivado/vivado.jou", "report/vitis_hls.log",
                "report/build/vivado/timing.json", "report/build/summary.json", "edgellm_top.bit",
                "edgellm_top.hwh", "hls/vitis_hls.log"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("x")
    Project.open(proj)
    for rel in ("hls/ip.h", "report/notes.log.h", "other.bit", "vivado/sub/vivado.log"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("x")
        with pytest.raises(ProjectError, match=f"{rel} is not listed"):
            Project.open(proj, verify=False)
        (proj / rel).unlink()
    shutil.move(proj / "hls" / "ip", proj.parent / "ip")
    (proj / "hls" / "ip").symlink_to(proj.parent / "ip")
    with pytest.raises(ProjectError, match="hls/ip is a symbolic link"):
        Project.open(proj, verify=False)


def test_open_without_hashes_still_checks_the_set(proj: Path) -> None:
    """run --no-verify-checksums skips the sha256s, not the listing."""
    (proj / "hls" / "edgellm_config.h").write_text("// changed\n")
    Project.open(proj, verify=False)
    (proj / "extra.h").write_text(FOREIGN)
    with pytest.raises(ProjectError, match="extra.h is not listed"):
        Project.open(proj, verify=False)


def test_compile_lists_every_file_and_no_link(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.h").write_text("x")
    (tmp_path / "build_state.json").write_text("{}")
    assert list(list_files(tmp_path)) == ["a/x.h"]
    (tmp_path / "link").symlink_to("/etc/passwd")
    with pytest.raises(ProjectError, match="link is a symbolic link"):
        list_files(tmp_path)


def test_csim_never_reads_a_fifo_in_the_build_outputs(proj: Path) -> None:
    """Vitis HLS's tree (hls/edgellm_hls) is not walked by the closed-set check; csim used to read every
    *.h under hls/ (synth_check, the cache key), following links: a FIFO there hung it. Now it reads the
    listed sources only, and the cache key skips links and special files."""
    tree = proj / "hls" / "edgellm_hls" / "solution1"
    tree.mkdir(parents=True)
    os.mkfifo(tree / "fifo.h")
    (tree / "link.h").symlink_to(tree / "fifo.h")
    (tree / "fifo.cpp").symlink_to(tree / "fifo.h")
    res = subprocess.run([sys.executable, "-m", "edgellm.cli", "csim", str(proj), "--decode-steps", "1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "csim: PASS" in res.stdout


# ---- include order ----

def test_library_build_puts_the_toolkit_headers_first(tmp_path: Path) -> None:
    """hw/csim.build (the emulator's library): a project's folder used to come before hls4ml's
    ap_types, so its hls_stream.h replaced the real one. Now it is searched last."""
    from edgellm.hw import csim

    proj = tmp_path / "hls"
    proj.mkdir()
    (proj / "hls_stream.h").write_text(FOREIGN)
    (proj / "ap_int.h").write_text(FOREIGN)
    (proj / "own.h").write_text("#pragma once\nstatic const int own_value = 7;\n")
    src = tmp_path / "src" / "entry.cpp"
    src.parent.mkdir()
    src.write_text('#include "hls_stream.h"\n#include <ap_int.h>\n#include "own.h"\n'
                   'extern "C" int probe() { hls::stream<int> s; s.write(own_value); return s.read(); }\n')
    lib = csim.load([src], "include_order_probe", includes=[proj])
    assert lib.probe() == 7


def test_testbench_build_puts_the_toolkit_headers_first(tmp_path: Path) -> None:
    """edgellm csim's testbench build: same ordering (-I hls used to precede ap_types)."""
    from edgellm.commands.csim import build_testbench

    hls = tmp_path / "hls"
    (hls / "edgellm").mkdir(parents=True)
    (hls / "hls_stream.h").write_text(FOREIGN)
    (hls / "edgellm_config.h").write_text("#pragma once\nstatic const int cfg_value = 3;\n")
    (hls / "edgellm" / "k.h").write_text('#pragma once\n#include "hls_stream.h"\n'
                                         '#include "edgellm_config.h"\n'
                                         "inline int k() { hls::stream<int> s; s.write(cfg_value); "
                                         "return s.read(); }\n")
    (hls / "top.cpp").write_text('#include "edgellm/k.h"\nint top() { return k(); }\n')
    (hls / "tb_top.cpp").write_text("int top();\nint main() { return top() == 3 ? 0 : 1; }\n")
    exe = build_testbench(hls)
    assert subprocess.run([str(exe)], timeout=60).returncode == 0


# ---- interface.ip_name ----

@pytest.mark.parametrize("ip", ["../evil", "/tmp/evil", "a/b", "top-1"])
def test_ip_name_cannot_leave_the_project(proj: Path, tmp_path: Path, ip: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """ip_name names <ip>.bit, the IP and the emulator's library: `../x` used to write the library
    outside the cache and make build/deploy copy or pack files outside the project."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools") + os.pathsep + os.environ["PATH"])
    edit_manifest(proj, lambda m: m["interface"].__setitem__("ip_name", ip))
    for args in (["build", str(proj)], ["deploy", str(proj), "-o", str(tmp_path / "o.tar.gz")],
                 ["run", str(proj), "--prompt-ids", "1", "--device", "emu"]):
        one_line_error(runner.invoke(cli.app, args), "'interface.ip_name' must be a C identifier")


# ---- deploy archive hygiene ----

@pytest.mark.parametrize("name", ["...tar.gz", "..tgz", ".hidden.tar.gz", "a b.tar.gz", "x.zip"])
def test_deploy_refuses_unsafe_archive_names(proj: Path, tmp_path: Path, name: str) -> None:
    """`...tar.gz` used to give members named ../project/...: a plain extract wrote outside the folder."""
    res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(tmp_path / name),
                                  "--allow-missing-bitstream"])
    one_line_error(res, "archive name")
    assert not list(tmp_path.glob("*.tar.gz")) and not list(tmp_path.glob(".*tar.gz*"))


def test_deploy_refuses_bad_outputs(proj: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.tar.gz").mkdir()
    for out, needle in ((tmp_path / "file" / "a.tar.gz", "cannot write"),
                        (tmp_path / "dir.tar.gz", "is a directory"),
                        (proj / "a.tar.gz", "lies inside the project")):
        res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(out), "--allow-missing-bitstream"])
        one_line_error(res, needle)
    Project.open(proj)  # nothing was added to it


def test_deploy_replaces_an_existing_archive_only_with_force(proj: Path, tmp_path: Path) -> None:
    """-o naming an existing file (the user's, or an earlier archive) silently replaced it; now it is one
    error line and the file is untouched, and --force replaces it (atomically, as a fresh write)."""
    out = tmp_path / "a.tar.gz"
    out.write_bytes(b"the user's file")
    res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(out), "--allow-missing-bitstream"])
    one_line_error(res, f"{out} exists; pass --force to replace it")
    assert out.read_bytes() == b"the user's file"
    res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(out), "--allow-missing-bitstream",
                                  "--force"])
    assert res.exit_code == 0, res.output
    with tarfile.open(out) as t:
        assert "a/project/manifest.json" in t.getnames()
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []  # no temporary file left


def test_deploy_refuses_an_absolute_link(proj: Path, tmp_path: Path) -> None:
    """A link to /etc/passwd in the project used to be packed as a link."""
    (proj / "passwd").symlink_to("/etc/passwd")
    res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(tmp_path / "a.tar.gz"),
                                  "--allow-missing-bitstream"])
    one_line_error(res, "passwd is a symbolic link")
    assert not (tmp_path / "a.tar.gz").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_deploy_archive_mode_follows_the_umask(proj: Path, tmp_path: Path, umask: int) -> None:
    """The archive was written 0600 (mkstemp) whatever the umask: it is 0666 & ~umask like any file."""
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(umask)
    try:
        res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(out / "a.tar.gz"),
                                      "--allow-missing-bitstream"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert (out / "a.tar.gz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [f.name for f in out.iterdir()] == ["a.tar.gz"]  # no temporary file left


def test_deploy_packs_a_closed_set_of_regular_files(proj: Path, tmp_path: Path) -> None:
    for ext in ("bit", "hwh"):
        (proj / f"edgellm_top.{ext}").write_bytes(b"built " + ext.encode())
    (proj / "vivado" / "build").mkdir()
    (proj / "vivado" / "build" / "big.dcp").write_bytes(b"not shipped")
    res = runner.invoke(cli.app, ["deploy", str(proj), "-o", str(tmp_path / "edge-1.0.tar.gz")])
    assert res.exit_code == 0, res.output
    with tarfile.open(tmp_path / "edge-1.0.tar.gz") as t:
        members = t.getmembers()
        assert all(m.isreg() for m in members)
        assert all(m.name.startswith("edge-1.0/") and ".." not in m.name.split("/") for m in members)
        names = {m.name.removeprefix("edge-1.0/") for m in members}
        t.extractall(tmp_path / "x", filter="data")
    packed = {n.removeprefix("project/") for n in names if n.startswith("project/")}
    assert "project/hls/top.cpp" in names and "project/edgellm_top.bit" in names
    assert not any(n.startswith(("vivado/", "report/", "reference/")) for n in packed)
    root = tmp_path / "x" / "edge-1.0" / "project"
    m = json.loads((root / "manifest.json").read_text())
    assert set(m["files"]) == packed - {"manifest.json"}  # the archive's manifest lists what it holds
    assert "vivado/build.tcl" in m["deploy"]["omitted"]
    p = Project.open(root)  # the deployed project is a closed set, bitstream included
    assert p.listed["edgellm_top.bit"] == list_files(proj)["edgellm_top.bit"]
    (root / "edgellm_top.bit").write_bytes(b"other")
    with pytest.raises(ProjectError, match="edgellm_top.bit: sha256"):
        Project.open(root)


# ---- csim: bounded testbench, cache folder ----

HANG = """#!/bin/sh
sleep 60 &
echo $! > "{pidfile}"
echo "testbench started"
sleep 60
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split()[2] != "Z"


def _hanging_testbench(tmp_path: Path) -> tuple[Path, Path]:
    exe, pidfile = tmp_path / "tb_hang", tmp_path / "child.pid"
    exe.write_text(HANG.format(pidfile=pidfile))
    exe.chmod(0o755)
    return exe, pidfile


def test_testbench_timeout_kills_the_process_group(tmp_path: Path) -> None:
    """The testbench used to be waited for without a bound."""
    from edgellm.commands.csim import run_testbench

    exe, pidfile = _hanging_testbench(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(EdgeLLMError, match=r"ran longer than --timeout 0.5 s; killed it"):
        run_testbench(exe, tmp_path, timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_compiler_runs_are_bounded(tmp_path: Path) -> None:
    """g++ used to be waited for without a bound; now its whole process group goes on a timeout."""
    from edgellm.hw import csim

    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    with pytest.raises(EdgeLLMError, match="took more than 0.5 s; stopped"):
        csim.run_compiler(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; sleep 60"], "probe", timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_csim_timeout_option(proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.commands import csim as csim_cmd

    exe, _ = _hanging_testbench(tmp_path)
    monkeypatch.setattr(csim_cmd, "build_testbench", lambda hls, threads=False, sanitize=False: exe)
    res = runner.invoke(cli.app, ["csim", str(proj), "--timeout", "1"])
    assert res.exit_code == 2, res.output
    assert "error: the C-simulation testbench ran longer than --timeout 1 s" in res.output
    for bad in ("nan", "inf", "0", "-1", "1e9"):
        res = runner.invoke(cli.app, ["csim", str(proj), "--timeout", bad])
        one_line_error(res, "--timeout must be a finite number of seconds")


def test_cache_folder_that_is_a_file(proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGELLM_CACHE naming a regular file used to raise FileExistsError / NotADirectoryError."""
    from edgellm.hw import csim

    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cachefile"))
    with pytest.raises(EdgeLLMError, match="EDGELLM_CACHE=.*cachefile"):
        csim.cache_dir()
    one_line_error(runner.invoke(cli.app, ["csim", str(proj)]), "C-simulation cache")


def test_board_runtime_stays_numpy_only() -> None:
    """The new runtime modules import nothing beyond the standard library, numpy and edgellm."""
    code = ("import sys; import edgellm.runtime.project, edgellm.runtime.manifest_schema, "
            "edgellm.runtime.project_files; "
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'typer', 'tokenizers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.strip() == "[]"
