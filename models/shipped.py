"""Where the shipped tiny model lives, and resolving a MODEL argument (None = the tiny model)."""

from __future__ import annotations

from pathlib import Path

from edgellm.errors import EdgeLLMError


def tiny_model_dir() -> Path:
    """The shipped tiny model's directory (inside the installed edgellm.models package)."""
    return Path(__file__).resolve().parent / "tiny"


def resolve_model_path(model: Path | None) -> Path:
    """The checkpoint to load: MODEL if given (must exist), else the shipped tiny model."""
    if model is None:
        tiny = tiny_model_dir()
        if not (tiny / "config.json").is_file():
            raise EdgeLLMError(f"no MODEL given and the shipped tiny model is missing at {tiny}")
        return tiny
    if not model.exists():
        raise EdgeLLMError(f"model path {model} does not exist")
    return model
