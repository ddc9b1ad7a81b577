"""The generated, C-simulated top the tests share (test_top, test_csim_threads, test_port_model,
test_speculative_hw): the small model's configurations and designs (CASES), make_top (generate its HLS
and build its C simulation), the Top it returns (its DDR buffer, one forward pass, the head's outputs),
the prefill-then-decode check against the golden model and the bit-mismatch, reference top-k, FIFO
leftover and status helpers. Test modules import these from here, never from each other."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgellm.boards import load_board
from edgellm.compiler import interface as itf
from edgellm.compiler.codegen_hls import generate_hls, weight_encoder
from edgellm.compiler.design import DesignParams
from edgellm.compiler.memory_plan import MemoryPlan, plan_memory
from edgellm.hw import csim
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
# cache) with unequal port shares (3:1:2:5 of every TLMM tile and every cycle of LM-head rows) and a
# small one (2 ports, BRAM) with an f32 and with an f16 KV cache (the latter with the
# GLU's act * u pass 1 wide beside 4-wide element-wise passes, as the DSE picks for the large model on
# the KV260); the pack2 reference matmul as a cross-check
SMALL = dict(tables=15, weight_ports=2, weight_buffer="bram")
CASES = [("relu2_subln", "tlmm", DesignParams(port_shares=(3, 1, 2, 5))),
         ("relu2_subln", "tlmm", DesignParams(tables=15, weight_ports=1, kv_bytes=4)),
         ("silu", "tlmm", DesignParams(**SMALL, kv_bytes=4)),
         ("silu_subln", "tlmm", DesignParams(**SMALL, kv_bytes=2, ew_vec=4, ew_glu_vec=1)),
         # two token lanes, lane 1 a DSP lane (tlmm_traits DL 1: packed row-pair MAC chains), G3 T15 R16
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
            + (f"-shares{''.join(map(str, d.port_shares))}" * bool(d.port_shares))
            + (f"-tp{d.token_lanes}" * (d.token_lanes > 1)) + (f"-dl{d.dsp_lanes}" * (d.dsp_lanes > 0))
            + ("-pipe" * d.prefill_pipeline))


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


def fifo_leftovers(top: Top) -> int:
    """Weight-FIFO words the fetchers pushed and the engine never popped, over all calls so far."""
    fn = top.lib.edgellm_csim_fifo_leftovers
    fn.restype = ctypes.c_longlong
    return int(fn())


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


def status(top: Top) -> tuple[int, int, int]:
    """The top's status words (interface.h status protocol): code, field, value."""
    w = top.region("header", np.uint32)[itf.HDR["HDR_STATUS"]:][:3]
    return int(w[0]), int(w[1]), int(w[2])
