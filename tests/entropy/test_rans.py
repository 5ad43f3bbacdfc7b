"""Tests of the lane-interleaved rANS coder: `ncodec.entropy.rans` and its native core `_rans.c`.

The format pinned here (through an independent pure-Python encoder written from the
docstring of `ncodec.entropy.rans`) is the contract GPU encoders must reproduce byte for byte.
"""
from __future__ import annotations

import hashlib
import math
import struct
import tracemalloc
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncodec.entropy import CdfTables, rans
from ncodec.entropy import exactmath as em
from ncodec.errors import BitstreamError, EntropyCodingError

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
RANS_L = 1 << 32           # lower bound of a lane's 64-bit state
ESC_LEN_BITS = 6
SETTINGS = settings(deadline=None, max_examples=100)
FEW = settings(deadline=None, max_examples=40)


# ============================================================== test data helpers
PMF_KINDS = ("flat", "peaked", "dirichlet", "geometric", "sparse")


def random_pmf(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A float pmf over ``size`` symbols of a given shape family (unnormalised is fine)."""
    if kind == "flat":
        return np.ones(size)
    if kind == "peaked":  # one symbol takes almost everything: frequencies near 2**P
        p = np.full(size, 1e-12)
        p[rng.integers(size)] = 1.0
        return p
    if kind == "dirichlet":
        return rng.dirichlet(np.full(size, 0.3))
    if kind == "geometric":
        return float(rng.uniform(0.01, 0.99)) ** np.abs(np.arange(size) - rng.integers(size))
    p = rng.random(size) * (rng.random(size) < 0.2)  # "sparse": mostly zero entries
    return p


def random_tables(rng: np.random.Generator, sizes: list[int], offsets: list[int], precision: int,
                  kinds: list[str], escape_mass: float | None) -> CdfTables:
    width = max(sizes)
    pmf = np.zeros((len(sizes), width))
    for t, (size, kind) in enumerate(zip(sizes, kinds)):
        pmf[t, :size] = random_pmf(rng, size, kind)
    return CdfTables.from_pmf(pmf, offsets=np.array(offsets, dtype=np.int64), sizes=np.array(sizes),
                              escape_mass=escape_mass, precision=precision)


def random_symbols(rng: np.random.Generator, tables: CdfTables, n: int,
                   escape_rate: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, table_index): mostly in-support values, some at the edges, some far outside."""
    idx = rng.integers(0, tables.num_tables, n)
    offs = tables.offsets[idx].astype(np.int64)
    size = tables.sizes[idx].astype(np.int64)
    inside = offs + (rng.random(n) * size).astype(np.int64)
    edge = offs + rng.integers(-3, 4, n) + np.where(rng.random(n) < 0.5, 0, size - 1)
    # escapes of every bit length: log-uniform distances below or above the support
    distance = np.floor(np.exp2(rng.uniform(0, 32, n))).astype(np.int64)
    far = np.where(rng.random(n) < 0.5, offs - distance, offs + size - 1 + distance)
    extreme = np.where(rng.random(n) < 0.5, INT32_MIN, INT32_MAX)
    pick = rng.random(n)
    sym = np.where(pick < 1 - escape_rate, inside,
                   np.where(pick < 1 - escape_rate / 2, edge,
                            np.where(pick < 1 - escape_rate / 6, far, extreme)))
    return np.clip(sym, INT32_MIN, INT32_MAX).astype(np.int32), idx.astype(np.int32)


def small_case(n: int = 40, lanes: int = 3, seed: int = 7) -> tuple[bytes, np.ndarray, np.ndarray, CdfTables]:
    """A small valid stream with escapes, several tables and lanes."""
    rng = np.random.default_rng(seed)
    tables = random_tables(rng, [5, 1, 30], [-2, 100, INT32_MAX - 10], 12, ["dirichlet", "flat", "peaked"], None)
    sym, idx = random_symbols(rng, tables, n, escape_rate=0.3)
    return rans.encode(sym, idx, tables, lanes=lanes), sym, idx, tables


OFFSETS = st.one_of(st.integers(INT32_MIN, INT32_MAX), st.integers(-1000, 1000),
                    st.sampled_from([INT32_MIN, INT32_MIN + 1, INT32_MAX - 300, INT32_MAX - 1, INT32_MAX]))


@st.composite
def coding_cases(draw: Any, max_n: int = 600, max_size: int = 300, max_tables: int = 8) -> dict[str, Any]:
    """Random tables (precision 1..16), symbols with escapes, table indexes and a lane count."""
    precision = draw(st.integers(1, 16))
    largest = min(max_size, (1 << precision) - 1)  # size + escape must fit 2**precision
    ntables = draw(st.integers(1, max_tables))
    sizes = draw(st.lists(st.integers(1, largest), min_size=ntables, max_size=ntables))
    offsets = draw(st.lists(OFFSETS, min_size=ntables, max_size=ntables))
    kinds = draw(st.lists(st.sampled_from(PMF_KINDS), min_size=ntables, max_size=ntables))
    escape_mass = draw(st.sampled_from([None, 1e-12, 1e-3, 0.25]))
    n = draw(st.one_of(st.integers(0, 3), st.integers(0, max_n)))
    escape_rate = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    lanes = draw(st.one_of(st.none(), st.integers(1, max(1, n))))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    tables = random_tables(rng, sizes, offsets, precision, kinds, escape_mass)
    sym, idx = random_symbols(rng, tables, n, escape_rate)
    return {"tables": tables, "symbols": sym, "table_index": idx, "lanes": lanes}


def lane_table(data: bytes) -> tuple[list[int], list[int]]:
    """(states, word counts) from a stream's lane table."""
    lanes = rans.read_header(data).lanes
    states = list(struct.unpack_from(f"<{lanes}Q", data, rans.HEADER_BYTES))
    words = list(struct.unpack_from(f"<{lanes}I", data, rans.HEADER_BYTES + 8 * lanes))
    return states, words


def with_header(data: bytes, *, lanes: int | None = None, n: int | None = None,
                precision: int | None = None, version: int | None = None) -> bytes:
    """The stream with some header fields replaced."""
    h = rans.read_header(data)
    head = b"NR" + struct.pack("<BBIQ", h.version if version is None else version,
                               h.precision if precision is None else precision,
                               h.lanes if lanes is None else lanes, h.n if n is None else n)
    return head + data[rans.HEADER_BYTES:]


def assert_round_trip(symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None) -> bytes:
    data = rans.encode(symbols, table_index, tables, lanes=lanes)
    expected = np.asarray(symbols).reshape(-1)
    n = expected.size
    header = rans.read_header(data)
    assert header.version == rans.FORMAT_VERSION == 1
    assert header.precision == tables.precision
    assert header.n == n
    assert header.lanes == (rans.default_lanes(n) if lanes is None else lanes)
    states, words = lane_table(data)
    assert all(RANS_L <= s < 2 ** 64 for s in states)
    assert len(data) == header.overhead_bytes + 4 * sum(words)
    out = rans.decode(data, table_index, tables)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)
    return data


