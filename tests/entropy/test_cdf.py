"""Tests of the integer CDF tables (`ncodec.entropy.cdf`): quantisation, validation, code lengths, digests."""
from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncodec.entropy import CdfTables, quantize_pmf, rans
from ncodec.entropy import exactmath as em
from ncodec.entropy.cdf import DEFAULT_PRECISION
from ncodec.errors import EntropyCodingError

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
SETTINGS = settings(deadline=None, max_examples=100)


# ====================================================================== helpers
def gaussian_pmfs(scales: np.ndarray, width: int = 256, mean: float = 128.3) -> np.ndarray:
    k = np.arange(width)[None, :]
    s = np.asarray(scales, dtype=np.float64)[:, None]
    pmf = em.normal_sf((k - 0.5 - mean) / s) - em.normal_sf((k + 0.5 - mean) / s)
    return pmf / pmf.sum(axis=1, keepdims=True)


def kl_bits(pmf: np.ndarray, freq: np.ndarray, precision: int) -> np.ndarray:
    """Per-row cross-entropy excess (bits/symbol) of coding pmf with freq / 2**precision."""
    p = pmf / pmf.sum(axis=1, keepdims=True)
    q = freq / float(1 << precision)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p / q), 0.0)
    return terms.sum(axis=1)


def optimal_frequencies(p: np.ndarray, precision: int) -> np.ndarray:
    """The exact minimiser of cross-entropy over integer frequencies >= 1 summing to 2**precision.

    The objective sum p log f is separable and concave, so a solution is optimal as soon as no
    single unit moved from one symbol to another improves it; start near it and move units.
    """
    p = p / p.sum()
    total = 1 << precision
    freq = np.maximum(1, np.floor(p * (total - p.size))).astype(np.int64)
    while freq.sum() < total:
        freq[np.argmax(p * np.log2((freq + 1) / freq))] += 1
    while True:
        gain = p * np.log2((freq + 1) / freq)
        loss = np.where(freq > 1, p * np.log2(freq / np.maximum(freq - 1, 1)), np.inf)
        j, i = int(np.argmax(gain)), int(np.argmin(loss))
        if i == j or gain[j] <= loss[i] * (1 + 1e-12):
            return freq
        freq[j] += 1
        freq[i] -= 1


