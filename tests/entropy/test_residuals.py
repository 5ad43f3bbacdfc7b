"""Tests of the forward-adaptive residual coder (`ncodec.entropy.residuals`) over the rANS core."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncodec.entropy import rans
from ncodec.entropy import residuals as R
from ncodec.errors import BitstreamError

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
SETTINGS = settings(deadline=None, max_examples=100)
BANK = R.table_bank()


# ====================================================================== helpers
def discrete_laplace(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Two-sided geometric residuals, P(r) ~ theta**|r| with theta = exp(-1/scale)."""
    if scale == 0:
        return np.zeros(n, dtype=np.int64)
    p = -math.expm1(-1.0 / scale)  # 1 - theta, accurate for large scales
    return rng.geometric(p, n).astype(np.int64) - rng.geometric(p, n)


def gaussian(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.rint(rng.normal(0.0, scale, n)).astype(np.int64)


def student_t(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Heavy tails (2 degrees of freedom): rare huge values among small ones."""
    return np.clip(np.rint(rng.standard_t(2.0, n) * scale), -(2 ** 30), 2 ** 30).astype(np.int64)


GENERATORS = {"laplace": discrete_laplace, "gauss": gaussian, "student": student_t}


def encode_blocks(blocks: list[np.ndarray], max_order: int = 6, min_partition: int = 16,
                  lanes: int | None = None) -> tuple[bytes, list[R.Plan]]:
    """One stream holding, per block, its plan then its residual symbols."""
    syms, idxs, plans = [], [], []
    for block in blocks:
        plan = R.plan_partitions(block, max_order=max_order, min_partition=min_partition)
        for s, i in (R.plan_symbols(plan), R.residual_symbols(block, plan)):
            syms.append(s)
            idxs.append(i)
        plans.append(plan)
    sym = np.concatenate(syms) if syms else np.zeros(0, np.int32)
    idx = np.concatenate(idxs) if idxs else np.zeros(0, np.int32)
    return rans.encode(sym, idx, BANK, lanes=lanes), plans


def decode_blocks(data: bytes, lengths: list[int], max_order: int = 6) -> tuple[list[np.ndarray], list[R.Plan]]:
    dec = rans.Decoder(data, BANK)
    blocks, plans = [], []
    for n in lengths:
        plan = R.decode_plan(dec, n, max_order=max_order)
        blocks.append(R.decode_residual(dec, plan))
        plans.append(plan)
    dec.finish()
    return blocks, plans


def assert_round_trip(blocks: list[np.ndarray], **kw: Any) -> tuple[bytes, list[R.Plan]]:
    data, plans = encode_blocks(blocks, **kw)
    out, decoded_plans = decode_blocks(data, [b.size for b in blocks], kw.get("max_order", 6))
    for block, got, plan, dplan in zip(blocks, out, plans, decoded_plans):
        np.testing.assert_array_equal(got, block)
        np.testing.assert_array_equal(dplan.bounds, plan.bounds)
        np.testing.assert_array_equal(dplan.shift, plan.shift)
        np.testing.assert_array_equal(dplan.mean, plan.mean)
    return data, plans


def payload_bits(data: bytes) -> int:
    return 8 * (len(data) - rans.read_header(data).overhead_bytes)


def ml_laplace_bits(r: np.ndarray, bounds: np.ndarray) -> float:
    """Ideal bits with the maximum-likelihood two-sided geometric fitted to each partition."""
    total = 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        x = np.abs(r[a:b]).astype(np.float64)
        if x.size == 0 or x.sum() == 0:
            continue
        m = x.mean()
        theta = (math.sqrt(1.0 + m * m) - 1.0) / m   # ML: E|r| = 2 theta / (1 - theta**2)
        total += -x.size * math.log2((1 - theta) / (1 + theta)) - x.sum() * math.log2(theta)
    return total


def side_bits(plan: R.Plan) -> int:
    return R.ORDER_BITS + (R.SHIFT_BITS + R.MEAN_BITS) * plan.shift.size


# ================================================================= round trips
SCALES = [0, 0.1, 3, 100, 1e5, 1e7]


@pytest.mark.parametrize("kind", sorted(GENERATORS))
@pytest.mark.parametrize("scale", SCALES)
def test_round_trip_by_distribution_and_scale(kind: str, scale: float) -> None:
    rng = np.random.default_rng(int(scale * 10) + len(kind))
    blocks = [GENERATORS[kind](rng, n, scale) for n in (1, 2, 17, 1000, 4096)]
    assert_round_trip(blocks)


@SETTINGS
@given(st.integers(1, 5000), st.sampled_from(sorted(GENERATORS)), st.sampled_from(SCALES),
       st.integers(0, 8), st.sampled_from([1, 4, 16, 64]), st.integers(0, 2 ** 32 - 1))
def test_round_trip_random_blocks(n: int, kind: str, scale: float, max_order: int, min_partition: int,
                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    block = GENERATORS[kind](rng, n, scale)
    if rng.random() < 0.3:  # a loud stretch inside a quiet block
        start = int(rng.integers(0, n))
        block[start:start + int(rng.integers(1, n + 1))] *= int(rng.integers(2, 5000))
        block = np.clip(block, -(2 ** 30), 2 ** 30)
    data, (plan,) = assert_round_trip([block], max_order=max_order, min_partition=min_partition)
    assert 0 <= plan.order <= max_order
    assert plan.bounds[0] == 0 and plan.bounds[-1] == n and np.all(np.diff(plan.bounds) >= 0)
    assert np.all((plan.shift >= 0) & (plan.shift <= R.MAX_SHIFT))
    assert np.all((plan.mean >= 0) & (plan.mean < R.MEAN_STEPS))


def test_many_blocks_in_one_stream_and_other_lane_counts() -> None:
    rng = np.random.default_rng(5)
    blocks = [discrete_laplace(rng, int(n), float(s)) for n, s in zip(rng.integers(0, 3000, 12),
                                                                      np.exp(rng.uniform(-3, 12, 12)))]
    single, _ = assert_round_trip(blocks)
    many, _ = assert_round_trip(blocks, lanes=7)
    assert single != many


def test_empty_block_round_trips() -> None:
    data, (plan,) = assert_round_trip([np.zeros(0, np.int64)])
    assert plan.order == 0 and plan.bounds.tolist() == [0, 0]


def test_extreme_values_round_trip() -> None:
    quiet = np.zeros(500, np.int64)
    blocks = [np.array([INT32_MAX, INT32_MIN, 0, 1, -1]), np.full(64, INT32_MAX), np.full(64, INT32_MIN),
              np.concatenate([quiet, [INT32_MIN], quiet, [INT32_MAX]]), np.array([2 ** 30, -(2 ** 30)] * 40)]
    assert_round_trip(blocks)


# =========================================================== partition choice
def test_mixed_scale_block_picks_partitions_and_saves_bits() -> None:
    rng = np.random.default_rng(8)
    block = np.concatenate([discrete_laplace(rng, 2048, 0.5), discrete_laplace(rng, 2048, 2000.0)])
    data, (plan,) = assert_round_trip([block])
    flat, (flat_plan,) = assert_round_trip([block], max_order=0)
    assert plan.order > 0 and flat_plan.order == 0
    quiet = plan.bounds[1:] <= 2048
    assert np.all(plan.shift[quiet] < plan.shift[~quiet].min())
    assert payload_bits(data) < 0.9 * payload_bits(flat)
    assert plan.bits < flat_plan.bits


def test_quiet_loud_quiet_needs_order_two_or_more() -> None:
    rng = np.random.default_rng(9)
    block = np.concatenate([discrete_laplace(rng, 1024, 1.0), discrete_laplace(rng, 1024, 1e5),
                            discrete_laplace(rng, 2048, 1.0)])
    _, (plan,) = assert_round_trip([block])
    assert plan.order >= 2


def test_stationary_block_stays_unpartitioned() -> None:
    _, (plan,) = assert_round_trip([discrete_laplace(np.random.default_rng(10), 4096, 20.0)])
    assert plan.order == 0


def test_partition_bounds() -> None:
    assert R.partition_bounds(10, 2).tolist() == [0, 2, 5, 7, 10]
    assert R.partition_bounds(3, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3]
    assert R.partition_bounds(0, 0).tolist() == [0, 0]


def test_plan_partitions_rejects_bad_max_order() -> None:
    for bad in (-1, 16):
        with pytest.raises(ValueError):
            R.plan_partitions(np.zeros(10), max_order=bad)


# ================================================================ coded size
@pytest.mark.parametrize("scale", [0.5, 3, 30, 1000, 1e5, 1e7])
def test_laplacian_size_within_1_percent_of_ml_ideal(scale: float) -> None:
    rng = np.random.default_rng(int(scale) + 1)
    block = discrete_laplace(rng, 20000, scale)
    data, (plan,) = assert_round_trip([block])
    ideal = ml_laplace_bits(block, plan.bounds)
    actual = payload_bits(data) - side_bits(plan)
    assert actual <= 1.01 * ideal + 64
    assert actual >= 0.99 * ideal - 64  # sanity: the ideal is measured right
    # the plan's own estimate, side information included
    assert abs(plan.bits - payload_bits(data)) <= 0.03 * payload_bits(data) + 64


@pytest.mark.parametrize("scales", [(0.5, 200.0), (3.0, 3e4, 3.0, 30.0)])
def test_mixed_laplacian_size_within_1_percent_of_per_partition_ideal(scales: tuple[float, ...]) -> None:
    rng = np.random.default_rng(len(scales))
    block = np.concatenate([discrete_laplace(rng, 4096, s) for s in scales])
    data, (plan,) = assert_round_trip([block])
    assert plan.order > 0
    actual = payload_bits(data) - side_bits(plan)
    assert actual <= 1.01 * ml_laplace_bits(block, plan.bounds) + 64


# The bank's smallest table mean is 2**-6, so a sample costs at least ~0.0225 bit (P(0) = 64520 / 2**16).
QUIET_FLOOR_BITS = -math.log2(64520 / 65536) + 1e-4


@pytest.mark.parametrize("scale", [0, 0.1, 0.2])
def test_very_quiet_blocks_cost_at_most_the_bank_floor(scale: float) -> None:
    rng = np.random.default_rng(12)
    block = discrete_laplace(rng, 20000, scale)
    data, (plan,) = assert_round_trip([block])
    floor = block.size * QUIET_FLOOR_BITS + (np.abs(block) > 0).sum() * 12
    assert payload_bits(data) <= max(1.01 * ml_laplace_bits(block, plan.bounds), floor) + side_bits(plan) + 64


@pytest.mark.parametrize("scale", [0, 0.1])
def test_plan_estimate_of_a_very_quiet_block(scale: float) -> None:
    block = discrete_laplace(np.random.default_rng(13), 20000, scale)
    data, (plan,) = assert_round_trip([block])
    assert abs(plan.bits - payload_bits(data)) <= 0.05 * payload_bits(data) + 64


# ================================================================ raw fields
def encode_symbols(*parts: tuple[np.ndarray, np.ndarray]) -> bytes:
    return rans.encode(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), BANK)


@pytest.mark.parametrize("bits", range(1, 35))
def test_raw_fields_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    values = np.concatenate([[0, top, top >> 1, (top >> 1) + 1], rng.integers(0, top, 200, endpoint=True)])
    half = 1 << (bits - 1)
    signed = np.concatenate([[-half, half - 1, 0, -1 if bits > 1 else 0], rng.integers(-half, half, 200)])
    sym, idx = R.raw_symbols(values, bits)
    assert sym.dtype == np.int32 and idx.dtype == np.int32
    assert sym.size == values.size * math.ceil(bits / R.UNIFORM_MAX_BITS)
    data = encode_symbols((sym, idx), R.signed_raw_symbols(signed, bits))
    dec = rans.Decoder(data, BANK)
    np.testing.assert_array_equal(R.decode_raw(dec, values.size, bits), values)
    np.testing.assert_array_equal(R.decode_signed_raw(dec, signed.size, bits), signed)
    dec.finish()
    # A uniform field costs its width (within the 2**-16 the escape takes from each table).
    assert abs(BANK.code_lengths(sym, idx).sum() - bits * values.size) <= 1e-3 * bits * values.size


def test_zero_width_and_zero_count_fields() -> None:
    sym, idx = R.raw_symbols(np.array([0, 0]), 0)
    assert sym.size == 0 and idx.size == 0
    data = rans.encode(np.zeros(0, np.int32), np.zeros(0, np.int32), BANK)
    dec = rans.Decoder(data, BANK)
    assert R.decode_raw(dec, 3, 0).tolist() == [0, 0, 0]
    assert R.decode_raw(dec, 0, 20).size == 0
    dec.finish()


def test_decode_raw_rejects_escaped_field_values() -> None:
    """A uniform table still has an escape: a decoded value outside the field is corruption."""
    for bad in (1 << 12, -1, 5000):
        data = rans.encode([bad], R.uniform_index(12), BANK)
        with pytest.raises(BitstreamError):
            R.decode_raw(rans.Decoder(data, BANK), 1, 12)


# ============================================================ corrupt plans
def plan_stream(order: int, params: list[tuple[int, int]], extra: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
    """A stream holding a plan header with arbitrary (possibly out-of-range) fields."""
    parts = [R.raw_symbols(np.array([order]), R.ORDER_BITS)]
    for k, a in params:
        parts += [R.raw_symbols(np.array([k]), R.SHIFT_BITS), R.raw_symbols(np.array([a]), R.MEAN_BITS)]
    if extra is not None:
        parts.append(extra)
    return encode_symbols(*parts)


@pytest.mark.parametrize("order, params, max_order", [
    (7, [(0, 0)] * 128, 6),            # order above the decoder's limit
    (15, [], 6),
    (3, [(0, 0)] * 8, 2),
    (0, [(25, 0)], 6),                 # shift above MAX_SHIFT
    (0, [(31, 0)], 6),
    (1, [(0, 0), (0, R.MEAN_STEPS)], 6),  # mean index beyond the bank
    (0, [(0, (1 << R.MEAN_BITS) - 1)], 6),
    (2, [(0, 0)], 6),                  # stream ends inside the plan
])
def test_decode_plan_rejects_out_of_range_fields(order: int, params: list[tuple[int, int]], max_order: int) -> None:
    data = plan_stream(order, params)
    with pytest.raises(BitstreamError):
        R.decode_plan(rans.Decoder(data, BANK), 100, max_order=max_order)


def test_decode_plan_accepts_the_extreme_valid_fields() -> None:
    data = plan_stream(1, [(R.MAX_SHIFT, R.MEAN_STEPS - 1), (0, 0)])
    plan = R.decode_plan(rans.Decoder(data, BANK), 10)
    assert plan.shift.tolist() == [R.MAX_SHIFT, 0] and plan.mean.tolist() == [R.MEAN_STEPS - 1, 0]
    assert plan.bounds.tolist() == [0, 5, 10]


@pytest.mark.parametrize("low, high", [(1 << 12, 0), (-1, 0), (0, 1 << 3), (0, -5)])
def test_decode_residual_rejects_out_of_range_low_bits(low: int, high: int) -> None:
    """k = 15: one quotient, 12 low bits and 3 high bits; escaped values there are corruption."""
    k, a = 15, 10
    tail = (np.array([0, low, high], np.int32),
            np.array([R.geometric_index(k, a), R.uniform_index(12), R.uniform_index(3)], np.int32))
    data = plan_stream(0, [(k, a)], tail)
    dec = rans.Decoder(data, BANK)
    plan = R.decode_plan(dec, 1)
    with pytest.raises(BitstreamError):
        R.decode_residual(dec, plan)


def test_bank_layout() -> None:
    assert BANK.num_tables == R._UNIFORM_BASE + R.UNIFORM_MAX_BITS + (R.SHAPES - 1) * R.MEAN_STEPS
    assert BANK.precision == 16
    for bits in range(1, R.UNIFORM_MAX_BITS + 1):
        t = int(R.uniform_index(bits))
        assert BANK.sizes[t] == 1 << bits and BANK.offsets[t] == 0
    assert int(R.geometric_index(0, 0)) == 0
    assert int(R.geometric_index(30, R.MEAN_STEPS - 1)) == R._UNIFORM_BASE - 1
    assert int(R.geometric_index(0, 0, 1)) == R._UNIFORM_BASE + R.UNIFORM_MAX_BITS
    assert int(R.geometric_index(0, R.MEAN_STEPS - 1, R.SHAPES - 1)) == BANK.num_tables - 1


def test_shaped_tables_are_zero_modified_laplace_laws() -> None:
    """Each shaped table's quantized P(0) is its factor x the Laplace table's, at the Laplace
    table's mean (for means of 1 and more; quieter ones cap P(0) and keep a short support)."""
    for shape, factor in enumerate(R.SHAPE_FACTORS, start=1):
        for a in (48, 52, 60):
            lap, shaped = int(R.geometric_index(0, a)), int(R.geometric_index(0, a, shape))
            p = [np.diff(BANK.cdf[t, :BANK.sizes[t] + 1].astype(np.int64)) / (1 << BANK.precision) for t in (lap, shaped)]
            zero = [p[i][-BANK.offsets[t]] for i, t in enumerate((lap, shaped))]
            assert zero[1] == pytest.approx(factor * zero[0], rel=0.01)
            values = np.arange(BANK.sizes[shaped]) + BANK.offsets[shaped]
            assert np.sum(p[1] * np.abs(values)) == pytest.approx(R._table_mean(a), rel=0.05)


def test_grouped_value_symbols_is_value_symbols_group_by_group():
    """All values at once give the symbols of coding each group (here: row) one after the other."""
    rng = np.random.default_rng(7)
    values = rng.laplace(0, np.exp(rng.uniform(0, 16, (9, 1))), (9, 13)).astype(np.int64)
    k = rng.integers(0, 18, (9, 13))            # shifts with and without low and high bits
    a = rng.integers(0, R.MEAN_STEPS, (9, 13))
    rows = [R.value_symbols(values[y], k[y], a[y]) for y in range(9)]
    sym, idx = R.grouped_value_symbols(values, k, a, np.repeat(np.arange(9), 13))
    np.testing.assert_array_equal(sym, np.concatenate([r[0] for r in rows]))
    np.testing.assert_array_equal(idx, np.concatenate([r[1] for r in rows]))
