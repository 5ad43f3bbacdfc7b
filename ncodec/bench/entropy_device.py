"""``ncodec bench entropy --device cuda``: the Triton rANS kernels against the CPU coder, constriction and a copy.

For each N (default 1M, 16M, 256M; 8-bit alphabet, 64 Gaussian scale tables: the ``gauss64``
case) the same symbols are coded by
- ``ncodec-triton``: the kernels, stream and symbols resident on the GPU (``enc``/``dec``), and
  from/to host ``bytes`` (``enc_host``/``dec_host``, PCIe transfers included);
- ``ncodec-cpu``: the native CPU coder with its default lanes, one thread;
- ``constriction``: its ``AnsCoder`` with per-symbol ``QuantizedGaussian`` (with ``--peers``);
and ``d2d-copy`` times a device-to-device copy of the 4N bytes of int32 symbols: the memory
bandwidth ceiling. Throughput is in G symbols/s and GB/s of int32 symbols (4N bytes / time);
``*_of_copy`` is the GPU coder's GB/s as a fraction of the copy's. ``lane_overhead_pct`` is the
size of the GPU stream (its lane count) over a single-lane stream of the same symbols, and
``same_bytes_as_cpu`` checks the GPU stream against the CPU coder's with the same lane count.
GPU times are best of ``--repeats`` after a warm-up run (kernel compilation); CPU coders run
``--cpu-repeats`` times (default: ``--repeats`` up to 1M symbols, once above).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..entropy import rans
from .entropy_cases import ALPHABET, Case, _short, gauss64_tables, gaussian_constriction, time_constriction
from .timing import best_time


@dataclass
class DeviceCase(Case):
    """A case whose ideal size was counted where its symbols were drawn."""

    ideal: float = 0.0

    def ideal_bits(self) -> float:
        """The ideal size in bits, counted when the symbols were drawn."""
        return self.ideal


def device_gauss_case(n: int, device: torch.device, seed: int = 0) -> DeviceCase:
    """The ``gauss64`` case, its symbols drawn on ``device`` (fast at 256M) and kept on the host too."""
    mean = 128.0
    scales, pmfs, tables = gauss64_tables(mean)
    gen = torch.Generator(device=device).manual_seed(seed)
    idx = torch.randint(0, 64, (n,), generator=gen, device=device, dtype=torch.int64)
    u = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
    # inverse-CDF sampling in one search: table t's CDF shifted to [t, t + 1]
    keys = torch.from_numpy((np.arange(64)[:, None] + np.cumsum(pmfs, axis=1)).reshape(-1)).to(device)
    sym = (torch.searchsorted(keys, idx + u) - idx * ALPHABET).clamp_(0, ALPHABET - 1)
    counts = torch.bincount(idx * ALPHABET + sym, minlength=64 * ALPHABET).cpu().numpy()
    ideal = float((counts * -np.log2(np.maximum(pmfs.reshape(-1), 1e-300))).sum())
    sym_np = sym.to(torch.int32).cpu().numpy()
    idx_np = idx.to(torch.int32).cpu().numpy()
    return DeviceCase(f"gauss64_n{_short(n)}", sym_np, idx_np, pmfs, tables,
                      gaussian_constriction(sym_np, idx_np, scales, mean), ideal)


def _synced(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """``fn`` followed by a device synchronisation, so wall time covers the GPU work."""
    if device.type != "cuda":
        return fn

    def run() -> Any:
        """Call ``fn`` between two synchronisations."""
        torch.cuda.synchronize(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def _rates(n: int, seconds_enc: float, seconds_dec: float) -> dict[str, float]:
    """G symbols/s and GB/s of int32 symbols for N symbols coded in the given times."""
    return {"enc_gsym_s": n / seconds_enc / 1e9, "dec_gsym_s": n / seconds_dec / 1e9,
            "enc_gb_s": 4 * n / seconds_enc / 1e9, "dec_gb_s": 4 * n / seconds_dec / 1e9}


def run_device_case(case: Case, device: torch.device, repeats: int, cpu_repeats: int, peers: bool,
                    lanes: int | None = None) -> list[dict[str, Any]]:
    """Rows for one case: GPU coder, copy ceiling, CPU coder, constriction, ratios."""
    from ..kernels import rans_triton as rt

    n = case.symbols.size
    ideal = case.ideal_bits()
    lanes = rt.gpu_default_lanes(n) if lanes is None else lanes
    sym_d = torch.from_numpy(case.symbols).to(device)
    idx_d = torch.from_numpy(case.table_index).to(device)
    tables = case.tables
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (TRITON_INTERPRET=1)"

    enc = _synced(lambda: rt.encode_tensor(sym_d, idx_d, tables, lanes), device)
    stream_d = enc()  # warm-up: compiles the kernels
    dec = _synced(lambda: rt.decode(stream_d, idx_d, tables), device)
    dec()
    t_enc, stream_d = best_time(enc, repeats)
    t_dec, out_d = best_time(dec, repeats)
    if not torch.equal(out_d, sym_d):
        raise AssertionError(f"GPU round trip failed on {case.name}")
    data = bytes(stream_d.cpu().numpy())
    t_enc_host, data_host = best_time(lambda: rt.encode(sym_d, idx_d, tables, lanes), repeats)
    t_dec_host, _ = best_time(_synced(lambda: rt.decode(data, idx_d, tables), device), repeats)
    dst = torch.empty_like(sym_d)
    copy = _synced(lambda: dst.copy_(sym_d), device)
    copy()
    t_copy, _ = best_time(copy, max(repeats, 10))

    same = rans.encode(case.symbols, case.table_index, tables, lanes=lanes)
    single = rans.encode(case.symbols, case.table_index, tables, lanes=1)
    cpu_out = rans.decode(data, case.table_index, tables)
    gpu = {"coder": "ncodec-triton", "device": name, "case": case.name, "n": n, "lanes": lanes,
           **_rates(n, t_enc, t_dec),
           "enc_of_copy": t_copy / t_enc, "dec_of_copy": t_copy / t_dec,
           "enc_host_gsym_s": n / t_enc_host / 1e9, "dec_host_gsym_s": n / t_dec_host / 1e9,
           "bytes": len(data), "bytes_single_lane": len(single),
           "lane_overhead_pct": 100 * (len(data) / len(single) - 1),
           "overhead_pct": 100 * (8 * len(data) / ideal - 1),
           "same_bytes_as_cpu": data == same == data_host and bool(np.array_equal(cpu_out, case.symbols))}
    if not gpu["same_bytes_as_cpu"]:
        raise AssertionError(f"GPU and CPU streams differ on {case.name} with {lanes} lanes")
    rows: list[dict[str, Any]] = [gpu, {"coder": "d2d-copy", "device": name, "case": case.name, "n": n,
                                        "bytes": 4 * n, "gb_s": 4 * n / t_copy / 1e9}]

    t_cenc, cdata = best_time(lambda: rans.encode(case.symbols, case.table_index, tables), cpu_repeats)
    t_cdec, cout = best_time(lambda: rans.decode(cdata, case.table_index, tables), cpu_repeats)
    if not np.array_equal(cout, case.symbols):
        raise AssertionError(f"CPU round trip failed on {case.name}")
    cpu = {"coder": "ncodec-cpu", "case": case.name, "n": n, "lanes": rans.read_header(cdata).lanes,
           **_rates(n, t_cenc, t_cdec), "bytes": len(cdata), "overhead_pct": 100 * (8 * len(cdata) / ideal - 1)}
    rows.append(cpu)
    rows.append({"ratio": "triton/cpu", "case": case.name, "n": n,
                 "enc_speedup": gpu["enc_gsym_s"] / cpu["enc_gsym_s"],
                 "dec_speedup": gpu["dec_gsym_s"] / cpu["dec_gsym_s"], "size_ratio": gpu["bytes"] / cpu["bytes"]})
    timed = time_constriction(case, cpu_repeats) if peers else None
    if timed is not None:
        t_penc, t_pdec, pbytes = timed
        peer = {"coder": "constriction", "case": case.name, "n": n, **_rates(n, t_penc, t_pdec),
                "bytes": pbytes, "overhead_pct": 100 * (8 * pbytes / ideal - 1)}
        rows.append(peer)
        rows.append({"ratio": "triton/constriction", "case": case.name, "n": n,
                     "enc_speedup": gpu["enc_gsym_s"] / peer["enc_gsym_s"],
                     "dec_speedup": gpu["dec_gsym_s"] / peer["dec_gsym_s"], "size_ratio": gpu["bytes"] / pbytes})
    return rows


def parse_size(text: str) -> int:
    """``1m`` -> 2**20, ``16k`` -> 16384, ``1000`` -> 1000."""
    text = text.strip().lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def device_or_exit(requested: str) -> torch.device:
    """The torch device to bench on, or SystemExit with the reason it cannot be used."""
    from ..kernels import interpreting, triton_missing_reason

    reason = triton_missing_reason()
    if reason:
        raise SystemExit(f"ncodec bench entropy --device {requested}: {reason}")
    device = torch.device(requested)
    if device.type != "cuda":
        raise SystemExit(f"ncodec bench entropy: --device must be cpu or cuda[:N], got {requested!r}")
    if not torch.cuda.is_available():
        if interpreting():
            print("# no CUDA device: running the kernels on CPU tensors under TRITON_INTERPRET=1 "
                  "(checks the benchmark's plumbing; the times mean nothing)", flush=True)
            return torch.device("cpu")
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise SystemExit(f"ncodec bench entropy --device {requested}: no CUDA device is available "
                         f"(torch {torch.__version__}, {build}); run it on a machine with an NVIDIA GPU, "
                         "or use --device cpu")
    return device


def print_row(row: dict[str, Any]) -> None:
    """One human-readable line per row."""
    if "ratio" in row:
        print(f"{'':16}{row['case']:<16} {row['ratio']:<20} enc {row['enc_speedup']:9.1f}x  "
              f"dec {row['dec_speedup']:9.1f}x  size {row['size_ratio']:.4f}", flush=True)
    elif row["coder"] == "d2d-copy":
        print(f"{'d2d-copy':<16}{row['case']:<16} n={row['n']:<10} {row['gb_s']:8.1f} GB/s", flush=True)
    else:
        line = (f"{row['coder']:<16}{row['case']:<16} n={row['n']:<10} enc {row['enc_gsym_s']:8.3f} Gsym/s "
                f"({row['enc_gb_s']:7.1f} GB/s)  dec {row['dec_gsym_s']:8.3f} Gsym/s ({row['dec_gb_s']:7.1f} GB/s)"
                f"  overhead {row['overhead_pct']:+.3f}%")
        if "enc_of_copy" in row:
            line += (f"\n{'':16}lanes {row['lanes']}: {row['enc_of_copy']:.3f} / {row['dec_of_copy']:.3f} of the "
                     f"copy (enc/dec), {row['lane_overhead_pct']:+.3f}% vs one lane, host bytes enc "
                     f"{row['enc_host_gsym_s']:.3f} dec {row['dec_host_gsym_s']:.3f} Gsym/s, same bytes as CPU: "
                     f"{row['same_bytes_as_cpu']}")
        print(line, flush=True)


def main_device(args: Any) -> None:
    """Run the device benchmark for parsed ``ncodec bench entropy`` arguments."""
    import json

    device = device_or_exit(args.device)
    if args.block:
        from ..kernels import rans_triton as rt

        if args.block < 32 or args.block & (args.block - 1):
            raise SystemExit(f"--block must be a power of two >= 32, got {args.block}")
        rt.BLOCK_LANES, rt.NUM_WARPS = args.block, args.block // 32
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    for name in args.cases.split(","):
        if name.strip() != "gauss64":
            raise SystemExit(f"--device {args.device} runs the gauss64 case only, got {name!r}")
    for n in sizes:
        t0 = time.perf_counter()
        case = device_gauss_case(n, device)
        cpu_repeats = args.cpu_repeats if args.cpu_repeats else (args.repeats if n <= 1 << 20 else 1)
        for row in run_device_case(case, device, args.repeats, cpu_repeats, not args.no_peers, args.lanes):
            if args.json:
                print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)
            else:
                print_row(row)
        if not args.json:
            print(f"# {case.name}: {time.perf_counter() - t0:.1f} s", flush=True)
        del case
        if device.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["DeviceCase", "device_gauss_case", "main_device", "run_device_case"]
