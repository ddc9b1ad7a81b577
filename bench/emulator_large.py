"""Emulator end to end at bitnet_b1_58-large shapes (0.73B ternary weights, random): compile for the
KV260, then a 32-token prefill and 8 greedy decode steps on the EmulatorDevice (C simulation of the
project's own HLS sources through the register/DDR protocol), compared bit for bit with the golden
model. Prints compile, emulator and golden times (all measured here, on the CPU).

  python bench/emulator_large.py [--keep DIR] [--prefill 32] [--decode 8] [--layers N] [--threads]
                                 [--verify K] [--speculate lookup]

--layers N keeps the large model's widths but only N layers (a quicker check of the same shapes).
--threads runs the threaded C simulation (DATAFLOW processes concurrent over FIFOs of the design's
declared depths, every call checked for a deadlock).
--verify K then runs speculative decoding's verify call: the last token and K random drafts as one block
(cached-style attention in two parts, the multi-row LM head; --speculate lookup compiles the design the
DSE ranks by speculation, with 2 head lanes), compared row by row, and after a rewind that drops the
drafts one decode step from the position they were written at (the KV cache stays consistent).
Exit 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(workdir: Path, n_prefill: int, n_decode: int, layers: int | None, threads: bool = False,
        n_verify: int = 0, speculate: str = "off") -> dict:
    """Build, run on the emulator and on golden; return figures (raises on mismatch)."""
    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.backend import GoldenBackend
    from edgellm.models.config import PRESETS
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model
    from edgellm.runtime.project import Project
    from edgellm.runtime.session import Session, open_device

    cfg = PRESETS["bitnet_b1_58-large"]
    cfg = dataclasses.replace(cfg, max_context=256, **({"n_layers": layers} if layers else {}))
    ckpt = workdir / "ckpt"
    if not (ckpt / "config.json").exists():
        save_hf_bitnet(random_model(cfg, seed=1), ckpt, None)
    t0 = time.perf_counter()
    overrides = {"speculate": speculate} if speculate != "off" else {}
    ctx = run_steps(BuildConfig(model=str(ckpt), board="kv260", out_dir=str(workdir / "proj"), force=True,
                                reference_new_tokens=0, reference_onnx=False, overrides=overrides),
                    compile_steps())
    t_compile = time.perf_counter() - t0
    qm = ctx.state["qm"]
    proj = Project.open(workdir / "proj")
    sess = Session(proj, open_device(proj, "emu-threads" if threads else "emu"), timeout_s=3600)
    gold = GoldenBackend(qm, ctx.state["numerics"], max_len=proj.iface.max_ctx)
    prompt = np.random.default_rng(0).integers(3, cfg.vocab_size, n_prefill)
    t0 = time.perf_counter()
    dev_rows = [sess.forward(prompt)[0]]
    t_prefill = time.perf_counter() - t0
    toks = [int(np.argmax(dev_rows[-1]))]
    t0 = time.perf_counter()
    for _ in range(n_decode - 1):
        dev_rows.append(sess.forward(np.array(toks[-1:]))[0])
        toks.append(int(np.argmax(dev_rows[-1])))
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    gold_rows = [gold.forward(prompt)[0]] + [gold.forward(np.array([t]))[0] for t in toks[:-1]]
    t_golden = time.perf_counter() - t0
    t_verify = 0.0
    if n_verify:  # the verify block, then a rewind past its drafts and one decode step from there
        block = np.array([toks[-1], *np.random.default_rng(1).integers(3, cfg.vocab_size, n_verify)])
        keep, nxt = sess.length + 1, np.array([int(block[0]) % (cfg.vocab_size - 3) + 3])
        t0 = time.perf_counter()
        dev_rows += list(sess.verify(block))
        sess.rewind(keep)
        dev_rows.append(sess.forward(nxt)[0])
        t_verify = time.perf_counter() - t0
        gold_rows += list(gold.forward(block, all_logits=True))
        gold.cache.length = keep
        gold_rows.append(gold.forward(nxt)[0])
    mism = [int((a.view(np.uint32) != b.view(np.uint32)).sum())
            for a, b in zip(dev_rows, gold_rows, strict=True)]
    return {"layers": cfg.n_layers, "compile_s": t_compile, "emu_prefill_s": t_prefill,
            "emu_decode_s_per_token": t_decode / max(n_decode - 1, 1), "golden_s": t_golden,
            "mismatches": mism, "tokens": toks, "max_t": proj.iface.max_t, "emu_verify_s": t_verify,
            "head_rows": sess.driver.head_rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="work directory to keep (checkpoint reused)")
    ap.add_argument("--prefill", type=int, default=32)
    ap.add_argument("--decode", type=int, default=8)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--threads", action="store_true", help="threaded C simulation (bounded FIFOs)")
    ap.add_argument("--verify", type=int, default=0, help="then a verify call of the last token + K drafts")
    ap.add_argument("--speculate", default="off", choices=("off", "lookup"),
                    help="the DSE objective of the compiled design (compile --speculate)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgellm-emu-large-") as tmp:
        work = Path(a.keep) if a.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        r = run(work, a.prefill, a.decode, a.layers, a.threads, a.verify, a.speculate)
    sim = "threaded C simulation" if a.threads else "C simulation"
    print(f"bitnet_b1_58-large shapes, {r['layers']} layers (random weights), KV260 project, {sim}: "
          f"compile {r['compile_s']:.1f} s; emulator prefill {a.prefill} tokens {r['emu_prefill_s']:.1f} s, "
          f"decode {r['emu_decode_s_per_token']:.1f} s/token; golden (same steps) {r['golden_s']:.1f} s; "
          + (f"verify call of {a.verify + 1} rows ({r['head_rows']} head rows a pass), rewind and a decode "
             f"step {r['emu_verify_s']:.1f} s; " if a.verify else "")
          + f"logit mismatches per step (row) {r['mismatches']}")
    return 0 if not any(r["mismatches"]) else 1


if __name__ == "__main__":
    sys.exit(main())
