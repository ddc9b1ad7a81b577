"""Dense ternary weight encoding for DDR (docs/weight_format.md; C++ twin: hw/include/edgellm/weight_codec.h).

Five trits per byte, base 3, least significant digit first: byte = sum_i (t[5b+i] + 1) * 3^i for
i = 0..4 (codes 0, 1, 2 = -1, 0, +1; values 243..255 never occur). A row of K weights takes
NB = ceil(K/5) bytes (the row tail is padded with zero trits). Rows are grouped in tiles of R rows
(the last tile may hold fewer, R_t = N - t*R); a tile is stored byte-column major, so the R_t bytes
of one byte column (5 columns of every row in the tile) are contiguous and a full tile's byte
column is one R-byte AXI beat:

    offset(n, b) = t*R*NB + b*R_t + r        with t = n // R, r = n % R

The image is zero-padded at its end to a multiple of `align` bytes (default R) so the kernel may
read whole beats from the tail tile. Nothing depends on the kernel's group size G.
"""

from __future__ import annotations

import numpy as np

from edgellm.errors import EdgeLLMError

TRITS_PER_BYTE = 5
ZERO_BYTE = 121  # five zero trits: codes 1,1,1,1,1 -> 1+3+9+27+81
_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)
# byte -> its five trit values (bytes >= 243 are invalid and decode as in weight_codec.h)
_DECODE = np.array([[(b // 3 ** i) % 3 - 1 for i in range(4)] + [min(b // 81, 2) - 1] for b in range(256)],
                   dtype=np.int8)


def row_bytes(k: int) -> int:
    """Bytes per encoded row of k weights: ceil(k / 5)."""
    return -(-k // TRITS_PER_BYTE)


def packed_size(n: int, k: int, rows_per_tile: int, align: int | None = None) -> int:
    """Exact byte size of the encoded (n, k) matrix including the end-of-image alignment."""
    _check_dims(n, k, rows_per_tile)
    a = rows_per_tile if align is None else align
    if a < 1 or a % rows_per_tile:
        raise EdgeLLMError(f"align={a} must be a positive multiple of rows_per_tile={rows_per_tile}")
    raw = n * row_bytes(k)
    return -(-raw // a) * a


def bits_per_weight(n: int, k: int, rows_per_tile: int, align: int | None = None) -> float:
    """Exact DDR bits per weight of an encoded (n, k) matrix (row tails and alignment included)."""
    return 8.0 * packed_size(n, k, rows_per_tile, align) / (n * k)


def pack_ternary(w: np.ndarray, rows_per_tile: int, align: int | None = None) -> np.ndarray:
    """(N, K) ternary int8 -> 1-D uint8 DDR image in the tiled 5-trits/byte layout."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise EdgeLLMError(f"ternary weight must be 2-D, got shape {w.shape}")
    n, k = w.shape
    size = packed_size(n, k, rows_per_tile, align)
    if w.size and (w.min() < -1 or w.max() > 1):
        raise EdgeLLMError("ternary weight has values outside {-1, 0, 1}")
    nb = row_bytes(k)
    codes = np.ones((n, nb * TRITS_PER_BYTE), dtype=np.uint16)  # (N, NB*5), pad = code 1 (zero)
    codes[:, :k] = w.astype(np.int16) + 1
    rows = (codes.reshape(n, nb, TRITS_PER_BYTE) * _POW3).sum(axis=2).astype(np.uint8)  # (N, NB)
    r = rows_per_tile
    n_full = n // r
    parts = [rows[:n_full * r].reshape(n_full, r, nb).transpose(0, 2, 1).reshape(-1),  # [t][b][r]
             rows[n_full * r:].T.reshape(-1)]  # tail tile [b][r_t]
    out = np.zeros(size, dtype=np.uint8)
    body = np.concatenate(parts)
    out[:body.size] = body
    return out


def unpack_ternary(buf: np.ndarray, n: int, k: int, rows_per_tile: int) -> np.ndarray:
    """Inverse of pack_ternary: DDR image -> (N, K) int8 in {-1, 0, 1}."""
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    _check_dims(n, k, rows_per_tile)
    nb = row_bytes(k)
    if buf.size < n * nb:
        raise EdgeLLMError(f"weight image of {buf.size} bytes is shorter than {n * nb} for ({n}, {k})")
    r = rows_per_tile
    n_full = n // r
    full = buf[:n_full * r * nb].reshape(n_full, nb, r).transpose(0, 2, 1).reshape(n_full * r, nb)
    tail = buf[n_full * r * nb:n * nb].reshape(nb, n - n_full * r).T
    rows = np.concatenate([full, tail], axis=0)  # (N, NB) bytes
    return _DECODE[rows].reshape(n, nb * TRITS_PER_BYTE)[:, :k].copy()


def port_columns(nb: int, shares: tuple[int, ...]) -> list[tuple[int, int]]:
    """Each weight port's run [c0, c1) of a tile's nb byte columns (weight_bank_fill.h port_cols): in
    units of ceil(nb / sum(shares)) columns, port p takes shares[p] units after the ports before it, cut
    at nb. Equal shares: ceil(nb / ports) columns a port."""
    if not shares or min(shares) < 1:
        raise EdgeLLMError(f"port shares {shares} must be positive")
    unit = -(-nb // sum(shares))
    out, start = [], 0
    for s in shares:
        out.append((min(start * unit, nb), min((start + s) * unit, nb)))
        start += s
    return out


def head_block_rows(vocab: int, shares: tuple[int, ...]) -> np.ndarray:
    """The LM-head row each weight port reads in each block (lm_head_config.h lm_block_row), -1 where it
    reads none: blocks in cycles of max(shares) covering sum(shares) rows, in round r of a cycle the ports
    with shares[p] > r taking one row each, consecutive rows in port order; rows >= vocab are not read.
    Equal shares (1, ..., 1): block b, port p reads row b * ports + p. Shape (blocks, ports)."""
    if not shares or min(shares) < 1:
        raise EdgeLLMError(f"port shares {shares} must be positive")
    rounds, total = max(shares), sum(shares)
    cycles = -(-vocab // total)
    out = np.full((cycles * rounds, len(shares)), -1, np.int64)
    v = 0
    for b in range(cycles * rounds):
        for p, s in enumerate(shares):
            if b % rounds < s:
                out[b, p] = v if v < vocab else -1
                v += 1
    return out


def port_slices(n: int, k: int, rows_per_tile: int, nports: int,
                shares: tuple[int, ...] | None = None) -> list[list[tuple[int, int]]]:
    """Byte ranges [start, end) of the image each weight port of the TLMM engine reads (weight_buffer.h).

    The byte columns of every tile are split into `nports` contiguous runs (port_columns: shares, equal
    by default); port p reads its columns [c0, c1) of each tile: one contiguous range per tile (rows_t
    bytes per column; the tail tile too). Result: [port][tile] ranges (start == end: nothing). This is
    how the kernel splits the reads, not part of the format (the image is the same whatever the ports
    and their shares).
    """
    _check_dims(n, k, rows_per_tile)
    if nports < 1:
        raise EdgeLLMError(f"nports={nports} must be positive")
    shares = (1,) * nports if shares is None else tuple(shares)
    if len(shares) != nports:
        raise EdgeLLMError(f"{len(shares)} port shares for {nports} ports")
    nb, r = row_bytes(k), rows_per_tile
    cols = port_columns(nb, shares)
    out: list[list[tuple[int, int]]] = [[] for _ in range(nports)]
    for t in range(-(-n // r)):
        rows_t = min(r, n - t * r)
        for p, (c0, c1) in enumerate(cols):
            out[p].append((t * r * nb + c0 * rows_t, t * r * nb + c1 * rows_t))
    return out


def _check_dims(n: int, k: int, rows_per_tile: int) -> None:
    if n < 1 or k < 1:
        raise EdgeLLMError(f"ternary matrix shape ({n}, {k}) must be positive")
    if rows_per_tile < 1:
        raise EdgeLLMError(f"rows_per_tile must be positive, got {rows_per_tile}")
