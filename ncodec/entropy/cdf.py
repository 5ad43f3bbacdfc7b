"""Integer CDF tables: the probabilities the rANS coder works with.

A `CdfTables` holds T tables. Table t codes the integer symbols
``offsets[t] .. offsets[t] + sizes[t] - 1`` with frequencies out of ``2**precision``;
its extra last symbol (index ``sizes[t]``) is the *escape*: any value outside the
support is coded as the escape followed by the value in bypass bits, so nothing is
ever uncodable (the same idea as CompressAI's tail bypass). Every symbol, the escape
included, keeps a frequency >= 1.

Quantisation from float pmfs is deterministic: it uses only correctly rounded float64
operations and stable sorts, so encoder and decoder machines build identical tables.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import EntropyCodingError

DEFAULT_PRECISION = 16
ESCAPE_LENGTH_BITS = 6  # bypass bits that carry an escaped value's bit length


def quantize_pmf(pmf: np.ndarray, precision: int = DEFAULT_PRECISION) -> np.ndarray:
    """Integer frequencies >= 1 summing to ``2**precision`` for each row of ``pmf``.

    ``pmf`` is ``[T, K]`` float (rows need not be normalised; NaN or negative entries
    count as 0). Frequencies are ``max(1, floor(p * s))`` for the per-row scale ``s`` found
    by bisection, and the remainder goes to the symbols whose code length gains most.
    """
    p = np.array(pmf, dtype=np.float64, ndmin=2)
    if p.ndim != 2 or p.shape[1] < 1:
        raise EntropyCodingError(f"pmf must be [tables, symbols], got shape {p.shape}")
    total = 1 << precision
    t, k = p.shape
    if k > total:
        raise EntropyCodingError(f"{k} symbols cannot all get a frequency >= 1 at precision {precision}")
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    sums = p.sum(axis=1, keepdims=True)
    p = np.where(sums > 0, p / np.where(sums > 0, sums, 1.0), 1.0 / k)

    lo = np.full((t, 1), float(total - k))  # sum(max(1, floor(p*lo))) <= lo + k = total
    hi = np.full((t, 1), float(total + k))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        fits = np.maximum(1.0, np.floor(p * mid)).sum(axis=1, keepdims=True) <= total
        lo = np.where(fits, mid, lo)
        hi = np.where(fits, hi, mid)
    freq = np.maximum(1.0, np.floor(p * lo))
    remainder = total - freq.sum(axis=1)  # >= 0, exact integer in float64
    # Hand out the remainder one unit per symbol, largest gain first (p / (f + 1/2) ~ d bits).
    order = np.argsort(-(p / (freq + 0.5)), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(k)[None, :].repeat(t, axis=0), axis=1)
    rounds, extra = np.divmod(remainder, k)
    freq += rounds[:, None] + (ranks < extra[:, None])
    return freq.astype(np.int64)


def _int32(values: np.ndarray, what: str) -> np.ndarray:
    """A C-contiguous int32 array of integer values, refusing values that int32 cannot hold."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise EntropyCodingError(f"{what} must be an integer array, got {arr.dtype}")
    if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
        raise EntropyCodingError(f"{what} has values outside the int32 range")
    return np.ascontiguousarray(arr, dtype=np.int32)


