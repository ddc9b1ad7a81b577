"""The generated configuration is named (hls4ml style): every field the kernels read, compiled from a
generated edgellm_config.h and read back through the traits the kernels use, equals the Python parameter
it comes from (ModelConfig, NumericsPlan, DesignParams). Two fields of equal default value (norm lanes
and dot lanes are both 16 by default) swapped in codegen fail here; a named struct that leaves out a
required field does not compile."""

from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path

import pytest

from edgellm.boards import load_board
from edgellm.compiler import codegen_config
from edgellm.compiler.codegen_hls import generate_hls
from edgellm.compiler.design import DesignParams, dot_lanes, stream_ports, tlmm_tables
from edgellm.hw import csim
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan
from edgellm.runtime.layout import head_rows

CFG = ModelConfig(name="named", hidden_size=128, n_layers=3, n_heads=4, n_kv_heads=2, ffn_size=344,
                  vocab_size=300, max_context=64)
# values chosen apart, so a field read from the wrong name shows
DESIGN = DesignParams(group_size=3, tables=15, rows=8, weight_ports=3, weight_buffer="bram", token_lanes=4,
                      out_lanes=2, dsp_lanes=1, ew_lanes=32, attn_lanes=8, attn_kv_block=16, attn_q_block=4,
                      ew_vec=8, ew_glu_vec=2, prefill_token_block=16, prefill_pipeline=True, fetch_depth=1024,
                      port_shares=(5, 2, 3))
NUM = NumericsPlan(norm_lanes=DESIGN.ew_lanes, dot_lanes=dot_lanes(CFG, DESIGN.attn_lanes),
                   kv_block=DESIGN.attn_kv_block, kv_dtype="f16")
MAX_T, MAX_CTX, TOP_K = 16, 64, 5

# C++ expression (in namespace edgellm_cfg, as the kernels reach it) -> the value Python says it must have
EXPECT = {
    "layer::hidden": CFG.hidden_size, "layer::n_heads": CFG.n_heads, "layer::n_kv": CFG.n_kv_heads,
    "layer::head_dim": CFG.head_dim, "layer::ffn": CFG.ffn_size, "layer::act == edgellm::ACT_RELU2": 1,
    "layer::subln": int(CFG.subln), "layer::q_size": CFG.q_size, "layer::kv_size": CFG.kv_size,
    "layer::norm_lanes": NUM.norm_lanes, "layer::ew::LANES": NUM.norm_lanes,
    "layer::attn::dot_lanes": NUM.dot_lanes, "layer::attn::kv_block": NUM.kv_block, "layer::max_t": MAX_T,
    "layer::attn::max_t": MAX_T, "layer::max_ctx": MAX_CTX, "layer::attn::max_ctx": MAX_CTX,
    "layer::attn::bq": DESIGN.attn_q_block, "sizeof(layer::kv_t)": NUM.kv_elem_bytes,
    "layer::ew::VEC": DESIGN.ew_vec, "layer::ew::GLU_VEC": DESIGN.glu_vec, "layer::pipe": 1,
    "layer::data_bits": DESIGN.data_port_width_bits,
    "layer::attn::data_lanes": DESIGN.data_port_width_bits // 32, "tlmm::G": DESIGN.group_size,
    "tlmm::T": tlmm_tables(DESIGN), "tlmm::R": DESIGN.rows, "tlmm::K_MAX": 344, "tlmm::N_MAX": 344,
    "tlmm::MAX_TOK": MAX_T, "tlmm::STORAGE == edgellm::kStorageBram": 1, "tlmm::NPORTS": 3,
    "tlmm::TP": DESIGN.token_lanes, "tlmm::OL": DESIGN.out_lanes, "tlmm::DL": DESIGN.dsp_lanes,
    "tlmm::SHARE0": 5, "tlmm::SHARE1": 2, "tlmm::SHARE2": 3, "tlmm::SHARE_SUM": 10,
    "head::SHARE0": 5, "head::SHARE1": 2, "head::SHARE2": 3, "head::SHARE_SUM": 10, "head::ROUNDS": 5,
    "head::P": DESIGN.rows, "head::HID_MAX": CFG.hidden_size, "head::V_MAX": CFG.vocab_size,
    "head::MAX_TOK": head_rows(MAX_T, DESIGN.head_lanes), "head::K_TOP": TOP_K, "head::NPORTS": 3,
    "top::n_layers": CFG.n_layers,
    "top::vocab": CFG.vocab_size, "top::fetch_depth": DESIGN.fetch_depth, "kStreamPorts": 3,
    "kHeadPorts": 3,
}


