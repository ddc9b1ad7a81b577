"""The torch reference against the golden model on random models."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgellm.errors import EdgeLLMError  # noqa: E402
from edgellm.models.backend import make_backend  # noqa: E402
from edgellm.models.config import ModelConfig  # noqa: E402
from edgellm.models.golden import GoldenModel  # noqa: E402
from edgellm.models.random_model import random_model  # noqa: E402
from edgellm.models.torch_ref import TorchModel  # noqa: E402

CFG = ModelConfig(hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344, vocab_size=512,
                  max_context=512, name="t-gqa")
CFG_SILU = ModelConfig(hidden_size=96, n_layers=2, n_heads=4, n_kv_heads=4, ffn_size=250, vocab_size=300,
                       act="silu", subln=False, tied_embeddings=False, rope_theta=10000.0, max_context=256)


def _teacher_forced(cfg: ModelConfig, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    qm = random_model(cfg, seed=seed)
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, n)
    g = GoldenModel(qm)
    gl = g.forward(tokens, g.new_cache(n))
    tm = TorchModel.from_quant(qm)
    with torch.no_grad():
        tl = tm(torch.from_numpy(tokens)[None])[0].numpy()
    return gl, tl


@pytest.mark.parametrize("cfg", [CFG, CFG_SILU], ids=["relu2-gqa-subln", "silu-mha-untied"])
def test_torch_matches_golden_teacher_forced(cfg: ModelConfig) -> None:
    gl, tl = _teacher_forced(cfg, 256, seed=3)
    diff = np.abs(gl - tl)
    rel = diff.max() / np.abs(gl).max()
    agree = float(np.mean(gl.argmax(-1) == tl.argmax(-1)))
    print(f"{cfg.name}: max abs logit diff {diff.max():.3e} (rel {rel:.2e}), top-1 agreement {agree:.2%}")
    assert agree >= 0.99
    assert rel < 1e-2


def test_kv_cache_decode_matches_full_forward() -> None:
    qm = random_model(CFG, seed=5)
    tokens = np.random.default_rng(1).integers(0, CFG.vocab_size, 40)
    full = make_backend("torch", qm)
    all_l = full.forward(tokens, all_logits=True)
    inc = make_backend("torch", qm)
    parts = [inc.forward(tokens[:17], all_logits=True)]
    parts += [inc.forward(tokens[i:i + 1]) for i in range(17, 40)]
    assert inc.length == 40
    np.testing.assert_allclose(np.concatenate(parts), all_l, rtol=1e-5, atol=1e-4)
    gold = make_backend("golden", qm)
    gold.forward(tokens[:30])
    inc.reset()
    inc.forward(tokens[:30])
    assert inc.forward(tokens[30:31]).argmax() == gold.forward(tokens[30:31]).argmax()


@pytest.mark.parametrize("cfg", [CFG, CFG_SILU], ids=["tied", "untied"])
def test_quant_roundtrip_exact(cfg: ModelConfig) -> None:
    qm = random_model(cfg, seed=7)
    back = TorchModel.from_quant(qm).to_quant()
    for la, lb in zip(qm.layers, back.layers, strict=True):
        for n, lin in la.linears().items():
            np.testing.assert_array_equal(lin.dense(), lb.linears()[n].dense(), err_msg=n)
            assert lin.scale == lb.linears()[n].scale
    np.testing.assert_array_equal(qm.lm_head.w, back.lm_head.w)
    np.testing.assert_array_equal(qm.lm_head.row_scale, back.lm_head.row_scale)
    np.testing.assert_array_equal(qm.embed_rows(np.arange(cfg.vocab_size)),
                                  back.embed_rows(np.arange(cfg.vocab_size)))


def test_trained_latent_to_quant_absmean() -> None:
    """A freshly initialised (latent) model ternarizes by absmean and bf16-rounds its embedding."""
    torch.manual_seed(0)
    m = TorchModel(CFG)
    qm = m.to_quant(bf16_embed=True)
    w = m.blocks[0].lin["q"].weight.detach()
    s = 1.0 / w.abs().mean()
    assert np.isclose(qm.layers[0].q.scale, float(s), rtol=1e-6)
    np.testing.assert_array_equal(qm.layers[0].q.dense(), torch.round(w * s).clamp(-1, 1).numpy())
    assert qm.embed.dtype == np.uint16
    e = qm.embed_rows(np.arange(4))
    np.testing.assert_allclose(e, m.embed.weight[:4].detach().numpy(), rtol=1 / 128)
    # the quantized model run through the torch reference equals the latent model's fake-quant output
    tok = torch.arange(10)[None]
    with torch.no_grad():
        a = TorchModel.from_quant(m.to_quant())(tok)
        b = m.eval()(tok)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_backend_errors() -> None:
    be = make_backend("torch", random_model(CFG, seed=1))
    with pytest.raises(EdgeLLMError):
        be.forward(np.array([CFG.vocab_size]))
    with pytest.raises(EdgeLLMError):
        be.forward(np.zeros(CFG.max_context + 1, np.int64))
