"""The low-bit part of the memory plan (compiler/memory_plan.py): each W{b}A8 linear packed as the engine
streams it (compiler/packing_lowbit.py pack_lowbit, split by port_images) and its record of the low-bit
table (interface.h LbWord, compiler/interface.py LB_FIELDS).

A linear's bytes in the weights region: port 0's image, then port 1's .., one after another, each padded
to IMAGE_ALIGN bytes (port_offsets; under the weight gearbox, compiler/packing_gear.py, port 0's and port
3's images are longer than ports 1's and 2's); LD_W_OFF points at port 0's image, LD_W_SCALE is 1.0f. Its
record (layer * 7 + i, i in interface.LINEAR_ORDER): LB_BITS, LB_GROUP, the ParamCodec words (as_words
order), LB_BIAS_OFF (the f32 bias's float offset in the params area, or LB_NO_BIAS), LB_PORT1_OFF ..
LB_PORT3_OFF (bytes from port 0's image to port u's; 0 past the engine's ports); signed fields two's
complement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.compiler.packing_gear import WORD, gear_ports, lane_images
from edgellm.compiler.packing_lowbit import LowbitImage, ParamCodec, pack_lowbit, port_images
from edgellm.errors import EdgeLLMError
from edgellm.models.weights import Layer, LowBitLinear
from edgellm.runtime.layout import LB_BEAT_BITS, LB_CODE_BITS, LB_GROUPS
from edgellm.runtime.lowbit_gear import NO_GEAR, Gear

IMAGE_ALIGN = 64  # bytes: every port image starts on a 64-byte boundary (the widest weight beat)
CODEC_FIELDS = ("sb", "db", "scb", "sc_off", "mmode", "dmb", "mcb", "mc_off", "mz", "dper")  # as_words order
BIASES = {"q": "q_bias", "k": "k_bias", "v": "v_bias"}  # the linears with an f32 bias (Qwen2's qkv_bias)


def _pad(n: int, a: int) -> int:
    return -(-n // a) * a


def port_offsets(sizes: list[int]) -> list[int]:
    """Each port image's byte offset from port 0's, the images one after another, each padded to
    IMAGE_ALIGN bytes; the last entry is the linear's whole span (len(sizes) + 1 entries)."""
    out = [0]
    for n in sizes:
        out.append(out[-1] + _pad(n, IMAGE_ALIGN))
    return out


def record(img: LowbitImage, offsets: list[int], bias_off: int | None) -> np.ndarray:
    """uint32[LB_WORDS]: one linear's low-bit table record (offsets: port_offsets of its port images)."""
    words = [img.bits, img.group, *img.codec.as_words()]
    r = np.zeros(itf.LB_WORDS, np.uint32)
    r[:len(words)] = [w & 0xFFFFFFFF for w in words]  # sc_off / mc_off may be negative: two's complement
    r[itf.LB["LB_BIAS_OFF"]] = itf.LB_NO_BIAS if bias_off is None else bias_off
    for name, off in zip(itf.LB_PORT_OFF, offsets[1:-1], strict=False):
        r[itf.LB[name]] = off
    return r


class LowbitEncoder:
    """plan_memory's encoder for a low-bit design: each call packs one LowBitLinear (R rows per tile, beats
    of beat_bits) into its port images (under `gear`: packing_gear.gear_ports) and keeps the image;
    layer_records turns a layer's seven into records. lowbit = True tells plan_memory to write LD_W_SCALE
    1.0f and the low-bit table."""

    lowbit = True

    def __init__(self, rows: int, beat_bits: int, gear: Gear = NO_GEAR) -> None:
        self.rows, self.beat_bits, self.gear = rows, beat_bits, gear
        self.pending: list[tuple[LowbitImage, list[int]]] = []
        self.packed_bytes = 0  # the images' bytes without padding (streamed per decode step)
        self.codecs: set[tuple[int, ...]] = set()  # every packed image's ParamCodec.as_words()

    def __call__(self, lin: object) -> np.ndarray:
        if not isinstance(lin, LowBitLinear):
            raise EdgeLLMError("a low-bit design packs low-bit linears only (frontend.check_linears)")
        img = pack_lowbit(lin.quant, rows=self.rows, beat_bits=self.beat_bits)
        ports = gear_ports(port_images(img), self.gear)
        offsets = port_offsets([p.size for p in ports])
        blob = np.zeros(offsets[-1], np.uint8)
        for off, p in zip(offsets, ports, strict=False):
            blob[off:off + p.size] = p
        self.pending.append((img, offsets))
        self.codecs.add(img.codec.as_words())
        self.packed_bytes += img.data.size
        return blob

    def layer_records(self, layer: Layer, add_floats: Callable[[np.ndarray], int]) -> np.ndarray:
        """(7, LB_WORDS) records of the layer whose seven linears were just packed (LINEAR_ORDER); the
        q/k/v biases go into the params area through add_floats (-> their float offset)."""
        if len(self.pending) != len(itf.LINEAR_ORDER):
            raise EdgeLLMError(f"low-bit plan: {len(self.pending)} linears packed for a layer of "
                               f"{len(itf.LINEAR_ORDER)}")
        rows = []
        for n, (img, offsets) in zip(itf.LINEAR_ORDER, self.pending, strict=True):
            b = getattr(layer, BIASES[n]) if n in BIASES else None
            rows.append(record(img, offsets, add_floats(b) if b is not None else None))
        self.pending = []
        return np.stack(rows)


