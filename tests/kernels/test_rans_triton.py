"""Triton rANS kernels (`ncodec.kernels.rans_triton`): the CPU coder's bytes, made and read on a GPU.

Every kernel test runs with one of two devices:
- ``interp``: CPU tensors under Triton's interpreter, small sizes. ``TRITON_INTERPRET=1`` must
  be set before Triton is imported, so `test_interpreter_suite` runs these tests in a child
  pytest process with it set (they show as skipped in this process);
- ``cuda``: CUDA tensors, compiled kernels, larger sizes (marked ``cuda``, skipped without one).
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ncodec.entropy import CdfTables, rans
from ncodec.errors import BitstreamError, EntropyCodingError
from ncodec.kernels import interpreting, triton_missing_reason

CHILD = interpreting()  # this process is the interpreter child of test_interpreter_suite
NO_TRITON = triton_missing_reason()
HAS_CUDA = torch.cuda.is_available()
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
ROOT = Path(__file__).resolve().parents[2]

DEVICES = [
    pytest.param("interp", id="interp", marks=pytest.mark.skipif(
        not CHILD, reason="runs in the TRITON_INTERPRET=1 child process of test_interpreter_suite")),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        CHILD or not HAS_CUDA, reason="needs a CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def dev(request: pytest.FixtureRequest) -> str:
    """The kernel device: 'interp' (CPU tensors, interpreter) or 'cuda'."""
    if NO_TRITON:
        pytest.skip(NO_TRITON)
    return request.param


def rt() -> Any:
    """The kernel module (imported inside tests, so that this file collects without Triton)."""
    from ncodec.kernels import rans_triton

    return rans_triton


def torch_device(dev: str) -> torch.device:
    """The torch device of a kernel device."""
    return torch.device("cpu" if dev == "interp" else "cuda")


def scale(dev: str, small: int, large: int) -> int:
    """A size: small under the interpreter (it runs ~10 ms per lane step), large on a GPU."""
    return small if dev == "interp" else large


# =================================================================== data
def make_tables(rng: np.random.Generator, precision: int, ntables: int = 5, max_size: int = 300,
                escape_mass: float | None = None) -> CdfTables:
    """Random tables: assorted sizes, pmf shapes and offsets (int32 extremes included)."""
    largest = min(max_size, (1 << precision) - 1)
    sizes = rng.integers(1, largest + 1, ntables)
    sizes[0] = 1
    sizes[-1] = largest
    offsets = rng.choice([0, -7, 100, INT32_MIN, INT32_MAX - largest, INT32_MAX, -1000], ntables)
    pmf = np.zeros((ntables, int(sizes.max())))
    for t, size in enumerate(sizes):
        kind = t % 3
        if kind == 0:
            pmf[t, :size] = rng.dirichlet(np.full(size, 0.3))
        elif kind == 1:
            pmf[t, :size] = 0.7 ** np.abs(np.arange(size) - rng.integers(size))
        else:
            pmf[t, :size] = 1e-12
            pmf[t, rng.integers(size)] = 1.0  # frequencies near 2**P
    return CdfTables.from_pmf(pmf, offsets=offsets, sizes=sizes, escape_mass=escape_mass, precision=precision)


def make_symbols(rng: np.random.Generator, tables: CdfTables, n: int,
                 escape_rate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, table_index): in-support values, edges, and escapes of every bit length."""
    idx = rng.integers(0, tables.num_tables, n)
    offs = tables.offsets[idx].astype(np.int64)
    size = tables.sizes[idx].astype(np.int64)
    inside = offs + (rng.random(n) * size).astype(np.int64)
    distance = np.floor(np.exp2(rng.uniform(0, 33, n))).astype(np.int64)
    far = np.where(rng.random(n) < 0.5, offs - distance, offs + size - 1 + distance)
    extreme = np.where(rng.random(n) < 0.5, INT32_MIN, INT32_MAX)
    pick = rng.random(n)
    sym = np.where(pick < 1 - escape_rate, inside, np.where(pick < 1 - escape_rate / 4, far, extreme))
    return np.clip(sym, INT32_MIN, INT32_MAX).astype(np.int32), idx.astype(np.int32)


