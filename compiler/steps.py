"""The named steps of `edgellm compile` (run in order by compiler.pipeline.run_steps)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.compiler.build_state import sha256_file as sha256_file  # re-exported (manifest.py)
from edgellm.compiler.pipeline import BuildContext, Step
from edgellm.errors import EdgeLLMError
from edgellm.runtime.layout import TOP_K

IP_NAME = "edgellm_top"
REF_PREFILL = 16


def step_load(ctx: BuildContext) -> None:
    """Load the checkpoint (or the shipped tiny model) and the board."""
    from edgellm.boards import load_board
    from edgellm.compiler.early_fit import check_fits_early, check_lowbit_fits_early, ternary_config
    from edgellm.models.loaders import load_model
    from edgellm.models.shipped import resolve_model_path

    board = load_board(ctx.config.board)
    if ctx.config.measured is not None:  # compile --measured: a calibration's bandwidth as the central figure
        from edgellm.compiler.calibrate.measured import Measured

        board = Measured.from_config(ctx.config.measured).apply(board)
    ctx.state["board"] = board
    path = resolve_model_path(Path(ctx.config.model) if ctx.config.model else None)
    cfg = ternary_config(path)  # a ternary model too large for the board is refused before loading it
    if cfg is not None:
        check_fits_early(cfg, board, ctx.config.overrides)
    else:  # a low-bit one on a lower bound of its memory plan
        check_lowbit_fits_early(path, board, ctx.config.overrides)
    qm, tok = load_model(path)
    ctx.state.update(qm=qm, tokenizer=tok, model_path=path)


def step_frontend(ctx: BuildContext) -> None:
    """QuantModel -> ModelGraph, verified (a model the hardware cannot run is refused here)."""
    from edgellm.compiler.frontend import build_graph
    from edgellm.compiler.ir import verify

    g = build_graph(ctx.state["qm"])
    verify(g)
    ctx.state["graph"] = g
    ctx.state["lowbit"] = any(op.kind == "lowbit_linear" for op in g.ops)


def step_fuse(ctx: BuildContext) -> None:
    """Fusion passes, each followed by the verifier, then the layers' stage sequence (ctx.state["schedule"],
    passes/schedule.py: one sequence for every layer, or IRError). The fused graph is a checked
    description of the layer's fusion (docs/architecture.md "Compiler passes"): the memory plan and codegen
    do not read it; tests/test_ir_schedule.py checks its stages against decoder_layer.h's slot schedule."""
    from edgellm.compiler.ir import verify
    from edgellm.compiler.passes.fuse_linear_epilogues import fuse_linear_epilogues
    from edgellm.compiler.passes.fuse_norm_quant import fuse_norm_quant
    from edgellm.compiler.passes.schedule import graph_schedule

    g = ctx.state["graph"]
    for p in (fuse_norm_quant, fuse_linear_epilogues):
        g = p(g)
        verify(g)
    ctx.state["graph"] = g
    ctx.state["schedule"] = graph_schedule(g)


def step_dse(ctx: BuildContext) -> None:
    """Choose the design parameters for the board (design-space exploration)."""
    from edgellm.compiler.design import DesignParams, dot_lanes
    from edgellm.compiler.dse import explore
    from edgellm.models.numerics import NumericsPlan

    cfg, board = ctx.state["qm"].config, ctx.state["board"]
    if ctx.state.get("lowbit"):
        _dse_lowbit(ctx)
        return
    over = dict(ctx.config.overrides)  # "clock_mhz", "lut_cap", "max_context" steer the exploration itself
    lut, speculate = over.pop("lut_cap", None), over.pop("speculate", None)  # speculate: the objective
    base = DesignParams(max_context=over.pop("max_context", 0))  # as estimate --context explores
    limits = {} if lut is None else {"lut": lut}
    res = explore(cfg, board, base, limits, over.get("clock_mhz"), speculate=speculate)
    design = res.params.replace(**over) if over else res.params
    if design != res.params:  # report/estimate.json and the summary project the design that is built
        res = dataclasses.replace(res, params=design, estimate=_check_overridden(cfg, board, design, over,
                                                                                  limits))
    kv_dtype = {4: "f32", 2: "f16"}.get(design.kv_bytes)
    if kv_dtype is None:
        raise EdgeLLMError(f"design kv_bytes {design.kv_bytes}: the KV cache is f32 (4) or f16 (2)")
    # the numerics plan (the bit-exact contract) from the design alone, not from the performance model
    numerics = NumericsPlan(norm_lanes=design.ew_lanes, dot_lanes=dot_lanes(cfg, design.attn_lanes),
                            kv_block=design.attn_kv_block, kv_dtype=kv_dtype)
    ctx.state.update(design=design, dse=res, numerics=numerics)


