"""Low-bit checkpoints through the CLI: eval --compare on GGUF and GPTQ files; bad files are one
`error:` line and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from shared_fixtures import run_cli

from edgellm.models.config import ModelConfig
from edgellm.models.loaders.gguf_write import quantize, write_gguf
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.random_model import random_float_weights

CFG = ModelConfig(name="cli-llama", hidden_size=256, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=256,
                  vocab_size=256, act="silu", subln=False, rope_theta=10000.0, tied_embeddings=True,
                  max_context=64)


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("ids") / "ids.txt"
    p.write_text(" ".join(str(i) for i in np.random.default_rng(0).integers(0, 256, 40)))
    return p


def _weights() -> object:
    fw = random_float_weights(CFG, seed=1)
    fw.embed = fw.embed / 8  # unit-scale embeddings: a sane perplexity
    return fw


@pytest.mark.parametrize("kind", ["gguf-Q4_K_M", "gguf-Q2_K", "gptq"])
def test_eval_compare_on_lowbit_checkpoints(tmp_path: Path, ids: Path, kind: str) -> None:
    if kind == "gptq":
        path = save_gptq(tmp_path / "g", _weights(), "llama", 4, 128, False, "gptq")
    else:
        path = tmp_path / "m.gguf"
        write_gguf(path, _weights(), "llama" if kind.endswith("M") else "qwen2", kind.split("-")[1])
    r = run_cli("eval", str(path), "--ids", "-t", str(ids), "--compare", "golden,onnx,torch",
             "--min-agreement", "0.9")
    assert r.returncode == 0, r.stderr
    assert "onnx" in r.stdout and "torch" in r.stdout


def test_bad_lowbit_files_are_one_error_line(tmp_path: Path, ids: Path) -> None:
    path = tmp_path / "bad.gguf"
    fw = _weights()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_feed_forward_length(256)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    names = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
             "up": "ffn_up", "down": "ffn_down"}
    w.add_tensor("token_embd.weight", fw.embed)
    w.add_tensor("output_norm.weight", fw.final_norm)
    L = fw.layers[0]
    w.add_tensor("blk.0.attn_norm.weight", L["attn_norm"])
    w.add_tensor("blk.0.ffn_norm.weight", L["ffn_norm"])
    for n, gn in names.items():
        if n == "down":  # IQ4_NL (a non-linear 16-value codebook): a llama.cpp type edgellm does not take
            w.add_tensor(f"blk.0.{gn}.weight", np.zeros((256, 256 // 32 * 18), np.uint8),
                         raw_dtype=gguf.GGMLQuantizationType.IQ4_NL)
            continue
        w.add_tensor(f"blk.0.{gn}.weight", quantize(L[n], "Q4_0"), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = run_cli("eval", str(path), "--ids", "-t", str(ids))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "blk.0.ffn_down.weight" in lines[0] and "IQ4_NL" in lines[0] and "Q4_K" in lines[0]


@pytest.mark.parametrize("kind", ["qwen2-Q2_K", "llama-Q4_K_M", "gptq"])
def test_generate_prints_text(tmp_path: Path, kind: str) -> None:
    """A low-bit checkpoint with its tokenizer (embedded in the GGUF; tokenizer.json beside the GPTQ
    files) generates text on the golden backend."""
    import dataclasses

    tj = (Path(__file__).resolve().parents[1] / "models" / "tiny" / "tokenizer.json").read_text()
    cfg = dataclasses.replace(CFG, vocab_size=4096)
    fw = random_float_weights(cfg, seed=2)
    if kind == "gptq":
        path = save_gptq(tmp_path / "g", fw, "llama", 4, 128, True, "gptq", tokenizer_json=tj)
    else:
        arch, mix = kind.split("-")
        path = tmp_path / "m.gguf"
        write_gguf(path, fw, arch, mix, tokenizer_json=tj)
    r = run_cli("generate", str(path), "--prompt", "Emma was", "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr
    assert "generated 4" in r.stdout + r.stderr and r.stdout.strip()
