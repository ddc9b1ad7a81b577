"""Opening a project directory: manifest validation, checksums, the host embedding lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_runtime_support import TINY, sha, write_project

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
    e[0] ^= 0x80
    (proj / "embed.bin").write_bytes(bytes(e))
    with pytest.raises(ProjectError, match="embed.bin: sha256"):
        Project.open(proj)
    (proj / "embed.bin").write_bytes(bytes(e[:-2]))
    edit(proj, lambda m: m["host"].__setitem__("sha256", sha(proj / "embed.bin")))
    with pytest.raises(ProjectError, match=r"embed.bin: 6142 bytes, expected 6144 \(\[96\]\[32\] bf16\)"):
        Project.open(proj).embed_table()
    (proj / "extra.txt").write_text("x")
    edit(proj, lambda m: m["files"].__setitem__("extra.txt", "0" * 64))
    with pytest.raises(ProjectError, match="extra.txt: sha256"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"gone.bin": "0" * 64}))
    assert Project.open(proj).verify_files() == ["gone.bin"]  # optional (build-only) files may be absent
    edit(proj, lambda m: m.__setitem__("tokenizer", "tokenizer.json"))
    with pytest.raises(ProjectError, match="tokenizer.json is missing"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"tokenizer.json": "0" * 64}))
    with pytest.raises(ProjectError, match="tokenizer.json is missing"):
        Project.open(proj)
    edit(proj, lambda m: m.__setitem__("files", {"../outside": "0" * 64}))
    with pytest.raises(ProjectError, match="lies outside the project"):
        Project.open(proj)


@pytest.mark.parametrize("mutate, msg", [
    (lambda m: m.pop("interface"), "missing field 'interface'"),
    (lambda m: m["interface"].pop("max_t"), "missing field 'interface.max_t'"),
    (lambda m: m["host"].pop("sha256"), "missing field 'host.sha256'"),
    (lambda m: m.__setitem__("schema", "edgellm.manifest/9"), "schema 'edgellm.manifest/9' is not supported"),
    (lambda m: m["interface"].__setitem__("version", 2), "interface version 2 != 1"),
    (lambda m: m["model"].__setitem__("hidden_size", -1), "bad model/numerics section"),
    (lambda m: m["model"].__setitem__("bogus", 1), "unknown keys"),
    (lambda m: m["memory"]["regions"].pop("logits"), "no 'logits' region"),
    (lambda m: m["memory"]["regions"]["h"].__setitem__("size", 4), "region 'h' holds 4 bytes"),
    (lambda m: m["interface"].__setitem__("prog_off", 0), "prog_off 0 is not the program region"),
    (lambda m: m["host"].__setitem__("embed_dtype", "f16"), "embed_dtype 'f16'"),
    (lambda m: m["host"].__setitem__("vocab", 3), "host embedding \\[3\\]"),
])
def test_manifest_errors(proj: Path, mutate, msg: str) -> None:
    edit(proj, mutate)
    with pytest.raises(ProjectError, match=msg) as e:
        Project.open(proj)
    assert "\n" not in str(e.value) and "manifest.json" in str(e.value)


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
