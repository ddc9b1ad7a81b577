"""llama.cpp's tensor types for a model at a GGUF file type (Q4_0, Q4_K_M, Q2_K), as the low-bit engine's
formats: what `edgellm estimate --weights` and bench/lowbit_projections.py project for a preset's shapes.
The rules themselves (src/llama-quant.cpp, llama_tensor_get_type) are models/loaders/gguf_mix.py's, the
ones the GGUF writer uses; the engine's cost model: cost/lowbit.py."""

from __future__ import annotations

from edgellm.compiler.cost.lowbit import FORMATS, LowbitModel, TensorFormat, fit
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.gguf_llama import LINEARS
from edgellm.models.loaders.gguf_mix import BLOCK, fallback, tensor_type, use_more_bits

__all__ = ["BLOCK", "FILE_TYPES", "llama_cpp_mix", "use_more_bits"]

FILE_TYPES = ("Q4_0", "Q4_K_M", "Q2_K")


def _engine_format(name: str, n_in: int) -> TensorFormat:
    """The engine format a tensor of GGUF type `name` and n_in inputs is stored in, after llama.cpp's
    fallback; an error when that type's blocks do not divide the row or the engine has no such format."""
    t = fallback(name, n_in)
    if t not in FORMATS or n_in % BLOCK[t]:
        raise EdgeLLMError(f"low-bit mix: no fallback for {name} at input size {n_in}")
    return fit(FORMATS[t], n_in)


def llama_cpp_mix(cfg: ModelConfig, ftype: str) -> LowbitModel:
    """The tensor types llama.cpp's quantizer gives a model at file type `ftype` (Q4_0, Q4_K_M, Q2_K;
    models/loaders/gguf_mix.tensor_type at the model's GQA), as engine formats; the LM head (the token
    embedding of a tied model) as llama.cpp's output tensor: Q6_K, Q8_0 when the hidden size is not a
    multiple of 256."""
    if ftype not in FILE_TYPES:
        raise EdgeLLMError(f"low-bit mix: unknown file type {ftype!r} (one of {', '.join(FILE_TYPES)})")
    sh, gqa = cfg.linear_shapes(), cfg.n_heads // cfg.n_kv_heads
    layers = tuple({n: _engine_format(tensor_type(ftype, LINEARS[n], i, cfg.n_layers, gqa), sh[n][1])
                    for n in sh} for i in range(cfg.n_layers))
    head = tensor_type(ftype, "output", 0, cfg.n_layers, gqa)
    return LowbitModel(layers, _engine_format(head, cfg.hidden_size))
