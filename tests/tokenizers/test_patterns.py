"""Codebook interleaving patterns: round trips, step counts, causality, logits, errors."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncodec.errors
from ncodec.tokenizers import (PATTERNS, CoarseFirstPattern, DelayPattern, FlattenPattern, ParallelPattern, Pattern,
                               PatternError, StackAndDelayPattern, get_pattern)

NAMES = sorted(PATTERNS)
SHAPES = [(1, 1), (1, 7), (2, 1), (4, 1), (4, 10), (3, 5), (8, 16)]
SPECIAL = 1024


def random_codes(b: int, k: int, t: int, card: int = SPECIAL, seed: int = 0) -> torch.Tensor:
    """Codes ``[b, k, t]`` in ``[0, card)``."""
    return torch.randint(0, card, (b, k, t), generator=torch.Generator().manual_seed(seed))


def one_hot_logits(sequence: torch.Tensor, card: int) -> torch.Tensor:
    """Logits ``[B, card, K, S]`` whose argmax is ``sequence`` (special tokens clamped into range)."""
    return torch.nn.functional.one_hot(sequence.clamp(0, card - 1), card).permute(0, 3, 1, 2).float()


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k,t", SHAPES)
def test_round_trip_and_mask(name: str, k: int, t: int) -> None:
    pattern = get_pattern(name, k)
    codes = random_codes(3, k, t)
    sequence, mask = pattern.build(codes, SPECIAL)
    steps = pattern.num_steps(t)
    assert sequence.shape == (3, k, steps) and sequence.dtype == codes.dtype
    assert mask.shape == (k, steps) and mask.dtype == torch.bool
    assert int(mask.sum()) == k * t
    assert bool((sequence[:, ~mask] == SPECIAL).all()) and bool((sequence[:, mask] != SPECIAL).all())
    reverted, rmask = pattern.revert(sequence)
    assert torch.equal(reverted, codes) and bool(rmask.all()) and rmask.shape == (k, t)
    assert pattern.num_timesteps(steps) == t


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), k=st.integers(1, 6), t=st.integers(1, 24), b=st.integers(0, 3),
       seed=st.integers(0, 2**16))
def test_round_trip_property(name: str, k: int, t: int, b: int, seed: int) -> None:
    pattern = get_pattern(name, k)
    codes = random_codes(b, k, t, seed=seed)
    sequence, mask = pattern.build(codes, -1)
    assert int(mask.sum()) == k * t
    assert torch.equal(pattern.revert(sequence)[0], codes)
    step = pattern.step_index(t)
    assert bool((step[:, 1:] > step[:, :-1]).all())  # each codebook's frames come in time order
    assert int(step.max()) < pattern.num_steps(t)


def test_dtypes_and_noncontiguous_inputs_are_kept() -> None:
    pattern = get_pattern("delay", 4)
    codes = random_codes(2, 10, 4).transpose(1, 2).to(torch.int32)  # [2, 4, 10], not contiguous
    sequence, _ = pattern.build(codes, -1)
    assert sequence.dtype == torch.int32
    assert torch.equal(pattern.revert(sequence)[0], codes)


# ---------------------------------------------------------------- step counts
@pytest.mark.parametrize("name,k,t,steps", [
    ("parallel", 4, 10, 10), ("parallel", 1, 1, 1),
    ("delay", 4, 10, 13), ("delay", 4, 1, 4), ("delay", 1, 5, 5), ("delay", 8, 16, 23),
    ("flatten", 4, 10, 40), ("flatten", 4, 1, 4), ("unroll", 3, 5, 15),
    ("coarse_first", 4, 10, 20), ("coarse_first", 2, 1, 2), ("coarse_first", 1, 10, 10),
    ("stack_and_delay", 4, 10, 12), ("stack_and_delay", 2, 10, 10), ("stack_and_delay", 1, 3, 3),
])
def test_step_counts(name: str, k: int, t: int, steps: int) -> None:
    pattern = get_pattern(name, k)
    assert pattern.num_steps(t) == steps
    assert pattern.build(random_codes(1, k, t), -1)[0].shape[2] == steps


def test_step_counts_with_options() -> None:
    assert get_pattern("delay", 4, delays=[0, 2, 2, 5]).num_steps(10) == 15
    assert get_pattern("stack_and_delay", 8, stacked=3).num_steps(10) == 15       # groups 3,1,1,1,1,1
    assert get_pattern("stack_and_delay", 8, groups=[2, 2, 4]).num_steps(10) == 12
    assert get_pattern("stack_and_delay", 4, stacked=4).num_steps(10) == 10       # = parallel
    assert get_pattern("stack_and_delay", 4, stacked=1).num_steps(10) == 13       # = delay


# ---------------------------------------------------------------- where codes land
def test_delay_is_causal_codebook_k_at_step_t_plus_k() -> None:
    k, t = 4, 10
    codes = random_codes(2, k, t)
    sequence, mask = DelayPattern(k).build(codes, SPECIAL)
    for kk in range(k):
        for tt in range(t):
            assert torch.equal(sequence[:, kk, tt + kk], codes[:, kk, tt])
            assert mask[kk, tt + kk]
    expected = torch.arange(t)[None] + torch.arange(k)[:, None]
    assert torch.equal(DelayPattern(k).step_index(t), expected)


def test_delay_example_grid() -> None:
    codes = torch.tensor([[[1, 2, 3, 4]] * 3])
    sequence, _ = DelayPattern(3).build(codes, 0)
    assert sequence[0].tolist() == [[1, 2, 3, 4, 0, 0], [0, 1, 2, 3, 4, 0], [0, 0, 1, 2, 3, 4]]


def test_custom_delays_and_stacking() -> None:
    step = DelayPattern(3, delays=[0, 2, 2]).step_index(4)
    assert step.tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [2, 3, 4, 5]]
    stacked = StackAndDelayPattern(4, stacked=2).step_index(3)
    assert stacked.tolist() == [[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    grouped = StackAndDelayPattern(5, groups=[1, 2, 2]).step_index(2)
    assert grouped.tolist() == [[0, 1], [1, 2], [1, 2], [2, 3], [2, 3]]
    assert torch.equal(StackAndDelayPattern(4, stacked=1).step_index(6), DelayPattern(4).step_index(6))
    assert torch.equal(StackAndDelayPattern(4, groups=[4]).step_index(6), ParallelPattern(4).step_index(6))


def test_flatten_and_coarse_first_positions() -> None:
    assert FlattenPattern(3).step_index(2).tolist() == [[0, 3], [1, 4], [2, 5]]
    assert CoarseFirstPattern(3).step_index(3).tolist() == [[0, 1, 2], [3, 4, 5], [3, 4, 5]]
    sequence, mask = CoarseFirstPattern(3).build(torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]), 0)
    assert sequence[0].tolist() == [[1, 2, 3, 0, 0, 0], [0, 0, 0, 4, 5, 6], [0, 0, 0, 7, 8, 9]]
    assert mask.sum(dim=0).tolist() == [1, 1, 1, 2, 2, 2]  # the fine codebooks go in parallel


def test_parallel_has_no_special_tokens() -> None:
    codes = random_codes(2, 4, 6)
    sequence, mask = ParallelPattern(4).build(codes, SPECIAL)
    assert torch.equal(sequence, codes) and bool(mask.all())


# ---------------------------------------------------------------- logits
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k,t", [(1, 1), (4, 1), (4, 10), (3, 7)])
def test_revert_logits_matches_codes(name: str, k: int, t: int) -> None:
    card = 16
    pattern = get_pattern(name, k)
    codes = random_codes(2, k, t, card=card)
    sequence, _ = pattern.build(codes, card)  # special token outside the codebook
    logits = one_hot_logits(sequence, card)
    out, out_mask = pattern.revert_logits(logits)
    assert out.shape == (2, card, k, t) and out.dtype == logits.dtype and bool(out_mask.all())
    assert torch.equal(out.argmax(dim=1), codes)
    assert torch.equal(out.argmax(dim=1), pattern.revert(sequence)[0])
    loss = torch.nn.functional.cross_entropy(out, codes)  # the layout cross-entropy takes
    assert torch.isfinite(loss)


def test_revert_logits_from_channels_last_head() -> None:
    pattern = get_pattern("delay", 4)
    codes = random_codes(1, 4, 5, card=8)
    sequence, _ = pattern.build(codes, 8)
    head = one_hot_logits(sequence, 8).permute(0, 2, 3, 1)  # [B, K, S, card]
    out, _ = pattern.revert_logits(head.permute(0, 3, 1, 2))
    assert torch.equal(out.argmax(dim=1), codes)


def test_revert_logits_keeps_gradients() -> None:
    pattern = get_pattern("flatten", 2)
    logits = torch.randn(1, 5, 2, 6, requires_grad=True)
    out, _ = pattern.revert_logits(logits)
    out.sum().backward()
    assert logits.grad is not None and float(logits.grad.sum()) == 2 * 3 * 5  # each valid slot once


# ---------------------------------------------------------------- partial sequences
@pytest.mark.parametrize("name", NAMES)
def test_revert_prefix_with_timesteps(name: str) -> None:
    k, t = 4, 6
    pattern = get_pattern(name, k)
    codes = random_codes(2, k, t)
    sequence, _ = pattern.build(codes, SPECIAL)
    step = pattern.step_index(t)
    for s in range(1, pattern.num_steps(t) + 1):
        reverted, mask = pattern.revert(sequence[..., :s], timesteps=t, fill=-7)
        assert torch.equal(mask, step < s)
        assert torch.equal(reverted[:, mask], codes[:, mask])
        assert bool((reverted[:, ~mask] == -7).all())
        logits, lmask = pattern.revert_logits(one_hot_logits(sequence[..., :s], SPECIAL + 1), timesteps=t)
        assert torch.equal(lmask, mask) and bool((logits[:, :, ~mask] == 0).all())


# ---------------------------------------------------------------- caching
def test_index_tables_are_cached_per_length_and_device() -> None:
    pattern = get_pattern("delay", 4)
    calls: list[int] = []
    original = pattern._steps

    def counting(timesteps: int) -> torch.Tensor:
        calls.append(timesteps)
        return original(timesteps)

    pattern._steps = counting  # type: ignore[method-assign]
    codes = random_codes(2, 4, 10)
    for _ in range(3):
        sequence, mask = pattern.build(codes, -1)
        pattern.revert(sequence)
        pattern.revert_logits(one_hot_logits(sequence, SPECIAL))
    assert calls == [10]
    mask[:] = False  # handing out a mask never exposes the cache
    assert bool(pattern.build(codes, -1)[1].any())
    pattern.build(random_codes(1, 4, 3), -1)
    assert calls == [10, 3]


# ---------------------------------------------------------------- errors
def test_pattern_error_is_an_ncodec_error() -> None:
    assert issubclass(PatternError, ncodec.errors.Error) and issubclass(PatternError, ValueError)


@pytest.mark.parametrize("bad", [
    torch.zeros(4, 10, dtype=torch.long),          # no batch dim
    torch.zeros(1, 3, 10, dtype=torch.long),       # wrong K
    torch.zeros(1, 4, 0, dtype=torch.long),        # no frames
    torch.zeros(1, 4, 10),                         # float codes
    torch.zeros(1, 4, 10, dtype=torch.bool),
    [[0, 1]],                                      # not a tensor
])
@pytest.mark.parametrize("name", NAMES)
def test_build_rejects_bad_codes(name: str, bad: object) -> None:
    with pytest.raises(PatternError):
        get_pattern(name, 4).build(bad, -1)  # type: ignore[arg-type]


def test_build_rejects_bad_special_token() -> None:
    codes = torch.zeros(1, 4, 5, dtype=torch.uint8)
    with pytest.raises(PatternError, match="does not fit"):
        get_pattern("delay", 4).build(codes, -1)
    with pytest.raises(PatternError, match="special_token"):
        get_pattern("delay", 4).build(codes.long(), 1.5)  # type: ignore[arg-type]


def test_revert_rejects_bad_sequences() -> None:
    with pytest.raises(PatternError, match="multiple of 4"):
        get_pattern("flatten", 4).revert(torch.zeros(1, 4, 10, dtype=torch.long))
    with pytest.raises(PatternError, match="more than 3 steps"):
        get_pattern("delay", 4).revert(torch.zeros(1, 4, 3, dtype=torch.long))
    with pytest.raises(PatternError, match="even number"):
        get_pattern("coarse_first", 4).revert(torch.zeros(1, 4, 7, dtype=torch.long))
    with pytest.raises(PatternError, match="longer than"):
        get_pattern("delay", 4).revert(torch.zeros(1, 4, 14, dtype=torch.long), timesteps=10)
    with pytest.raises(PatternError):
        get_pattern("delay", 4).revert(torch.zeros(1, 5, 13, dtype=torch.long))
    with pytest.raises(PatternError):
        get_pattern("delay", 4).revert(torch.zeros(1, 4, 13))
    with pytest.raises(PatternError, match="timesteps"):
        get_pattern("delay", 4).revert(torch.zeros(1, 4, 13, dtype=torch.long), timesteps=0)


def test_revert_logits_rejects_bad_logits() -> None:
    pattern = get_pattern("delay", 4)
    with pytest.raises(PatternError, match="permute"):
        pattern.revert_logits(torch.zeros(1, 4, 13, 16))  # [B, K, S, card]
    with pytest.raises(PatternError):
        pattern.revert_logits(torch.zeros(4, 13, 16))
    with pytest.raises(PatternError, match="floating"):
        pattern.revert_logits(torch.zeros(1, 16, 4, 13, dtype=torch.long))
    with pytest.raises(PatternError, match="timesteps="):
        pattern.revert_logits(torch.zeros(1, 16, 4, 3))  # too short to infer T: only as a prefix
    assert pattern.revert_logits(torch.zeros(1, 16, 4, 3), timesteps=10)[0].shape == (1, 16, 4, 10)


@pytest.mark.parametrize("make", [
    lambda: get_pattern("nope", 4),
    lambda: get_pattern("delay", 0),
    lambda: get_pattern("delay", 4, delays=[0, 1, 2]),
    lambda: get_pattern("delay", 4, delays=[0, 1, -1, 2]),
    lambda: get_pattern("delay", 4, stacked=2),
    lambda: get_pattern("parallel", 4, delays=[0, 0, 0, 0]),
    lambda: get_pattern("stack_and_delay", 4, stacked=5),
    lambda: get_pattern("stack_and_delay", 4, stacked=0),
    lambda: get_pattern("stack_and_delay", 4, groups=[2, 1]),
    lambda: get_pattern("stack_and_delay", 4, groups=[2, 2], stacked=2),
    lambda: FlattenPattern(True),  # type: ignore[arg-type]
    lambda: FlattenPattern(4).num_steps(0),
])
def test_bad_settings(make: object) -> None:
    with pytest.raises(PatternError):
        make()  # type: ignore[operator]


# ---------------------------------------------------------------- registry
def test_registry_and_factory() -> None:
    assert set(PATTERNS) == {"parallel", "delay", "flatten", "coarse_first", "stack_and_delay"}
    for name, cls in PATTERNS.items():
        pattern = get_pattern(name, 4)
        assert type(pattern) is cls and isinstance(pattern, Pattern) and pattern.name == name
    assert isinstance(get_pattern("unroll", 4), FlattenPattern)
    assert isinstance(get_pattern("Coarse-First", 4), CoarseFirstPattern)
    assert get_pattern("delay", 3, delays=[0, 0, 1]).delays == (0, 0, 1)
    assert "delays=[0, 1, 2]" in repr(get_pattern("delay", 3))
