"""Until the low-bit engine is wired into the generated layer and top (issue 17 #6), compiling a model
with any low-bit linear or a low-bit LM head is refused in one line, before anything is written."""

import pytest

from edgellm.compiler.frontend import build_graph
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model

CFG = ModelConfig(hidden_size=64, n_layers=1, n_heads=2, n_kv_heads=2, ffn_size=128, vocab_size=96,
                  act="silu", subln=False, name="lowbit-tiny")


@pytest.mark.parametrize("kw", [{"lowbit": (4, 32)}, {"lowbit": {"down": (6, 16)}}, {"lowbit_head": (8, 32)}])
def test_low_bit_models_are_refused(kw: dict) -> None:
    with pytest.raises(EdgeLLMError, match="do not compile to hardware yet") as e:
        build_graph(random_model(CFG, **kw))
    assert "\n" not in str(e.value)


def test_ternary_models_still_build() -> None:
    assert build_graph(random_model(CFG)).ops
