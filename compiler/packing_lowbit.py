"""The low-bit weight stream (docs/hls.md "Low-bit linears (issue 17)"; C++ reader:
hw/include/edgellm/lowbit_mm.h). A GroupQuant becomes one sequence of beats of beat_bits (128 x the
weight ports (1, 2 or 4) the engine reads at once: port u carries bits 128u .. 128u+127 of every beat),
read once, in order:

    blocks i = (tile of R output rows, super-block k of SB groups), tiles outer (the last tile padded
    with zero rows; SB = 256 / G for K-quant-style codecs, else 1), each block two parts:
      P_i parameter block: the R rows' records of super-block k, one continuous bit stream, beat-padded
      C_i code block: for g in k's groups, ri in R / RL, b in 0 .. bits-1: one beat holding the plane
          words of rows ri*RL .. ri*RL + RL-1 (RL = beat_bits / G rows, or one row over G / beat_bits
          beats when G > beat_bits)
    in the order P_0, P_1, C_0, P_2, C_1, ..., P_{n-1}, C_{n-2}, C_{n-1}: the engine decodes P_{i+1}'s
    records while it computes C_i.

A plane word is G bits, bit i = bit b of codes[o, g*G + i], LSB first. A record holds, LSB first:
  d (DB = 16: binary16, 32: binary32), [dm (DMB bits, mode 0)], SB x sc (SCB bits), SB x mc (MCB bits),
  or, for formats with one scale per group (dper), SB x d, [SB x dm], SB x sc, SB x mc (SB = 256 / G);
  a field f of width n > 0 holds value f - off (sc_off / mc_off); width 0 is a constant (sc: 1, mc: mz).
  The hardware decodes, in f32:   s[g] = d * sc[g]
                                  m[g] = dm * mc[g]      (mode 0)   or   -(s[g] * mc[g])   (mode 1)
The packer chooses, per tensor, the narrowest ParamCodec that reproduces every scale and min bit for
bit (K-quant super-blocks: 16-bit d, dmin and 4/6/8-bit sub-scales; Q4_0/Q8_0/Q6_K-style symmetric
offsets m = -(s * constant); GPTQ zeros m = -(s * z)); binary32 per group is the fallback, so every
GroupQuant packs losslessly. `unpack` inverts it (round-trip tested).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.models.lowbit import GroupQuant
from edgellm.runtime.layout import LB_BEAT_BITS, LB_BEAT_WIDTHS, LB_MAX_GROUP, LB_MAX_RECORD_BITS

F32 = np.float32
BEAT_BITS = LB_BEAT_BITS  # one weight port's beat (the hardware facts: runtime/layout.py)
BEAT_BYTES = BEAT_BITS // 8
SUPER = LB_MAX_GROUP  # inputs per super-block when a tensor's scales share a 16-bit d (GGUF K-quants' QK_K)
FIELD_WIDTHS = (4, 6, 8)
MAX_RECORD_BITS = LB_MAX_RECORD_BITS  # a record's widest on-chip window (lowbit_format.h kLbMaxRecordBits)


def record_groups(group: int, n_groups: int, group_bits: int) -> int:
    """Groups one parameter record covers when every group has its own scale (ParamCodec.dper) and a
    group's parameters take group_bits: as many as fit a super-block (SUPER / group), halved until they
    fit MAX_RECORD_BITS and divide the row's n_groups (cost/lowbit.fit prices the same rule)."""
    k = SUPER // group
    while k > 1 and (k * group_bits > MAX_RECORD_BITS or n_groups % k):
        k //= 2
    return max(k, 1)


