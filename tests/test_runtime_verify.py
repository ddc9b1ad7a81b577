"""The verification ladder on a project written like the compiler does, with the Python model of the
top as the device: passes when the device is exact, pinpoints the stage when it is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, PythonTop, write_project
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.compiler import interface as itf
from edgellm.models.random_model import random_model
from edgellm.runtime.emulator import EmulatorDevice
from edgellm.runtime.project import Project
from edgellm.runtime.verify import compare, image_matches, model_from_image, run_verify, ulp_distance

runner = CliRunner()


class BuggyTop(PythonTop):
    """Off by one ULP in layer 1's post-attention residual tap only (a wrong tap, not wrong math)."""

    def __call__(self, ddr, nbytes, hdr_off, prog_off, n_desc):
        super().__call__(ddr, nbytes, hdr_off, prog_off, n_desc)
        import ctypes
        mem = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ddr.value))
        hdr = mem[hdr_off:hdr_off + 128].view(np.uint32)
        prog = mem[prog_off:prog_off + 32 * n_desc].view(np.uint32).reshape(n_desc, -1)
        if any(d[itf.D_OP] == itf.OP_LAYER and d[itf.D_LAYER] == 1 and d[itf.D_FLAGS] for d in prog):
            c = self.cfg
            off = int(hdr[itf.HDR["HDR_TAPS"]]) + 4 * 4 * (2 * c.q_size + 2 * c.kv_size)  # h_attn, max_t=4
            mem[off:off + 4].view(np.uint32)[0] += 1


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=21)


@pytest.fixture
def proj(qm, tmp_path: Path) -> Project:
    return Project.open(write_project(tmp_path / "p", qm, max_t=4, max_ctx=32))


def test_verify_passes_on_exact_device(proj: Project) -> None:
    dev = EmulatorDevice(PythonTop(proj.config, proj.numerics), proj.iface.registers, name="python-top")
    rep = run_verify(proj, dev, [1, 9, 4, 33, 2, 7, 60], new_tokens=5)  # 2 prefill blocks
    assert rep.ok, [r for r in rep.rows if not r.ok]
    dev_rows = [r for r in rep.rows if r.pair == "device vs golden"]
    assert len(dev_rows) == TINY.n_layers * 7 + 3
    assert all(r.exact for r in dev_rows) and all(r.max_ulp == 0 for r in dev_rows
               if not r.stage.startswith("argmax"))
    onnx = {r.stage: r for r in rep.rows if r.pair == "onnx vs golden"}
    assert onnx["logits"].ok and onnx["logits"].max_abs < 1e-3 and onnx["greedy 5 tokens"].ok
    assert rep.tokens["device"] == rep.tokens["golden"] == rep.tokens["onnx"]
    assert len(rep.tokens["device"]) == 5
    assert any("rebuilt from" in n for n in rep.notes)  # no model_source in this manifest


def test_verify_pinpoints_a_wrong_stage(proj: Project, tmp_path: Path, monkeypatch) -> None:
    dev = EmulatorDevice(BuggyTop(proj.config, proj.numerics), proj.iface.registers, name="buggy")
    rep = run_verify(proj, dev, [5, 6, 7], new_tokens=3, onnx=False)
    bad = [r for r in rep.rows if not r.ok]
    assert [r.stage for r in bad] == ["L1.h_attn"] and bad[0].max_ulp == 1 and not rep.ok
    # the CLI: table, JSON, HTML, exit 1
    import edgellm.runtime.session as session_mod
    monkeypatch.setattr(session_mod, "open_device", lambda p, kind="auto": EmulatorDevice(
        BuggyTop(p.config, p.numerics), p.iface.registers, name="buggy"))
    j, h = tmp_path / "r.json", tmp_path / "r.html"
    res = runner.invoke(app, ["verify", str(proj.path), "--prompt-ids", "5,6,7", "-n", "3", "--no-onnx",
                              "--json", str(j), "--html", str(h)])
    assert res.exit_code == 1, res.output
    assert "verify FAILED: 1 check(s)" in res.output
    data = json.loads(j.read_text())
    assert data["ok"] is False and [r["stage"] for r in data["rows"] if not r["ok"]] == ["L1.h_attn"]
    assert "<tr class=fail><td>device vs golden</td><td>L1.h_attn</td>" in h.read_text()


def test_model_from_image(qm, proj: Project) -> None:
    rebuilt = model_from_image(proj)
    assert image_matches(rebuilt, qm) is None
    rebuilt.layers[1].ffn_norm = rebuilt.layers[1].ffn_norm + np.float32(1)
    assert image_matches(rebuilt, qm) == "layers.1.ffn_norm"


def test_compare_and_ulps() -> None:
    a = np.array([1.0, -2.0, 0.0], np.float32)
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(-3))
    assert ulp_distance(a, a) == 0 and ulp_distance(a, b) == 1
    assert ulp_distance(np.array([0.0], np.float32), np.array([-0.0], np.float32)) == 0
    r = compare("x", "s", a, b)
    assert not r.ok and not r.exact and r.max_ulp == 1
    assert compare("x", "s", a, b, tol=1e-6).ok
    assert not compare("x", "s", a, a[:2]).ok
