"""Forward-adaptive coding of integer prediction residuals (lossless audio and images).

A residual block is cut into 2**order equal partitions. Each partition gets a shift k and
a two-sided geometric ("discrete Laplace") table for ``q = r >> k``; the k low bits follow
as uniform symbols. The encoder picks the partitioning and the parameters from running
sums in closed form; the decoder reads them from the stream, so both use the same tables.
The table bank is built from float64 with correctly rounded operations only (products,
square roots), so it is identical on every machine; `bank_digest` pins it in streams.

Besides the discrete Laplace tables the bank has "shaped" ones for k = 0: the same mean, but
the probability of zero scaled by one of `SHAPE_FACTORS` (the rest geometric). Context-coded
wavelet residuals have flatter tops than a Laplace law at means of one to a few (noise plus
rounding); a shape per context saves about 1% there.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import BitstreamError
from .cdf import CdfTables, quantize_pmf
from .rans import Decoder

MAX_SHIFT = 24          # k in 0..24: residuals up to about 2**30
SHIFT_BITS = 5
MIN_MEAN_LOG2 = -12     # quietest table: mean 2**-12 (digital silence costs ~1e-4 bit/sample)
MEAN_STEPS = 73         # table means 2**(-12 + a/4), a = 0..72, up to 64
MEAN_BITS = 7
ORDER_BITS = 4          # partition order 0..15
UNIFORM_MAX_BITS = 12   # raw fields wider than this are split
_VARIANTS = 4           # bin width 1, 2, 4, >= 8 (k = 0, 1, 2, >= 3)
_TAIL = 2.0 ** -24      # probability left to the escape beyond the support
_MAX_SUPPORT = 1 << 13
SHAPE_FACTORS = (0.5, 0.6, 0.68, 0.76, 0.84, 0.92, 1.1)  # P(0) / the Laplace law's P(0), shapes 1..7
SHAPES = 1 + len(SHAPE_FACTORS)                          # shape 0: the discrete Laplace law itself


def _table_mean(a: np.ndarray | int) -> np.ndarray:
    return np.ldexp(1.0, MIN_MEAN_LOG2) * np.power(2.0, np.asarray(a) / 4.0)


def _laplace_theta(mean: np.ndarray | float) -> np.ndarray:
    """theta of the discrete Laplace law P(r) ~ theta**|r| whose mean |r| is ``mean``
    (correctly rounded operations only: the bank is built from it)."""
    mean = np.asarray(mean, dtype=np.float64)
    return (np.sqrt(1.0 + mean * mean) - 1.0) / mean


def _geometric_pmf(variant: int, mean: float) -> tuple[np.ndarray, int]:
    """pmf over the support and its first value, for one table of the bank."""
    if variant == 0:  # r itself: P(r) ~ theta**|r|, mean |r| = 2 theta / (1 - theta**2)
        theta = float(_laplace_theta(mean))
        alpha = theta
    else:             # q = floor(r / w): P(q >= 0) ~ alpha**q, P(q < 0) ~ theta * alpha**(-q-1)
        alpha = mean / (1.0 + mean)
        theta = alpha
        for _ in range(variant):  # theta = alpha ** (1 / w), w = 2**variant
            theta = np.sqrt(theta)
    support = 1
    tail = alpha
    while tail > _TAIL and support < _MAX_SUPPORT:
        tail *= alpha
        support += 1
    powers = np.cumprod(np.concatenate([[1.0], np.full(support, alpha)]))  # alpha**0 .. alpha**support
    if variant == 0:
        pmf = np.concatenate([powers[:0:-1], powers])  # r = -support .. support
        return pmf, -support
    pmf = np.concatenate([theta * powers[support - 1::-1], powers[:support]])  # q = -support .. support-1
    return pmf, -support


def _zero_modified(mean: np.ndarray | float, factor: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(P(0), ratio of the geometric law of |r| - 1 given r != 0) of the shaped table for mean |r|
    ``mean`` whose P(0) is ``factor`` x the discrete Laplace law's. P(0) stays below
    1 - min(mean, 1) / 2, so quiet tables keep a short support (nonzero values of mean <= 2)."""
    mean = np.asarray(mean, dtype=np.float64)
    theta = _laplace_theta(mean)
    zero = np.minimum(factor * ((1.0 - theta) / (1.0 + theta)), 1.0 - 0.5 * np.minimum(mean, 1.0))
    rest = np.maximum(mean / (1.0 - zero) - 1.0, 1.0 / 64.0)   # mean of |r| - 1 given r != 0
    return zero, rest / (1.0 + rest)