# ============================================== independent reference encoder (format spec)
class ReferenceEncoder:
    """Format version 1 written from the docstring of `ncodec.entropy.rans`, with Python ints.

    Calls push symbols in *encoder* order (last symbol first), one lane at a time.
    """

    def __init__(self, precision: int, lanes: int, n: int) -> None:
        self.precision, self.lanes, self.n = precision, lanes, n
        self.state = [RANS_L] * lanes
        self.emitted: list[list[int]] = [[] for _ in range(lanes)]  # in encoder order

    def _renorm(self, j: int, limit: int) -> int:
        x = self.state[j]
        if x >= limit:
            self.emitted[j].append(x & 0xFFFFFFFF)
            x >>= 32
        return x

    def put(self, j: int, start: int, freq: int) -> None:
        x = self._renorm(j, freq << (64 - self.precision))
        self.state[j] = (x // freq << self.precision) + x % freq + start

    def bypass(self, j: int, bits: int, value: int) -> None:
        x = self._renorm(j, 1 << (64 - bits))
        self.state[j] = x << bits | value

    def escape(self, j: int, cdf: list[int], size: int, raw: int, nb: int | None = None) -> None:
        """The escape symbol then raw's bypass fields (``nb`` overrides the length field)."""
        nb = raw.bit_length() if nb is None else nb
        chunks = []  # decode order: 16-bit chunks of raw's bits below its top bit, lowest first
        pos = 0
        while pos < nb - 1:
            width = min(16, nb - 1 - pos)
            chunks.append(((raw >> pos) & ((1 << width) - 1), width))
            pos += width
        for value, width in reversed(chunks):  # the encoder runs backwards
            self.bypass(j, width, value)
        self.bypass(j, ESC_LEN_BITS, nb)
        self.put(j, cdf[size], cdf[size + 1] - cdf[size])

    def to_bytes(self) -> bytes:
        out = bytearray(b"NR" + struct.pack("<BBIQ", 1, self.precision, self.lanes, self.n))
        out += struct.pack(f"<{self.lanes}Q", *self.state)
        out += struct.pack(f"<{self.lanes}I", *(len(w) for w in self.emitted))
        for w in self.emitted:
            out += struct.pack(f"<{len(w)}I", *reversed(w))  # decoder order
        return bytes(out)


def reference_encode(symbols: Any, table_index: Any, tables: CdfTables, lanes: int) -> bytes:
    n = len(symbols)
    enc = ReferenceEncoder(tables.precision, lanes, n)
    cdfs = tables.cdf.tolist()
    for i in reversed(range(n)):
        t = int(table_index[i])
        cdf = cdfs[t]
        size, offset = int(tables.sizes[t]), int(tables.offsets[t])
        u = int(symbols[i]) - offset
        if 0 <= u < size:
            enc.put(i % lanes, cdf[u], cdf[u + 1] - cdf[u])
        else:
            enc.escape(i % lanes, cdf, size, 2 * (-(u + 1)) + 1 if u < 0 else 2 * (u - size))
    return enc.to_bytes()


@SETTINGS
@given(coding_cases(max_n=48, max_size=40, max_tables=4))
def test_encode_matches_reference_encoder_byte_for_byte(case: dict[str, Any]) -> None:
    n = case["symbols"].size
    lanes = rans.default_lanes(n) if case["lanes"] is None else case["lanes"]
    expected = reference_encode(case["symbols"], case["table_index"], case["tables"], lanes)
    assert rans.encode(case["symbols"], case["table_index"], case["tables"], lanes=case["lanes"]) == expected


@pytest.mark.parametrize("value", [INT32_MIN, INT32_MIN + 1, -70000, -65537, -65536, -2, -1, 0, 1, 2, 3, 4,
                                   65540, 65541, 65542, 2 ** 20, INT32_MAX - 1, INT32_MAX])
@pytest.mark.parametrize("offset", [INT32_MIN, -1, 0, INT32_MAX])
def test_escape_bit_layout_matches_reference(value: int, offset: int) -> None:
    """Every escape length 0..33 (the chunk boundaries at 17 and 33 bits included)."""
    tables = CdfTables.from_pmf(np.array([[0.5, 0.3, 0.2]]), offsets=offset, escape_mass=0.01)
    sym = np.array([value, offset, value, value], dtype=np.int64).clip(INT32_MIN, INT32_MAX)
    for lanes in (1, 2):
        assert rans.encode(sym, 0, tables, lanes) == reference_encode(sym, np.zeros(4, np.int32), tables, lanes)
    np.testing.assert_array_equal(rans.decode(rans.encode(sym, 0, tables), 0, tables), sym)


def test_reference_encoder_agrees_on_a_long_multi_lane_stream() -> None:
    rng = np.random.default_rng(3)
    tables = random_tables(rng, [256, 7, 1, 60], [0, -3, 5, INT32_MIN], 16,
                           ["dirichlet", "peaked", "flat", "geometric"], None)
    sym, idx = random_symbols(rng, tables, 3000, escape_rate=0.05)
    for lanes in (1, 5, 3000):
        assert rans.encode(sym, idx, tables, lanes) == reference_encode(sym, idx, tables, lanes)


@pytest.mark.parametrize("nb", range(0, 34))
def test_every_escape_length_matches_reference(nb: int) -> None:
    """Both ends of each escape length (raw = 2**(nb-1) .. 2**nb - 1), below and above the support."""
    size = 3
    raws = {0} if nb == 0 else {1 << (nb - 1), (1 << (nb - 1)) + 1, (1 << nb) - 2, (1 << nb) - 1}
    tested = 0
    for offset in (-1, INT32_MIN, INT32_MAX - 2):
        tables = CdfTables.from_pmf(np.array([[0.5, 0.3, 0.2]]), offsets=offset, escape_mass=0.05)
        values = [offset + (-((raw - 1) // 2) - 1 if raw & 1 else raw // 2 + size) for raw in raws
                  if raw.bit_length() == nb]
        values = [v for v in values if INT32_MIN <= v <= INT32_MAX]
        if not values:
            continue
        tested += len(values)
        sym = np.array(values + [offset], dtype=np.int64)
        for lanes in (1, 2):
            data = rans.encode(sym, 0, tables, lanes)
            assert data == reference_encode(sym, np.zeros(sym.size, np.int32), tables, lanes)
            np.testing.assert_array_equal(rans.decode(data, 0, tables), sym)
        escape_bits = 16 - math.log2(tables.frequencies()[0, size])
        np.testing.assert_allclose(tables.code_lengths(sym, np.zeros(sym.size, np.int64))[:-1],
                                   escape_bits + 6 + max(nb - 1, 0))
    assert tested >= 2


def _single_escape_stream(tables: CdfTables, raw: int, nb: int) -> bytes:
    enc = ReferenceEncoder(tables.precision, 1, 1)
    enc.escape(0, [int(c) for c in tables.cdf[0]], int(tables.sizes[0]), raw, nb)
    return enc.to_bytes()


@pytest.mark.parametrize("offset", [INT32_MIN, 0, INT32_MAX - 2])
def test_decoder_accepts_the_longest_escapes_in_int32(offset: int) -> None:
    tables = CdfTables.from_pmf(np.ones((1, 3)), offsets=offset, escape_mass=0.5)
    values = [v for v in (INT32_MIN, INT32_MAX, offset - 1, offset + 3)
              if INT32_MIN <= v <= INT32_MAX and not 0 <= v - offset < 3]
    assert len(values) >= 2
    for value in values:
        u = value - offset
        raw = 2 * (-(u + 1)) + 1 if u < 0 else 2 * (u - 3)
        data = _single_escape_stream(tables, raw, raw.bit_length())
        assert data == rans.encode([value], 0, tables)
        assert rans.decode(data, 0, tables).tolist() == [value]


@pytest.mark.parametrize("nb", [35, 40, 63])
def test_decoder_rejects_escape_lengths_over_34_bits(nb: int) -> None:
    tables = CdfTables.from_pmf(np.ones((1, 3)), escape_mass=0.5)
    with pytest.raises(BitstreamError):
        rans.decode(_single_escape_stream(tables, (1 << nb) - 1, nb), 0, tables)


@pytest.mark.parametrize("offset, raw", [(0, 2 ** 33), (0, 2 ** 33 + 1), (INT32_MAX, 2 ** 33 - 2 ** 20),
                                         (INT32_MIN, 2 ** 33 - 1), (0, 2 ** 34 - 1)])
def test_decoder_rejects_escapes_outside_int32(offset: int, raw: int) -> None:
    tables = CdfTables.from_pmf(np.ones((1, 3)), offsets=offset, escape_mass=0.5)
    u = -((raw - 1) // 2) - 1 if raw & 1 else raw // 2 + 3
    assert not INT32_MIN <= u + offset <= INT32_MAX  # the test's premise
    with pytest.raises(BitstreamError):
        rans.decode(_single_escape_stream(tables, raw, raw.bit_length()), 0, tables)


def test_golden_stream_is_stable() -> None:
    """The exact bytes of one stream: any change means a new format version."""
    rng = np.random.default_rng(2024)
    pmf = em.normal_sf((np.arange(32) - 16.5) / 3.0) - em.normal_sf((np.arange(32) - 15.5) / 3.0)
    tables = CdfTables.from_pmf(np.stack([pmf, pmf[::-1] ** 2]), offsets=np.array([-16, 100]))
    sym = np.concatenate([rng.integers(-20, 20, 500), [INT32_MIN, INT32_MAX, 1000]]).astype(np.int32)
    idx = (np.arange(sym.size) % 3 == 0).astype(np.int32)
    data = rans.encode(sym, idx, tables, lanes=4)
    assert data == reference_encode(sym, idx, tables, 4)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_STREAM_SHA256


# Pins table quantisation (exactmath + quantize_pmf) and the coder together.
GOLDEN_STREAM_SHA256 = "5446488592337178c34d84e9af834839e8f666853c483c665336175e7e2bcaf5"


# ================================================================== round trips
@SETTINGS
@given(coding_cases())
def test_round_trip_random_tables_symbols_and_lanes(case: dict[str, Any]) -> None:
    assert_round_trip(case["symbols"], case["table_index"], case["tables"], case["lanes"])


@FEW
@given(coding_cases(max_n=300), st.integers(0, 2 ** 32 - 1))
def test_same_symbols_decode_identically_with_any_lane_count(case: dict[str, Any], seed: int) -> None:
    sym, idx, tables = case["symbols"], case["table_index"], case["tables"]
    n = sym.size
    rng = np.random.default_rng(seed)
    lane_counts = {None, 1, max(1, n)} | {int(x) for x in rng.integers(1, max(2, n + 1), 3)}
    for lanes in lane_counts:
        data = assert_round_trip(sym, idx, tables, lanes)
        assert rans.encode(sym.copy(), idx.copy(), tables, lanes) == data  # deterministic


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_symbol_streams(n: int) -> None:
    tables = CdfTables.from_pmf(np.array([[0.9, 0.1]]), offsets=-5)
    for value in (-5, -4, 1234567, INT32_MIN):
        sym = np.full(n, value, dtype=np.int32)
        data = assert_round_trip(sym, np.zeros(n, np.int32), tables)
        assert_round_trip(sym, 0, tables, lanes=1)
        if n == 0:
            assert len(data) == rans.HEADER_BYTES + rans.LANE_BYTES
            assert lane_table(data) == ([RANS_L], [0])
            assert rans.decode(data, 0, tables).size == 0


def _np(dtype: Any) -> Callable[[np.ndarray], Any]:
    return lambda a: a.astype(dtype)


def _torch(dtype: Any) -> Callable[[np.ndarray], Any]:
    return lambda a: torch.from_numpy(a.astype(np.int64)).to(dtype)


CONVERTERS = {
    "int32": _np(np.int32), "int64": _np(np.int64), "list": lambda a: a.tolist(),
    "float64": _np(np.float64), "torch_int64": _torch(torch.int64), "torch_int32": _torch(torch.int32),
    "torch_float64": _torch(torch.float64), "column_2d": lambda a: a.reshape(-1, 1),
    "strided_view": lambda a: np.repeat(a, 2)[::2],
}


@pytest.mark.parametrize("kind", sorted(CONVERTERS))
def test_input_types_give_identical_streams(kind: str) -> None:
    convert = CONVERTERS[kind]
    rng = np.random.default_rng(11)
    tables = random_tables(rng, [20, 3, 9], [-10, 0, 10 ** 6], 14, ["dirichlet"] * 3, None)
    sym, idx = random_symbols(rng, tables, 500, escape_rate=0.1)
    reference = rans.encode(sym, idx, tables, lanes=4)
    assert rans.encode(convert(sym), convert(idx), tables, lanes=4) == reference
    assert rans.encode(sym, convert(idx), tables, lanes=4) == reference
    np.testing.assert_array_equal(rans.decode(reference, convert(idx), tables), sym)
    dec = rans.Decoder(reference, tables)
    np.testing.assert_array_equal(dec.decode(convert(idx)), sym)
    dec.finish()


def test_unsigned_and_bool_inputs() -> None:
    tables = CdfTables.from_pmf(np.ones((2, 8)))
    sym = np.arange(16, dtype=np.uint16) % 9
    idx = np.arange(16) % 2 == 1
    data = rans.encode(sym, idx, tables)
    np.testing.assert_array_equal(rans.decode(data, idx.astype(np.int32), tables), sym)
    assert data == rans.encode(sym.astype(np.int64), idx.astype(np.int64), tables)


@pytest.mark.parametrize("scalar", [2, np.int64(2), np.int32(2), np.uint8(2)])
def test_scalar_table_index_means_one_table_for_all(scalar: Any) -> None:
    rng = np.random.default_rng(5)
    tables = random_tables(rng, [4, 4, 50], [0, 0, -25], 16, ["flat", "flat", "geometric"], None)
    sym = rng.integers(-30, 30, 1000).astype(np.int32)
    data = rans.encode(sym, scalar, tables)
    assert data == rans.encode(sym, np.full(sym.size, 2), tables)
    np.testing.assert_array_equal(rans.decode(data, scalar, tables), sym)
    np.testing.assert_array_equal(rans.decode(data, scalar, tables, count=sym.size), sym)
    with pytest.raises(BitstreamError):
        rans.decode(data, scalar, tables, count=sym.size + 1)


@pytest.mark.parametrize("scalar", [np.array(2), torch.tensor(2)], ids=["numpy_0d", "torch_0d"])
def test_zero_dim_table_index_decodes_like_a_scalar(scalar: Any) -> None:
    """Regression: decode once took a 0-d array/tensor for a one-element index array."""
    tables = CdfTables.from_pmf(np.ones((3, 4)))
    sym = np.arange(10, dtype=np.int32) % 4
    data = rans.encode(sym, scalar, tables)
    assert data == rans.encode(sym, 2, tables)
    np.testing.assert_array_equal(rans.decode(data, scalar, tables), sym)
    dec = rans.Decoder(data, tables)
    np.testing.assert_array_equal(dec.decode(scalar, count=10), sym)
    dec.finish()


def test_precision_16_table_with_65535_symbols() -> None:
    """The largest table: 2**16 - 1 symbols plus the escape, each of frequency 1 (LUT index limits)."""
    tables = CdfTables.from_frequencies(np.ones((1, 1 << 16), dtype=np.int64), offsets=-(1 << 15))
    rng = np.random.default_rng(0)
    sym = np.concatenate([rng.integers(-(1 << 15), 1 << 15, 5000), [-(1 << 15), (1 << 15) - 2, (1 << 15) - 1,
                                                                     (1 << 15), INT32_MIN]])
    data = assert_round_trip(sym.astype(np.int32), 0, tables, lanes=7)
    assert data == reference_encode(sym, np.zeros(sym.size, np.int32), tables, 7)


@pytest.mark.parametrize("ntables", [4097, 1 << 15])
def test_many_tables_shrink_the_decoder_lut(ntables: int) -> None:
    rng = np.random.default_rng(ntables)
    freq = rng.integers(1, 100, (ntables, 4))
    freq[:, 0] += (1 << 16) - freq.sum(axis=1)
    tables = CdfTables.from_frequencies(freq, offsets=rng.integers(-5, 5, ntables))
    sym, idx = random_symbols(rng, tables, 20000, escape_rate=0.02)
    assert_round_trip(sym, idx, tables)


def test_all_probability_on_one_symbol_codes_in_almost_no_bits() -> None:
    tables = CdfTables.from_pmf(np.array([[1.0, 0.0]]), escape_mass=0.0)  # frequencies 65534, 1, 1
    n = 1 << 20
    data = rans.encode(np.zeros(n, np.int32), 0, tables, lanes=1)
    ideal_bits = n * -math.log2(tables.frequencies()[0, 0] / 65536)
    assert 8 * len(data) <= ideal_bits + 8 * 28 + 64
    np.testing.assert_array_equal(rans.decode(data, 0, tables), np.zeros(n, np.int32))


# ============================================================ incremental decoder
@SETTINGS
@given(coding_cases(max_n=400), st.lists(st.integers(0, 60), max_size=30))
def test_incremental_decoder_slices_match_one_shot_decode(case: dict[str, Any], cuts: list[int]) -> None:
    sym, idx, tables = case["symbols"], case["table_index"], case["tables"]
    data = rans.encode(sym, idx, tables, case["lanes"])
    dec = rans.Decoder(data, tables)
    assert dec.header == rans.read_header(data)
    pieces, pos = [], 0
    for cut in cuts + [sym.size]:
        take = min(cut, sym.size - pos)
        assert dec.remaining == sym.size - pos
        if pos < sym.size:
            with pytest.raises(BitstreamError):
                dec.finish()
        pieces.append(dec.decode(idx[pos:pos + take]))
        pos += take
    assert dec.remaining == 0
    dec.finish()
    np.testing.assert_array_equal(np.concatenate(pieces), sym)
    with pytest.raises(BitstreamError):
        dec.decode(np.zeros(1, np.int32))


def test_decoder_scalar_index_with_count_and_over_asking() -> None:
    tables = CdfTables.from_pmf(np.ones((2, 10)), offsets=np.array([0, 100]))
    sym = np.concatenate([np.arange(10), np.arange(100, 110)]).astype(np.int32)
    data = rans.encode(sym, np.repeat([0, 1], 10), tables)
    dec = rans.Decoder(memoryview(data), tables)
    np.testing.assert_array_equal(dec.decode(0, count=10), sym[:10])
    assert dec.remaining == 10
    with pytest.raises(BitstreamError):
        dec.decode(1, count=11)
    assert dec.remaining == 10  # a refused request consumes nothing
    np.testing.assert_array_equal(dec.decode(1, count=4), sym[10:14])
    np.testing.assert_array_equal(dec.decode(np.ones(6, np.int32)), sym[14:])
    dec.finish()
    rans.Decoder(bytearray(data), tables).decode(0, count=0)


def test_decoder_after_an_error_keeps_raising_bitstream_errors() -> None:
    data, sym, idx, tables = small_case()
    dec = rans.Decoder(data, tables)
    bad = idx.copy()
    bad[5] = tables.num_tables  # out of range: the decoder gives up
    with pytest.raises(BitstreamError):
        dec.decode(bad)
    for _ in range(2):
        with pytest.raises(BitstreamError):
            dec.decode(idx[:1])
        with pytest.raises(BitstreamError):
            dec.finish()


def test_stream_length_splits_streams_laid_end_to_end() -> None:
    first, _, _, tables = small_case(seed=1, lanes=2)
    second, sym2, idx2, tables2 = small_case(seed=2, n=300, lanes=5)
    empty = rans.encode(np.zeros(0, np.int32), 0, tables)
    joined = bytearray(first + empty + second + b"tail")
    assert rans.stream_length(joined) == len(first)
    assert rans.stream_length(memoryview(joined), len(first)) == len(empty)
    start = len(first) + len(empty)
    end = start + rans.stream_length(bytes(joined), start)
    assert end == len(joined) - 4
    np.testing.assert_array_equal(rans.decode(bytes(joined[start:end]), idx2, tables2), sym2)
    for cut in range(len(first)):
        with pytest.raises(BitstreamError):
            rans.stream_length(first[:cut])


# ================================================================ corrupt input
def decode_or_bitstream_error(data: bytes, idx: Any, tables: CdfTables) -> np.ndarray | None:
    """Decode; a `BitstreamError` is fine (None), any other exception fails the test."""
    try:
        out = rans.decode(data, idx, tables)
    except BitstreamError:
        return None
    assert out.dtype == np.int32 and out.size == np.asarray(idx).size
    return out


def test_every_truncation_is_rejected() -> None:
    data, sym, idx, tables = small_case()
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            rans.decode(data[:cut], idx, tables)
    np.testing.assert_array_equal(rans.decode(data, idx, tables), sym)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00\x00", b"\xff" * 3, b"\x01" * 8])
def test_appended_bytes_are_rejected(extra: bytes) -> None:
    data, _, idx, tables = small_case()
    with pytest.raises(BitstreamError):
        rans.decode(data + extra, idx, tables)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_single_byte_flips_never_escape_as_other_errors(mask: int) -> None:
    data, sym, idx, tables = small_case()
    rejected = 0
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= mask
        out = decode_or_bitstream_error(bytes(bad), idx, tables)
        if out is None:
            rejected += 1
        if pos < rans.HEADER_BYTES:
            assert out is None, f"header byte {pos} flipped but the stream still decoded"
    assert rejected > len(data) // 2  # states must end at 2**32, so most corruption is detected


def test_every_bit_flip_is_detected_without_escapes_or_unit_frequencies() -> None:
    """Lanes must end in state 2**32 with every word used, so corruption shows up at `finish`.

    (Escaped values' bypass bits and frequency-1 symbols can absorb a flipped bit, which is why
    the stream relies on its container's CRC; without them every single-bit flip is caught.)
    """
    rng = np.random.default_rng(21)
    tables = CdfTables.from_pmf(rng.dirichlet(np.full(12, 2.0), 3) * 0.99, offsets=np.array([-5, 0, 9]))
    assert tables.frequencies()[:, :13].min() >= 2
    sym, idx = random_symbols(rng, tables, 150, escape_rate=0.0)
    for lanes in (1, 3):
        data = rans.encode(sym, idx, tables, lanes=lanes)
        for pos in range(len(data)):
            for bit in range(8):
                bad = bytearray(data)
                bad[pos] ^= 1 << bit
                with pytest.raises(BitstreamError):
                    rans.decode(bytes(bad), idx, tables)


def test_lane_state_below_lower_bound_is_rejected() -> None:
    data, _, idx, tables = small_case()
    bad = bytearray(data)
    struct.pack_into("<Q", bad, rans.HEADER_BYTES, RANS_L - 1)
    with pytest.raises(BitstreamError):
        rans.Decoder(bytes(bad), tables)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_or_decoded_without_crashing(blob: bytes) -> None:
    tables = CdfTables.from_pmf(np.ones((2, 5)) / 10, offsets=np.array([0, 3]), precision=8)
    decode_or_bitstream_error(blob, np.zeros(3, np.int32), tables)
    decode_or_bitstream_error(b"NR\x01\x08" + blob, np.zeros(3, np.int32), tables)


@SETTINGS
@given(st.integers(1, 5), st.integers(0, 40), st.integers(0, 2 ** 32 - 1), st.sampled_from([1, 4, 12, 16]))
def test_well_formed_garbage_lanes_decode_without_crashing(lanes: int, n: int, seed: int, precision: int) -> None:
    """Consistent header and lane table, random states and words: exercises the decode loop on garbage."""
    n = max(n, lanes)
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 6, lanes)
    states = rng.integers(RANS_L, 2 ** 64, lanes, dtype=np.uint64, endpoint=False)
    payload = rng.integers(0, 2 ** 32, int(words.sum()), dtype=np.uint64).astype("<u4").tobytes()
    data = (b"NR" + struct.pack("<BBIQ", 1, precision, lanes, n) + states.astype("<u8").tobytes()
            + words.astype("<u4").tobytes() + payload)
    tables = random_tables(rng, [min(3, (1 << precision) - 1), 1], [0, INT32_MAX], precision,
                           ["dirichlet", "flat"], 0.3)
    decode_or_bitstream_error(data, rng.integers(0, 2, n).astype(np.int32), tables)


def test_decoding_with_wrong_tables_or_indexes_raises_bitstream_error() -> None:
    data, sym, idx, tables = small_case()
    fewer = CdfTables(tables.cdf[:1], tables.sizes[:1], tables.offsets[:1], tables.precision)
    with pytest.raises(BitstreamError):
        rans.decode(data, idx, fewer)
    coarser = CdfTables.from_pmf(np.ones((3, 5)), precision=tables.precision - 1)
    with pytest.raises(BitstreamError):
        rans.decode(data, idx, coarser)
    with pytest.raises(BitstreamError):
        rans.Decoder(data, coarser)
    for wrong in (idx[:-1], np.concatenate([idx, [0]]), np.zeros(0, np.int32)):
        with pytest.raises(BitstreamError):
            rans.decode(data, wrong, tables)
    for bad_index in (-1, tables.num_tables):
        with pytest.raises(BitstreamError):
            rans.decode(data, np.full(sym.size, bad_index), tables)
    with pytest.raises(BitstreamError):
        rans.decode(data, idx, tables, count=sym.size - 1)
    other = CdfTables.from_pmf(np.ones((3, 40)), precision=tables.precision)  # same shape, other content
    decode_or_bitstream_error(data, idx, other)


@pytest.mark.parametrize("field", [{"version": 2}, {"version": 0}, {"precision": 0}, {"precision": 17},
                                   {"lanes": 0}, {"n": 0}])
def test_bad_header_fields_are_rejected(field: dict[str, int]) -> None:
    data, sym, idx, tables = small_case()
    bad = with_header(data, **field)
    n = sym.size if "n" not in field else field["n"]
    with pytest.raises(BitstreamError):
        rans.decode(bad, idx[:n], tables)


def test_bad_magic_is_rejected() -> None:
    data, _, idx, tables = small_case()
    for bad in (b"XX" + data[2:], b"nr" + data[2:], b"", b"NR"):
        with pytest.raises(BitstreamError):
            rans.read_header(bad)
        with pytest.raises(BitstreamError):
            rans.decode(bad, idx, tables)


@pytest.mark.parametrize("lanes, n", [(2 ** 24, 2 ** 40), (2 ** 32 - 1, 2 ** 40), (2 ** 24, 2 ** 24),
                                      (1, 2 ** 40), (1, 2 ** 63 - 1), (1, 2 ** 64 - 1), (3, 2 ** 62)])
def test_huge_announced_counts_fail_fast_without_big_allocation(lanes: int, n: int) -> None:
    data, sym, idx, tables = small_case()
    bad = with_header(data, lanes=lanes, n=n)
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError):
            rans.decode(bad, idx, tables)           # index length disagrees with the header
        with pytest.raises(BitstreamError):
            rans.decode(bad, 0, tables, count=sym.size)
        if lanes > 3:  # the lane table the header announces is not there
            with pytest.raises(BitstreamError):
                rans.Decoder(bad, tables)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("n", [2 ** 31, 2 ** 40, 2 ** 62])
def test_huge_symbol_count_with_scalar_index_is_a_bitstream_error(n: int) -> None:
    """Regression: with a scalar index, decode once allocated np.full(header.n) before any check."""
    data, _, _, tables = small_case()
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError):
            rans.decode(with_header(data, n=n), 0, tables)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_small_hostile_stream_fails_before_allocating_its_announced_count() -> None:
    tables = CdfTables.from_frequencies(np.array([[65535, 1]]))
    lanes = 7  # 16 + 12 * 7 = 100 bytes, no payload: lane 0 runs dry at symbol 0
    n = rans.max_symbols(100, 16) - 1
    data = (b"NR" + struct.pack("<BBIQ", 1, 16, lanes, n) + struct.pack(f"<{lanes}Q", *[RANS_L] * lanes)
            + bytes(4 * lanes))
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError):
            rans.decode(data, 0, tables)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize("precision", [1, 4, 12, 16])
