"""ModelConfig: the shape and numerics-relevant options of a BitNet-, Llama- or Qwen2-family model."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgellm.errors import CheckpointError

ACTIVATIONS = ("relu2", "silu")
INT_FIELDS = ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_size", "head_dim",
              "max_context")
# Upper bounds of the sizes (docs/cli.md, "Model files"): well above every public checkpoint
# (hidden 16384, ffn 53248, 126 layers, 128 heads, head_dim 256, vocab 262144, context 131072),
# low enough that a corrupt number is refused before anything is allocated for it.
LIMITS = {"hidden_size": 1 << 16, "n_layers": 1024, "n_heads": 1024, "n_kv_heads": 1024,
          "ffn_size": 1 << 18, "vocab_size": 1 << 22, "head_dim": 1024, "max_context": 1 << 20}


class ConfigError(CheckpointError):
    """A ModelConfig field out of range; `field` names it so loaders can use the file's own key."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"model config: {field} {problem}")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and options of a BitNet b1.58-family decoder (gated FFN, RoPE, RMSNorm)."""

    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_size: int
    vocab_size: int
    head_dim: int = 0  # 0: hidden_size // n_heads
    act: str = "relu2"  # "relu2" (BitNet-2B-4T) or "silu" (1bitLLM, Llama-style); FFN is gated
    subln: bool = True  # attn_sub_norm before o_proj, ffn_sub_norm before down_proj
    rope_theta: float = 500000.0
    rms_eps: float = 1e-5
    tied_embeddings: bool = True
    max_context: int = 4096
    bos_id: int = 1
    eos_id: int = 2
    name: str = "bitnet"
    qkv_bias: bool = False  # Qwen2: q/k/v projections add a float32 bias (after the linear, before RoPE)
    # RoPE frequency divisors, head_dim/2 float32 values (Llama 3 rope scaling: llama3_freq_factors;
    # a GGUF's rope_freqs tensor); empty: plain RoPE
    rope_freq_factors: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self._check_types()
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden_size // max(self.n_heads, 1))
        self.validate()

    def _check_types(self) -> None:
        """Every field of the type it is declared with (a manifest or config.json may say otherwise)."""
        for f in INT_FIELDS + ("bos_id", "eos_id"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f, f"must be an integer, got {v!r}")
            object.__setattr__(self, f, int(v))
        for f in ("rope_theta", "rms_eps"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ConfigError(f, f"must be a number, got {v!r}")
            object.__setattr__(self, f, float(v))
        ff = self.rope_freq_factors
        if not isinstance(ff, (tuple, list, np.ndarray)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in ff):
            raise ConfigError("rope_freq_factors", f"must be a list of numbers, got {_short(ff)}")
        object.__setattr__(self, "rope_freq_factors", tuple(float(np.float32(v)) for v in ff))
        for f in ("subln", "tied_embeddings", "qkv_bias"):
            if not isinstance(getattr(self, f), (bool, np.bool_)):
                raise ConfigError(f, f"must be true or false, got {getattr(self, f)!r}")
            object.__setattr__(self, f, bool(getattr(self, f)))
        for f in ("act", "name"):
            if not isinstance(getattr(self, f), str):
                raise ConfigError(f, f"must be a string, got {getattr(self, f)!r}")

    def validate(self) -> None:
        """Raise ConfigError (a CheckpointError) naming the first field out of range or inconsistent.

        Limits (LIMITS): sizes are positive and at most the documented bound; rope_theta is finite
        and > 0; rms_eps is finite, > 0 as a float32 and <= 1; bos/eos ids fit 32 bits (-1 or an id
        outside the vocabulary means "none")."""
        for f in ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_size",
                  "head_dim", "max_context"):
            v = int(getattr(self, f))
            if v <= 0:
                raise ConfigError(f, f"must be positive, got {v}")
            if v > LIMITS[f]:
                raise ConfigError(f, f"must be at most {LIMITS[f]:,}, got {v:,}")
        if not (math.isfinite(self.rope_theta) and self.rope_theta > 0):
            raise ConfigError("rope_theta", f"must be finite and > 0, got {self.rope_theta}")
        if not (math.isfinite(self.rms_eps) and 0 < self.rms_eps <= 1 and np.float32(self.rms_eps) > 0):
            raise ConfigError("rms_eps", f"must be finite, > 0 (as a float32) and <= 1, got {self.rms_eps}")
        for f in ("bos_id", "eos_id"):
            if not -1 <= getattr(self, f) < 2**31:
                raise ConfigError(f, f"must be -1 (none) or a token id below 2^31, got {getattr(self, f)}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError("n_heads", f"{self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ConfigError("head_dim", f"{self.head_dim} must be even for RoPE")
        if self.act not in ACTIVATIONS:
            raise ConfigError("act", f"must be one of {ACTIVATIONS}, got {self.act}")
        ff = self.rope_freq_factors
        if ff and len(ff) != self.head_dim // 2:
            raise ConfigError("rope_freq_factors",
                              f"has {len(ff)} values, expected head_dim/2 = {self.head_dim // 2}")
        if ff and not all(math.isfinite(v) and v > 0 for v in ff):
            raise ConfigError("rope_freq_factors", "must be finite and > 0")

    def rope_tables(self, max_pos: int) -> tuple[np.ndarray, np.ndarray]:
        """cos, sin (max_pos, head_dim/2) float32 of this model's RoPE (numerics.rope_tables)."""
        from edgellm.models.numerics import rope_tables

        return rope_tables(self.head_dim, max_pos, self.rope_theta, self.rope_freq_factors)

    @property
    def q_size(self) -> int:
        """Width of the query projection output."""
        return self.n_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of each of the key and value projection outputs."""
        return self.n_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(out, in) of every ternary linear in one layer."""
        h, f = self.hidden_size, self.ffn_size
        return {"q": (self.q_size, h), "k": (self.kv_size, h), "v": (self.kv_size, h),
                "o": (h, self.q_size), "gate": (f, h), "up": (f, h), "down": (h, f)}

    def n_ternary_params(self) -> int:
        """Ternary weights in all layers."""
        return self.n_layers * sum(o * i for o, i in self.linear_shapes().values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for manifests and JSON (rope_freq_factors as a list)."""
        d = dataclasses.asdict(self)
        d["rope_freq_factors"] = list(self.rope_freq_factors)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown or missing keys and wrong types are a CheckpointError."""
        if not isinstance(d, dict):
            raise CheckpointError(f"model config: expected an object, got {type(d).__name__}")
        fields = dataclasses.fields(cls)
        unknown = set(d) - {f.name for f in fields}
        if unknown:
            raise CheckpointError(f"model config: unknown keys {sorted(map(str, unknown))}")
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in d]
        if missing:
            raise CheckpointError(f"model config: missing keys {missing}")
        return cls(**d)

    def to_json(self) -> str:
        """JSON text of to_dict."""
        return json.dumps(self.to_dict(), indent=2)


def _short(v: Any) -> str:
    r = repr(v)
    return r[:40] + ("..." if len(r) > 40 else "")


def llama3_freq_factors(head_dim: int, theta: float, factor: float, low_freq_factor: float,
                        high_freq_factor: float, original_context: int) -> tuple[float, ...]:
    """Llama 3 rope scaling (config.json rope_scaling.rope_type "llama3") as per-frequency divisors,
    as transformers' _compute_llama3_parameters and llama.cpp's convert_hf_to_gguf.py (rope_freqs)
    compute them: wavelengths longer than original_context / low_freq_factor are divided by factor,
    shorter than original_context / high_freq_factor kept, the band between interpolated smoothly.
    float64 on the host, each value rounded to float32 (as the GGUF tensor stores it)."""
    if not (factor > 0 and high_freq_factor > low_freq_factor > 0 and original_context > 0):
        raise ConfigError("rope_scaling", f"llama3 parameters out of range (factor {factor}, low_freq_factor "
                          f"{low_freq_factor}, high_freq_factor {high_freq_factor}, "
                          f"original_max_position_embeddings {original_context})")
    inv = 1.0 / (float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2.0 * math.pi / inv
    low_wl, high_wl = original_context / low_freq_factor, original_context / high_freq_factor
    smooth = (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    mid = 1.0 / ((1.0 - smooth) / factor + smooth)
    f = np.where(wavelen < high_wl, 1.0, np.where(wavelen > low_wl, factor, mid))
    return tuple(float(np.float32(v)) for v in f)


# Shapes of public checkpoints, from each checkpoint's own config.json on the Hugging Face hub
# (microsoft/bitnet-b1.58-2B-4T, 1bitLLM/bitnet_b1_58-large, 1bitLLM/bitnet_b1_58-3B,
# HF1BitLLM/Llama3-8B-1.58-100B-tokens, tiiuae/Falcon3-1B-Instruct-1.58bit, meta-llama/Llama-3.2-1B,
# HuggingFaceTB/SmolLM2-360M-Instruct, Qwen/Qwen2.5-0.5B), used for random models, estimates and benches.
PRESETS: dict[str, ModelConfig] = {
    "bitnet-b1.58-2B-4T": ModelConfig(
        name="bitnet-b1.58-2B-4T", hidden_size=2560, n_layers=30, n_heads=20, n_kv_heads=5,
        ffn_size=6912, vocab_size=128256, act="relu2", subln=True, rope_theta=500000.0,
        tied_embeddings=True, max_context=4096, bos_id=128000, eos_id=128001),
    "bitnet_b1_58-large": ModelConfig(
        name="bitnet_b1_58-large", hidden_size=1536, n_layers=24, n_heads=16, n_kv_heads=16,
        ffn_size=4096, vocab_size=32002, act="silu", subln=True, rope_theta=10000.0,
        tied_embeddings=False, max_context=2048, bos_id=1, eos_id=2),
    "bitnet_b1_58-3B": ModelConfig(
        name="bitnet_b1_58-3B", hidden_size=3200, n_layers=26, n_heads=32, n_kv_heads=32,
        ffn_size=8640, vocab_size=32002, act="silu", subln=True, rope_theta=10000.0,
        tied_embeddings=False, max_context=2048, bos_id=1, eos_id=2),
    "llama3-8b-1.58": ModelConfig(
        name="llama3-8b-1.58", hidden_size=4096, n_layers=32, n_heads=32, n_kv_heads=8,
        ffn_size=14336, vocab_size=128256, act="silu", subln=False, rope_theta=500000.0,
        tied_embeddings=False, max_context=8192, bos_id=128000, eos_id=128001),
    "falcon3-1b-1.58": ModelConfig(
        name="falcon3-1b-1.58", hidden_size=2048, n_layers=18, n_heads=8, n_kv_heads=4,
        head_dim=256, ffn_size=8192, vocab_size=131072, act="silu", subln=False,
        rope_theta=1000042.0, tied_embeddings=False, max_context=8192, bos_id=11, eos_id=11),
    "llama-3.2-1b": ModelConfig(
        name="llama-3.2-1b", hidden_size=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64,
        ffn_size=8192, vocab_size=128256, act="silu", subln=False, rope_theta=500000.0, rms_eps=1e-5,
        tied_embeddings=True, max_context=131072, bos_id=128000, eos_id=128001,
        rope_freq_factors=llama3_freq_factors(64, 500000.0, 32.0, 1.0, 4.0, 8192)),
    "smollm2-360m": ModelConfig(
        name="smollm2-360m", hidden_size=960, n_layers=32, n_heads=15, n_kv_heads=5, head_dim=64,
        ffn_size=2560, vocab_size=49152, act="silu", subln=False, rope_theta=100000.0, rms_eps=1e-5,
        tied_embeddings=True, max_context=8192, bos_id=1, eos_id=2),
    "qwen2.5-0.5b": ModelConfig(
        name="qwen2.5-0.5b", hidden_size=896, n_layers=24, n_heads=14, n_kv_heads=2, head_dim=64,
        ffn_size=4864, vocab_size=151936, act="silu", subln=False, rope_theta=1000000.0, rms_eps=1e-6,
        tied_embeddings=True, max_context=32768, bos_id=151643, eos_id=151643, qkv_bias=True),
}