def _shaped_pmf(mean: float, factor: float) -> tuple[np.ndarray, int]:
    """pmf over the support and its first value, for a zero-modified table: P(0) = zero,
    P(+-m) = (1 - zero) / 2 (1 - ratio) ratio**(m - 1)."""
    zero, ratio = (float(v) for v in _zero_modified(mean, factor))
    support = 1
    tail = ratio
    while tail > _TAIL and support < _MAX_SUPPORT:
        tail *= ratio
        support += 1
    side = 0.5 * (1.0 - zero) * (1.0 - ratio) * np.cumprod(np.concatenate([[1.0], np.full(support - 1, ratio)]))
    return np.concatenate([side[::-1], [zero], side]), -support


def _tables(pmfs: list[tuple[np.ndarray, int]]) -> CdfTables:
    width = max(p.size for p, _ in pmfs)
    return CdfTables.from_pmf(np.stack([np.pad(p, (0, width - p.size)) for p, _ in pmfs]),
                              offsets=np.array([o for _, o in pmfs]), sizes=np.array([p.size for p, _ in pmfs]),
                              escape_mass=_TAIL)


@lru_cache(maxsize=1)
def table_bank() -> CdfTables:
    """The fixed tables: 4 x 73 geometric tables, uniform tables of 1..12 bits, then 7 x 73
    zero-modified (shaped) tables."""
    geo = _tables([_geometric_pmf(variant, float(_table_mean(a))) for variant in range(_VARIANTS)
                   for a in range(MEAN_STEPS)])
    uniform = []
    for bits in range(1, UNIFORM_MAX_BITS + 1):
        freq = quantize_pmf(np.concatenate([np.ones(1 << bits), [0.0]])[None, :])[0]
        uniform.append(CdfTables.from_frequencies(freq[None, :]))
    shaped = _tables([_shaped_pmf(float(_table_mean(a)), f) for f in SHAPE_FACTORS for a in range(MEAN_STEPS)])
    bank, _ = CdfTables.concat([geo] + uniform + [shaped])
    return bank


_UNIFORM_BASE = _VARIANTS * MEAN_STEPS
_SHAPED_BASE = _UNIFORM_BASE + UNIFORM_MAX_BITS


def bank_digest() -> str:
    """Short digest of the table bank, stored by codecs so a changed bank is detected."""
    return table_bank().digest()[:16]


def check_bank(digest: object) -> None:
    """Refuse streams whose recorded table-bank digest is not this build's (a changed bank decodes garbage)."""
    if digest != bank_digest():
        raise BitstreamError("this stream was made with other residual tables (a different ncodec version)")


def uniform_index(bits: np.ndarray | int) -> np.ndarray:
    """Table index of the uniform table for ``bits`` (1..12) raw bits."""
    return _UNIFORM_BASE + np.asarray(bits) - 1


def geometric_index(shift: np.ndarray, mean_index: np.ndarray, shape: np.ndarray | int = 0) -> np.ndarray:
    """Table index of the quotient table for shift k, mean index a and shape (nonzero only with k = 0)."""
    shape = np.asarray(shape)
    plain = np.minimum(np.asarray(shift), _VARIANTS - 1) * MEAN_STEPS + np.asarray(mean_index)
    if not shape.any():
        return plain
    return np.where(shape > 0, _SHAPED_BASE + (shape - 1) * MEAN_STEPS + np.asarray(mean_index), plain)


def shaped_bits(zeros: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best (shape, mean index a, estimated bits) of the k = 0 tables for groups of values, from
    each group's number of zeros, sum |r| and count (an encoder decision, searched over all)."""
    zeros, sums, counts = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1) for v in (zeros, sums, counts))
    nonzero = counts - zeros
    beyond = np.maximum(sums - nonzero, 0.0)              # sum of |r| - 1 over the nonzero values
    means = _table_mean(np.arange(MEAN_STEPS))[None, None, :]
    theta = _laplace_theta(means)
    laplace0 = (1.0 - theta) / (1.0 + theta)
    zero, ratio = _zero_modified(means, np.array(SHAPE_FACTORS)[None, :, None])
    plain = -(counts * np.log2(laplace0) + sums * np.log2(theta))
    shaped = -(zeros * np.log2(zero) + nonzero * (np.log2(0.5 * (1.0 - zero)) + np.log2(1.0 - ratio))
               + beyond * np.log2(ratio))
    table = np.concatenate([plain, shaped], axis=1).reshape(counts.shape[0], -1)   # [groups, shapes x means]
    best = table.argmin(axis=1)
    shape, a = np.divmod(best, MEAN_STEPS)
    return shape, a, table[np.arange(best.size), best]


