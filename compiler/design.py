"""Design parameters of the accelerator (docs/architecture.md); the byte sizes a design streams and
stores: compiler/design_bytes.py.

`DesignParams` is what the design-space exploration chooses and what the resource/performance
models, the HLS config header and the Vivado Tcl read. The weight encoding is ours by default
(5 trits per byte, each row padded to lcm(G, 5) trits so every activation group starts on a byte
boundary: 1.6 bits/weight before padding); `bits_per_weight` overrides it to model other designs
(TeLLMe streams about 2.06 bits/weight).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edgellm.compiler.design_checks import check_lowbit_codecs, check_port_shares
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import FETCH_BEATS as FETCH_BEATS  # the models' import point
from edgellm.runtime.layout import (
    HEAD_ROWS_MAX,
    LB_BEAT_BITS,
    LB_FLOAT_UNITS,
    LB_GROUPS,
    LB_MAX_SB,
    LB_MIN_GROUP,
    LB_PORTS,
    LB_SCALE_LANES,
    MAX_STREAM_PORTS,
    PORT_WIDTHS,
)
from edgellm.runtime.layout import head_rows as _head_rows
from edgellm.runtime.lowbit_gear import Gear, gear_of

BUFFER_KINDS = ("uram", "bram", "lutram")  # lutram: weight banks in distributed RAM, activations BRAM
FETCH_DEPTH_RANGE = (2, 65536)  # fetch_depth bounds (a power of two, or whole URAMs deep)
URAM_WORDS = 4096  # depth of one UltraRAM (4K x 72 bits): FIFO depths in multiples of it waste nothing
HEAD_LANES = (1, 2, 4, 8)  # the LM head's token lanes a design may build (at most layout.HEAD_ROWS_MAX)
TABLE_CHUNK = 5  # the generated TLMM reads G weight bytes = 5 trit groups a time: tables a multiple of it
MAX_CLOCK_MHZ = 1000.0  # a PL clock above this is a typo (--clock's bound, dse.check_clock_and_limits)
MAX_BITS_PER_WEIGHT = 32  # a weight stored wider than float32 is not a quantized model


@dataclass(frozen=True)
class DesignParams:
    """Parallelism, memory system and options of one accelerator configuration."""

    group_size: int = 3  # G: activations per lookup-table group (table of 3^G signed sums)
    tables: int = 25  # T: groups (tables) consumed per cycle (the generated engine: a multiple of 5)
    rows: int = 16  # R: output rows sharing the T tables per cycle
    clock_mhz: float = 250.0
    weight_ports: int = 4  # m_axi ports streaming weights
    port_width_bits: int = 128  # width of each weight m_axi port
    data_port_width_bits: int = 128  # the one m_axi port for activations, KV cache, descriptors
    bits_per_weight: float | None = None  # None: our exact 5-trits/byte packing for the model's shapes
    overlap: bool = True  # True: the generated engine (per-linear double buffering); False: TeLLMe-style
    lm_head_on_fabric: bool = True
    lm_head_bits: int = 8  # int8 LM head (Int8Head); 16 = fp16
    weight_buffer: str = "uram"  # "uram", "bram" or "lutram" (weight tile banks; see weight_buffer.h)
    act_buffer: str = "bram"  # "bram" or "uram": element-wise rows, attention q/o rows and K/V tiles
    weight_buffer_depth: int = 0  # TeLLMe-style buffer (overlap=False) only: entries per row bank
    prefill_token_block: int = 64  # prompt tokens that share one pass of weight streaming
    attn_q_block: int = 8  # prefill queries sharing one K/V tile
    attn_kv_block: int = 32  # keys per K/V tile
    attn_lanes: int = 16  # head-dim MAC lanes of each attention dot-product unit
    ew_lanes: int = 16  # RMSNorm sum-of-squares lanes (NumericsPlan.norm_lanes, the contract's order)
    ew_vec: int = 4  # elements per cycle of the fused element-wise stages (ew_traits VEC)
    ew_glu_vec: int = 0  # elements per cycle of the GLU act(g) * u pass (ew_traits GLU_VEC); 0: ew_vec
    token_lanes: int = 1  # TLMM tokens per step sharing every weight index (tlmm_traits TP; prefill)
    out_lanes: int = 4  # TLMM outputs dequantized and written per cycle (tlmm_traits OL)
    dsp_lanes: int = 0  # the last token lanes on packed DSP MAC chains, not tables (tlmm_traits DL)
    prefill_pipeline: bool = False  # prefill overlaps the TLMM and the vector engines (layer_traits pipe)
    # with the pipeline: calls of at least this many tokens run the two-half schedule, shorter ones the
    # sequential one (layer_traits pipe_min_t); the DSE sets it where the halves start to pay
    # (cost/pipe_threshold.py pipe_min_tokens_for: a verify call of 2 rows streams the weights once)
    pipe_min_tokens: int = 2
    # the sequential schedule's attention in two parts (layer_traits attn_split): over the K/V blocks
    # before the call beside the k and v linears, then the rest (layer_schedule.h); False: all of it after
    attn_split: bool = True
    kv_bytes: int = 2  # KV cache element size: 2 = f16 (NumericsPlan kv_dtype "f16"), 4 = f32
    decode_context: int = 128  # tokens in the KV cache at the projected decode step (as TeLLMe's)
    max_context: int = 0  # KV cache capacity; 0: the model's max_context
    ip_calls_per_token: int = 1  # host ap_start round trips per decode step (descriptor driven: 1)
    fetch_depth: int = 2048  # words (FETCH_BEATS beats of R bytes) per weight port's fetcher FIFO
    # each TLMM weight port's share of a tile's byte columns (tlmm_config.h SHARE0 .. SHARE3), one per
    # stream port; () = equal shares. The DSE sets them in proportion to the ports' rates (cost/ddr.py
    # rate_shares): a port on a DDR path two ports share carries fewer columns
    port_shares: tuple[int, ...] = ()
    # the LM head's token lanes (lm_head.h MAX_TOK): rows one OP_HEAD scores in one pass over the head's
    # weights (a speculative verify call's rows); built as min(head_lanes, max_t): head_rows(cfg, p)
    head_lanes: int = HEAD_ROWS_MAX
    # the matmul engine: "tlmm" (ternary) or "lowbit" (W{b}A8, lowbit_mm.h; its LowbitConfig below, chosen
    # by compiler/cost/lowbit.py search: rows R, token lanes TP, ports BW / 128, record decoders RD, MAXG,
    # scale lanes SL: sub-scales each decoder decodes per iteration, 16 = a whole record)
    matmul: str = "tlmm"
    lowbit_rows: int = 128
    lowbit_token_lanes: int = 1
    lowbit_ports: int = 4
    lowbit_decoders: int = 1
    lowbit_max_group: int = 256
    lowbit_scale_lanes: int = 16
    lowbit_float_units: int = 32  # FU: float steps per token lane (min(FU, BW / 16) built; 32: one per lane)
    lowbit_max_sb: int = LB_MAX_SB  # MAXSB: groups a parameter record covers at most (the s / m buffers)
    lowbit_min_group: int = LB_MIN_GROUP  # MING: the narrowest group (the engine builds groups MING .. MAXG)
    # the parameter codecs the engine decodes (packing_lowbit.ParamCodec.as_words rows, sorted): compile lists
    # the model's; () = not listed (an engine that decodes any codec by runtime shifts: C simulation only)
    lowbit_codecs: tuple[tuple[int, ...], ...] = ()
    # the weight gearbox (runtime/lowbit_gear.py, lowbit_gear.h): the fast ports carry part of the slow lanes
    # so the engine's streams take port_shares; compile sets it where the shares gear (gear_of)
    lowbit_gear: bool = False

    def __post_init__(self) -> None:
        self.validate()
        cs = self.lowbit_codecs
        if not isinstance(cs, tuple) or not all(isinstance(c, tuple) for c in cs):  # a manifest's JSON lists
            object.__setattr__(self, "lowbit_codecs", tuple(tuple(c) for c in cs))
        if not isinstance(self.port_shares, tuple):
            object.__setattr__(self, "port_shares", tuple(self.port_shares))

    def validate(self) -> None:
        """Raise EdgeLLMError on an impossible configuration."""
        self._validate_values()
        self._validate_vectors()
        self._validate_lowbit()
        self._validate_tlmm()

    def _validate_values(self) -> None:
        """Each field's type and range: the positive integers, the TLMM's tables, the head lanes, the group
        size, the clock, the zero-or-more sizes, the storage kinds, bits_per_weight."""
        for f in ("group_size", "tables", "rows", "weight_ports", "port_width_bits", "data_port_width_bits",
                  "lm_head_bits", "prefill_token_block", "attn_q_block", "attn_kv_block", "attn_lanes",
                  "ew_lanes", "ew_vec", "token_lanes", "out_lanes", "kv_bytes", "decode_context",
                  "ip_calls_per_token", "fetch_depth", "head_lanes"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise EdgeLLMError(f"design parameter {f} must be a positive integer, got {v!r}")
        if self.overlap and self.tables % TABLE_CHUNK:
            lo = max(TABLE_CHUNK, self.tables // TABLE_CHUNK * TABLE_CHUNK)
            raise EdgeLLMError(f"design parameter tables={self.tables}: the TLMM engine builds a multiple "
                               f"of {TABLE_CHUNK} tables (at least {TABLE_CHUNK}); use {lo} or "
                               f"{lo + TABLE_CHUNK}")
        if self.head_lanes not in HEAD_LANES or self.head_lanes > HEAD_ROWS_MAX:
            raise EdgeLLMError(f"design parameter head_lanes must be one of {HEAD_LANES} (the LM head's "
                               f"token lanes, at most {HEAD_ROWS_MAX}), got {self.head_lanes}")
        if not 1 <= self.group_size <= 5:
            raise EdgeLLMError(f"design parameter group_size must be 1..5, got {self.group_size}")
        c = self.clock_mhz
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= MAX_CLOCK_MHZ:
            raise EdgeLLMError(f"design parameter clock_mhz must be a number of MHz in "
                               f"(0, {MAX_CLOCK_MHZ:g}], got {c!r}")
        for f in ("max_context", "weight_buffer_depth"):  # 0: the model's context / no such buffer
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise EdgeLLMError(f"design parameter {f} must be an integer >= 0, got {v!r}")
        if self.weight_buffer not in BUFFER_KINDS:
            raise EdgeLLMError(f"design parameter weight_buffer must be one of {BUFFER_KINDS}, "
                               f"got {self.weight_buffer!r}")
        if self.act_buffer not in ("bram", "uram"):
            raise EdgeLLMError(f"design parameter act_buffer must be 'bram' or 'uram', "
                               f"got {self.act_buffer!r}")
        b = self.bits_per_weight
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float))
                              or not 0 < b <= MAX_BITS_PER_WEIGHT):
            raise EdgeLLMError(f"design parameter bits_per_weight must be null or a number in "
                               f"(0, {MAX_BITS_PER_WEIGHT}], got {b!r}")

    def _validate_vectors(self) -> None:
        """The vector engines' and fetchers' widths: powers of two (bounded), the fetch FIFO depth, the
        GLU pass's width."""
        for f, most in (("ew_lanes", 64), ("ew_vec", 64), ("attn_lanes", None), ("out_lanes", 64)):
            v = getattr(self, f)
            if v & (v - 1) or (most is not None and v > most):
                bound = f" <= {most}" if most is not None else ""
                raise EdgeLLMError(f"design parameter {f} must be a power of two{bound}, got {v}")
        lo, hi = FETCH_DEPTH_RANGE
        fd = self.fetch_depth
        if (fd & (fd - 1) and fd % URAM_WORDS) or not lo <= fd <= hi:
            raise EdgeLLMError(f"design parameter fetch_depth must be a power of two or a multiple of "
                               f"{URAM_WORDS} in {lo}..{hi}, got {fd}")
        gv = self.ew_glu_vec
        if isinstance(gv, bool) or not isinstance(gv, int) or gv < 0 or gv & (gv - 1) or gv > self.ew_vec:
            raise EdgeLLMError(f"design parameter ew_glu_vec must be 0 (= ew_vec) or a power of two <= "
                               f"ew_vec ({self.ew_vec}), got {gv!r}")

    def _validate_tlmm(self) -> None:
        """The ternary engine's fields against each other: the prefill pipeline flag, the DSP token lanes,
        the token block, the m_axi widths, the weight beat (8 x rows bits)."""
        if not isinstance(self.prefill_pipeline, bool):
            raise EdgeLLMError(f"design parameter prefill_pipeline must be true or false, "
                               f"got {self.prefill_pipeline!r}")
        if not isinstance(self.attn_split, bool):
            raise EdgeLLMError(f"design parameter attn_split must be true or false, got {self.attn_split!r}")
        pm = self.pipe_min_tokens
        if isinstance(pm, bool) or not isinstance(pm, int) or not 2 <= pm <= 1 << 16:
            raise EdgeLLMError(f"design parameter pipe_min_tokens must be an integer in 2..65536 (calls of "
                               f"at least that many tokens run the prefill pipeline's halves), got {pm!r}")
        dl = self.dsp_lanes
        if isinstance(dl, bool) or not isinstance(dl, int) or not 0 <= dl < self.token_lanes:
            raise EdgeLLMError(f"design parameter dsp_lanes must be an integer in 0..token_lanes-1 "
                               f"({self.token_lanes - 1}): token lane 0 (decode) stays a table lane, "
                               f"got {dl!r}")
        if self.prefill_token_block % self.token_lanes:
            raise EdgeLLMError(f"design parameter prefill_token_block ({self.prefill_token_block}) must be a "
                               f"multiple of token_lanes ({self.token_lanes})")
        for f in ("port_width_bits", "data_port_width_bits"):
            w = getattr(self, f)
            if w not in PORT_WIDTHS:
                raise EdgeLLMError(f"design parameter {f} must be one of {', '.join(map(str, PORT_WIDTHS))} "
                                   f"(an m_axi port's data bits), got {w}")
        check_port_shares(self.port_shares)
        if 8 * self.rows > PORT_WIDTHS[-1]:  # the TLMM's weight beat ap_uint<8R>: an m_axi element
            raise EdgeLLMError(f"design parameter rows must be at most {PORT_WIDTHS[-1] // 8}: a TLMM "
                               f"weight beat is 8 x rows bits, at most {PORT_WIDTHS[-1]} (AXI4's widest data "
                               f"bus and Vitis HLS's default ap_uint width), got {self.rows}")

    def _validate_lowbit(self) -> None:
        """The matmul engine's fields (cost/lowbit.py LowbitEngine's rules for the low-bit one)."""
        if self.matmul not in ("tlmm", "lowbit"):
            raise EdgeLLMError(f"design parameter matmul must be 'tlmm' or 'lowbit', got {self.matmul!r}")
        for f in ("lowbit_rows", "lowbit_token_lanes", "lowbit_ports", "lowbit_decoders", "lowbit_max_group",
                  "lowbit_scale_lanes", "lowbit_float_units", "lowbit_max_sb", "lowbit_min_group"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise EdgeLLMError(f"design parameter {f} must be a positive integer, got {v!r}")
        if self.lowbit_ports not in LB_PORTS:
            raise EdgeLLMError(f"design parameter lowbit_ports must be one of {LB_PORTS}, got "
                               f"{self.lowbit_ports}")
        bw, r = LB_BEAT_BITS * self.lowbit_ports, self.lowbit_rows
        if r % 32 or r % (bw // 16) or 4 * r < bw:
            raise EdgeLLMError(f"design parameter lowbit_rows must be a multiple of 32 and of {bw // 16}, at "
                               f"least {bw // 4} ({bw}-bit beats), got {r}")
        if self.lowbit_max_group not in LB_GROUPS:
            raise EdgeLLMError(f"design parameter lowbit_max_group must be one of {LB_GROUPS}, got "
                               f"{self.lowbit_max_group}")
        if not 1 <= self.lowbit_decoders <= 8:
            raise EdgeLLMError(f"design parameter lowbit_decoders must be 1..8, got {self.lowbit_decoders}")
        if self.lowbit_scale_lanes not in LB_SCALE_LANES:
            raise EdgeLLMError(f"design parameter lowbit_scale_lanes must be one of "
                               f"{', '.join(map(str, LB_SCALE_LANES))}, got {self.lowbit_scale_lanes}")
        if self.lowbit_float_units not in LB_FLOAT_UNITS:
            raise EdgeLLMError(f"design parameter lowbit_float_units must be one of "
                               f"{', '.join(map(str, LB_FLOAT_UNITS))}, got {self.lowbit_float_units}")
        if self.lowbit_max_sb > LB_MAX_SB:
            raise EdgeLLMError(f"design parameter lowbit_max_sb must be 1..{LB_MAX_SB}, got "
                               f"{self.lowbit_max_sb}")
        if self.lowbit_min_group not in LB_GROUPS or self.lowbit_min_group > self.lowbit_max_group:
            raise EdgeLLMError(f"design parameter lowbit_min_group must be one of {LB_GROUPS} and at most "
                               f"lowbit_max_group ({self.lowbit_max_group}), got {self.lowbit_min_group}")
        check_lowbit_codecs(self.lowbit_codecs, self.lowbit_max_sb)
        if not isinstance(self.lowbit_gear, bool):
            raise EdgeLLMError(f"design parameter lowbit_gear must be true or false, got "
                               f"{self.lowbit_gear!r}")
        if self.lowbit_gear and not gear_of(self.port_shares, self.lowbit_ports).active:
            raise EdgeLLMError(f"design parameter lowbit_gear: port_shares {list(self.port_shares)} over "
                               f"{self.lowbit_ports} low-bit ports give no gearbox (runtime/lowbit_gear.py)")
        if self.matmul == "lowbit" and self.prefill_token_block % self.lowbit_token_lanes:
            raise EdgeLLMError(f"design parameter prefill_token_block ({self.prefill_token_block}) must be a "
                               f"multiple of lowbit_token_lanes ({self.lowbit_token_lanes})")

    @property
    def lowbit_beat_bits(self) -> int:
        """The low-bit engine's beat: 128 bits from each of its lowbit_ports weight ports."""
        return LB_BEAT_BITS * self.lowbit_ports

    @property
    def gear(self) -> Gear:
        """The weight gearbox the design builds (Gear(): none)."""
        return gear_of(self.port_shares, self.lowbit_ports) if self.lowbit_gear else Gear()

    @property
    def glu_vec(self) -> int:
        """Elements per cycle of the element-wise GLU act(g) * u pass (ew_glu_vec, 0 meaning ew_vec)."""
        return self.ew_glu_vec or self.ew_vec

    @property
    def group_cols(self) -> int:
        """Input columns consumed per cycle (G * T)."""
        return self.group_size * self.tables

    @property
    def index_bits(self) -> int:
        """Bits of one on-chip group index (3^G states)."""
        return math.ceil(math.log2(3 ** self.group_size))

    def context(self, cfg: ModelConfig) -> int:
        """KV cache capacity in tokens."""
        return self.max_context or cfg.max_context

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for manifests and reports: JSON's own types (the codec rows as lists)."""
        d = dataclasses.asdict(self)
        d["lowbit_codecs"] = [list(c) for c in self.lowbit_codecs]
        d["port_shares"] = list(self.port_shares)
        return d

    def replace(self, **kw: Any) -> DesignParams:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **kw)


def tlmm_tables(p: DesignParams) -> int:
    """Tables per cycle the TLMM engine is built with (tlmm_traits T): p.tables rounded down to a multiple
    of 5 (a chunk of G weight bytes holds 5 groups), at least 5. For the generated engine (overlap) that
    is p.tables itself: validate() refuses any other; the serial description (overlap False) takes its T
    as given and rounds only where it is built like the engine (cost/calibration.py)."""
    return max(TABLE_CHUNK, p.tables // TABLE_CHUNK * TABLE_CHUNK)


def block_tokens(cfg: ModelConfig, p: DesignParams) -> int:
    """Tokens one accelerator call takes (the memory plan's and codegen's max_t, compiler/steps.py): the
    prefill block, at most the model's context."""
    return min(p.prefill_token_block, cfg.max_context)


def head_rows(cfg: ModelConfig, p: DesignParams) -> int:
    """The LM head's token lanes as built (its MAX_TOK, the logits / argmax regions' rows): p.head_lanes,
    clamped to the block the design's calls take (layout.head_rows(max_t, lanes); a 16-token block with
    8 head lanes builds 8, a 4-token block 4)."""
    return _head_rows(block_tokens(cfg, p), p.head_lanes)


def stream_ports(board: Any, p: DesignParams) -> int:
    """Weight ports the generated TLMM engine and LM head stream every tile / row block over concurrently
    (tlmm_traits NPORTS, LmHeadConfig NPORTS): p.weight_ports, at most MAX_STREAM_PORTS and at most the
    board's PL->DDR ports (board None or without port names: not limited by it)."""
    n = min(p.weight_ports, MAX_STREAM_PORTS)
    names = getattr(board, "hp_port_names", None) if board is not None else None
    return min(n, len(names)) if names else n


def shares_for(p: DesignParams, n: int) -> tuple[int, ...]:
    """The shares of n TLMM weight ports: p.port_shares, or equal shares when it lists none; EdgeLLMError
    when it lists another number of ports."""
    if not p.port_shares:
        return (1,) * n
    if len(p.port_shares) != n:
        raise EdgeLLMError(f"design parameter port_shares lists {len(p.port_shares)} shares for the TLMM's "
                           f"{n} weight ports")
    return p.port_shares


def head_beat_bytes(p: DesignParams, mm: str = "tlmm") -> int:
    """Bytes of one weight-port beat, which the LM head's rows stream in (LmHeadConfig P, codegen's and the
    head cost model's one source): a TLMM tile's byte column (R, the weight ports' m_axi element
    ap_uint<8R>), or the port width for pack2 and for a low-bit design (mm "lowbit": 16 bytes, the low-bit
    engine's 128-bit port beats)."""
    return p.rows if mm == "tlmm" else p.port_width_bits // 8


def dot_lanes(cfg: ModelConfig, attn_lanes: int) -> int:
    """The numerics plan's dot_lanes (the attention core's fp32 lanes A): attn_lanes, at most the head
    dimension rounded up to a power of two (a pure tree). Part of the bit-exact contract, so it lives
    here, not in the performance model."""
    return min(attn_lanes, 1 << (cfg.head_dim - 1).bit_length())