def test_densest_valid_streams_pass_the_symbol_count_bound(precision: int) -> None:
    """The most probable symbol possible (frequency 2**P - 1) at its most compact must still decode."""
    tables = CdfTables.from_frequencies(np.array([[(1 << precision) - 1, 1]]), precision=precision)
    n = (1 << 23) if precision == 16 else 1 << 16
    for lanes in (1, 4):
        data = rans.encode(np.zeros(n, np.int32), 0, tables, lanes=lanes)
        assert n <= rans.max_symbols(len(data), precision)
        out = rans.decode(data, 0, tables)
        assert out.size == n and not out.any()


# ===================================================== encoder input validation
def _encode_bad(change: Callable[[np.ndarray, np.ndarray], tuple[Any, Any, dict[str, Any]]]) -> None:
    rng = np.random.default_rng(1)
    tables = random_tables(rng, [6, 6], [0, 0], 10, ["flat", "dirichlet"], None)
    sym = rng.integers(0, 6, 20)
    idx = rng.integers(0, 2, 20)
    s, i, kw = change(sym, idx)
    with pytest.raises(EntropyCodingError):
        rans.encode(s, i, tables, **kw)


BAD_ENCODE_INPUTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[Any, Any, dict[str, Any]]]] = {
    "index_negative": lambda s, i: (s, np.where(np.arange(i.size) == 7, -1, i), {}),
    "index_too_large": lambda s, i: (s, np.where(np.arange(i.size) == 19, 2, i), {}),
    "scalar_index_too_large": lambda s, i: (s, 2, {}),
    "scalar_index_negative": lambda s, i: (s, -1, {}),
    "index_beyond_int32": lambda s, i: (s, i + 2 ** 32, {}),
    "index_shorter": lambda s, i: (s, i[:-1], {}),
    "index_longer": lambda s, i: (s, np.concatenate([i, [0]]), {}),
    "index_empty_for_symbols": lambda s, i: (s, [], {}),
    "lanes_zero": lambda s, i: (s, i, {"lanes": 0}),
    "lanes_negative": lambda s, i: (s, i, {"lanes": -3}),
    "lanes_more_than_symbols": lambda s, i: (s, i, {"lanes": s.size + 1}),
    "lanes_above_max": lambda s, i: (s, i, {"lanes": rans.MAX_LANES + 1}),
    "lanes_two_for_empty": lambda s, i: (s[:0], i[:0], {"lanes": 2}),
    "symbols_fractional": lambda s, i: (s + 0.5, i, {}),
    "symbols_nan": lambda s, i: (np.where(np.arange(s.size) == 3, np.nan, s), i, {}),
    "symbols_inf": lambda s, i: (np.where(np.arange(s.size) == 3, np.inf, s), i, {}),
    "symbols_beyond_int32": lambda s, i: (np.where(np.arange(s.size) == 3, 2 ** 31, s), i, {}),
    "symbols_below_int32": lambda s, i: (np.where(np.arange(s.size) == 3, -(2 ** 31) - 1, s), i, {}),
    "symbols_uint64_huge": lambda s, i: (s.astype(np.uint64) + np.uint64(2 ** 63), i, {}),
    "symbols_torch_fractional": lambda s, i: (torch.from_numpy(s * 0.25), i, {}),
    "symbols_strings": lambda s, i: (s.astype(str), i, {}),
    "symbols_objects": lambda s, i: ([None] * s.size, i, {}),
    "symbols_complex": lambda s, i: (s.astype(complex), i, {}),
    "index_fractional": lambda s, i: (s, i + 0.5, {}),
}


