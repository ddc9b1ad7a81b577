"""Hugging Face GPTQ checkpoints (AutoGPTQ / GPTQModel / transformers layout) of Llama and Qwen2 models.

Per quantized linear <p> (model.layers.N.self_attn.q_proj, ...):
  <p>.qweight  int32 (in * bits / 32, out): codes packed along the input dimension, one little-endian
               bit stream per output column (value i at bits [bits*i, bits*(i+1)); for 2/4/8 bits a word
               holds 32/bits whole values, for 3 bits 32 values span 3 words, AutoGPTQ's pack)
  <p>.qzeros   int32 (groups, out * bits / 32): zero points packed the same way along the output dim;
               checkpoint_format "gptq" (v1, AutoGPTQ's default) stores zero - 1, "gptq_v2" the zero
  <p>.scales   float16 (groups, out)
  <p>.g_idx    int32 (in,): group of each input; must be i // group_size (act-order / desc_act
               checkpoints with a permuted g_idx are refused; one with a group out of range is invalid)
  <p>.bias     optional (Qwen2's q/k/v)
quantization_config (config.json, or quantize_config.json): bits 2/3/4/8, group_size (-1: one group per
row), checkpoint_format. Dequantized: w = scale * (q - zero) in float32 (exact: an fp16 scale times a
small integer), held as GroupQuant s = scale, m = -(scale * zero). A group_size above 256 or -1 is
represented with the largest allowed group dividing it (repeated scales: the same weights).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.common import (
    check_finite,
    checkpoint_name,
    head_from_rows,
    model_config_from_hf,
    read_config,
)
from edgellm.models.loaders.safetensors_io import Checkpoint, bf16_bits_if_exact
from edgellm.models.lowbit import GROUPS, GroupQuant
from edgellm.models.weights import Layer, LowBitLinear, QuantModel
from edgellm.runtime import jsonfile

BITS = (2, 3, 4, 8)
FORMATS = ("gptq", "gptq_v2")
MODEL_TYPES = ("llama", "qwen2")
PROJ = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
F32 = np.float32


def quant_config(directory: str | os.PathLike, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The GPTQ quantization_config (config.json's, else quantize_config.json), or None if not GPTQ."""
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict):
        side = Path(directory) / "quantize_config.json"
        if not side.is_file():
            return None
        try:
            qc = jsonfile.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{side}: unreadable ({e})") from None
        qc.setdefault("quant_method", "gptq")
    if not isinstance(qc, dict) or qc.get("quant_method") != "gptq":
        return None
    return qc


def is_gptq(directory: str | os.PathLike, cfg: dict[str, Any]) -> bool:
    """A directory whose config carries a GPTQ quantization_config."""
    return quant_config(directory, cfg) is not None


def unpack_stream(words: np.ndarray, bits: int, n: int) -> np.ndarray:
    """(rows, W) int32 words, each row one little-endian bit stream -> (rows, n) uint8 values."""
    w = np.ascontiguousarray(words).astype("<u4", copy=False)
    bits_arr = np.unpackbits(w.view(np.uint8).reshape(w.shape[0], -1), axis=1, bitorder="little")
    if bits_arr.shape[1] < n * bits:
        raise CheckpointError(f"packed data holds {bits_arr.shape[1] // bits} values, expected {n}")
    v = bits_arr[:, :n * bits].reshape(w.shape[0], n, bits)
    return (v << np.arange(bits, dtype=np.uint8)).sum(axis=2, dtype=np.uint16).astype(np.uint8)


