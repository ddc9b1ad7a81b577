"""onnxruntime backend: runs the exported ONNX model (models/onnx_export.py) with a numpy KV cache.

Registers itself on import (models.backend.make_backend imports it lazily) as backend "onnx" (low-bit
linears in the numerics contract's order, bit for bit) and "onnx-nbits" (low-bit linears as com.microsoft
MatMulNBits, the ecosystem's form; build_onnx's `lowbit`). Ternary-only models build one graph for both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgellm.errors import EdgeLLMError
from edgellm.models import onnx_export
from edgellm.models.backend import register_backend
from edgellm.models.config import ModelConfig
from edgellm.models.weights import QuantModel


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Deterministic CPU session options: fixed thread count, sequential execution."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


class OrtBackend:
    """The ONNX export run by onnxruntime, as a Backend (forward / reset / length).

    `model` is a QuantModel (exported on the fly) or the path of a model written by export_onnx.
    taps adds GoldenModel-named intermediate outputs (in `last_taps` after each forward); fast uses
    the uint8-activation ternary matmuls (same logits, much faster; see build_onnx); kv_dtype "f16"
    exports the QuantModel with the f16 KV cache rounding (a model file carries its own); lowbit
    "contract" or "nbits" picks the low-bit linears' form of an exported QuantModel (a file carries its own).
    Past K/V are numpy arrays (P, n_kv, head_dim) per layer, fed back on every call."""

    name = "onnx"

    def __init__(self, model: QuantModel | str | Path, threads: int = 1, taps: bool = False,
                 fast: bool = False, kv_dtype: str = "f32", lowbit: str = "contract") -> None:
        onnx_export.check_lowbit_mode(lowbit)
        self.name = "onnx" if lowbit == "contract" else f"onnx-{lowbit}"
        self.lowbit_form: str | None = lowbit  # the low-bit linears' form; None: a file older than the key
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        so = session_options(threads)
        providers = ["CPUExecutionProvider"]
        if isinstance(model, QuantModel):
            self.config: ModelConfig = model.config
            if not onnx_export.needs_external(model.config, model, lowbit):
                proto = onnx_export.build_onnx(model, taps=taps, fast=fast, kv_dtype=kv_dtype, lowbit=lowbit)
                self.session = ort.InferenceSession(proto.SerializeToString(), so, providers=providers)
            else:  # over the protobuf limit: go through a file with external data
                self._tmp = tempfile.TemporaryDirectory(prefix="edgellm-onnx-")
                path = onnx_export.export_onnx(model, Path(self._tmp.name) / "model.onnx", fast=fast,
                                               taps=taps, kv_dtype=kv_dtype, lowbit=lowbit)
                self.session = ort.InferenceSession(str(path), so, providers=providers)
        else:
            path = Path(model)
            if not path.is_file():
                raise EdgeLLMError(f"ONNX model not found: {path}")
            try:
                self.session = ort.InferenceSession(str(path), so, providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types
                raise EdgeLLMError(f"cannot load ONNX model {path}: {str(e).splitlines()[0]}") from e
            meta = self.session.get_modelmeta().custom_metadata_map
            self.config = onnx_export.config_of(meta)
            self.lowbit_form = meta.get(onnx_export.LOWBIT_KEY)  # older files: MatMulNBits if low-bit
            self.name = "onnx" if self.lowbit_form in (None, "contract") else f"onnx-{self.lowbit_form}"
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.last_taps: dict[str, np.ndarray] = {}  # extra outputs of the last call (taps=True)
        self.reset()

    @property
    def length(self) -> int:
        """Positions already in the KV state."""
        return self._length

    def reset(self) -> None:
        """Forget all positions."""
        c = self.config
        empty = np.zeros((0, c.n_kv_heads, c.head_dim), np.float32)
        self._past: dict[str, np.ndarray] = {}
        for i in range(c.n_layers):
            self._past[f"past_key_{i}"] = empty
            self._past[f"past_value_{i}"] = empty
        self._length = 0

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append tokens (T,); return logits float32 (T, vocab), or (1, vocab) for the last only."""
        c = self.config
        ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise EdgeLLMError("empty token sequence")
        if ids.min() < 0 or ids.max() >= c.vocab_size:
            raise EdgeLLMError(f"token id out of range [0, {c.vocab_size})")
        if self._length + ids.size > c.max_context:
            raise EdgeLLMError(f"sequence of {self._length + ids.size} tokens exceeds the context "
                               f"of {c.max_context}")
        feeds = {"input_ids": ids, "pos0": np.array(self._length, np.int64), **self._past}
        outs = dict(zip(self.output_names, self.session.run(None, feeds), strict=True))
        for i in range(c.n_layers):
            self._past[f"past_key_{i}"] = outs.pop(f"present_key_{i}")
            self._past[f"past_value_{i}"] = outs.pop(f"present_value_{i}")
        self._length += ids.size
        logits = outs.pop("logits")  # (T, vocab)
        self.last_taps = outs
        return logits if all_logits else logits[-1:]


def nbits_backend(model: QuantModel) -> OrtBackend:
    """Backend "onnx-nbits": the low-bit linears as com.microsoft MatMulNBits."""
    return OrtBackend(model, lowbit="nbits")


register_backend("onnx", OrtBackend)
register_backend("onnx-nbits", nbits_backend)
