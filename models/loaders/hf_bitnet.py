"""Hugging Face BitNet checkpoints (microsoft/bitnet-b1.58-2B-4T layout): load and write.

Ternary linears are uint8 (out/4, in): transformers' `pack_weights` puts row i*(out/4)+j of the
ternary matrix in bits 2i..2i+1 of packed row j (codes 0/1/2 = -1/0/+1), with a per-tensor
`weight_scale` (y = acc / (input_scale * weight_scale)). We repack along the input dimension
(models.weights.pack2), keep bf16 embeddings as uint16 and quantize the (tied) head to int8.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.common import (
    check_finite,
    checkpoint_name,
    head_from_checkpoint,
    head_from_rows,
    load_embedding,
    model_config_from_hf,
    read_config,
)
from edgellm.models.loaders.safetensors_io import (
    Checkpoint,
    TensorSpec,
    bf16_bits_if_exact,
    write_safetensors,
)
from edgellm.models.weights import Layer, QuantModel, TernaryLinear, pack2

# our linear name -> Hugging Face module path inside model.layers.N
LINEAR_NAMES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
                "down": "mlp.down_proj"}
NORM_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
              "attn_sub_norm": "self_attn.attn_sub_norm", "ffn_sub_norm": "mlp.ffn_sub_norm"}
QUANT_CONFIG = {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}


def is_hf_bitnet(cfg: dict) -> bool:
    """A config.json describing a packed (offline-quantized) BitNet checkpoint."""
    qc = cfg.get("quantization_config")
    return isinstance(qc, dict) and qc.get("quant_method") == "bitnet"


def hf_unpack_codes(packed: np.ndarray, out: int, name: str) -> np.ndarray:
    """(out/4, in) uint8 HF-packed -> (out, in) uint8 codes 0..2; code 3 is an error."""
    rows = packed.shape[0]
    codes = np.empty((4 * rows, packed.shape[1]), np.uint8)
    for i in range(4):
        np.bitwise_and(packed >> np.uint8(2 * i), np.uint8(3), out=codes[i * rows:(i + 1) * rows])
    if np.any(codes == 3):
        raise CheckpointError(f"tensor {name}: packed code 3 is not ternary (codes must be 0, 1, 2)")
    return codes[:out]


def hf_pack_codes(codes: np.ndarray) -> np.ndarray:
    """(out, in) uint8 codes 0..2 -> (out/4, in) uint8, transformers' pack_weights layout."""
    out = codes.shape[0]
    if out % 4:
        raise CheckpointError(f"HF BitNet packing needs out_features divisible by 4, got {out}")
    r = out // 4
    packed = np.zeros((r, codes.shape[1]), np.uint8)
    for i in range(4):
        packed |= codes[i * r:(i + 1) * r] << np.uint8(2 * i)
    return packed


def _scale(ck: Checkpoint, name: str) -> np.float32:
    t = ck.info(name)
    if int(np.prod(t.shape, dtype=np.int64)) != 1:
        raise CheckpointError(f"{ck.dir}: tensor {name}: shape {list(t.shape)}, expected [1]")
    v = np.float32(ck.f32(name).reshape(-1)[0])
    if not np.isfinite(v) or v <= 0:
        raise CheckpointError(f"{ck.dir}: tensor {name}: weight scale {v} must be finite and positive")
    return v


