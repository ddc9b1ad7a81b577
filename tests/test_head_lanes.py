"""The LM head's token lanes as one design field (DesignParams.head_lanes) from the DSE to the board:
codegen's MAX_TOK, the memory plan's logits / argmax rows, the manifest's interface.head_rows (older
manifests: min(8, max_t)), the project, the host's bounds checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import TINY, write_project

from edgellm.boards import load_board
from edgellm.compiler import interface as itf
from edgellm.compiler.design import DesignParams, head_rows
from edgellm.models.random_model import random_model
from edgellm.runtime import bounds, layout
from edgellm.runtime.project import Project, ProjectError


def test_layout_head_rows_clamps_to_the_block() -> None:
    assert [layout.head_rows(16, n) for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    assert layout.head_rows(4, 8) == 4 and layout.head_rows(1, 2) == 1 and layout.head_rows(64, 99) == 8
    cfg = random_model(TINY, seed=3).config
    assert head_rows(cfg, DesignParams(prefill_token_block=2, head_lanes=8)) == 2
    assert head_rows(cfg, DesignParams(prefill_token_block=64, head_lanes=2)) == 2


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=11)


def _edit(d: Path, **iface) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["interface"].update(iface)
    (d / "manifest.json").write_text(json.dumps(m))


def test_manifest_head_rows_reach_the_project_and_the_checks(qm, tmp_path: Path) -> None:
    d = write_project(tmp_path / "p", qm)  # max_t 4, no interface.head_rows: an older project
    p = Project.open(d)
    assert p.iface.head_rows == 4 == layout.head_rows(4, layout.HEAD_ROWS_MAX)
    _edit(d, head_rows=2)  # a design with two head lanes
    p = Project.open(d)
    lim = bounds.Limits.of(p, p.total_bytes)
    assert p.iface.head_rows == 2 == lim.head_rows
    prog = p.regions["program"][0]
    bounds.check_program(itf.descriptor(itf.OP_HEAD, 0, 4, 0, 0, 1, 2)[None], prog, lim)
    with pytest.raises(bounds.BoundsError, match="D_N_ROWS"):
        bounds.check_program(itf.descriptor(itf.OP_HEAD, 0, 4, 0, 0, 0, 3)[None], prog, lim)
    _edit(d, head_rows=8)
    with pytest.raises(ProjectError, match="interface.head_rows 8 exceeds max_t 4"):
        Project.open(d)
    for bad in (0, 9, "2"):
        _edit(d, head_rows=bad)
        with pytest.raises(ProjectError, match="head_rows"):
            Project.open(d)


def test_compile_steps_build_the_chosen_head_lanes(qm, tmp_path: Path) -> None:
    """compile's DSE and memory-plan steps with --set head_lanes=2, then codegen: the generated head's
    MAX_TOK, the plan's rows and regions and the design agree."""
    from edgellm.compiler.codegen_hls import generate_hls
    from edgellm.compiler.steps import step_dse, step_plan_memory
    from edgellm.runtime.layout import logits_row

    board = load_board("kv260")
    ctx = SimpleNamespace(state={"qm": qm, "board": board},
                          config=SimpleNamespace(overrides={"head_lanes": 2}, reference_new_tokens=4))
    step_dse(ctx)
    step_plan_memory(ctx)
    s = ctx.state
    design, plan = s["design"], s["plan"]
    assert design.head_lanes == 2 and plan.head_rows == head_rows(qm.config, design) == 2
    assert plan.regions["logits"].size == 2 * logits_row(qm.config.vocab_size) * 4
    assert plan.regions["argmax"].size == 2 * (4 + 8 * 8)
    generate_hls(tmp_path / "hls", qm.config, s["numerics"], design, "tlmm", max_t=s["max_t"],
                 max_ctx=s["max_ctx"], top_k=8, board=board, total_bytes=plan.total_bytes)
    h = (tmp_path / "hls" / "edgellm_config.h").read_text()
    head = re.search(r"struct head_cfg[^{]*\{(.*?)\};", h, re.S)
    assert head and re.search(r"MAX_TOK = 2;", head.group(1)), h[:2000]
