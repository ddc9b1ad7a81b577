"""The IR's fused op order is decoder_layer.h's slot schedule: compiler/passes/schedule.py maps the fused
graph of a layer to stages V0 L0 .. V4, and hw/tb/layer_schedule_tb.cpp exports the stages the layer's
own code runs (its slots, with recorders in place of the engines). A fusion pass or a header that
drifts from the other fails here."""

from __future__ import annotations

import ctypes
import dataclasses
import re
from pathlib import Path

import pytest

from edgellm.compiler.frontend import build_graph
from edgellm.compiler.ir import IRError, ModelGraph
from edgellm.compiler.passes import fuse_linear_epilogues as fle
from edgellm.compiler.passes.fuse_norm_quant import fuse_norm_quant
from edgellm.compiler.passes.schedule import Stage, graph_schedule, layer_schedule
from edgellm.hw import csim
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.models.loaders import load_model
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir

TB = csim.TB_DIR / "layer_schedule_tb.cpp"
HEADER = csim.INCLUDE_DIR / "edgellm" / "decoder_layer.h"
SCHEDULE = csim.INCLUDE_DIR / "edgellm" / "layer_schedule.h"  # the slot schedule decoder_layer.h includes


def tb_text(subln: bool, defines: dict[str, str] | None = None) -> str:
    lib = csim.load([TB], "layer_schedule_tb" + ("_mutant" if defines else ""), defines=defines)
    lib.tb_schedule.restype = ctypes.c_char_p
    return lib.tb_schedule(ctypes.c_int(int(subln))).decode()


def parse(text: str) -> tuple[list[Stage], list[tuple[str, int]], dict[str, int], list[str]]:
    """The exported schedule as Stages (a stage's steps gathered over the slots that run parts of it:
    L0's q, then k and v beside V1's first part), the element-wise jobs (name, enum value) in order, the
    ew_steps / ports_match values and the slots' labels."""
    order: list[str] = []
    steps: dict[str, list[str]] = {}
    jobs: list[tuple[str, int]] = []
    facts: dict[str, int] = {}
    slots: list[str] = []
    vec = lin = ""

    def add(stage: str, step: str) -> None:
        if stage not in steps:
            order.append(stage)
            steps[stage] = []
        steps[stage].append(step)

    for line in text.splitlines():
        f = line.split()
        if f[0] == "slot":
            slots.append(f[2])
            vec, lin = re.search(r"V\d", f[2]), re.search(r"L\d", f[2])
            vec, lin = vec.group() if vec else "", lin.group() if lin else ""
            for st in (vec, lin):
                if st and st not in steps:
                    order.append(st)
                    steps[st] = []
        elif f[0] == "lin":
            add(lin, f[2])
        elif f[0] == "ew":
            jobs.append((f[1], int(f[2])))
            for step in f[4].split(";"):
                add(vec, step)
        elif f[0] in ("kv", "attn"):
            add(vec, f[1])
        else:
            facts[f[0]] = int(f[1])
    return [Stage(n, tuple(steps[n])) for n in order], jobs, facts, slots


@pytest.fixture(scope="module")
def hw() -> dict[bool, list[Stage]]:
    return {subln: parse(tb_text(subln))[0] for subln in (True, False)}


def fused(cfg_or_model: ModelConfig | object) -> ModelGraph:
    qm = random_model(cfg_or_model) if isinstance(cfg_or_model, ModelConfig) else cfg_or_model
    return fle.fuse_linear_epilogues(fuse_norm_quant(build_graph(qm)))


def small(preset: str) -> ModelConfig:
    """A preset's layer structure (act, SubLN) at a size that builds in milliseconds."""
    return dataclasses.replace(PRESETS[preset], hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2,
                               head_dim=16, ffn_size=128, vocab_size=97, max_context=64,
                               rope_freq_factors=(), qkv_bias=False)


def test_exported_schedule_is_the_slot_schedule() -> None:
    """What the testbench exports: 10 slots (L0's k and v beside V1's first part), the stages V0 L0 .. V4
    in order, the element-wise jobs in EW_* order, the K/V write and attention in V1 before the SubLN
    job, and the same calls through decoder_layer_ports."""
    for subln in (True, False):
        stages, jobs, facts, slots = parse(tb_text(subln))
        assert slots == ["V0", "L0", "V1L0", "V1", "L1", "V2", "L2", "V3", "L3", "V4"]
        assert [s.name for s in stages] == ["V0", "L0", "V1", "L1", "V2", "L2", "V3", "L3", "V4"]
        assert [i for _, i in jobs] == list(range(facts["ew_steps"]))
        assert [n for n, _ in jobs] == ["EW_ATTN_NORM", "EW_ROPE_Q", "EW_ROPE_K", "EW_ATTN_SUB",
                                        "EW_RES_ATTN", "EW_GLU", "EW_RES_FFN"]
        v1 = stages[2].steps
        assert v1.index("kv_write<v>") < v1.index("attention") < len(v1) - 1
        assert facts["ports_match"] == 1
    text = tb_text(True)
    assert "slot 1 L0\nlin LIN_Q q\nslot 2 V1L0\nlin LIN_K k\nlin LIN_V v\new EW_ROPE_Q" in text
    assert "lin LIN_GATE gate\nlin LIN_UP up\n" in text


