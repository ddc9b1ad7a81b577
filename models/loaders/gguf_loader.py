"""GGUF checkpoints (llama.cpp's and bitnet.cpp's bitnet architectures): TQ1_0 / TQ2_0 / I2_S ternary
tensors and the tokenizer stored as metadata.

TQ blocks hold 256 trits and one fp16 scale d (dequantized weight = trit * d). We require every
block of a tensor that has a non-zero trit to carry the same d (all-zero blocks, which llama.cpp's
quantizer writes with d = 0, are exempt) and set weight_scale = 1 / d. bitnet.cpp's I2_S (type 36,
models/loaders/i2s.py) holds 2-bit codes and one float32 scale per tensor: weight_scale = 1 / scale.
Float linears (F32/F16/BF16) that hold {0, +-a} load exactly with scale 1/a, other float linears are
ternarized with absmean. Architectures: "bitnet" (llama.cpp: SiLU, SubLN, tied head) and
"bitnet-b1.58"/"bitnet-25" (bitnet.cpp: ReLU^2). RoPE is NEOX style (rotate-half) for these
architectures, as ours. Architectures "llama" and "qwen2" with group-quantized tensors (Q4_0 .. Q6_K,
mixed per tensor) load through models/loaders/gguf_llama.py. The tokenizer: an embedded
tokenizer.huggingface.json, else the tokenizer.ggml.* keys (models/loaders/gguf_tokenizer.py);
tokenizer.chat_template is kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import gguf_llama, i2s
from edgellm.models.loaders.common import build_config, check_finite, head_from_rows
from edgellm.models.loaders.gguf_tokenizer import chat_template, gguf_tokenizer
from edgellm.models.loaders.latent import absmean_ternarize
from edgellm.models.loaders.safetensors_io import bf16_bits_if_exact
from edgellm.models.weights import Layer, QuantModel, TernaryLinear, pack2
from edgellm.runtime.bpe import ByteLevelBPE

ARCH_ACT = {"bitnet": "silu", "bitnet-b1.58": "relu2", "bitnet-25": "relu2", "llama": "silu", "qwen2": "silu"}
QK = 256
_POW3 = np.array([1, 3, 9, 27, 81], np.uint8)


def tq2_codes(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, nb, 66) TQ2_0 bytes -> codes uint8 (rows, nb, 256) in 0..3 and d bits uint16 (rows, nb)."""
    r, nb = blocks.shape[:2]
    qs = blocks[..., :64].reshape(r, nb, 2, 1, 32)
    codes = (qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 1, 4, 1)) & np.uint8(3)
    return codes.reshape(r, nb, QK), np.ascontiguousarray(blocks[..., 64:66]).view(np.uint16)[..., 0]


