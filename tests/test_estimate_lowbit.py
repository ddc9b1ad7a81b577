"""`edgellm estimate` on low-bit models (issue 17 #8): GGUF files and GPTQ directories are projected
through the low-bit engine's cost model (compiler/lowbit_estimate.py over compiler/cost/lowbit.py) with
their own tensor types, and presets with --weights through llama.cpp's mix; before, estimate read only
the config and projected the shapes as ternary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm.boards import SCENARIOS, load_board
from edgellm.cli import app
from edgellm.compiler import lowbit_estimate as le
from edgellm.compiler.cost import lowbit as cl
from edgellm.compiler.cost import lowbit_search as ls
from edgellm.compiler.cost.lowbit_mix import llama_cpp_mix
from edgellm.compiler.design_bytes import lm_head_bytes
from edgellm.compiler.estimate import scenarios
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.models.loaders.gguf_llama import LINEARS
from edgellm.models.loaders.gguf_write import write_gguf
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.random_model import random_float_weights

runner = CliRunner()
CFG = ModelConfig(name="est-llama", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=512,
                  vocab_size=256, act="silu", subln=False, rope_theta=10000.0, tied_embeddings=True,
                  max_context=64)


def _json(*args: str) -> dict:
    res = runner.invoke(app, ["estimate", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_preset_with_weights_is_the_lowbit_projection() -> None:
    cfg, board = PRESETS["qwen2.5-0.5b"], load_board("kv260")
    m = llama_cpp_mix(cfg, "Q4_K_M")
    eng, vec = ls.search(cfg, board.with_scenario("central"), m, le.BUILT_ENGINES)
    sc = scenarios(board, ls.design(board, eng, vec))
    want = {s: ls.project(cfg, board.with_scenario(s), m, eng, vec, sc[s].clock_mhz) for s in SCENARIOS}
    out = _json("--preset", "qwen2.5-0.5b", "--weights", "q4_k_m")
    b = out["boards"]["kv260"]
    assert b["fits"] and "projected" in b["label"]
    assert b["design"]["engines"] == 1  # the one engine instance compile builds (le.BUILT_ENGINES)
    for s in SCENARIOS:
        assert b["projected_decode_tok_s"][s] == pytest.approx(want[s]["decode"])
        assert b["ddr_bound_tok_s"][s] == pytest.approx(want[s]["bound"])
        assert b["projected_ttft_128_s"][s] == pytest.approx(want[s]["ttft"])
    assert b["decode_over_bound"] == pytest.approx(want["central"]["decode"] / want["central"]["bound"])
    assert out["mix"] == "132 Q5_0 + 12 Q8_0 + 12 Q6_K + 12 Q4_K + int8 head (file: Q8_0)"
    params = sum(o * i for o, i in cfg.linear_shapes().values()) * cfg.n_layers  # the linears'
    assert b["bits_per_weight"] == pytest.approx(8 * m.linear_bytes(cfg, eng.rows, eng.beat_bits) / params)
    assert b["weight_stream_bytes_per_token"] == m.weight_bytes(cfg, eng.rows, eng.beat_bits)
    assert b["lm_head"] == {"priced_as": "int8 per-row", "bytes_per_token": lm_head_bytes(cfg, 8)}
    # the same shapes without --weights are the ternary DSE's projection: another figure altogether
    ternary = _json("--preset", "qwen2.5-0.5b")["boards"]["kv260"]["summary"]["projected_decode_tok_s"]
    assert abs(ternary - b["projected_decode_tok_s"]["central"]) > 1
    table = runner.invoke(app, ["estimate", "--preset", "qwen2.5-0.5b", "--weights", "Q4_K_M"],
                          terminal_width=250)
    assert table.exit_code == 0, table.output
    for text in (f"{want['central']['decode']:.1f} ", f"{want['central']['bound']:.1f} ",
                 f"{want['central']['ttft']:.3f} s", "decode / DDR bound",
                 "edgellm compile builds this design", "int8 per-row LM head", "LM head (projected)"):
        assert text in table.output


@pytest.mark.parametrize("mix", ["Q4_K_M", "Q2_K", "Q4_0"])
def test_gguf_file_uses_its_own_tensor_types(tmp_path: Path, mix: str) -> None:
    path = tmp_path / "m.gguf"
    types = write_gguf(path, random_float_weights(CFG, seed=2), "qwen2" if mix == "Q2_K" else "llama", mix)
    src = le.from_path(path)
    assert src is not None and src.cfg.hidden_size == CFG.hidden_size
    for i, layer in enumerate(src.model.layers):
        want = {n: types[f"blk.{i}.{g}.weight"] for n, g in LINEARS.items()}
        assert {n: f.name for n, f in layer.items()} == want
    assert src.model.head.name == types["token_embd.weight"]  # tied: the embedding is the head
    out = _json(str(path), "--board", "kv260")
    b = out["boards"]["kv260"]
    board = load_board("kv260")
    eng, vec = ls.search(src.cfg, board.with_scenario("central"), src.model, le.BUILT_ENGINES)
    assert b["projected_decode_tok_s"]["central"] == pytest.approx(
        ls.project(src.cfg, board, src.model, eng, vec)["decode"])
    assert out["model"]["hidden_size"] == CFG.hidden_size and "ternary" not in json.dumps(out["mix"])
    # MING: the file's narrowest group (Q6_K / Q2_K: 16; every linear Q4_0: 32), as search sizes it
    assert eng.min_group == b["design"]["min_group"] == {"Q4_K_M": 16, "Q2_K": 16, "Q4_0": 32}[mix]


def test_gptq_directory(tmp_path: Path) -> None:
    path = save_gptq(tmp_path / "g", random_float_weights(CFG, seed=4), "llama", 4, 128, False, "gptq")
    src = le.from_path(path)
    assert src is not None
    fmts = {f.name for layer in src.model.layers for f in layer.values()}
    assert fmts == {"GPTQ4"} and src.model.head.name == "Q8_0"
    assert cl.fit(cl.FORMATS["GPTQ4"], 256) == src.model.layers[0]["q"]  # the table's GPTQ4, generalised
    out = _json(str(path), "--board", "kv260")
    assert out["mix"] == f"{7 * CFG.n_layers} GPTQ4 + int8 head (file: Q8_0)"
    assert out["boards"]["kv260"]["fits"]
    assert any("float LM head" in n for n in out["notes"])


def test_lowbit_head_is_a_projected_option() -> None:
    """estimate prices the int8 head compile builds unless --lowbit-head, which projects the file's head
    format on the low-bit engine and says compile refuses it; compile_design refuses such a source."""
    cfg, board = PRESETS["llama-3.2-1b"], load_board("kv260")
    int8 = _json("--preset", "llama-3.2-1b", "--weights", "q4_k_m")
    low = _json("--preset", "llama-3.2-1b", "--weights", "q4_k_m", "--lowbit-head")
    assert int8["mix"].endswith("+ int8 head (file: Q6_K)")
    assert low["mix"].endswith("+ Q6_K head on the low-bit engine")
    assert any("edgellm compile builds this design" in n for n in int8["notes"])
    assert not any("edgellm compile builds this design" in n for n in low["notes"])
    assert any("--lowbit-head" in n and "refuses a low-bit head" in n for n in low["notes"])
    src = le.with_lowbit_head(le.from_preset(cfg, "q4_k_m"))
    eng, vec = ls.search(cfg, board.with_scenario("central"), src.model, le.BUILT_ENGINES)
    b = low["boards"]["kv260"]
    head = cl.stream_bytes(cfg.vocab_size, cfg.hidden_size, cl.FORMATS["Q6_K"], eng.rows, eng.beat_bits)
    assert b["lm_head"] == {"priced_as": "Q6_K on the low-bit engine", "bytes_per_token": head}
    assert b["projected_decode_tok_s"]["central"] == pytest.approx(
        ls.project(cfg, board, src.model, eng, vec)["decode"])
    # Q6_K (6.56 bits a weight) streams fewer head bytes than the int8 head (8 bits + a row scale)
    assert b["lm_head"]["bytes_per_token"] < int8["boards"]["kv260"]["lm_head"]["bytes_per_token"]
    assert b["bits_per_weight"] == pytest.approx(int8["boards"]["kv260"]["bits_per_weight"])
    with pytest.raises(EdgeLLMError, match="compile builds the int8 per-row head"):
        le.compile_design(src, board, 32)
    res = runner.invoke(app, ["estimate", "--preset", "qwen2.5-0.5b", "--lowbit-head"])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "--lowbit-head applies to a low-bit model" \
        in res.output, res.output


def test_ternary_checkpoints_are_not_lowbit(tmp_path: Path) -> None:
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    tern = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                       max_context=64, name="tern")
    assert le.from_path(save_hf_bitnet(random_model(tern, seed=1), tmp_path / "t")) is None


def test_bad_input_is_one_line() -> None:
    for args, msg in ((["--weights", "q4_0"], "--weights applies to a --preset"),
                      (["--preset", "qwen2.5-0.5b", "--weights", "q3_k_s"], "one of q4_0, q4_k_m, q2_k"),
                      (["--preset", "bitnet_b1_58-large", "--weights", "q4_0"], "BitNet-architecture"),
                      (["--preset", "qwen2.5-0.5b", "--weights", "q4_0", "--set", "rows=64"],
                       "--set does not apply to a low-bit model")):
        res = runner.invoke(app, ["estimate", *args])
        assert res.exit_code == 2 and res.output.count("\n") == 1 and msg in res.output, res.output
    with pytest.raises(EdgeLLMError, match="tensor type IQ2_XS has no low-bit engine format"):
        le._format("IQ2_XS", 256, "t")
    assert le._format("F16", 256, "t").name == "Q8_0"  # the loader requantizes float linears to Q8_0


def test_readme_states_the_lowbit_projections() -> None:
    """README's low-bit paragraph states what the estimate projects on the KV260 for the four preset rows
    (decode central (low-high), TTFT(128)), as bench/lowbit_projections.py prints them."""
    import re

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    para = readme[readme.index("### Projected: low-bit GGUF models"):]
    board = load_board("kv260")
    for label, preset, ftype in (("Llama-3.2-1B Q4_0", "llama-3.2-1b", "Q4_0"),
                                 ("Q4_K_M", "llama-3.2-1b", "Q4_K_M"),
                                 ("Qwen2.5-0.5B Q4_0", "qwen2.5-0.5b", "Q4_0"),
                                 ("Q4_K_M", "qwen2.5-0.5b", "Q4_K_M")):
        e = le.estimate(le.from_preset(PRESETS[preset], ftype), board)
        d, t = e.decode, e.ttft
        m = re.search(re.escape(label) + r" \*\*([\d.]+) \(([\d.]+)-([\d.]+)\) tok/s\*\*, ([\d.]+) s", para)
        assert m is not None, label
        assert m.groups() == (f"{d['central']:.1f}", f"{d['low']:.1f}", f"{d['high']:.1f}",
                              f"{t['central']:.2f}"), (label, m.groups())
        para = para[m.end():]  # the next row's label may repeat (Q4_K_M)