def decode_record(rec: np.ndarray) -> dict[str, int]:
    """A record's fields by LB_FIELDS name (signed fields as ints)."""
    r = [int(x) for x in np.asarray(rec, np.uint32)]
    out = {n: r[itf.LB[n]] for n in itf.LB_FIELDS}
    for n in ("LB_SC_OFF", "LB_MC_OFF", "LB_MZ"):
        v = out[n]
        out[n] = v - (1 << 32) if v >= 1 << 31 else v
    return out


def codec_of(fields: dict[str, int]) -> ParamCodec:
    """The ParamCodec a record names (decode_record's fields)."""
    return ParamCodec(*(fields[f"LB_{n.upper()}"] for n in CODEC_FIELDS))


def image_bits(codec: ParamCodec, bits: int, group: int, n_out: int, n_in: int, rows: int,
               beat_bits: int) -> tuple[int, int, int]:
    """(parameter block bits, code block bits, whole image bytes) of a tensor packed with these fields, as
    pack_lowbit lays it out (blocks = tiles x super-blocks per row)."""
    pbits = -(-rows * codec.superblock_bits // beat_bits) * beat_bits
    cbits = codec.sb * bits * rows * group
    blocks = -(-n_out // rows) * (n_in // group // codec.sb)
    return pbits, cbits, blocks * (pbits + cbits) // 8


def image_from_buffer(buf: np.ndarray, off: int, fields: dict[str, int], n_out: int, n_in: int, rows: int,
                      beat_bits: int, gear: Gear = NO_GEAR) -> LowbitImage:
    """The LowbitImage whose port images lie in buf at off and off + LB_PORTu_OFF (the inverse of
    LowbitEncoder's layout under `gear`; EdgeLLMError when the record's fields or the buffer do not hold
    one)."""
    codec = codec_of(fields)
    bits, group = fields["LB_BITS"], fields["LB_GROUP"]
    if bits not in LB_CODE_BITS or group not in LB_GROUPS or n_in % (group * codec.sb):
        raise EdgeLLMError(f"low-bit record: bits {bits} (one of {', '.join(map(str, LB_CODE_BITS))}), "
                           f"group {group} (one of {', '.join(map(str, LB_GROUPS))}), sb {codec.sb} "
                           f"for {n_in} inputs")
    pbits, cbits, nbytes = image_bits(codec, bits, group, n_out, n_in, rows, beat_bits)
    ports = beat_bits // LB_BEAT_BITS
    nb = nbytes // ports // WORD
    sizes = [WORD * gear.port_beats(u, nb) for u in range(ports)]
    starts = [off, *(off + fields[n] for n in itf.LB_PORT_OFF[:ports - 1])]
    if any(a + n > buf.size for a, n in zip(starts, sizes, strict=True)):
        raise EdgeLLMError(f"low-bit record: port images of {', '.join(map(str, sizes))} bytes at "
                           f"{', '.join(map(str, starts))} leave the {buf.size}-byte image")
    lanes = lane_images([buf[a:a + n] for a, n in zip(starts, sizes, strict=True)], gear, nb)
    data = np.stack([x.reshape(-1, WORD) for x in lanes], 1).reshape(-1).copy()
    return LowbitImage(data, codec, bits, group, n_out, n_in, rows, pbits, cbits, beat_bits)
