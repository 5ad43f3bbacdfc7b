"""Lane-interleaved rANS: the entropy coder every ncodec codec ends in.

``encode(symbols, table_index, tables) -> bytes`` codes ``symbols[i]`` with table
``table_index[i]`` of a `CdfTables`; ``decode(data, table_index, tables)`` gives them back.
The work runs in native code (``_rans.c``); a GPU implementation must produce the very
same bytes. The format, version 1 (all integers little-endian):

Header (16 bytes)
    ``b"NR"``, u8 version (= 1), u8 precision P (1..16), u32 lanes L, u64 symbol count N.
Lane table (12 L bytes)
    u64 ``state[L]``: each lane's final encoder state, i.e. the decoder's initial state;
    then u32 ``words[L]``: how many 32-bit words each lane owns.
Payload
    lane 0's words, then lane 1's, ..., each lane's in the order its decoder reads them
    (u32 each). The payload is exactly ``4 * sum(words)`` bytes; nothing may follow.

Lanes
    Symbol i belongs to lane ``i % L``. Each lane is an independent rANS coder with a
    64-bit state kept in ``[2**32, 2**64)``, starting (encoder) and ending (decoder) at
    ``2**32``, and renormalising by whole 32-bit words: before coding a symbol of frequency
    f, the encoder emits ``x & 0xFFFFFFFF`` and shifts ``x >>= 32`` once if
    ``x >= f << (64 - P)``; then ``x = (x // f << P) + x % f + start``. The decoder takes
    ``slot = x & (2**P - 1)``, finds the symbol s with ``cdf[s] <= slot < cdf[s + 1]``, sets
    ``x = f * (x >> P) + slot - start`` and, if ``x < 2**32``, reads one word:
    ``x = x << 32 | word``. The encoder processes symbols from last to first. (A 64-bit
    state keeps the state/precision ratio at 2**16, so the coder itself loses < 0.01%;
    a 32-bit state at P = 16 loses about 0.1%.)
Escapes
    A value v with ``u = v - offset`` outside ``[0, size)`` is coded as the escape symbol
    (index ``size``) followed, in decode order, by bypass fields: a 6-bit length ``nb``
    (0..34) of ``raw``, then raw's ``nb - 1`` bits below its (implicit) top bit in chunks
    of 16 bits, lowest chunk first, the last chunk holding what is left, where
    ``raw = 2 * (-(u + 1)) + 1`` for ``u < 0`` and ``raw = 2 * (u - size)`` for ``u >= size``.
    A bypass field of b bits (1..16) is a symbol of frequency 1 at precision b: emit a word
    if ``x >= 2**(64 - b)``, then ``x = x << b | bits``; the decoder reads
    ``x & (2**b - 1)``, shifts right by b, and refills as above.

A lane costs 12 bytes (its state and word count); `default_lanes` (one lane per 65536
symbols) keeps that flush under 0.5% of the payload at 0.3 bit/symbol and more, and under
0.05% at the 4-6 bit/symbol of typical latents. Any other lane count decodes the same way;
GPU encoders use many more lanes for parallelism.

CUDA tensors go to the registered device coder (`ncodec.kernels`, the Triton kernels): `encode`
then defaults to one lane per 4096 symbols (``gpu_default_lanes``) and `decode` returns an
int32 CUDA tensor. With the same ``lanes`` both devices write the same bytes.
"""
from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import BitstreamError, EntropyCodingError
from . import _rans
from .cdf import CdfTables

FORMAT_VERSION: int = _rans.FORMAT_VERSION
HEADER_BYTES: int = _rans.HEADER_BYTES
LANE_BYTES: int = _rans.LANE_BYTES
MAX_LANES: int = _rans.MAX_LANES
SYMBOLS_PER_LANE = 1 << 16
_DECODE_SLICE = 1 << 20


