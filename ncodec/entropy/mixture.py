"""Gaussian mixture conditional (Cheng et al. 2020): K weighted Gaussians per element.

Mixture parameters are continuous, so there is no ladder of shared tables: each element
gets its own integer table, built at coding time in float64 with `exactmath` only, over a
window of symbols that covers its components (at most ``max_support`` symbols; values
outside take the escape). Identical parameters give identical integers on every machine.

Large tensors are coded in groups of elements of similar window width so the tables never
exceed a fixed memory budget; a batch element's bytes are then the groups' rANS streams
back to back (one stream in the common case).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import BitstreamError, EntropyCodingError
from . import exactmath, rans
from .cdf import DEFAULT_PRECISION, CdfTables
from .conditional import SCALES_MIN, bin_masses, gaussian_cdf, tail_quantile
from .model import EntropyModel, QuantizeMode, check_strings, lower_bound, quantize_values, symbols_to_numpy

CELL_BUDGET = 1 << 22  # table cells (elements x window) built at once: ~32 MB per float64 array
_WINDOW_LIMIT = 1 << 30  # windows stay well inside int32 offsets
_BLOCK = 1 << 16  # elements per exactmath call: cache-sized blocks run several times faster


def _as_float64(x: Tensor | np.ndarray) -> np.ndarray:
    """A CPU float64 numpy copy of a tensor or array."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _normal_sf(x: np.ndarray) -> np.ndarray:
    """`exactmath.normal_sf` of a 1-D array, evaluated block by block (same bits, faster)."""
    out = np.empty(x.shape)
    for i in range(0, x.size, _BLOCK):
        out[i:i + _BLOCK] = exactmath.normal_sf(x[i:i + _BLOCK])
    return out


def _split_streams(data: bytes) -> list[bytes]:
    """Cut concatenated rANS streams apart."""
    parts, pos = [], 0
    while pos < len(data):
        end = pos + rans.stream_length(data, pos)
        parts.append(bytes(data[pos:end]))
        pos = end
    return parts


