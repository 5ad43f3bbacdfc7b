"""Scale-indexed conditional entropy models: Gaussian, Laplace and logistic (Ballé 2018, Minnen 2018).

Each element has a scale (and optionally a mean) predicted by the network. Coding uses a
fixed ladder of scales, one integer table per rung, built in float64 with `exactmath`
only, so that every machine builds the same integers; each element is coded with the
table of the smallest rung at least as wide as its own scale.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import exactmath
from .cdf import DEFAULT_PRECISION, CdfTables
from .model import MAX_SUPPORT, QuantizeMode, TableEntropyModel, lower_bound, quantize_values

SCALES_MIN = 0.11
SCALES_MAX = 256.0
SCALES_LEVELS = 64

SurvivalFn = Callable[[np.ndarray], np.ndarray]


def get_scale_table(min: float = SCALES_MIN, max: float = SCALES_MAX, levels: int = SCALES_LEVELS) -> Tensor:
    """CompressAI's default scale ladder: ``levels`` log-spaced scales from ``min`` to ``max`` (float32)."""
    return torch.from_numpy(exactmath.exp(np.linspace(math.log(min), math.log(max), levels))).float()


# ------------------------------------------------------------------ unit densities
def gaussian_cdf(x: Tensor) -> Tensor:
    """Standard normal CDF in torch (erfc form, accurate in the lower tail)."""
    return 0.5 * torch.erfc(x * -(2 ** -0.5))


def laplace_cdf(x: Tensor) -> Tensor:
    """Unit Laplace CDF in torch, accurate in the lower tail and finite gradients everywhere."""
    half_tail = 0.5 * torch.exp(-x.abs())
    return torch.where(x < 0, half_tail, 1.0 - half_tail)


def laplace_sf(x: np.ndarray) -> np.ndarray:
    """Unit Laplace upper tail P(X > x) in float64, bit-identical everywhere."""
    x = np.asarray(x, dtype=np.float64)
    half_tail = 0.5 * exactmath.exp(-np.abs(x))
    return np.where(x >= 0, half_tail, 1.0 - half_tail)


def logistic_sf(x: np.ndarray) -> np.ndarray:
    """Unit logistic upper tail P(X > x) in float64, bit-identical everywhere."""
    return exactmath.sigmoid(-np.asarray(x, dtype=np.float64))


def bin_masses(sf: SurvivalFn, edges: np.ndarray) -> np.ndarray:
    """Masses ``[..., W]`` of the bins between consecutive standardized ``edges[..., W + 1]`` of a symmetric density.

    The survival function is evaluated once per edge, at ``|edge|``, and each mass is
    taken on the side where it is a difference of small numbers, so the tails stay accurate.
    """
    s = sf(np.abs(edges))
    lo, hi = edges[..., :-1], edges[..., 1:]
    s_lo, s_hi = s[..., :-1], s[..., 1:]
    return np.where(lo >= 0, s_lo - s_hi, np.where(hi <= 0, s_hi - s_lo, (1.0 - s_lo) - s_hi))


def tail_quantile(sf: SurvivalFn, tail_mass: float) -> float:
    """The x >= 0 with ``2 * sf(x) = tail_mass`` (bisection in exact float64, so machine-independent)."""
    lo, hi = 0.0, 1.0
    while 2.0 * float(sf(np.float64(hi))) > tail_mass:
        lo, hi = hi, 2.0 * hi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if 2.0 * float(sf(np.float64(mid))) > tail_mass:
            lo = mid
        else:
            hi = mid
    return hi


