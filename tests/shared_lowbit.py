"""Low-bit layers the hardware tests share (test_hw_lowbit_layer, test_hw_lowbit_top): a model whose
linears are a GGUF Q4_K_M-like mix of codecs, and its linears packed as the top reads them (every weight
port's image, the low-bit table's records). Test modules import these from here, never from each other."""

from __future__ import annotations

import dataclasses

import numpy as np
from shared_fixtures import kquant, q6_k

from edgellm.compiler import interface as itf
from edgellm.compiler import packing_lowbit as pl
from edgellm.compiler.memory_plan_lowbit import port_offsets
from edgellm.compiler.packing_gear import gear_ports
from edgellm.models import lowbit as lb
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.numerics import F32, NumericsPlan
from edgellm.models.random_model import random_model
from edgellm.models.weights import Layer, LowBitLinear
from edgellm.runtime.lowbit_gear import NO_GEAR, Gear

LINEARS = itf.LINEAR_ORDER


def mixed_model(bias: bool, seed: int, n_layers: int = 1, vocab: int = 64) -> GoldenModel:
    """Llama-like (SiLU, no SubLN, GQA 4/2 heads of 64, hidden 256, ffn 512; Qwen2-like q/k/v biases
    when bias), every layer's linears a mix: Q4_K-like q/k/v/o (G 32, 16-bit d and dmin, 6-bit
    sub-scales), Q6_K-like gate/up (G 16, signed 8-bit sub-scales), 5-bit RTN down (G 256, f32 per group)."""
    cfg = ModelConfig(name="lb-layer", hidden_size=256, n_layers=n_layers, n_heads=4, n_kv_heads=2,
                      ffn_size=512, vocab_size=vocab, max_context=64, act="silu", subln=False,
                      rope_theta=10000.0, qkv_bias=bias)
    qm = random_model(cfg, seed=seed, lowbit=(4, 32))
    rng = np.random.default_rng(seed)
    for li, layer in enumerate(qm.layers):
        quants = {}
        for name, lin in layer.linears().items():
            out, k = lin.shape
            quants[name] = (kquant(rng, out, k, 4, 32, 6) if name in ("q", "k", "v", "o")
                            else q6_k(rng, out, k) if name in ("gate", "up")
                            else lb.quantize_rtn(rng.standard_normal((out, k)).astype(F32), 5, 256))
        qm.layers[li] = dataclasses.replace(layer, **{n: LowBitLinear(q, "mix") for n, q in quants.items()})
    return GoldenModel(qm, NumericsPlan.for_head_dim(cfg.head_dim))


def pack_linears(layer: Layer, rows: int, beat_bits: int, bias_off: dict[str, int],
                 base: int = 0, gear: Gear = NO_GEAR) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The layer's seven linears packed for an engine of `rows` rows and beat_bits-bit beats (under the
    weight gearbox `gear`: compiler/packing_gear.py): (bytes holding, per linear, every port's image
    padded with 0xA5 to its IMAGE_ALIGN multiple, one after another (memory_plan_lowbit.port_offsets),
    starting at byte `base` of the weight area; port 0's image offsets (the LD_W_OFF words); the low-bit
    table's records (N_LIN, LB_WORDS) uint32 with bias float offsets bias_off[name] or LB_NO_BIAS)."""
    blobs, w_off = [], []
    lbt = np.zeros((len(LINEARS), itf.LB_WORDS), np.uint32)
    for i, name in enumerate(LINEARS):
        img = pl.pack_lowbit(layer.linears()[name].quant, rows=rows, beat_bits=beat_bits)
        ports = gear_ports(pl.port_images(img), gear)
        offsets = port_offsets([p.size for p in ports])
        w_off.append(base + sum(b.size for b in blobs))
        for p, a, b in zip(ports, offsets, offsets[1:], strict=False):
            blobs.append(np.concatenate([p, np.full(b - a - p.size, 0xA5, np.uint8)]))
        words = [img.bits, img.group, *img.codec.as_words(), bias_off.get(name, itf.LB_NO_BIAS),
                 *offsets[1:len(ports)]]
        lbt[i, :len(words)] = np.array(words, np.int64) & 0xFFFFFFFF
    return np.concatenate(blobs), w_off, lbt
