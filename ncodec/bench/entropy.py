"""``ncodec bench entropy``: the rANS core against constriction on the same symbols and distributions.

Cases (8-bit alphabet, values 0..255):
- ``gauss64_n1m``: N symbols from discretised Gaussians around 128 with 64 scales
  (0.5 .. 40, log-spaced), one of them per symbol: the hyperprior / scale-table case.
  ncodec codes with 64 precomputed tables; constriction with its ``QuantizedGaussian``
  and per-symbol scales (its fastest way for this case).
- ``factorized_n1m``: 192 channels of N/192 symbols, one Laplace-shaped table per channel
  (scales 0.3 .. 24, medians spread around 128): the factorized-prior case. constriction
  codes each channel with a ``Categorical`` model.

Each line of output is one JSON object per (coder, case) with ``coder, case, n,
enc_msym_s, dec_msym_s, overhead_pct`` (bits over the ideal cross-entropy of the float
distributions, container-free), then one ``ratio`` object per case. Single thread, best of
``--repeats`` runs.

``--device cuda`` benchmarks the Triton GPU coder instead (see `ncodec.bench.entropy_device`):
``gauss64`` at ``--sizes`` (default 1M, 16M, 256M) next to the CPU coder, constriction and a
device-to-device copy, in G symbols/s and GB/s of int32 symbols.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..entropy import CdfTables, rans
from ..entropy import exactmath as em
from .timing import best_time

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


def run_case(case: Case, repeats: int, peers: bool = True) -> list[dict[str, Any]]:
    n = case.symbols.size
    ideal = case.ideal_bits()
    rows = []
    t_enc, data = best_time(lambda: rans.encode(case.symbols, case.table_index, case.tables), repeats)
    t_dec, out = best_time(lambda: rans.decode(data, case.table_index, case.tables), repeats)
    if not np.array_equal(out, case.symbols):
        raise AssertionError(f"ncodec round trip failed on {case.name}")
    rows.append({"coder": "ncodec", "case": case.name, "n": n, "enc_msym_s": n / t_enc / 1e6,
                 "dec_msym_s": n / t_dec / 1e6, "overhead_pct": 100 * (8 * len(data) / ideal - 1),
                 "bytes": len(data), "ideal_bytes": ideal / 8, "lanes": rans.read_header(data).lanes})
    timed = time_constriction(case, repeats) if peers else None
    if timed is not None:
        t_enc, t_dec, cbytes = timed
        rows.append({"coder": "constriction", "case": case.name, "n": n, "enc_msym_s": n / t_enc / 1e6,
                     "dec_msym_s": n / t_dec / 1e6, "overhead_pct": 100 * (8 * cbytes / ideal - 1),
                     "bytes": cbytes, "ideal_bytes": ideal / 8})
        a, b = rows[-2], rows[-1]
        rows.append({"ratio": "ncodec/constriction", "case": case.name,
                     "enc_speedup": a["enc_msym_s"] / b["enc_msym_s"],
                     "dec_speedup": a["dec_msym_s"] / b["dec_msym_s"],
                     "size_ratio": a["bytes"] / b["bytes"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="ncodec bench entropy", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="JSON lines (default: a table)")
    p.add_argument("--n", type=int, default=1 << 20, help="symbols per case (default 1M = 2**20)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cases", default="gauss64,factorized", help="comma-separated: gauss64, factorized")
    p.add_argument("--no-peers", action="store_true", help="skip constriction")
    p.add_argument("--device", default="cpu", help="cpu (the native coder, default) or cuda[:N] (the Triton "
                   "kernels next to the CPU coder, constriction and a device copy)")
    p.add_argument("--sizes", default="1m,16m,256m", help="with --device cuda: comma-separated N (k/m suffixes)")
    p.add_argument("--lanes", type=int, default=None, help="with --device cuda: lanes (default one per 4096 symbols)")
    p.add_argument("--block", type=int, default=None,
                   help="with --device cuda: lanes per kernel program (32, 64, 128, ...; default 32 = one warp)")
    p.add_argument("--cpu-repeats", type=int, default=0,
                   help="with --device cuda: runs of the CPU coders (default --repeats up to 1M symbols, else 1)")
    args = p.parse_args(argv)
    if args.device != "cpu":
        from .entropy_device import main_device

        if args.cases == "gauss64,factorized":
            args.cases = "gauss64"
        main_device(args)
        return
    makers = {"gauss64": gauss_case, "factorized": factorized_case}
    for name in args.cases.split(","):
        rows = run_case(makers[name.strip()](args.n), args.repeats, not args.no_peers)
        for row in rows:
            if args.json:
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            elif "ratio" in row:
                print(f"{'':14}{row['case']:<16} speed-up enc {row['enc_speedup']:.2f}x  dec {row['dec_speedup']:.2f}x  "
                      f"size {row['size_ratio']:.4f}", flush=True)
            else:
                print(f"{row['coder']:<14}{row['case']:<16} n={row['n']:<9} enc {row['enc_msym_s']:8.1f} Msym/s  "
                      f"dec {row['dec_msym_s']:8.1f} Msym/s  overhead {row['overhead_pct']:+.4f}%", flush=True)
