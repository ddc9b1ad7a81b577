"""The generated HLS top (hw/include/edgellm/top.h + compiler/codegen_hls.py) in C simulation, driven
through the DDR image exactly as the host drives it (header, layer table, descriptor programs),
vs models.golden.GoldenModel bit for bit: H region and taps after the prefill, logits / argmax / top-k
after the prefill and every decode step, and the KV cache region; with the f32 and the f16 KV cache
(DesignParams.kv_bytes 4 / 2 -> NumericsPlan kv_dtype, as the compile step sets it)."""

from __future__ import annotations

import ctypes
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgellm.boards import load_board
from edgellm.compiler import interface as itf
from edgellm.compiler import packing
from edgellm.compiler.codegen_hls import generate_hls, weight_encoder
from edgellm.compiler.design import DesignParams
from edgellm.compiler.memory_plan import MemoryPlan, plan_memory
from edgellm.hw import csim, synth_check
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel, KVCache
from edgellm.models.numerics import F32, NumericsPlan
from edgellm.models.random_model import random_model
from edgellm.models.weights import QuantModel
from edgellm.runtime.layout import layer_buffer_sizes, tap_offsets

MAX_T, MAX_CTX, TOP_K, PREFILL, DECODE = 16, 64, 8, 16, 12
VARIANTS = {"relu2_subln": dict(act="relu2", subln=True, rope_theta=500000.0),
            "silu": dict(act="silu", subln=False, rope_theta=10000.0),
            "silu_subln": dict(act="silu", subln=True, rope_theta=10000.0)}  # bitnet_b1_58-large's kind
# (variant, matmul policy, design): the default design (4 weight ports, T=28 -> 25, URAM, default KV
# cache) and a small one (2 ports, BRAM) with an f32 and with an f16 KV cache (the latter with the
# GLU's act * u pass 1 wide beside 4-wide element-wise passes, as the DSE picks for the large model on
# the KV260); the pack2 reference matmul as a cross-check
SMALL = dict(tables=15, weight_ports=2, weight_buffer="bram")
CASES = [("relu2_subln", "tlmm", DesignParams()),
         ("relu2_subln", "tlmm", DesignParams(tables=15, weight_ports=1, kv_bytes=4)),
         ("silu", "tlmm", DesignParams(**SMALL, kv_bytes=4)),
         ("silu_subln", "tlmm", DesignParams(**SMALL, kv_bytes=2, ew_vec=4, ew_glu_vec=1)),
         # two token lanes, lane 1 a DSP lane (TlmmConfig DL 1: packed row-pair MAC chains), G3 T15 R16
         ("relu2_subln", "tlmm", DesignParams(**SMALL, kv_bytes=4, token_lanes=2, dsp_lanes=1,
                                              prefill_token_block=16)),
         ("relu2_subln", "pack2", DesignParams(weight_ports=1, kv_bytes=4)),
         # the prefill pipeline (two halves, TLMM and vector engines overlapped) on TLMM and pack2
         ("silu_subln", "tlmm", DesignParams(**SMALL, kv_bytes=2, ew_vec=4, ew_glu_vec=1, token_lanes=2,
                                             prefill_pipeline=True)),
         ("relu2_subln", "pack2", DesignParams(weight_ports=1, kv_bytes=4, prefill_pipeline=True))]
PIPE = CASES[-2]  # the pipelined TLMM case


def small_config(variant: str) -> ModelConfig:
    return ModelConfig(name=f"top-{variant}", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2,
                       ffn_size=344, vocab_size=300, max_context=MAX_CTX, **VARIANTS[variant])