# ---------------------------------------------------------------- raw fields
def raw_symbols(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned ``bits``-wide fields as uniform symbols (split into <= 12-bit pieces)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size and (values.min() < 0 or (bits < 63 and values.max() >= 1 << bits)):
        raise ValueError(f"raw fields must be in 0..2**{bits} - 1")
    syms, idxs = [], []
    for low in range(0, bits, UNIFORM_MAX_BITS):
        width = min(UNIFORM_MAX_BITS, bits - low)
        syms.append((values >> low) & ((1 << width) - 1))
        idxs.append(np.full(values.size, uniform_index(width)))
    if not syms:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return (np.stack(syms, axis=1).reshape(-1).astype(np.int32),
            np.stack(idxs, axis=1).reshape(-1).astype(np.int32))


def decode_raw(dec: Decoder, count: int, bits: int) -> np.ndarray:
    """Inverse of `raw_symbols` for ``count`` fields; rejects values outside the field."""
    pieces = (bits + UNIFORM_MAX_BITS - 1) // UNIFORM_MAX_BITS
    if count == 0 or pieces == 0:
        return np.zeros(count, dtype=np.int64)
    widths = [min(UNIFORM_MAX_BITS, bits - low) for low in range(0, bits, UNIFORM_MAX_BITS)]
    idx = np.tile(uniform_index(np.array(widths)), count).astype(np.int32)
    sym = dec.decode(idx).astype(np.int64).reshape(count, pieces)
    if np.any(sym < 0) or np.any(sym >= (1 << np.array(widths))[None, :]):
        raise BitstreamError("corrupt stream: a raw field is out of range")
    return (sym << np.array([UNIFORM_MAX_BITS * i for i in range(pieces)])[None, :]).sum(axis=1)


def signed_raw_symbols(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Two's-complement ``bits``-wide signed fields as uniform symbols."""
    return raw_symbols(np.asarray(values, dtype=np.int64) & ((1 << bits) - 1), bits)


def decode_signed_raw(dec: Decoder, count: int, bits: int) -> np.ndarray:
    """Inverse of `signed_raw_symbols`."""
    v = decode_raw(dec, count, bits)
    return np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)


# ------------------------------------------------------------- residual plans
@dataclass
class Plan:
    """How one residual block is coded: partition bounds and per-partition (k, a)."""

    bounds: np.ndarray   # [P + 1] sample offsets
    shift: np.ndarray    # [P] k
    mean: np.ndarray     # [P] table mean index a
    bits: float          # estimated payload bits, side information included

    @property
    def order(self) -> int:
        return int(np.log2(self.shift.size))


def partition_bounds(n: int, order: int) -> np.ndarray:
    """Sample offsets of 2**order near-equal partitions of n samples."""
    parts = 1 << order
    return (np.arange(parts + 1, dtype=np.int64) * n) // parts


def _geometric_cross_entropy(alpha: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Bits per value of data with mean ``mean`` under the geometric law P(m) = (1 - alpha) alpha**m."""
    return -np.log2(1.0 - alpha) - mean * np.log2(alpha)


_TARGET_MEAN = 32.0     # largest quotient mean the shift leaves (the bank reaches 64)


def discrete_laplace_bits(magnitude: np.ndarray | float, mean: np.ndarray | float) -> np.ndarray:
    """Bits of values of magnitude ``magnitude`` under the discrete Laplace law P(r) ~ theta**|r|
    whose mean |r| is ``mean`` (the k = 0 tables of the bank); an estimate for encoder decisions."""
    theta = _laplace_theta(mean)
    return -np.log2((1.0 - theta) / (1.0 + theta)) - np.asarray(magnitude, dtype=np.float64) * np.log2(theta)


def fit_parameters(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, a, estimated bits) per partition from sum |r| and sample counts.

    For Laplacian residuals the only loss of the quotient/remainder split is the
    remainder's non-uniformity, which shrinks with k, so k is the smallest shift that
    brings the quotient's mean within the table bank (mean <= 32).
    """
    mu = sums / np.maximum(counts, 1)
    k = np.where(mu <= _TARGET_MEAN, 0,
                 np.ceil(np.log2(np.maximum(mu, 1.0) / (_TARGET_MEAN + 0.5)))).astype(np.int64)
    k = np.clip(k, 0, MAX_SHIFT)
    quietest = float(_table_mean(0))
    # k = 0: discrete Laplace on r, P(r) ~ theta**|r|; the table's mean is clamped to the bank
    mean0 = np.maximum(mu, quietest)
    h0 = discrete_laplace_bits(mu, mean0)
    # k >= 1: geometric m(q) with ~1 bit of sign, plus k uniform low bits
    mbar = np.maximum(mu / np.ldexp(1.0, k) - 0.5, 0.0)
    alpha_mean = np.maximum(mbar, quietest)
    h = np.where(k == 0, h0, 1.0 + _geometric_cross_entropy(alpha_mean / (1.0 + alpha_mean), mbar) + k)
    target = np.where(k == 0, mean0, alpha_mean)
    a = np.clip(np.rint(4.0 * (np.log2(target) - MIN_MEAN_LOG2)), 0, MEAN_STEPS - 1).astype(np.int64)
    return k, a, counts * h


def plan_partitions(residual: np.ndarray, max_order: int = 6, min_partition: int = 16) -> Plan:
    """Choose the partition order and per-partition parameters minimising estimated bits.

    All candidate orders are fitted in one vectorised pass: partitions nest, so each
    order's sums are differences of one cumulative sum at that order's bounds.
    """
    if not 0 <= max_order < 1 << ORDER_BITS:
        raise ValueError(f"max_order must be in 0..{(1 << ORDER_BITS) - 1}")
    r = np.asarray(residual, dtype=np.int64)
    n = r.size
    top = 0
    while top < max_order and n >> (top + 1) >= min_partition:
        top += 1
    csum = np.concatenate([[0], np.cumsum(np.abs(r))]).astype(np.float64)
    all_bounds = [partition_bounds(n, order) for order in range(top + 1)]
    starts = np.cumsum([0] + [b.size - 1 for b in all_bounds])
    lo = np.concatenate([b[:-1] for b in all_bounds])
    hi = np.concatenate([b[1:] for b in all_bounds])
    k, a, bits = fit_parameters(csum[hi] - csum[lo], (hi - lo).astype(np.float64))
    side = SHIFT_BITS + MEAN_BITS
    totals = np.add.reduceat(bits, starts[:-1]) + side * np.diff(starts)
    order = int(np.argmin(totals))
    sl = slice(starts[order], starts[order + 1])
    return Plan(all_bounds[order], k[sl], a[sl], float(totals[order]))


def plan_symbols(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """The side information of a plan (order, then k and a per partition) as symbols."""
    s0, i0 = raw_symbols(np.array([plan.order]), ORDER_BITS)
    ks, ki = raw_symbols(plan.shift, SHIFT_BITS)
    ms, mi = raw_symbols(plan.mean, MEAN_BITS)
    return (np.concatenate([s0, np.stack([ks, ms], axis=1).reshape(-1)]),
            np.concatenate([i0, np.stack([ki, mi], axis=1).reshape(-1)]))


def decode_plan(dec: Decoder, n: int, max_order: int = 6) -> Plan:
    """Read a plan written by `plan_symbols` for a block of n samples."""
    order = int(decode_raw(dec, 1, ORDER_BITS)[0])
    if order > max_order:
        raise BitstreamError(f"corrupt stream: partition order {order} exceeds {max_order}")
    parts = 1 << order
    idx = np.tile(uniform_index(np.array([SHIFT_BITS, MEAN_BITS])), parts).astype(np.int32)
    params = dec.decode(idx).astype(np.int64).reshape(parts, 2)
    k, a = params[:, 0], params[:, 1]
    if np.any(k < 0) or np.any(k > MAX_SHIFT) or np.any(a < 0) or np.any(a >= MEAN_STEPS):
        raise BitstreamError("corrupt stream: residual parameters out of range")
    return Plan(partition_bounds(n, order), k, a, 0.0)


def _per_sample(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    counts = np.diff(plan.bounds)
    return np.repeat(plan.shift, counts), np.repeat(plan.mean, counts)


def _layout(k: np.ndarray, a: np.ndarray,
            shape: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Table indexes of the quotients, low bits and high bits for per-value (k, a, shape), and the masks."""
    low_bits = np.minimum(k, UNIFORM_MAX_BITS)
    has_low, has_high = k > 0, k > UNIFORM_MAX_BITS
    idx = np.concatenate([geometric_index(k, a, shape), uniform_index(low_bits[has_low]),
                          uniform_index(k[has_high] - UNIFORM_MAX_BITS)]).astype(np.int32)
    return idx, low_bits, has_low, has_high


def value_symbols(values: np.ndarray, k: np.ndarray, a: np.ndarray,
                  shape: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and table indexes for integers with per-value shift k, table mean index a and
    table shape (`geometric_index`): all quotients ``v >> k`` first, then the low bits, then
    the high bits (k > 12)."""
    sym, idx, _, _ = _value_symbols(values, k, a, shape)
    return sym, idx


def _value_symbols(values: np.ndarray, k: np.ndarray, a: np.ndarray,
                   shape: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`value_symbols`, and which values have low bits and high bits (the layout's masks)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    k, a = np.asarray(k, dtype=np.int64).reshape(-1), np.asarray(a, dtype=np.int64).reshape(-1)
    idx, low_bits, has_low, has_high = _layout(k, a, np.asarray(shape, dtype=np.int64).reshape(-1))
    rem = v & ((np.int64(1) << k) - 1)
    sym = np.concatenate([v >> k, (rem & ((np.int64(1) << low_bits) - 1))[has_low],
                          (rem >> UNIFORM_MAX_BITS)[has_high]])
    if sym.size and (sym.min() < np.iinfo(np.int32).min or sym.max() > np.iinfo(np.int32).max):
        raise ValueError("values too large for the residual coder")
    return sym.astype(np.int32), idx, has_low, has_high


def grouped_value_symbols(values: np.ndarray, k: np.ndarray, a: np.ndarray, group: np.ndarray,
                          shape: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`value_symbols` of each group of values in turn (``group``: non-decreasing group number per
    value): the order of a decoder that calls `decode_values` once per group."""
    group = np.asarray(group, dtype=np.int64).reshape(-1)
    sym, idx, has_low, has_high = _value_symbols(values, k, a, shape)
    key = 3 * np.concatenate([group, group[has_low], group[has_high]]) + np.repeat(
        np.arange(3), [group.size, int(has_low.sum()), int(has_high.sum())])
    order = np.argsort(key, kind="stable")  # groups in turn; in a group quotients, low bits, high bits
    return sym[order], idx[order]


def decode_values(dec: Decoder, k: np.ndarray, a: np.ndarray, shape: np.ndarray | int = 0) -> np.ndarray:
    """Inverse of `value_symbols`."""
    k, a = np.asarray(k, dtype=np.int64).reshape(-1), np.asarray(a, dtype=np.int64).reshape(-1)
    if not k.any():  # quotients only (the common case of context-coded bands): skip the layout
        return dec.decode(geometric_index(k, a, shape).astype(np.int32)).astype(np.int64)
    idx, low_bits, has_low, has_high = _layout(k, a, shape)
    sym = dec.decode(idx).astype(np.int64)
    n = k.size
    q = sym[:n]
    n_low = int(has_low.sum())
    low, high = sym[n:n + n_low], sym[n + n_low:]
    if np.any(low < 0) or np.any(low >= (np.int64(1) << low_bits[has_low])) or np.any(high < 0) or \
            np.any(high >= (np.int64(1) << (k[has_high] - UNIFORM_MAX_BITS))):
        raise BitstreamError("corrupt stream: residual low bits out of range")
    rem = np.zeros(n, dtype=np.int64)
    rem[has_low] = low
    rem[has_high] |= high << UNIFORM_MAX_BITS
    return (q << k) | rem


def residual_symbols(residual: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and table indexes for a residual block coded with a partition plan."""
    return value_symbols(residual, *_per_sample(plan))


def decode_residual(dec: Decoder, plan: Plan) -> np.ndarray:
    """Inverse of `residual_symbols`."""
    return decode_values(dec, *_per_sample(plan))