def default_lanes(n: int) -> int:
    """Lanes for N symbols: one per 65536 symbols (12 flush bytes per >= 2.4 KB at 0.3 bit/symbol)."""
    return int(max(1, min(n // SYMBOLS_PER_LANE, MAX_LANES)))


def as_int32(values: Any, what: str) -> np.ndarray:
    """A flat C-contiguous int32 copy/view of an array, tensor or sequence, range-checked."""
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise EntropyCodingError(f"{what} must hold integers")
        if arr.dtype.kind not in "f" and arr.size:
            raise EntropyCodingError(f"{what} must be an integer array, got {arr.dtype}")
    if arr.dtype != np.int32:
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise EntropyCodingError(f"{what} has values outside the int32 range")
        arr = arr.astype(np.int32)
    return np.ascontiguousarray(arr.reshape(-1))


def _is_scalar(x: Any) -> bool:
    return np.isscalar(x) or (hasattr(x, "ndim") and x.ndim == 0)


def _checked_int(value: Any, what: str, lo: int, hi: int) -> int:
    """An exact integer in [lo, hi] from a Python/numpy/torch scalar, else EntropyCodingError."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        v = operator.index(value)
    except TypeError:
        raise EntropyCodingError(f"{what} must be an integer, got {value!r}") from None
    if not lo <= v <= hi:
        raise EntropyCodingError(f"{what} must be in {lo}..{hi}, got {v}")
    return v


def _index_array(table_index: Any, n: int) -> np.ndarray:
    if _is_scalar(table_index):
        return np.full(n, _checked_int(table_index, "table_index", 0, np.iinfo(np.int32).max), dtype=np.int32)
    idx = as_int32(table_index, "table_index")
    if idx.size != n:
        raise EntropyCodingError(f"table_index has {idx.size} entries for {n} symbols")
    return idx


class DeviceCoder(Protocol):
    """What codes CUDA inputs: the same stream format on a GPU (`ncodec.kernels.rans_device`)."""

    def encode(self, symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None) -> bytes: ...

    def decode(self, data: Any, table_index: Any, tables: CdfTables, count: int | None = None,
               device: Any = None) -> Any: ...


_device_coder: DeviceCoder | None = None


def register_device_coder(coder: DeviceCoder) -> None:
    """Hand CUDA inputs of `encode` / `decode` to ``coder`` (`ncodec.kernels` registers its own on import)."""
    global _device_coder
    _device_coder = coder


def _device_coder_for(what: str) -> DeviceCoder:
    if _device_coder is None:
        raise EntropyCodingError(f"cannot {what} CUDA tensors: no device coder is registered (import ncodec.kernels)")
    return _device_coder


def _on_cuda(*values: Any) -> bool:
    """Whether any of the values is a CUDA tensor (without importing torch)."""
    return any(getattr(v, "is_cuda", False) is True for v in values)


def encode(symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None) -> bytes:
    """Code ``symbols[i]`` with ``tables`` row ``table_index[i]`` (a scalar means one table for all).

    CUDA tensors are coded on their GPU (one lane per 4096 symbols unless ``lanes`` is given).
    """
    if _on_cuda(symbols, table_index):
        return _device_coder_for("encode").encode(symbols, table_index, tables, lanes)
    sym = as_int32(symbols, "symbols")
    idx = _index_array(table_index, sym.size)
    lanes = default_lanes(sym.size) if lanes is None else _checked_int(lanes, "lanes", 1, MAX_LANES)
    try:
        return _rans.encode(sym, idx, tables.cdf, tables.sizes, tables.offsets,
                            tables.stride, tables.precision, lanes)
    except ValueError as e:
        raise EntropyCodingError(str(e)) from None


@dataclass(frozen=True)
class StreamHeader:
    """The fixed header of a rANS stream."""

    version: int
    precision: int
    lanes: int
    n: int

    @property
    def overhead_bytes(self) -> int:
        """Header plus lane table: the bytes that carry no payload."""
        return HEADER_BYTES + LANE_BYTES * self.lanes


def read_header(data: bytes) -> StreamHeader:
    """Parse and sanity-check the 16-byte header without decoding."""
    if len(data) < HEADER_BYTES or data[:2] != b"NR":
        raise BitstreamError("not an ncodec rANS stream (bad magic or shorter than its 16-byte header)")
    version, precision, lanes, n = struct.unpack_from("<BBIQ", data, 2)
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported rANS stream version {version} (this build reads {FORMAT_VERSION})")
    return StreamHeader(version, precision, lanes, n)


def stream_length(data: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Byte length of the rANS stream starting at ``offset`` (to split streams laid end to end)."""
    view = memoryview(data)[offset:]
    header = read_header(bytes(view[:HEADER_BYTES]))
    counts_at = HEADER_BYTES + 8 * header.lanes  # u64 states, then u32 word counts
    if len(view) < counts_at + 4 * header.lanes:
        raise BitstreamError("truncated rANS stream: lane table is cut off")
    words = np.frombuffer(view, dtype="<u4", count=header.lanes, offset=counts_at)
    end = counts_at + 4 * header.lanes + 4 * int(words.sum(dtype=np.int64))
    if end > len(view):
        raise BitstreamError("truncated rANS stream: payload is cut off")
    return end


class Decoder:
    """Incremental decoder: take the symbols of one stream a slice at a time, in order.

    Codecs with backward-adaptive contexts decode a row, compute the next row's table
    indexes from it, and go on; `finish` then checks the stream was consumed exactly.
    """

    def __init__(self, data: bytes | bytearray | memoryview, tables: CdfTables):
        header = read_header(bytes(data[:HEADER_BYTES]))
        if header.precision != tables.precision:
            raise BitstreamError(f"stream was coded at precision {header.precision}, tables have {tables.precision}")
        try:
            self._dec = _rans.Decoder(data, tables.cdf, tables.sizes, tables.offsets, tables.stride)
        except ValueError as e:
            raise BitstreamError(str(e)) from None
        self.header = header

    @property
    def remaining(self) -> int:
        """Symbols not decoded yet."""
        return self._dec.n - self._dec.position

    def decode(self, table_index: Any, count: int | None = None) -> np.ndarray:
        """The next symbols, one per entry of ``table_index`` (or ``count`` with a scalar index)."""
        if _is_scalar(table_index):
            if count is None:
                raise EntropyCodingError("a scalar table_index needs a count")
            count = _checked_int(count, "count", 0, np.iinfo(np.int64).max)
            if count > self.remaining:
                raise BitstreamError(f"asked for {count} symbols, the stream has {self.remaining} left")
            idx = np.full(int(count), _checked_int(table_index, "table_index", 0, np.iinfo(np.int32).max), np.int32)
        else:
            idx = as_int32(table_index, "table_index")
        if idx.size > self.remaining:
            raise BitstreamError(f"asked for {idx.size} symbols, the stream has {self.remaining} left")
        out = np.empty(idx.size, dtype=np.int32)
        try:
            self._dec.decode(idx, out)
        except ValueError as e:
            raise BitstreamError(str(e)) from None
        return out

    def finish(self) -> None:
        """Raise `BitstreamError` unless every symbol and word was used and every lane closed cleanly."""
        try:
            self._dec.finish()
        except ValueError as e:
            raise BitstreamError(str(e)) from None


def max_symbols(nbytes: int, precision: int) -> int:
    """Most symbols a valid stream of ``nbytes`` can hold.

    Each decoding step shrinks a lane's state by at least ``x >> precision`` (a symbol's
    frequency is at most ``2**precision - 1``), i.e. by the factor ``1 - 2**-precision``
    (plus ``2**-32`` of rounding), and states only grow by the 32-bit words the stream holds;
    so a header announcing more symbols than this is corrupt. This bounds what a decoder
    allocates for a stream it was not told the length of.
    """
    min_bits = -math.log2(1.0 - 2.0 ** -precision + 2.0 ** -32)
    return int(8 * nbytes / min_bits) + 1


def decode(data: bytes | bytearray | memoryview | Any, table_index: Any, tables: CdfTables,
           count: int | None = None, device: Any = None) -> Any:
    """Decode a whole stream; ``table_index`` as given to `encode` (``count`` with a scalar index).

    With a CUDA ``device``, a CUDA table_index or a stream in a CUDA uint8 tensor it decodes on
    the GPU and returns an int32 CUDA tensor; otherwise an int32 numpy array.
    """
    if _on_cuda(data, table_index) or (device is not None and str(device).startswith("cuda")):
        return _device_coder_for("decode").decode(data, table_index, tables, count, device=device)
    dec = Decoder(data, tables)
    n = dec.header.n
    if count is not None and count != n:
        raise BitstreamError(f"stream holds {n} symbols, {count} were expected")
    if _is_scalar(table_index):
        if n > max_symbols(len(data), dec.header.precision):
            raise BitstreamError(f"corrupt rANS stream: {len(data)} bytes cannot hold the {n} symbols it announces")
        # in slices, so a corrupt stream fails before its announced length is allocated
        parts = [dec.decode(table_index, min(_DECODE_SLICE, dec.remaining)) for _ in range(-(-n // _DECODE_SLICE))]
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    else:
        idx = as_int32(table_index, "table_index")
        if idx.size != n:
            raise BitstreamError(f"stream holds {n} symbols, {idx.size} table indexes were given")
        out = dec.decode(idx)
    dec.finish()
    return out