def pack_stream(vals: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of unpack_stream: (rows, n) values (masked to bits) -> (rows, n * bits / 32) int32."""
    v = (np.asarray(vals).astype(np.int64) & ((1 << bits) - 1)).astype(np.uint8)
    b = ((v[..., None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(v.shape[0], -1)
    if b.shape[1] % 32:
        raise CheckpointError(f"{v.shape[1]} values of {bits} bits do not fill whole int32 words")
    return np.packbits(b, axis=1, bitorder="little").view("<i4")


def _group(group_size: int, k: int, where: str) -> tuple[int, int]:
    """(the file's group, the GroupQuant group representing it)."""
    g = k if group_size == -1 else group_size
    if g <= 0 or k % g:
        raise CheckpointError(f"{where}: group_size {group_size} does not divide the input size {k}")
    ours = max((x for x in GROUPS if g % x == 0), default=0)
    if not ours:
        raise CheckpointError(f"{where}: group_size {g} is not a multiple of {min(GROUPS)}")
    return g, ours



def _check_g_idx(g_idx: np.ndarray, k: int, g: int, where: str) -> None:
    """g_idx (the group of each of the k inputs) must be i // g: CheckpointError naming a malformed one
    (shape, dtype, a group out of range) apart from a valid act-order (desc_act) permutation."""
    n_groups, g_idx = k // g, g_idx.reshape(-1)
    if g_idx.shape != (k,):
        raise CheckpointError(f"{where}: shape {list(g_idx.shape)}, expected [{k}] (one group per input)")
    if g_idx.dtype.kind not in "iu":
        raise CheckpointError(f"{where}: dtype {g_idx.dtype}, expected integer group indices")
    bad = np.flatnonzero((g_idx < 0) | (g_idx >= n_groups))
    if bad.size:
        i = int(bad[0])
        raise CheckpointError(f"{where}: invalid g_idx: input {i} has group {int(g_idx[i])}, out of range "
                              f"0..{n_groups - 1} ({bad.size} such input(s))")
    if not np.array_equal(g_idx, np.arange(k) // g):
        raise CheckpointError(f"{where}: act-order (desc_act) checkpoints with a permuted g_idx are "
                              "unsupported; quantize with desc_act=false")

class GptqReader:
    """One GPTQ directory: config, quantization parameters and the tensors."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.cfg = read_config(self.dir)
        where = str(self.dir / "config.json")
        qc = quant_config(self.dir, self.cfg)
        if qc is None:
            raise CheckpointError(f"{where}: not a GPTQ checkpoint (no quantization_config with "
                                  "quant_method gptq)")
        mt = self.cfg.get("model_type")
        if mt not in MODEL_TYPES:
            raise CheckpointError(f"{where}: unsupported model_type {mt!r} for GPTQ (supported: "
                                  f"{', '.join(MODEL_TYPES)})")
        self.model_type = mt
        self.bits = qc.get("bits")
        if self.bits not in BITS:
            raise CheckpointError(f"{where}: GPTQ bits {self.bits!r} unsupported (supported: "
                                  f"{', '.join(map(str, BITS))})")
        self.group_size = qc.get("group_size", 128)
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int):
            raise CheckpointError(f"{where}: GPTQ group_size must be an integer, got {self.group_size!r}")
        self.fmt = qc.get("checkpoint_format", "gptq")
        if self.fmt not in FORMATS:
            raise CheckpointError(f"{where}: GPTQ checkpoint_format {self.fmt!r} unsupported (supported: "
                                  f"{', '.join(FORMATS)})")
        self.ck = Checkpoint(self.dir)

    def config(self) -> ModelConfig:
        """The ModelConfig (Qwen2: q/k/v biases)."""
        return model_config_from_hf(self.cfg, str(self.dir / "config.json"), subln=False,
                                    name=checkpoint_name(self.dir), default_theta=10000.0,
                                    qkv_bias=self.model_type == "qwen2")

    def _int32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        t = self.ck.info(name)
        if t.dtype != "I32" or tuple(t.shape) != shape:
            raise CheckpointError(f"{self.dir}: tensor {name}: {t.dtype} {list(t.shape)}, expected I32 "
                                  f"{list(shape)}")
        return self.ck.raw(name)

    def linear(self, prefix: str, out: int, k: int) -> LowBitLinear:
        """One quantized linear as a LowBitLinear."""
        b, where = self.bits, f"{self.dir}: {prefix}"
        g, ours = _group(self.group_size, k, where)
        n_groups = k // g
        if (k * b) % 32 or (out * b) % 32:
            raise CheckpointError(f"{where}: {b}-bit packing needs in and out sizes whose bits fill int32 "
                                  f"words (in {k}, out {out})")
        qweight = self._int32(prefix + ".qweight", (k * b // 32, out))
        qzeros = self._int32(prefix + ".qzeros", (n_groups, out * b // 32))
        st = self.ck.info(prefix + ".scales")
        if tuple(st.shape) != (n_groups, out):
            raise CheckpointError(f"{self.dir}: tensor {prefix}.scales: shape {list(st.shape)}, expected "
                                  f"{[n_groups, out]}")
        scales = check_finite(self.ck.f32(prefix + ".scales"), f"{self.dir}: tensor {prefix}.scales")
        if self.ck.has(prefix + ".g_idx"):
            _check_g_idx(self.ck.raw(prefix + ".g_idx"), k, g, f"{self.dir}: tensor {prefix}.g_idx")
        codes = unpack_stream(qweight.T, b, k)  # (out, k)
        zeros = unpack_stream(qzeros, b, out).T.astype(F32)  # (out, groups)
        if self.fmt == "gptq":
            zeros = zeros + F32(1.0)  # v1 stores zero - 1 (AutoGPTQ; not masked back, as its kernels)
        s = np.ascontiguousarray(scales.T, F32)
        m = (-(s * zeros)).astype(F32)
        rep = g // ours
        return LowBitLinear(GroupQuant(codes, np.repeat(s, rep, axis=1), np.repeat(m, rep, axis=1), b, ours),
                            f"gptq{b}")

    def floats(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float tensor as float32 (shape and finiteness checked)."""
        return check_finite(self.ck.f32(name, shape), f"{self.dir}: tensor {name}")


def load_gptq(directory: str | os.PathLike) -> QuantModel:
    """Load a GPTQ directory -> QuantModel (linears LowBitLinear; embeddings, norms and the LM head from
    their float tensors; the head int8 per row)."""
    r = GptqReader(directory)
    cfg = r.config()
    h, shapes = cfg.hidden_size, cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        lin = {n: r.linear(p + path, *shapes[n]) for n, path in PROJ.items()}
        extra = {}
        if cfg.qkv_bias:
            sizes = {"q": cfg.q_size, "k": cfg.kv_size, "v": cfg.kv_size}
            extra = {f"{n}_bias": r.floats(f"{p}{PROJ[n]}.bias", (sizes[n],)) for n in "qkv"}
        layers.append(Layer(attn_norm=r.floats(p + "input_layernorm.weight", (h,)),
                            ffn_norm=r.floats(p + "post_attention_layernorm.weight", (h,)), **lin, **extra))
    e = r.floats("model.embed_tokens.weight", (cfg.vocab_size, h))
    bits = bf16_bits_if_exact(e)
    head_rows = e if cfg.tied_embeddings else r.floats("lm_head.weight", (cfg.vocab_size, h))
    qm = QuantModel(cfg, bits if bits is not None else e, layers,
                    r.floats("model.norm.weight", (h,)), head_from_rows(head_rows),
                    meta={"source": str(r.dir), "format": "gptq", "bits": r.bits, "group_size": r.group_size,
                          "checkpoint_format": r.fmt})
    qm.validate()
    return qm