def random_rows(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return rng.dirichlet(np.full(k, 0.2), rows)
    if kind == 1:
        p = rng.random((rows, k)) ** 8 * (rng.random((rows, k)) < 0.3)
        return p
    if kind == 2:
        return np.exp(-np.abs(np.arange(k) - rng.integers(k, size=(rows, 1))) / rng.uniform(0.05, 50, (rows, 1)))
    p = rng.random((rows, k))
    p[rng.random((rows, k)) < 0.1] = np.nan
    p[rng.random((rows, k)) < 0.1] = -1.0
    p[rng.random((rows, k)) < 0.05] = np.inf
    return p


def small_tables(seed: int = 0, precision: int = 12) -> CdfTables:
    rng = np.random.default_rng(seed)
    pmf = rng.dirichlet(np.ones(20), 4)
    return CdfTables.from_pmf(pmf, offsets=np.array([-10, 0, 7, INT32_MAX - 5]), sizes=np.array([20, 3, 11, 1]),
                              precision=precision)


# ================================================================= quantize_pmf
@SETTINGS
@given(st.integers(1, 16), st.integers(1, 6), st.integers(1, 400), st.integers(0, 2 ** 32 - 1))
def test_quantize_rows_sum_to_total_and_stay_positive(precision: int, rows: int, k: int, seed: int) -> None:
    k = min(k, 1 << precision)
    p = random_rows(np.random.default_rng(seed), rows, k)
    with np.errstate(invalid="ignore"):
        freq = quantize_pmf(p, precision)
    assert freq.shape == (rows, k) and freq.dtype == np.int64
    assert np.all(freq >= 1)
    np.testing.assert_array_equal(freq.sum(axis=1), np.full(rows, 1 << precision))


@SETTINGS
@given(st.integers(2, 16), st.integers(1, 300), st.integers(0, 2 ** 32 - 1))
def test_quantize_is_monotone_in_probability(precision: int, k: int, seed: int) -> None:
    k = min(k, 1 << precision)
    p = random_rows(np.random.default_rng(seed), 1, k)[0]
    with np.errstate(invalid="ignore"):
        freq = quantize_pmf(p, precision)[0]
    clean = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    order = np.lexsort((freq, clean))  # by probability, ties by frequency
    assert np.all(np.diff(freq[order]) >= 0), "a more probable symbol got a smaller frequency"


@pytest.mark.parametrize("precision, slack", [(10, 1e-2), (12, 4e-3), (16, 2e-4)])
def test_quantize_is_close_to_the_exact_optimum(precision: int, slack: float) -> None:
    """Excess bits/symbol over the best integer frequencies (measured: 0.005 at 10 bits, 0.0013 at 12, 6e-5 at 16)."""
    rng = np.random.default_rng(precision)
    scales = np.exp(np.linspace(math.log(0.11), math.log(60.0), 16))
    pmfs = np.concatenate([gaussian_pmfs(scales), rng.dirichlet(np.full(256, 0.3), 8),
                           rng.dirichlet(np.full(256, 3.0), 8), np.full((1, 256), 1.0)])
    ours = kl_bits(pmfs, quantize_pmf(pmfs, precision), precision)
    best = kl_bits(pmfs, np.stack([optimal_frequencies(p, precision) for p in pmfs]), precision)
    assert np.all(ours >= best - 1e-12)  # the reference really is optimal
    assert np.all(ours - best <= slack), (ours - best).max()


def test_quantize_gaussians_costs_under_0p01_bit_at_precision_16() -> None:
    scales = np.exp(np.linspace(math.log(0.11), math.log(60.0), 64))
    pmfs = gaussian_pmfs(scales)
    assert kl_bits(pmfs, quantize_pmf(pmfs, 16), 16).max() < 0.01


def test_quantize_treats_nan_negative_and_infinite_entries_as_zero() -> None:
    clean = np.array([[0.0, 0.0, 0.0, 0.5, 0.25, 0.25, 0.0]])
    dirty = np.array([[np.nan, -1.0, -np.inf, 0.5, 0.25, 0.25, np.inf]])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(quantize_pmf(dirty, 10), quantize_pmf(clean, 10))
    assert quantize_pmf(clean, 10)[0, 0] == 1


@pytest.mark.parametrize("row", [np.zeros(5), np.full(5, np.nan), -np.ones(5)])
def test_quantize_row_without_mass_is_uniform(row: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):
        freq = quantize_pmf(row[None, :], 10)
    assert freq.max() - freq.min() <= 1 and freq.sum() == 1024


def test_quantize_ignores_row_scale_and_accepts_1d_input() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(50))
    base = quantize_pmf(p[None, :], 14)
    np.testing.assert_array_equal(quantize_pmf(p, 14), base)
    np.testing.assert_array_equal(quantize_pmf(p * 1024.0, 14), base)      # exact rescaling
    assert quantize_pmf(p[None, :]).sum() == 1 << DEFAULT_PRECISION


def test_quantize_extremes() -> None:
    np.testing.assert_array_equal(quantize_pmf(np.ones((1, 16)), 4), np.ones((1, 16)))   # K == 2**P
    np.testing.assert_array_equal(quantize_pmf(np.array([[1.0]]), 1), [[2]])
    np.testing.assert_array_equal(quantize_pmf(np.array([[1.0, 0.0]]), 16), [[65535, 1]])
    np.testing.assert_array_equal(quantize_pmf(np.array([[1e-300, 1.0]]), 3), [[1, 7]])


@pytest.mark.parametrize("k, precision", [(17, 4), (3, 1), (65537, 16)])
def test_quantize_refuses_more_symbols_than_slots(k: int, precision: int) -> None:
    with pytest.raises(EntropyCodingError):
        quantize_pmf(np.ones((1, k)), precision)