@pytest.mark.parametrize("name", sorted(BAD_ENCODE_INPUTS))
def test_bad_encoder_inputs_raise_entropy_coding_error(name: str) -> None:
    _encode_bad(BAD_ENCODE_INPUTS[name])


@pytest.mark.parametrize("scalar", [0.5, 1.75, 2 ** 40, -(2 ** 40), "1", None, torch.tensor(0.5)])
def test_bad_scalar_table_index_raises_entropy_coding_error(scalar: Any) -> None:
    """Regression: a scalar index was once converted with int() (0.5 -> 0, 2**40 -> OverflowError)."""
    _encode_bad(lambda s, i: (s, scalar, {}))


@pytest.mark.parametrize("lanes", [1.5, 2 ** 64, "2", np.float64(2.5)])
def test_bad_lane_count_type_raises_entropy_coding_error(lanes: Any) -> None:
    """Regression: lanes was once converted with int() (1.5 -> 1, 2**64 -> OverflowError)."""
    _encode_bad(lambda s, i: (s, i, {"lanes": lanes}))


@pytest.mark.parametrize("scalar", [1.0, np.int16(1), np.float32(1.0), torch.tensor(1)])
def test_integral_scalar_table_index_and_lanes_are_accepted(scalar: Any) -> None:
    tables = CdfTables.from_pmf(np.ones((2, 6)))
    sym = np.arange(30) % 8 - 1
    expected = rans.encode(sym, np.ones(30, np.int32), tables, lanes=1)
    assert rans.encode(sym, scalar, tables, lanes=scalar) == expected


