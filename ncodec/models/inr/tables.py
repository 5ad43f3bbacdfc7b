"""Integer Laplace coding tables of the INR codecs, built bit-identically on every machine.

Latents are coded with a Laplace of scale ``b`` and mean ``mu`` predicted by the ARM. Both
are put on fixed grids so that a finite set of tables covers them: ``ln b`` on rungs 1/8
apart (``LATENT_RUNGS`` rungs from ``ln b = LATENT_LOG_SCALE_MIN``), ``mu`` on a 1/8 grid.
A latent ``y`` with grid mean ``mu8 / 8`` is coded as ``y - floor(mu8 / 8)`` with the table of
(rung, ``mu8 mod 8``), whose density is centred at ``(mu8 mod 8) / 8``: the fractional part of
the mean costs no extra rate. Network weights are coded with zero-centred Laplace tables on a
coarser ladder (`weight_tables`). All tables come from `exactmath` float64 only, so every
machine builds the same integers; `tables_digest` pins them in stream headers.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from ...entropy import exactmath
from ...entropy.cdf import CdfTables
from ...entropy.conditional import bin_masses, laplace_sf

LATENT_LOG_SCALE_MIN = -3.25      # ln of the narrowest latent scale (b = 0.039: a zero costs ~1e-4 bit)
LOG_SCALE_STEP_BITS = 3           # rungs 2**-3 apart in ln b (13% wider each)
LATENT_RUNGS = 64                 # up to ln b = 4.625 (b = 102)
MEAN_FRAC_BITS = 3                # means on a 1/8 grid
MEAN_OFFSETS = 1 << MEAN_FRAC_BITS
WEIGHT_RUNGS = 32                 # weight scales 2**(k/2 - 2): 0.25 .. 11585
TAIL_SCALES = 14.0                # support half-width in scales: tail mass exp(-14) ~ 8e-7
MAX_HALF = 2047                   # widest support half-width; values beyond take the escape


def latent_log_scale(rung: np.ndarray | int) -> np.ndarray:
    """ln b of latent rung(s): ``LATENT_LOG_SCALE_MIN + rung / 8`` (exact in float64)."""
    return LATENT_LOG_SCALE_MIN + np.asarray(rung, dtype=np.float64) * 2.0 ** -LOG_SCALE_STEP_BITS


def latent_scales() -> np.ndarray:
    """The latent scale ladder ``b_k`` (float64, from `exactmath.exp`)."""
    return exactmath.exp(latent_log_scale(np.arange(LATENT_RUNGS)))


def weight_scales() -> np.ndarray:
    """The weight scale ladder ``2**(k/2 - 2)`` (float64, exact powers and one exact multiply)."""
    k = np.arange(WEIGHT_RUNGS)
    return np.ldexp(np.where(k % 2 == 1, 1.4142135623730951, 1.0), k // 2 - 2)


def _laplace_tables(scales: np.ndarray, centers: np.ndarray) -> CdfTables:
    """One table per (scale, centre) row: integers ``-half .. half + 1`` under Laplace(centre, scale)."""
    half = np.minimum(np.ceil(scales * TAIL_SCALES), MAX_HALF).astype(np.int64) + 1
    size = 2 * half + 2
    v = np.arange(size.max() + 1)[None, :] - half[:, None]          # bin lower values, one extra edge
    edges = (v - 0.5 - centers[:, None]) / scales[:, None]
    masses = bin_masses(laplace_sf, edges)
    lo_tail = laplace_sf((half + 0.5 + centers) / scales)            # P(y < -half - 1/2)
    hi_tail = laplace_sf((half + 1.5 - centers) / scales)            # P(y > half + 3/2)
    return CdfTables.from_pmf(masses, offsets=-half, sizes=size, escape_mass=lo_tail + hi_tail)


@lru_cache(maxsize=1)
def latent_tables() -> CdfTables:
    """``LATENT_RUNGS * MEAN_OFFSETS`` tables; table ``k * 8 + j`` is rung k with centre j / 8."""
    scales = np.repeat(latent_scales(), MEAN_OFFSETS)
    centers = np.tile(np.arange(MEAN_OFFSETS, dtype=np.float64) / MEAN_OFFSETS, LATENT_RUNGS)
    return _laplace_tables(scales, centers)


@lru_cache(maxsize=1)
def weight_tables() -> CdfTables:
    """``WEIGHT_RUNGS`` zero-centred tables for quantized network weights."""
    return _laplace_tables(weight_scales(), np.zeros(WEIGHT_RUNGS))


@lru_cache(maxsize=1)
def tables_digest() -> str:
    """Short SHA-256 of both table sets: a stream records it, a decoder refuses other tables."""
    h = hashlib.sha256(latent_tables().digest().encode() + weight_tables().digest().encode())
    return h.hexdigest()[:16]