def on(dev: str, *arrays: np.ndarray) -> list[torch.Tensor]:
    """The arrays as tensors on the kernel device."""
    return [torch.from_numpy(a).to(torch_device(dev)) for a in arrays]


def check_stream(dev: str, sym: np.ndarray, idx: Any, tables: CdfTables, lanes: int,
                 use_rcp: bool = True, use_lut: bool | None = None) -> bytes:
    """Kernel bytes == CPU bytes; the kernel decodes the stream; returns it."""
    table_index = idx if np.isscalar(idx) else on(dev, idx)[0]
    expected = rans.encode(sym, idx, tables, lanes=lanes)
    got = rt().encode(on(dev, sym)[0], table_index, tables, lanes=lanes, use_rcp=use_rcp)
    assert got == expected, f"stream differs ({len(got)} vs {len(expected)} bytes)"
    out = rt().decode(expected, table_index, tables, device=torch_device(dev), use_lut=use_lut)
    assert out.dtype == torch.int32 and out.device.type == torch_device(dev).type
    np.testing.assert_array_equal(out.cpu().numpy(), sym)
    np.testing.assert_array_equal(rans.decode(got, idx, tables), sym)  # the CPU reads the kernel's stream
    return got


# =================================================================== bit-exactness
@pytest.mark.parametrize("precision", [12, 16])
@pytest.mark.parametrize("shape", ["one_lane", "some_lanes", "lane_per_symbol"])
def test_kernel_bytes_equal_cpu_bytes(dev: str, precision: int, shape: str) -> None:
    rng = np.random.default_rng(precision * 7 + len(shape))
    tables = make_tables(rng, precision)
    n = {"one_lane": scale(dev, 60, 50_000), "some_lanes": scale(dev, 3000, 1 << 20),
         "lane_per_symbol": scale(dev, 2000, 100_000)}[shape]
    lanes = {"one_lane": 1, "some_lanes": scale(dev, 150, 509), "lane_per_symbol": n}[shape]
    sym, idx = make_symbols(rng, tables, n, escape_rate=0.1)
    check_stream(dev, sym, idx, tables, lanes)


@pytest.mark.parametrize("path", ["divide", "search"])
def test_plain_division_and_binary_search_paths(dev: str, path: str) -> None:
    """``x // f`` instead of the reciprocal, and the CDF binary search instead of the slot table."""
    rng = np.random.default_rng(5)
    tables = make_tables(rng, 16 if path == "search" else 12, ntables=9)
    sym, idx = make_symbols(rng, tables, scale(dev, 1500, 200_000), escape_rate=0.05)
    check_stream(dev, sym, idx, tables, scale(dev, 40, 300), use_rcp=path != "divide", use_lut=path != "search")


def test_empty_and_single_symbol_streams(dev: str) -> None:
    rng = np.random.default_rng(1)
    tables = make_tables(rng, 12)
    for n in (0, 1):
        sym, idx = make_symbols(rng, tables, n)
        data = check_stream(dev, sym, idx, tables, 1)
        assert rans.read_header(data).n == n
    assert rt().encode(torch.zeros(0, dtype=torch.int32, device=torch_device(dev)), 0, tables) == \
        rans.encode(np.zeros(0, np.int32), 0, tables)


def test_scalar_table_index_and_int64_inputs(dev: str) -> None:
    rng = np.random.default_rng(2)
    tables = make_tables(rng, 16, ntables=3)
    sym, _ = make_symbols(rng, tables, scale(dev, 500, 100_000), escape_rate=0.02)
    check_stream(dev, sym, 2, tables, scale(dev, 25, 64))
    wide = rt().encode(torch.from_numpy(sym.astype(np.int64)).to(torch_device(dev)), 2, tables, lanes=50)
    assert wide == rans.encode(sym, 2, tables, lanes=50)


def test_escape_heavy_lanes_take_the_exact_budget_path(dev: str) -> None:
    """More escapes than the first per-lane guess (n/L/32 + 2): the encoder runs again with exact counts."""
    rng = np.random.default_rng(3)
    tables = make_tables(rng, 12, ntables=2)
    n = scale(dev, 200, 200_000)
    sym, idx = make_symbols(rng, tables, n, escape_rate=0.9)
    check_stream(dev, sym, idx, tables, scale(dev, 10, 1000))


