"""The Tcl recorders the tests run generated scripts under (tclsh, no Vivado): every command Tcl does not
know is recorded with its arguments, and the calls come back as argument lists (test_vivado_tcl,
test_codegen_hls, test_calibrate). Test modules import these from here, never from each other."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TCLSH = shutil.which("tclsh")
SEP = "\x1f"  # separates a recorded call's arguments in the driver's output


def _run_driver(driver: Path, text: str) -> list[list[str]]:
    """Write text as the Tcl driver, run it under tclsh (bounded); the recorded calls."""
    driver.write_text(text)
    res = subprocess.run([TCLSH, str(driver)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split(SEP) for line in res.stdout.splitlines() if line]


# Records every command Tcl does not know (all of Vivado's) and returns its last argument, which is
# the object name for create_bd_cell / get_bd_* / get_files, and the pattern for get_board_parts (so
# the board files count as installed). `file copy` / `file delete` are recorded, not executed; one-
# argument `puts` (messages) is recorded too. get_property answers the run properties.
VIVADO_PRELUDE = r"""
set ::calls {}
proc unknown {args} { lappend ::calls $args; return [lindex $args end] }
proc get_property {name args} {
    lappend ::calls [concat get_property $name $args]
    switch -- $name {
        STATS.WNS { return 0.125 }
        STATS.TNS { return 0.0 }
        STATS.WHS { return 0.011 }
        default { return "100%" }
    }
}
proc make_wrapper {args} { lappend ::calls [linsert $args 0 make_wrapper]; return /tmp/design_1_wrapper.v }
rename file _tcl_file
proc file {sub args} {
    if {$sub in {copy delete}} { lappend ::calls [linsert $args 0 file $sub]; return }
    return [_tcl_file $sub {*}$args]
}
rename glob _tcl_glob
proc glob {args} { return /tmp/design_1.hwh }
rename puts _tcl_puts
proc puts {args} {
    if {[llength $args] == 1} { lappend ::calls [list puts [lindex $args 0]]; return }
    _tcl_puts {*}$args
}
"""
VIVADO_EPILOGUE = r"""
foreach c $::calls { _tcl_puts [join $c "\x1f"] }
"""


def run_recorded(script: Path, extra: str = "") -> list[list[str]]:
    """Source a Vivado `script` under tclsh with the recorder prelude; return the calls as argument lists."""
    return _run_driver(script.parent / "driver.tcl",
                       VIVADO_PRELUDE + extra + f"source {{{script}}}\n" + VIVADO_EPILOGUE)


def calls_of(calls: list[list[str]], name: str) -> list[list[str]]:
    """The recorded calls of command `name`."""
    return [c for c in calls if c[0] == name]


# The HLS recorder: Vitis HLS's commands recorded (returning ""), `file copy/delete/mkdir` recorded,
# every file exists; at `exit` the calls are printed, each on a line starting "CALL ", and the script's
# exit code kept. A proc defined in `extra` replaces one (e.g. to fail).
HLS_PRELUDE = r"""
set ::calls {}
proc unknown {args} { lappend ::calls $args; return "" }
rename file _tcl_file
proc file {sub args} {
    if {$sub in {copy delete mkdir}} { lappend ::calls [linsert $args 0 file $sub]; return }
    if {$sub eq "exists"} { return 1 }
    return [_tcl_file $sub {*}$args]
}
rename exit _tcl_exit
proc exit {{code 0}} { foreach c $::calls { puts "CALL [join $c "\x1f"]" }; _tcl_exit $code }
"""


def run_hls(script: Path, driver: Path, extra: str = "", env: dict[str, str] | None = None
            ) -> tuple[int, str, list[list[str]]]:
    """(exit code, output lines that are not calls plus stderr, recorded calls) of run_hls.tcl `script`
    sourced under tclsh after HLS_PRELUDE and extra (driver: the driver file to write; env: variables
    added to this process's)."""
    driver.write_text(HLS_PRELUDE + extra + f"source {{{script}}}\n")
    res = subprocess.run([TCLSH or "tclsh", str(driver)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, **(env or {})})
    lines = res.stdout.splitlines()
    calls = [ln[5:].split(SEP) for ln in lines if ln.startswith("CALL ")]
    text = "\n".join(ln for ln in lines if not ln.startswith("CALL ")) + res.stderr
    return res.returncode, text, calls


def run_hls_tcl(script: Path, steps: str | None) -> list[list[str]]:
    """The recorded calls of run_hls.tcl with EDGELLM_HLS_STEPS = steps (None: unset); it must exit 0."""
    env = "" if steps is None else f"set ::env(EDGELLM_HLS_STEPS) {{{steps}}}\n"
    rc, text, calls = run_hls(script, script.parent / "driver.tcl", env)
    assert rc == 0, text
    return calls
