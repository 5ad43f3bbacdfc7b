"""Fitting the subband coder's context weights to photos: the learned context table of `learned-wavelet`.

Photos are quantized as `wavelet` codes them, at several steps; every detail band becomes a case of
its class (`subband_coder.context_class`). Each class's weights (six causal neighbours, the parent,
a same-level sibling, a cross-plane sibling) are then chosen by coordinate descent over a small grid
of integers, each candidate scored by the coder's own size estimate (`subband_coder.estimated_bits`:
adaptive tables per context bin and their side information) summed over the class's bands.
``scripts/fit_contexts.py`` is the command line over this module.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..codecs.image import band_prediction as bp
from ..codecs.image import subband_coder as sc
from ..codecs.image import wavelet_lossy as wl
from ..media.types import Image

__all__ = ["BandCase", "band_cases", "class_bits", "fit_table"]

#: Weights each coordinate may take.
GRID = (0, 1, 2, 3, 4, 6, 8)


@dataclass
class BandCase:
    """A quantized band and what its context reads: parent magnitudes at each place, and its siblings'
    (the first ``same_level`` of this plane, the rest cross-plane)."""

    band: np.ndarray
    parent: np.ndarray
    siblings: list[np.ndarray]
    same_level: int

    def bits(self, weights: sc.ContextWeights) -> float:
        sib = np.zeros(self.band.shape, dtype=np.int64)
        for i, s in enumerate(self.siblings):
            sib += weights.sibling_weight(i, self.same_level) * s
        act = sc.activity(np.abs(self.band), self.parent, sib, weights)
        return sc.estimated_bits(self.band, sc.context_bins(act))


def band_cases(images: Sequence[np.ndarray], steps: Sequence[float]) -> dict[int, list[BandCase]]:
    """Every detail band of every image quantized at every step (hand-set contexts in the quantizer's
    decisions), by class."""
    cases: dict[int, list[BandCase]] = {}
    for pixels in images:
        bands = wl.WaveletCodec()._bands(Image(np.ascontiguousarray(pixels), 8))
        for step in steps:
            planes = wl.quantize_image(bands, step, pixels.shape[2])
            for k, plane in enumerate(planes):
                references = [p.details for p in planes[:k]]
                for level in range(len(plane.details)):
                    coded: list[np.ndarray] = []
                    for o in sc.ORIENTATIONS:
                        band = plane.details[level][o]
                        parent = plane.details[level + 1][o] if level + 1 < len(plane.details) else None
                        siblings = sc.neighbour_bands(coded, references, level, o)
                        if band.size:
                            cases.setdefault(sc.context_class(k, level, o), []).append(BandCase(
                                band, sc.upsample_parent(parent, band.shape),
                                [np.abs(bp.aligned(s, band.shape)) for s in siblings if s.size], len(coded)))
                        coded.append(band)
    return cases


def class_bits(cases: Sequence[BandCase], row: Sequence[int]) -> float:
    """Estimated bits of a class's bands under one row of weights."""
    weights = sc.ContextWeights.from_row(row)
    return sum(c.bits(weights) for c in cases)


def hand_set_row() -> list[int]:
    return sc.DEFAULT_WEIGHTS.row()


def fit_table(cases: dict[int, list[BandCase]], sweeps: int = 2,
              log: bool = False) -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """The fitted table (`subband_coder.CONTEXT_CLASSES` rows; classes without cases keep the hand-set
    weights) and, per class, (bits with the hand-set weights, bits with the fitted ones)."""
    table = np.array([hand_set_row()] * sc.CONTEXT_CLASSES, dtype=np.int64)
    scores: dict[int, tuple[float, float]] = {}
    for cls in sorted(cases):
        row = hand_set_row()
        start = best = class_bits(cases[cls], row)
        for _ in range(sweeps):
            changed = False
            for i in range(len(row)):
                for value in GRID:
                    if value == row[i]:
                        continue
                    trial = row[:i] + [value] + row[i + 1:]
                    if not any(trial[:len(sc.NEIGHBOURS)]):
                        continue   # the neighbours carry the context; all-zero is no context model
                    bits = class_bits(cases[cls], trial)
                    if bits < best:
                        best, row, changed = bits, trial, True
            if not changed:
                break
        table[cls] = row
        scores[cls] = (start, best)
        if log:
            print(f"class {cls:2d}: {len(cases[cls]):3d} bands, {start:12.0f} -> {best:12.0f} bits "
                  f"({100 * (best / start - 1):+.2f}%), weights {row}", flush=True)
    return table, scores