def test_realistic_gaussian_payload(dev: str) -> None:
    """The benchmark's hyperprior case (64 scale tables, 8-bit alphabet, no escapes in practice)."""
    from ncodec.bench.entropy_device import device_gauss_case

    case = device_gauss_case(scale(dev, 4096, 1 << 22), torch_device(dev))
    lanes = rt().gpu_default_lanes(case.symbols.size) if dev == "cuda" else 64
    check_stream(dev, case.symbols, case.table_index, case.tables, lanes)


def test_device_benchmark_rows(dev: str) -> None:
    """`ncodec bench entropy --device cuda` runs end to end: every row, the CPU's bytes, sane ratios."""
    from ncodec.bench.entropy_device import device_gauss_case, run_device_case

    n = scale(dev, 512, 1 << 20)
    case = device_gauss_case(n, torch_device(dev), seed=3)
    rows = run_device_case(case, torch_device(dev), repeats=1, cpu_repeats=1, peers=False,
                           lanes=4 if dev == "interp" else None)
    by_name = {row.get("coder", row.get("ratio")): row for row in rows}
    assert set(by_name) == {"ncodec-triton", "d2d-copy", "ncodec-cpu", "triton/cpu"}
    gpu, cpu = by_name["ncodec-triton"], by_name["ncodec-cpu"]
    assert gpu["same_bytes_as_cpu"] is True and gpu["n"] == n
    assert gpu["bytes"] >= gpu["bytes_single_lane"] > 0
    assert 0 <= gpu["lane_overhead_pct"] == pytest.approx(100 * (gpu["bytes"] / gpu["bytes_single_lane"] - 1),
                                                          abs=1e-5)
    assert all(gpu[k] > 0 for k in ("enc_gsym_s", "dec_gsym_s", "enc_of_copy", "dec_of_copy"))
    assert gpu["enc_gb_s"] == pytest.approx(4 * gpu["enc_gsym_s"]) and cpu["bytes"] > 0
    assert by_name["triton/cpu"]["size_ratio"] == pytest.approx(gpu["bytes"] / cpu["bytes"])


