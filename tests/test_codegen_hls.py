"""compiler/codegen_hls.py + compiler/hls_tcl.py: the generated hls/ folder, register map, buffer-size
twins, reference files, and run_hls.tcl run under tclsh with every Vitis HLS command recorded."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from shared_tcl import TCLSH, run_hls_tcl

from edgellm.boards import load_board
from edgellm.compiler.codegen_hls import (
    generate_hls,
    register_map,
    weight_encoder,
    write_reference_inputs,
)
from edgellm.compiler.design import DesignParams, stream_ports, tlmm_tables
from edgellm.compiler.hls_tcl import generate_hls_tcl
from edgellm.compiler.packing import unpack_ternary
from edgellm.compiler.vivado_tcl import maxi_bundles
from edgellm.errors import EdgeLLMError
from edgellm.hw.csim import INCLUDE_DIR
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan
from edgellm.models.random_model import random_model
from edgellm.runtime.layout import head_rows, layer_buffer_sizes, tap_offsets

CFG = ModelConfig(name="cg", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344,
                  vocab_size=300, max_context=64)
NUM = NumericsPlan.for_head_dim(CFG.head_dim)


def gen(tmp: Path, design: DesignParams | None = None, mm: str = "tlmm", **kw: object) -> dict:
    args = dict(max_t=16, max_ctx=64, top_k=8, board=load_board("kv260"), total_bytes=1 << 20)
    args.update(kw)
    return generate_hls(tmp / "hls", CFG, NUM, design or DesignParams(), mm, **args)  # type: ignore[arg-type]


def test_layer_buffer_sizes() -> None:
    # q_lin, k_lin, q, k, v, attn, g, u, y rows + two qs slots (decoder_layer.h layer_scratch)
    sf, si, tf = layer_buffer_sizes(CFG, 16)
    assert sf == 16 * (128 + 64 + 128 + 64 + 64 + 128 + 344 + 344 + 128) + 32
    assert si == 16 * 344
    assert tf == 16 * (128 + 64 + 64 + 128 + 128 + 344)
    offs = tap_offsets(CFG, 16)
    assert [offs[n] for n in ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")] == \
        [0, 2048, 3072, 4096, 6144, 8192] and offs["floats"] == tf


@pytest.mark.parametrize("n", [1, 4, 6])
def test_register_map_follows_vitis_convention(tmp_path: Path, n: int) -> None:
    info = gen(tmp_path, DesignParams(weight_ports=n))
    regs = info["registers"]
    ws, kvs = [f"w{i}" for i in range(n)], [f"kv{i}" for i in range(n)]
    assert list(regs) == ws + kvs + ["data", "act", "hdr_off", "prog_off", "n_desc"]
    assert info["bundles"] == maxi_bundles(n) == ws + ["data"]  # kv{i} rides in bundle w{i}, act in data
    assert regs["w0"] == 0x10 and info["control"] == {"ap_ctrl": 0, "gie": 4, "ier": 8, "isr": 12}
    assert regs["kv0"] == 0x10 + 12 * n and regs["data"] == 0x10 + 24 * n and regs["act"] == regs["data"] + 12
    assert regs["hdr_off"] == regs["act"] + 12
    assert regs["prog_off"] == regs["hdr_off"] + 8 and regs["n_desc"] == regs["prog_off"] + 8
    assert register_map(n) == regs
    top = (tmp_path / "hls" / "top.cpp").read_text()
    for b in maxi_bundles(n):  # one m_axi bundle per name vivado_tcl connects
        assert re.search(rf"m_axi port = {b} bundle = {b} offset = slave depth = \d+", top)
    for i in range(n):  # the engine's KV-cache view of port i: its own argument in bundle w{i}
        assert re.search(rf"m_axi port = kv{i} bundle = w{i} offset = slave depth = \d+", top)
    # the linear jobs' view of the scratch: its own argument in the data bundle
    assert re.search(r"m_axi port = act bundle = data offset = slave depth = \d+", top)
    for p in ("hdr_off", "prog_off", "n_desc", "return"):
        assert f"s_axilite port = {p} bundle = control" in top
    # every m_axi argument one beat type (issue 21 #11): the weight ports R-byte beats
    ws = "".join(rf"const edgellm_cfg::wbeat_t \*w{i}, " for i in range(n))
    ws += "".join(rf"const edgellm_cfg::wbeat_t \*kv{i}, " for i in range(n))
    assert re.search(r"void edgellm_top\(" + ws, top)
    assert "reinterpret_cast" not in top


@pytest.mark.parametrize("n,want", [(1, 1), (2, 2), (3, 3), (4, 4), (6, 4)])
def test_weight_ports_stream_the_ternary_weights(tmp_path: Path, n: int, want: int) -> None:
    """The TLMM engine and the LM head get w0 .. w{P-1}, P = weight_ports clamped to 4 (and to the
    board's ports); the TLMM's and the LM head's NPORTS = P."""
    info = gen(tmp_path, DesignParams(weight_ports=n))
    assert stream_ports(load_board("kv260"), DesignParams(weight_ports=n)) == want
    assert info["weight_stream_ports"] == [f"w{i}" for i in range(want)]
    top = " ".join((tmp_path / "hls" / "top.cpp").read_text().split())
    engine = ", ".join([f"w{i}" if i < want else "w0" for i in range(4)]
                       + [f"kv{i}" if i < want else "kv0" for i in range(4)])
    assert f"edgellm_top_impl<edgellm_cfg::top>({engine}, data, act, hdr_off" in top
    assert info["head_ports"] == info["weight_stream_ports"]
    h = (tmp_path / "hls" / "edgellm_config.h").read_text()
    assert struct_fields(h, "tlmm_cfg") == {"G": "3", "T": "25", "R": "16", "K_MAX": "344", "N_MAX": "344",
                                           "MAX_TOK": "16", "STORAGE": "edgellm::kStorageUram",
                                           "NPORTS": str(want), "TP": "1", "OL": "4", "DL": "0"}
    assert struct_fields(h, "head_cfg")["NPORTS"] == str(want)
    entry = " ".join((tmp_path / "hls" / "csim_entry.cpp").read_text().split())
    ws = [f"edgellm_port<edgellm_cfg::wbeat_t>(w[{i}])" for i in range(n)] * 2  # w0.., kv0..
    assert "edgellm_top(" + ", ".join(ws) + ", edgellm_rw_port(rw[0])" in entry
    kv260 = load_board("kv260")
    two_hp = dataclasses.replace(kv260, hp_port_names=kv260.hp_port_names[:2])  # 2 PL->DDR ports
    assert stream_ports(two_hp, DesignParams(weight_ports=n)) == min(want, 2)
    assert stream_ports(None, DesignParams(weight_ports=n)) == want
    pack2 = gen(tmp_path / "p2", DesignParams(weight_ports=n), "pack2")
    assert pack2["weight_stream_ports"] == ["w0"] and pack2["head_ports"] == [f"w{i}" for i in range(want)]
    top2 = " ".join((tmp_path / "p2" / "hls" / "top.cpp").read_text().split())
    assert f"edgellm_top_impl<edgellm_cfg::top>({engine}, data" in top2  # the head still streams over P


def test_headers_copied_with_sibling_includes(tmp_path: Path) -> None:
    info = gen(tmp_path)
    inc = tmp_path / "hls" / "edgellm"
    src = sorted(p.name for p in (INCLUDE_DIR / "edgellm").glob("*.h"))
    assert sorted(p.name for p in inc.glob("*.h")) == src and "top.h" in src
    for name in src:
        text = (inc / name).read_text()
        assert '#include "edgellm/' not in text
        orig = (INCLUDE_DIR / "edgellm" / name).read_text()
        assert re.sub(r'#include "edgellm/([\w.]+)"', r'#include "\1"', orig) == text
    assert set(info["files"]) >= {"top.cpp", "csim_entry.cpp", "tb_top.cpp", "run_hls.tcl",
                                  "edgellm_config.h"}


def test_config_header_numbers(tmp_path: Path) -> None:
    d = DesignParams(tables=25, rows=16, group_size=3, weight_buffer="bram", port_width_bits=64,
                     prefill_token_block=64, attn_q_block=4, token_lanes=2, out_lanes=2, ew_vec=8,
                     ew_glu_vec=2, act_buffer="uram", prefill_pipeline=True)
    info = gen(tmp_path, d)
    assert tlmm_tables(d) == 25 and info["tlmm"] == {"G": 3, "T": 25, "R": 16}
    h = (tmp_path / "hls" / "edgellm_config.h").read_text()
    assert struct_fields(h, "layer_cfg") == {
        "hidden": "128", "n_heads": "4", "n_kv": "2", "head_dim": "32", "ffn": "344",
        "act": "edgellm::ACT_RELU2", "subln": "true", "norm_lanes": "16", "dot_lanes": "32", "kv_block": "16",
        "max_t": "16", "max_ctx": "64", "bq": "4", "kv_t": "edgellm::f32", "ew_vec": "8", "ew_glu_vec": "2",
        "pipe": "true", "pipe_min_t": "2", "attn_split": "true",
        "data_bits": "128"}
    assert "#define EDGELLM_ACT_STORAGE uram" in h
    # 4 streaming ports, 2 token lanes, 2 output lanes
    assert struct_fields(h, "tlmm_cfg") == {"G": "3", "T": "25", "R": "16", "K_MAX": "344", "N_MAX": "344",
                                           "MAX_TOK": "16", "STORAGE": "edgellm::kStorageBram", "NPORTS": "4",
                                           "TP": "2", "OL": "2", "DL": "0"}
    assert "kWeightPorts = 4;" in h and "kStreamPorts = 4;" in h
    # P: the weight ports' beat, R bytes; MAX_TOK: the multi-row head's rows per weight pass (max_t 16)
    assert struct_fields(h, "head_cfg") == {"P": "16", "HID_MAX": "128", "V_MAX": "300",
                                           "MAX_TOK": str(head_rows(16, d.head_lanes)), "K_TOP": "8",
                                           "NPORTS": "4"}
    assert struct_fields(h, "top_cfg") == {"layer": "edgellm_cfg::layer", "mm": "edgellm_cfg::mm",
                                          "head": "edgellm_cfg::head", "n_layers": "2", "vocab": "300",
                                          "fetch_depth": str(d.fetch_depth)}  # words per weight FIFO
    for name in ("layer_config", "TlmmConfig", "LmHeadConfig", "top_config"):  # nothing positional
        assert f"{name}<" not in h
    assert "#define EDGELLM_FETCH_STORAGE uram" in h  # 2048 x 256 bits on a board with URAM
    for depth, board, kind in ((512, "kv260", "bram"), (16, "kv260", "lutram"), (8192, "pynq_z2", "bram")):
        out = tmp_path / f"fifo{depth}{board}"
        gen(out, dataclasses.replace(d, fetch_depth=depth), board=load_board(board))
        assert f"#define EDGELLM_FETCH_STORAGE {kind}" in (out / "hls" / "edgellm_config.h").read_text()
    assert "kHeadPorts = 4;" in h  # the head streams its rows over the same 4 ports
    assert "kTotalBytes = 1048576ULL" in h
    gen(tmp_path / "p2", d, "pack2")
    assert "pack2_matmul<344> mm" in (tmp_path / "p2" / "hls" / "edgellm_config.h").read_text()
    assert tlmm_tables(DesignParams(tables=4, overlap=False)) == 5


def struct_fields(h: str, name: str) -> dict[str, str]:
    """The named fields of generated struct `name`: field -> value (a typedef's: the type)."""
    body = re.search(rf"struct {name} : [\w:]+ {{\n(.*?)\n}};", h, re.S).group(1)
    out = {}
    for line in body.splitlines():
        m = re.match(r"\s*(?:static const \w+ (\w+) = ([^;]+)|typedef ([\w:]+) (\w+));", line)
        assert m, line
        if m.group(1):
            out[m.group(1)] = m.group(2)
        else:
            out[m.group(4)] = m.group(3)
    return out


def test_weight_encoders() -> None:
    lin = random_model(CFG, 1).layers[0].q
    enc = weight_encoder(DesignParams(rows=16), "tlmm")(lin)
    assert np.array_equal(unpack_ternary(enc, *lin.shape, 16), lin.dense())
    assert np.array_equal(weight_encoder(DesignParams(), "pack2")(lin), lin.packed.reshape(-1))
    with pytest.raises(EdgeLLMError, match="matmul policy"):
        weight_encoder(DesignParams(), "dense")


@pytest.mark.parametrize("kw, msg", [(dict(top_k=0), "top_k"), (dict(top_k=65), "top_k"),
                                     (dict(mm="gemm"), "matmul policy"), (dict(board=None), "FPGA part"),
                                     (dict(max_t=128), "max_t"),
                                     (dict(design=DesignParams(group_size=5)), "G = 1..4")])
def test_generate_errors(tmp_path: Path, kw: dict, msg: str) -> None:
    design = kw.pop("design", None)
    mm = kw.pop("mm", "tlmm")
    with pytest.raises(EdgeLLMError, match=msg):
        gen(tmp_path, design, mm, **kw)


def test_write_reference_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb, lg = rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((3, 11)).astype(np.float32)
    write_reference_inputs(tmp_path, emb, lg, [1, 2, 3], [4, 5])
    assert np.array_equal(np.fromfile(tmp_path / "embeds.f32", "<f4").reshape(5, 8), emb)
    assert np.array_equal(np.fromfile(tmp_path / "logits.f32", "<f4").reshape(3, 11), lg)
    ref = json.loads((tmp_path / "ref.json").read_text())
    assert ref["prompt_ids"] == [1, 2, 3] and ref["decode_ids"] == [4, 5]
    assert ref["argmax"] == [int(i) for i in lg.argmax(1)]
    assert ref["prefill_len"] == 3 and ref["decode_steps"] == 2
    with pytest.raises(EdgeLLMError, match="embeds"):
        write_reference_inputs(tmp_path, emb[:4], lg, [1, 2, 3], [4, 5])
    with pytest.raises(EdgeLLMError, match="logits"):
        write_reference_inputs(tmp_path, emb, lg[:2], [1, 2, 3], [4, 5])


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")
@pytest.mark.parametrize("steps", [None, "csim", "csim csynth cosim export"])
def test_run_hls_tcl_under_tclsh(tmp_path: Path, steps: str | None) -> None:
    gen(tmp_path, DesignParams(clock_mhz=200.0))
    hls = (tmp_path / "hls").resolve()
    calls = run_hls_tcl(hls / "run_hls.tcl", steps)
    names = [c[0] for c in calls]
    assert calls[names.index("open_project")] == ["open_project", "-reset", str(hls / "edgellm_hls")]
    assert ["set_top", "edgellm_top"] in calls
    adds = [c for c in calls if c[0] == "add_files"]
    top = next(c for c in adds if c[1] == str(hls / "top.cpp"))
    flags = top[top.index("-cflags") + 1]
    assert "-ffp-contract=off" in flags and "-std=c++14" in flags
    assert ["add_files", "-tb", str(hls / "tb_top.cpp")] == adds[-1][:3]
    assert any(c[1] == str(hls / "edgellm" / "top.h") for c in adds)
    assert ["set_part", "xck26-sfvc784-2LV-c"] in calls
    assert ["create_clock", "-period", "5", "-name", "default"] in calls
    want = (steps or "csim csynth export").split()
    assert ("csim_design" in names) == ("csim" in want)
    if "csim" in want:
        assert calls[names.index("csim_design")] == ["csim_design", "-argv", str(hls.parent)]
    assert ("csynth_design" in names) == (len(want) > 1)
    assert ("cosim_design" in names) == ("cosim" in want)
    if "cosim" in want:
        assert calls[names.index("cosim_design")][2].endswith("--decode-steps 1")
    if "export" in want:
        ex = calls[names.index("export_design")]
        assert ex[ex.index("-format") + 1] == "ip_catalog" and ex[ex.index("-ipname") + 1] == "edgellm_top"
        assert ["file", "copy", "-force", str(hls / "edgellm_hls" / "solution1" / "impl" / "ip"),
                str(hls / "ip")] in calls
    else:
        assert "export_design" not in names


def test_hls_tcl_errors() -> None:
    with pytest.raises(EdgeLLMError, match="identifier"):
        generate_hls_tcl("xc7z020clg400-1", 100.0, top="bad-name")
    with pytest.raises(EdgeLLMError, match="clock"):
        generate_hls_tcl("xc7z020clg400-1", 0.0)
