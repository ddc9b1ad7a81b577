"""Bounds of the emulator, the driver and the generated top (issue 14, item 5; waits: test_emulator_waits).

A compiled tiny project's weights.bin gets one header or layer-table field (or one descriptor) out of
range, its checksum fixed in the manifest so that only the bounds checks can catch it. The generated
top (program_check.h) must refuse it through the status words, naming the same field the driver's own
check (runtime/bounds.py) names; through the runtime every case is one EdgeLLMError line, never a
signal.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgellm.compiler import interface as itf
from edgellm.hw import csim
from edgellm.runtime import bounds
from edgellm.runtime.device import pointer_registers
from edgellm.runtime.emulator import EmulatorDevice

HAVE_CSIM = importlib.util.find_spec("hls4ml") is not None and shutil.which("g++") is not None
needs_csim = pytest.mark.skipif(not HAVE_CSIM, reason="C simulation needs g++ and hls4ml's ap_types headers")
H = itf.HDR
NAN, NEG, INF = itf.f32_bits(float("nan")), itf.f32_bits(-1.0), itf.f32_bits(float("inf"))
REGION_WORDS = ("HDR_LAYER_TABLE", "HDR_WEIGHTS", "HDR_PARAMS", "HDR_COS", "HDR_SIN", "HDR_K_CACHE",
                "HDR_V_CACHE", "HDR_H", "HDR_SCRATCH_F", "HDR_SCRATCH_I8", "HDR_TAPS", "HDR_HEAD_W",
                "HDR_HEAD_SCALE", "HDR_LOGITS", "HDR_ARGMAX")
DATA_BEAT = 16  # bytes of the project's data-port beat (design.data_port_width_bits 128): every region
# starts on one (the kernels stream rows a whole beat at a time from a region's start; issue 21)


# ---- the project ----


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled tiny project (random weights, 8-token blocks, SubLN)."""
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.config import ModelConfig
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    if not HAVE_CSIM:
        pytest.skip("C simulation needs g++ and hls4ml's ap_types headers")
    d = tmp_path_factory.mktemp("bounds")
    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                      max_context=64, bos_id=1, eos_id=2, name="bounds")
    ckpt = save_hf_bitnet(random_model(cfg, seed=3, density=0.5), d / "ckpt")
    run_steps(BuildConfig(model=str(ckpt), board="kv260", out_dir=str(d / "proj"), reference_onnx=False,
                          reference_new_tokens=2, overrides={"prefill_token_block": 8}), compile_steps())
    return d / "proj"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_weights(proj: Path, img: np.ndarray) -> None:
    """weights.bin := img, with the manifest's checksums fixed (only the bounds checks may object)."""
    (proj / "weights.bin").write_bytes(img.tobytes())
    mf = proj / "manifest.json"
    m = json.loads(mf.read_text())
    m["weights"]["sha256"] = sha(proj / "weights.bin")
    if isinstance(m.get("files"), dict) and "weights.bin" in m["files"]:
        m["files"]["weights.bin"] = m["weights"]["sha256"]
    mf.write_text(json.dumps(m, indent=1))


