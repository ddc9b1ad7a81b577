"""The cost models declare the design fields they read (cost_tlmm.RESOURCE_FIELDS, ...,
cost_model.PERF_FIELDS, resource_model.ENTRY_FIELDS); the DSE keys its caches by those lists
(dse.REST_FIELDS, RES_FIELDS, DECODE_FIELDS). A model that starts reading another field without declaring
it would make a cache hand back another design's figures: these tests run every model on a design that
records each field read and fail on any read outside the model's list."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pytest

from edgellm.boards import load_board
from edgellm.compiler import dse
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import axi as cost_axi
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import resource_model
from edgellm.compiler.cost import serial as cost_serial
from edgellm.compiler.cost import tlmm as cost_tlmm
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import UTIL_LIMITS, fits_board
from edgellm.models.config import ModelConfig

FIELDS = {f.name for f in dataclasses.fields(DesignParams)}
SMALL = ModelConfig(name="small", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=688,
                    vocab_size=1024, max_context=512)
SILU = dataclasses.replace(SMALL, name="small-silu", act="silu", subln=False)
BOARDS = [load_board(b) for b in ("kv260", "zcu104", "pynq_z2", "ultra96v2")]


class Recorder:
    """Stands for a DesignParams and records every field read into `seen`, including the reads of its
    properties and methods (evaluated on the recorder) and of the designs replace() makes from it."""

    def __init__(self, p: DesignParams, seen: set[str]) -> None:
        object.__setattr__(self, "_p", p)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name: str):
        p, seen = object.__getattribute__(self, "_p"), object.__getattribute__(self, "_seen")
        if name in FIELDS:
            seen.add(name)
            return getattr(p, name)
        if name == "replace":
            return lambda **kw: Recorder(p.replace(**kw), seen)
        attr = getattr(type(p), name, None)
        if isinstance(attr, property):
            return attr.fget(self)
        if callable(attr):
            return functools.partial(attr, self)
        return getattr(p, name)


def reads(fn, p: DesignParams) -> set[str]:
    """The fields fn(recorder of p) reads."""
    seen: set[str] = set()
    fn(Recorder(p, seen))
    return seen


def designs(n: int, seed: int = 5) -> list[DesignParams]:
    """Designs over every field the models branch on (both engines, streams, heads, storage kinds, token
    and DSP lanes, the prefill pipeline)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        tp = int(rng.choice([1, 2, 4]))
        vec = int(rng.choice([1, 2, 4, 8]))
        kw = dict(group_size=int(rng.choice([2, 3])), tables=int(rng.choice([5, 10, 28])),
                  rows=int(rng.choice([4, 8, 16])), weight_ports=int(rng.choice([1, 2, 4])),
                  overlap=bool(rng.integers(2)), bits_per_weight=[None, 2.06][int(rng.integers(2))],
                  lm_head_on_fabric=bool(rng.integers(2)), lm_head_bits=int(rng.choice([8, 16])),
                  weight_buffer=str(rng.choice(["uram", "bram", "lutram"])),
                  act_buffer=str(rng.choice(["uram", "bram"])), token_lanes=tp,
                  dsp_lanes=int(rng.integers(tp)), prefill_token_block=tp * int(rng.choice([4, 16])),
                  prefill_pipeline=bool(rng.integers(2)), attn_lanes=int(rng.choice([2, 16, 32])),
                  attn_kv_block=int(rng.choice([8, 32])), ew_vec=vec, ew_glu_vec=int(rng.choice([0, 1])),
                  ew_lanes=max(16, 8 * vec), out_lanes=int(rng.choice([1, 2, 4])),
                  fetch_depth=int(rng.choice([16, 512, 8192])), kv_bytes=int(rng.choice([2, 4])),
                  weight_buffer_depth=int(rng.choice([0, 64])), head_lanes=int(rng.choice([1, 2, 4, 8])))
        if kw["overlap"] and kw["tables"] % 5:  # the generated engine builds multiples of 5 (validate)
            kw["tables"] = 25
        out.append(DesignParams(**kw))
    return out


