"""compile's DDR fit check on a ternary model's config alone, before its weights are loaded or generated:
the check the DSE makes first (dse._explore: check_ddr_fit of the base design), with the same message,
so that a model too large for the board is refused in a second rather than after loading it (a 3B model on
the PYNQ-Z2 took ~79 s). A low-bit model (GPTQ, llama/qwen2 GGUF) is checked on its memory plan, after
loading (steps.check_plan_fits), as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig


def ternary_config(path: Path) -> ModelConfig | None:
    """The config the loader gives a ternary checkpoint (HF BitNet or latent directory, a BitNet GGUF), read
    without its tensors; None for a low-bit checkpoint or one whose config cannot be read here (the loader
    then loads it, or says why it cannot)."""
    from edgellm.models.loaders import detect_format
    from edgellm.models.loaders.common import checkpoint_name, model_config_from_hf, read_config

    try:
        fmt = detect_format(path)
        if fmt == "gguf":
            from edgellm.models.loaders.gguf_llama import LOWBIT_ARCHS
            from edgellm.models.loaders.gguf_loader import GGUFFile, _config

            g = GGUFFile(path)
            return None if g.meta_str("general.architecture") in LOWBIT_ARCHS else _config(g)
        if fmt not in ("hf_bitnet", "latent"):
            return None
        raw = read_config(path)
        is_bitnet = raw.get("model_type") == "bitnet"
        subln = (is_bitnet and fmt == "hf_bitnet") or _has_sub_norm(Path(path), fmt)
        return model_config_from_hf(raw, str(Path(path) / "config.json"), subln=subln,
                                    name=checkpoint_name(Path(path)),
                                    default_theta=500000.0 if is_bitnet else 10000.0)
    except EdgeLLMError:
        return None


def _has_sub_norm(d: Path, fmt: str) -> bool:
    """Whether layer 0 has the SubLN attention norm, as the loaders decide (from the tensor index only)."""
    from edgellm.models.loaders.safetensors_io import Checkpoint

    ck = Checkpoint(d)
    if fmt == "hf_bitnet":
        from edgellm.models.loaders.hf_bitnet import NORM_NAMES

        return ck.has("model.layers.0." + NORM_NAMES["attn_sub_norm"] + ".weight")
    from edgellm.models.loaders.latent import _sub_norm_name

    return _sub_norm_name(ck, "model.layers.0.", "attn_sub_norm") is not None


def check_fits_early(cfg: ModelConfig, board: Any, overrides: dict[str, Any]) -> None:
    """EdgeLLMError (check_ddr_fit's message) when the ternary model of `cfg` cannot fit the board's DDR
    with the base design step_dse explores from (--context its max_context)."""
    from edgellm.compiler.design import DesignParams, check_ddr_fit

    base = DesignParams(max_context=overrides.get("max_context", 0))
    where = f"{board.name} ({board.ddr_bytes / 2**20:.0f} MiB DDR)"
    check_ddr_fit(cfg, base, board.ddr_available_bytes, where)
