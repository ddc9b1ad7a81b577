"""Load-time and memory bench at BitNet-b1.58-2B-4T's full shapes.

Writes a random model with PRESETS["bitnet-b1.58-2B-4T"] shapes as a Hugging Face BitNet checkpoint
(uint8 packed, bf16 embeddings, tied head) to a temp dir, then in a fresh subprocess loads it with
edgellm.models.loaders.load_model and runs one golden decode step (1 token). Prints load time,
decode time and peak RSS (ru_maxrss); exits 1 if the child's peak RSS exceeds the limit (4 GB).

  python bench/load_2b.py [--keep DIR] [--limit-gb 4]

bench/compile_2b.py reuses the checkpoint writer (`--keep DIR` shares one checkpoint between them).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PRESET = "bitnet-b1.58-2B-4T"


def _rss_mb() -> float:
    """Peak resident set of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(ckpt: str) -> None:
    """Fresh process: load, decode one token, print a JSON line of figures."""
    from edgellm.models import golden
    from edgellm.models.loaders import load_model
    base = _rss_mb()
    t0 = time.perf_counter()
    qm, _ = load_model(ckpt)
    t_load = time.perf_counter() - t0
    rss_load = _rss_mb()
    g = golden.GoldenModel(qm)
    cache = g.new_cache(16)
    t0 = time.perf_counter()
    logits = g.forward(np.array([qm.config.bos_id]), cache)
    t_dec = time.perf_counter() - t0
    print(json.dumps({"load_s": round(t_load, 2), "decode_s": round(t_dec, 2),
                      "rss_after_imports_mb": round(base), "peak_rss_after_load_mb": round(rss_load),
                      "peak_rss_mb": round(_rss_mb()), "vm_hwm_mb": round(_hwm_mb()),
                      "logits_finite": bool(np.isfinite(logits).all()),
                      "model_mb": round(_model_bytes(qm) / 2**20)}))


def write(ckpt: Path) -> None:
    """Random model with the preset's shapes -> HF BitNet checkpoint at ckpt."""
    from edgellm.models.config import PRESETS
    from edgellm.models.loaders import save_hf_bitnet
    from edgellm.models.random_model import random_model
    t0 = time.perf_counter()
    qm = random_model(PRESETS[PRESET], seed=0)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    save_hf_bitnet(qm, ckpt)
    size = sum(f.stat().st_size for f in ckpt.iterdir())
    print(f"random model {t_gen:.1f} s; wrote {size / 2**30:.2f} GiB in "
          f"{time.perf_counter() - t0:.1f} s (writer peak RSS {_rss_mb():.0f} MiB)")


def _hwm_mb() -> float:
    """VmHWM (peak RSS of this process image) from /proc, MiB; -1 where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def _model_bytes(qm) -> int:
    n = qm.embed.nbytes + qm.final_norm.nbytes + qm.lm_head.w.nbytes + qm.lm_head.row_scale.nbytes
    for L in qm.layers:
        n += sum(lin.packed.nbytes for lin in L.linears().values())
        n += sum(getattr(L, a).nbytes for a in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm")
                 if getattr(L, a) is not None)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="write the checkpoint here and keep it (reused if present)")
    ap.add_argument("--limit-gb", type=float, default=4.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--write", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return 0
    if a.write:
        write(Path(a.write))
        return 0
    tmp = None
    if a.keep:
        ckpt = Path(a.keep)
    else:
        tmp = tempfile.mkdtemp(prefix="edgellm-load2b-")
        ckpt = Path(tmp) / "bitnet-2b"
    try:
        # writer and loader each run in their own process started from this lean one: Linux carries
        # ru_maxrss across fork+exec, so a heavy parent would inflate the loader's figure
        if not (ckpt / "config.json").exists():
            subprocess.run([sys.executable, __file__, "--write", str(ckpt)], check=True)
        cmd = [sys.executable, __file__, "--child", str(ckpt)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(res.stdout + res.stderr, file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{PRESET}: load {r['load_s']} s, 1-token golden decode {r['decode_s']} s, "
              f"peak RSS {r['peak_rss_mb']} MiB (VmHWM {r['vm_hwm_mb']} MiB; "
              f"after load {r['peak_rss_after_load_mb']} MiB, "
              f"after imports {r['rss_after_imports_mb']} MiB; model arrays {r['model_mb']} MiB)")
        if not r["logits_finite"]:
            print("FAIL: non-finite logits", file=sys.stderr)
            return 1
        if r["peak_rss_mb"] * 2**20 > a.limit_gb * 1e9:
            print(f"FAIL: peak RSS {r['peak_rss_mb']} MiB exceeds {a.limit_gb} GB", file=sys.stderr)
            return 1
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