def _dse_lowbit(ctx: BuildContext) -> None:
    """A low-bit design: compiler/cost/lowbit_search.py search's engine for the board (the estimate's, so
    compile prints what `edgellm estimate` prints: lowbit_estimate.compile_design); --context, --clock and
    --lut-cap steer it as they steer estimate."""
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.compiler.design import dot_lanes
    from edgellm.models.numerics import NumericsPlan

    qm, board = ctx.state["qm"], ctx.state["board"]
    cfg = qm.config
    over = dict(ctx.config.overrides)
    ctx_len, clock = over.pop("max_context", 0), over.pop("clock_mhz", None)
    lut = over.pop("lut_cap", None)
    if over:
        raise EdgeLLMError(f"design option {next(iter(over))} does not apply to a low-bit model yet (its "
                           "design is compiler/cost/lowbit_search.py search's); --context, --clock and "
                           "--lut-cap do")
    src = le.from_path(Path(ctx.state["model_path"])) if ctx.state.get("model_path") else None
    src = src or le.from_model(qm)
    groups = [lin.group for L in qm.layers for lin in L.linears().values()]
    est, design = le.compile_design(src, board, max(groups), ctx_len, clock,
                                    None if lut is None else {"lut": lut})
    numerics = NumericsPlan(norm_lanes=design.ew_lanes, dot_lanes=dot_lanes(cfg, design.attn_lanes),
                            kv_block=design.attn_kv_block, kv_dtype={4: "f32", 2: "f16"}[design.kv_bytes])
    ctx.state.update(design=design, lowbit_estimate=est, lowbit_source=src, numerics=numerics,
                     dse=LowbitDse(est, src, board))


class LowbitDse:
    """ctx.state["dse"] of a low-bit design: the low-bit estimate in the shape step_report reads."""

    def __init__(self, est, src, board) -> None:  # (LowbitEstimate, LowbitSource, Board)
        self.est, self.src, self.board = est, src, board

    def rows(self) -> list[tuple[str, str]]:
        """estimate's table rows (lowbit_estimate.rows), every speed labelled projected."""
        from edgellm.compiler import lowbit_estimate as le

        return le.rows(self.src, self.est, self.board)

    def record(self) -> dict[str, Any]:
        from edgellm.compiler import lowbit_estimate as le

        return {"lowbit": self.est.record(), "weights": self.src.weights, "mix": le.mix_text(self.src.model),
                "notes": list(le.notes(self.src))}


# Design fields codegen does not build from the design (it always emits the generated engine, the int8
# LM head on the fabric -- the runtime has no host-side head -- and its own 5-trits/byte stream): the
# estimate models them, an override would not be built.
MODEL_ONLY_FIELDS = {"overlap": True, "lm_head_bits": 8, "bits_per_weight": None, "weight_buffer_depth": 0,
                     "lm_head_on_fabric": True}