def _groups(widths: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of ascending ``widths`` whose padded tables fit in `CELL_BUDGET` cells."""
    bounds, start, n = [], 0, widths.size
    while start < n:
        lo, hi = start + 1, n  # largest end with (end - start) * (widths[end - 1] + 2) <= budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - start) * (int(widths[mid - 1]) + 2) <= CELL_BUDGET:
                lo = mid
            else:
                hi = mid - 1
        bounds.append((start, lo))
        start = lo
    return bounds


class GaussianMixtureConditional(EntropyModel):
    """Mixture of ``num_components`` Gaussians per element; parameters ``[B, K, ...]`` for ``y`` ``[B, ...]``.

    ``weights`` are logits (softmax over K), ``scales`` are standard deviations, floored at
    ``scale_bound``. Values are rounded to integers (no mean offset: the mixture has several).
    """

    def __init__(self, num_components: int = 3, scale_bound: float = SCALES_MIN, tail_mass: float = 1e-9,
                 max_support: int = 2 * 256 + 1, likelihood_bound: float = 1e-9,
                 precision: int = DEFAULT_PRECISION):
        super().__init__(likelihood_bound, precision)
        if num_components < 1 or not scale_bound > 0 or not 0 < tail_mass < 1:
            raise ValueError("need num_components >= 1, scale_bound > 0 and 0 < tail_mass < 1")
        if not 1 <= max_support < (1 << precision) - 1:
            raise ValueError(f"max_support must be in 1 .. 2**precision - 2, got {max_support}")
        self.num_components = int(num_components)
        self.scale_bound = float(scale_bound)
        self.tail_mass = float(tail_mass)
        self.max_support = int(max_support)
        self._multiplier = tail_quantile(exactmath.normal_sf, self.tail_mass)

    def _check(self, y_shape: Sequence[int], *params: Tensor) -> None:
        """Raise unless every parameter is ``[B, K, ...]`` for ``y`` of shape ``y_shape``."""
        want = (y_shape[0], self.num_components, *y_shape[1:])
        for p in params:
            if tuple(p.shape) != want:
                raise ValueError(f"mixture parameters must have shape {want}, got {tuple(p.shape)}")

    # ---------------------------------------------------------------- training
    def _likelihood(self, y_hat: Tensor, weights: Tensor, means: Tensor, scales: Tensor) -> Tensor:
        """Mixture probability of y_hat's unit bin, each component on its lower tail side."""
        v = (y_hat.unsqueeze(1) - means).abs()
        s = lower_bound(scales, self.scale_bound)
        component = gaussian_cdf((0.5 - v) / s) - gaussian_cdf((-0.5 - v) / s)
        return (torch.softmax(weights, dim=1) * component).sum(dim=1)

    def forward(self, y: Tensor, weights: Tensor, means: Tensor, scales: Tensor, training: bool | None = None,
                quantize: QuantizeMode = "noise") -> tuple[Tensor, Tensor]:
        """(quantised y, likelihoods): noisy or straight-through in training, rounded in eval."""
        self._check(y.shape, weights, means, scales)
        y_hat = quantize_values(y, self._training(training), quantize)
        return y_hat, self._bound(self._likelihood(y_hat, weights, means, scales))

    def update(self, force: bool = False) -> bool:
        """Nothing to build: mixture tables are made per element at coding time (always False)."""
        return False

    # ------------------------------------------------------------------ tables
    def _windows(self, weights: np.ndarray, means: np.ndarray, scales: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Softmaxed weights, bounded scales, first symbol and width of each element's window ([N, K] in)."""
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means)) and np.all(np.isfinite(scales))):
            raise EntropyCodingError("mixture parameters must be finite to build coding tables")
        k = self.num_components
        scales = np.maximum(scales, self.scale_bound)
        top = np.max(weights, axis=1, keepdims=True)
        e = exactmath.exp(weights - top)
        total = e[:, 0].copy()
        for j in range(1, k):  # explicit order: a reduction's summation order may vary between builds
            total = total + e[:, j]
        w = e / total[:, None]
        relevant = w >= self.tail_mass  # negligible components do not widen the window
        reach = self._multiplier * scales
        first = np.floor(np.min(np.where(relevant, means - reach, np.inf), axis=1))
        last = np.ceil(np.max(np.where(relevant, means + reach, -np.inf), axis=1))
        first = np.clip(first, -_WINDOW_LIMIT, _WINDOW_LIMIT)
        last = np.clip(last, first, _WINDOW_LIMIT)
        centre = w[:, 0] * means[:, 0]
        for j in range(1, k):
            centre = centre + w[:, j] * means[:, j]
        capped = np.clip(np.rint(centre) - self.max_support // 2, first, last - self.max_support + 1)
        too_wide = last - first + 1 > self.max_support
        first = np.where(too_wide, capped, first)
        width = np.where(too_wide, self.max_support, last - first + 1)
        return w, scales, first.astype(np.int64), width.astype(np.int64)

    def build_tables(self, weights: Tensor | np.ndarray, means: Tensor | np.ndarray,
                     scales: Tensor | np.ndarray) -> CdfTables:
        """One integer table per element from ``[N, K]`` parameters (float64, `exactmath` only).

        The density is evaluated only inside each element's own window: its ``width + 1``
        bin edges are laid end to end in one flat array, then scattered into padded rows.
        """
        means = _as_float64(means)
        w, scales, first, width = self._windows(_as_float64(weights), means, _as_float64(scales))
        counts = width + 1
        start = np.cumsum(counts) - counts
        col = np.arange(int(counts.sum())) - np.repeat(start, counts)
        edges = np.repeat(first - 0.5, counts) + col
        stride = int(width.max())
        is_bin = col[:-1] < np.repeat(width, counts)[:-1]  # edge pairs that bound a bin of one element
        target = (np.repeat(np.arange(first.size) * stride, counts) + col)[:-1][is_bin]
        mass = np.zeros(edges.size - 1)
        escape = np.zeros(first.size)
        for j in range(self.num_components):
            z = (edges - np.repeat(means[:, j], counts)) / np.repeat(scales[:, j], counts)
            mass = mass + np.repeat(w[:, j], counts)[:-1] * bin_masses(_normal_sf, z)
            escape = escape + w[:, j] * (_normal_sf(-z[start]) + _normal_sf(z[start + width]))
        pmf = np.zeros(first.size * stride)
        pmf[target] = mass[is_bin]
        pmf = pmf.reshape(first.size, stride)
        return CdfTables.from_pmf(pmf, offsets=first, sizes=width, escape_mass=escape, precision=self.precision)

    def _plan(self, weights: Tensor, means: Tensor, scales: Tensor, b: int
              ) -> Iterator[tuple[np.ndarray, CdfTables]]:
        """Batch element b's coding plan: each group's element positions and tables, built one at a time."""
        params = [_as_float64(p[b].reshape(self.num_components, -1).T) for p in (weights, means, scales)]
        width = self._windows(*params)[3]
        order = np.argsort(width, kind="stable")
        for start, end in _groups(width[order]):
            pos = order[start:end]
            yield pos, self.build_tables(*(p[pos] for p in params))

    # ------------------------------------------------------------------ coding
    def compress(self, y: Tensor, weights: Tensor, means: Tensor, scales: Tensor) -> list[bytes]:
        """One stream per batch element of ``round(y)``, each element coded with its own mixture table."""
        self._check(y.shape, weights, means, scales)
        symbols = symbols_to_numpy(torch.round(y))
        strings = []
        for b in range(y.shape[0]):
            strings.append(b"".join(rans.encode(symbols[b, pos], np.arange(pos.size), tables)
                                    for pos, tables in self._plan(weights, means, scales, b)))
        return strings

    def decompress(self, strings: Sequence[bytes], weights: Tensor, means: Tensor, scales: Tensor) -> Tensor:
        """The eval-mode y_hat ``[B, ...]`` from ``compress``'s streams, on the parameters' device."""
        shape = (means.shape[0], *means.shape[2:])
        self._check(shape, weights, means, scales)
        check_strings(strings, shape[0])
        out = np.zeros((shape[0], int(np.prod(shape[1:], dtype=np.int64))), dtype=np.int64)
        for b, data in enumerate(strings):
            parts = iter(_split_streams(data))
            for pos, tables in self._plan(weights, means, scales, b):
                part = next(parts, None)
                if part is None:
                    raise BitstreamError("mixture stream ends before its last group")
                out[b, pos] = rans.decode(part, np.arange(pos.size), tables)
            if next(parts, None) is not None:
                raise BitstreamError("mixture stream has more groups than its parameters call for")
        return torch.from_numpy(out).reshape(shape).to(device=means.device, dtype=means.dtype)
