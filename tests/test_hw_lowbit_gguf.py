"""Real GGUF tensors and GPTQ checkpoints through the low-bit path: gguf-py / llama.cpp-layout blocks
(models/loaders/gguf_write.quantize), decoded by the GGUF loader into GroupQuant, pack losslessly at
exactly the file type's own bits per weight, and the engine's C simulation equals lowbit_linear on them
bit for bit; GPTQ directories likewise."""

import ctypes

import gguf
import numpy as np
import pytest
from shared_fixtures import assert_bits, lowbit_acts, run_lowbit

from edgellm.compiler import packing_lowbit as pl
from edgellm.compiler.cost import lowbit as cl
from edgellm.hw import csim
from edgellm.models import lowbit as lb
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import gguf_quants, gguf_write
from edgellm.models.loaders.gptq import load_gptq
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.random_model import random_float_weights

KINDS = ("Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return csim.load([csim.TB_DIR / "lowbit_tb.cpp"], "lowbit_tb")


def _gguf_tensor(kind: str, out: int, k: int, seed: int) -> lb.GroupQuant:
    w = (np.random.default_rng(seed).standard_normal((out, k)) * 0.05).astype(np.float32)
    w[0, :40] = 0.0  # all-zero blocks: zero scales, signed-zero mins
    data = np.frombuffer(gguf_write.quantize(w, kind).tobytes(), np.uint8)
    return gguf_quants.decode(kind, data, out, k, f"test.{kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_packs_losslessly_at_the_files_own_size(kind: str) -> None:
    g = _gguf_tensor(kind, 64, 1024, 1)
    img = pl.pack_lowbit(g, rows=32)
    back = pl.unpack_lowbit(img)
    for a, b in ((back.scales, g.scales), (back.mins, g.mins), (back.dequantize(), g.dequantize())):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
    assert img.bits_per_weight == pytest.approx(8 * size / block)
    if kind in cl.FORMATS:
        f = cl.fit(cl.FORMATS[kind], 1024)
        assert (f.sb, f.record_bits) == (img.codec.sb, img.codec.superblock_bits)


@pytest.mark.parametrize("kind", KINDS)
def test_engine_bit_exact_on_gguf_tensors(lib: ctypes.CDLL, kind: str) -> None:
    g = _gguf_tensor(kind, 160, 512, 2)
    q, qs = lowbit_acts(np.random.default_rng(3), 3, 512)
    ref = lb.lowbit_linear(q, qs, g)
    for fn in ("tb_lowbit_r32", "tb_lowbit_w4"):
        assert_bits(run_lowbit(lib, g, q, qs, fn=fn), ref)


GPTQ_CASES = [(4, True, 4.125), (4, False, 4 + 20 / 128), (3, False, 3 + 20 / 128), (2, True, 2.125),
              (8, False, 8 + 24 / 128)]


@pytest.mark.parametrize("bits,sym,bpw", GPTQ_CASES)
def test_gptq_checkpoints(lib: ctypes.CDLL, tmp_path, bits: int, sym: bool, bpw: float) -> None:
    """A GPTQ directory (models/loaders/gptq_write.save_gptq, RTN) loaded by the GPTQ loader: every
    linear packs losslessly (f16 scale per group of 128, the zero a constant when symmetric, else a 4- or
    8-bit field), and the engine equals lowbit_linear on the FFN's down projection."""
    cfg = ModelConfig(hidden_size=256, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=512, vocab_size=128,
                      act="silu", subln=False, name="gptq-tiny")
    qm = load_gptq(save_gptq(tmp_path / "m", random_float_weights(cfg, bits), "llama", bits=bits,
                             group_size=128, sym=sym))
    for lin in qm.layers[0].linears().values():
        g = lin.quant
        img = pl.pack_lowbit(g)
        back = pl.unpack_lowbit(img)
        assert np.array_equal(back.scales.view(np.uint32), g.scales.view(np.uint32))
        assert np.array_equal(back.mins.view(np.uint32), g.mins.view(np.uint32))
        assert np.array_equal(back.codes, g.codes)
        assert img.bits_per_weight == pytest.approx(bpw)
    down = qm.layers[0].linears()["down"].quant
    q, qs = lowbit_acts(np.random.default_rng(bits), 2, down.shape[1])
    assert_bits(run_lowbit(lib, down, q, qs, fn="tb_lowbit_w4"), lb.lowbit_linear(q, qs, down))
