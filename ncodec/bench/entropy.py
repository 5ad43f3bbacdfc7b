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
from typing import Any

import numpy as np

from ..entropy import rans
from .entropy_cases import Case, factorized_case, gauss_case, time_constriction
from .timing import best_time

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
