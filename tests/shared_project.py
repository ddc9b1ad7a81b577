"""Compiled projects the tests share: make_project writes a small one without running `edgellm compile`
(test_build_cmd, test_project_closed); compile_e2e_project compiles a tiny model with a trained
tokenizer (test_runtime_e2e, test_speculative_cli). Test modules import these from here, never from
each other."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from edgellm.boards import load_board
from edgellm.compiler import interface as itf
from edgellm.compiler.codegen_hls import generate_hls, weight_encoder, write_reference_inputs
from edgellm.compiler.design import DesignParams
from edgellm.compiler.manifest import SCHEMA, list_files
from edgellm.compiler.memory_plan import plan_memory
from edgellm.compiler.vivado_tcl import write_vivado_tcl
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.numerics import NumericsPlan
from edgellm.models.random_model import random_model
from edgellm.runtime.layout import layer_buffer_sizes

PROJECT_PREFILL, PROJECT_DECODE, PROJECT_VOCAB = 16, 16, 300  # make_project's reference run and vocabulary


def make_project(d: Path) -> Path:
    """A minimal compiled project: hls/, vivado/, weights.bin, embed.bin, reference/ and a manifest.json
    that lists every file with its sha256 (a project is a closed set: runtime/project_files.py)."""
    cfg = ModelConfig(name="proj", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344,
                      vocab_size=PROJECT_VOCAB, max_context=64, act="silu", subln=False)
    qm, board = random_model(cfg, seed=9), load_board("kv260")
    design = DesignParams(tables=15, weight_ports=2, weight_buffer="bram")
    numerics = NumericsPlan.for_head_dim(cfg.head_dim)
    sf, si, tf = layer_buffer_sizes(cfg, 16)
    plan = plan_memory(qm, weight_encoder(design), max_t=16, max_ctx=64, scratch_floats=sf,
                       scratch_i8=si, tap_floats=tf, top_k=8, head_lanes=design.head_lanes)
    d.mkdir(parents=True)
    info = generate_hls(d / "hls", cfg, numerics, design, max_t=16, max_ctx=64, top_k=8, board=board,
                        total_bytes=plan.total_bytes)
    write_vivado_tcl(d, board, design, "edgellm_top")
    plan.image.tofile(d / "weights.bin")
    np.ascontiguousarray(qm.embed).tofile(d / "embed.bin")
    gm = GoldenModel(qm, numerics)
    cache = gm.new_cache(64)
    prompt = [(5 * i + 1) % PROJECT_VOCAB for i in range(PROJECT_PREFILL)]
    rows, dec = [gm.forward(np.array(prompt), cache, all_logits=False)[0]], []
    for _ in range(PROJECT_DECODE):
        dec.append(int(np.argmax(rows[-1])))
        rows.append(gm.forward(np.array(dec[-1:]), cache, all_logits=False)[0])
    embeds = qm.embed_rows(np.array(prompt + dec))
    write_reference_inputs(d / "reference", embeds, np.stack(rows), prompt, dec)
    files = list_files(d)
    (d / "manifest.json").write_text(json.dumps({
        "schema": SCHEMA, "model": cfg.to_dict(), "numerics": numerics.to_dict(),
        "board": dataclasses.asdict(board), "design": dataclasses.asdict(design),
        "interface": {"version": itf.INTERFACE_VERSION, "hdr_off": 0,
                      "prog_off": plan.regions["program"].offset, "max_t": 16,
                      "max_ctx": 64, "top_k": 8, "ip_name": "edgellm_top", "registers": info["registers"]},
        "memory": plan.to_dict(), "weights": {"file": "weights.bin", "sha256": files["weights.bin"]},
        "host": {"embed_file": "embed.bin", "embed_dtype": "bf16" if qm.embed.dtype == np.uint16 else "f32",
                 "vocab": PROJECT_VOCAB, "hidden": cfg.hidden_size, "sha256": files["embed.bin"]},
        "files": files}))
    return d


E2E_TEXTS = ["the quick brown fox jumps over the lazy dog", "edge FPGAs run ternary language models",
             "prefill then decode, one token at a time", "Once upon a time there was a tiny model"]
E2E_PROMPT = "Once upon a time the quick brown fox ran to the edge of the"


def tokenizer_json(d: Path) -> str:
    """A small byte-level BPE tokenizer trained on E2E_TEXTS, saved as d / tokenizer.json; its text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(E2E_TEXTS * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(d / "tokenizer.json"))
    return (d / "tokenizer.json").read_text()


def compile_e2e_project(d: Path) -> tuple[Path, Path]:
    """(checkpoint dir, project dir) under d: a random tiny model with a trained tokenizer, compiled
    with 8-token prefill blocks (so prompts take several IP starts) and an 8-lane LM head (the multi-row
    head speculative decoding verifies with; the plain objective would take one lane), on 16-byte beats
    and with 8 attention lanes (the search fills the LUTs with 16 for this model) so those head lanes fit
    the routing headroom (test_runtime_e2e, test_speculative_cli)."""
    from tokenizers import Tokenizer

    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet

    tok = Tokenizer.from_str(tokenizer_json(d))
    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96,
                      vocab_size=tok.get_vocab_size(), max_context=64, bos_id=1, eos_id=2, name="e2e")
    ckpt = save_hf_bitnet(random_model(cfg, seed=4, density=0.5), d / "ckpt",
                          tokenizer_json=str(d / "tokenizer.json"))
    out = d / "proj"
    run_steps(BuildConfig(model=str(ckpt), board="kv260", out_dir=str(out),
                          overrides={"prefill_token_block": 8, "head_lanes": 8, "rows": 16, "attn_lanes": 8}),
              compile_steps())
    return Path(ckpt), out