def _checks(cfg: ModelConfig, board) -> list[tuple[str, tuple[str, ...], object, object]]:
    """(name, declared fields, the model on the generated engine, the model on the serial description)."""
    def perf(q):
        cost_model.decode_step(cfg, board, q)
        cost_model.prefill(cfg, board, q, 13)
        cost_model.prefill_floor(cfg, board, q, 13, (4, 16))

    serial = cost_serial.RESOURCE_FIELDS
    return [
        ("perf", cost_model.ENGINE_FIELDS, perf, perf),
        ("tlmm", cost_tlmm.RESOURCE_FIELDS, lambda q: cost_tlmm.resources(cfg, board, q),
         lambda q: cost_serial.tlmm(cfg, board, q)),
        ("elementwise", cost_elementwise.RESOURCE_FIELDS, lambda q: cost_elementwise.resources(cfg, q),
         lambda q: cost_serial.elementwise(cfg, q)),
        ("attention", cost_attention.RESOURCE_FIELDS, lambda q: cost_attention.resources(cfg, q),
         lambda q: cost_serial.attention(cfg, q)),
        ("lm_head", cost_lm_head.RESOURCE_FIELDS, lambda q: cost_lm_head.resources(cfg, board, q),
         lambda q: cost_serial.lm_head(cfg, board, q)),
        ("fetch", cost_fetch.RESOURCE_FIELDS, lambda q: cost_fetch.resources(board, q), None),
        ("fifo", cost_fetch.FIFO_FIELDS, lambda q: cost_fetch.fifo_resources(board, q), None),
        ("axi", cost_axi.RESOURCE_FIELDS, cost_axi.resources, cost_axi.resources),
    ], serial


def undeclared(cfg: ModelConfig, board, p: DesignParams) -> list[str]:
    """The models that read a field outside their declared lists for p (with the fields)."""
    checks, serial = _checks(cfg, board)
    bad = []
    for name, declared, engine, serial_fn in checks:
        if p.overlap:
            extra = reads(engine, p) - set(declared) - {"overlap"}
        elif serial_fn is not None:
            own = cost_serial.PERF_FIELDS if name == "perf" else serial.get(name, ())
            extra = reads(serial_fn, p) - set(own) - {"overlap"}
        else:
            continue
        if extra:
            bad.append(f"{name}: {sorted(extra)}")
    # the entry point's dispatch reads nothing beyond the entries' lists
    everything = {f for fields in resource_model.ENTRY_FIELDS.values() for f in fields}
    extra = reads(lambda q: resource_model.estimate_resources(cfg, board, q), p) - everything
    if extra:
        bad.append(f"estimate_resources: {sorted(extra)}")
    return bad


@pytest.mark.parametrize("cfg", [SMALL, SILU], ids=lambda c: c.name)
def test_models_read_only_their_declared_fields(cfg: ModelConfig) -> None:
    for board, p in zip(itertools.cycle(BOARDS), designs(120)):
        assert not undeclared(cfg, board, p), p


def test_the_check_catches_an_undeclared_read(monkeypatch) -> None:
    """A kernel model that reads one more field (here the TLMM reading the KV element size) fails."""
    real = cost_tlmm.resources

    def reads_more(cfg, board, p):
        return real(cfg, board, p).scaled(p.kv_bytes / p.kv_bytes)

    p = DesignParams(overlap=True)
    assert not undeclared(SMALL, BOARDS[0], p)
    monkeypatch.setattr(cost_tlmm, "resources", reads_more)
    assert undeclared(SMALL, BOARDS[0], p) == ["tlmm: ['kv_bytes']", "estimate_resources: ['kv_bytes']"]


def test_dse_keys_are_the_declared_fields() -> None:
    """The DSE's cache keys are the models' declared lists: the kernels it caches apart from the vector
    ones read none of the explored vector fields, and every resource entry's fields are in a key."""
    assert not set(dse.VECTOR_FIELDS) & set(dse.REST_FIELDS)
    for k, fields in resource_model.ENTRY_FIELDS.items():
        assert set(fields) - {"fetch_depth"} <= set(dse.RES_FIELDS), k
    assert dse.DECODE_FIELDS == cost_model.PERF_FIELDS
    assert set(cost_model.ENGINE_FIELDS) | set(cost_serial.PERF_FIELDS) <= set(dse.DECODE_FIELDS)


@pytest.mark.parametrize("board_name", ["pynq_z2", "kv260"])
def test_dse_fast_fit_matches_the_whole_estimate(board_name: str) -> None:
    """quick_fit (cached kernels, no DesignParams built) finds the deepest fetch depth at which the
    whole estimate_resources total fits, for a sample of the candidate set."""
    board = load_board(board_name)
    s = dse._Search(SMALL, board, dict(UTIL_LIMITS), dse.FETCH_DEPTHS, dse.TTFT_TOKENS,
                    dse.PREFILL_TOKEN_BLOCKS)
    n = 0
    for rest, vectors in itertools.islice(dse.candidate_groups(SMALL, board, DesignParams()), 0, None, 7):
        for v in vectors[::11]:
            q = rest.replace(**v)
            totals = {d: resource_model.estimate_resources(SMALL, board, q.replace(fetch_depth=d))["total"]
                      for d in s.depths}
            truth = next((d for d in s.depths if not fits_board(totals[d], board)), 0)
            assert s.quick_fit(rest, v)[0] == truth, (q, v)
            n += 1
    assert n > 100
