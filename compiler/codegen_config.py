"""The generated configuration's named structs (hls4ml style): one struct per kernel configuration, each
field by name, derived from ModelConfig, NumericsPlan and DesignParams in one place per kernel.

    struct layer_cfg : edgellm::layer_config_base { static const int hidden = 256; ... };
    typedef edgellm::layer_traits<layer_cfg> layer;

The C++ side (decoder_layer.h layer_config_base / layer_traits, tlmm_config.h tlmm_config_base / tlmm_traits,
named_config.h for the LM head and the top) reads the fields by name, so two fields of equal value
cannot be swapped by position; tests/test_codegen_named.py compiles a generated header and checks every
field the kernels see against the Python parameters it came from.
"""

from __future__ import annotations

from typing import Any

from edgellm.compiler.cost.lowbit import model_max_k
from edgellm.compiler.design import DesignParams, shares_for, tlmm_tables
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan
from edgellm.runtime.layout import head_rows, k_max

Field = tuple[str, Any, str]  # (C++ name, value, what it is)


class CppType(str):
    """A C++ type (a typedef field of a generated config struct)."""


class CppDecl(str):
    """A whole C++ member declaration of a generated config struct (a constexpr function), written as is."""


def cpp_struct(name: str, base: str, fields: list[Field]) -> str:
    """struct name : base { one named field per entry: typedef (CppType), static const bool (bool) or
    static const int (int, or an int-valued C++ expression) }, each with its comment."""
    lines = [f"struct {name} : {base} {{"]
    for field, value, what in fields:
        if isinstance(value, CppDecl):
            decl = str(value)
        elif isinstance(value, CppType):
            decl = f"typedef {value} {field};"
        elif isinstance(value, bool):
            decl = f"static const bool {field} = {str(value).lower()};"
        else:
            decl = f"static const int {field} = {value};"
        lines.append(f"  {decl}  // {what}")
    return "\n".join(lines + ["};"])


def layer_fields(cfg: ModelConfig, numerics: NumericsPlan, design: DesignParams, max_t: int,
                 max_ctx: int) -> list[Field]:
    """The layer's named configuration (decoder_layer.h layer_config_base / layer_traits)."""
    act = "edgellm::ACT_RELU2" if cfg.act == "relu2" else "edgellm::ACT_SILU"
    return [
        ("hidden", cfg.hidden_size, "model hidden size"), ("n_heads", cfg.n_heads, "query heads"),
        ("n_kv", cfg.n_kv_heads, "KV heads"), ("head_dim", cfg.head_dim, "head dimension"),
        ("ffn", cfg.ffn_size, "FFN width"), ("act", act, f"FFN activation ({cfg.act})"),
        ("subln", bool(cfg.subln), "SubLN norms"),
        ("norm_lanes", numerics.norm_lanes, "numerics plan: RMSNorm sum-of-squares lanes"),
        ("dot_lanes", numerics.dot_lanes, "numerics plan: attention dot-product lanes"),
        ("kv_block", numerics.kv_block, "numerics plan: keys per online-softmax block"),
        ("max_t", max_t, "tokens per call"), ("max_ctx", max_ctx, "KV cache positions"),
        ("bq", design.attn_q_block, "design attn_q_block: prefill queries per K/V tile"),
        ("kv_t", CppType(f"edgellm::{numerics.kv_dtype}"),
         f"numerics plan kv_dtype {numerics.kv_dtype} (f16: binary16 bit patterns, kv_cache.h)"),
        ("ew_vec", design.ew_vec, "design ew_vec: element-wise elements per cycle"),
        ("ew_glu_vec", design.glu_vec, "design glu_vec: elements per cycle of the GLU act * u pass"),
        ("pipe", bool(design.prefill_pipeline), "design prefill_pipeline"),
        ("pipe_min_t", design.pipe_min_tokens, "design pipe_min_tokens: shorter calls run sequential"),
        ("attn_split", bool(design.attn_split), "design attn_split: attention beside the k, v linears"),
        ("data_bits", design.data_port_width_bits, "design data_port_width_bits: data / act port beat"),
    ]


def tlmm_fields(cfg: ModelConfig, design: DesignParams, max_t: int, stream_ports: int) -> list[Field]:
    """The TLMM engine's named configuration (tlmm_config.h tlmm_config_base / tlmm_traits)."""
    storage = {"uram": "edgellm::kStorageUram", "bram": "edgellm::kStorageBram",
               "lutram": "edgellm::kStorageLutram"}[design.weight_buffer]
    return [
        ("G", design.group_size, "activations per table group"),
        ("T", tlmm_tables(design), f"tables per cycle (design tables {design.tables}, a multiple of 5)"),
        ("R", design.rows, "rows per tile = bytes per weight beat"),
        ("K_MAX", k_max(cfg), "largest linear input"), ("N_MAX", k_max(cfg), "largest linear output"),
        ("MAX_TOK", min(design.prefill_token_block, max_t), "tokens sharing each weight tile"),
        ("STORAGE", storage, f"design weight_buffer {design.weight_buffer}"),
        ("NPORTS", stream_ports, "weight ports streaming each tile"),
        ("TP", design.token_lanes, "token lanes"), ("OL", design.out_lanes, "outputs per cycle"),
        ("DL", design.dsp_lanes, "DSP token lanes (the last of the token lanes)"),
        *_share_fields(design, stream_ports),
    ]