def test_integral_floats_are_accepted_as_integers() -> None:
    tables = CdfTables.from_pmf(np.ones((2, 6)))
    sym = np.arange(30) % 8 - 1
    idx = np.arange(30) % 2
    assert rans.encode(sym.astype(np.float32), idx.astype(np.float64), tables) == rans.encode(sym, idx, tables)


@pytest.mark.parametrize("cdf", [[0, 0, 1 << 16, 1 << 16], [0, 1 << 16, 1 << 16, 1 << 16],
                                 [0, 70000, 1 << 16, 1 << 16], [0, 5, 3, 1 << 16], [1, 5, 9, 1 << 16],
                                 [0, 5, 9, 1 << 15]])
def test_native_coder_validates_tables_itself(cdf: list[int]) -> None:
    """`_rans` must not trust its caller: a zero/negative frequency or a bad end point is a ValueError."""
    from ncodec.entropy import _rans

    arr = np.array(cdf, np.int32)
    sizes, offsets = np.array([2], np.int32), np.array([0], np.int32)
    with pytest.raises(ValueError):
        _rans.encode(np.zeros(3, np.int32), np.zeros(3, np.int32), arr, sizes, offsets, 4, 16, 1)
    good = CdfTables.from_frequencies(np.array([[5, 4, (1 << 16) - 9]]))
    data = rans.encode(np.zeros(3, np.int32), 0, good)
    with pytest.raises(ValueError):
        _rans.Decoder(data, arr, sizes, offsets, 4)


