"""Fixed-width bit packing: unsigned integers of ``bits`` bits each, least significant bit first.

The plain code for symbols without a prior: EnCodec's ``.ecdc`` files pack their codes this
way, and the ``encodec`` codec uses it for models whose prior has no counts.
"""
from __future__ import annotations

import numpy as np

from ..errors import BitstreamError

__all__ = ["pack_bits", "packed_size", "unpack_bits"]

_GROUP = 8 * 65536  # values packed at a time (a multiple of 8 values fills whole bytes)


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned ``values`` (each < 2**bits) packed ``bits`` each, least significant bit first, last byte zero-padded."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (v.min() < 0 or v.max() >= 1 << bits):
        raise ValueError(f"values must lie in [0, 2**{bits})")
    shifts = np.arange(bits, dtype=np.int64)
    out = []
    for start in range(0, v.size, _GROUP):
        bit_rows = ((v[start:start + _GROUP, None] >> shifts) & 1).astype(np.uint8)
        out.append(np.packbits(bit_rows.reshape(-1), bitorder="little").tobytes())
    return b"".join(out)


def packed_size(count: int, bits: int) -> int:
    """Bytes `pack_bits` writes for ``count`` values."""
    return -(-count * bits // 8)


def unpack_bits(data: bytes | memoryview, bits: int, count: int) -> np.ndarray:
    """``count`` values of ``bits`` bits from `pack_bits` output (int64); BitstreamError if ``data`` is short."""
    if len(data) < packed_size(count, bits):
        raise BitstreamError(f"{len(data)} bytes cannot hold {count} values of {bits} bits")
    weights = (1 << np.arange(bits, dtype=np.int64))
    raw = np.frombuffer(data, dtype=np.uint8, count=packed_size(count, bits))
    out = []
    for start in range(0, count, _GROUP):
        n = min(_GROUP, count - start)
        byte0 = start * bits // 8  # groups start on byte boundaries (multiples of 8 values)
        chunk = np.unpackbits(raw[byte0:byte0 + packed_size(n, bits)], bitorder="little")[:n * bits]
        out.append(chunk.reshape(n, bits).astype(np.int64) @ weights)
    return np.concatenate(out) if out else np.zeros(0, np.int64)
