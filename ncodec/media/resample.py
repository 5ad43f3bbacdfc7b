"""Anti-aliased sample-rate conversion in torch: a polyphase windowed-sinc resampler that streams.

Rates ``orig -> new`` reduce to ``up / down`` (``g = gcd(orig, new)``). The filter is a
Kaiser-windowed sinc at the upsampled rate ``up * orig``, ``2 * zeros * max(up, down) + 1``
taps long, with its passband ending at ``rolloff`` of the lower Nyquist frequency and its
stopband starting at that Nyquist frequency; the defaults (64 zero crossings, rolloff 0.9,
Kaiser beta for 100 dB) keep everything above the new Nyquist frequency about 100 dB down
and the band below 0.9 of it flat. Each of the ``up`` phases is normalised to unit DC gain.

Output sample ``n`` (time ``n / new``) is ``sum_k x[k] * up * h[n * down - k * up + c]`` with
``c`` the filter's centre and the signal zero outside ``[0, N)``; there are
``ceil(N * up / down)`` of them. That is `scipy.signal.resample_poly`'s definition, so with
the same filter (``filter=``) both give the same samples. `Resampler` produces exactly the
samples `resample` gives, a piece at a time, keeping only the filter's span of input.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["MAX_TABLE", "Resampler", "design_filter", "kaiser_beta", "ratio", "resample", "resampled_length"]

MAX_TABLE = 1 << 23       # most filter taps a rate pair may need (8 Mi floats); beyond it the pair is refused
_BATCH = 8192             # outputs computed together (memory: batch * taps * rows)


def ratio(orig: int, new: int) -> tuple[int, int]:
    """``(up, down)``: ``new / orig`` in lowest terms; ValueError for non-positive rates."""
    orig, new = int(orig), int(new)
    if orig < 1 or new < 1:
        raise ValueError(f"sample rates must be positive, got {orig} -> {new}")
    g = math.gcd(orig, new)
    return new // g, orig // g


def resampled_length(n: int, orig: int, new: int) -> int:
    """Samples `resample` gives for ``n`` input samples: ``ceil(n * new / orig)``."""
    up, down = ratio(orig, new)
    return -(-int(n) * up // down)


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser's beta for a stopband ``attenuation_db`` down (his empirical formula)."""
    a = float(attenuation_db)
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a >= 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def design_filter(up: int, down: int, zeros: int = 64, rolloff: float = 0.9, beta: float | None = None
                  ) -> np.ndarray:
    """The anti-aliasing low-pass (float64, odd length, DC gain 1) for an ``up / down`` conversion.

    Transition band from ``rolloff`` to 1 of the lower Nyquist frequency; ``beta`` defaults to
    the attenuation that band allows at this length (about ``8 + 14.36 * (1 - rolloff) * zeros`` dB).
    """
    if zeros < 1 or not 0 < rolloff < 1:
        raise ValueError("need zeros >= 1 and 0 < rolloff < 1")
    widest = max(up, down)
    half = zeros * widest
    if 2 * half + 1 > MAX_TABLE:
        raise ValueError(f"a {up}/{down} rate conversion needs a {2 * half + 1}-tap filter, more than {MAX_TABLE}")
    if beta is None:
        beta = kaiser_beta(8.0 + 14.36 * (1.0 - rolloff) * zeros)
    cutoff = 0.5 * (1.0 + rolloff) / widest  # mid-transition, relative to the upsampled Nyquist frequency
    m = np.arange(-half, half + 1, dtype=np.float64)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, beta)
    return h / h.sum()


