"""Models by name (issue 20 #5): a MODEL argument may be a Hugging Face hub id, and `--preset NAME` makes a
random-weight model of a preset's shapes (models/config.py PRESETS).

A hub id (`owner/name`, not an existing local path) is resolved with huggingface_hub's snapshot_download
into its usual cache (HF_HOME / HF_HUB_CACHE): where the hub cannot be reached, or HF_HUB_OFFLINE=1,
the cached snapshot is used; a model in neither is one `error:` line saying what to do (download it where
the hub is reachable, pass a local path, or `--preset` for the model's shapes with random weights).
Only the files a checkpoint directory needs are fetched (config, safetensors, tokenizer).

A preset model is random_model(PRESETS[name], seed=PRESET_SEED): `generate --preset` builds it in memory;
`compile --preset` writes it once as a Hugging Face BitNet checkpoint under $EDGELLM_CACHE/presets/
(default ~/.cache/edgellm/presets/; temporary folder + rename) and compiles that, so `verify` finds
the source the project records.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from edgellm.errors import EdgeLLMError

# Public checkpoints of the presets' shapes (models/config.py PRESETS), for the error's suggestion.
HUB_PRESETS = {
    "1bitLLM/bitnet_b1_58-large": "bitnet_b1_58-large",
    "1bitLLM/bitnet_b1_58-3B": "bitnet_b1_58-3B",
    "microsoft/bitnet-b1.58-2B-4T": "bitnet-b1.58-2B-4T",
    "HF1BitLLM/Llama3-8B-1.58-100B-tokens": "llama3-8b-1.58",
    "tiiuae/Falcon3-1B-Instruct-1.58bit": "falcon3-1b-1.58",
}
# What a checkpoint directory needs (models/loaders): no .bin/.pt weights, no other GGUF variants.
HUB_PATTERNS = ["config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"]
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
# File suffixes that make an owner/name argument a local path (a missing file), not a hub id.
PATH_SUFFIXES = (".gguf", ".safetensors", ".json", ".bin", ".pt", ".pth", ".onnx", ".model", ".npz", ".npy",
                 ".tar", ".gz", ".zip")
PRESET_SEED = 0
ETAG_TIMEOUT_S = 10.0  # the longest one metadata request to the hub may wait

PresetOpt = Annotated[str | None, typer.Option(
    "--preset", help="A random-weight model of a preset's shapes instead of MODEL (`edgellm estimate "
                     "--preset` names them: models/config.py PRESETS).")]


def is_hub_id(text: str) -> bool:
    """'owner/name' as the hub spells repository ids (no '..', no leading or trailing separator)."""
    return bool(HUB_ID.fullmatch(text)) and ".." not in text and not text.endswith((".", "-"))


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - tokenizers depends on huggingface_hub
        return "~/.cache/huggingface/hub"


def _not_found(repo_id: str, why: str) -> EdgeLLMError:
    preset = HUB_PRESETS.get(repo_id)
    hint = f"; or --preset {preset} for a random-weight model of its shapes" if preset else ""
    return EdgeLLMError(f"model {repo_id}: no such local path, not in the Hugging Face cache "
                        f"({_hub_cache()}) and not fetched ({why}); download it where the hub is reachable "
                        f"(hf download {repo_id}) and copy the cache here, or pass a local checkpoint "
                        f"path{hint}")


def _why(e: Exception) -> str:
    """A hub failure in a few words."""
    from huggingface_hub import constants

    kind = type(e).__name__
    if kind == "LocalEntryNotFoundError" or kind == "OfflineModeIsEnabled":
        return "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
    if kind == "GatedRepoError":
        return "the repository is gated: log in (hf auth login) and accept its terms"
    if kind == "RepositoryNotFoundError":
        return "no such repository on the hub, or it is private"
    return f"{kind}: {' '.join(str(e).split())[:120]}"


def hub_snapshot(repo_id: str, patterns: list[str] | None = None) -> Path:
    """The local snapshot folder of a hub model (its `patterns` files, default HUB_PATTERNS): fetched into
    the cache, or the cached one offline."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover
        raise EdgeLLMError(f"model {repo_id}: a hub id needs the huggingface_hub package "
                           "(pip install huggingface_hub)") from None
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=patterns or HUB_PATTERNS,
                                      etag_timeout=ETAG_TIMEOUT_S))
    except Exception as e:  # noqa: BLE001 - every hub failure (offline, unknown, gated) is one line
        raise _not_found(repo_id, _why(e)) from None
    if not (path / "config.json").is_file():
        raise EdgeLLMError(f"model {repo_id}: the snapshot {path} has no config.json (a GGUF repository? "
                           "pass the .gguf file's path)")
    return path


def looks_like_path(text: str) -> bool:
    """An owner/name (is_hub_id) meant as a local path: a file suffix (.gguf, .safetensors, ...) or a
    first part that exists here."""
    p = Path(text)
    return p.suffix.lower() in PATH_SUFFIXES or p.parent.exists()