def _linear(ck: Checkpoint, name: str, out: int, k: int) -> TernaryLinear:
    t = ck.info(name + ".weight")
    if t.dtype != "U8":
        raise CheckpointError(f"{ck.dir}: tensor {name}.weight: dtype {t.dtype}, expected packed U8")
    if out % 4:
        raise CheckpointError(f"{ck.dir}: tensor {name}.weight: out_features {out} not divisible by 4")
    codes = hf_unpack_codes(ck.raw(name + ".weight", (out // 4, k)), out, f"{ck.dir}: {name}.weight")
    return TernaryLinear(pack2(codes.view(np.int8) - np.int8(1)), k, _scale(ck, name + ".weight_scale"))


def hf_bitnet_config(d: Path) -> ModelConfig:
    """The ModelConfig of a packed Hugging Face BitNet checkpoint directory from its config.json, checked;
    a llama model_type's tensor index says whether it has SubLN (bitnet always has). No tensor is read
    (compiler/early_fit.py checks the board's DDR with it before loading)."""
    raw = read_config(d)
    if not is_hf_bitnet(raw):
        raise CheckpointError(f"{d / 'config.json'}: no bitnet quantization_config")
    lc = raw["quantization_config"].get("linear_class", "bitlinear")
    if lc != "bitlinear":
        raise CheckpointError(f"{d / 'config.json'}: unsupported linear_class {lc!r} (bitlinear only)")
    mt = raw.get("model_type")
    if mt not in ("bitnet", "llama"):
        raise CheckpointError(f"{d / 'config.json'}: unsupported model_type {mt!r} (expected bitnet "
                              "or llama)")
    # BitNet (2B-4T) always has SubLN; packed Llama-architecture checkpoints (e.g. Llama3-8B-1.58) do not
    subln = mt == "bitnet" or Checkpoint(d).has("model.layers.0." + NORM_NAMES["attn_sub_norm"] + ".weight")
    return model_config_from_hf(raw, str(d / "config.json"), subln=subln, name=checkpoint_name(d),
                                default_theta=500000.0 if mt == "bitnet" else 10000.0)


def load_hf_bitnet(path: str | os.PathLike) -> QuantModel:
    """Load a packed Hugging Face BitNet checkpoint directory into a QuantModel."""
    d = Path(path)
    cfg = hf_bitnet_config(d)
    ck = Checkpoint(d)
    subln = cfg.subln
    shapes = cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        lin = {n: _linear(ck, p + hf, *shapes[n]) for n, hf in LINEAR_NAMES.items()}
        sizes = {"attn_norm": cfg.hidden_size, "ffn_norm": cfg.hidden_size,
                 "attn_sub_norm": cfg.q_size, "ffn_sub_norm": cfg.ffn_size}
        norms = {n: check_finite(ck.f32(p + hf + ".weight", (sizes[n],)), f"{ck.dir}: {p + hf}.weight")
                 for n, hf in NORM_NAMES.items() if subln or "sub" not in n}
        layers.append(Layer(**norms, **lin))
    embed = load_embedding(ck, "model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size)
    final = check_finite(ck.f32("model.norm.weight", (cfg.hidden_size,)), f"{ck.dir}: model.norm.weight")
    if cfg.tied_embeddings or not ck.has("lm_head.weight"):
        if not cfg.tied_embeddings:
            raise CheckpointError(f"{ck.dir}: missing tensor lm_head.weight (embeddings are not tied)")
        head = head_from_rows(embed)
    else:
        head = head_from_checkpoint(ck, "lm_head.weight", cfg.vocab_size, cfg.hidden_size)
    qm = QuantModel(cfg, embed, layers, final, head, meta={"source": str(d), "format": "hf_bitnet"})
    qm.validate()
    return qm


def hf_config_dict(cfg: ModelConfig) -> dict:
    """config.json that transformers reads back to the same shapes: BitNetConfig for SubLN models,
    LlamaConfig with a bitnet quantization_config (as HF1BitLLM/Llama3-8B-1.58 ships) otherwise."""
    arch, mt = ("BitNetForCausalLM", "bitnet") if cfg.subln else ("LlamaForCausalLM", "llama")
    d = {"architectures": [arch], "model_type": mt,
         "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
         "intermediate_size": cfg.ffn_size, "num_hidden_layers": cfg.n_layers,
         "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
         "hidden_act": cfg.act, "max_position_embeddings": cfg.max_context,
         "rms_norm_eps": cfg.rms_eps, "rope_theta": cfg.rope_theta,
         "tie_word_embeddings": cfg.tied_embeddings, "bos_token_id": cfg.bos_id,
         "eos_token_id": cfg.eos_id, "attention_bias": False, "use_cache": True,
         "torch_dtype": "bfloat16", "quantization_config": dict(QUANT_CONFIG)}
    if cfg.head_dim * cfg.n_heads != cfg.hidden_size:
        d["head_dim"] = cfg.head_dim
    return d


def _specs(qm: QuantModel) -> list[TensorSpec]:
    """Every tensor of the HF layout, produced lazily (one linear unpacked at a time)."""
    c = qm.config
    specs: list[TensorSpec] = []
    emb = qm.embed if qm.embed.dtype == np.uint16 else bf16_bits_if_exact(qm.embed)
    if emb is not None:
        specs.append(("model.embed_tokens.weight", "BF16", emb.shape, lambda: emb))
    else:
        specs.append(("model.embed_tokens.weight", "F32", qm.embed.shape,
                      lambda: qm.embed.astype(np.float32)))
    for i, L in enumerate(qm.layers):
        p = f"model.layers.{i}."
        for n, hf in NORM_NAMES.items():
            g = getattr(L, n)
            if g is None:  # no SubLN
                continue
            specs.append((p + hf + ".weight", "F32", g.shape, lambda g=g: np.asarray(g, np.float32)))
        for n, hf in LINEAR_NAMES.items():
            lin = L.linears()[n]
            o, k = lin.shape
            specs.append((p + hf + ".weight", "U8", (o // 4, k),
                          lambda lin=lin: hf_pack_codes((lin.dense() + np.int8(1)).view(np.uint8))))
            specs.append((p + hf + ".weight_scale", "F32", (1,),
                          lambda lin=lin: np.array([lin.scale], np.float32)))
    specs.append(("model.norm.weight", "F32", qm.final_norm.shape,
                  lambda: np.asarray(qm.final_norm, np.float32)))
    if not c.tied_embeddings:
        h = qm.lm_head
        specs.append(("lm_head.weight", "F32", h.w.shape,
                      lambda: h.w.astype(np.float32) * h.row_scale[:, None]))
    return specs


def _shards(specs: list[TensorSpec], max_bytes: int | None) -> list[list[TensorSpec]]:
    if not max_bytes:
        return [specs]
    groups: list[list[TensorSpec]] = [[]]
    size = 0
    for s in specs:
        nb = int(np.prod(s[2], dtype=np.int64)) * (1 if s[1] == "U8" else 2 if s[1] == "BF16" else 4)
        if groups[-1] and size + nb > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(s)
        size += nb
    return groups


def save_hf_bitnet(qm: QuantModel, out_dir: str | os.PathLike, tokenizer_json: str | None = None,
                   *, max_shard_bytes: int | None = None, overwrite: bool = False) -> Path:
    """Write qm as a transformers-loadable BitNet checkpoint, atomically (temp dir, then rename).

    tokenizer_json: path of a tokenizer.json to copy, or its JSON text, or None."""
    c = qm.config
    qm.validate()
    if c.subln and c.q_size != c.hidden_size:
        raise CheckpointError("HF BitNet's attn_sub_norm needs q_size == hidden_size "
                              f"(model {c.name}: q_size={c.q_size}, hidden={c.hidden_size})")
    for n, (o, _) in c.linear_shapes().items():
        if o % 4:
            raise CheckpointError(f"HF BitNet packing needs {n} out_features divisible by 4, got {o}")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out}: already exists (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(hf_config_dict(c), indent=2) + "\n")
        if tokenizer_json is not None:
            if os.path.isfile(tokenizer_json):
                shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
            elif tokenizer_json.lstrip().startswith("{"):
                (tmp / "tokenizer.json").write_text(tokenizer_json)
            else:
                raise CheckpointError(f"tokenizer_json: {tokenizer_json[:60]!r} is neither a file nor JSON")
        groups = _shards(_specs(qm), max_shard_bytes)
        if len(groups) == 1:
            write_safetensors(tmp / "model.safetensors", groups[0])
        else:
            wmap, total = {}, 0
            for j, g in enumerate(groups):
                fname = f"model-{j + 1:05d}-of-{len(groups):05d}.safetensors"
                total += write_safetensors(tmp / fname, g)
                wmap.update({s[0]: fname for s in g})
            (tmp / "model.safetensors.index.json").write_text(json.dumps(
                {"metadata": {"total_size": total}, "weight_map": wmap}, indent=2))
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