class Resampler:
    """Streaming resampler of ``[..., T]`` signals from ``orig`` to ``new`` Hz (see the module docs).

    `process` takes the next samples and returns every output sample they complete; with
    ``final=True`` it also returns the tail (the signal ends there) and the resampler resets.
    ``filter`` replaces the designed low-pass (odd length, applied as ``up * filter``, with no
    per-phase normalisation: `scipy.signal.resample_poly`'s ``window=`` semantics).
    """

    def __init__(self, orig: int, new: int, zeros: int = 64, rolloff: float = 0.9, beta: float | None = None,
                 filter: Any = None):
        self.orig, self.new = int(orig), int(new)
        self.up, self.down = ratio(orig, new)
        self.identity = self.up == self.down == 1 and filter is None
        h = np.asarray(filter, dtype=np.float64).reshape(-1) if filter is not None else \
            (None if self.identity else design_filter(self.up, self.down, zeros, rolloff, beta))
        if h is not None and h.size % 2 == 0:
            raise ValueError("the filter must have an odd number of taps")
        self.center = 0 if h is None else (h.size - 1) // 2
        self.taps = 1 if h is None else self.center * 2 // self.up + 1
        self._table = None if h is None else self._phase_table(h, normalise=filter is None)
        self._cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        self.reset()

    def _phase_table(self, h: np.ndarray, normalise: bool) -> np.ndarray:
        """``[up, taps]``: row p holds the taps of the outputs of phase p, oldest input first."""
        up, taps = self.up, self.taps
        padded = np.zeros(up * taps)
        padded[:h.size] = h * up
        table = padded.reshape(taps, up).T[:, ::-1]  # [p, j] = h[p + j * up], then oldest input first
        if normalise:
            table = table / table.sum(axis=1, keepdims=True)
        return np.ascontiguousarray(table)

    def reset(self) -> None:
        """Forget the signal: the next `process` call starts a new one."""
        self._buffer: Tensor | None = None
        self._base = 0        # input index of _buffer[..., 0]
        self._received = 0    # input samples seen
        self._emitted = 0     # output samples given

    def _kernel(self, like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        if key not in self._cache:
            assert self._table is not None
            self._cache[key] = torch.from_numpy(self._table).to(like.device, like.dtype)
        return self._cache[key]

    def _last_input(self, n: int) -> int:
        """Index of the newest input sample output ``n`` reads."""
        return (n * self.down + self.center) // self.up

    @torch.no_grad()
    def process(self, x: Tensor, final: bool = False) -> Tensor:
        """Output samples ``[..., M]`` completed by the input ``x`` ``[..., T]`` (all the rest if ``final``)."""
        if x.ndim < 1:
            raise ValueError("expected a signal [..., T]")
        if not x.is_floating_point():
            x = x.float()
        if self.identity:
            if final:
                self.reset()
            return x
        if self._buffer is not None and self._buffer.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"signal shape changed from {tuple(self._buffer.shape[:-1])} to {tuple(x.shape[:-1])}")
        buffer = x if self._buffer is None else torch.cat([self._buffer.to(x.dtype), x], dim=-1)
        self._received += x.shape[-1]
        if final:
            stop = -(-self._received * self.up // self.down)
        else:  # outputs whose newest input has arrived
            stop = max(self._emitted, (self._received * self.up - self.center - 1) // self.down + 1)
            while stop > self._emitted and self._last_input(stop - 1) >= self._received:
                stop -= 1
        out = self._compute(buffer, self._emitted, stop)
        self._emitted = stop
        if final:
            self.reset()
        else:  # keep what the next outputs still read
            first = max(0, self._last_input(stop) - self.taps + 1)
            keep_from = min(max(first - self._base, 0), buffer.shape[-1])
            self._buffer = buffer[..., keep_from:].clone() if keep_from else buffer
            self._base += keep_from
        return out

    def _compute(self, buffer: Tensor, start: int, stop: int) -> Tensor:
        """Outputs ``start .. stop - 1`` from ``buffer`` (input ``_base ..``), zeros outside the signal."""
        lead = buffer.shape[:-1]
        if stop <= start:
            return buffer.new_zeros(*lead, 0)
        rows = buffer.reshape(-1, buffer.shape[-1])
        lo = self._last_input(start) - self.taps + 1       # oldest input any output here reads
        hi = self._last_input(stop - 1)                    # newest
        padded = rows.new_zeros(rows.shape[0], hi + 1 - lo)
        begin, end = max(lo, self._base), min(hi + 1, self._base + rows.shape[-1])
        if end > begin:
            padded[:, begin - lo:end - lo] = rows[:, begin - self._base:end - self._base]
        origin = lo  # input index of padded[:, 0]
        windows = padded.unfold(-1, self.taps, 1)  # [rows, positions, taps], a view
        kernel = self._kernel(padded)
        parts = []
        for s in range(start, stop, _BATCH):
            n = torch.arange(s, min(stop, s + _BATCH), device=padded.device, dtype=torch.int64)
            pos = n * self.down + self.center
            phase, newest = pos % self.up, pos // self.up
            parts.append(torch.einsum("rmj,mj->rm", windows[:, newest - self.taps + 1 - origin], kernel[phase]))
        return torch.cat(parts, dim=-1).reshape(*lead, stop - start)


def resample(x: Tensor, orig: int, new: int, **options: Any) -> Tensor:
    """``x`` ``[..., T]`` at ``orig`` Hz resampled to ``new`` Hz (``ceil(T * new / orig)`` samples)."""
    return Resampler(orig, new, **options).process(x, final=True)