def tq1_codes(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, nb, 54) TQ1_0 bytes -> codes uint8 (rows, nb, 256) in 0..2 and d bits uint16 (rows, nb)."""
    r, nb = blocks.shape[:2]

    def trits(b: np.ndarray, pows: np.ndarray) -> np.ndarray:  # (r, nb, n) -> (r, nb, len(pows) * n)
        v = b[..., None, :] * pows.reshape(-1, 1)  # uint8 wrap-around, as ggml does
        return ((v.astype(np.uint16) * 3) >> 8).astype(np.uint8).reshape(r, nb, -1)

    codes = np.concatenate([trits(blocks[..., :32], _POW3), trits(blocks[..., 32:48], _POW3),
                            trits(blocks[..., 48:52], _POW3[:4])], axis=-1)
    return codes, np.ascontiguousarray(blocks[..., 52:54]).view(np.uint16)[..., 0]


class GGUFFile:
    """Metadata and tensors of a GGUF file (via gguf-py's GGUFReader)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.reader = i2s.reader(self.path)
        except FileNotFoundError as e:
            raise CheckpointError(f"{self.path}: not found") from e
        except (ValueError, IndexError, KeyError, OSError, TypeError) as e:
            raise CheckpointError(f"{self.path}: not a readable GGUF file ({e})") from e
        self.tensors = {t.name: t for t in self.reader.tensors}

    def meta(self, key: str, default: Any = None) -> Any:
        """A metadata value, or default when absent."""
        f = self.reader.get_field(key)
        if f is None:
            return default
        try:
            return f.contents()
        except (ValueError, IndexError, TypeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{self.path}: metadata {key} is unreadable ({e})") from e

    def need(self, key: str) -> Any:
        """A required metadata value."""
        v = self.meta(key)
        if v is None:
            raise CheckpointError(f"{self.path}: missing metadata key {key}")
        return v

    def meta_int(self, key: str, default: int | None = None) -> int:
        """An integer metadata value (default when absent; required when default is None)."""
        v = self.need(key) if default is None else self.meta(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise CheckpointError(f"{self.path}: metadata {key} must be an integer, got {_show(v)}")
        return int(v)

    def meta_float(self, key: str, default: float) -> float:
        """A float metadata value (integers accepted), as its shortest float32 decimal."""
        v = self.meta(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise CheckpointError(f"{self.path}: metadata {key} must be a number, got {_show(v)}")
        return _f32(float(v))

    def meta_str(self, key: str, default: str | None = None) -> str:
        """A string metadata value (default when absent; required when default is None)."""
        v = self.need(key) if default is None else self.meta(key, default)
        if not isinstance(v, str):
            raise CheckpointError(f"{self.path}: metadata {key} must be a string, got {_show(v)}")
        return v

    def tensor(self, name: str, shape: tuple[int, ...]) -> Any:
        """ReaderTensor with numpy shape (reversed GGUF dims) checked."""
        t = self.tensors.get(name)
        if t is None:
            raise CheckpointError(f"{self.path}: missing tensor {name}")
        got = tuple(int(x) for x in reversed(t.shape.tolist()))
        if got != tuple(shape):
            raise CheckpointError(f"{self.path}: tensor {name}: shape {list(got)}, expected {list(shape)}")
        return t

    def floats(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A F32/F16/BF16 tensor as float32."""
        t = self.tensor(name, shape)
        kind = t.tensor_type.name
        if kind == "F32":
            return np.array(t.data, np.float32).reshape(shape)
        if kind == "F16":
            return t.data.astype(np.float32).reshape(shape)
        if kind == "BF16":
            bits = np.ascontiguousarray(t.data).view(np.uint16).reshape(shape)
            return (bits.astype(np.uint32) << 16).view(np.float32)
        raise CheckpointError(f"{self.path}: tensor {name}: unsupported GGUF type {kind} "
                              "(expected F32, F16 or BF16)")

    def linear(self, name: str, out: int, k: int) -> TernaryLinear:
        """A TQ1_0/TQ2_0/I2_S (or float) linear as a TernaryLinear."""
        t = self.tensor(name, (out, k))
        kind = t.tensor_type.name
        if kind in ("F32", "F16", "BF16"):
            w = check_finite(self.floats(name, (out, k)), f"{self.path}: tensor {name}")
            mags = np.unique(np.abs(w[w != 0]))
            if mags.size <= 1:
                a = mags[0] if mags.size else np.float32(1.0)
                return TernaryLinear(pack2(np.sign(w).astype(np.int8)), k, np.float32(1.0) / a)
            tern, s = absmean_ternarize(w)
            return TernaryLinear(pack2(tern), k, s)
        if kind == "I2_S":
            codes, d = i2s.i2s_decode(t.data, out, k)
            self._no_code3(codes, name, kind)
            if not np.any(codes != 1):
                d = np.float32(1.0)  # an all-zero tensor: any scale
        elif kind in ("TQ1_0", "TQ2_0"):
            codes, d = self._tq_codes(t, name, kind, out, k)
        else:
            raise CheckpointError(f"{self.path}: tensor {name}: unsupported GGUF type {kind} "
                                  "(ternary linears must be TQ1_0, TQ2_0, I2_S or float)")
        d = self._output_scale(name, d)
        if not np.isfinite(d) or d <= 0:
            raise CheckpointError(f"{self.path}: tensor {name}: weight scale d={d} must be finite "
                                  "and positive")
        tern = codes.reshape(out, k).view(np.int8) - np.int8(1)
        return TernaryLinear(pack2(tern), k, np.float32(1.0) / d)

    def _tq_codes(self, t: Any, name: str, kind: str, out: int, k: int) -> tuple[np.ndarray, np.float32]:
        """TQ1_0/TQ2_0 codes (out, k/256, 256) and the one block scale d all live blocks share."""
        if k % QK:
            raise CheckpointError(f"{self.path}: tensor {name}: {kind} needs in_features divisible by {QK}")
        bsize = 66 if kind == "TQ2_0" else 54
        blocks = np.asarray(t.data).reshape(out, k // QK, bsize)
        codes, dbits = (tq2_codes if kind == "TQ2_0" else tq1_codes)(blocks)
        self._no_code3(codes, name, kind)
        live = np.any(codes != 1, axis=-1)  # (out, nb) blocks holding a non-zero trit
        ds = np.unique(dbits[live])
        if ds.size > 1:
            raise CheckpointError(f"{self.path}: tensor {name}: {ds.size} different block scales; "
                                  "per-block scales are unsupported (need one scale per tensor)")
        return codes, (np.float32(ds.view(np.float16)[0]) if ds.size else np.float32(1.0))

    def _no_code3(self, codes: np.ndarray, name: str, kind: str) -> None:
        if np.any(codes == 3):
            raise CheckpointError(f"{self.path}: tensor {name}: {kind} code 3 is not ternary")

    def _output_scale(self, name: str, d: np.float32) -> np.float32:
        """d times llama.cpp's optional per-tensor output scale <name>.scale, when the file has one."""
        extra = self.tensors.get(name.removesuffix(".weight") + ".scale")
        if extra is None:
            return d
        sv = np.asarray(extra.data).reshape(-1)
        if sv.size != 1 or extra.tensor_type.name not in ("F32", "F16"):
            raise CheckpointError(f"{self.path}: tensor {extra.name}: expected one F32/F16 value, got "
                                  f"{sv.size} {extra.tensor_type.name}")
        with np.errstate(over="ignore", invalid="ignore"):
            return np.float32(np.float64(d) * float(sv.astype(np.float32)[0]))


def _f32(v: float) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (1e-05, not 9.99e-06)."""
    with np.errstate(over="ignore"):
        return float(str(np.float32(v)))


def _show(v: Any) -> str:
    """A metadata value for an error message (type and a short repr)."""
    r = repr(v)
    return f"{type(v).__name__} {r[:40]}{'...' if len(r) > 40 else ''}"


# ModelConfig field -> GGUF metadata key (after "<arch>."), for error messages
GGUF_KEYS = {"hidden_size": "embedding_length", "n_layers": "block_count", "n_heads": "attention.head_count",
             "n_kv_heads": "attention.head_count_kv", "ffn_size": "feed_forward_length",
             "vocab_size": "vocab_size", "head_dim": "attention.key_length",
             "max_context": "context_length", "rope_theta": "rope.freq_base",
             "rms_eps": "attention.layer_norm_rms_epsilon"}


def gguf_config(g: GGUFFile) -> ModelConfig:
    """The ModelConfig a GGUF file's metadata describes (no tensor read)."""
    arch = g.meta_str("general.architecture")
    if arch not in ARCH_ACT:
        raise CheckpointError(f"{g.path}: unsupported GGUF architecture {arch!r} "
                              f"(one of {sorted(ARCH_ACT)})")
    a = arch
    emb = g.tensors.get("token_embd.weight")
    if emb is None:
        raise CheckpointError(f"{g.path}: missing tensor token_embd.weight")
    heads = g.meta_int(f"{a}.attention.head_count")
    head_dim = g.meta_int(f"{a}.attention.key_length", g.meta_int(f"{a}.rope.dimension_count", 0))
    theta = g.meta_float(f"{a}.rope.freq_base", 10000.0)
    lowbit = arch in gguf_llama.LOWBIT_ARCHS
    factors = gguf_llama.rope_factors(g, head_dim or g.meta_int(f"{a}.embedding_length") // max(heads, 1)) \
        if lowbit else ()
    keys = {f: f"metadata {a}.{k}" for f, k in GGUF_KEYS.items()}
    keys.update(rope_freq_factors="tensor rope_freqs.weight")
    keys.update(bos_id="metadata tokenizer.ggml.bos_token_id", eos_id="metadata tokenizer.ggml.eos_token_id")
    return build_config(
        str(g.path), keys,
        hidden_size=g.meta_int(f"{a}.embedding_length"), n_layers=g.meta_int(f"{a}.block_count"),
        n_heads=heads, n_kv_heads=g.meta_int(f"{a}.attention.head_count_kv", heads),
        ffn_size=g.meta_int(f"{a}.feed_forward_length"),
        vocab_size=g.meta_int(f"{a}.vocab_size", int(emb.shape[1])),
        head_dim=head_dim, act=ARCH_ACT[arch], subln="blk.0.attn_sub_norm.weight" in g.tensors,
        rope_theta=theta, qkv_bias=lowbit and "blk.0.attn_q.bias" in g.tensors, rope_freq_factors=factors,
        rms_eps=g.meta_float(f"{a}.attention.layer_norm_rms_epsilon", 1e-5),
        tied_embeddings="output.weight" not in g.tensors,
        max_context=g.meta_int(f"{a}.context_length", 4096),
        bos_id=g.meta_int("tokenizer.ggml.bos_token_id", 1),
        eos_id=g.meta_int("tokenizer.ggml.eos_token_id", 2),
        name=g.meta_str("general.name", g.path.stem))


def load_gguf(path: str | os.PathLike, lowbit_head: bool = False, float_linears: str = "q8_0"
              ) -> tuple[QuantModel, Any]:
    """Load a GGUF -> (model, its tokenizer or None). qm.meta["tokenizer_json"] holds the tokenizer as
    tokenizer.json text and qm.meta["chat_template"] the chat template (or None). lowbit_head and
    float_linears apply to the llama/qwen2 architectures (models/loaders/gguf_llama.py)."""
    g = GGUFFile(path)
    cfg = gguf_config(g)
    if g.meta_str("general.architecture") in gguf_llama.LOWBIT_ARCHS:
        qm = gguf_llama.load_lowbit_gguf(g, cfg, lowbit_head, float_linears)
        return qm, _tokenizer(g, qm)
    h, shapes = cfg.hidden_size, cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        lin = {n: g.linear(p + gn + ".weight", *shapes[n]) for n, gn in gguf_llama.LINEARS.items()}
        norms = {"attn_norm": g.floats(p + "attn_norm.weight", (h,)),
                 "ffn_norm": g.floats(p + "ffn_norm.weight", (h,))}
        if cfg.subln:
            norms["attn_sub_norm"] = g.floats(p + "attn_sub_norm.weight", (cfg.q_size,))
            norms["ffn_sub_norm"] = g.floats(p + "ffn_sub_norm.weight", (cfg.ffn_size,))
        for n, v in norms.items():
            check_finite(v, f"{g.path}: {p}{n}")
        layers.append(Layer(**norms, **lin))
    et = g.tensor("token_embd.weight", (cfg.vocab_size, h))
    if et.tensor_type.name == "BF16":
        embed = np.ascontiguousarray(et.data).view(np.uint16).reshape(cfg.vocab_size, h).copy()
    else:
        e = g.floats("token_embd.weight", (cfg.vocab_size, h))
        bits = bf16_bits_if_exact(e)
        embed = bits if bits is not None else e
    check_finite(embed, f"{g.path}: tensor token_embd.weight")
    final = check_finite(g.floats("output_norm.weight", (h,)), f"{g.path}: output_norm.weight")
    rows = embed if cfg.tied_embeddings else check_finite(g.floats("output.weight", (cfg.vocab_size, h)),
                                                          f"{g.path}: tensor output.weight")
    qm = QuantModel(cfg, embed, layers, final, head_from_rows(rows),
                    meta={"source": str(g.path), "format": "gguf"})
    qm.validate()
    return qm, _tokenizer(g, qm)


def _tokenizer(g: GGUFFile, qm: QuantModel) -> Any:
    """An embedded tokenizer.huggingface.json (read by the tokenizers library), else the tokenizer.ggml.*
    keys as tokenizer.json (read by runtime/bpe.py, as a compiled project reads it); None without both."""
    cfg = qm.config
    qm.meta["chat_template"] = chat_template(g)
    text = g.meta("tokenizer.huggingface.json")
    if isinstance(text, str):
        from edgellm.models.loaders.tokenizer import Tokenizer

        qm.meta["tokenizer_json"] = text
        return Tokenizer.from_str(text, cfg.bos_id, cfg.eos_id, source=str(g.path))
    built = gguf_tokenizer(g, cfg.vocab_size)
    if built is None:
        return None
    spec, bos, eos = built
    qm.meta["tokenizer_json"] = json.dumps(spec, ensure_ascii=False)
    return ByteLevelBPE.from_spec(spec, f"{g.path} (tokenizer.ggml.*)", bos, eos)
