"""Accuracy of W{b}A8 low-bit models on a small Llama-architecture model trained here (issue 17, part 7).

    python bench/lowbit_accuracy.py --out DIR [--steps 300] [--threads 2]

1. Trains a small full-precision Llama-architecture model (SiLU GLU, RoPE, GQA, no SubLN, tied
   embeddings) on the Austen corpus of models/train_tiny.py (deterministic for a seed; cached in
   DIR/float.pt, so a rerun skips training).
2. Quantizes it: GGUF files written with gguf-py's GGUFWriter (Q4_0; a Q4_K_M-style mix; a Q2_K-style
   mix; Q8_0 as a reference), K-quants by our RTN encoders (models/loaders/gguf_write.py), and a GPTQ
   directory (RTN, 4 bits, group 128, symmetric; models/loaders/gptq_write.py).
3. Loads each with load_model (as `edgellm compile` would) and measures, on the tiny model's evaluation
   slice (8 windows of 256 tokens of held-out text): perplexity of the golden model (W{b}A8: int8
   activations per token, the int8 per-row LM head) and of the float twin with the same dequantized
   weights and float activations (TorchModel.from_quant(float_acts=True), float head), and the top-1
   agreement of the two at every position. "+low-bit head" (one row per GGUF file type): the same file
   with its quantized (tied) token_embd kept as a low-bit LM head (load_gguf(lowbit_head=True)) instead
   of the int8 per-row head `edgellm compile` builds; the row also states its golden perplexity against
   the int8-head row's and the top-1 agreement of the two golden runs (vs_int8_head). The GPTQ
   directory has no quantized head (its head is float), so no such row. "qwen2 file": the same
   weights written with architecture qwen2 (the loader's other path; the figures must equal llama's).
   Prints a markdown table; writes DIR/accuracy.json (the README's figures: bench/data/lowbit_accuracy.json,
   from `--steps 300`, 25 minutes of training on this shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgellm.models import corpus as cp
from edgellm.models import train_tiny as tt
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders import load_gguf, load_model
from edgellm.models.loaders.gguf_quants import FORMATS
from edgellm.models.loaders.gguf_write import write_gguf
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.torch_ref import TorchModel
from edgellm.models.weights import FloatWeights, QuantModel

ACC_CONFIG = ModelConfig(
    name="edgellm-tiny-llama", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=512,
    vocab_size=4096, act="silu", subln=False, rope_theta=10000.0, tied_embeddings=True, max_context=512,
    bos_id=1, eos_id=2)
HEAD = "+low-bit head"  # suffix: the file's quantized head as a low-bit LM head instead of the int8 head
VARIANTS = ("Q8_0", "Q8_0" + HEAD, "Q4_0", "Q4_0" + HEAD, "Q4_K_M", "Q4_K_M" + HEAD, "Q2_K", "Q2_K" + HEAD,
            "Q2_K qwen2 file", "GPTQ-4bit-g128")
TRAIN_SEQ = 128  # training window (shorter than the tiny model's 256: CPU time)


def batch(stream: np.ndarray, starts: np.ndarray, rng: np.random.Generator, bsz: int
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """bsz windows [<bos>, TRAIN_SEQ tokens from a paragraph start] -> inputs, targets."""
    s = rng.choice(starts, bsz)
    rows = [np.concatenate([[ACC_CONFIG.bos_id], stream[i:i + TRAIN_SEQ]]) for i in s]
    w = torch.from_numpy(np.stack(rows))
    return w[:, :-1], w[:, 1:]


def train_float(out: Path, steps: int, threads: int, seed: int = 0) -> tuple[TorchModel, str, dict]:
    """Train (or load from out/float.pt) the float Llama-architecture model; returns it, the tokenizer
    JSON and the training record."""
    torch.set_num_threads(threads)
    tj, stream, starts, _, _ = tt.build_data(out, ACC_CONFIG.vocab_size)
    ck = out / "float.pt"
    model = TorchModel(ACC_CONFIG, quant=False)
    if ck.exists():
        st = torch.load(ck, map_location="cpu")
        model.load_state_dict(st["model"])
        return model.eval(), tj, st["record"]
    torch.manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim == 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95))
    t0 = time.time()
    model.train()
    for step in range(steps):
        x, y = batch(stream, starts, np.random.default_rng([seed, step]), 8)
        for g in opt.param_groups:
            g["lr"] = tt.lr_at(step, steps, 3e-3, max(steps // 10, 1))
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 10 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    record = {"steps": steps, "batch": 8, "seq": TRAIN_SEQ, "lr": 3e-3, "seed": seed, "threads": threads,
              "train_wall_s": round(time.time() - t0, 1), "final_loss": round(loss.item(), 4)}
    torch.save({"model": model.state_dict(), "record": record}, ck)
    return model.eval(), tj, record


def float_weights(model: TorchModel) -> FloatWeights:
    """The trained model's float tensors in HF row order."""
    def f(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().numpy().astype(np.float32).copy()

    layers = []
    for blk in model.blocks:
        L = {n: f(lin.weight) for n, lin in blk.lin.items()}
        L.update(attn_norm=f(blk.attn_norm.weight), ffn_norm=f(blk.ffn_norm.weight))
        layers.append(L)
    return FloatWeights(ACC_CONFIG, f(model.embed.weight), f(model.final_norm.weight), layers, None)


def nll_float(model: TorchModel, windows: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL and argmax (N, L) of a float torch model on windows (N, L+1)."""
    with torch.no_grad():
        logits = model(torch.from_numpy(windows[:, :-1])).double()
    lp = torch.log_softmax(logits, -1)
    tgt = torch.from_numpy(windows[:, 1:])
    return float(-lp.gather(-1, tgt[..., None]).mean()), logits.argmax(-1).numpy()


def nll_golden(qm: QuantModel, windows: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL and argmax (N, L) of the golden model (W{b}A8) on windows (N, L+1)."""
    g = GoldenModel(qm)
    nll, arg = [], []
    for w in windows:
        logits = g.forward(w[:-1], g.new_cache(len(w)), all_logits=True).astype(np.float64)
        m = logits.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
        nll.append(lse - logits[np.arange(len(w) - 1), w[1:]])
        arg.append(logits.argmax(-1))
    return float(np.mean(nll)), np.stack(arg)


def write_variant(out: Path, name: str, fw: FloatWeights, tj: str) -> Path:
    """The quantized checkpoint of one variant (written once)."""
    if name.startswith("GPTQ"):
        path = out / "gptq-4bit-g128"
        if not path.exists():
            save_gptq(path, fw, "llama", 4, 128, True, "gptq", tokenizer_json=tj)
        return path
    arch = "qwen2" if "qwen2" in name else "llama"  # a qwen2 file: q/k rows not permuted, no biases here
    mix = name.split("+")[0].split(" ")[0]
    path = out / f"tiny-{arch}-{mix}.gguf"
    if not path.exists():
        write_gguf(path, fw, arch, mix, tokenizer_json=tj)
    return path


def measure(out: Path, steps: int, threads: int, variants: tuple[str, ...] = VARIANTS) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model, tj, record = train_float(out, steps, threads)
    corpus = cp.fetch_corpus()
    windows = tt.eval_slice(cp.encode_stream(tj, corpus.val))
    base_nll, base_arg = nll_float(model, windows)
    fw = float_weights(model)
    rows = [{"variant": "float (trained, unquantized)", "float_ppl": math.exp(base_nll)}]
    int8_head: dict[str, tuple[float, np.ndarray]] = {}  # file type -> the int8-head row's golden NLL, argmax
    for name in variants:
        path = write_variant(out, name, fw, tj)
        qm = load_gguf(path, lowbit_head=True)[0] if name.endswith(HEAD) else load_model(path)[0]
        types = qm.meta.get("types", {"gptq": 1})
        twin = TorchModel.from_quant(qm, float_acts=True)
        f_nll, f_arg = nll_float(twin, windows)
        g_nll, g_arg = nll_golden(qm, windows)
        row = {"variant": name, "file": path.name, "types": types,
               "bits_per_weight": round(bits_per_weight(qm), 3),
               "float_ppl": math.exp(f_nll), "golden_ppl": math.exp(g_nll),
               "ppl_ratio": math.exp(g_nll - f_nll),
               "top1_agreement": float(np.mean(g_arg == f_arg)),
               "top1_vs_unquantized": float(np.mean(g_arg == base_arg))}
        if name.endswith(HEAD):
            row["head"] = head_text(qm)
            base = int8_head.get(name[:-len(HEAD)])
            if base is not None:  # the same file's int8-head golden run
                row["vs_int8_head"] = {"ppl_ratio": math.exp(g_nll - base[0]),
                                       "top1_agreement": float(np.mean(g_arg == base[1]))}
        elif not name.startswith("GPTQ"):
            int8_head[name] = (g_nll, g_arg)
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"config": ACC_CONFIG.to_dict(), "training": record, "eval_tokens": int(windows[:, 1:].size),
           "rows": rows}
    (out / "accuracy.json").write_text(json.dumps(res, indent=2))
    return res


def head_text(qm: QuantModel) -> str:
    """The low-bit head's format: 'Q6_K' (its GGUF tensor type) or 'gptq4'."""
    from edgellm.models.weights import LowBitLinear

    h = qm.lm_head
    return h.source if isinstance(h, LowBitLinear) else type(h).__name__


def bits_per_weight(qm: QuantModel) -> float:
    """Bits per decoder-linear weight as the file stores them: a GGUF type's block bytes * 8 / block
    elements; GPTQ: bits + (16-bit scale + a bits-wide zero) / group_size."""
    bits = n = 0.0
    for L in qm.layers:
        for lin in L.linears().values():
            o, k = lin.shape
            if lin.source in FORMATS:
                _, _, per_block, nbytes = FORMATS[lin.source]
                bits += o * k * 8 * nbytes / per_block
            else:  # gptq<b>
                g = qm.meta["group_size"] if qm.meta["group_size"] > 0 else k
                bits += o * k * (lin.bits + (16 + lin.bits) / g)
            n += o * k
    return bits / n


def table(res: dict) -> str:
    """The README table."""
    lines = ["| weights | bits/weight | golden W{b}A8 ppl | float-activation ppl, same weights | ratio | "
             "top-1 agreement | top-1 vs unquantized float | low-bit head vs int8 head: ppl ratio, top-1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        if "golden_ppl" not in r:
            lines.append(f"| {r['variant']} | 32 | - | {r['float_ppl']:.2f} | - | - | - | - |")
            continue
        v = r.get("vs_int8_head")
        vs = f"{v['ppl_ratio']:.4f}, {100 * v['top1_agreement']:.1f}%" if v else "-"
        name = f"{r['variant']} ({r['head']} head)" if "head" in r else r["variant"]
        lines.append(f"| {name} | {r['bits_per_weight']:.2f} | {r['golden_ppl']:.2f} | "
                     f"{r['float_ppl']:.2f} | {r['ppl_ratio']:.4f} | {100 * r['top1_agreement']:.1f}% | "
                     f"{100 * r['top1_vs_unquantized']:.1f}% | {vs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="V",
                    help=f"the rows to measure (default all: {', '.join(VARIANTS)}); a '{HEAD}' row compares "
                         "with its file type's int8-head row only when that row is measured too")
    a = ap.parse_args(argv)
    res = measure(Path(a.out), a.steps, a.threads, tuple(a.variants))
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
