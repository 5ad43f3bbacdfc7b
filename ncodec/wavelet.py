"""Reversible integer wavelet transforms by lifting (the 5/3 of JPEG 2000 lossless).

Integer in, integer out, exactly invertible for any size (whole-sample symmetric
extension at the borders), vectorised over all other axes. `forward_2d` splits an
image into ``levels`` octaves of (LL, HL, LH, HH) subbands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _split(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.moveaxis(x, axis, 0)
    return x[0::2].astype(np.int64), x[1::2].astype(np.int64)


def lift53_forward(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """One level of the integer 5/3 transform along ``axis``: (lowpass, highpass)."""
    s, d = _split(x, axis)
    if d.shape[0] == 0:
        return np.moveaxis(s, 0, axis), np.moveaxis(d, 0, axis)
    right = s[np.minimum(np.arange(1, d.shape[0] + 1), s.shape[0] - 1)]
    d = d - ((s[:d.shape[0]] + right) >> 1)
    left = d[np.maximum(np.arange(s.shape[0]) - 1, 0)]
    nxt = d[np.minimum(np.arange(s.shape[0]), d.shape[0] - 1)]
    s = s + ((left + nxt + 2) >> 2)
    return np.moveaxis(s, 0, axis), np.moveaxis(d, 0, axis)


def lift53_inverse(low: np.ndarray, high: np.ndarray, axis: int = -1) -> np.ndarray:
    """Inverse of `lift53_forward`."""
    s = np.moveaxis(low, axis, 0).astype(np.int64)
    d = np.moveaxis(high, axis, 0).astype(np.int64)
    if d.shape[0] == 0:
        return np.moveaxis(s, 0, axis)
    left = d[np.maximum(np.arange(s.shape[0]) - 1, 0)]
    nxt = d[np.minimum(np.arange(s.shape[0]), d.shape[0] - 1)]
    s = s - ((left + nxt + 2) >> 2)
    right = s[np.minimum(np.arange(1, d.shape[0] + 1), s.shape[0] - 1)]
    d = d + ((s[:d.shape[0]] + right) >> 1)
    out = np.empty((s.shape[0] + d.shape[0],) + s.shape[1:], dtype=np.int64)
    out[0::2] = s
    out[1::2] = d
    return np.moveaxis(out, 0, axis)


@dataclass
class Subbands:
    """A multi-level 2D decomposition: the final LL and (HL, LH, HH) per level, finest first."""

    ll: np.ndarray
    details: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def forward_2d(x: np.ndarray, levels: int) -> Subbands:
    """``levels`` octaves of the 2D 5/3 transform of an integer image [H, W] (stops at 1 pixel)."""
    ll = x.astype(np.int64)
    details = []
    for _ in range(levels):
        if ll.shape[0] < 2 and ll.shape[1] < 2:
            break
        lo, hi = lift53_forward(ll, axis=1)
        ll_, lh = lift53_forward(lo, axis=0)
        hl, hh = lift53_forward(hi, axis=0)
        details.append((hl, lh, hh))
        ll = ll_
    return Subbands(ll, details)


def inverse_2d(bands: Subbands) -> np.ndarray:
    """Inverse of `forward_2d`."""
    ll = bands.ll
    for hl, lh, hh in reversed(bands.details):
        lo = lift53_inverse(ll, lh, axis=0)
        hi = lift53_inverse(hl, hh, axis=0)
        ll = lift53_inverse(lo, hi, axis=1)
    return ll


def subband_shapes(height: int, width: int, levels: int) -> tuple[tuple[int, int], list[tuple[tuple[int, int], ...]]]:
    """Shapes of LL and of (HL, LH, HH) per level for an image, as `forward_2d` makes them."""
    h, w = height, width
    details = []
    for _ in range(levels):
        if h < 2 and w < 2:
            break
        lw, hw = (w + 1) // 2, w // 2
        lh_, hh_ = (h + 1) // 2, h // 2
        details.append(((lh_, hw), (hh_, lw), (hh_, hw)))
        h, w = lh_, lw
    return (h, w), details
