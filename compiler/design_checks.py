"""Checks of design parameters too long to sit in DesignParams itself (compiler/design.py): the low-bit
engine's codec list (design.lowbit_codecs), the TLMM weight ports' column shares (design.port_shares)."""

from __future__ import annotations

from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.layout import LB_CODEC_WORDS, LB_MAX_CODECS, LB_MAX_SB, MAX_PORT_SHARES, MAX_STREAM_PORTS


def check_port_shares(shares: Any) -> None:
    """design.port_shares: [] (equal shares) or one positive integer per TLMM weight port (at most
    MAX_STREAM_PORTS) summing to at most MAX_PORT_SHARES (tlmm_config.h's static_assert); EdgeLLMError in
    one line otherwise."""
    if (not isinstance(shares, (list, tuple)) or len(shares) > MAX_STREAM_PORTS
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shares)
            or sum(shares) > MAX_PORT_SHARES):
        raise EdgeLLMError(f"design parameter port_shares must be [] (equal shares) or at most "
                           f"{MAX_STREAM_PORTS} positive integers summing to at most {MAX_PORT_SHARES}, got "
                           f"{_short(shares)}")


def check_lowbit_codecs(codecs: Any, max_sb: int = LB_MAX_SB) -> None:
    """design.lowbit_codecs: at most LB_MAX_CODECS rows of LB_CODEC_WORDS integers each (ParamCodec.as_words:
    sb, db, scb, sc_off, mmode, dmb, mcb, mc_off, mz, dper) holding what the engine decodes (program_check.h
    check_lb_record's rules: sb 1..max_sb, db 16 / 32, scb and mcb at most 8, mmode 0 / 1, dmb 16 / 32 in
    mode 0 and 0 in mode 1, dper 0 / 1; the offsets sc_off, mc_off and mz any 32-bit integer), each once;
    EdgeLLMError in one line otherwise."""
    what = f"design parameter lowbit_codecs must be a list of at most {LB_MAX_CODECS} codecs of " \
           f"{LB_CODEC_WORDS} integers (ParamCodec.as_words)"
    if not isinstance(codecs, (list, tuple)) or len(codecs) > LB_MAX_CODECS:
        raise EdgeLLMError(f"{what}, got {_short(codecs)}")
    for c in codecs:
        if (not isinstance(c, (list, tuple)) or len(c) != LB_CODEC_WORDS
                or any(isinstance(v, bool) or not isinstance(v, int) or not -2**31 <= v < 2**31 for v in c)):
            raise EdgeLLMError(f"{what}, got {_short(c)}")
        sb, db, scb, _, mmode, dmb, mcb, _, _, dper = c
        for bad, name in ((not 1 <= sb <= max_sb, f"sb 1..{max_sb}"), (db not in (16, 32), "db 16 or 32"),
                          (not 0 <= scb <= 8, "scb 0..8"), (mmode not in (0, 1), "mmode 0 or 1"),
                          (dmb not in ((16, 32) if mmode == 0 else (0,)), "dmb 16 or 32 (mmode 0), 0 (1)"),
                          (not 0 <= mcb <= 8, "mcb 0..8"), (dper not in (0, 1), "dper 0 or 1")):
            if bad:
                raise EdgeLLMError(f"design parameter lowbit_codecs: codec {list(c)} needs {name}")
    if len({tuple(c) for c in codecs}) != len(codecs):
        raise EdgeLLMError("design parameter lowbit_codecs lists a codec twice")


def _short(v: Any) -> str:
    """repr of v, at most 60 characters (one error line)."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."