@dataclass(frozen=True)
class ParamCodec:
    """How one tensor's per-group scales and mins are stored (module docstring)."""

    sb: int = 1  # groups per super-block
    db: int = 32  # d: 16 (binary16) or 32 (binary32)
    scb: int = 0  # sc field bits (0: sc = 1)
    sc_off: int = 0
    mmode: int = 0  # 0: m = dm * mc; 1: m = -(s * mc)
    dmb: int = 32  # dm bits (mode 0): 16 or 32; 0 in mode 1
    mcb: int = 0  # mc field bits (0: mc = mz)
    mc_off: int = 0
    mz: int = 1
    dper: int = 0  # 1: d (and dm) per group, SB of them in a record (formats with one scale per group)

    @property
    def superblock_bits(self) -> int:
        """Param bits per record (one row's super-block)."""
        if self.dper:
            return self.sb * (self.db + self.dmb + self.scb + self.mcb)
        return self.db + self.dmb + self.sb * (self.scb + self.mcb)

    def as_words(self) -> tuple[int, ...]:
        """LowbitTensor fields (lowbit_format.h): sb, db, scb, sc_off, mmode, dmb, mcb, mc_off, mz, dper."""
        return (self.sb, self.db, self.scb, self.sc_off, self.mmode, self.dmb, self.mcb, self.mc_off, self.mz,
                self.dper)