# ========================================================= compression quality
GAUSS_N = 1 << 20
GAUSS_TABLES = 64
ALPHABET = 256
TAIL_SIGMAS = 6.1


@pytest.fixture(scope="module")
def gauss() -> dict[str, Any]:
    """2**20 symbols from 64 discretised Gaussians (scales 0.5..40), tables over mean +- 6.1 sigma."""
    rng = np.random.default_rng(0)
    scales = np.exp(np.linspace(math.log(0.5), math.log(40.0), GAUSS_TABLES))
    mean = 128.0
    k = np.arange(ALPHABET)[None, :]
    pmfs = em.normal_sf((k - 0.5 - mean) / scales[:, None]) - em.normal_sf((k + 0.5 - mean) / scales[:, None])
    pmfs /= pmfs.sum(axis=1, keepdims=True)
    idx = rng.integers(0, GAUSS_TABLES, GAUSS_N).astype(np.int32)
    u = rng.random(GAUSS_N)
    sym = np.empty(GAUSS_N, np.int32)
    cdf = np.cumsum(pmfs, axis=1)
    for t in range(GAUSS_TABLES):
        sel = idx == t
        sym[sel] = np.minimum(np.searchsorted(cdf[t], u[sel], side="right"), ALPHABET - 1)
    lo = np.maximum(0, np.floor(mean - TAIL_SIGMAS * scales)).astype(np.int64)
    hi = np.minimum(ALPHABET - 1, np.ceil(mean + TAIL_SIGMAS * scales)).astype(np.int64)
    sizes = hi - lo + 1
    body = np.zeros((GAUSS_TABLES, int(sizes.max())))
    for t in range(GAUSS_TABLES):
        body[t, :sizes[t]] = pmfs[t, lo[t]:hi[t] + 1]
    tables = CdfTables.from_pmf(body, offsets=lo, sizes=sizes)
    data = rans.encode(sym, idx, tables)
    ideal = float(-np.log2(pmfs[idx, sym]).sum())
    return {"sym": sym, "idx": idx, "pmfs": pmfs, "tables": tables, "data": data, "ideal_bits": ideal}