# ------------------------------------------------------------------------ models
class ScaleConditional(TableEntropyModel):
    """Shared body of the conditionals: ``y = means + scales * X`` for a symmetric unit density X.

    Subclasses only name the density: ``_cdf`` (torch, differentiable, for training) and
    ``_sf`` (numpy float64 upper tail from `exactmath`, for the tables).
    """

    _cdf: Callable[[Tensor], Tensor]
    _sf: SurvivalFn
    _resizable_buffers = TableEntropyModel._resizable_buffers + ("scale_table",)
    scale_table: Tensor
    scale_bound: Tensor

    def __init__(self, scale_table: Sequence[float] | Tensor | None = None, scale_bound: float = SCALES_MIN,
                 tail_mass: float = 1e-9, likelihood_bound: float = 1e-9, precision: int = DEFAULT_PRECISION):
        super().__init__(likelihood_bound, precision)
        if not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be in (0, 1), got {tail_mass}")
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be > 0, got {scale_bound}")
        self.tail_mass = float(tail_mass)
        self.register_buffer("scale_bound", torch.tensor([float(scale_bound)]))
        self.register_buffer("scale_table", self._prepare_scale_table(
            get_scale_table() if scale_table is None else scale_table))
        self.update()

    @staticmethod
    def _prepare_scale_table(scale_table: Sequence[float] | Tensor) -> Tensor:
        """The ladder as a float32 tensor, checked to be non-empty, positive and increasing."""
        table = torch.as_tensor(scale_table, dtype=torch.float32).detach().cpu().reshape(-1)
        if table.numel() < 1 or not torch.all(table > 0) or not torch.all(table[1:] > table[:-1]):
            raise ValueError("scale_table must be a non-empty, strictly increasing list of positive scales")
        return table

    def update_scale_table(self, scale_table: Sequence[float] | Tensor, force: bool = False) -> bool:
        """Switch to another scale ladder and rebuild the tables (skipped if nothing changes and not ``force``)."""
        table = self._prepare_scale_table(scale_table).to(self.scale_table.device)
        if self.has_tables and not force and torch.equal(table, self.scale_table):
            return False
        self.scale_table = table
        return self.update(force=True)

    def update(self, force: bool = False) -> bool:
        """Build one integer table per ladder scale (support ±ceil(scale * q), q the tail quantile)."""
        if self.has_tables and not force:
            return False
        scales = self.scale_table.detach().cpu().numpy().astype(np.float64)
        multiplier = tail_quantile(self._sf, self.tail_mass)
        half = np.minimum(np.ceil(scales * multiplier), MAX_SUPPORT // 2).astype(np.int64)
        width = 2 * half + 1
        edges = (np.arange(width.max() + 1)[None, :] - half[:, None] - 0.5) / scales[:, None]
        escape = 2.0 * self._sf((half + 0.5) / scales)  # both tails beyond ±(half + 1/2)
        self._store_tables(CdfTables.from_pmf(bin_masses(self._sf, edges), offsets=-half, sizes=width,
                                              escape_mass=escape, precision=self.precision))
        return True

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Per-element table index: the smallest ladder scale >= the element's (bounded) scale."""
        ladder = self.scale_table.to(device=scales.device, dtype=torch.float64)
        s = torch.maximum(scales.detach().to(torch.float64), self.scale_bound.to(scales.device, torch.float64))
        idx = torch.searchsorted(ladder, s.contiguous().reshape(-1)).clamp_(max=ladder.numel() - 1)
        return idx.reshape(scales.shape).to(torch.int32)

    def _likelihood(self, y_hat: Tensor, scales: Tensor, means: Tensor | None) -> Tensor:
        """P(bin of y_hat) under the density, evaluated on the lower tail side for accuracy."""
        v = (y_hat if means is None else y_hat - means).abs()
        s = lower_bound(scales, self.scale_bound)
        return self._cdf((0.5 - v) / s) - self._cdf((-0.5 - v) / s)

    def forward(self, y: Tensor, scales: Tensor, means: Tensor | None = None, training: bool | None = None,
                quantize: QuantizeMode = "noise") -> tuple[Tensor, Tensor]:
        """(quantised y, likelihoods): noisy or straight-through in training, rounded around means in eval."""
        y_hat = quantize_values(y, self._training(training), quantize, means)
        return y_hat, self._bound(self._likelihood(y_hat, scales, means))

    def compress(self, y: Tensor, scales: Tensor, means: Tensor | None = None) -> list[bytes]:
        """One stream per batch element of ``round(y - means)``, each element with its scale's table."""
        indexes = self.build_indexes(torch.broadcast_to(scales, y.shape))
        symbols = torch.round(y if means is None else y - means)
        return self._encode(symbols, indexes)

    def decompress(self, strings: Sequence[bytes], scales: Tensor, means: Tensor | None = None) -> Tensor:
        """The eval-mode y_hat from ``compress``'s streams; shape of ``scales``, on its device."""
        symbols = self._decode(strings, self.build_indexes(scales))
        out = symbols.to(device=scales.device, dtype=scales.dtype if means is None else means.dtype)
        return out if means is None else out + means


class GaussianConditional(ScaleConditional):
    """Gaussian conditional (Ballé 2018 scale hyperprior, Minnen 2018 mean-scale)."""

    _cdf = staticmethod(gaussian_cdf)
    _sf = staticmethod(exactmath.normal_sf)


class LaplaceConditional(ScaleConditional):
    """Laplace conditional: scale is the Laplace ``b`` (heavier tails than the Gaussian)."""

    _cdf = staticmethod(laplace_cdf)
    _sf = staticmethod(laplace_sf)


class LogisticConditional(ScaleConditional):
    """Logistic conditional: scale is the logistic ``s`` (std = s * pi / sqrt(3))."""

    _cdf = staticmethod(torch.sigmoid)
    _sf = staticmethod(logistic_sf)