def resolve_model_arg(model: Path | None, patterns: list[str] | None = None) -> Path | None:
    """MODEL as given when it is None or exists; a hub id's snapshot folder; otherwise as given (the
    loader then says it does not exist). An owner/name that looks like a path (looks_like_path) and does
    not exist: EdgeLLMError saying so, not a hub lookup."""
    if model is None or model.exists():
        return model
    text = str(model)
    if not is_hub_id(text):
        return model
    if looks_like_path(text):
        raise EdgeLLMError(f"model path {model} does not exist")
    return hub_snapshot(text, patterns)


def preset_config(name: str) -> Any:  # -> ModelConfig
    from edgellm.models.config import PRESETS

    if name not in PRESETS:
        raise EdgeLLMError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_model(name: str) -> Any:  # -> QuantModel
    """random_model of the preset's shapes (PRESET_SEED), marked as such in its meta."""
    from edgellm.models.random_model import random_model

    qm = random_model(preset_config(name), seed=PRESET_SEED)
    qm.meta["source"] = f"preset {name} (random weights, seed {PRESET_SEED})"
    return qm


def presets_dir() -> Path:
    env = os.environ.get("EDGELLM_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "edgellm") / "presets"


def preset_dir(name: str) -> Path:
    """Where preset_checkpoint writes the preset's checkpoint (its folder name is the loaded model's name)."""
    return presets_dir() / f"{preset_config(name).name}-seed{PRESET_SEED}"


def preset_saved_config(name: str) -> Any:  # -> ModelConfig
    """The config compile loads from the preset's checkpoint (named by its folder), without writing it."""
    import dataclasses

    return dataclasses.replace(preset_config(name), name=preset_dir(name).name)


def preset_checkpoint(name: str) -> Path:
    """The preset's random-weight model as a Hugging Face BitNet checkpoint in the cache (written once,
    atomically by save_hf_bitnet; a complete one is reused)."""
    from edgellm.models.loaders import save_hf_bitnet

    dest = preset_dir(name)
    if (dest / "config.json").is_file():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(save_hf_bitnet(preset_model(name), dest))
    except OSError as e:
        if (dest / "config.json").is_file():  # another process finished it first
            return dest
        raise EdgeLLMError(f"cannot write the preset model {dest} ({e.strerror or e}); point EDGELLM_CACHE "
                           "at a writable folder") from None


def model_or_preset(model: Path | None, preset: str | None) -> Path | None:
    """compile's checkpoint: the preset's cached checkpoint, else MODEL (a hub id resolved)."""
    if model is not None and preset is not None:
        raise EdgeLLMError("give either MODEL or --preset, not both")
    if preset is not None:
        return preset_checkpoint(preset)
    return resolve_model_arg(model)


# estimate's model when neither MODEL nor --preset is given and the shipped tiny model is absent.
DEFAULT_SMALL = dict(name="small-default", hidden_size=256, n_layers=4, n_heads=4, n_kv_heads=4,
                     ffn_size=688, vocab_size=1024, max_context=512)


def read_model_config(path: Path):  # -> ModelConfig
    """The ModelConfig of a checkpoint (directory with config.json, or .gguf) without loading weights."""
    from edgellm.errors import CheckpointError
    from edgellm.models.loaders import detect_format
    from edgellm.models.loaders.common import model_config_from_hf, read_config

    fmt = detect_format(path)
    if fmt == "gguf":
        from edgellm.models.loaders.gguf_loader import GGUFFile, gguf_config

        return gguf_config(GGUFFile(path))
    raw = read_config(path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: malformed config")
    theta = 500000.0 if fmt == "hf_bitnet" else 10000.0
    return model_config_from_hf(raw, str(Path(path) / "config.json"), subln=fmt == "hf_bitnet",
                                name=Path(path).name, default_theta=theta)


def resolve_config(model: Path | None, preset: str | None):  # -> ModelConfig
    """estimate's model: MODEL path, else --preset, else the shipped tiny model's config, else a small
    default."""
    from edgellm.models.config import PRESETS, ModelConfig

    if model is not None and preset is not None:
        raise EdgeLLMError("give either MODEL or --preset, not both")
    if preset is not None:
        if preset not in PRESETS:
            raise EdgeLLMError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        return PRESETS[preset]
    if model is not None:
        import dataclasses

        local = resolve_model_arg(model, ["config.json"])
        cfg = read_model_config(local)
        return cfg if local == model else dataclasses.replace(cfg, name=str(model))  # a hub id by its id
    from edgellm.models.shipped import tiny_model_dir

    if (tiny_model_dir() / "config.json").is_file():
        return read_model_config(tiny_model_dir())
    return ModelConfig(**DEFAULT_SMALL)