def test_gauss_stream_round_trips(gauss: dict[str, Any]) -> None:
    np.testing.assert_array_equal(rans.decode(gauss["data"], gauss["idx"], gauss["tables"]), gauss["sym"])


def test_gauss_stream_within_0p1_percent_of_ideal(gauss: dict[str, Any]) -> None:
    bits = 8 * len(gauss["data"])
    assert bits <= 1.001 * gauss["ideal_bits"]
    assert bits >= 0.999 * gauss["ideal_bits"]  # a sanity check of the measurement itself


def test_gauss_stream_within_0p1_percent_of_constriction(gauss: dict[str, Any]) -> None:
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    for t in range(GAUSS_TABLES):  # the stream size does not depend on the symbol order
        model = constriction.stream.model.Categorical(gauss["pmfs"][t], perfect=False)
        coder.encode_reverse(gauss["sym"][gauss["idx"] == t], model)
    theirs = coder.get_compressed().nbytes
    assert len(gauss["data"]) <= 1.001 * theirs


def test_default_lane_flush_is_under_half_a_percent(gauss: dict[str, Any]) -> None:
    header = rans.read_header(gauss["data"])
    assert header.lanes == rans.default_lanes(GAUSS_N) == GAUSS_N // rans.SYMBOLS_PER_LANE
    flush = header.lanes * rans.LANE_BYTES + rans.HEADER_BYTES
    assert flush == header.overhead_bytes
    assert flush <= 0.005 * (len(gauss["data"]) - flush)


