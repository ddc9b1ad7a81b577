"""ModelConfig: the shape and numerics-relevant options of a BitNet-family model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from edgellm.errors import CheckpointError

ACTIVATIONS = ("relu2", "silu")


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

    def __post_init__(self) -> None:
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden_size // max(self.n_heads, 1))
        self.validate()

    def validate(self) -> None:
        """Raise CheckpointError if the shapes are inconsistent."""
        for f in ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_size",
                  "head_dim", "max_context"):
            if int(getattr(self, f)) <= 0:
                raise CheckpointError(f"model config: {f} must be positive, got {getattr(self, f)}")
        if self.n_heads % self.n_kv_heads:
            raise CheckpointError(
                f"model config: n_heads {self.n_heads} is not a multiple of n_kv_heads "
                f"{self.n_kv_heads}")
        if self.head_dim % 2:
            raise CheckpointError(f"model config: head_dim {self.head_dim} must be even for RoPE")
        if self.act not in ACTIVATIONS:
            raise CheckpointError(f"model config: act must be one of {ACTIVATIONS}, got {self.act}")

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
        """Plain dict, for manifests and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise CheckpointError(f"model config: unknown keys {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        """JSON text of to_dict."""
        return json.dumps(self.to_dict(), indent=2)


# Shapes of public checkpoints (ANCHORS.md), used for random models, estimates and benches.
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
}
