"""Bjontegaard deltas (VCEG-M33) with piecewise cubic Hermite (PCHIP) interpolation.

`bd_rate` is the average rate change of codec B relative to codec A at equal quality, in
percent (negative: B needs fewer bits): ``log10(rate)`` of each codec is interpolated as a
function of quality, both curves are integrated exactly over the quality range they share,
and the mean log-rate difference ``d`` gives ``(10^d - 1) * 100``. `bd_quality` (BD-PSNR
when the quality is PSNR) is the mean quality difference B - A at equal rate, with quality
interpolated over ``log10(rate)``. The interpolant is the shape-preserving monotone cubic of
Fritsch & Carlson (1980) in the form of Fritsch & Butland (1984), which MATLAB's ``pchip``
and SciPy's ``PchipInterpolator`` use: interior slopes are the weighted harmonic mean of the
neighbouring secants (0 at a local extremum), end slopes the shape-preserving three-point
formula; two points give a straight line. Its integral over any interval is evaluated in
closed form (no sampling), so the result equals that of the ``bjontegaard`` package with
``method="pchip"`` to rounding.

Input conventions: points may come in any order (they are sorted by the interpolation
variable); points whose quality or rate is not finite (a lossless point at PSNR = inf) are
left out; points sharing the same interpolation-variable value are merged into one (their
dependent values averaged). The result is NaN when either curve keeps fewer than 2 distinct
points or the curves' ranges do not overlap (or overlap in a single value). Rates must be
positive.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import Error

__all__ = ["bd_quality", "bd_rate", "pchip_integral", "pchip_slopes"]


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson (Fritsch-Butland form) PCHIP derivatives at strictly increasing knots ``x``."""
    h = np.diff(x)
    m = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = m[0]
        return d
    for k in range(1, n - 1):
        m0, m1 = m[k - 1], m[k]
        if m0 * m1 > 0:  # same sign, neither zero: weighted harmonic mean
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m0 + w2 / m1)
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """Shape-preserving non-centred three-point end derivative."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return float(d)


def pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over ``[lo, hi]`` (inside ``[x[0], x[-1]]``) of the PCHIP interpolant of ``(x, y)``."""
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        m = (y[k + 1] - y[k]) / h
        # on this piece p(s) = y_k + d_k s + c2 s^2 + c3 s^3 with s = x - x_k; P is its antiderivative
        coefs = (y[k], d[k] / 2, (3 * m - 2 * d[k] - d[k + 1]) / h / 3, (d[k] + d[k + 1] - 2 * m) / (h * h) / 4)
        total += _poly_antiderivative(coefs, b - x[k]) - _poly_antiderivative(coefs, a - x[k])
    return total


def _poly_antiderivative(coefs: tuple[float, float, float, float], s: float) -> float:
    """``P(s) = s * (c0 + s * (c1 + s * (c2 + s * c3)))`` by Horner's rule."""
    c0, c1, c2, c3 = coefs
    return s * (c0 + s * (c1 + s * (c2 + s * c3)))


def _curve(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by x, with equal x merged (mean y)."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    ux, inverse = np.unique(x, return_inverse=True)
    uy = np.bincount(inverse, weights=y, minlength=len(ux)) / np.bincount(inverse, minlength=len(ux))
    return ux, uy


def _log_rates(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise Error(f"{name}: {r.size} rates but {q.size} quality values")
    if np.any(r[np.isfinite(r)] <= 0):
        raise Error(f"{name}: rates must be positive, got {r.tolist()}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(r), q


def _delta(xa: Sequence[float], ya: Sequence[float], xb: Sequence[float], yb: Sequence[float]) -> float:
    """Mean of ``f_b - f_a`` over the shared x range of the PCHIP curves; NaN when undefined."""
    ax, ay = _curve(xa, ya)
    bx, by = _curve(xb, yb)
    if len(ax) < 2 or len(bx) < 2:
        return math.nan
    lo, hi = max(ax[0], bx[0]), min(ax[-1], bx[-1])
    if not hi > lo:
        return math.nan
    return (pchip_integral(bx, by, lo, hi) - pchip_integral(ax, ay, lo, hi)) / (hi - lo)


def bd_rate(rate_a: Sequence[float], quality_a: Sequence[float],
            rate_b: Sequence[float], quality_b: Sequence[float]) -> float:
    """Bjontegaard rate change of B relative to A at equal quality, in percent (NaN without overlap)."""
    la, qa = _log_rates(rate_a, quality_a, "curve A")
    lb, qb = _log_rates(rate_b, quality_b, "curve B")
    d = _delta(qa, la, qb, lb)
    return math.nan if math.isnan(d) else (10.0 ** d - 1.0) * 100.0


def bd_quality(rate_a: Sequence[float], quality_a: Sequence[float],
               rate_b: Sequence[float], quality_b: Sequence[float]) -> float:
    """Bjontegaard quality change (BD-PSNR for PSNR) of B relative to A at equal rate (NaN without overlap)."""
    la, qa = _log_rates(rate_a, quality_a, "curve A")
    lb, qb = _log_rates(rate_b, quality_b, "curve B")
    return _delta(la, qa, lb, qb)
