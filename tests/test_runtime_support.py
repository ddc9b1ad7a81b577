"""The runtime tests' helpers (tests/helpers.py): the Python top reproduces the golden model, and the
projects write_project makes are what the runtime's manifest schema accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, emulator_for, write_project

from edgellm.models.golden import GoldenModel
from edgellm.models.random_model import random_model
from edgellm.runtime import manifest_schema


def test_python_top_matches_golden_forward(tmp_path: Path) -> None:
    """The Python top reading the DDR image reproduces GoldenModel on the original QuantModel."""
    from edgellm.runtime.driver import Driver

    qm = random_model(TINY, seed=3)
    p, dev = emulator_for(write_project(tmp_path / "proj", qm))
    drv = Driver(p, dev)
    toks = np.array([5, 17, 3, 60])
    got = drv.forward_block(p.embed_rows(toks), 0)
    gm = GoldenModel(qm, p.numerics)
    want = gm.forward(toks, gm.new_cache(32), all_logits=False)[0]
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    tk = drv.read_topk()
    assert tk.argmax == int(np.argmax(want)) and tk.ids.size == 5


def test_write_project_follows_the_manifest_schema(tmp_path: Path, monkeypatch) -> None:
    """write_project's manifest is checked against the runtime's schema (manifest_schema.FIELDS) before it
    is written: a field the schema starts to require fails here, where a copy of the schema would drift."""
    import json

    m = json.loads((write_project(tmp_path / "a", random_model(TINY, seed=1)) / "manifest.json").read_text())
    assert m["schema"] == manifest_schema.SCHEMA
    monkeypatch.setitem(manifest_schema.FIELDS, "interface.new_field", ("int", True, (0, 1)))
    with pytest.raises(manifest_schema.ProjectError, match="interface.new_field"):
        write_project(tmp_path / "b", random_model(TINY, seed=1))