@dataclass(frozen=True)
class LowbitImage:
    """A packed tensor: `data` (uint8, whole beats), blocks in stream order (module docstring)."""

    data: np.ndarray
    codec: ParamCodec
    bits: int
    group: int
    n_out: int
    n_in: int
    rows: int  # R: rows per tile
    param_block_bits: int  # one (tile, super-block) parameter block, beat-padded
    code_block_bits: int  # one (tile, super-block) code block
    beat_bits: int = BEAT_BITS  # the engine's beat: 128 x the weight ports it reads at once

    @property
    def lanes(self) -> int:
        """RL: rows whose plane words share one beat (beat_bits / G, at least 1)."""
        return max(1, self.beat_bits // self.group)

    @property
    def tiles(self) -> int:
        return -(-self.n_out // self.rows)

    @property
    def bits_per_weight(self) -> float:
        """Streamed bits per weight, padding included."""
        return 8.0 * self.data.size / (self.n_out * self.n_in)


def _f16_exact(v: np.ndarray) -> bool:
    return bool(np.array_equal(v.astype(np.float16).astype(F32).view(np.uint32), v.view(np.uint32)))


def _field_ranges(widths: tuple[int, ...] = FIELD_WIDTHS) -> list[tuple[int, int]]:
    """(width, offset) pairs, narrowest first: unsigned, two's-complement-like, and non-positive."""
    return [(n, off) for n in widths for off in (0, 1 << (n - 1), (1 << n) - 1)]


def _solve_scaled(v: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """v (n_sb, SB) f32 = f32(f16 d[k] * f32(i[k, j])) with small integers i, for the narrowest field:
    (width, offset, d (n_sb,) f32 holding binary16 values, i (n_sb, SB) int64), or None."""
    n_sb = v.shape[0]
    piv = v[np.arange(n_sb), np.abs(v).argmax(axis=1)].astype(np.float64)
    vb = v.view(np.uint32)
    for n, off in _field_ranges():
        lo, hi = -off, (1 << n) - 1 - off
        d = np.zeros(n_sb, F32)
        ints = np.zeros(v.shape, np.int64)
        solved = piv == 0.0  # all-zero super-block: d = 0, i = 0
        cands = sorted((c for c in range(lo, hi + 1) if c), key=lambda c: -abs(c))
        for c in cands:
            todo = ~solved
            if not todo.any():
                break
            dc = (piv[todo] / c).astype(np.float16).astype(F32)
            with np.errstate(divide="ignore", invalid="ignore"):
                ic = np.rint(v[todo].astype(np.float64) / dc[:, None].astype(np.float64))
            ok = np.isfinite(ic).all(axis=1) & (dc != 0)
            ic = np.where(np.isfinite(ic), ic, 0).astype(np.int64)
            ok &= ((ic >= lo) & (ic <= hi)).all(axis=1)
            back = (dc[:, None] * ic.astype(F32)).astype(F32)
            ok &= (back.view(np.uint32) == vb[todo]).all(axis=1)
            idx = np.flatnonzero(todo)[ok]
            d[idx], ints[idx] = dc[ok], ic[ok]
            solved[idx] = True
        if solved.all():
            return n, off, d, ints
    return None


def _solve_mul(s: np.ndarray, m: np.ndarray) -> tuple[int, int, int, np.ndarray] | None:
    """m = -f32(s * mc) with integer mc per group: (width, offset, mz, mc) (width 0: mc = mz for all).
    The negation gives GPTQ's and GGUF's -0.0 for a zero point 0 (m = -s * 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mc = np.rint(-m.astype(np.float64) / s.astype(np.float64))
    zero_s = s == 0
    if (m[zero_s] != 0).any():
        return None
    mc = np.where(zero_s | ~np.isfinite(mc), 0, mc).astype(np.int64)
    if zero_s.any():  # s = 0 groups take any mc with s * mc = +-0: use the most common one
        vals, counts = np.unique(mc[~zero_s], return_counts=True) if (~zero_s).any() else (np.zeros(1), [1])
        mc = np.where(zero_s, int(vals[int(np.argmax(counts))]), mc)
    back = -(s * mc.astype(F32)).astype(F32)
    if not (back.view(np.uint32) == m.view(np.uint32)).all():
        return None
    if (mc == mc.flat[0]).all() and abs(int(mc.flat[0])) < 1 << 15:
        return 0, 0, int(mc.flat[0]), mc
    for n, off in _field_ranges((4, 8)):
        if ((mc >= -off) & (mc <= (1 << n) - 1 - off)).all():
            return n, off, 0, mc
    return None


def _plain(v: np.ndarray) -> tuple[int, np.ndarray]:
    """One value per group as d itself: (bits, values)."""
    return (16 if _f16_exact(v) else 32), v.astype(F32)


def choose_codec(w: GroupQuant) -> tuple[ParamCodec, dict[str, np.ndarray]]:
    """The narrowest lossless ParamCodec and its per-super-block fields (d, dm, sc, mc as integers/f32)."""
    out, ng = w.scales.shape
    sbs = [1]
    if SUPER // w.group > 1 and ng % (SUPER // w.group) == 0:
        sbs.insert(0, SUPER // w.group)
    best: tuple[int, ParamCodec, dict[str, np.ndarray]] | None = None
    for sb in sbs:
        s = w.scales.reshape(-1, sb)
        m = w.mins.reshape(-1, sb)
        if sb == 1:
            db, d = _plain(s[:, 0])
            s_opt = (db, 0, 0, d, np.ones_like(s, np.int64))
        else:
            r = _solve_scaled(s)
            if r is None:
                continue
            s_opt = (16, r[0], r[1], r[2], r[3])
        db, scb, sc_off, d, sc = s_opt
        sdec = (d[:, None] * sc.astype(F32)).astype(F32)
        opts = []
        mul = _solve_mul(sdec, m)
        if mul is not None:
            mcb, mc_off, mz, mc = mul
            opts.append((ParamCodec(sb, db, scb, sc_off, 1, 0, mcb, mc_off, mz), np.zeros(len(d), F32), mc))
        if sb == 1:
            dmb, dm = _plain(m[:, 0])
            opts.append((ParamCodec(sb, db, scb, sc_off, 0, dmb, 0, 0, 1), dm, np.ones_like(m, np.int64)))
        else:
            rm = _solve_scaled(m)
            if rm is not None:
                opts.append((ParamCodec(sb, db, scb, sc_off, 0, 16, rm[0], rm[1], 0), rm[2], rm[3]))
        for codec, dm, mc in opts:
            cost = codec.superblock_bits * (ng // sb)
            if best is None or cost < best[0]:
                best = (cost, codec, {"d": d, "dm": dm, "sc": sc, "mc": mc})
    if best is None:  # unreachable: sb = 1 always has the plain option
        raise EdgeLLMError("low-bit packing: no parameter codec fits")
    codec, f = best[1], best[2]
    k = record_groups(w.group, ng, codec.superblock_bits)  # sb = 1: superblock_bits is one group's record
    if codec.sb == 1 and k > 1:  # one record per k groups (up to 256 inputs): k per-group d's
        codec = dataclasses.replace(codec, sb=k, dper=1)
        f = {n: a.reshape(-1, k) for n, a in f.items()}
    return codec, f


def _field_bits(vals: np.ndarray, width: int) -> np.ndarray:
    """(n, k) integers -> (n, k * width) bits, each field LSB first."""
    v = vals.astype(np.uint64)
    sh = np.arange(width, dtype=np.uint64)
    return ((v[..., None] >> sh) & np.uint64(1)).astype(np.uint8).reshape(vals.shape[0], -1)


def _float_bits(v: np.ndarray, width: int) -> np.ndarray:
    """(n,) or (n, k) floats -> (n, k * width) bits of their binary16 / binary32 patterns."""
    raw = v.astype(np.float16).view(np.uint16) if width == 16 else v.astype(F32).view(np.uint32)
    return _field_bits(raw.reshape(raw.shape[0], -1), width)


def check_rows(rows: int, beat_bits: int = BEAT_BITS) -> None:
    """R must hold whole beats of plane words at every group size: a multiple of beat_bits / 16."""
    if beat_bits not in LB_BEAT_WIDTHS:
        raise EdgeLLMError(f"low-bit packing: beat_bits must be one of {LB_BEAT_WIDTHS} ({LB_BEAT_BITS} a "
                           f"port), got {beat_bits}")
    if rows < 8 or rows % (beat_bits // 16):
        raise EdgeLLMError(f"low-bit packing: rows per tile must be a positive multiple of "
                           f"{beat_bits // 16}, got {rows}")


def pack_lowbit(w: GroupQuant, rows: int = 32, beat_bits: int = BEAT_BITS) -> LowbitImage:
    """GroupQuant -> its weight stream (module docstring) in beats of beat_bits."""
    check_rows(rows, beat_bits)
    out, n_in = w.shape
    ng, gs, bits = w.n_groups, w.group, w.bits
    codec, f = choose_codec(w)
    sb, nsbr = codec.sb, ng // codec.sb
    tiles = -(-out // rows)
    n_pad = tiles * rows
    cols = [_float_bits(f["d"], codec.db)]
    if codec.mmode == 0:
        cols.append(_float_bits(f["dm"], codec.dmb))
    if codec.scb:
        cols.append(_field_bits(f["sc"] + codec.sc_off, codec.scb))
    if codec.mcb:
        cols.append(_field_bits(f["mc"] + codec.mc_off, codec.mcb))
    rec = np.concatenate(cols, axis=1)  # (out * nsbr, record bits), row-major records
    rec = np.concatenate([rec, np.zeros(((n_pad - out) * nsbr, rec.shape[1]), np.uint8)])
    pblk = rec.reshape(tiles, rows, nsbr, -1).transpose(0, 2, 1, 3).reshape(tiles, nsbr, -1)
    pblk = np.concatenate([pblk, np.zeros((tiles, nsbr, (-pblk.shape[2]) % beat_bits), np.uint8)], axis=2)
    rl = max(1, beat_bits // gs)
    codes = np.concatenate([w.codes, np.zeros((n_pad - out, n_in), np.uint8)])
    planes = (codes.reshape(n_pad, ng, 1, gs) >> np.arange(bits, dtype=np.uint8)[None, None, :, None]) & 1
    cblk = planes.reshape(tiles, rows // rl, rl, nsbr, sb, bits, gs).transpose(0, 3, 4, 1, 5, 2, 6)
    cblk = cblk.reshape(tiles, nsbr, -1)
    pb, cb = pblk.reshape(tiles * nsbr, -1), cblk.reshape(tiles * nsbr, -1)
    # parameter block i + 1 precedes code block i (the engine decodes it while computing block i)
    stream = np.concatenate([pb[0], np.concatenate([pb[1:], cb[:-1]], axis=1).reshape(-1), cb[-1]])
    data = np.packbits(stream, bitorder="little")
    return LowbitImage(data, codec, bits, gs, out, n_in, rows, pblk.shape[2], cblk.shape[2], beat_bits)


def port_images(img: LowbitImage) -> list[np.ndarray]:
    """The image as the engine's weight ports hold it: beat_bits / 128 byte arrays, port u carrying
    128-bit column u of every engine beat (lowbit_source.h lb_read)."""
    ports = img.beat_bits // BEAT_BITS
    cols = img.data.reshape(-1, ports, BEAT_BYTES)
    return [np.ascontiguousarray(cols[:, u, :]).reshape(-1) for u in range(ports)]


def _take(bits: np.ndarray, pos: int, width: int) -> np.ndarray:
    """The width-bit field at bit `pos` of every record (rows of `bits`) as uint64."""
    return (bits[:, pos:pos + width].astype(np.uint64) << np.arange(width, dtype=np.uint64)).sum(axis=1)


def _float_of(raw: np.ndarray, width: int) -> np.ndarray:
    if width == 16:
        return raw.astype(np.uint16).view(np.float16).astype(F32)
    return raw.astype(np.uint32).view(F32)


def _blocks(img: LowbitImage) -> tuple[np.ndarray, np.ndarray]:
    """(param blocks (tiles, nsbr, bits), code blocks (tiles, nsbr, bits)) of an image, checked."""
    nsbr = img.n_in // img.group // img.codec.sb
    blk = img.param_block_bits + img.code_block_bits
    need = img.tiles * nsbr * blk
    if img.data.size * 8 != need:
        raise EdgeLLMError(f"low-bit image: {img.data.size * 8} bits, the shape and codec need {need}")
    pbits, n = img.param_block_bits, img.tiles * nsbr
    bits = np.unpackbits(img.data, bitorder="little")
    mid = bits[pbits:need - img.code_block_bits].reshape(n - 1, blk)
    pb = np.concatenate([bits[None, :pbits], mid[:, :pbits]])
    cb = np.concatenate([mid[:, pbits:], bits[None, need - img.code_block_bits:]])
    return pb.reshape(img.tiles, nsbr, -1), cb.reshape(img.tiles, nsbr, -1)


def decode_params(img: LowbitImage) -> tuple[np.ndarray, np.ndarray]:
    """(scales, mins) (out, in // group) f32, decoded exactly as the hardware does."""
    cd, r = img.codec, img.rows
    pb, _ = _blocks(img)
    tiles, nsbr = pb.shape[:2]
    rb = cd.superblock_bits
    recs = pb[:, :, :r * rb].reshape(tiles, nsbr, r, rb).transpose(0, 2, 1, 3).reshape(-1, rb)
    nd = cd.sb if cd.dper else 1  # d's (and dm's) per record
    d = np.stack([_float_of(_take(recs, j * cd.db, cd.db), cd.db) for j in range(nd)], axis=1)
    pos = nd * cd.db
    dm = np.zeros((len(recs), nd), F32)
    if cd.mmode == 0:
        dm = np.stack([_float_of(_take(recs, pos + j * cd.dmb, cd.dmb), cd.dmb) for j in range(nd)], axis=1)
        pos += nd * cd.dmb
    sc = np.ones((len(recs), cd.sb), np.int64)
    mc = np.full((len(recs), cd.sb), cd.mz, np.int64)
    for j in range(cd.sb):
        if cd.scb:
            sc[:, j] = _take(recs, pos + j * cd.scb, cd.scb).astype(np.int64) - cd.sc_off
        if cd.mcb:
            mc[:, j] = _take(recs, pos + cd.sb * cd.scb + j * cd.mcb, cd.mcb).astype(np.int64) - cd.mc_off
    s = (d * sc.astype(F32)).astype(F32)
    m = -(s * mc.astype(F32)) if cd.mmode == 1 else dm * mc.astype(F32)
    ng = img.n_in // img.group
    return (s.reshape(-1, ng)[:img.n_out], m.astype(F32).reshape(-1, ng)[:img.n_out])


def unpack_lowbit(img: LowbitImage) -> GroupQuant:
    """The GroupQuant an image holds (the inverse of pack_lowbit)."""
    _, cb = _blocks(img)
    tiles, nsbr = cb.shape[:2]
    gs, bits, r, rl = img.group, img.bits, img.rows, img.lanes
    planes = cb.reshape(tiles, nsbr, img.codec.sb, r // rl, bits, rl, gs).transpose(0, 3, 5, 1, 2, 4, 6)
    planes = planes.reshape(tiles * r, img.n_in // gs, bits, gs)[:img.n_out]
    codes = (planes << np.arange(bits, dtype=np.uint8)[None, None, :, None]).sum(axis=2, dtype=np.uint8)
    s, m = decode_params(img)
    return GroupQuant(codes.reshape(img.n_out, img.n_in), s, m, bits, gs)
