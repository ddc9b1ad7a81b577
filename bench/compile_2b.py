"""Compile time and memory at BitNet-b1.58-2B-4T's full shapes (random weights).

Writes (or reuses, with --keep) the random 2B-4T-shaped Hugging Face checkpoint of bench/load_2b.py,
then runs `edgellm compile` for the KV260 in a fresh process and prints wall time and peak RSS
(ru_maxrss of the child). Exit 1 if the compile fails, takes longer than --limit-s or exceeds
--limit-gb. The reference run is kept short (a 16-token prefill, --reference-decode steps) and the
ONNX reference is skipped unless --onnx, since a golden decode step of a 2B model takes seconds on
the CPU and C-simulating a 2B model is out of reach anyway.

  python bench/compile_2b.py [--keep DIR] [--limit-s 120] [--limit-gb 4] [--reference-decode 0] [--onnx]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="checkpoint directory to write once and reuse")
    ap.add_argument("--limit-s", type=float, default=120.0)
    ap.add_argument("--limit-gb", type=float, default=4.0)
    ap.add_argument("--reference-decode", type=int, default=0)
    ap.add_argument("--onnx", action="store_true", help="also export the ONNX reference")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="edgellm-compile2b-")
    ckpt = Path(a.keep) if a.keep else Path(tmp) / "bitnet-2b"
    try:
        if not (ckpt / "config.json").exists():
            subprocess.run([sys.executable, str(HERE / "load_2b.py"), "--write", str(ckpt)], check=True)
        out = Path(tmp) / "proj"
        cmd = [sys.executable, "-m", "edgellm.cli", "compile", str(ckpt), "--board", "kv260", "-o", str(out),
               "--reference-decode", str(a.reference_decode),
               "--onnx-reference" if a.onnx else "--no-onnx-reference"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(res.stdout[-3000:])
        if res.returncode:
            print(res.stderr[-2000:], file=sys.stderr)
            return 1
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"bitnet-b1.58-2B-4T on kv260: compile {wall:.1f} s, peak RSS {peak:.0f} MiB, "
              f"project {size / 2**30:.2f} GiB (reference: prefill 16 + {a.reference_decode} decode, "
              f"onnx {'yes' if a.onnx else 'no'})")
        ok = wall <= a.limit_s and peak * 2**20 <= a.limit_gb * 1e9
        if not ok:
            print(f"FAIL: limits are {a.limit_s:.0f} s and {a.limit_gb} GB", file=sys.stderr)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
