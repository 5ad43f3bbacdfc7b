"""The cases of ``ncodec bench entropy`` (CPU and GPU): symbols, their distributions, ncodec's
tables and constriction's coder for the same symbols."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..entropy import CdfTables
from ..entropy import exactmath as em
from .timing import best_time

__all__ = ["ALPHABET", "Case", "factorized_case", "gauss64_tables", "gauss_case", "gaussian_constriction",
           "time_constriction"]

ALPHABET = 256
TAIL_SIGMAS = 6.1  # CompressAI's support for tail mass 1e-9


@dataclass
class Case:
    """Symbols, their float pmfs (for the ideal) and how each coder models them."""

    name: str
    symbols: np.ndarray       # int32 [N]
    table_index: np.ndarray   # int32 [N]
    pmfs: np.ndarray          # float64 [T, 256], each row sums to 1
    tables: CdfTables
    constriction: Callable[[], dict[str, Callable[..., Any]]]

    def ideal_bits(self) -> float:
        return float(-np.log2(self.pmfs[self.table_index, self.symbols]).sum())


def _discretised_gaussian(mean: float, scales: np.ndarray) -> np.ndarray:
    k = np.arange(ALPHABET)[None, :]
    s = scales[:, None]
    pmf = em.normal_sf((k - 0.5 - mean) / s) - em.normal_sf((k + 0.5 - mean) / s)
    return pmf / pmf.sum(axis=1, keepdims=True)


def _truncated_tables(pmfs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> CdfTables:
    """Tables over [lo, hi] of each pmf; values outside go through the escape."""
    sizes = hi - lo + 1
    width = int(sizes.max())
    body = np.zeros((pmfs.shape[0], width))
    for t in range(pmfs.shape[0]):
        body[t, : sizes[t]] = pmfs[t, lo[t]: hi[t] + 1]
    return CdfTables.from_pmf(body, offsets=lo, sizes=sizes)


def gauss64_tables(mean: float = 128.0) -> tuple[np.ndarray, np.ndarray, CdfTables]:
    """The ``gauss64`` case's 64 scales (0.5 .. 40, log-spaced), their pmfs around ``mean`` and the
    tables ncodec codes them with (``TAIL_SIGMAS`` either side, the rest through the escape)."""
    scales = np.exp(np.linspace(math.log(0.5), math.log(40.0), 64))
    pmfs = _discretised_gaussian(mean, scales)
    lo = np.maximum(0, np.floor(mean - TAIL_SIGMAS * scales)).astype(np.int64)
    hi = np.minimum(ALPHABET - 1, np.ceil(mean + TAIL_SIGMAS * scales)).astype(np.int64)
    return scales, pmfs, _truncated_tables(pmfs, lo, hi)


def gaussian_constriction(symbols: np.ndarray, index: np.ndarray, scales: np.ndarray,
                          mean: float) -> Callable[[], dict[str, Callable[..., Any]]]:
    """constriction's coder for ``symbols`` from Gaussians around ``mean`` with ``scales[index]``: its
    ``AnsCoder`` with per-symbol ``QuantizedGaussian`` (imported, and the per-symbol arrays made, on use)."""

    def constriction_coder() -> dict[str, Callable[..., Any]]:
        """constriction's encoder and decoder for these symbols."""
        import constriction

        model = constriction.stream.model.QuantizedGaussian(0, ALPHABET - 1)
        means = np.full(symbols.size, mean)
        stds = scales[index].astype(np.float64)

        def enc() -> np.ndarray:
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(symbols, model, means, stds)
            return coder.get_compressed()

        def dec(data: np.ndarray) -> np.ndarray:
            return constriction.stream.stack.AnsCoder(data).decode(model, means, stds)

        return {"enc": enc, "dec": dec}

    return constriction_coder


def gauss_case(n: int, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    mean = 128.0
    scales, pmfs, tables = gauss64_tables(mean)
    idx = rng.integers(0, 64, n).astype(np.int32)
    cdf = np.cumsum(pmfs, axis=1)
    sym = np.minimum((rng.random(n)[:, None] > cdf[idx]).sum(axis=1), ALPHABET - 1).astype(np.int32)
    return Case(f"gauss64_n{_short(n)}", sym, idx, pmfs, tables, gaussian_constriction(sym, idx, scales, mean))


def factorized_case(n: int, channels: int = 192, seed: int = 1) -> Case:
    rng = np.random.default_rng(seed)
    name = "factorized_n%s" % _short(n)
    per = n // channels
    n = per * channels  # whole channels: a few symbols short of the requested n
    scales = np.exp(np.linspace(math.log(0.3), math.log(24.0), channels))
    rng.shuffle(scales)
    medians = 128 + rng.integers(-8, 9, channels)
    k = np.arange(ALPHABET)[None, :]
    pmfs = em.exp(-np.abs(k - medians[:, None]) / scales[:, None])
    pmfs /= pmfs.sum(axis=1, keepdims=True)
    idx = np.repeat(np.arange(channels, dtype=np.int32), per)  # channel-major, as [C, H, W] latents
    cdf = np.cumsum(pmfs, axis=1)
    sym = np.empty(n, dtype=np.int32)
    for c in range(channels):
        u = rng.random(per)
        sym[c * per:(c + 1) * per] = np.minimum(np.searchsorted(cdf[c], u, side="right"), ALPHABET - 1)
    lo = np.maximum(0, np.floor(medians - 22 * scales)).astype(np.int64)
    hi = np.minimum(ALPHABET - 1, np.ceil(medians + 22 * scales)).astype(np.int64)

    def constriction_coder() -> dict[str, Callable[..., Any]]:
        import constriction

        models = [constriction.stream.model.Categorical(pmfs[c].astype(np.float64), perfect=False)
                  for c in range(channels)]
        parts = [sym[c * per:(c + 1) * per] for c in range(channels)]

        def enc() -> np.ndarray:
            coder = constriction.stream.stack.AnsCoder()
            for c in range(channels - 1, -1, -1):
                coder.encode_reverse(parts[c], models[c])
            return coder.get_compressed()

        def dec(data: np.ndarray) -> np.ndarray:
            coder = constriction.stream.stack.AnsCoder(data)
            return np.concatenate([coder.decode(models[c], per) for c in range(channels)])

        return {"enc": enc, "dec": dec}

    return Case(name, sym, idx, pmfs,
                _truncated_tables(pmfs, lo, hi), constriction_coder)


def _short(n: int) -> str:
    for unit, div in (("m", 1 << 20), ("k", 1 << 10)):
        if n >= div:
            return f"{round(n / div)}{unit}"
    return str(n)


def time_constriction(case: Case, repeats: int) -> tuple[float, float, int] | None:
    """constriction on ``case``: encode and decode times (best of ``repeats``) and its stream's size in
    bytes, after checking the round trip; None when constriction is not installed."""
    try:
        coder = case.constriction()
    except ImportError:
        return None
    t_enc, data = best_time(coder["enc"], repeats)
    t_dec, out = best_time(lambda: coder["dec"](data), repeats)
    if not np.array_equal(np.asarray(out), case.symbols):
        raise AssertionError(f"constriction round trip failed on {case.name}")
    return t_enc, t_dec, int(np.asarray(data).nbytes)
