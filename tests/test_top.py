"""The generated HLS top (hw/include/edgellm/top.h + compiler/codegen_hls.py) in C simulation, driven
through the DDR image exactly as the host drives it (header, layer table, descriptor programs),
vs models.golden.GoldenModel bit for bit: H region and taps after the prefill, logits / argmax / top-k
after the prefill and every decode step, and the KV cache region; with the f32 and the f16 KV cache
(DesignParams.kv_bytes 4 / 2 -> NumericsPlan kv_dtype, as the compile step sets it)."""

from __future__ import annotations

import ctypes
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from shared_top import (
    CASES,
    MAX_CTX,
    MAX_T,
    PIPE,
    PREFILL,
    SMALL,
    Top,
    case_id,
    check_prefill_then_decode,
    fifo_leftovers,
    kv_mismatches,
    make_top,
    mismatches,
    status,
)

from edgellm.compiler import interface as itf
from edgellm.compiler import packing
from edgellm.compiler.design import DesignParams
from edgellm.hw import csim, synth_check
from edgellm.models.golden import GoldenModel
from edgellm.runtime.layout import layer_buffer_sizes, tap_offsets


@pytest.fixture(scope="module", params=CASES, ids=case_id)
def top(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Top:
    variant, mm, design = request.param
    return make_top(tmp_path_factory.mktemp(f"{variant}_{mm}"), variant, mm, design)


def test_buffer_sizes_match_cpp(top: Top) -> None:
    out = np.zeros(10, np.int64)
    top.lib.edgellm_csim_sizes(csim.ptr(out))
    cfg = top.qm.config
    taps = tap_offsets(cfg, MAX_T)
    assert tuple(out[:3]) == layer_buffer_sizes(cfg, MAX_T)
    assert list(out[3:9]) == [taps[n] for n in ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")]
    assert out[9] == MAX_T


def test_prefill_then_decode_bit_exact(top: Top) -> None:
    check_prefill_then_decode(top)


@pytest.mark.parametrize("case", [PIPE, CASES[-1]], ids=case_id)
def test_pipelined_prefill_uneven_halves(case: tuple[str, str, DesignParams], tmp_path: Path) -> None:
    """The two-half prefill schedule on calls whose halves differ: 13 tokens (TP 2: halves of 8 and 5),
    then 3 (2 and 1: a one-token half runs decode attention inside a pipelined slot), then 2 decode
    steps; logits, argmax and the KV cache bit-exact against the golden model, no FIFO word left."""
    variant, mm, design = case
    t = make_top(tmp_path, variant, mm, design)
    cfg = t.qm.config
    left0 = fifo_leftovers(t)
    gm = GoldenModel(t.qm, t.numerics)
    cache = gm.new_cache(MAX_CTX)
    prompt = np.random.default_rng(11).integers(0, cfg.vocab_size, 18)
    bad, pos = [], 0
    for n in (13, 3, 1, 1):
        chunk = prompt[pos:pos + n]
        ref = gm.forward(chunk, cache, all_logits=False)[0]
        t.run(t.qm.embed_rows(chunk), pos)
        pos += n
        logits, am, _, _ = t.head_out()
        bad.append(mismatches(logits, ref) + int(am != int(np.argmax(ref))))
    assert bad == [0, 0, 0, 0] and kv_mismatches(t, cache, pos) == 0 and fifo_leftovers(t) == left0


def test_calls_below_pipe_min_t_run_sequential(tmp_path: Path) -> None:
    """pipe_min_t (design pipe_min_tokens): with 4, calls of 2 and 3 tokens (a speculative verify call's
    rows) run the sequential schedule, each linear once (the layers' heartbeat counts 7 linears a layer),
    calls of 4 and 13 the two halves (14), decode one pass; logits, argmax and the KV cache bit-exact
    against the golden model, no FIFO word left (the fetchers walk the same rule)."""
    variant, mm, design = PIPE
    t = make_top(tmp_path, variant, mm, design.replace(pipe_min_tokens=4))
    cfg = t.qm.config
    beat = t.lib.edgellm_csim_heartbeat
    beat.restype = ctypes.c_longlong
    left0 = fifo_leftovers(t)
    gm = GoldenModel(t.qm, t.numerics)
    cache = gm.new_cache(MAX_CTX)
    prompt = np.random.default_rng(5).integers(0, cfg.vocab_size, 23)
    bad, linears, pos = [], [], 0
    for n in (13, 3, 2, 4, 1):
        chunk = prompt[pos:pos + n]
        ref = gm.forward(chunk, cache, all_logits=False)[0]
        b0 = int(beat())
        t.run(t.qm.embed_rows(chunk), pos)
        linears.append((int(beat()) - b0) // cfg.n_layers)
        pos += n
        logits, am, _, _ = t.head_out()
        bad.append(mismatches(logits, ref) + int(am != int(np.argmax(ref))))
    assert linears == [14, 7, 7, 14, 7]
    assert bad == [0] * 5 and kv_mismatches(t, cache, pos) == 0 and fifo_leftovers(t) == left0


def test_pipelined_slot_jobs_are_independent(tmp_path: Path) -> None:
    """The two jobs of every pipelined slot share no data: built with the vector job run before the
    linear job (EDGELLM_CSIM_SLOT_REVERSE), the pipelined top is still bit-exact over prefill + decode. A
    read of a row the other job of its slot writes would see a different value in one of the orders."""
    variant, mm, design = PIPE
    check_prefill_then_decode(make_top(tmp_path, variant, mm, design,
                                       defines={"EDGELLM_CSIM_SLOT_REVERSE": "1"}))


def test_detects_a_changed_weight(tmp_path: Path) -> None:
    """The comparison can fail: one ternary weight of layer 0's o_proj changed in the image."""
    t = make_top(tmp_path, "silu", "tlmm", DesignParams(**SMALL))
    cfg = t.qm.config
    gm = GoldenModel(t.qm, t.numerics)
    prompt = np.arange(PREFILL) * 7 % cfg.vocab_size
    ref = gm.forward(prompt, gm.new_cache(MAX_CTX), all_logits=False)[0]
    hdr = t.plan.header
    ld = t.ddr[hdr[itf.HDR["HDR_LAYER_TABLE"]]:].view(np.uint32)[:itf.LD_WORDS]
    i = int(hdr[itf.HDR["HDR_WEIGHTS"]] + ld[itf.LD_W_OFF + itf.LINEAR_ORDER.index("o")])
    code = int(t.ddr[i]) % 3  # weight (0, 0) is the low base-3 digit of byte 0
    t.ddr[i] = int(t.ddr[i]) - code + (2 if code == 1 else 1)
    t.run(t.qm.embed_rows(prompt), 0)
    bad = mismatches(t.head_out()[0], ref)
    print(f"one o_proj weight changed: {bad} logit mismatches")
    assert bad > 0


def test_bad_header_and_descriptors_are_refused(top: Top, capfd: pytest.CaptureFixture[str]) -> None:
    """A header or descriptor the design cannot run: nothing runs (no logits, H untouched, no FIFO words
    left), the status words name the field (program_check.h), nothing is printed."""
    cfg = top.qm.config
    left0 = fifo_leftovers(top)
    hdr = top.region("header", np.uint32)
    saved = hdr.copy()
    try:
        hdr[itf.HDR["HDR_MAX_CTX"]] += 1
        top.run(top.qm.embed_rows(np.arange(4)), 0)
        assert np.isnan(top.region("logits")).all()
        field = itf.status_field(itf.SW_HEADER, 0, itf.HDR["HDR_MAX_CTX"])
        assert status(top) == (itf.STATUS["ST_MISMATCH"], field, MAX_CTX + 1)
    finally:
        hdr[:] = saved
    bad = [(itf.descriptor(itf.OP_LAYER, cfg.n_layers, 1, 0), itf.D_LAYER, "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, MAX_T + 1, 0), itf.D_T_LEN, "ST_LIMIT"),
           (itf.descriptor(itf.OP_LAYER, 0, 4, MAX_CTX - 3), itf.D_POS0, "ST_LIMIT"),
           (itf.descriptor(9), itf.D_OP, "ST_OPCODE"),
           (itf.descriptor(itf.OP_HEAD, row=MAX_T), itf.D_ROW, "ST_LIMIT")]
    o = top.plan.regions["program"].offset
    for d, word, code in bad:
        prog = np.stack([itf.descriptor(itf.OP_LAYER, 0, 1, 0), d])  # a good one first: it must not run
        top.ddr[o:o + prog.nbytes] = prog.view(np.uint8).ravel()
        top.region("logits")[:] = np.nan
        h_before = top.region("h").copy()
        top.lib.edgellm_csim_run(csim.ptr(top.ddr), ctypes.c_uint64(top.ddr.size), ctypes.c_uint32(0),
                                 ctypes.c_uint32(o), ctypes.c_uint32(len(prog)))
        assert status(top)[:2] == (itf.STATUS[code], itf.status_field(itf.SW_DESC, 1, word)), (d, status(top))
        assert np.isnan(top.region("logits")).all() and mismatches(top.region("h"), h_before) == 0
    assert "skipped" not in capfd.readouterr().err
    assert fifo_leftovers(top) == left0


def test_generated_hls_passes_synth_check(top: Top) -> None:
    found = synth_check.check_paths([top.hls])
    assert not found, "\n".join(map(str, found))
    assert len(synth_check.sources(top.hls)) >= 14  # top.cpp, csim_entry.cpp, config, headers


def _shares(header: str, struct: str, ports: int) -> tuple[int, ...]:
    """The SHARE0.. fields of a generated config struct (none: equal shares over `ports`)."""
    body = header[header.index(f"struct {struct}"):]
    body = body[:body.index("};")]
    found = [int(v) for v in re.findall(r"static const int SHARE\d = (\d+);", body)]
    return tuple(found) or (1,) * ports


def test_each_weight_port_reads_only_its_share(top: Top) -> None:
    """Each weight port gets its own buffer in which every ternary matrix byte outside that port's share
    (packing.port_slices for the generated tlmm_traits and its SHARE fields) and every LM-head row
    outside its rows (packing.head_block_rows for the head's SHARE fields; equal shares: v % P) is
    garbage, and so are the data port's copies; decode attention reads position pp of the cache (every
    KV head) on port pp % kHeadPorts only (each port's other positions and the data port's cache copy
    garbage): prefill + decode logits stay bit-exact, and every streaming port carries a share. Ports
    swapped: they do not."""
    h = (top.hls / "edgellm_config.h").read_text()
    n_ports = int(re.search(r"kWeightPorts = (\d+);", h).group(1))
    stream = int(re.search(r"kStreamPorts = (\d+);", h).group(1))
    if "struct tlmm_cfg" not in h:
        pytest.skip("pack2 policy: the ternary matrices stream through w0 only")
    r = int(re.search(r"static const int R = (\d+);", h).group(1))  # rows per tile
    tlmm_shares, head_shares = (_shares(h, struct, stream) for struct in ("tlmm_cfg", "head_cfg"))
    assert head_shares == tlmm_shares  # one source: design.port_shares
    cfg = top.qm.config
    rng = np.random.default_rng(11)
    data = top.ddr.copy()
    ports = [top.ddr.copy() for _ in range(n_ports)]
    hdr = top.plan.header
    base = int(hdr[itf.HDR["HDR_WEIGHTS"]])
    shares = np.zeros(n_ports, np.int64)
    for layer in range(cfg.n_layers):
        row = int(hdr[itf.HDR["HDR_LAYER_TABLE"]]) + layer * 4 * itf.LD_WORDS
        ld = top.ddr[row:row + 4 * itf.LD_WORDS].view(np.uint32)
        lins = top.qm.layers[layer].linears()
        for j, name in enumerate(itf.LINEAR_ORDER):
            n, k = lins[name].dense().shape
            off = base + int(ld[itf.LD_W_OFF + j])
            size = packing.packed_size(n, k, r)
            img = top.ddr[off:off + size].copy()
            for buf in (data, *ports):
                buf[off:off + size] = rng.integers(0, 256, size, dtype=np.uint8)
            for p, ranges in enumerate(packing.port_slices(n, k, r, stream, tlmm_shares)):
                for a, b in ranges:
                    ports[p][off + a:off + b] = img[a:b]
                    shares[p] += b - a
    # the int8 LM head: port p reads its rows of packing.head_block_rows (lm_head_config.h lm_block_row);
    # everything else garbage
    head_ports = int(re.search(r"kHeadPorts = (\d+);", h).group(1))
    assert head_ports == stream
    hw_off = int(hdr[itf.HDR["HDR_HEAD_W"]])
    hsize = cfg.vocab_size * cfg.hidden_size
    head = top.ddr[hw_off:hw_off + hsize].copy().reshape(cfg.vocab_size, cfg.hidden_size)
    head_rows = np.zeros(n_ports, np.int64)
    for buf in (data, *ports):
        buf[hw_off:hw_off + hsize] = rng.integers(0, 256, hsize, dtype=np.uint8)
    blocks = packing.head_block_rows(cfg.vocab_size, head_shares)
    for p in range(head_ports):
        view = ports[p][hw_off:hw_off + hsize].reshape(cfg.vocab_size, cfg.hidden_size)
        mine = blocks[:, p][blocks[:, p] >= 0]
        view[mine] = head[mine]
        head_rows[p] = len(mine)
    gm = GoldenModel(top.qm, top.numerics)
    cache = gm.new_cache(MAX_CTX)
    prompt = np.arange(PREFILL) * 5 % cfg.vocab_size
    probe = dataclasses.replace(top, ddr=data)
    bad = []
    for pos, toks in ((0, prompt), (PREFILL, np.array([7])), (PREFILL + 1, np.array([11]))):
        ref = gm.forward(toks, cache, all_logits=False)[0]
        # decode attention reads the KV cache over the weight ports, position pp on port pp % kHeadPorts
        # (on the board the same buffer the data port writes: here each port sees only its positions,
        # from the golden cache, everything else garbage); the data port's cache copy is garbage for
        # decode (it writes the new position there; prefill reads it)
        for name, gold in (("k_cache", cache.k), ("v_cache", cache.v)):  # (layers, MAX_CTX, n_kv, d)
            reg = top.plan.regions[name]
            bufs = (*ports, data) if len(toks) == 1 else ports
            for buf in bufs:
                buf[reg.offset:reg.offset + reg.size] = rng.integers(0, 256, reg.size, dtype=np.uint8)
            for p in range(min(head_ports, n_ports)):
                view = ports[p][reg.offset:reg.offset + gold.nbytes].view(gold.dtype).reshape(gold.shape)
                view[:, p::head_ports] = gold[:, p::head_ports]
        probe.run(top.qm.embed_rows(toks), pos, ports=ports)
        bad.append(mismatches(probe.head_out()[0], ref))
    swapped = [ports[min(1, n_ports - 1)], ports[0], *ports[2:]] if n_ports > 1 else ports
    probe.run(top.qm.embed_rows(prompt), 0, ports=swapped)
    ref0 = GoldenModel(top.qm, top.numerics).forward(prompt, gm.new_cache(MAX_CTX), all_logits=False)[0]
    n_swap = mismatches(probe.head_out()[0], ref0)
    print(f"{cfg.name} {stream} streaming ports: bytes per port {shares.tolist()}, head rows per port "
          f"{head_rows.tolist()}; logit mismatches with poisoned ports {bad}; ports 0/1 swapped {n_swap}")
    assert sum(bad) == 0 and (shares[:stream] > 0).all() and (head_rows[:head_ports] > 0).all()
    if stream > 1:
        assert n_swap > 0