@pytest.mark.parametrize("shape", [(1, 0), (2, 3, 4)])
def test_quantize_refuses_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(EntropyCodingError):
        quantize_pmf(np.ones(shape))


def test_quantize_is_deterministic_across_calls_and_row_batching() -> None:
    rng = np.random.default_rng(42)
    pmfs = np.concatenate([gaussian_pmfs(np.exp(rng.uniform(-2, 4, 40))), rng.dirichlet(np.full(256, 0.1), 40)])
    together = quantize_pmf(pmfs)
    np.testing.assert_array_equal(quantize_pmf(pmfs.copy()), together)
    one_by_one = np.concatenate([quantize_pmf(row[None, :]) for row in pmfs])
    np.testing.assert_array_equal(one_by_one, together)
    perm = rng.permutation(len(pmfs))
    np.testing.assert_array_equal(quantize_pmf(pmfs[perm]), together[perm])
    np.testing.assert_array_equal(quantize_pmf(np.asfortranarray(pmfs)), together)
    np.testing.assert_array_equal(quantize_pmf(pmfs[::-1])[::-1], together)


# Quantised tables of exactmath Gaussians: identical on every IEEE-754 machine, because a
# decoder rebuilds them from the same parameters. A change here breaks existing streams.
GOLDEN_GAUSSIAN_TABLES_SHA256 = "e6c0a40ae4f7c097c53ce506853793bc68e249900e528820229b17a054ef11b0"


def test_golden_gaussian_tables() -> None:
    scales = np.exp(np.linspace(math.log(0.11), math.log(60.0), 64))
    tables = CdfTables.from_pmf(gaussian_pmfs(scales), offsets=-128)
    assert tables.digest() == GOLDEN_GAUSSIAN_TABLES_SHA256


# =================================================================== CdfTables
def test_from_pmf_sizes_offsets_and_default_escape_mass() -> None:
    pmf = np.array([[0.25, 0.25, 0.25, 0.9],      # size 3: the 4th column is padding
                    [0.5, 0.5, 0.0, 0.0]])         # size 2, no mass left: escape gets the minimum
    tables = CdfTables.from_pmf(pmf, offsets=np.array([-1, 40]), sizes=np.array([3, 2]), precision=10)
    assert tables.num_tables == 2 and tables.precision == 10
    np.testing.assert_array_equal(tables.sizes, [3, 2])
    np.testing.assert_array_equal(tables.offsets, [-1, 40])
    freq = tables.frequencies()
    np.testing.assert_array_equal(freq[0, :4], [256, 256, 256, 256])      # escape = 1 - 0.75
    assert freq[1, 2] == 1 and freq[1, 0] + freq[1, 1] == 1023 and abs(freq[1, 0] - freq[1, 1]) == 1
    assert np.all(freq[0, 4:] == 0) and np.all(freq[1, 3:] == 0)
    assert tables.cdf.dtype == np.int32 and tables.sizes.dtype == np.int32 and tables.offsets.dtype == np.int32
    assert np.all(tables.cdf[:, -1] == 1024) and np.all(np.diff(tables.cdf, axis=1) >= 0)


def test_from_pmf_padding_is_ignored_and_offsets_broadcast() -> None:
    rng = np.random.default_rng(1)
    body = rng.dirichlet(np.ones(6), 3) * 0.9
    sizes = np.array([6, 4, 2])
    clean = np.where(np.arange(6)[None, :] < sizes[:, None], body, 0.0)
    dirty = np.where(np.arange(6)[None, :] < sizes[:, None], body, rng.random((3, 6)))
    a = CdfTables.from_pmf(clean, offsets=5, sizes=sizes, escape_mass=0.1)
    b = CdfTables.from_pmf(dirty, offsets=np.array([5, 5, 5]), sizes=sizes, escape_mass=0.1)
    assert a.digest() == b.digest()
    np.testing.assert_array_equal(a.offsets, [5, 5, 5])


