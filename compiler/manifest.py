"""manifest.json: what a compiled project is (versioned schema, runtime/manifest_schema.py), written as
the build's last step. Its `files` lists every file of the project with its sha256 (weights.bin and
embed.bin included, with the same sums as weights.sha256 / host.sha256): a project is a closed set
(runtime/project_files.py; docs/threat_model.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

import edgellm
from edgellm.compiler import interface as itf
from edgellm.compiler.pipeline import BuildContext
from edgellm.compiler.steps import IP_NAME, REF_PREFILL, sha256_file
from edgellm.compiler.tokenizer_files import chat_template_entry
from edgellm.models.shipped import source_name
from edgellm.runtime.layout import TOP_K
from edgellm.runtime.manifest_schema import SCHEMA  # one source for the writer and the reader
from edgellm.runtime.project_files import is_build_output

PIPELINE_FILES = ("manifest.json.tmp", "build_state.json", "build_state.json.tmp")  # not project files


def _sha(path: Path) -> str:
    return sha256_file(path)


def tool_versions() -> dict[str, str]:
    """Versions of the tools that touched the project here (AMD tools when on PATH)."""
    out = {"edgellm": edgellm.__version__, "python": platform.python_version(),
           "numpy": np.__version__}
    for tool, args in (("g++", ["--version"]), ("vitis_hls", ["-version"]), ("vivado", ["-version"])):
        if shutil.which(tool):
            try:
                res = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
                out[tool] = (res.stdout or res.stderr).strip().splitlines()[0]
            except (OSError, subprocess.TimeoutExpired, IndexError):
                out[tool] = "present (version unknown)"
    return out


def ternary_bits_per_weight(ctx: BuildContext) -> float:
    """DDR bits per weight streamed per decode token (all padding included; a low-bit design's too)."""
    plan = ctx.state["plan"]
    return 8.0 * plan.weight_bytes / plan.ternary_weights


def weights_entry(ctx: BuildContext) -> dict[str, Any]:
    """How the linears are encoded: ternary (trit5 tiles of R rows) or low-bit (the engine's port images,
    R = lowbit_rows, one record each in the low-bit table); counts and streamed bits per weight."""
    plan, design = ctx.state["plan"], ctx.state["design"]
    if design.matmul == "lowbit":
        return {"lowbit_weights": plan.ternary_weights, "lowbit_bytes": plan.weight_bytes,
                "lowbit_bits_per_weight": round(ternary_bits_per_weight(ctx), 4),
                "encoding": "lowbit port images (docs/hls.md \"Low-bit linears\"; table at HDR_LB_TABLE)",
                "rows_per_tile": design.lowbit_rows, "beat_bits": design.lowbit_beat_bits,
                **_lowbit_model(ctx)}
    return {"ternary_weights": plan.ternary_weights, "ternary_bytes": plan.weight_bytes,
            "ternary_bits_per_weight": round(ternary_bits_per_weight(ctx), 4),
            "encoding": "trit5-tiled (docs/weight_format.md)", "rows_per_tile": design.rows}


def _lowbit_model(ctx: BuildContext) -> dict[str, Any]:
    """weights.lowbit_model: the tensor formats compile projected the design with, which edgellm estimate
    DIR and edgellm report DIR re-project it with (compiler/reproject_lowbit.py); absent in a manifest
    written before it (those refuse the re-projection in one line)."""
    from edgellm.compiler.reproject_lowbit import MODEL_KEY, model_record

    src = ctx.state.get("lowbit_source")
    return {MODEL_KEY: model_record(src)} if src is not None else {}


def list_files(work: Path) -> dict[str, str]:
    """Every regular file under work (relative path -> sha256), manifest.json and the pipeline's own
    files excepted; ProjectError at a symbolic link or special file (a project holds none)."""
    from edgellm.runtime.project_files import scan

    return {rel: _sha(work / rel) for rel in scan(work) if rel not in PIPELINE_FILES}


def build_manifest(ctx: BuildContext) -> dict[str, Any]:
    """The manifest dict for the project in ctx.work (every other file already written)."""
    s, work = ctx.state, ctx.work
    qm, plan, design = s["qm"], s["plan"], s["design"]
    # the generated <ip>.hwh sits in a build-output slot (edgellm build replaces it): not listed
    files = {rel: h for rel, h in list_files(work).items() if not is_build_output(rel, IP_NAME)}
    embed_dtype = "bf16" if qm.embed.dtype == np.uint16 else "f32"
    hls = s.get("hls_info", {})
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": qm.config.to_dict(),
        "model_source": source_name(s["model_path"]),  # the shipped tiny model by name
        "board": dataclasses.asdict(s["board"]),
        "design": dataclasses.asdict(design),
        "numerics": s["numerics"].to_dict(),
        "interface": {"version": itf.INTERFACE_VERSION, "hdr_off": 0,
                      "prog_off": plan.regions["program"].offset,
                      "max_t": s["max_t"], "max_ctx": s["max_ctx"], "top_k": TOP_K, "ip_name": IP_NAME,
                      "head_rows": plan.head_rows,
                      "registers": hls.get("registers", {}), "bundles": hls.get("bundles", [])},
        "memory": plan.to_dict(),
        "weights": {"file": "weights.bin", "bytes": plan.static_bytes, "sha256": files["weights.bin"],
                    **weights_entry(ctx)},
        "host": {"embed_file": "embed.bin", "embed_dtype": embed_dtype, "vocab": qm.config.vocab_size,
                 "hidden": qm.config.hidden_size, "sha256": files["embed.bin"]},
        "tokenizer": "tokenizer.json" if (work / "tokenizer.json").is_file() else None,
        "chat_template": chat_template_entry(work),
        "reference": {"prefill": REF_PREFILL, "decode": ctx.config.reference_new_tokens, "dir": "reference",
                      "onnx": "reference/model.onnx" if ctx.config.reference_onnx else None},
        "estimate": {"file": "report/estimate.json", "label": "projected"},
        "build": {"config": dataclasses.asdict(ctx.config), "step_seconds": ctx.timings},
        "tools": tool_versions(),
        "files": files,
    }
