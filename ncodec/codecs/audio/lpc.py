"""Linear prediction analysis for lossless audio: windows, Levinson-Durbin, coefficient quantisation.

Analysis runs in float (it only chooses coefficients); prediction itself runs on integers
in `_lpc` so encoder and decoder agree exactly.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _lpc


@lru_cache(maxsize=32)
def tukey(n: int, ratio: float = 0.5) -> np.ndarray:
    """Tukey (tapered cosine) window, the analysis window FLAC uses by default."""
    if n < 2:
        return np.ones(n)
    w = np.ones(n)
    edge = int(ratio * (n - 1) / 2)
    if edge > 0:
        t = np.arange(edge + 1) / (ratio * (n - 1) / 2)
        ramp = 0.5 * (1 - np.cos(np.pi * t))
        w[: edge + 1] = ramp
        w[n - edge - 1:] = ramp[::-1]
    return w


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """r[0..max_lag] of a (windowed) float signal, via FFT."""
    n = x.size
    size = 1 << int(np.ceil(np.log2(max(2 * n - 1, 2))))
    spec = np.fft.rfft(x, size)
    r = np.fft.irfft(spec * np.conj(spec), size)[: max_lag + 1]
    return r


def levinson(r: np.ndarray, max_order: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Predictor coefficients for orders 1..max_order and their prediction error powers.

    Returns ``coefs[p - 1]`` of length p with ``x[n] ~ sum_j coefs[j] * x[n - 1 - j]`` and
    ``errors[p]`` (``errors[0] = r[0]``). Stops early if the recursion becomes unstable.
    """
    errors = [float(r[0])]
    coefs: list[np.ndarray] = []
    a = np.zeros(0)
    err = float(r[0])
    for p in range(1, max_order + 1):
        if err <= 1e-9 * max(float(r[0]), 1e-300):
            break
        k = (r[p] - np.dot(a, r[p - 1:0:-1])) / err
        if not np.isfinite(k) or abs(k) >= 1.0:
            break
        a = np.concatenate([a - k * a[::-1], [k]])
        err *= 1.0 - k * k
        coefs.append(a.copy())
        errors.append(err)
    return coefs, np.array(errors)


def quantize(coefs: np.ndarray, precision: int) -> tuple[np.ndarray, int]:
    """Integer coefficients of ``precision`` bits (sign included) and their shift, FLAC-style.

    The shift puts the largest coefficient at the top of the range; rounding error is
    carried to the next coefficient so the filter's response stays close.
    """
    cmax = float(np.max(np.abs(coefs))) if coefs.size else 0.0
    if cmax <= 0.0:
        return np.zeros(coefs.size, dtype=np.int32), 0
    exponent = int(np.frexp(cmax)[1])  # cmax < 2**exponent
    shift = int(np.clip(precision - 1 - exponent, 0, 31))
    lim = (1 << (precision - 1)) - 1
    q = np.empty(coefs.size, dtype=np.int32)
    carry = 0.0
    scale = float(1 << shift)
    for j, c in enumerate(coefs.tolist()):
        carry += c * scale
        v = min(max(round(carry), -lim - 1), lim)
        q[j] = v
        carry -= v
    return q, shift


def residual(x: np.ndarray, history: np.ndarray, coefs: np.ndarray, shift: int) -> np.ndarray:
    """x minus its integer prediction (history: the ``len(coefs)`` samples before x, oldest first)."""
    out = np.empty(x.size, dtype=np.int32)
    _lpc.residual(np.ascontiguousarray(x, dtype=np.int32), np.ascontiguousarray(history, dtype=np.int32),
                  np.ascontiguousarray(coefs, dtype=np.int32), int(shift), out)
    return out


def restore(res: np.ndarray, history: np.ndarray, coefs: np.ndarray, shift: int) -> np.ndarray:
    """Inverse of `residual`."""
    out = np.empty(res.size, dtype=np.int32)
    _lpc.restore(np.ascontiguousarray(res, dtype=np.int32), np.ascontiguousarray(history, dtype=np.int32),
                 np.ascontiguousarray(coefs, dtype=np.int32), int(shift), out)
    return out