def test_default_gpu_lane_count(dev: str) -> None:
    rng = np.random.default_rng(4)
    tables = make_tables(rng, 12, ntables=2)
    assert [rt().gpu_default_lanes(n) for n in (0, 1, 8191, 8192, 1 << 28, 1 << 40)] == \
        [1, 1, 1, 2, 1 << 16, rans.MAX_LANES]
    n = scale(dev, 60, 1 << 20)  # one lane under the interpreter: it runs ~25 ms per symbol then
    sym, idx = make_symbols(rng, tables, n, escape_rate=0.0)
    data = rt().encode(*on(dev, sym, idx), tables)
    assert rans.read_header(data).lanes == rt().gpu_default_lanes(n) == max(1, n // 4096)
    assert data == rans.encode(sym, idx, tables, lanes=max(1, n // 4096))


# =================================================================== batched API
def test_batch_encode_and_decode(dev: str) -> None:
    rng = np.random.default_rng(6)
    tables = make_tables(rng, 12)
    d = torch_device(dev)
    sizes = [0, 1, scale(dev, 100, 10_000), scale(dev, 900, 300_000), scale(dev, 37, 5000)]
    cases = [make_symbols(rng, tables, n, escape_rate=0.05) for n in sizes]
    lanes = [1, 1, 3, scale(dev, 30, 200), 37]
    items = [(torch.from_numpy(s).to(d), 4 if k == 4 else torch.from_numpy(i).to(d))
             for k, (s, i) in enumerate(cases)]
    indexes = [4 if k == 4 else i for k, (s, i) in enumerate(cases)]
    symbols = [s for s, _ in cases]
    got = rt().encode_batch(items, tables, lanes)
    expected = [rans.encode(s, i, tables, lanes=nl) for s, i, nl in zip(symbols, indexes, lanes)]
    assert got == expected
    as_tensors = rt().encode_batch(items, tables, lanes, as_tensors=True)
    assert [bytes(t.cpu().numpy()) for t in as_tensors] == expected
    # decode a mix of bytes and device tensors, scalar and tensor indexes, in one launch
    streams = [expected[0], as_tensors[1], expected[2], as_tensors[3], expected[4]]
    outs = rt().decode_batch(streams, [4 if k == 4 else torch.from_numpy(i).to(d)
                                       for k, (_, i) in enumerate(cases)], tables, device=d)
    for out, s in zip(outs, symbols):
        np.testing.assert_array_equal(out.cpu().numpy(), s)


def test_padded_batch_matches_separate_streams(dev: str) -> None:
    rng = np.random.default_rng(8)
    tables = make_tables(rng, 16, ntables=4)
    d = torch_device(dev)
    rows, width = 4, scale(dev, 400, 50_000)
    sym, idx = make_symbols(rng, tables, rows * width, escape_rate=0.05)
    sym, idx = sym.reshape(rows, width), idx.reshape(rows, width)
    lengths = [width, width // 2, 1, width - 3]
    lanes = [20, 10, 1, 20] if dev == "interp" else [rt().gpu_default_lanes(k) for k in lengths]
    got = rt().encode_padded(torch.from_numpy(sym).to(d), torch.from_numpy(idx).to(d), lengths, tables,
                             lanes=None if dev == "cuda" else lanes)
    expected = [rans.encode(sym[b, :k], idx[b, :k], tables, lanes=nl) for b, (k, nl) in enumerate(zip(lengths, lanes))]
    assert got == expected
    per_row = rt().encode_padded(torch.from_numpy(sym).to(d), torch.tensor([0, 1, 2, 3], device=d), lengths,
                                 tables, lanes=lanes)
    assert per_row == [rans.encode(sym[b, :k], b, tables, lanes=nl) for b, (k, nl) in enumerate(zip(lengths, lanes))]


# =================================================================== errors
def test_bad_encoder_inputs_raise_like_the_cpu_coder(dev: str) -> None:
    rng = np.random.default_rng(9)
    tables = make_tables(rng, 12, ntables=3)
    sym, idx = make_symbols(rng, tables, 50)
    s, i = on(dev, sym, idx)
    with pytest.raises(EntropyCodingError, match="lanes must be in"):
        rt().encode(s, i, tables, lanes=51)  # more lanes than symbols
    with pytest.raises(EntropyCodingError, match="lanes must be in"):
        rt().encode(s[:0], i[:0], tables, lanes=2)
    bad = idx.copy()
    bad[[7, 30]] = [3, -1]
    with pytest.raises(EntropyCodingError) as cpu_err:
        rans.encode(sym, bad, tables, lanes=5)
    with pytest.raises(EntropyCodingError) as gpu_err:
        rt().encode(s, on(dev, bad)[0], tables, lanes=5)
    assert str(gpu_err.value) == str(cpu_err.value)
    with pytest.raises(EntropyCodingError, match="table_index has"):
        rt().encode(s, i[:10], tables)
    with pytest.raises(EntropyCodingError, match="outside"):
        rt().encode(s, 3, tables)


def test_corrupt_streams_raise_bitstream_errors(dev: str) -> None:
    rng = np.random.default_rng(10)
    tables = make_tables(rng, 12, ntables=3)
    sym, idx = make_symbols(rng, tables, 120, escape_rate=0.2)
    data = rans.encode(sym, idx, tables, lanes=6)
    i = on(dev, idx)[0]
    d = torch_device(dev)
    header = rans.read_header(data)
    payload_at = header.overhead_bytes
    flipped = bytearray(data)
    flipped[payload_at + 5] ^= 0x10
    bad_state = bytearray(data)
    bad_state[16:24] = struct.pack("<Q", 5)
    variants = {
        "truncated": data[:-4],
        "extra word": data + b"\0\0\0\0",
        "odd length": data + b"\0",
        "lane table cut": data[:20],
        "flipped payload": bytes(flipped),
        "bad start state": bytes(bad_state),
        "precision": data[:3] + bytes([16]) + data[4:],
        "too many lanes": data[:4] + struct.pack("<I", 121) + data[8:],
    }
    for name, blob in variants.items():
        try:
            out = rt().decode(blob, i, tables, device=d)
        except BitstreamError:
            continue
        # a flipped payload bit may still decode: then it must not claim the original symbols
        assert name == "flipped payload" and not np.array_equal(out.cpu().numpy(), sym), name
    with pytest.raises(BitstreamError):
        rt().decode(data, i[:-1], tables, device=d)
    bad = idx.copy()
    bad[3] = 99
    with pytest.raises(BitstreamError, match="outside"):
        rt().decode(data, on(dev, bad)[0], tables, device=d)
    with pytest.raises(BitstreamError, match="expected"):
        rt().decode(data, i, tables, count=5, device=d)


# =================================================================== dispatch and packaging
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA or CHILD, reason="needs a CUDA device")
def test_public_coder_dispatches_cuda_tensors() -> None:
    rng = np.random.default_rng(11)
    tables = make_tables(rng, 16)
    sym, idx = make_symbols(rng, tables, 1 << 20, escape_rate=0.01)
    s, i = on("cuda", sym, idx)
    data = rans.encode(s, i, tables)
    assert rans.read_header(data).lanes == (1 << 20) // 4096
    assert data == rans.encode(sym, idx, tables, lanes=(1 << 20) // 4096)
    out = rans.decode(data, i, tables)
    assert out.is_cuda and torch.equal(out.cpu(), torch.from_numpy(sym))
    out = rans.decode(rans.encode(sym, 0, tables), 0, tables, device="cuda")
    assert out.is_cuda and torch.equal(out.cpu(), torch.from_numpy(sym))
    assert isinstance(rans.decode(data, idx, tables), np.ndarray)  # host inputs stay on the CPU path


def test_ncodec_codes_without_triton() -> None:
    """With triton unimportable, ncodec imports and the CPU coder works."""
    code = ("import sys; sys.modules['triton'] = None\n"
            "import numpy as np, ncodec\n"
            "from ncodec.entropy import CdfTables, rans\n"
            "from ncodec.kernels import triton_available\n"
            "assert not triton_available()\n"
            "t = CdfTables.from_pmf(np.ones((1, 4)))\n"
            "s = np.array([0, 1, 2, 3, 9], np.int32)\n"
            "assert (rans.decode(rans.encode(s, 0, t), 0, t) == s).all()\n"
            "assert 'triton' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            # the CUDA entry points fall back to the CPU coder, with the GPU lane count and a warning
            "import torch, warnings\n"
            "from ncodec.kernels import rans_device\n"
            "s = np.arange(-3, 9000, dtype=np.int32) % 5\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    data = rans_device.encode(torch.from_numpy(s), torch.zeros(s.size, dtype=torch.int64), t)\n"
            "    out = rans_device.decode(data, torch.zeros(s.size, dtype=torch.int32), t)\n"
            "assert data == rans.encode(s, 0, t, lanes=2) and torch.equal(out, torch.from_numpy(s))\n"
            "assert any('coded on the CPU' in str(x.message) for x in w)\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.skipif(CHILD, reason="this is the child")
def test_interpreter_suite() -> None:
    """The ``interp`` tests of this file, in a child pytest process with TRITON_INTERPRET=1."""
    if NO_TRITON:
        pytest.skip(NO_TRITON)
    env = dict(os.environ, TRITON_INTERPRET="1")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "interp",
                          str(Path(__file__))], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    took = time.perf_counter() - t0
    assert run.returncode == 0, f"interpreter tests failed ({took:.0f} s):\n{run.stdout[-12000:]}\n{run.stderr[-3000:]}"
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout[-3000:]


@pytest.mark.skipif(CHILD, reason="the interpreter does not compile")
@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_for_gpus_without_one(arch: int) -> None:
    """The compiled path (typed, unlike the interpreter's) builds cubins with Triton's own ptxas."""
    if NO_TRITON:
        pytest.skip(NO_TRITON)
    names = ["encode_p16_rcp", "decode_p16_lut16", "decode_p12_search"] if arch == 90 else ["encode_p12_div"]
    kernels = rt().compile_kernels(arch, only=names)
    assert sorted(kernels) == sorted(names)
    assert all(len(k.asm["cubin"]) > 1000 for k in kernels.values())