def _tb(hls: Path) -> Path:
    names = list(EXPECT)
    rows = "\n".join(f"    (long)({e})," for e in names)
    src = hls / "named_tb.cpp"
    src.write_text(f"""#include "edgellm_config.h"
using namespace edgellm_cfg;
extern "C" long tb_named(int i) {{
  const long v[] = {{
{rows}
  }};
  return v[i];
}}
""")
    return src


def _values(tmp: Path, name: str) -> dict[str, int]:
    generate_hls(tmp / "hls", CFG, NUM, DESIGN, "tlmm", max_t=MAX_T, max_ctx=MAX_CTX, top_k=TOP_K,
                 board=load_board("kv260"), total_bytes=1 << 20)
    lib = csim.load([_tb(tmp / "hls")], name, includes=[tmp / "hls"])
    lib.tb_named.restype = ctypes.c_long
    return {e: lib.tb_named(ctypes.c_int(i)) for i, e in enumerate(EXPECT)}


def test_every_field_by_name(tmp_path: Path) -> None:
    assert stream_ports(load_board("kv260"), DESIGN) == 3
    assert _values(tmp_path, "named_cfg") == EXPECT


def test_swapped_fields_are_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Codegen writing the norm lanes' value under dot_lanes and the other way round (what a positional
    list let pass when both were 16) gives the kernels the wrong lanes: the comparison fails."""
    real = codegen_config.layer_fields

    def swapped(*a: object, **kw: object) -> list:
        f = {n: (v, w) for n, v, w in real(*a, **kw)}  # type: ignore[arg-type]
        f["norm_lanes"], f["dot_lanes"] = (f["dot_lanes"][0], f["norm_lanes"][1]), \
            (f["norm_lanes"][0], f["dot_lanes"][1])
        return [(n, v, w) for n, (v, w) in f.items()]

    monkeypatch.setattr("edgellm.compiler.codegen_hls.layer_fields", swapped)
    got = _values(tmp_path, "named_cfg_swapped")
    wrong = {e for e in EXPECT if got[e] != EXPECT[e]}
    assert wrong == {"layer::norm_lanes", "layer::ew::LANES", "layer::attn::dot_lanes"}


def test_missing_required_field_does_not_compile(tmp_path: Path) -> None:
    """layer_config_base gives no default to the shape or the numerics plan: leaving dot_lanes out is a
    compile error, not a silent default."""
    src = tmp_path / "missing.cpp"
    src.write_text("""#include "edgellm/decoder_layer.h"
struct cfg : edgellm::layer_config_base {
  static const int hidden = 128, n_heads = 4, n_kv = 2, head_dim = 32, ffn = 344, act = edgellm::ACT_RELU2;
  static const bool subln = true;
  static const int norm_lanes = 16, kv_block = 16, max_t = 16, max_ctx = 64;
};
static const int d = edgellm::layer_traits<cfg>::attn::dot_lanes;
""")
    cmd = [csim.cxx(), "-std=c++17", "-fsyntax-only", f"-I{csim.INCLUDE_DIR}",
           f"-isystem{csim.ap_types_dir()}", str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode != 0 and "dot_lanes" in res.stderr
    ok = src.read_text().replace("norm_lanes = 16,", "norm_lanes = 16, dot_lanes = 16,")
    src.write_text(ok)
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0


def test_each_configuration_has_its_own_namespace(tmp_path: Path) -> None:
    """The structs sit in an inline namespace named by their digest: the same configuration gives the same
    name, another gives another, so the template instantiations (and their statics) of two projects never
    share a symbol when both C simulations are loaded in one process (test_top loads several)."""
    def tag(design: DesignParams, out: str) -> str:
        generate_hls(tmp_path / out, CFG, NUM, design, "tlmm", max_t=MAX_T, max_ctx=MAX_CTX, top_k=TOP_K,
                     board=load_board("kv260"))
        h = (tmp_path / out / "edgellm_config.h").read_text()
        return re.search(r"inline namespace (c[0-9a-f]{12}) \{", h).group(1)

    assert tag(DESIGN, "a") == tag(DESIGN, "b") != tag(DESIGN.replace(out_lanes=4), "c")