@dataclass
class Top:
    """A generated, C-simulated accelerator with its DDR buffer."""

    qm: QuantModel
    numerics: NumericsPlan
    plan: MemoryPlan
    lib: ctypes.CDLL
    hls: Path
    ddr: np.ndarray  # uint8 [total_bytes]

    def region(self, name: str, dtype: type = F32) -> np.ndarray:
        r = self.plan.regions[name]
        return self.ddr[r.offset:r.offset + r.size].view(dtype)

    def run(self, emb: np.ndarray, pos0: int, taps: bool = False,
            ports: list[np.ndarray] | None = None) -> None:
        """One forward pass of emb (T, hidden) at pos0: every layer, then the head on the last row.
        ports: one buffer per weight port (edgellm_csim_run_ports) instead of ddr for every port."""
        self.region("h")[:emb.size] = emb.ravel()
        prog = itf.program(self.qm.config.n_layers, emb.shape[0], pos0, taps)
        self.region("program", np.uint32)[:prog.size] = prog.ravel()
        self.region("logits")[:] = np.nan
        args = (ctypes.c_uint64(self.ddr.size), ctypes.c_uint32(0),
                ctypes.c_uint32(self.plan.regions["program"].offset), ctypes.c_uint32(len(prog)))
        if ports is None:
            self.lib.edgellm_csim_run(csim.ptr(self.ddr), *args)
        else:
            assert all(p.size == self.ddr.size for p in ports)
            reg = self.plan.regions["program"]  # the fetchers read the program through their own port
            for p in ports:
                p[reg.offset:reg.offset + prog.nbytes] = self.ddr[reg.offset:reg.offset + prog.nbytes]
            ptrs = (ctypes.c_void_p * len(ports))(*[p.ctypes.data for p in ports])
            self.lib.edgellm_csim_run_ports(csim.ptr(self.ddr), ptrs, *args)

    def head_out(self) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """(logits, argmax, top-k ids, top-k values)."""
        a = self.region("argmax", np.int32)  # argmax [R], ids [R][k], values [R][k] (R: layout.head_rows)
        r = self.plan.head_rows
        vals = a[r + r * TOP_K:r + r * TOP_K + TOP_K].view(F32)
        logits = self.region("logits")[:self.qm.config.vocab_size].copy()
        return logits, int(a[0]), a[r:r + TOP_K].copy(), vals


def make_top(tmp: Path, variant: str, mm: str, design: DesignParams, threads: bool = False,
             defines: dict[str, str] | None = None) -> Top:
    """Generate the small model's HLS for `design` and build its C simulation (threads: the threaded
    one, every stream-connected DATAFLOW process in its own thread over bounded FIFOs; defines: extra
    preprocessor definitions)."""
    cfg = small_config(variant)
    qm = random_model(cfg, seed=5)
    numerics = NumericsPlan.for_head_dim(cfg.head_dim, kv_dtype="f16" if design.kv_bytes == 2 else "f32")
    sf, si, tf = layer_buffer_sizes(cfg, MAX_T)
    plan = plan_memory(qm, weight_encoder(design, mm), max_t=MAX_T, max_ctx=MAX_CTX,
                       scratch_floats=sf, scratch_i8=si, tap_floats=tf, top_k=TOP_K,
                       kv_elem_bytes=numerics.kv_elem_bytes, head_lanes=design.head_lanes)
    hls = tmp / "hls"
    generate_hls(hls, cfg, numerics, design, mm, max_t=MAX_T, max_ctx=MAX_CTX, top_k=TOP_K,
                 board=load_board("kv260"), total_bytes=plan.total_bytes)
    tag = "".join(f"_{k.lower()}" for k in sorted(defines or {}))
    lib = csim.load([hls / "csim_entry.cpp"], f"top_{variant}_{mm}_{numerics.kv_dtype}{'_mt' * threads}{tag}",
                    includes=[hls], threads=threads, defines=defines or {})
    lib.edgellm_csim_run.restype = None
    ddr = np.zeros(plan.total_bytes, np.uint8)
    ddr[:plan.static_bytes] = plan.image
    return Top(qm, numerics, plan, lib, hls, ddr)


