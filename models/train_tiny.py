"""Train the shipped tiny ternary model (QAT with the torch reference) on the Austen corpus.

    python -m edgellm.models.train_tiny --out DIR [--steps N] [--seed S] [--fp] [--resume]

QAT by default (fake-quantized ternary weights and int8 activations, straight-through gradients);
--fp trains the same architecture in full precision for comparison (not exported). Deterministic
for a seed on one device: batch b of step s is drawn from numpy Generator([seed, s]). Logs loss and
validation perplexity to DIR/train_log.jsonl, checkpoints to DIR/ckpt.pt (--resume continues).
At the end the ternary model is exported in the Hugging Face BitNet packed format.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgellm.models import corpus as cp
from edgellm.models.backend import make_backend
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import load_model, save_hf_bitnet
from edgellm.models.torch_ref import TorchModel
from edgellm.models.weights import QuantModel

# BitNet-b1.58-2B-4T scaled down: GQA (4 query / 2 KV heads), ReLU^2, SubLN, RoPE, tied embeddings.
TINY_CONFIG = ModelConfig(
    name="edgellm-tiny-austen", hidden_size=256, n_layers=4, n_heads=4, n_kv_heads=2, ffn_size=688,
    vocab_size=4096, act="relu2", subln=True, rope_theta=500000.0, tied_embeddings=True, max_context=512,
    bos_id=1, eos_id=2)
SEQ = 256  # training window (tokens after <bos>)
EVAL_WINDOWS = 8  # eval slice: the first EVAL_WINDOWS * SEQ + 1 tokens of the validation stream


def eval_slice(val: list[int], n_windows: int = EVAL_WINDOWS, seq: int = SEQ) -> np.ndarray:
    """(n_windows, seq + 1) contiguous windows of the validation stream (inputs [:-1], targets [1:])."""
    need = n_windows * seq + 1
    if len(val) < need:
        raise ValueError(f"validation stream has {len(val)} tokens, eval slice needs {need}")
    v = np.asarray(val[:need], np.int64)
    return np.stack([v[i * seq:(i + 1) * seq + 1] for i in range(n_windows)])


def batch(stream: np.ndarray, starts: np.ndarray, rng: np.random.Generator, bsz: int, bos: int
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """bsz windows [<bos>, seq tokens from a paragraph start] -> inputs, targets (bsz, SEQ)."""
    s = rng.choice(starts, bsz)
    w = np.stack([np.concatenate([[bos], stream[i:i + SEQ]]) for i in s])  # (bsz, SEQ+1)
    w = torch.from_numpy(w)
    return w[:, :-1], w[:, 1:]


@torch.no_grad()
def perplexity(model: TorchModel, windows: np.ndarray, device: str, bsz: int = 8) -> float:
    """exp(mean next-token NLL) over windows (N, L+1)."""
    model.eval()
    nll, n = 0.0, 0
    for i in range(0, len(windows), bsz):
        w = torch.from_numpy(windows[i:i + bsz]).to(device)
        logits = model(w[:, :-1])
        nll += F.cross_entropy(logits.flatten(0, 1).double(), w[:, 1:].flatten(), reduction="sum").item()
        n += w[:, 1:].numel()
    model.train()
    return math.exp(nll / n)


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup then cosine decay to 10% of peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(steps - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def build_data(out: Path, vocab: int) -> tuple[str, np.ndarray, np.ndarray, list[int], cp.Corpus]:
    """Corpus, tokenizer (written to out/tokenizer.json), train stream, paragraph starts, val stream."""
    corpus = cp.fetch_corpus()
    tok = out / "tokenizer.json"
    if not tok.exists():
        tok.write_text(cp.train_tokenizer(corpus.train, vocab))
    tj = tok.read_text()
    lens = [len(x) for x in cp.encode_paragraphs(tj, corpus.train)]
    stream = np.asarray(cp.encode_stream(tj, corpus.train), np.int64)
    starts = np.cumsum([0] + lens[:-1])
    starts = starts[starts + SEQ <= len(stream)]
    return tj, stream, starts, cp.encode_stream(tj, corpus.val), corpus


PROMPTS = ("It is a truth universally acknowledged", "Emma was", "\"My dear Mr. Bennet,\" said")


def golden_ppl(qm: QuantModel, windows: np.ndarray) -> float:
    """Perplexity of windows (N, L+1) computed by the golden backend (the accelerator's numerics)."""
    be = make_backend("golden", qm)
    nll, n = 0.0, 0
    for w in windows:
        be.reset()
        logits = be.forward(w[:-1], all_logits=True).astype(np.float64)  # (L, vocab)
        m = logits.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
        nll += float((lse - logits[np.arange(len(w) - 1), w[1:]]).sum())
        n += len(w) - 1
    return math.exp(nll / n)


def greedy(qm: QuantModel, ids: list[int], n_new: int, backend: str = "golden") -> list[int]:
    """Greedy continuation of ids (n_new tokens) with a KV-cached backend."""
    be = make_backend(backend, qm)
    logits = be.forward(np.asarray(ids))
    out = []
    for _ in range(n_new):
        out.append(int(logits[-1].argmax()))
        logits = be.forward(np.asarray(out[-1:]))
    return out


def export(model: TorchModel, out: Path, tokenizer_json: str, val_paragraphs: list[str]) -> dict:
    """Ternarize, save in the HF BitNet packed format, reload, and write eval_slice.txt + golden.json."""
    save_hf_bitnet(model.to_quant(bf16_embed=True), out, tokenizer_json, overwrite=True)
    qm, tok = load_model(out)
    lens = np.cumsum([len(x) for x in cp.encode_paragraphs(tokenizer_json, val_paragraphs)])
    n_par = int(np.searchsorted(lens, EVAL_WINDOWS * SEQ + 1) + 1)
    (out / "eval_slice.txt").write_text("\n".join(val_paragraphs[:n_par]) + "\n")
    ev = eval_slice(cp.encode_stream(tokenizer_json, val_paragraphs[:n_par]))
    cases = []
    for p in PROMPTS:
        ids = [qm.config.bos_id] + tok.encode(p)
        new = greedy(qm, ids, 32)
        cases.append({"prompt": p, "prompt_ids": ids, "new_ids": new, "text": tok.decode(new)})
    (out / "golden.json").write_text(json.dumps({"backend": "golden", "n_new": 32, "cases": cases}, indent=1))
    return {"golden_ppl_eval_slice": golden_ppl(qm, ev),
            "eval_slice_sha256": hashlib.sha256(ev.tobytes()).hexdigest(),
            "n_ternary_params": qm.config.n_ternary_params()}


def log(out: Path, rec: dict) -> None:
    """Print a record and append it to train_log.jsonl."""
    print(json.dumps(rec), flush=True)
    with open(out / "train_log.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


def train(args: argparse.Namespace) -> dict:
    """The training loop; returns the final metrics."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    cfg = TINY_CONFIG
    tj, stream, starts, val, corpus = build_data(out, cfg.vocab_size)
    ev = eval_slice(val)
    torch.manual_seed(args.seed)
    model = TorchModel(cfg, quant=not args.fp).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": other, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    step, elapsed, ck = 0, 0.0, out / "ckpt.pt"
    if args.resume and ck.exists():
        st = torch.load(ck, map_location=device)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed = st["step"], st["elapsed"]
        log(out, {"resumed_at": step})
    t0 = time.time() - elapsed
    model.train()
    while step < args.steps:
        rng = np.random.default_rng([args.seed, step])
        x, y = batch(stream, starts, rng, args.batch, cfg.bos_id)
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(x.to(device)).flatten(0, 1), y.to(device).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            rec = {"step": step, "loss": round(loss.item(), 4), "lr": lr, "s": round(time.time() - t0, 1)}
            if step % args.eval_every == 0 or step == args.steps:
                rec["val_ppl_slice"] = round(perplexity(model, ev, device), 3)
            log(out, rec)
        if step % args.ckpt_every == 0 or step in (args.steps, args.stop_after):
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "elapsed": time.time() - t0, "config": cfg.to_dict(), "fp": args.fp}, ck)
        if step == args.stop_after:
            log(out, {"stopped_at": step})
            return {}
    wall = time.time() - t0
    full = eval_slice(val, n_windows=(len(val) - 1) // SEQ)
    metrics = {"variant": "fp" if args.fp else "ternary-qat", "steps": step, "batch": args.batch, "seq": SEQ,
               "train_tokens": step * args.batch * SEQ, "lr": args.lr, "seed": args.seed,
               "train_wall_s": round(wall, 1), "device": device, "threads": args.threads,
               "corpus_sha256": corpus.sha256, "train_stream_tokens": int(len(stream)),
               "val_tokens": len(val), "eval_slice_tokens": int(ev[:, 1:].size),
               "torch_ppl_eval_slice": perplexity(model, ev, device),
               "torch_ppl_full_val": perplexity(model, full, device)}
    if not args.fp:
        metrics.update(export(model.cpu(), out / "model", tj, corpus.val))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(out, metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp", action="store_true", help="full precision (no fake quantization); not exported")
    ap.add_argument("--resume", action="store_true", help="continue from DIR/ckpt.pt")
    ap.add_argument("--stop-after", type=int, default=-1, help="checkpoint and stop at this step")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (shipped model: 1)")
    ap.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is available")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=100)
    args = ap.parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
