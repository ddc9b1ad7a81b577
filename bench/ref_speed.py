"""Speed of the CPU reference backends on a mid-size random model.

Backends: golden, onnx (int8 x int8 MatMulInteger), onnx-fast (uint8 x int8 ternary linears, same
logits) and torch when installed. For each: a 64-token prefill, then 32 decode steps fed the golden
model's greedy tokens (identical work everywhere). Prints tokens/s and the ratio to golden measured
in this run. Usage: python bench/ref_speed.py [--hidden 1024 --layers 8 --threads 1 ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from edgellm.models.backend import Backend, make_backend
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model


def bench(backend: Backend, prompt: np.ndarray, steps: list[int]) -> tuple[float, float]:
    """(prefill seconds, decode seconds for all steps) after one warm-up run."""
    for timed in (False, True):
        backend.reset()
        t0 = time.perf_counter()
        backend.forward(prompt)
        t1 = time.perf_counter()
        for t in steps:
            backend.forward(np.array([t]))
        t2 = time.perf_counter()
        if timed:
            return t1 - t0, t2 - t1
    raise AssertionError("unreachable")


def main() -> None:
    """Parse options, build the model, time each available backend."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=2816)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--prefill", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads")
    a = ap.parse_args()
    cfg = ModelConfig(hidden_size=a.hidden, n_layers=a.layers, n_heads=a.heads, n_kv_heads=a.kv_heads,
                      ffn_size=a.ffn, vocab_size=a.vocab, max_context=a.prefill + a.decode + 1,
                      name="bench")
    qm = random_model(cfg, seed=0)
    print(f"model: hidden {a.hidden}, {a.layers} layers, {a.heads}/{a.kv_heads} heads, ffn {a.ffn}, "
          f"vocab {a.vocab} ({cfg.n_ternary_params() / 1e6:.0f}M ternary); "
          f"{a.prefill}-token prefill + {a.decode} decode steps, {a.threads} thread(s)")
    prompt = np.random.default_rng(1).integers(0, a.vocab, a.prefill)

    names = ["golden", "onnx", "onnx-fast"]
    if importlib.util.find_spec("torch") is not None:
        import torch
        torch.set_num_threads(a.threads)
        names.append("torch")
    golden = make_backend("golden", qm)
    golden.reset()
    lg = golden.forward(prompt)
    steps = []
    for _ in range(a.decode):
        steps.append(int(lg[-1].argmax()))
        lg = golden.forward(np.array([steps[-1]]))

    base: tuple[float, float] | None = None
    print(f"{'backend':9s} {'prefill tok/s':>14s} {'x golden':>9s} {'decode tok/s':>13s} {'x golden':>9s}")
    for name in names:
        if name.startswith("onnx"):
            from edgellm.models.ort_runner import OrtBackend
            backend: Backend = OrtBackend(qm, threads=a.threads, fast=name == "onnx-fast")
        else:
            backend = make_backend(name, qm)
        tp, td = bench(backend, prompt, steps)
        base = base or (tp, td)
        print(f"{name:9s} {a.prefill / tp:14.1f} {base[0] / tp:9.2f} {a.decode / td:13.1f} "
              f"{base[1] / td:9.2f}")


if __name__ == "__main__":
    main()