def case_id(c: tuple[str, str, DesignParams]) -> str:
    d = c[2]
    return (f"{c[0]}-{c[1]}-{d.weight_ports}port-kv{8 * d.kv_bytes}"
            + (f"-tp{d.token_lanes}" * (d.token_lanes > 1)) + (f"-dl{d.dsp_lanes}" * (d.dsp_lanes > 0))
            + ("-pipe" * d.prefill_pipeline))


@pytest.fixture(scope="module", params=CASES, ids=case_id)
def top(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Top:
    variant, mm, design = request.param
    return make_top(tmp_path_factory.mktemp(f"{variant}_{mm}"), variant, mm, design)


def mismatches(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (f32, or binary16 when both are f16)."""
    if a.dtype == b.dtype == np.float16:
        a, b = np.ascontiguousarray(a).view(np.uint16), np.ascontiguousarray(b).view(np.uint16)
        assert a.shape == b.shape
        return int((a != b).sum())
    a, b = np.ascontiguousarray(a, F32), np.ascontiguousarray(b, F32)
    assert a.shape == b.shape
    return int((a.view(np.uint32) != b.view(np.uint32)).sum())


def kv_mismatches(top: Top, cache: KVCache, n: int) -> int:
    """Elements of the first n positions of the kernel's K and V cache that differ from the golden one."""
    kvt = cache.k.dtype
    return (mismatches(top.region("k_cache", kvt).reshape(cache.k.shape)[:, :n], cache.k[:, :n])
            + mismatches(top.region("v_cache", kvt).reshape(cache.v.shape)[:, :n], cache.v[:, :n]))


def ref_topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest, descending, ties by lower index."""
    idx = np.lexsort((np.arange(logits.size), -logits))[:k]
    return idx.astype(np.int32), logits[idx]


def test_buffer_sizes_match_cpp(top: Top) -> None:
    out = np.zeros(10, np.int64)
    top.lib.edgellm_csim_sizes(csim.ptr(out))
    cfg = top.qm.config
    taps = tap_offsets(cfg, MAX_T)
    assert tuple(out[:3]) == layer_buffer_sizes(cfg, MAX_T)
    assert list(out[3:9]) == [taps[n] for n in ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")]
    assert out[9] == MAX_T


def fifo_leftovers(top: Top) -> int:
    """Weight-FIFO words the fetchers pushed and the engine never popped, over all calls so far."""
    fn = top.lib.edgellm_csim_fifo_leftovers
    fn.restype = ctypes.c_longlong
    return int(fn())


def test_prefill_then_decode_bit_exact(top: Top) -> None:
    check_prefill_then_decode(top)


def check_prefill_then_decode(top: Top) -> None:
    """A 16-token prefill with taps, then 12 teacher-forced decode steps: logits, argmax, top-k, the
    last layer's taps and the KV cache bit-exact against the golden model, no weight-FIFO word left."""
    cfg = top.qm.config
    left0 = fifo_leftovers(top)
    gm = GoldenModel(top.qm, top.numerics)
    cache = gm.new_cache(MAX_CTX)
    assert cache.k.dtype == top.numerics.kv_np_dtype
    rng = np.random.default_rng(3)
    prompt = rng.integers(0, cfg.vocab_size, PREFILL)
    ref_taps: dict[str, np.ndarray] = {}
    ref = gm.forward(prompt, cache, tap=lambda n, a: ref_taps.__setitem__(n, np.array(a)),
                     all_logits=False)[0]
    top.run(top.qm.embed_rows(prompt), 0, taps=True)
    last = f"L{cfg.n_layers - 1}"
    counts = {"h": mismatches(top.region("h")[:PREFILL * cfg.hidden_size].reshape(PREFILL, -1),
                              ref_taps[f"{last}.h_out"])}
    offs = tap_offsets(cfg, MAX_T)
    tap_area = top.region("taps")
    for name in ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act"):
        want = ref_taps[f"{last}.{name}"].reshape(PREFILL, -1)
        counts[name] = mismatches(tap_area[offs[name]:offs[name] + want.size].reshape(want.shape), want)
    total = sum(counts.values())
    print(f"{cfg.name}: prefill taps of {last}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    steps = []
    tok = int(np.argmax(ref))
    for s in range(DECODE + 1):
        logits, am, ti, tv = top.head_out()
        want_i, want_v = ref_topk(ref, TOP_K)
        bad = mismatches(logits, ref) + int(am != int(np.argmax(ref))) + int((ti != want_i).sum()) + \
            mismatches(tv, want_v)
        steps.append(bad)
        if s == DECODE:
            break
        # teacher-forced: greedy for the first half, then random tokens (a random model repeats itself)
        tok = tok if s < DECODE // 2 else int(rng.integers(0, cfg.vocab_size))
        ref = gm.forward(np.array([tok]), cache, all_logits=False)[0]
        top.run(top.qm.embed_rows(np.array([tok])), PREFILL + s)
        tok = int(np.argmax(ref))
    kv_bad = kv_mismatches(top, cache, PREFILL + DECODE)
    left = fifo_leftovers(top) - left0
    print(f"{cfg.name} ({top.numerics.kv_dtype} KV): logits/argmax/top-k mismatches per step {steps}; "
          f"KV cache mismatches {kv_bad}; weight-FIFO words left over {left}")
    assert np.isfinite(ref).all()
    assert total == 0 and sum(steps) == 0 and kv_bad == 0 and left == 0


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


def status(top: Top) -> tuple[int, int, int]:
    """The top's status words (interface.h status protocol): code, field, value."""
    w = top.region("header", np.uint32)[itf.HDR["HDR_STATUS"]:][:3]
    return int(w[0]), int(w[1]), int(w[2])


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


def test_each_weight_port_reads_only_its_share(top: Top) -> None:
    """Each weight port gets its own buffer in which every ternary matrix byte outside that port's share
    (packing.port_slices for the generated TlmmConfig) and every LM-head row outside its rows (v % P)
    is garbage, and so are the data port's copies; decode attention reads position pp of the cache
    (every KV head) on port pp % kHeadPorts only (each port's other positions and the data port's cache
    copy garbage): prefill + decode logits stay bit-exact, and every streaming port carries a share.
    Ports swapped: they do not."""
    h = (top.hls / "edgellm_config.h").read_text()
    n_ports = int(re.search(r"kWeightPorts = (\d+);", h).group(1))
    stream = int(re.search(r"kStreamPorts = (\d+);", h).group(1))
    if "struct tlmm_cfg" not in h:
        pytest.skip("pack2 policy: the ternary matrices stream through w0 only")
    r = int(re.search(r"static const int R = (\d+);", h).group(1))  # rows per tile
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
            for p, ranges in enumerate(packing.port_slices(n, k, r, stream)):
                for a, b in ranges:
                    ports[p][off + a:off + b] = img[a:b]
                    shares[p] += b - a
    # the int8 LM head: port p reads rows v with v % kHeadPorts == p (lm_head.h); everything else garbage
    head_ports = int(re.search(r"kHeadPorts = (\d+);", h).group(1))
    assert head_ports == stream
    hw_off = int(hdr[itf.HDR["HDR_HEAD_W"]])
    hsize = cfg.vocab_size * cfg.hidden_size
    head = top.ddr[hw_off:hw_off + hsize].copy().reshape(cfg.vocab_size, cfg.hidden_size)
    head_rows = np.zeros(n_ports, np.int64)
    for buf in (data, *ports):
        buf[hw_off:hw_off + hsize] = rng.integers(0, 256, hsize, dtype=np.uint8)
    for p in range(head_ports):
        view = ports[p][hw_off:hw_off + hsize].reshape(cfg.vocab_size, cfg.hidden_size)
        view[p::head_ports] = head[p::head_ports]
        head_rows[p] = len(range(p, cfg.vocab_size, head_ports))
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