@dataclass(frozen=True, eq=False)
class CdfTables:
    """T integer CDF tables padded to a common stride, ready for the rANS coder.

    ``cdf[t, :sizes[t] + 2]`` is non-decreasing from 0 to ``2**precision``; symbol ``s`` of
    table ``t`` (value ``s + offsets[t]``) owns ``[cdf[t, s], cdf[t, s + 1])``, and symbol
    ``sizes[t]`` is the escape.
    """

    cdf: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray
    precision: int = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        cdf = _int32(self.cdf, "cdf")
        sizes = _int32(self.sizes, "sizes").reshape(-1)
        offsets = _int32(self.offsets, "offsets").reshape(-1)
        if cdf.ndim != 2 or cdf.shape[0] != sizes.size or offsets.size != sizes.size or sizes.size == 0:
            raise EntropyCodingError("CdfTables needs cdf [T, stride], sizes [T] and offsets [T] with T >= 1")
        if not 1 <= self.precision <= 16:
            raise EntropyCodingError(f"precision must be in 1..16, got {self.precision}")
        if np.any(sizes < 1) or np.any(sizes + 2 > cdf.shape[1]):
            raise EntropyCodingError("every table needs 1 <= size <= stride - 2")
        rows = np.arange(sizes.size)
        if np.any(cdf[:, 0] != 0) or np.any(cdf[rows, sizes + 1] != (1 << self.precision)):
            raise EntropyCodingError(f"every CDF must run from 0 to 2**{self.precision}")
        steps = np.diff(cdf.astype(np.int64), axis=1)
        if np.any((steps < 1) & (np.arange(steps.shape[1])[None, :] <= sizes[:, None])):
            raise EntropyCodingError("every symbol and the escape need a frequency >= 1 (the CDF must increase)")
        object.__setattr__(self, "cdf", cdf)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "offsets", offsets)

    # ----------------------------------------------------------------- builders
    @classmethod
    def from_frequencies(cls, freq: np.ndarray, sizes: np.ndarray | None = None,
                         offsets: np.ndarray | int = 0, precision: int = DEFAULT_PRECISION) -> "CdfTables":
        """Tables from integer frequencies ``[T, K]`` whose column ``sizes[t]`` is the escape.

        Each row's first ``sizes[t] + 1`` entries must be >= 1 and sum to ``2**precision``.
        ``sizes`` defaults to ``K - 1`` (the last column is the escape).
        """
        freq = np.array(freq, dtype=np.int64, ndmin=2)
        t, k = freq.shape
        sizes = np.full(t, k - 1) if sizes is None else np.asarray(sizes, dtype=np.int64).reshape(-1)
        if sizes.size != t or np.any(sizes < 1) or np.any(sizes > k - 1):
            raise EntropyCodingError(f"sizes must give 1..{k - 1} in-support symbols for each of {t} tables")
        cols = np.arange(k)[None, :]
        freq = np.where(cols <= sizes[:, None], freq, 0)
        cdf = np.zeros((t, k + 1), dtype=np.int64)
        np.cumsum(freq, axis=1, out=cdf[:, 1:])
        # Pad each row past its escape with the total, so the stride has no gaps.
        cdf = np.where(np.arange(k + 1)[None, :] <= sizes[:, None] + 1, cdf, 1 << precision)
        if np.any(np.where(cols <= sizes[:, None], freq, 1) < 1):
            raise EntropyCodingError("every symbol and the escape need a frequency >= 1")
        return cls(cdf, sizes, np.broadcast_to(np.asarray(offsets), (t,)), precision)

    @classmethod
    def from_pmf(cls, pmf: np.ndarray, offsets: np.ndarray | int = 0, sizes: np.ndarray | None = None,
                 escape_mass: np.ndarray | float | None = None,
                 precision: int = DEFAULT_PRECISION) -> "CdfTables":
        """Quantise float pmfs ``[T, K]`` (support of table t: its first ``sizes[t]`` columns).

        ``escape_mass`` is the probability of values outside the support; by default it is
        whatever the row's in-support mass leaves out of 1 (at least the minimum frequency).
        """
        pmf = np.array(pmf, dtype=np.float64, ndmin=2)
        t, k = pmf.shape
        sizes = np.full(t, k) if sizes is None else np.asarray(sizes, dtype=np.int64).reshape(-1)
        if sizes.size != t or np.any(sizes < 1) or np.any(sizes > k):
            raise EntropyCodingError("sizes must give 1..K in-support symbols per table")
        cols = np.arange(k + 1)[None, :]
        body = np.where(cols[:, :k] < sizes[:, None], np.where(np.isfinite(pmf), np.maximum(pmf, 0.0), 0.0), 0.0)
        if escape_mass is None:
            escape = np.maximum(1.0 - body.sum(axis=1), 0.0)
        else:
            escape = np.broadcast_to(np.asarray(escape_mass, dtype=np.float64), (t,))
        full = np.zeros((t, k + 1))
        full[:, :k] = body
        full[np.arange(t), sizes] = escape
        # Quantise each row over its own sizes[t] + 1 symbols only (padding gets no mass).
        freq = np.zeros((t, k + 1), dtype=np.int64)
        for size in np.unique(sizes):
            rows = np.nonzero(sizes == size)[0]
            freq[rows, : size + 1] = quantize_pmf(full[rows, : size + 1], precision)
        return cls.from_frequencies(freq, sizes, offsets, precision)

    # ------------------------------------------------------------------- access
    @property
    def num_tables(self) -> int:
        return int(self.sizes.size)

    @property
    def stride(self) -> int:
        return int(self.cdf.shape[1])

    def frequencies(self) -> np.ndarray:
        """``[T, stride - 1]`` integer frequencies (0 past each table's escape)."""
        return np.diff(self.cdf.astype(np.int64), axis=1)

    def code_lengths(self, symbols: np.ndarray, table_index: np.ndarray) -> np.ndarray:
        """Exact bits each symbol costs in the coder (escape and its bypass bits included).

        Lane flushes are not part of it; `rans.encode` adds 12 bytes per lane and a 16-byte header.
        """
        sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
        idx = np.asarray(table_index, dtype=np.int64).reshape(-1)
        value = sym - self.offsets[idx]
        size = self.sizes[idx].astype(np.int64)
        inside = (value >= 0) & (value < size)
        s = np.where(inside, value, size)
        cdf = self.cdf
        freq = (cdf[idx, s + 1] - cdf[idx, s]).astype(np.float64)
        bits = self.precision - np.log2(freq)
        if not inside.all():
            raw = np.where(value < 0, 2 * (-(value + 1)) + 1, 2 * (value - size))
            nbits = np.where(raw > 0, np.floor(np.log2(np.maximum(raw, 1))) + 1, 0)
            extra = ESCAPE_LENGTH_BITS + np.maximum(nbits - 1, 0)
            bits = bits + np.where(inside, 0.0, extra)
        return bits

    def digest(self) -> str:
        """SHA-256 of the tables' content, to pin them in a stream header."""
        h = hashlib.sha256()
        h.update(np.int32(self.precision).tobytes())
        for a in (self.sizes, self.offsets, self.cdf):
            h.update(np.asarray(a.shape, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
        return h.hexdigest()

    @staticmethod
    def concat(tables: "list[CdfTables]") -> "tuple[CdfTables, np.ndarray]":
        """Stack several table sets into one; returns it and each set's first table index."""
        if not tables:
            raise EntropyCodingError("nothing to concatenate")
        precision = tables[0].precision
        if any(t.precision != precision for t in tables):
            raise EntropyCodingError("tables of different precision cannot share a stream")
        stride = max(t.stride for t in tables)
        total = 1 << precision
        cdf = np.concatenate([np.pad(t.cdf, ((0, 0), (0, stride - t.stride)), constant_values=total)
                              for t in tables])
        starts = np.cumsum([0] + [t.num_tables for t in tables[:-1]])
        return (CdfTables(cdf, np.concatenate([t.sizes for t in tables]),
                          np.concatenate([t.offsets for t in tables]), precision), starts)