def test_from_pmf_explicit_escape_mass() -> None:
    tables = CdfTables.from_pmf(np.array([[0.5, 0.5], [0.5, 0.5]]), escape_mass=np.array([1.0, 1e-30]),
                                precision=12)
    freq = tables.frequencies()
    np.testing.assert_array_equal(freq[0, :3], [1024, 1024, 2048])
    assert freq[1, 2] == 1


@pytest.mark.parametrize("sizes", [np.array([0]), np.array([4]), np.array([1, 2])])
def test_from_pmf_rejects_bad_sizes(sizes: np.ndarray) -> None:
    with pytest.raises(EntropyCodingError):
        CdfTables.from_pmf(np.ones((1, 3)), sizes=sizes)


def test_from_frequencies_with_sizes_ignores_columns_past_the_escape() -> None:
    freq = np.array([[10, 20, 34, 999], [60, 4, -7, 0]])
    tables = CdfTables.from_frequencies(freq, sizes=np.array([2, 1]), offsets=np.array([3, -3]), precision=6)
    np.testing.assert_array_equal(tables.cdf, [[0, 10, 30, 64, 64], [0, 60, 64, 64, 64]])
    default = CdfTables.from_frequencies(np.array([[1, 2, 5]]), precision=3)
    assert default.sizes.tolist() == [2]


@pytest.mark.parametrize("freq, precision", [([[0, 64]], 6), ([[65, -1]], 6), ([[30, 30]], 6), ([[1, 1]], 0),
                                             ([[1 << 16, 1 << 16]], 17)])
def test_from_frequencies_rejects_invalid_tables(freq: list[list[int]], precision: int) -> None:
    with pytest.raises(EntropyCodingError):
        CdfTables.from_frequencies(np.array(freq), precision=precision)


VALID = {"cdf": np.array([[0, 3, 8]]), "sizes": np.array([1]), "offsets": np.array([0]), "precision": 3}
INVALID_TABLES = {
    "cdf_1d": {"cdf": np.array([0, 3, 8])},
    "no_tables": {"cdf": np.zeros((0, 3)), "sizes": np.zeros(0), "offsets": np.zeros(0)},
    "sizes_mismatch": {"sizes": np.array([1, 1])},
    "offsets_mismatch": {"offsets": np.array([0, 0])},
    "size_zero": {"sizes": np.array([0])},
    "size_past_stride": {"sizes": np.array([2])},
    "not_from_zero": {"cdf": np.array([[1, 3, 8]])},
    "not_to_total": {"cdf": np.array([[0, 3, 7]])},
    "precision_zero": {"precision": 0},
    "precision_17": {"precision": 17},
}


@pytest.mark.parametrize("name", sorted(INVALID_TABLES))
def test_invalid_tables_raise(name: str) -> None:
    with pytest.raises(EntropyCodingError):
        CdfTables(**{**VALID, **INVALID_TABLES[name]})


@pytest.mark.parametrize("cdf", [[[0, 0, 8]], [[0, 9, 8]], [[0, 8, 8]]])
def test_tables_with_non_increasing_cdf_raise(cdf: list[list[int]]) -> None:
    """Regression: only the CDF's end points were once checked."""
    with pytest.raises(EntropyCodingError):
        CdfTables(**{**VALID, "cdf": np.array(cdf)})


def test_padding_past_the_escape_may_be_flat() -> None:
    tables = CdfTables(np.array([[0, 3, 8, 8, 8]]), np.array([1]), np.array([0]), 3)
    assert tables.stride == 5


@pytest.mark.parametrize("offset", [2 ** 31, -(2 ** 31) - 1, 2 ** 32 + 5])
def test_offsets_outside_int32_raise(offset: int) -> None:
    """Regression: offsets were once cast to int32 silently (2**31 became -2**31)."""
    with pytest.raises(EntropyCodingError):
        CdfTables.from_pmf(np.array([[0.5, 0.5]]), offsets=np.array([offset]))
    with pytest.raises(EntropyCodingError):
        CdfTables(**{**VALID, "offsets": np.array([offset])})


