"""Shared test helpers (imported as `helpers`: pytest puts tests/ on sys.path). The runtime tests' project
directory, written the way `edgellm compile` lays it out (the memory plan's DDR image, embed.bin,
manifest.json checked against runtime/manifest_schema.py), and a Python model of the accelerator top
that reads everything it needs (header, layer table, encoded weights, params, rope tables, KV cache,
descriptors) from the DDR image and computes with the golden model's primitives.

The real top is the project's C simulation; this one lets the runtime (driver, session, verify) be
tested end to end before/without a compiled project (tests/test_runtime_support.py tests it).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from pathlib import Path

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.compiler.memory_plan import plan_memory
from edgellm.compiler.packing import pack_ternary, packed_size, unpack_ternary
from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel, KVCache, lm_head
from edgellm.models.numerics import NumericsPlan
from edgellm.models.weights import Int8Head, Layer, QuantModel, TernaryLinear
from edgellm.runtime import layout, manifest_schema
from edgellm.runtime.layout import tap_floats

R = 4  # rows per tile of the test encoding
ALIGN = 64
REGISTERS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "w0": 0x28, "w1": 0x34, "data": 0x40}
TINY = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=48, vocab_size=96,
                   max_context=64, name="rt-tiny")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_project(d: Path, qm: QuantModel, max_t: int = 4, max_ctx: int = 32, top_k: int = 5,
                  tokenizer: Path | None = None) -> Path:
    """A project directory as the compiler writes it (no hls/): manifest.json, weights.bin, embed.bin."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = qm.config
    plan = NumericsPlan.for_head_dim(cfg.head_dim)
    mp = plan_memory(qm, lambda lin: pack_ternary(lin.dense(), R), max_t, max_ctx, scratch_floats=16,
                     scratch_i8=16, tap_floats=tap_floats(cfg, max_t), align=ALIGN, top_k=top_k,
                     head_lanes=layout.HEAD_ROWS_MAX)  # the manifest's default head (no interface.head_rows)
    (d / "weights.bin").write_bytes(mp.image.tobytes())
    emb = np.ascontiguousarray(qm.embed)
    (d / "embed.bin").write_bytes(emb.tobytes())
    files = {}
    if tokenizer is not None:
        (d / "tokenizer.json").write_bytes(tokenizer.read_bytes())
        files["tokenizer.json"] = sha(d / "tokenizer.json")
    m = {"schema": manifest_schema.SCHEMA, "model": cfg.to_dict(), "board": {"name": "test"},
         "design": {"rows": R}, "numerics": plan.to_dict(),
         "interface": {"version": itf.INTERFACE_VERSION, "hdr_off": 0,
                       "prog_off": mp.regions["program"].offset,
                       "max_t": max_t, "max_ctx": max_ctx, "top_k": top_k, "ip_name": "edgellm_top",
                       "registers": REGISTERS},
         "memory": mp.to_dict(),
         "weights": {"file": "weights.bin", "bytes": mp.static_bytes, "sha256": sha(d / "weights.bin"),
                     "encoding": "trit5-tiled", "rows_per_tile": R},
         "host": {"embed_file": "embed.bin", "embed_dtype": "bf16" if emb.dtype == np.uint16 else "f32",
                  "vocab": cfg.vocab_size, "hidden": cfg.hidden_size, "sha256": sha(d / "embed.bin")},
         "tokenizer": "tokenizer.json" if tokenizer is not None else None, "files": files,
         "model_source": None}
    manifest_schema.validate(m, "write_project")  # the runtime's schema, not a copy of it
    (d / "manifest.json").write_text(json.dumps(m, indent=1))
    return d