@pytest.mark.parametrize("model", ["tiny", "llama-3.2-1b", "bitnet_b1_58-large"])
def test_fused_order_equals_hardware_schedule(model: str, hw: dict[bool, list[Stage]]) -> None:
    """The shipped tiny model (SubLN, ReLU^2), a no-SubLN SiLU preset and a SubLN SiLU preset: every
    layer's fused op order is the hardware's schedule for its SubLN setting, not the other one's."""
    if model == "tiny":
        qm, _ = load_model(tiny_model_dir())
        g, subln = fused(qm), qm.config.subln
    else:
        cfg = small(model)
        g, subln = fused(cfg), cfg.subln
    assert graph_schedule(g) == hw[subln]
    assert graph_schedule(g) != hw[not subln]


def test_fusion_without_residual_epilogue_fails(monkeypatch: pytest.MonkeyPatch,
                                               hw: dict[bool, list[Stage]]) -> None:
    """Mutant: a fusion pass that leaves the residual adds out of the epilogue no longer matches."""
    monkeypatch.setattr(fle, "EPILOGUE_KINDS", ("rope", "kv_write", "act_gate"))
    got = graph_schedule(fused(small("llama-3.2-1b")))
    assert got != hw[False]
    assert got[4] == Stage("V2", ("residual", "norm_quant(ffn_norm)"))  # the hardware: residual<o>


def test_swapped_linears_in_the_header_fail(tmp_path: Path, hw: dict[bool, list[Stage]]) -> None:
    """Mutant: the layer's schedule (layer_schedule.h, through decoder_layer.h) running L0's linears as
    v, k, q no longer matches the IR."""
    src = SCHEDULE.read_text()
    old = "return st == 0 ? LIN_Q + j :"
    assert src.count(old) == 1  # the mutation applies to the header as it is
    schedule = tmp_path / "layer_schedule.h"
    schedule.write_text(src.replace(old, "return st == 0 ? LIN_V - j :"))
    include = '#include "edgellm/layer_schedule.h"\n'
    layer = HEADER.read_text()
    assert layer.count(include) == 1  # decoder_layer.h takes its schedule from there
    mutant = tmp_path / "decoder_layer.h"
    mutant.write_text(layer.replace(include, f'#include "{schedule}"\n'))
    stages, _, _, _ = parse(tb_text(True, {"LAYER_SCHEDULE_HEADER": f'"{mutant}"'}))
    assert stages[1] == Stage("L0", ("v", "k", "q"))
    qm, _ = load_model(tiny_model_dir())
    assert graph_schedule(fused(qm)) == hw[True] != stages


def test_schedule_refuses_unfused_and_uneven_layers() -> None:
    cfg = small("llama-3.2-1b")
    g = fuse_norm_quant(build_graph(random_model(cfg)))
    with pytest.raises(IRError, match="outside a linear_group"):
        layer_schedule(g, 0)
    g = fused(cfg)
    g.ops = [op for op in g.ops if op.name != "layers.1.attn"]
    with pytest.raises(IRError, match="layer 1"):
        graph_schedule(g)


def test_attention_runs_in_two_parts_beside_k_and_v() -> None:
    """The sequential schedule's attention (kv_block 32, a cached-style call): the keys before the last
    K/V block boundary at or below pos0 in slot 2 (V1.1, beside L0's k and v), the rest in slot 3 (V1.2)
    from the saved state; one call in slot 3 when there is no earlier whole block."""
    lib = csim.load([TB], "layer_schedule_tb")
    out = (ctypes.c_longlong * 12)()

    def parts(pos0: int, t_len: int) -> list[tuple[int, int, int]]:
        n = lib.tb_attention_parts(ctypes.c_int(pos0), ctypes.c_int(t_len), out)
        return [tuple(out[3 * i:3 * i + 3]) for i in range(n)]

    assert parts(40, 1) == [(2, 0, 32), (3, 32, -1)]
    assert parts(33, 4) == [(2, 0, 32), (3, 32, -1)] == parts(32, 1)
    assert parts(20, 1) == [(3, 0, -1)] == parts(0, 4)