def _check_overridden(cfg, board, design, over: dict, limits: dict):  # -> Estimate
    """The estimate of the design the overrides make, after checking that codegen builds every overridden
    field and that the design still fits the board (its DDR, the resources under the routing headroom
    with the user's LUT cap): EdgeLLMError in one line otherwise."""
    from edgellm.compiler.design_bytes import check_board_ddr_fit
    from edgellm.compiler.estimate import UTIL_LIMITS, estimate, fits_board

    for f, built in MODEL_ONLY_FIELDS.items():
        if f in over and over[f] != built:
            raise EdgeLLMError(f"design override {f}={over[f]!r}: the generated hardware builds "
                               f"{f}={built!r} only (the estimate models other values; codegen does not)")
    check_board_ddr_fit(cfg, design, board)
    est = estimate(cfg, board, design)
    why = fits_board(est.resources["total"], board, {**UTIL_LIMITS, **limits})
    if why:
        sets = ", ".join(f"{k}={v}" for k, v in over.items())
        raise EdgeLLMError(f"design overrides {sets}: the design does not fit {board.name} within the "
                           f"routing headroom ({'; '.join(why)})")
    return est


def step_plan_memory(ctx: BuildContext) -> None:
    """Encode the weights and lay out the DDR buffer."""
    from edgellm.compiler.codegen_hls import weight_encoder
    from edgellm.compiler.design import block_tokens
    from edgellm.compiler.memory_plan import plan_memory
    from edgellm.runtime.layout import layer_buffer_sizes

    cfg, design = ctx.state["qm"].config, ctx.state["design"]
    max_t = block_tokens(cfg, design)
    max_ctx = design.max_context or cfg.max_context
    sf, si, tf = layer_buffer_sizes(cfg, max_t)
    encode = weight_encoder(design, "tlmm")
    plan = plan_memory(ctx.state["qm"], encode,
                       max_t=max_t, max_ctx=max_ctx, scratch_floats=sf, scratch_i8=si,
                       tap_floats=tf, align=plan_align(design),
                       kv_elem_bytes=ctx.state["numerics"].kv_elem_bytes, top_k=TOP_K,
                       head_lanes=design.head_lanes)
    ctx.state.update(plan=plan, max_t=max_t, max_ctx=max_ctx)
    if design.matmul == "lowbit":  # the ternary DSE checks its footprint model; a low-bit design its plan
        check_plan_fits(plan.total_bytes, cfg, ctx.state["board"])
        ctx.state["design"] = with_codecs(design, encode.codecs)
    check_reference_fits(ctx.config.reference_new_tokens, max_ctx)


def with_codecs(design, codecs: set[tuple[int, ...]]):  # (DesignParams, ...) -> DesignParams
    """The low-bit design with the parameter codecs its linears were packed with (the encoder's
    ParamCodec.as_words, sorted): the engine is specialised to them (lowbit_cfg n_codecs / codec, the
    manifest's design.lowbit_codecs); EdgeLLMError in one line when they are more than it lists."""
    from edgellm.runtime.layout import LB_MAX_CODECS

    if len(codecs) > LB_MAX_CODECS:
        raise EdgeLLMError(f"the model's low-bit linears use {len(codecs)} parameter codecs; a low-bit "
                           f"engine is built for at most {LB_MAX_CODECS}")
    return design.replace(lowbit_codecs=tuple(sorted(codecs)))


def check_plan_fits(total_bytes: int, cfg, board) -> None:  # (int, ModelConfig, Board)
    """The accelerator buffer and the host's bf16 embedding table fit the DDR the board leaves the model;
    EdgeLLMError in one line otherwise."""
    embed = cfg.vocab_size * cfg.hidden_size * 2
    if total_bytes + embed > board.ddr_available_bytes:
        mib = 2**20
        raise EdgeLLMError(f"{cfg.name} needs {(total_bytes + embed) / mib:.0f} MiB of DDR (accelerator "
                           f"buffer {total_bytes / mib:.0f} MiB, embeddings {embed / mib:.0f} MiB) but "
                           f"{board.name} leaves {board.ddr_available_bytes / 2**20:.0f} MiB for the model")