def _share_fields(design: DesignParams, ports: int,
                  unit: str = "units of a tile's byte columns") -> list[Field]:
    """SHARE0 .. SHARE{n-1}: each of the n weight ports' share (design.port_shares: of a TLMM tile's byte
    columns, of a cycle of LM-head rows; none listed: the equal shares of the config bases)."""
    if not design.port_shares:
        return []
    shares = shares_for(design, ports)
    return [(f"SHARE{i}", s, f"weight port {i}: {s} of {sum(shares)} {unit}") for i, s in enumerate(shares)]


def head_fields(cfg: ModelConfig, beat_bytes: int, top_k: int, head_ports: int, max_t: int,
                lanes: int, design: DesignParams | None = None) -> list[Field]:
    """The LM head's named configuration (named_config.h lm_head_config_base / lm_head_traits). MAX_TOK:
    the rows one OP_HEAD scores in one pass (token lanes: the design's head_lanes clamped to the block,
    runtime/layout.py head_rows(max_t, lanes)); SHARE0..: the design's port shares, rows of a cycle."""
    return [
        ("P", beat_bytes, "int8 MACs per cycle and port = bytes per weight beat"),
        ("HID_MAX", cfg.hidden_size, "hidden size"), ("V_MAX", cfg.vocab_size, "vocabulary"),
        ("MAX_TOK", head_rows(max_t, lanes), "rows per pass over the weights (design head_lanes, at most "
                                             "max_t)"),
        ("K_TOP", max(top_k, 1), "top-k"),
        ("NPORTS", head_ports, "weight ports streaming rows"),
        *(_share_fields(design, head_ports, "rows of every cycle of head rows") if design else []),
    ]


def top_fields(cfg: ModelConfig, design: DesignParams) -> list[Field]:
    """The top's named configuration (named_config.h top_config_base / top_traits)."""
    return [
        ("layer", CppType("edgellm_cfg::layer"), "the layer"),
        ("mm", CppType("edgellm_cfg::mm"), "the ternary linears' policy"),
        ("head", CppType("edgellm_cfg::head"), "the LM head"), ("n_layers", cfg.n_layers, "layers"),
        ("vocab", cfg.vocab_size, "vocabulary"), ("fetch_depth", design.fetch_depth, "words per weight FIFO"),
    ]


def lowbit_fields(cfg: ModelConfig, design: DesignParams, max_t: int) -> list[Field]:
    """The low-bit engine's named configuration (lowbit_policy.h lowbit_config_base / lowbit_traits): the
    LowbitConfig compiler/cost/lowbit.py search chose (DesignParams lowbit_*)."""
    return [
        ("rows", design.lowbit_rows, "R: output rows per tile"),
        ("max_k", model_max_k(cfg), "largest linear input, rounded up to a multiple of 256"),
        ("max_t", max_t, "tokens per engine pass (the layer's tokens per call)"),
        ("max_group", design.lowbit_max_group, "widest group of the model's linears (sizes the tables)"),
        ("token_lanes", design.lowbit_token_lanes, "TP: tokens sharing each code beat"),
        ("beat_bits", design.lowbit_beat_bits, f"BW: 128 bits from {design.lowbit_ports} weight port(s)"),
        ("decoders", design.lowbit_decoders, "RD: parameter records decoded per iteration"),
        ("scale_lanes", design.lowbit_scale_lanes, "SL: sub-scales each decoder decodes per iteration"),
        ("float_units", design.lowbit_float_units, "FU: float steps per token lane (as the formats need)"),
        ("max_sb", design.lowbit_max_sb, "MAXSB: groups a parameter record covers at most"),
        ("min_group", design.lowbit_min_group, "MING: narrowest group of the model's linears"),
    ] + gear_fields(design) + codec_fields(design.lowbit_codecs)


def gear_fields(design: DesignParams) -> list[Field]:
    """The weight gearbox (lowbit_gear.h; runtime/lowbit_gear.py gear_of over design.port_shares): none
    when the design builds none (lowbit_config_base's gear_cycle 0)."""
    g = design.gear
    if not g.active:
        return []
    shares = ":".join(map(str, design.port_shares))
    return [("gear_cycle", g.cycle, f"engine beats a gearbox cycle (ports' shares {shares})"),
            ("gear_k1", g.k1, "lane 1's words of the last beats of a cycle port 0 carries"),
            ("gear_k2", g.k2, "lane 2's words of the last beats of a cycle port 3 carries")]


def codec_fields(codecs: tuple[tuple[int, ...], ...]) -> list[Field]:
    """n_codecs and the constexpr codec(i, f) table of the parameter codecs the engine decodes (row i: one
    ParamCodec.as_words, design.lowbit_codecs); none when the design lists none (lowbit_config_base's
    n_codecs 0: any codec)."""
    if not codecs:
        return []
    rows = ", ".join("{" + ", ".join(map(str, c)) + "}" for c in codecs)
    table = (f"static constexpr int codec(int i, int f) {{ const int t[{len(codecs)}][{len(codecs[0])}] = "
             f"{{{rows}}}; return t[i][f]; }}")
    return [("n_codecs", len(codecs), "parameter codecs of the model's linears (design lowbit_codecs)"),
            ("codec", CppDecl(table), "codec i's word f (as_words: sb, db, scb, sc_off, .., mz, dper)")]
