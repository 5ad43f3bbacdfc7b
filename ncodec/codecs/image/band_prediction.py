"""Linear prediction of a wavelet detail band from what its decoder already has (wavelet-lossless).

Integer wavelets leave structure in the detail bands that magnitude contexts cannot use: values
(not just sizes) correlate with the causal neighbours, with the bands coded before at the same
place (siblings, the same band of earlier colour planes, the parent) and with the level's own
low band (the approximation the details refine, known whole to the decoder before them). Per
band the encoder fits integer weights to all of these (least absolute error by reweighted least
squares), sends them, and codes the residual; the decoder adds the same integer prediction
back. Every prediction is an integer dot product shifted by `PRECISION`, so it is exact on any
machine. The encoder keeps a band's predictor only when its estimated saving beats its cost.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...entropy import rans
from ...entropy import residuals as rc
from ...errors import BitstreamError

# Causal neighbours (dy, dx) used as predictors; all on earlier wavefronts (x + 2y smaller).
CAUSAL = ((-1, 0), (0, -1), (-1, -1), (-1, 1), (-2, 0), (0, -2), (-1, -2), (-2, -1), (-2, 1))
SIBLING_AT = ((0, 0), (0, 1), (1, 0))                       # around the same place in a sibling band
REFERENCE_AT = ((0, 0), (0, 1), (1, 0), (0, -1), (-1, 0))   # ... in the same band of an earlier plane
WINDOW = tuple((dy, dx) for dy in (-1, 0, 1, 2) for dx in (-1, 0, 1, 2))  # the level's low band, 4 x 4
PRECISION = 12                 # predictions are (sum of weight * feature + half) >> PRECISION
COARSE_SHIFT = 5               # band-domain weights are multiples of 2**-7 (sent as such); window ones 2**-12
WEIGHT_LIMIT = 1 << 15         # sent weights' magnitude bound (in their units): decoders refuse larger
MIN_SAMPLES_PER_WEIGHT = 4     # smaller bands are not predicted
FIT_ROWS = 1 << 15             # rows sampled for the fit
FIT_ITERATIONS = 4             # reweightings towards least absolute error
SIDE_BITS_PER_WEIGHT = 10.0    # estimate used when deciding whether a predictor pays


def shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]``, zero outside ``a``."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[ys, xs] = a[max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
    return out


def aligned(band: np.ndarray, shape: tuple[int, int], scale: int = 1) -> np.ndarray:
    """``band`` read at each position of ``shape``: ``band[min(y // scale, h - 1), min(x // scale, w - 1)]``."""
    if scale > 1:
        band = np.repeat(np.repeat(band, scale, axis=0), scale, axis=1)
    out = band[:shape[0], :shape[1]]
    if out.shape != tuple(shape):
        out = np.pad(out, ((0, shape[0] - out.shape[0]), (0, shape[1] - out.shape[1])), mode="edge")
    return out


@dataclass
class Context:
    """Everything fully known before a band is decoded: parent band, siblings (bands of this level
    coded before it), references (the same band of earlier planes), and the level's low band;
    and the band's orientation."""

    orientation: str
    parent: np.ndarray | None
    siblings: Sequence[np.ndarray]
    references: Sequence[np.ndarray]
    approximation: np.ndarray | None
    _features: dict[tuple[int, int], tuple[list[np.ndarray], list[np.ndarray]]] = field(
        default_factory=dict, repr=False, compare=False)

    def outer_features(self, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(band-domain features, low-band window features), each a band-shaped int64 array
        (made once per shape: the encoder's fits and residuals all read them)."""
        key = (int(shape[0]), int(shape[1]))
        if key not in self._features:
            self._features[key] = self._make_features(key)
        return self._features[key]

    def _make_features(self, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        coarse = []
        for s in self.siblings:
            if s.size:
                coarse += [shifted(aligned(s, shape), dy, dx) for dy, dx in SIBLING_AT]
        for r in self.references:
            if r.size:
                coarse += [shifted(aligned(r, shape), dy, dx) for dy, dx in REFERENCE_AT]
        if self.parent is not None and self.parent.size:
            coarse.append(aligned(self.parent, shape, 2))
        window = []
        a = self.approximation
        if a is not None and a.size:
            padded = np.pad(a, ((1, 2), (1, 2)), mode="edge")
            for dy, dx in WINDOW:
                window.append(aligned(padded[1 + dy:, 1 + dx:], shape))
        return coarse, window


@dataclass
class Predictor:
    """A band's integer weights: causal neighbours and band-domain features in units of
    2**(COARSE_SHIFT - PRECISION), low-band window features in units of 2**-PRECISION."""

    causal: np.ndarray
    coarse: np.ndarray
    window: np.ndarray

    def outer(self, context: Context, shape: tuple[int, int]) -> np.ndarray:
        """The fully-known part of the prediction's sum (before the shift), flat in raster order."""
        coarse, window = context.outer_features(shape)
        acc = np.zeros(shape[0] * shape[1], dtype=np.int64)
        for f, w in zip(coarse, self.coarse.tolist()):
            acc += (w << COARSE_SHIFT) * f.reshape(-1)
        for f, w in zip(window, self.window.tolist()):
            acc += w * f.reshape(-1)
        return acc

    def causal_offsets(self) -> list[tuple[int, int, int]]:
        """(dy, dx, weight in 2**-PRECISION units) of the causal neighbours with a nonzero weight."""
        return [(dy, dx, int(w) << COARSE_SHIFT) for (dy, dx), w in zip(CAUSAL, self.causal.tolist()) if w]

    def residual(self, band: np.ndarray, context: Context) -> np.ndarray:
        """What the coder codes: the band minus its prediction (the encoder sees the whole band)."""
        acc = self.outer(context, band.shape)
        for dy, dx, w in self.causal_offsets():
            acc += w * shifted(band, dy, dx).reshape(-1)
        return band - finish(acc).reshape(band.shape)


def finish(acc: np.ndarray) -> np.ndarray:
    """Round a prediction's sum to an integer prediction."""
    return (acc + (1 << (PRECISION - 1))) >> PRECISION


def _weighted_least_squares(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """argmin_w sum s * (y - x w)**2 by the normal equations (a tiny ridge keeps them solvable)."""
    xs = x * s[:, None]
    gram = xs.T @ x
    gram[np.diag_indices_from(gram)] += 1e-6 * (np.trace(gram) / max(len(gram), 1) + 1.0)
    return np.linalg.solve(gram, xs.T @ y)


def fit(band: np.ndarray, context: Context, scale: np.ndarray | None = None) -> Predictor | None:
    """Weights minimising (about) the absolute prediction error, each divided by ``scale`` (the
    expected error magnitude where it falls, so errors weigh as their bits do), or None for a
    band too small."""
    coarse, window = context.outer_features(band.shape)
    features = [shifted(band, dy, dx) for dy, dx in CAUSAL] + coarse + window
    if band.size < MIN_SAMPLES_PER_WEIGHT * len(features):
        return None
    rows = np.arange(0, band.size, max(1, band.size // FIT_ROWS))
    x = np.stack([f.reshape(-1)[rows] for f in features], axis=1).astype(np.float64)
    y = band.reshape(-1)[rows].astype(np.float64)
    rate = np.ones_like(y) if scale is None else 1.0 / scale.reshape(-1)[rows]
    w = _weighted_least_squares(x, y, rate)
    for _ in range(FIT_ITERATIONS):  # weights 1/|e| on e**2: least absolute error, damped
        w = _weighted_least_squares(x, y, rate / (np.abs(y - x @ w) + 1.0))
    n_band = len(CAUSAL) + len(coarse)
    units = np.concatenate([np.full(n_band, 1 << (PRECISION - COARSE_SHIFT)), np.full(len(window), 1 << PRECISION)])
    q = np.clip(np.rint(w * units), -WEIGHT_LIMIT, WEIGHT_LIMIT).astype(np.int64)
    return Predictor(q[:len(CAUSAL)], q[len(CAUSAL):n_band], q[n_band:])


def side_bits(predictor: Predictor) -> float:
    return SIDE_BITS_PER_WEIGHT * (predictor.causal.size + predictor.coarse.size + predictor.window.size)


# ------------------------------------------------------------------ stream
def _weight_symbols(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A weight vector: its (k, a) raw, then the weights under that table."""
    k, a, _ = rc.fit_parameters(np.array([np.abs(weights).sum()], dtype=np.float64),
                                np.array([max(weights.size, 1)], dtype=np.float64))
    head = [rc.raw_symbols(k, rc.SHIFT_BITS), rc.raw_symbols(a, rc.MEAN_BITS)]
    body = rc.value_symbols(weights, np.full(weights.size, k[0]), np.full(weights.size, a[0]))
    return (np.concatenate([p[0] for p in head] + [body[0]]), np.concatenate([p[1] for p in head] + [body[1]]))


def _decode_weights(dec: rans.Decoder, count: int) -> np.ndarray:
    k = int(rc.decode_raw(dec, 1, rc.SHIFT_BITS)[0])
    a = int(rc.decode_raw(dec, 1, rc.MEAN_BITS)[0])
    if k > rc.MAX_SHIFT or a >= rc.MEAN_STEPS:
        raise BitstreamError("corrupt stream: band predictor table out of range")
    w = rc.decode_values(dec, np.full(count, k), np.full(count, a))
    if np.any(np.abs(w) > WEIGHT_LIMIT):
        raise BitstreamError("corrupt stream: band predictor weight out of range")
    return w


def symbols(predictor: Predictor | None) -> tuple[np.ndarray, np.ndarray]:
    """A band's predictor in the stream: a flag, then (if set) its three weight vectors."""
    flag = rc.raw_symbols(np.array([predictor is not None]), 1)
    if predictor is None:
        return flag
    parts = [flag] + [_weight_symbols(w) for w in (predictor.causal, predictor.coarse, predictor.window)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def decode(dec: rans.Decoder, context: Context, shape: tuple[int, int]) -> Predictor | None:
    """Inverse of `symbols` for a band of ``shape``; the weight counts follow from the context's
    features, as in the encoder."""
    if not rc.decode_raw(dec, 1, 1)[0]:
        return None
    coarse, window = context.outer_features(shape)
    return Predictor(_decode_weights(dec, len(CAUSAL)), _decode_weights(dec, len(coarse)),
                     _decode_weights(dec, len(window)))