def test_cdf_values_outside_int32_raise() -> None:
    with pytest.raises(EntropyCodingError):
        CdfTables(**{**VALID, "cdf": np.array([[0, 2 ** 32 + 3, 8]])})


# ================================================================ code lengths
@st.composite
def tables_and_symbols(draw: Any) -> tuple[CdfTables, np.ndarray, np.ndarray, int]:
    precision = draw(st.integers(1, 16))
    ntables = draw(st.integers(1, 5))
    largest = min(300, (1 << precision) - 1)
    sizes = np.array(draw(st.lists(st.integers(1, largest), min_size=ntables, max_size=ntables)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    offsets = np.array(draw(st.lists(st.integers(INT32_MIN, INT32_MAX) | st.integers(-50, 50),
                                     min_size=ntables, max_size=ntables)))
    pmf = np.where(np.arange(sizes.max())[None, :] < sizes[:, None], random_rows(rng, ntables, int(sizes.max())), 0)
    with np.errstate(invalid="ignore"):
        tables = CdfTables.from_pmf(pmf, offsets=offsets, sizes=sizes, precision=precision,
                                    escape_mass=draw(st.sampled_from([None, 1e-6, 0.1])))
    n = draw(st.integers(0, 3000))
    idx = rng.integers(0, ntables, n)
    u = np.where(rng.random(n) < 0.9, (rng.random(n) * sizes[idx]).astype(np.int64),
                 rng.integers(-(2 ** 31), 2 ** 31, n))
    sym = np.clip(offsets[idx] + u, INT32_MIN, INT32_MAX).astype(np.int32)
    lanes = draw(st.integers(1, 20)) if n else 1
    return tables, sym, idx.astype(np.int32), min(lanes, max(n, 1))


@SETTINGS
@given(tables_and_symbols())
def test_code_lengths_account_for_every_coded_bit(case: tuple[CdfTables, np.ndarray, np.ndarray, int]) -> None:
    tables, sym, idx, lanes = case
    bits = tables.code_lengths(sym, idx)
    assert bits.shape == sym.shape and np.all(bits > 0)
    total = float(bits.sum())
    data = rans.encode(sym, idx, tables, lanes)
    payload = 8 * (len(data) - rans.HEADER_BYTES - rans.LANE_BYTES * lanes)
    # The payload holds all but what the final lane states carry (< 32 bits each).
    assert payload - 1e-5 * total - 0.01 <= total <= payload + 32 * lanes
    # Exact accounting: payload words plus the information in each final state (log2 x - 32).
    states = struct.unpack_from(f"<{lanes}Q", data, rans.HEADER_BYTES)
    info = payload + sum(math.log2(x) - 32 for x in states)
    assert abs(info - total) <= 1e-6 * total + 0.01


def test_code_lengths_of_individual_symbols_and_escapes() -> None:
    tables = CdfTables.from_frequencies(np.array([[8, 4, 2, 2]]), offsets=10, precision=4)  # size 3
    values = np.array([10, 11, 12, 13, 9, 14, 15, 8, 10 + 3 + 2 ** 20, INT32_MIN, INT32_MAX])
    expected = [1, 2, 3,
                3 + 6 + 0,            # u == size: raw 0, no length bits
                3 + 6 + 0,            # u == -1: raw 1, only its implicit top bit
                3 + 6 + 1,            # u == size + 1: raw 2
                3 + 6 + 2,            # raw 4
                3 + 6 + 1,            # u == -2: raw 3
                3 + 6 + 21,           # raw 2**21
                3 + 6 + 32,           # u = -2**31 - 10: raw 2**32 + 19
                3 + 6 + 31]           # u = 2**31 - 11: raw 2**32 - 28
    np.testing.assert_allclose(tables.code_lengths(values, np.zeros(values.size, np.int64)), expected)


def test_code_lengths_match_ideal_on_gaussians() -> None:
    rng = np.random.default_rng(9)
    pmfs = gaussian_pmfs(np.exp(np.linspace(-1, 3.5, 16)))
    tables = CdfTables.from_pmf(pmfs)
    idx = rng.integers(0, 16, 50000)
    cdf = np.cumsum(pmfs, axis=1)
    sym = np.minimum((rng.random(idx.size)[:, None] > cdf[idx]).sum(axis=1), 255)
    ideal = -np.log2(pmfs[idx, sym]).sum()
    assert abs(tables.code_lengths(sym, idx).sum() / ideal - 1) < 2e-3


# ====================================================================== concat
def test_concat_stacks_tables_and_codes_identically() -> None:
    a = small_tables(1)
    b = CdfTables.from_pmf(np.ones((2, 40)), offsets=np.array([3, -3]), precision=12)
    c = CdfTables.from_frequencies(np.array([[4000, 96]]), precision=12)
    both, starts = CdfTables.concat([a, b, c])
    assert starts.tolist() == [0, a.num_tables, a.num_tables + b.num_tables]
    assert both.num_tables == 7 and both.stride == max(a.stride, b.stride, c.stride)
    for part, start in zip((a, b, c), starts):
        rows = slice(start, start + part.num_tables)
        np.testing.assert_array_equal(both.cdf[rows, :part.stride], part.cdf)
        assert np.all(both.cdf[rows, part.stride:] == 1 << 12)
        np.testing.assert_array_equal(both.sizes[rows], part.sizes)
        np.testing.assert_array_equal(both.offsets[rows], part.offsets)
        rng = np.random.default_rng(start)
        idx = rng.integers(0, part.num_tables, 500)
        sym = part.offsets[idx].astype(np.int64) + rng.integers(-3, 45, 500)
        sym = np.clip(sym, INT32_MIN, INT32_MAX)
        # Padding is never read: the same symbols give the same bytes through the stacked set.
        assert rans.encode(sym, idx + start, both) == rans.encode(sym, idx, part)
        np.testing.assert_allclose(both.code_lengths(sym, idx + start), part.code_lengths(sym, idx))
    single, starts1 = CdfTables.concat([a])
    assert single.digest() == a.digest() and starts1.tolist() == [0]


def test_concat_rejects_empty_and_mixed_precision() -> None:
    with pytest.raises(EntropyCodingError):
        CdfTables.concat([])
    with pytest.raises(EntropyCodingError):
        CdfTables.concat([small_tables(0, 12), small_tables(0, 13)])


# ====================================================================== digest
def test_digest_is_stable_and_content_sensitive() -> None:
    base = small_tables(3)
    digest = base.digest()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert small_tables(3).digest() == digest
    same = CdfTables(base.cdf.astype(np.int64), base.sizes.astype(np.int64), base.offsets.tolist(), base.precision)
    assert same.digest() == digest
    freq = base.frequencies()
    freq[0, 0] += 1
    freq[0, 1] -= 1
    changed = [
        CdfTables.from_frequencies(freq, base.sizes, base.offsets, base.precision),
        CdfTables(base.cdf, base.sizes, base.offsets + np.array([0, 0, 1, 0]), base.precision),
        small_tables(4),
        small_tables(3, precision=13),
        CdfTables.concat([base, base])[0],
    ]
    digests = {t.digest() for t in changed}
    assert digest not in digests and len(digests) == len(changed)


def test_digest_golden_value() -> None:
    tables = CdfTables.from_frequencies(np.array([[1, 2, 5], [4, 3, 1]]), offsets=np.array([-1, 2]), precision=3)
    h = hashlib.sha256()
    h.update(np.int32(3).tobytes())
    for a in (np.array([2, 2]), np.array([-1, 2]), np.array([[0, 1, 3, 8], [0, 4, 7, 8]])):
        h.update(np.asarray(a.shape, dtype="<i8").tobytes())
        h.update(np.asarray(a, dtype="<i4").tobytes())
    assert tables.digest() == h.hexdigest()