def header_cases(hdr: np.ndarray, total: int, k_top: int) -> list[tuple[str, int, int]]:
    """(header word, value, expected Status name) for every header field the top reads."""
    cases = [("HDR_MAGIC", 0x12345678, "ST_MISMATCH"), ("HDR_VERSION", 99, "ST_MISMATCH"),
             ("HDR_N_LAYERS", int(hdr[H["HDR_N_LAYERS"]]) + 1, "ST_MISMATCH"),
             ("HDR_N_LAYERS", 0xFFFFFFFF, "ST_MISMATCH"),
             ("HDR_MAX_T", int(hdr[H["HDR_MAX_T"]]) + 1, "ST_MISMATCH"),
             ("HDR_MAX_CTX", 0xFFFFFFFF, "ST_MISMATCH"), ("HDR_TOPK", k_top + 1, "ST_LIMIT"),
             ("HDR_TOPK", 0xFFFFFFFF, "ST_LIMIT"), ("HDR_EPS_BITS", NAN, "ST_FLOAT"),
             ("HDR_EPS_BITS", NEG, "ST_FLOAT"), ("HDR_ATTN_SCALE_BITS", INF, "ST_FLOAT"),
             ("HDR_ATTN_SCALE_BITS", 0, "ST_FLOAT"),
             ("HDR_FINAL_NORM", (total - int(hdr[H["HDR_PARAMS"]])) // 4, "ST_RANGE"),
             ("HDR_FINAL_NORM", 0xFFFFFFFF, "ST_RANGE")]
    for w in REGION_WORDS:
        cases += [(w, total, "ST_RANGE"), (w, 0xFFFFFFF0, "ST_RANGE")]
        # off a byte, and word-aligned but off the data beat
        cases += [(w, int(hdr[H[w]]) + 2, "ST_ALIGN"), (w, int(hdr[H[w]]) + DATA_BEAT // 2, "ST_ALIGN")]
    cases.append(("HDR_FINAL_NORM", int(hdr[H["HDR_FINAL_NORM"]]) + 1, "ST_ALIGN"))  # a float off the beat
    return cases


def layer_cases(n_layers: int, total: int) -> list[tuple[int, int, int, str]]:
    """(layer, table word, value, expected Status name) for every layer-table field of two layers."""
    cases = []
    for layer in sorted({0, n_layers - 1}):
        for i in range(len(itf.LINEAR_ORDER)):
            cases.append((layer, itf.LD_W_OFF + i, total, "ST_RANGE"))
            cases.append((layer, itf.LD_W_SCALE + i, NAN if i % 2 else INF, "ST_FLOAT"))
            cases.append((layer, itf.LD_W_OFF + i, 4, "ST_ALIGN"))  # inside, off the weight beat
        for i in range(len(itf.NORM_ORDER)):
            cases.append((layer, itf.LD_P_OFF + i, total // 4, "ST_RANGE"))
            cases.append((layer, itf.LD_P_OFF + i, 1, "ST_ALIGN"))  # a gain one float off the data beat
    return cases


def desc_cases(n_layers: int, max_t: int, max_ctx: int) -> list[tuple[np.ndarray, str, str]]:
    """(program, expected field text, expected Status name): one bad descriptor after a good one."""
    good = itf.descriptor(itf.OP_LAYER, 0, 1, 0)
    bad = [(itf.descriptor(9), "D_OP", "ST_OPCODE"),
           (itf.descriptor(itf.OP_LAYER, n_layers, 1, 0), "D_LAYER", "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, 0, 0), "D_T_LEN", "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, max_t + 1, 0), "D_T_LEN", "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, 2, max_ctx - 1), "D_POS0", "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, 1, 0xFFFFFFFF), "D_POS0", "ST_LIMIT"),
           (itf.descriptor(itf.OP_HEAD, row=max_t), "D_ROW", "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, 1, 0, flags=6), "D_FLAGS", "ST_OPCODE")]
    return [(np.stack([good, d]), f"descriptor 1 field {f}", st) for d, f, st in bad]


# ---- the top alone, against the host's check ----


class TopHarness:
    """The project's C-simulated top on one buffer, driven register by register (no driver checks)."""

    def __init__(self, proj: Path) -> None:
        from edgellm.runtime.project import Project

        self.p = Project.open(proj)
        self.dev = EmulatorDevice.for_project(self.p)
        self.total = self.p.total_bytes
        self.buf = self.dev.alloc(self.total)
        self.img = self.p.image().copy()
        self.lim = bounds.Limits.of(self.p, self.total)
        self.prog_off = self.p.iface.prog_off

    def top(self, img: np.ndarray, prog: np.ndarray, n_desc: int | None = None) -> str | None:
        """Run prog on img; the top's verdict (bounds.status_error) or None for ST_OK."""
        a = self.buf.array
        a[:] = 0
        a[:img.size] = img
        lo = self.p.region("logits")[0]
        a[lo:lo + 4 * self.p.config.vocab_size] = 0xFF  # NaN: what a top that writes nothing leaves
        a[4 * H["HDR_BUF_BYTES"]:][:4].view(np.uint32)[0] = self.total
        a[self.prog_off:self.prog_off + prog.nbytes] = prog.view(np.uint8).ravel()
        self.dev.sync_to_device(self.buf)
        regs = self.p.iface.registers
        for off in pointer_registers(regs).values():
            self.dev.write_reg64(off, self.buf.physical_address)
        self.dev.write_reg(regs["hdr_off"], 0)
        self.dev.write_reg(regs["prog_off"], self.prog_off)
        self.dev.write_reg(regs["n_desc"], len(prog) if n_desc is None else n_desc)
        self.dev.run(timeout_s=60)
        self.dev.sync_from_device(self.buf, 0, 4 * itf.HDR_WORDS)
        return bounds.status_error(a[4 * H["HDR_STATUS"]:][:12].view(np.uint32), self.total)

    def host(self, img: np.ndarray, prog: np.ndarray) -> str | None:
        """The driver's check of the same image and program (bounds), or None when it passes."""
        full = np.zeros(self.total, np.uint8)
        full[:img.size] = img
        hdr = full[:4 * itf.HDR_WORDS].view(np.uint32)
        hdr[H["HDR_BUF_BYTES"]] = self.total
        try:
            bounds.check_header(hdr, 0, self.lim)
            t = int(hdr[H["HDR_LAYER_TABLE"]])
            table = full[t:t + 4 * itf.LD_WORDS * self.lim.n_layers].view(np.uint32)
            bounds.check_layers(table, hdr, self.lim)
            bounds.check_program(prog, self.prog_off, self.lim)
        except bounds.BoundsError as e:
            return str(e).split(";")[0]
        return None

    def program(self) -> np.ndarray:
        return itf.program(self.lim.n_layers, 3, 0)

    def logits(self) -> np.ndarray:
        self.dev.sync_from_device(self.buf)
        lo = self.p.region("logits")[0]
        return self.buf.view(lo, self.p.config.vocab_size, np.float32).copy()


@pytest.fixture(scope="module")
def harness(proj: Path) -> TopHarness:
    return TopHarness(proj)


def verdicts(hx: TopHarness, img: np.ndarray, prog: np.ndarray) -> tuple[str | None, str | None]:
    return hx.top(img, prog), hx.host(img, prog)


@needs_csim
def test_good_program_runs(harness: TopHarness) -> None:
    assert verdicts(harness, harness.img, harness.program()) == (None, None)
    assert np.isfinite(harness.logits()).all()


@needs_csim
def test_top_refuses_every_bad_header_field_as_the_host_does(harness: TopHarness) -> None:
    hx = harness
    hdr0 = hx.img[:4 * itf.HDR_WORDS].view(np.uint32)
    cases = header_cases(hdr0, hx.total, hx.lim.k_top)
    for word, value, status in cases:
        img = hx.img.copy()
        img[:4 * itf.HDR_WORDS].view(np.uint32)[H[word]] = value
        top, host = verdicts(hx, img, hx.program())
        assert top is not None and f"header field {word} = " in top, (word, value, top)
        assert bounds.REASONS[status].format(buf=hx.total) in top, (word, value, top)
        assert top == f"the accelerator refused the program: {host}", (word, value)
    print(f"{len(cases)} header mutations refused by the top and the host alike")


@needs_csim
def test_top_refuses_every_bad_layer_table_field_as_the_host_does(harness: TopHarness) -> None:
    hx = harness
    table = int(hx.img[:4 * itf.HDR_WORDS].view(np.uint32)[H["HDR_LAYER_TABLE"]])
    cases = layer_cases(hx.lim.n_layers, hx.total)
    for layer, word, value, status in cases:
        img = hx.img.copy()
        img[table + 4 * (layer * itf.LD_WORDS + word):][:4].view(np.uint32)[0] = value
        top, host = verdicts(hx, img, hx.program())
        name = bounds.field_name(itf.status_field(itf.SW_LAYER, layer, word))
        assert top is not None and f"{name} = " in top and name.startswith(f"layer {layer} table field"), top
        assert bounds.REASONS[status].format(buf=hx.total) in top, top
        assert top == f"the accelerator refused the program: {host}"
    print(f"{len(cases)} layer-table mutations refused by the top and the host alike")


@needs_csim
def test_top_refuses_bad_descriptors_and_program_registers(harness: TopHarness) -> None:
    hx = harness
    for prog, field, status in desc_cases(hx.lim.n_layers, hx.lim.max_t, hx.lim.max_ctx):
        top, host = verdicts(hx, hx.img, prog)
        assert top is not None and field in top and bounds.REASONS[status] in top, (field, top)
        assert top == f"the accelerator refused the program: {host}"
    # n_desc past the end of the buffer: the register is named
    n = (hx.total - hx.prog_off) // (4 * itf.DESC_WORDS) + 1
    top = hx.top(hx.img, hx.program(), n_desc=n)
    assert top == f"the accelerator refused the program: register n_desc = {n} points outside the " \
                  f"{hx.total}-byte buffer"


@needs_csim
def test_a_port_that_does_not_see_the_header_is_reported(harness: TopHarness) -> None:
    """Weight port 1 on a buffer without the header (pointer registers that disagree, on a board): the
    generated top.cpp refuses the call through the status words too."""
    hx = harness
    n = len(hx.p.manifest["interface"]["bundles"]) - 1  # weight ports w0 .. w{n-1}
    ddr = np.zeros(hx.total, np.uint8)
    ddr[:hx.img.size] = hx.img
    prog = hx.program()
    ddr[hx.prog_off:hx.prog_off + prog.nbytes] = prog.view(np.uint8).ravel()
    ports = [ddr.copy() if i != 1 % n else np.zeros(hx.total, np.uint8) for i in range(n)]
    ptrs = (ctypes.c_void_p * n)(*[q.ctypes.data for q in ports])
    hx.dev._lib.edgellm_csim_run_ports(csim.ptr(ddr), ptrs, ctypes.c_uint64(hx.total), ctypes.c_uint32(0),
                                       ctypes.c_uint32(hx.prog_off), ctypes.c_uint32(len(prog)))
    words = ddr[4 * H["HDR_STATUS"]:][:12].view(np.uint32)
    assert bounds.status_error(words, hx.total) == ("the accelerator refused the program: the m_axi pointer "
                                                    "registers do not all see the header (each must hold the "
                                                    "buffer's address)")


@needs_csim
def test_nothing_runs_after_a_refusal(harness: TopHarness) -> None:
    """A refused program writes nothing but the status (the logits stay as they were) and leaves no
    weight-FIFO words behind (the fetchers refuse it too)."""
    hx = harness
    left0 = hx.dev.fifo_leftovers() if hx.dev.fifo_leftovers else 0
    for word in ("HDR_K_CACHE", "HDR_H", "HDR_WEIGHTS"):
        img = hx.img.copy()
        img[:4 * itf.HDR_WORDS].view(np.uint32)[H[word]] = 0xFFFFF000
        assert hx.top(img, hx.program()) is not None
        assert np.isnan(hx.logits()).all()
        ho, hn = hx.p.region("h")
        assert not hx.buf.array[ho:ho + hn].any()  # H (zeroed) untouched
    prog = desc_cases(hx.lim.n_layers, hx.lim.max_t, hx.lim.max_ctx)[0][0]  # layer 0, then a bad one
    assert hx.top(hx.img, prog) is not None
    assert not hx.buf.array[ho:ho + hn].any()  # the good descriptor before the bad one did not run
    assert (hx.dev.fifo_leftovers() if hx.dev.fifo_leftovers else 0) == left0


# ---- through the runtime: one line, never a signal ----


SCRIPT = r"""
import json, sys
import numpy as np
from edgellm.errors import EdgeLLMError
from edgellm.runtime import bounds
from edgellm.runtime.project import Project
from edgellm.runtime.session import Session, open_device
if sys.argv[2] == "top-only":  # the driver's own checks off: the top alone must refuse
    for f in ("check_header", "check_layers", "check_regions", "check_program"):
        setattr(bounds, f, lambda *a, **k: None)
try:
    p = Project.open(sys.argv[1])
    Session(p, open_device(p, "emu"), timeout_s=60).forward(np.array([1, 5, 7]))
    print(json.dumps({"ok": True}))
except EdgeLLMError as e:
    print(json.dumps({"error": str(e)}))
"""


def run_case(proj: Path, mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(proj), mode], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"exit {r.returncode} (a signal is negative): {r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@needs_csim
def test_runtime_refuses_each_mutated_field_in_one_line(proj: Path, tmp_path: Path) -> None:
    """Every mutated weights.bin field (checksums fixed) ends as one EdgeLLMError line naming the field,
    through the driver's check and, with that check switched off, through the top's status words."""
    work = tmp_path / "proj"
    shutil.copytree(proj, work)
    img0 = np.fromfile(proj / "weights.bin", np.uint8)
    hdr0 = img0[:4 * itf.HDR_WORDS].view(np.uint32)
    total = json.loads((proj / "manifest.json").read_text())["memory"]["total_bytes"]
    table = int(hdr0[H["HDR_LAYER_TABLE"]])
    cases = [("header field HDR_K_CACHE", 4 * H["HDR_K_CACHE"], 0xFFFFF000),
             ("header field HDR_LOGITS", 4 * H["HDR_LOGITS"], total),
             ("header field HDR_EPS_BITS", 4 * H["HDR_EPS_BITS"], NAN),
             ("layer 1 table field w_off[down]", table + 4 * (itf.LD_WORDS + itf.LD_W_OFF + 6), total),
             ("layer 0 table field p_off[ffn_sub_norm]", table + 4 * (itf.LD_P_OFF + 3), 0x7FFFFFFF)]
    for field, off, value in cases:
        img = img0.copy()
        img[off:off + 4].view(np.uint32)[0] = value
        write_weights(work, img)
        host = run_case(work, "host")
        assert "error" in host and f"{field} = " in host["error"] and "\n" not in host["error"], host
        top = run_case(work, "top-only")
        assert "error" in top and "the accelerator refused the program" in top["error"], top
        assert f"{field} = " in top["error"] and "\n" not in top["error"], top
    write_weights(work, img0)
    assert run_case(work, "host") == {"ok": True}


@needs_csim
def test_cli_run_exits_2_with_one_error_line(proj: Path, tmp_path: Path) -> None:
    """Before the fix this segfaulted (exit 139): the emulator ran the top on an image whose K cache
    lay outside the buffer."""
    work = tmp_path / "proj"
    shutil.copytree(proj, work)
    img = np.fromfile(proj / "weights.bin", np.uint8)
    img[:4 * itf.HDR_WORDS].view(np.uint32)[H["HDR_K_CACHE"]] = 0xFFFFF000
    write_weights(work, img)
    r = subprocess.run([sys.executable, "-m", "edgellm.cli", "run", str(work), "--prompt-ids", "1,5,7",
                        "-n", "2", "--device", "emu"], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert "header field HDR_K_CACHE = 4294963200 points outside the" in lines[0]


def test_interface_status_constants_agree(tmp_path: Path) -> None:
    """interface.h's status protocol constants equal compiler/interface.py's."""
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    src = tmp_path / "status_tb.cpp"
    names = (["HDR_BUF_BYTES", "HDR_STATUS", "HDR_STATUS_FIELD", "HDR_STATUS_VALUE"] + list(itf.STATUS)
             + ["SW_HEADER", "SW_LAYER", "SW_DESC", "SW_REG", "REG_HDR_OFF", "REG_PROG_OFF", "REG_N_DESC",
                "REG_POINTERS"])
    src.write_text('#include "edgellm/interface.h"\nusing namespace edgellm;\nextern "C" {\n'
                   f"int n_consts() {{ return {len(names)}; }}\n"
                   "void consts(unsigned *out) { const unsigned v[] = {" + ", ".join(names) + "};\n"
                   "  for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) out[i] = v[i]; }\n"
                   "unsigned field(unsigned w, unsigned i, unsigned x) {\n"
                   "  return status_field(w, i, x);\n}\n}\n")
    lib = csim.load([src], "status_tb")
    out = np.zeros(lib.n_consts(), np.uint32)
    lib.consts(csim.ptr(out))
    want = [H[n] for n in names[:4]] + list(itf.STATUS.values()) + [
        itf.SW_HEADER, itf.SW_LAYER, itf.SW_DESC, itf.SW_REG, itf.REG_HDR_OFF, itf.REG_PROG_OFF,
        itf.REG_N_DESC, itf.REG_POINTERS]
    assert out.tolist() == want
    lib.field.restype = ctypes.c_uint32
    for args in ((1, 0, 7), (2, 23, 19), (3, 70000, 5)):
        assert lib.field(*args) == itf.status_field(*args)
