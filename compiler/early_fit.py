"""compile's DDR fit check on a ternary model's config alone, before its weights are loaded or generated:
the check the DSE makes first (dse._explore: check_ddr_fit of the base design), with the same message,
so that a model too large for the board is refused in a second rather than after loading it (a 3B model on
the PYNQ-Z2 took ~79 s). A low-bit model (GPTQ, llama/qwen2 GGUF) is checked exactly on its memory plan,
after loading (steps.check_plan_fits); before loading, check_lowbit_fits_early refuses one whose lower
bound (the plan's parts computable from the config and tensor types) already exceeds the board's DDR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig


def ternary_config(path: Path) -> ModelConfig | None:
    """The config the loader gives a ternary checkpoint (HF BitNet or latent directory, a BitNet GGUF), read
    by the loaders' own config functions without its tensors; None for a low-bit checkpoint or one whose
    config cannot be read here (the loader then loads it, or says why it cannot)."""
    from edgellm.models.loaders import detect_format

    try:
        fmt = detect_format(path)
        if fmt == "gguf":
            from edgellm.models.loaders.gguf_llama import LOWBIT_ARCHS
            from edgellm.models.loaders.gguf_loader import GGUFFile, gguf_config

            g = GGUFFile(path)
            return None if g.meta_str("general.architecture") in LOWBIT_ARCHS else gguf_config(g)
        if fmt == "hf_bitnet":
            from edgellm.models.loaders.hf_bitnet import hf_bitnet_config

            return hf_bitnet_config(Path(path))
        if fmt == "latent":
            from edgellm.models.loaders.latent import latent_config

            return latent_config(Path(path))
        return None
    except EdgeLLMError:
        return None


def check_fits_early(cfg: ModelConfig, board: Any, overrides: dict[str, Any]) -> None:
    """EdgeLLMError (check_ddr_fit's message) when the ternary model of `cfg` cannot fit the board's DDR
    with the base design step_dse explores from (--context its max_context)."""
    from edgellm.compiler.design import DesignParams
    from edgellm.compiler.design_bytes import check_board_ddr_fit

    check_board_ddr_fit(cfg, DesignParams(max_context=overrides.get("max_context", 0)), board)


def lowbit_floor(path: Path, max_context: int = 0) -> tuple[str, dict[str, int]] | None:
    """(the loaded model's name, {part: bytes}) of a lower bound on a low-bit checkpoint's DDR use
    (step_plan_memory's buffer plus the host's bf16 embedding table) at max_context (0: the model's), from
    its config and tensor types: the linears' codes at their bits (the image adds scales and padding),
    the int8 LM head's rows (its scales left out), an f16 K and V cache (the design may choose f32), the
    embeddings. None for a ternary checkpoint; EdgeLLMError for one whose config cannot be read."""
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.models.loaders.common import checkpoint_name

    src = le.from_path(Path(path))
    if src is None:
        return None
    cfg = src.cfg
    shapes = cfg.linear_shapes()
    ctx = min(max_context or cfg.max_context, cfg.max_context)
    parts = {"low-bit weights": sum(shapes[n][0] * shapes[n][1] * fmt.bits for layer in src.model.layers
                                    for n, fmt in layer.items()) // 8,
             "int8 LM head": cfg.vocab_size * cfg.hidden_size,
             "f16 KV cache": 2 * cfg.n_layers * ctx * cfg.kv_size * 2,
             "embeddings": cfg.vocab_size * cfg.hidden_size * 2}
    return (cfg.name if Path(path).is_file() else checkpoint_name(Path(path))), parts


def check_lowbit_fits_early(path: Path, board: Any, overrides: dict[str, Any]) -> None:
    """EdgeLLMError when a low-bit checkpoint (GPTQ, llama/qwen2 GGUF; others pass) cannot fit the board's
    DDR even at its lowbit_floor; read from the config and tensor types only."""
    try:
        floor = lowbit_floor(path, overrides.get("max_context") or 0)
    except EdgeLLMError:
        return  # the loader says what is wrong with it
    if floor is None:
        return
    name, parts = floor
    total, mib = sum(parts.values()), 2**20
    if total > board.ddr_available_bytes:
        detail = ", ".join(f"{k} {v / mib:.0f} MiB" for k, v in parts.items())
        raise EdgeLLMError(f"{name} needs at least {total / mib:.0f} MiB of DDR ({detail}) but {board.name} "
                           f"leaves {board.ddr_available_bytes / mib:.0f} MiB for the model")
