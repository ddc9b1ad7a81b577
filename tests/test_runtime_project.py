"""Opening a project directory: manifest validation, checksums, the host embedding lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, sha, write_project
from shared_fixtures import run_cli

from edgellm.compiler import interface as itf
from edgellm.models.random_model import random_model
from edgellm.runtime.project import Project, ProjectError


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=11)


@pytest.fixture
def proj(qm, tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", qm)


def edit(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def test_open_and_embed(qm, proj: Path) -> None:
    p = Project.open(proj)
    assert p.config == qm.config and p.iface.max_t == 4 and p.iface.max_ctx == 32
    toks = np.array([0, 5, 95])
    assert np.array_equal(p.embed_rows(toks), qm.embed_rows(toks))
    img = p.image()
    assert img.size == p.static_bytes
    with pytest.raises(Exception, match="out of range"):
        p.embed_rows(np.array([96]))


def test_checksum_mismatch_refused(proj: Path) -> None:
    w = bytearray((proj / "weights.bin").read_bytes())
    w[5000] ^= 1
    (proj / "weights.bin").write_bytes(bytes(w))
    with pytest.raises(ProjectError, match=r"weights.bin: sha256 .* does not match the manifest's .*refus"):
        Project.open(proj)
    Project.open(proj, verify=False)  # explicitly skipped


def test_embed_and_listed_files_checked(proj: Path) -> None:
    e = bytearray((proj / "embed.bin").read_bytes())
    good = bytes(e)
    e[0] ^= 0x80
    (proj / "embed.bin").write_bytes(bytes(e))
    with pytest.raises(ProjectError, match="embed.bin: sha256"):
        Project.open(proj)
    (proj / "embed.bin").write_bytes(bytes(e[:-2]))
    edit(proj, lambda m: m["host"].__setitem__("sha256", sha(proj / "embed.bin")))
    # sizes are checked at open, before anything is hashed or allocated
    with pytest.raises(ProjectError, match=r"embed.bin: 6142 bytes, expected 6144 \(\[96\]\[32\] bf16\)"):
        Project.open(proj, verify=False)
    (proj / "embed.bin").write_bytes(good)
    edit(proj, lambda m: m["host"].__setitem__("sha256", sha(proj / "embed.bin")))
    (proj / "extra.txt").write_text("x")
    edit(proj, lambda m: m["files"].__setitem__("extra.txt", "0" * 64))
    with pytest.raises(ProjectError, match="extra.txt: sha256"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"extra.txt": sha(proj / "extra.txt"), "gone.bin": "0" * 64}))
    with pytest.raises(ProjectError, match="gone.bin is missing"):  # a closed set: nothing listed is absent
        Project.open(proj, verify=False)
    edit(proj, lambda m: m.__setitem__("files", {"extra.txt": sha(proj / "extra.txt")}))
    Project.open(proj)
    edit(proj, lambda m: m.__setitem__("tokenizer", "tokenizer.json"))
    with pytest.raises(ProjectError, match="tokenizer 'tokenizer.json' is not listed in files"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"tokenizer.json": "0" * 64,
                                                 "extra.txt": sha(proj / "extra.txt")}))
    with pytest.raises(ProjectError, match="tokenizer.json is missing"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"../outside": "0" * 64}))
    with pytest.raises(ProjectError, match="files.*relative paths of plain names"):
        Project.open(proj)


@pytest.mark.parametrize("mutate, msg", [
    (lambda m: m.pop("interface"), "missing field 'interface'"),
    (lambda m: m["interface"].pop("max_t"), "missing field 'interface.max_t'"),
    (lambda m: m["host"].pop("sha256"), "missing field 'host.sha256'"),
    (lambda m: m.__setitem__("schema", "edgellm.manifest/9"), "schema 'edgellm.manifest/9' is not supported"),
    (lambda m: m["interface"].__setitem__("version", itf.INTERFACE_VERSION + 1),
     f"interface version {itf.INTERFACE_VERSION + 1} != {itf.INTERFACE_VERSION}"),
    (lambda m: m["model"].__setitem__("hidden_size", -1), "bad model/numerics section"),
    (lambda m: m["model"].__setitem__("bogus", 1), "unknown keys"),
    (lambda m: m["memory"]["regions"].pop("logits"), "no 'logits' region"),
    (lambda m: m["memory"]["regions"]["h"].__setitem__("size", 4), "region 'h' holds 4 bytes"),
    (lambda m: m["interface"].__setitem__("prog_off", 0), "prog_off 0 is not the program region"),
    (lambda m: m["host"].__setitem__("embed_dtype", "f16"),
     "'host.embed_dtype' must be one of bf16, f32, got 'f16'"),
    (lambda m: m["host"].__setitem__("vocab", 3), "host embedding \\[3\\]"),
])
def test_manifest_errors(proj: Path, mutate, msg: str) -> None:
    edit(proj, mutate)
    with pytest.raises(ProjectError, match=msg) as e:
        Project.open(proj)
    assert "\n" not in str(e.value) and "manifest.json" in str(e.value)


def _set(path: str, value):
    """A mutation setting the dotted field path to value."""
    def f(m: dict) -> None:
        *parents, leaf = path.split(".")
        for k in parents:
            m = m[k]
        m[leaf] = value
    return f


def _del(path: str):
    def f(m: dict) -> None:
        *parents, leaf = path.split(".")
        for k in parents:
            m = m[k]
        del m[leaf]
    return f


# Malformed manifests that used to raise a traceback (KeyError, TypeError, ValueError, AttributeError,
# IndexError), to be accepted with a wrong value (64.9 -> 64, True -> 1, a huge total_bytes that the
# driver then allocates) or to fail only later (in image()): each is now one ProjectError at open.
SCHEMA_CASES = [
    (_set("files", ["weights.bin"]), r"field 'files' must hold an object \{relative path: sha256\}"),
    (_set("files", {"weights.bin": 5}), r"'files' must hold 64 lowercase hex digits per file"),
    (_set("interface.registers", [16, 24]), r"'interface.registers' must hold an object"),
    (_set("interface.registers.hdr_off", "0x10"), r"'interface.registers' must hold C identifiers"),
    (_set("interface.registers.w1", 0x35), r"'interface.registers' must hold .*4-byte-aligned"),
    (_del("interface.registers.n_desc"), r"'n_desc' is missing"),
    (_del("memory.regions.h.offset"), r"'memory.regions' must hold regions of the form \{offset, size\}"),
    (_set("memory.regions.h", 5), r"'memory.regions' must hold regions of the form"),
    (_set("memory.regions", [1]), r"'memory.regions' must hold an object"),
    (_set("memory.regions.h.size", "512"), r"'h'.size: '512'"),
    (_set("interface", [1]), r"field 'interface' must be an object"),
    (_set("interface.max_t", float("nan")), r"'interface.max_t' must be an integer in \[1, \d+\], got nan"),
    (_set("interface.max_t", "4"), r"'interface.max_t' must be an integer .* got '4'"),
    (_set("interface.max_t", 4.9), r"'interface.max_t' must be an integer .* got 4.9"),
    (_set("interface.max_t", True), r"'interface.max_t' must be an integer .* got True"),
    (_set("interface.version", "x"), r"'interface.version' must be an integer"),
    (_set("interface.hdr_off", 10**6), r"interface.hdr_off 1000000: the 128-byte header must lie"),
    (_set("interface.hdr_off", 2), r"interface.hdr_off 2: the 128-byte header must lie 4-byte aligned"),
    (_set("interface.hdr_off", -4), r"'interface.hdr_off' must be an integer in \[0, 4294967295\]"),
    (_set("memory.total_bytes", 2**40), r"'memory.total_bytes' must be an integer in \[1, 4294967296\]"),
    (_set("board", {"name": "t", "ddr_bytes": 65536}), r"total_bytes 69632 exceeds the 65536-byte DDR"),
    (_set("memory.static_bytes", "big"), r"'memory.static_bytes' must be an integer"),
    (lambda m: (_del("weights.bytes")(m), _set("memory.static_bytes", 36864)(m)),
     r"weights.bin: 32768 bytes, expected static_bytes 36864"),
    (_set("weights.bytes", 4), r"weights.bytes 4 != memory.static_bytes 32768"),
    (_set("interface.top_k", -1), r"'interface.top_k' must be an integer in \[0, 64\], got -1"),
    (_set("interface.top_k", 10**9), r"'interface.top_k' must be an integer in \[0, 64\]"),
    (_set("interface.top_k", 64), r"region 'argmax' holds 176 bytes, needs 2064"),  # 4 head rows (max_t 4)
    (_set("interface.ip_name", "../x"), r"'interface.ip_name' must be a C identifier"),
    (_set("interface.ip_name", "/tmp/x"), r"'interface.ip_name' must be a C identifier"),
    (_set("interface.ip_name", 5), r"'interface.ip_name' must be a C identifier"),
    (_set("host.vocab", None), r"'host.vocab' must be an integer"),
    (_set("tokenizer", 5), r"'tokenizer' must be a relative path"),
    (_set("weights.file", "/etc/passwd"), r"'weights.file' must be a relative path"),
    (_set("weights.sha256", "XYZ"), r"'weights.sha256' must be 64 lowercase hex digits"),
    (_set("host.embed_file", "weights.bin"), r"weights.file and host.embed_file name the same file"),
    (_set("numerics.kv_block", 2.5), r"'numerics.kv_block' must be an integer"),
    (_set("numerics", [1]), r"'numerics' must be an object"),
    (_set("schema", 5), r"schema 5 is not supported"),
    # fields that take a value from a set (runtime/layout.py), not a range: used to pass inside the range
    (_set("design.lowbit_ports", 3), r"'design.lowbit_ports' must be one of 1, 2, 4, got 3$"),
    (_set("design.lowbit_max_group", 48),
     r"'design.lowbit_max_group' must be one of 16, 32, 64, 128, 256, got 48"),
    (_set("design.lowbit_scale_lanes", 3),
     r"'design.lowbit_scale_lanes' must be one of 1, 2, 4, 8, 16, got 3"),
    (_set("design.lowbit_float_units", 64),
     r"'design.lowbit_float_units' must be one of 1, 2, 4, 8, 16, 32, got 64"),
    (_set("design.lowbit_max_sb", 17), r"'design.lowbit_max_sb' must be an integer in \[1, 16\], got 17"),
    (_set("design.lowbit_min_group", 8),
     r"'design.lowbit_min_group' must be one of 16, 32, 64, 128, 256, got 8"),
    (_set("design.lowbit_codecs", [[8, 16, 6, 0, 0, 16, 6, 0, 0]]),  # a codec of 9 words
     r"'design.lowbit_codecs' must be a list of at most 8 lists of 10 integers in \[-2147483648, "
     r"2147483647\], got \[\[8, 16"),
    (_set("design.lowbit_codecs", [[1, 32, 0, 0, 0, 32, 0, 0, 1, 0]] * 9), r"'design.lowbit_codecs' must be"),
    (_set("design.lowbit_codecs", [[1, 32, 0, 0, 0, 32, 0, 0, 1 << 40, 0]]), r"'design.lowbit_codecs' must"),
    (_set("design.lowbit_codecs", "any"), r"'design.lowbit_codecs' must be a list"),
    (_set("design.data_port_width_bits", 100),  # the data beat bounds.Limits reads (was 12 bytes)
     r"'design.data_port_width_bits' must be one of 32, 64, 128, 256, 512, 1024, got 100"),
    (_set("design.data_port_width_bits", "x"), r"'design.data_port_width_bits' must be one of .* got 'x'"),
    (_set("design.port_width_bits", 2048), r"'design.port_width_bits' must be one of .*1024, got 2048"),
    (_set("design.lowbit_ports", True), r"'design.lowbit_ports' must be one of 1, 2, 4, got True"),
]


@pytest.mark.parametrize("mutate, msg", SCHEMA_CASES)
def test_manifest_schema(proj: Path, mutate, msg: str) -> None:
    edit(proj, mutate)
    with pytest.raises(ProjectError, match=msg) as e:
        Project.open(proj, verify=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cmd", [("csim",), ("run", "--prompt-ids", "1,2")])
def test_cli_refuses_a_value_outside_its_set(proj: Path, cmd: tuple[str, ...]) -> None:
    """`edgellm csim` / `run` on a hand-edited manifest: one error line naming the field and its values."""
    edit(proj, _set("design.lowbit_ports", 3))
    r = run_cli(cmd[0], str(proj), *cmd[1:])
    assert r.returncode != 0 and r.stdout == ""
    want = "field 'design.lowbit_ports' must be one of 1, 2, 4, got 3"
    assert r.stderr == f"error: {proj / 'manifest.json'}: {want}\n"


def test_weights_sha256_and_files_must_agree(proj: Path) -> None:
    """weights.sha256 used to be ignored when files lists weights.bin too: both are checked now."""
    real = sha(proj / "weights.bin")
    edit(proj, lambda m: m["files"].__setitem__("weights.bin", real))
    Project.open(proj)
    edit(proj, lambda m: m["weights"].__setitem__("sha256", "0" * 64))
    with pytest.raises(ProjectError, match=r"weights.sha256 and files\['weights.bin'\] disagree"):
        Project.open(proj)


def test_manifest_not_json_or_too_deep(proj: Path) -> None:
    (proj / "manifest.json").write_text("[" * 100_000)  # RecursionError in json.loads
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(proj)
    (proj / "manifest.json").write_bytes(b"{\"schema\": \"\xff\"}")
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(proj)
    (proj / "manifest.json").write_text("[1]")
    with pytest.raises(ProjectError, match="expected a JSON object"):
        Project.open(proj)


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "nope")
    with pytest.raises(ProjectError, match="manifest.json is missing"):
        Project.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(tmp_path)


def test_header_mismatch(proj: Path) -> None:
    edit(proj, lambda m: m["interface"].__setitem__("max_ctx", 16))
    msg = r"header \(layers, max_t, max_ctx\) = \(2, 4, 32\), manifest says \(2, 4, 16\)"
    with pytest.raises(ProjectError, match=msg):
        Project.open(proj).image()
