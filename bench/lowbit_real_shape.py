"""A low-bit GGUF at a published model's real shapes, end to end on this machine: write it (random float
weights, quantized with llama.cpp's tensor-type mix by models/loaders/gguf_write.py), `edgellm compile`
it for a board, then `edgellm csim` (the project's own HLS sources, C-simulated, every logit compared bit
for bit with the golden model). Prints the file's tensor types, the parameter codecs the engine is
specialised to, and the times (measured here, on the CPU).

  python bench/lowbit_real_shape.py [--model qwen2.5-0.5b] [--mix Q4_K_M] [--board kv260]
                                     [--decode-steps 1] [--keep DIR]

Defaults: Qwen2.5-0.5B shapes (24 layers, hidden 896, vocab 151,936) in a Q4_K_M file, KV260, the
reference's 16-token prefill and 1 decode step (about 2 minutes to compile and 13 minutes of C simulation
on a 2-core machine). Exit 1 when compile or csim fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def write_file(model: str, mix: str, path: Path) -> dict[str, str]:
    """The GGUF of `model`'s shapes (context 512) quantized by `mix`; tensor name -> type."""
    from edgellm.models.config import PRESETS
    from edgellm.models.loaders.gguf_write import write_gguf
    from edgellm.models.random_model import random_float_weights

    cfg = dataclasses.replace(PRESETS[model], max_context=512)
    fw = random_float_weights(cfg, seed=0)
    fw.embed = fw.embed / 8
    return write_gguf(path, fw, "qwen2" if model.startswith("qwen") else "llama", mix, None)


def cli(*args: str) -> tuple[int, str, float]:
    """(exit code, output, seconds) of `edgellm ARGS`."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgellm.cli", *args], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--mix", default="Q4_K_M")
    ap.add_argument("--board", default="kv260")
    ap.add_argument("--decode-steps", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        gguf, proj = work / f"{a.model}-{a.mix}.gguf", work / "proj"
        t = time.perf_counter()
        types = write_file(a.model, a.mix, gguf)
        counts = Counter(types.values())
        print(f"{gguf.name}: {gguf.stat().st_size / 2**20:.0f} MiB, tensor types "
              f"{dict(sorted(counts.items()))}, written in {time.perf_counter() - t:.0f} s")
        rc, out, s = cli("compile", str(gguf), "--board", a.board, "-o", str(proj), "--context", "256",
                         "--force")
        print(f"compile: exit {rc} in {s:.0f} s")
        if rc:
            print(out[-2000:])
            return 1
        design = json.loads((proj / "manifest.json").read_text())["design"]
        print(f"parameter codecs the engine decodes: {len(design['lowbit_codecs'])} "
              f"{design['lowbit_codecs']}")
        rc, out, s = cli("csim", str(proj), "--decode-steps", str(a.decode_steps))
        print("\n".join(line for line in out.splitlines() if line.startswith(("step", "tb_top", "csim",
                                                                               "synth_check", "ap widths"))))
        print(f"csim: exit {rc} in {s:.0f} s")
        return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
