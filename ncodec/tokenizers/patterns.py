"""Codebook interleaving patterns: how a language model walks multi-codebook audio tokens.

A codec with K codebooks gives codes ``[B, K, T]`` (`ncodec.quantizers.base` layout). A
language model predicts one *step* at a time, and at each step it emits at most one token
per codebook. A pattern decides at which step ``s`` the code ``(k, t)`` (codebook k, frame
t) is emitted; the built sequence is ``[B, K, S]``, row k holding only codebook k, with a
special token wherever a row has nothing at a step. Patterns here (``PATTERNS``):

    parallel         all K codebooks of frame t at step t                   S = T
    delay            codebook k of frame t at step t + delays[k]            S = T + max(delays)
                     (MusicGen; default delays[k] = k)
    flatten          one codebook per step, frame by frame ("unroll")       S = K * T
    coarse_first     codebook 0 for all frames, then codebooks 1..K-1       S = 2 T (T when K = 1)
                     of frame t together at step T + t (VALL-E)
    stack_and_delay  consecutive groups of codebooks, group g delayed by g  S = T + groups - 1
                     (``stacked=n``: the first n together, the rest delayed one by one)

Layout conventions, fixed for every pattern:

- The sequence has no leading start step: step 0 already holds codes. A model feeding it
  to a causal transformer shifts it right itself (a start token, then ``sequence[..., :-1]``),
  so its output at position s predicts ``sequence[..., s]``.
- ``revert_logits`` therefore takes logits *aligned with the sequence* (position s scores
  the token at step s), laid out ``[B, card, K, S]``, and returns ``[B, card, K, T]``: the
  class dimension at 1, as ``torch.nn.functional.cross_entropy(logits, codes)`` wants it.
  A head that gives ``[B, K, S, card]`` passes ``logits.permute(0, 3, 1, 2)`` (a view).
- Masks are ``[K, S]`` / ``[K, T]`` bool, shared by the batch, True where a real code is.

All work is one ``gather`` with index tensors computed once per ``(T, device)`` and cached.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import Error

__all__ = ["CoarseFirstPattern", "DelayPattern", "FlattenPattern", "PATTERNS", "ParallelPattern", "Pattern",
           "PatternError", "StackAndDelayPattern", "get_pattern"]

_CACHE_SIZE = 32  # index tables kept per pattern, most recently used first


class PatternError(Error, ValueError):
    """Codes, a sequence, logits or settings that an interleaving pattern cannot take."""


@dataclass(frozen=True)
class _Tables:
    """Index tensors of one pattern for one (T, device); never handed out without a copy."""

    step: Tensor      # int64 [K, T]: the step of code (k, t)
    source: Tensor    # int64 [K, S]: the frame t found at (k, s), 0 where there is none
    valid: Tensor     # bool [K, S]: a code is at (k, s)
    invalid: Tensor   # bool [K, S]: ~valid, kept to fill special tokens without a new mask
    full: bool        # every (k, s) holds a code (nothing to fill)


def _check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int, or a PatternError saying what ``name`` must be."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PatternError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_fits(name: str, value: object, dtype: torch.dtype) -> None:
    """Raise unless ``value`` is a Python int that ``dtype`` (an integer dtype) can hold."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PatternError(f"{name} must be an int, got {value!r}")
    info = torch.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise PatternError(f"{name}={value} does not fit the tensor's dtype {dtype}")


def _shape(x: Tensor) -> tuple[int, ...]:
    """The shape as a plain tuple, for messages."""
    return tuple(x.shape)


