"""Where the shipped tiny model lives, and resolving a MODEL argument (None = the tiny model)."""

from __future__ import annotations

from pathlib import Path

from edgellm.errors import EdgeLLMError


def tiny_model_dir() -> Path:
    """The shipped tiny model's directory (inside the installed edgellm.models package)."""
    return Path(__file__).resolve().parent / "tiny"


SHIPPED_TINY = "edgellm:tiny"  # how a project records the shipped tiny model (not its install path)


def source_name(path: Path) -> str:
    """A checkpoint as a project's manifest records it (model_source): the shipped tiny model by name,
    so that a project outlives the install it was compiled with (a regular then an editable install
    move the package); any other checkpoint by its path."""
    try:
        if path.resolve() == tiny_model_dir():
            return SHIPPED_TINY
    except OSError:
        pass
    return str(path)


def source_path(name: str) -> Path:
    """The checkpoint a recorded model_source names (source_name's inverse): the shipped tiny model of
    this install for SHIPPED_TINY."""
    return tiny_model_dir() if name == SHIPPED_TINY else Path(name)


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