def plan_align(design) -> int:  # DesignParams -> bytes
    """Item alignment of the memory plan: the widest weight beat (a low-bit design's port images: 64)."""
    from edgellm.compiler.memory_plan_lowbit import IMAGE_ALIGN

    a = max(design.port_width_bits // 8, design.rows)
    return max(a, IMAGE_ALIGN) if design.matmul == "lowbit" else a


def check_reference_fits(decode_steps: int, max_ctx: int) -> None:
    """The reference run (and its csim replay) keeps REF_PREFILL + decode_steps positions in the KV
    cache of max_ctx entries; refuse more before the slow steps run."""
    if REF_PREFILL + decode_steps > max_ctx:
        raise EdgeLLMError(f"--reference-decode {decode_steps}: the reference run needs {REF_PREFILL} "
                           f"prefill + {decode_steps} decode positions, the KV cache holds {max_ctx}; "
                           f"at most {max(max_ctx - REF_PREFILL, 0)} decode steps")


def step_codegen_hls(ctx: BuildContext) -> None:
    """hls/: kernel headers, generated config and top, C-sim entry, testbench, Vitis HLS Tcl."""
    from edgellm.compiler.codegen_hls import generate_hls

    s = ctx.state
    info = generate_hls(ctx.work / "hls", s["qm"].config, s["numerics"], s["design"], mm="tlmm",
                        max_t=s["max_t"], max_ctx=s["max_ctx"], top_k=TOP_K, board=s["board"],
                        total_bytes=s["plan"].total_bytes)
    s["hls_info"] = info


def step_codegen_vivado(ctx: BuildContext) -> None:
    """vivado/build.tcl: block design with the PS, HP ports, the IP, address map, bitstream; <ip>.hwh: its
    hardware handoff, generated (compiler/hwh.py) until `edgellm build` replaces it with Vivado's."""
    from edgellm.compiler import hwh
    from edgellm.compiler.vivado_tcl import write_vivado_tcl

    s = ctx.state
    write_vivado_tcl(ctx.work, s["board"], s["design"], IP_NAME)
    hwh.write_hwh(ctx.work / f"{IP_NAME}.hwh", hwh.spec_for(s["board"], s["design"], IP_NAME,
                                                            s["hls_info"]["registers"]))


def step_weights(ctx: BuildContext) -> None:
    """weights.bin (the static DDR image) and embed.bin (host-side embedding table)."""
    plan, qm = ctx.state["plan"], ctx.state["qm"]
    plan.image.tofile(ctx.work / "weights.bin")
    np.ascontiguousarray(qm.embed).tofile(ctx.work / "embed.bin")


def reference_tokens(ctx: BuildContext) -> list[int]:
    """The REF_PREFILL prompt tokens of the reference run."""
    tok, cfg = ctx.state["tokenizer"], ctx.state["qm"].config
    ids: list[int] = []
    if tok is not None:
        text = ctx.config.reference_prompt
        for _ in range(REF_PREFILL):  # each repeat adds at least one token (the prompt is not blank)
            ids = [cfg.bos_id] + list(tok.encode(text))
            if len(ids) >= REF_PREFILL:
                break
            text += " " + ctx.config.reference_prompt
        else:
            raise EdgeLLMError(f"reference prompt {ctx.config.reference_prompt!r} does not tokenize to "
                               f"{REF_PREFILL} tokens")
    else:
        ids = [(7 * i + 3) % cfg.vocab_size for i in range(REF_PREFILL)]
    return ids[:REF_PREFILL]


def _finite(logits: np.ndarray, n_tokens: int) -> np.ndarray:
    """The reference run's logits after n_tokens tokens; EdgeLLMError when any is NaN or infinite (a
    project of the model would generate nothing: `run` refuses NaN logits)."""
    if not np.isfinite(logits).all():
        raise EdgeLLMError(f"the model's reference run gives NaN or infinite logits after {n_tokens} "
                           "tokens (its float32 arithmetic overflows: weights far too large?); refusing to "
                           "compile it")
    return logits


def step_reference(ctx: BuildContext) -> None:
    """reference/: golden outputs of a 16-token prefill + 16 greedy decode steps, and model.onnx."""
    from edgellm.compiler.codegen_hls import write_reference_inputs
    from edgellm.models.golden import GoldenModel

    qm = ctx.state["qm"]
    golden = GoldenModel(qm, ctx.state["numerics"])
    cache = golden.new_cache(ctx.state["max_ctx"])
    prompt = reference_tokens(ctx)
    rows = [_finite(golden.forward(np.array(prompt), cache, all_logits=False)[0], len(prompt))]
    decode_ids: list[int] = []
    for _ in range(ctx.config.reference_new_tokens):
        decode_ids.append(int(np.argmax(rows[-1])))
        rows.append(_finite(golden.forward(np.array(decode_ids[-1:]), cache, all_logits=False)[0],
                            len(prompt) + len(decode_ids)))
    ref = ctx.work / "reference"
    ref.mkdir(exist_ok=True)
    embeds = qm.embed_rows(np.array(prompt + decode_ids))
    logits = np.stack(rows).astype(np.float32)
    write_reference_inputs(ref, embeds, logits, prompt, decode_ids)
    tok = ctx.state["tokenizer"]
    text = tok.decode(decode_ids) if tok is not None else None
    (ref / "golden.json").write_text(json.dumps(
        {"prompt_ids": prompt, "greedy_ids": decode_ids, "greedy_text": text,
         "numerics": ctx.state["numerics"].to_dict()}, indent=1))
    if ctx.config.reference_onnx:
        from edgellm.models.onnx_export import export_onnx

        # low-bit linears in the numerics contract's order (bit for bit golden's), not MatMulNBits
        export_onnx(qm, ref / "model.onnx", kv_dtype=ctx.state["numerics"].kv_dtype, lowbit="contract")


def step_tokenizer(ctx: BuildContext) -> None:
    """tokenizer.json (the one the model was loaded with) and chat_template.jinja, when the model has them."""
    from edgellm.compiler.tokenizer_files import write_tokenizer_files

    write_tokenizer_files(ctx.work, ctx.state["qm"], Path(ctx.state["model_path"]))


def step_report(ctx: BuildContext) -> None:
    """report/estimate.json: projected resources and performance (labelled projected), and the designs
    the exploration scored and a spread of the feasible ones (for edgellm report's plot)."""
    rep = ctx.work / "report"
    rep.mkdir(exist_ok=True)
    if ctx.state.get("lowbit"):
        (rep / "estimate.json").write_text(json.dumps(
            {"label": "projected by compiler/cost/lowbit.py (docs/performance.md), not measured",
             "dse": ctx.state["dse"].record()}, indent=1, default=_json_default))
        return
    est = ctx.state["dse"].estimate
    (rep / "estimate.json").write_text(json.dumps(
        {"label": "projected by the performance model (docs/performance.md), not measured",
         **est.summary(), "dse": ctx.state["dse"].record()}, indent=1, default=_json_default))


def step_manifest(ctx: BuildContext) -> None:
    """manifest.json: config, design, interface, memory map, checksums (written last)."""
    from edgellm.compiler.manifest import build_manifest

    m = build_manifest(ctx)
    tmp = ctx.work / "manifest.json.tmp"
    tmp.write_text(json.dumps(m, indent=1, default=_json_default))
    tmp.replace(ctx.work / "manifest.json")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o)}")


def compile_steps() -> list[Step]:
    """The build, in order."""
    return [
        Step("load", step_load), Step("frontend", step_frontend), Step("fuse", step_fuse),
        Step("dse", step_dse), Step("plan_memory", step_plan_memory),
        Step("codegen_hls", step_codegen_hls, writes=True, keeps=("hls_info",)),
        Step("codegen_vivado", step_codegen_vivado, writes=True),
        Step("weights", step_weights, writes=True), Step("tokenizer", step_tokenizer, writes=True),
        Step("reference", step_reference, writes=True), Step("report", step_report, writes=True),
        Step("manifest", step_manifest),
    ]