class Pattern:
    """Base class: subclasses give ``num_steps``, ``num_timesteps`` and ``_steps``; build / revert are shared."""

    name = ""

    def __init__(self, n_q: int):
        self.n_q = _check_int("n_q (the number of codebooks)", n_q, 1)
        self._cache: OrderedDict[tuple[int, torch.device], _Tables] = OrderedDict()

    # ------------------------------------------------------------ per pattern
    def num_steps(self, timesteps: int) -> int:  # pragma: no cover - abstract
        """Sequence steps S for T frames."""
        raise NotImplementedError

    def num_timesteps(self, num_steps: int) -> int:  # pragma: no cover - abstract
        """Frames T of a complete sequence of S steps (PatternError if no T gives S)."""
        raise NotImplementedError

    def _steps(self, timesteps: int) -> Tensor:  # pragma: no cover - abstract
        """int64 ``[K, T]`` on the CPU: the step of code (k, t); distinct within each row."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_q={self.n_q})"

    # ------------------------------------------------------------ index tables
    def _tables(self, timesteps: int, device: torch.device) -> _Tables:
        """Cached index tables for ``timesteps`` frames on ``device``."""
        key = (timesteps, device)
        tables = self._cache.get(key)
        if tables is None:
            tables = self._make_tables(timesteps, device)
            self._cache[key] = tables
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return tables

    def _make_tables(self, timesteps: int, device: torch.device) -> _Tables:
        """Invert the step map into per-slot sources with two scatters (on the CPU, then moved)."""
        k, t, s = self.n_q, timesteps, self.num_steps(timesteps)
        step = self._steps(t)
        source = torch.zeros(k, s, dtype=torch.long).scatter_(1, step, torch.arange(t).expand(k, t))
        valid = torch.zeros(k, s, dtype=torch.bool).scatter_(1, step, True)
        if step.shape != (k, t) or int(valid.sum()) != k * t:  # a pattern bug, not a user error
            raise RuntimeError(f"{self!r}: two codes of a codebook share a step for T={t}")
        full = bool(valid.all())
        return _Tables(step.to(device), source.to(device), valid.to(device), (~valid).to(device), full)

    def step_index(self, timesteps: int, device: torch.device | str | None = None) -> Tensor:
        """int64 ``[K, T]``: the step at which code (k, t) is emitted (a copy; for masks and schedules)."""
        t = _check_int("timesteps", timesteps, 1)
        return self._tables(t, torch.device(device or "cpu")).step.clone()

    # ------------------------------------------------------------ input checks
    def _check_codes(self, x: Tensor, what: str) -> None:
        """Raise unless ``x`` is an integer ``[B, K, N]`` tensor with N >= 1."""
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] != self.n_q or x.shape[2] < 1:
            got = _shape(x) if isinstance(x, Tensor) else type(x).__name__
            raise PatternError(f"{what} must be [B, {self.n_q}, {'T' if what == 'codes' else 'S'} >= 1] "
                               f"for {self!r}, got {got}")
        if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
            raise PatternError(f"{what} must be an integer tensor, got {x.dtype}")

    def _check_logits(self, x: Tensor) -> None:
        """Raise unless ``x`` is a floating ``[B, card, K, S]`` tensor with S >= 1."""
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[2] != self.n_q or x.shape[3] < 1:
            got = _shape(x) if isinstance(x, Tensor) else type(x).__name__
            raise PatternError(f"logits must be [B, card, {self.n_q}, S >= 1] for {self!r}, got {got} "
                               "(a [B, K, S, card] head output: pass logits.permute(0, 3, 1, 2))")
        if not x.is_floating_point():
            raise PatternError(f"logits must be a floating-point tensor, got {x.dtype}")

    def _frames_for(self, num_steps: int, timesteps: int | None) -> int:
        """T of a sequence of ``num_steps`` steps: given (a prefix is allowed) or inferred (complete only)."""
        if timesteps is None:
            return self.num_timesteps(num_steps)
        t = _check_int("timesteps", timesteps, 1)
        if num_steps > self.num_steps(t):
            raise PatternError(f"a sequence of {num_steps} steps is longer than {self!r} makes for "
                               f"T={t} ({self.num_steps(t)} steps)")
        return t

    # ------------------------------------------------------------ build / revert
    def build(self, codes: Tensor, special_token: int) -> tuple[Tensor, Tensor]:
        """Codes ``[B, K, T]`` -> (sequence ``[B, K, S]``, special token in empty slots; valid mask ``[K, S]``)."""
        self._check_codes(codes, "codes")
        _check_fits("special_token", special_token, codes.dtype)
        b, k, t = codes.shape
        tables = self._tables(t, codes.device)
        sequence = codes.gather(2, tables.source.expand(b, k, -1))
        if not tables.full:
            sequence.masked_fill_(tables.invalid, special_token)
        return sequence, tables.valid.clone()

    def revert(self, sequence: Tensor, timesteps: int | None = None, fill: int = -1) -> tuple[Tensor, Tensor]:
        """Sequence ``[B, K, S]`` -> (codes ``[B, K, T]``, mask ``[K, T]`` of the codes the sequence reaches).

        Without ``timesteps`` the sequence must be complete (S = ``num_steps(T)`` for some T).
        With it, S may stop short (generation in progress): codes past step S - 1 are ``fill``
        and False in the mask.
        """
        self._check_codes(sequence, "sequence")
        t = self._frames_for(sequence.shape[2], timesteps)
        if sequence.shape[2] < self.num_steps(t):
            _check_fits("fill", fill, sequence.dtype)
        return self._revert(sequence, t, fill)

    def revert_logits(self, logits: Tensor, timesteps: int | None = None,
                      fill: float = 0.0) -> tuple[Tensor, Tensor]:
        """Logits ``[B, card, K, S]`` aligned with the sequence -> (logits ``[B, card, K, T]``, mask ``[K, T]``).

        Position s of the input scores the token at step s of the built sequence. ``timesteps``
        and ``fill`` work as in `revert`; the output takes ``F.cross_entropy(out, codes)`` directly.
        """
        self._check_logits(logits)
        return self._revert(logits, self._frames_for(logits.shape[3], timesteps), fill)

    def _revert(self, x: Tensor, timesteps: int, fill: float) -> tuple[Tensor, Tensor]:
        """Gather the steps of every (k, t) from the last dim of ``x`` ``[..., K, S]`` -> ``[..., K, T]``."""
        s = x.shape[-1]
        tables = self._tables(timesteps, x.device)
        shape = (*x.shape[:-1], timesteps)
        if s == self.num_steps(timesteps):
            return x.gather(-1, tables.step.expand(shape)), torch.ones_like(tables.step, dtype=torch.bool)
        reached = tables.step < s
        out = x.gather(-1, tables.step.clamp(max=s - 1).expand(shape))
        return out.masked_fill_(~reached, fill), reached


class DelayPattern(Pattern):
    """Codebook k of frame t at step ``t + delays[k]`` (MusicGen): steps S = T + max(delays).

    Default ``delays[k] = k``, so when codebook k of frame t is predicted, codebooks 0..k-1 of
    the same frame are already known (coarse-to-fine within a frame) while every step still
    emits up to K tokens at once. Any non-negative delays are allowed; non-decreasing ones
    keep that order.
    """

    name = "delay"

    def __init__(self, n_q: int, delays: Sequence[int] | None = None):
        super().__init__(n_q)
        delays = list(range(self.n_q)) if delays is None else list(delays)
        if len(delays) != self.n_q:
            raise PatternError(f"delays must give one delay per codebook ({self.n_q}), got {len(delays)}")
        self.delays = tuple(_check_int("each delay", d, 0) for d in delays)
        self.max_delay = max(self.delays)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_q={self.n_q}, delays={list(self.delays)})"

    def num_steps(self, timesteps: int) -> int:
        """S = T + max(delays)."""
        return _check_int("timesteps", timesteps, 1) + self.max_delay

    def num_timesteps(self, num_steps: int) -> int:
        """T = S - max(delays), at least 1."""
        if _check_int("the number of steps", num_steps, 1) <= self.max_delay:
            raise PatternError(f"a complete sequence of {self!r} has more than {self.max_delay} steps, got "
                               f"{num_steps}; pass timesteps= to revert a partial one")
        return num_steps - self.max_delay

    def _steps(self, timesteps: int) -> Tensor:
        """``t + delays[k]``."""
        return torch.arange(timesteps)[None, :] + torch.tensor(self.delays, dtype=torch.long)[:, None]


class ParallelPattern(DelayPattern):
    """All K codebooks of frame t at step t: S = T, no special tokens (each step predicts K independent tokens)."""

    name = "parallel"

    def __init__(self, n_q: int):
        super().__init__(n_q, [0] * _check_int("n_q (the number of codebooks)", n_q, 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_q={self.n_q})"


class StackAndDelayPattern(DelayPattern):
    """Consecutive groups of codebooks, group g delayed by g steps: S = T + (number of groups - 1).

    ``groups`` gives the group sizes (summing to K): the codebooks of one group are emitted
    together at step ``t + g``. ``stacked=n`` is shorthand for ``groups=(n, 1, ..., 1)``: the
    first n (coarse) codebooks of frame t stacked at step t, then codebook n + j of frame t
    at step t + 1 + j. Default ``stacked=min(2, K)``. ``groups=(K,)`` is `ParallelPattern`,
    ``groups=(1,) * K`` is `DelayPattern` with its default delays.
    """

    name = "stack_and_delay"

    def __init__(self, n_q: int, stacked: int | None = None, groups: Sequence[int] | None = None):
        n_q = _check_int("n_q (the number of codebooks)", n_q, 1)
        if stacked is not None and groups is not None:
            raise PatternError("give either stacked or groups, not both")
        if groups is None:
            stacked = min(2, n_q) if stacked is None else stacked
            if isinstance(stacked, bool) or not isinstance(stacked, int) or not 1 <= stacked <= n_q:
                raise PatternError(f"stacked must be an integer in 1..{n_q}, got {stacked!r}")
            groups = [stacked] + [1] * (n_q - stacked)
        groups = [_check_int("each group size", g, 1) for g in groups]
        if sum(groups) != n_q:
            raise PatternError(f"group sizes must add up to the {n_q} codebooks, got {groups} (sum {sum(groups)})")
        self.groups = tuple(groups)
        super().__init__(n_q, [g for g, size in enumerate(groups) for _ in range(size)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_q={self.n_q}, groups={list(self.groups)})"


class FlattenPattern(Pattern):
    """One codebook per step, frame after frame ("unroll"): code (k, t) at step ``t * K + k``, S = K * T.

    Fully autoregressive over codebooks (each token sees every earlier codebook and frame),
    at K times the sequence length.
    """

    name = "flatten"

    def num_steps(self, timesteps: int) -> int:
        """S = K * T."""
        return self.n_q * _check_int("timesteps", timesteps, 1)

    def num_timesteps(self, num_steps: int) -> int:
        """T = S / K (S a positive multiple of K)."""
        if _check_int("the number of steps", num_steps, 1) % self.n_q:
            raise PatternError(f"a complete sequence of {self!r} has a multiple of {self.n_q} steps, got "
                               f"{num_steps}; pass timesteps= to revert a partial one")
        return num_steps // self.n_q

    def _steps(self, timesteps: int) -> Tensor:
        """``t * K + k``."""
        return torch.arange(timesteps)[None, :] * self.n_q + torch.arange(self.n_q)[:, None]


class CoarseFirstPattern(Pattern):
    """Codebook 0 of frames 0..T-1 at steps 0..T-1, then codebooks 1..K-1 of frame t together at step T + t.

    VALL-E style: S = 2 T (S = T when K = 1). The fine codebooks come after the whole coarse
    sequence, so a model must generate the full T frames it was trained on before the first
    fine step (the second half is not causal in time with respect to the first).
    """

    name = "coarse_first"

    def num_steps(self, timesteps: int) -> int:
        """S = 2 T, or T when K = 1."""
        return _check_int("timesteps", timesteps, 1) * (2 if self.n_q > 1 else 1)

    def num_timesteps(self, num_steps: int) -> int:
        """T = S / 2 (S even), or S when K = 1."""
        halves = 2 if self.n_q > 1 else 1
        if _check_int("the number of steps", num_steps, 1) % halves:
            raise PatternError(f"a complete sequence of {self!r} has an even number of steps, got "
                               f"{num_steps}; pass timesteps= to revert a partial one")
        return num_steps // halves

    def _steps(self, timesteps: int) -> Tensor:
        """``t`` for codebook 0, ``T + t`` for the others."""
        offset = torch.full((self.n_q, 1), timesteps, dtype=torch.long)
        offset[0] = 0
        return torch.arange(timesteps)[None, :] + offset


PATTERNS: dict[str, type[Pattern]] = {
    cls.name: cls
    for cls in (ParallelPattern, DelayPattern, FlattenPattern, CoarseFirstPattern, StackAndDelayPattern)
}
_ALIASES = {"unroll": "flatten", "unrolled": "flatten", "flattened": "flatten", "delayed": "delay",
            "valle": "coarse_first", "vall_e": "coarse_first"}


def get_pattern(name: str, n_q: int, **kwargs: object) -> Pattern:
    """The pattern registered as ``name`` for ``n_q`` codebooks (case, '-' / '_' ignored; "unroll" = "flatten")."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    cls = PATTERNS.get(key)
    if cls is None:
        raise PatternError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)} (and 'unroll')")
    accepted = [p for p in inspect.signature(cls).parameters if p != "n_q"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise PatternError(f"pattern {key!r} takes {accepted or 'no options'}, not {unknown}")
    factory: Callable[..., Pattern] = cls
    return factory(n_q, **kwargs)