class PythonTop:
    """edgellm_csim_run in Python: runs descriptors on the DDR image (golden primitives)."""

    def __init__(self, cfg: ModelConfig, plan: NumericsPlan) -> None:
        self.cfg, self.plan = cfg, plan
        self.calls = 0

    def __call__(self, ddr: ctypes.c_void_p, nbytes: int, hdr_off: int, prog_off: int, n_desc: int) -> None:
        addr = ddr.value if isinstance(ddr, ctypes.c_void_p) else int(ddr)
        mem = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(addr))
        hdr = mem[hdr_off:hdr_off + itf.HDR_WORDS * 4].view(np.uint32)
        H = {k: int(hdr[v]) for k, v in itf.HDR.items()}
        assert H["HDR_MAGIC"] == itf.MAGIC
        st = itf.HDR["HDR_STATUS"]
        hdr[st:st + 3] = [itf.ST_OK, 0, 0]  # the status protocol (interface.h); this model checks nothing
        c = self.cfg
        max_t, max_ctx, nl = H["HDR_MAX_T"], H["HDR_MAX_CTX"], H["HDR_N_LAYERS"]
        f32 = lambda off, n: mem[off:off + 4 * n].view(np.float32)  # noqa: E731
        qm = self._model(mem, H)
        gm = GoldenModel(qm, self.plan)
        kv_shape = (nl, max_ctx, c.n_kv_heads, c.head_dim)
        n_kv = int(np.prod(kv_shape))
        cache = KVCache(f32(H["HDR_K_CACHE"], n_kv).reshape(kv_shape),
                        f32(H["HDR_V_CACHE"], n_kv).reshape(kv_shape))
        prog = mem[prog_off:prog_off + n_desc * itf.DESC_WORDS * 4].view(np.uint32).reshape(n_desc, -1)
        h_all = f32(H["HDR_H"], max_t * c.hidden_size).reshape(max_t, c.hidden_size)
        for d in prog:
            op, layer, t_len, pos0, flags, row, n_rows = (int(x) for x in d[:7])
            if op == itf.OP_LAYER:
                taps: dict[str, np.ndarray] = {}

                def tap(n: str, a: np.ndarray, taps: dict[str, np.ndarray] = taps) -> None:
                    taps[n.split(".", 1)[1]] = a
                h = gm.layer(layer, h_all[:t_len].copy(), cache, pos0, tap)
                h_all[:t_len] = h
                if flags & itf.DESC_TAPS:
                    off = H["HDR_TAPS"]
                    for s in ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act"):
                        a = np.asarray(taps[s], np.float32).reshape(t_len, -1)
                        f32(off, a.size)[:] = a.ravel()
                        off += 4 * max_t * a.shape[1]
            elif op == itf.OP_HEAD:  # rows row .. row + n - 1 (top.h: argmax [R], ids [R][k], values [R][k])
                n, r = max(n_rows, 1), layout.head_rows(max_t, layout.HEAD_ROWS_MAX)  # write_project's head
                x = nx.rmsnorm(h_all[row:row + n], qm.final_norm, c.rms_eps, self.plan.norm_lanes)
                k, a, stride = H["HDR_TOPK"], H["HDR_ARGMAX"], layout.logits_row(c.vocab_size)
                for i, logits in enumerate(lm_head(x, qm.lm_head)):
                    f32(H["HDR_LOGITS"] + 4 * stride * i, c.vocab_size)[:] = logits
                    order = np.argsort(-logits, kind="stable")[:k]
                    mem[a + 4 * i:a + 4 * i + 4].view(np.int32)[0] = order[0]
                    mem[a + 4 * (r + k * i):a + 4 * (r + k * i + k)].view(np.int32)[:] = order
                    f32(a + 4 * (r + r * k + k * i), k)[:] = logits[order]
            else:
                raise AssertionError(f"bad opcode {op}")
        self.calls += 1

    def _model(self, mem: np.ndarray, H: dict[str, int]) -> QuantModel:
        c = self.cfg
        f32 = lambda off, n: mem[off:off + 4 * n].view(np.float32).copy()  # noqa: E731
        params = lambda fo, n: f32(H["HDR_PARAMS"] + 4 * fo, n)  # noqa: E731
        layers = []
        for i in range(H["HDR_N_LAYERS"]):
            ld = mem[H["HDR_LAYER_TABLE"] + i * itf.LD_WORDS * 4:][:itf.LD_WORDS * 4].view(np.uint32)
            lin = {}
            for j, n in enumerate(itf.LINEAR_ORDER):
                o, k = c.linear_shapes()[n]
                off = H["HDR_WEIGHTS"] + int(ld[itf.LD_W_OFF + j])
                w = unpack_ternary(mem[off:off + packed_size(o, k, R)], o, k, R)
                scale = np.uint32(ld[itf.LD_W_SCALE + j]).view(np.float32)
                lin[n] = TernaryLinear.from_ternary(w, float(scale))
            p = [int(x) for x in ld[itf.LD_P_OFF:itf.LD_P_OFF + 4]]
            layers.append(Layer(attn_norm=params(p[0], c.hidden_size), ffn_norm=params(p[1], c.hidden_size),
                                attn_sub_norm=params(p[2], c.q_size) if c.subln else None,
                                ffn_sub_norm=params(p[3], c.ffn_size) if c.subln else None, **lin))
        hw = mem[H["HDR_HEAD_W"]:H["HDR_HEAD_W"] + c.vocab_size * c.hidden_size].view(np.int8)
        head = Int8Head(hw.reshape(c.vocab_size, c.hidden_size).copy(),
                        f32(H["HDR_HEAD_SCALE"], c.vocab_size))
        embed = np.zeros((c.vocab_size, c.hidden_size), np.float32)  # the host embeds
        return QuantModel(c, embed, layers, params(H["HDR_FINAL_NORM"], c.hidden_size), head)


def emulator_for(project_dir: Path):
    """(Project, EmulatorDevice running PythonTop) for a written project."""
    from edgellm.runtime.emulator import EmulatorDevice
    from edgellm.runtime.project import Project

    p = Project.open(project_dir)
    return p, EmulatorDevice(PythonTop(p.config, p.numerics), p.iface.registers, name="emulator(python-top)")