def test_many_lanes_cost_only_their_flush(gauss: dict[str, Any]) -> None:
    """GPU-style lane counts change the size by about 12 bytes per lane, not more."""
    sym, idx, tables = gauss["sym"][: 1 << 16], gauss["idx"][: 1 << 16], gauss["tables"]
    one = len(rans.encode(sym, idx, tables, lanes=1))
    many = rans.encode(sym, idx, tables, lanes=4096)
    assert abs(len(many) - one - 4095 * rans.LANE_BYTES) <= 4096 * 8
    np.testing.assert_array_equal(rans.decode(many, idx, tables), sym)


def test_default_lanes() -> None:
    assert rans.default_lanes(0) == 1
    assert rans.default_lanes(65535) == 1
    assert rans.default_lanes(65536 * 3 + 5) == 3
    assert rans.default_lanes(1 << 60) == rans.MAX_LANES


def test_escape_heavy_stream_takes_the_exact_bound_path() -> None:
    """More escapes than the encoder's first guess (1 in 32 per lane) must still round-trip."""
    tables = CdfTables.from_pmf(np.array([[0.5, 0.3, 0.2]]))
    rng = np.random.default_rng(7)
    symbols = rng.integers(-(2**31), 2**31 - 1, 20000).astype(np.int32)  # nearly all outside 0..2
    for lanes in (1, 3, 64):
        data = rans.encode(symbols, 0, tables, lanes=lanes)
        assert np.array_equal(rans.decode(data, 0, tables), symbols)
