"""The host's half of program_check.h's low-bit record checks (check_lb_record): a low-bit design's
records in the table at HDR_LB_TABLE, checked against the engine's compiled configuration (bounds.Limits)
before the driver starts the accelerator. numpy only (runs on the board)."""

from __future__ import annotations

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.runtime.bounds import LB_PORT_BEAT, N_LIN, Limits, _Check
from edgellm.runtime.layout import (
    LB_BEAT_BITS,
    LB_CODE_BITS,
    LB_CODEC_WORDS,
    LB_GROUPS,
    LB_MAX_RECORD_BITS,
    lb_float_steps,
)


def lb_record_bits(f: dict[str, int]) -> int:
    """Bits of one parameter record of a low-bit record's codec (lowbit_format.h lb_record_bits)."""
    dbits = f["LB_DB"] + (f["LB_DMB"] if f["LB_MMODE"] == 0 else 0)
    per = f["LB_SCB"] + f["LB_MCB"]
    return f["LB_SB"] * (dbits + per) if f["LB_DPER"] else dbits + f["LB_SB"] * per


def lb_stream_beats(f: dict[str, int], n_out: int, k: int, rows: int, bw: int) -> int:
    """16-byte beats of one port's image of a low-bit tensor (lowbit_format.h lb_stream_beats)."""
    sb, g, rec = f["LB_SB"], f["LB_GROUP"], lb_record_bits(f)
    lanes, planes = (1 if g >= bw else bw // g), (g // bw if g > bw else 1)
    code = sb * rows // lanes * f["LB_BITS"] * planes
    return -(-n_out // rows) * (k // g // sb) * (-(-rows * rec // bw) + code)


def lb_codec_mismatch(words: list[int], codecs: tuple[tuple[int, ...], ...]) -> int | None:
    """None when a record's LB_CODEC_WORDS codec words (uint32, LB_SB .. LB_DPER) are one of the listed
    codecs; else the first word at which the record leaves every one of them (the longest common prefix:
    program_check.h lb_codec_mismatch)."""
    best = 0
    for c in codecs:
        n = 0
        while n < LB_CODEC_WORDS and words[n] == c[n] & 0xFFFFFFFF:
            n += 1
        if n == LB_CODEC_WORDS:
            return None
        best = max(best, n)
    return best


def check_lowbit(lb: np.ndarray, table: np.ndarray, hdr: np.ndarray, lim: Limits) -> None:
    """A low-bit design's records (uint32[n_layers * 7, LB_WORDS] at HDR_LB_TABLE; table: the checked
    layer table) as program_check.h check_lb_record checks them: the codec within what lowbit_mm decodes,
    the bias inside the params area, every port image inside the buffer on a 16-byte beat."""
    lb = np.asarray(lb, np.uint32).reshape(-1, itf.LB_WORDS)
    table = np.asarray(table, np.uint32).reshape(-1, itf.LD_WORDS)
    ck = _Check(lim.buf_bytes)
    wbase, pbase = int(hdr[itf.HDR["HDR_WEIGHTS"]]), int(hdr[itf.HDR["HDR_PARAMS"]])
    what = "weights.bin's low-bit table is refused (the accelerator would be given it)"
    for layer in range(lim.n_layers):
        for i in range(N_LIN):
            w = [int(x) for x in lb[layer * N_LIN + i]]
            f = {n: w[j] for n, j in itf.LB.items()}
            fld = lambda n, i=i, layer=layer: itf.status_field(  # noqa: E731
                itf.SW_LAYER, layer, itf.LD_WORDS + i * itf.LB_WORDS + itf.LB[n])
            n_out, k = lim.linear_shape(i)
            bits, g, sb = f["LB_BITS"], f["LB_GROUP"], f["LB_SB"]
            g_ok = g in LB_GROUPS and lim.lowbit_min_group <= g <= lim.lowbit_max_group and k % g == 0
            for bad, n in ((bits not in LB_CODE_BITS, "LB_BITS"), (not g_ok, "LB_GROUP"),
                           (not 1 <= sb <= lim.lowbit_max_sb or (g_ok and k % (g * sb)), "LB_SB"),
                           (f["LB_DB"] not in (16, 32), "LB_DB"), (f["LB_SCB"] > 8, "LB_SCB"),
                           (f["LB_MMODE"] > 1, "LB_MMODE"),
                           (f["LB_DMB"] not in ((16, 32) if f["LB_MMODE"] == 0 else (0,)), "LB_DMB"),
                           (f["LB_MCB"] > 8, "LB_MCB"), (f["LB_DPER"] > 1, "LB_DPER")):
                if bad:
                    ck.fail("ST_LIMIT", fld(n), f[n])
            if ck.code == itf.ST_OK and lim.lowbit_codecs:
                at = lb_codec_mismatch(w[itf.LB["LB_SB"]:itf.LB["LB_SB"] + LB_CODEC_WORDS], lim.lowbit_codecs)
                if at is not None:  # a codec the engine was not built for, at the word where it leaves them
                    ck.fail("ST_LIMIT", fld(itf.LB_FIELDS[itf.LB["LB_SB"] + at]), w[itf.LB["LB_SB"] + at])
                    what = (f"its parameter codec is none of the {len(lim.lowbit_codecs)} the engine "
                            "decodes (design.lowbit_codecs); weights.bin's low-bit table is refused")
            if ck.code == itf.ST_OK:
                if lb_record_bits(f) > LB_MAX_RECORD_BITS:
                    ck.fail("ST_LIMIT", fld("LB_SB"), sb)
                # the FU built: LowbitConfig FU = min(FU_, LANES), LANES = BW / MING rows a beat at most
                fu = min(lim.lowbit_float_units, max(1, lim.lowbit_beat_bits // lim.lowbit_min_group))
                if lb_float_steps(f["LB_BITS"], f["LB_GROUP"], lim.lowbit_beat_bits) > fu:
                    ck.fail("ST_LIMIT", fld("LB_BITS"), bits)  # its float steps outpace the engine's FU
                if f["LB_BIAS_OFF"] != itf.LB_NO_BIAS:
                    ck.span(fld("LB_BIAS_OFF"), f["LB_BIAS_OFF"], pbase + 4 * f["LB_BIAS_OFF"], 4 * n_out,
                            lim.data_beat)
            if ck.code == itf.ST_OK:
                nb = lb_stream_beats(f, n_out, k, lim.lowbit_rows, lim.lowbit_beat_bits)
                # port u's image: its words under the gearbox (lowbit_gear.h; nb each without one)
                img = [LB_PORT_BEAT * lim.lowbit_gear.port_beats(u, nb)
                       for u in range(lim.lowbit_beat_bits // LB_BEAT_BITS)]
                off = int(table[layer, itf.LD_W_OFF + i])
                ck.span(itf.status_field(itf.SW_LAYER, layer, itf.LD_W_OFF + i), off, wbase + off, img[0],
                        LB_PORT_BEAT)
                for u in range(1, len(img)):  # port u's image at LB_PORTu_OFF bytes from port 0's
                    name = itf.LB_PORT_OFF[u - 1]
                    ck.span(fld(name), f[name], wbase + off + f[name], img[u], LB_PORT_BEAT)
            if ck.code != itf.ST_OK:
                ck.raise_if_bad(what)
