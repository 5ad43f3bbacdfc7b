"""Triton kernels for the lane-interleaved rANS format of `ncodec.entropy.rans`: the same bytes, on a GPU.

The stream format is the one in the docstring of `ncodec.entropy.rans`; for the same symbols,
table indexes, tables and lane count these kernels write exactly the bytes of the CPU coder,
and each side decodes the other's streams.

Design
    One kernel program codes a block of lanes, vectorised over the lanes (one lane per GPU
    thread) and looping over each lane's symbols: backwards to encode, forwards to decode.
    Lanes come from any number of streams at once (the batched API): each lane carries its
    first symbol's index, its symbol stride (its stream's lane count) and its symbol count.
    Encoding gathers ``cdf[t, s]``, ``cdf[t, s + 1]`` and an exact 64-bit reciprocal of the
    frequency (``x // f`` as a 64x64 high multiply plus one correction step); each lane writes
    its words downwards into its own region of a worst-case-sized buffer (one word per symbol
    plus four per escape: the budget of the C coder, retried with exact per-lane escape counts
    when a lane meets more escapes than the first guess). Torch ops then gather header, lane
    table and payload into the final stream. Decoding finds a slot's symbol with a
    slot -> symbol table per CDF table when ``T * 2**P <= LUT_MAX_ENTRIES`` (one 2-byte
    gather), else with a branch-free binary search over the CDF row; every read of the stream
    is bounds-checked, so a corrupt stream raises `BitstreamError` and never reads outside it.
    Escapes (escape symbol + bypass fields) follow the C coder bit for bit; they run in a
    block-uniform branch taken only when a lane of the block meets one, so streams without
    escapes pay one reduction per step for them.

Lanes
    A lane is a sequential coder, so a GPU wants many: `gpu_default_lanes` gives one lane per
    `GPU_SYMBOLS_PER_LANE` = 4096 symbols. Each lane costs 12 bytes of lane table (less the
    ~4 bytes of information its final state carries), about ``2.3 / H`` percent of the stream
    at H bits/symbol: 0.46% at the 4.2 bits/symbol of the benchmark's Gaussian case, 2.3% at
    1 bit/symbol. Pass ``lanes`` to trade size for parallelism either way.

Importing this module imports Triton; `ncodec.entropy.rans` imports it only for CUDA inputs.
Under ``TRITON_INTERPRET=1`` (set before Triton is imported) the kernels run on CPU tensors.
"""
from __future__ import annotations

import contextlib
import struct
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from ..entropy import rans as cpu_rans
from ..entropy.cdf import CdfTables
from ..errors import BitstreamError, EntropyCodingError
from ._triton import interpreting
from .lanes import GPU_SYMBOLS_PER_LANE, gpu_default_lanes

LUT_MAX_ENTRIES = 1 << 22      # slot -> symbol tables up to 8 MB (int16) per table set
BLOCK_LANES = 32               # lanes per program on a GPU: one warp, one lane per thread, so the
NUM_WARPS = 1                  # per-step reductions (escape branch, loop bound) need no barrier
INTERPRET_BLOCK_LANES = 1024   # the interpreter runs programs one by one: fewer, wider ones
RANS_L = 1 << 32
ESC_LEN_BITS = 6
MAX_ESCAPE_BITS = 34
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

__all__ = ["GPU_SYMBOLS_PER_LANE", "DeviceTables", "compile_kernels", "decode", "decode_batch", "device_tables",
           "encode", "encode_batch", "encode_padded", "encode_tensor", "gpu_default_lanes"]

# decoder error codes, per lane
_ERR_INDEX, _ERR_UNDERFLOW, _ERR_ESCAPE, _ERR_END, _ERR_START = 1, 2, 3, 4, 5


# ============================================================================ kernels
# (Triton reads parameter annotations as types, so the jitted functions carry none.)
@triton.jit
def _emit(buf_ptr, x, nw, on, rend, rstart):
    """Lanes flagged ``on`` write their state's low word below their earlier words, then drop it."""
    pos = rend - nw - 1
    word = x.to(tl.uint32).to(tl.int32, bitcast=True)
    tl.store(buf_ptr + pos, word, mask=on & (pos >= rstart))
    return tl.where(on, x >> 32, x), nw + on.to(tl.int64)


@triton.jit
def _enc_bits(buf_ptr, x, nw, on, value, bits, rend, rstart):
    """Lanes flagged ``on`` push ``bits`` (1..16) raw bits: a symbol of frequency 1 at precision ``bits``."""
    b = bits.to(tl.uint64)
    one = tl.full(x.shape, 1, tl.uint64)
    x, nw = _emit(buf_ptr, x, nw, on & (x >= (one << (64 - b))), rend, rstart)
    return tl.where(on, (x << b) | value.to(tl.uint64), x), nw


@triton.jit
def _bit_length(v):
    """Bit length of each uint64 entry (0 for 0)."""
    n = tl.zeros(v.shape, tl.int64)
    for b in tl.static_range(6):
        sh = 32 >> b
        t = v >> sh
        c = t != 0
        v = tl.where(c, t, v)
        n = n + tl.where(c, sh, 0).to(tl.int64)
    return n + (v != 0).to(tl.int64)


@triton.jit
def _lanes(lane_base_ptr, lane_ibase_ptr, lane_step_ptr, lane_count_ptr, lane_table_ptr, n_lanes,
           BLOCK: tl.constexpr):
    """This program's BLOCK lanes (``g``, ``live``) and where their symbols and table indexes lie:
    the lane layout both kernels read (base, index base, step, count, constant table or -1)."""
    g = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = g < n_lanes
    base = tl.load(lane_base_ptr + g, mask=live, other=0)
    ibase = tl.load(lane_ibase_ptr + g, mask=live, other=0)
    step = tl.load(lane_step_ptr + g, mask=live, other=1)
    count = tl.load(lane_count_ptr + g, mask=live, other=0)
    const_t = tl.load(lane_table_ptr + g, mask=live, other=0)
    return g, live, base, ibase, step, count, const_t


@triton.jit
def _encode_kernel(sym_ptr, idx_ptr, lane_base_ptr, lane_ibase_ptr, lane_step_ptr, lane_count_ptr,
                   lane_table_ptr, region_start_ptr, region_end_ptr,
                   cdf_ptr, size_ptr, offset_ptr, rcp_ptr,
                   buf_ptr, state_ptr, nwords_ptr, esc_ptr, err_ptr,
                   n_lanes, stride, n_tables,
                   P: tl.constexpr, BLOCK: tl.constexpr, USE_RCP: tl.constexpr):
    """Encode BLOCK lanes backwards; each writes its words downwards from its region's end."""
    g, live, base, ibase, step, count, const_t = _lanes(lane_base_ptr, lane_ibase_ptr, lane_step_ptr, lane_count_ptr,
                                                        lane_table_ptr, n_lanes, BLOCK)
    rstart = tl.load(region_start_ptr + g, mask=live, other=0)
    rend = tl.load(region_end_ptr + g, mask=live, other=0)
    x = tl.full([BLOCK], 1 << 32, tl.uint64)
    nw = tl.zeros([BLOCK], tl.int64)
    nesc = tl.zeros([BLOCK], tl.int64)
    bad = tl.zeros([BLOCK], tl.int32)
    kk = tl.max(count, axis=0) - 1  # a while loop: the interpreter's range() fails on numpy >= 2.4
    # the next step's symbols and table indexes are loaded one step ahead, to hide their latency
    # (step numbers are broadcast to vectors before combining conditions: Triton 3.9 types
    # ``scalar_bool & vector_bool`` as int32, which a mask refuses)
    kv = tl.zeros([BLOCK], tl.int64) + kk
    nxt = (kv >= 0) & (kv < count)
    s_next = tl.load(sym_ptr + base + kv * step, mask=nxt, other=0)
    t_next = tl.load(idx_ptr + ibase + kv * step, mask=nxt & (const_t < 0), other=0)
    while kk >= 0:
        k = kk.to(tl.int64)
        kk = kk - 1
        act = k < count
        s_in = s_next.to(tl.int64)
        t = tl.where(const_t >= 0, const_t, t_next)
        kv = kv - 1
        nxt = (kv >= 0) & (kv < count)
        s_next = tl.load(sym_ptr + base + kv * step, mask=nxt, other=0)
        t_next = tl.load(idx_ptr + ibase + kv * step, mask=nxt & (const_t < 0), other=0)
        t_bad = act & ((t < 0) | (t >= n_tables))
        bad = tl.where(t_bad, 1, bad)
        t = tl.where(t_bad | (act == 0), 0, t).to(tl.int64)
        size = tl.load(size_ptr + t).to(tl.int64)
        v = s_in - tl.load(offset_ptr + t).to(tl.int64)
        esc = act & ((v < 0) | (v >= size))
        s = tl.where(esc, size, tl.where(act, v, 0))
        if tl.max(esc.to(tl.int32), axis=0) > 0:
            nesc = nesc + esc.to(tl.int64)
            raw = tl.where(v < 0, 2 * (-(v + 1)) + 1, 2 * (v - size))
            raw = tl.where(esc, raw, 0).to(tl.uint64, bitcast=True)
            nb = _bit_length(raw)
            one = tl.full([BLOCK], 1, tl.uint64)
            for ch in tl.static_range(3):  # raw's bits below its top bit, high chunk first
                pos = 16 * (2 - ch)
                on = esc & (nb - 1 > pos)
                width = tl.minimum(tl.maximum(nb - 1 - pos, 1), 16)
                val = (raw >> pos) & ((one << width.to(tl.uint64)) - 1)
                x, nw = _enc_bits(buf_ptr, x, nw, on, val, width, rend, rstart)
            x, nw = _enc_bits(buf_ptr, x, nw, esc, nb, tl.full([BLOCK], 6, tl.int64), rend, rstart)
        row = t * stride + s
        start = tl.load(cdf_ptr + row, mask=act, other=0)
        f = (tl.load(cdf_ptr + row + 1, mask=act, other=1) - start).to(tl.uint64)
        x, nw = _emit(buf_ptr, x, nw, act & (x >= (f << (64 - P))), rend, rstart)
        if USE_RCP:
            # rcp = (2**64 - 1) // f, so q0 = mulhi(x, rcp) is floor(x / f) or one less
            q = tl.umulhi(x, tl.load(rcp_ptr + row, mask=act, other=0).to(tl.uint64, bitcast=True))
            r = x - q * f
            fix = r >= f
            q = tl.where(fix, q + 1, q)
            r = tl.where(fix, r - f, r)
        else:
            q = x // f
            r = x % f
        x = tl.where(act, (q << P) + r + start.to(tl.uint64), x)
    tl.store(state_ptr + g, x.to(tl.int64, bitcast=True), mask=live)
    tl.store(nwords_ptr + g, nw, mask=live)
    tl.store(esc_ptr + g, nesc, mask=live)
    tl.store(err_ptr + g, bad, mask=live)


@triton.jit
def _refill(stream_ptr, x, pos, end, need):
    """Lanes flagged ``need`` read their next word; returns x, pos and who found none left."""
    ok = need & (pos < end)
    w = tl.load(stream_ptr + pos, mask=ok, other=0).to(tl.uint32, bitcast=True).to(tl.uint64)
    return tl.where(ok, (x << 32) | w, x), pos + ok.to(tl.int64), need & (pos >= end)


@triton.jit
def _dec_bits(stream_ptr, x, pos, end, on, bits):
    """Lanes flagged ``on`` take ``bits`` (1..16) raw bits; returns them, x, pos and underflows."""
    b = bits.to(tl.uint64)
    one = tl.full(x.shape, 1, tl.uint64)
    value = x & ((one << b) - 1)
    x = tl.where(on, x >> b, x)
    x, pos, under = _refill(stream_ptr, x, pos, end, on & (x < (1 << 32)))
    return value, x, pos, under


@triton.jit
def _decode_kernel(stream_ptr, idx_ptr, out_ptr, lane_base_ptr, lane_ibase_ptr, lane_step_ptr, lane_count_ptr,
                   lane_table_ptr, lane_state_ptr, lane_pos_ptr, lane_end_ptr,
                   cdf_ptr, size_ptr, offset_ptr, lut_ptr, err_ptr,
                   n_lanes, stride, n_tables,
                   P: tl.constexpr, BLOCK: tl.constexpr, USE_LUT: tl.constexpr, SEARCH_STEPS: tl.constexpr):
    """Decode BLOCK lanes forwards, each reading its own run of words; per-lane error codes out."""
    g, live, base, ibase, step, count, const_t = _lanes(lane_base_ptr, lane_ibase_ptr, lane_step_ptr, lane_count_ptr,
                                                        lane_table_ptr, n_lanes, BLOCK)
    x = tl.load(lane_state_ptr + g, mask=live, other=1 << 32).to(tl.uint64, bitcast=True)
    pos = tl.load(lane_pos_ptr + g, mask=live, other=0)
    end = tl.load(lane_end_ptr + g, mask=live, other=0)
    err = tl.where(live & (x < (1 << 32)), 5, 0)
    kmax = tl.max(count, axis=0)
    k0 = kmax - kmax  # a while loop: the interpreter's range() fails on numpy >= 2.4
    # the next step's table indexes are loaded one step ahead, to hide their latency
    t_next = tl.load(idx_ptr + ibase, mask=(count > 0) & (const_t < 0), other=0)
    while k0 < kmax:
        k = k0.to(tl.int64)
        k0 = k0 + 1
        act = (k < count) & (err == 0)
        t = tl.where(const_t >= 0, const_t, t_next)
        t_next = tl.load(idx_ptr + ibase + (k + 1) * step, mask=(k + 1 < count) & (const_t < 0), other=0)
        t_bad = act & ((t < 0) | (t >= n_tables))
        err = tl.where(t_bad, 1, err)
        act = act & (t_bad == 0)
        t = tl.where(act, t, 0).to(tl.int64)
        slot = (x & ((1 << P) - 1)).to(tl.int32)
        if USE_LUT:
            s = tl.load(lut_ptr + (t << P) + slot, mask=act, other=0).to(tl.int64)
        else:
            s = tl.zeros([BLOCK], tl.int64)
            for b in tl.static_range(SEARCH_STEPS):
                cand = s + (1 << (SEARCH_STEPS - 1 - b))
                c = tl.load(cdf_ptr + t * stride + cand, mask=act & (cand < stride), other=1 << 30)
                s = tl.where(c <= slot, cand, s)
        row = t * stride + s
        start = tl.load(cdf_ptr + row, mask=act, other=0)
        f = tl.load(cdf_ptr + row + 1, mask=act, other=1) - start
        xn = f.to(tl.uint64) * (x >> P) + (slot - start).to(tl.uint64)
        xn, pos, under = _refill(stream_ptr, xn, pos, end, act & (xn < (1 << 32)))
        err = tl.where(under, 2, err)
        size = tl.load(size_ptr + t).to(tl.int64)
        esc = act & (s == size) & (under == 0)
        v = s
        if tl.max(esc.to(tl.int32), axis=0) > 0:
            nb, xn, pos, under = _dec_bits(stream_ptr, xn, pos, end, esc, tl.full([BLOCK], 6, tl.int64))
            err = tl.where(under, 2, err)
            nbi = nb.to(tl.int64)
            too_long = esc & (under == 0) & (nbi > 34)
            err = tl.where(too_long, 3, err)
            ok = esc & (under == 0) & (too_long == 0)
            one = tl.full([BLOCK], 1, tl.uint64)
            raw = tl.where(ok & (nbi > 0), one << tl.maximum(nbi - 1, 0).to(tl.uint64), 0)
            for ch in tl.static_range(3):  # chunks of raw's lower bits, lowest first
                on = ok & (nbi - 1 > 16 * ch)
                width = tl.minimum(tl.maximum(nbi - 1 - 16 * ch, 1), 16)
                chunk, xn, pos, under = _dec_bits(stream_ptr, xn, pos, end, on, width)
                err = tl.where(under, 2, err)
                ok = ok & (under == 0)
                raw = tl.where(on, raw | (chunk << (16 * ch)), raw)
            ri = raw.to(tl.int64, bitcast=True)
            value = tl.where((ri & 1) == 1, -((ri - 1) >> 1) - 1, (ri >> 1) + size)
            v = tl.where(esc, value, v)
        v = v + tl.load(offset_ptr + t).to(tl.int64)
        out_of_range = act & (err == 0) & ((v < -2147483648) | (v > 2147483647))
        err = tl.where(out_of_range, 3, err)
        tl.store(out_ptr + base + k * step, v.to(tl.int32), mask=act & (err == 0))
        x = tl.where(act, xn, x)
    unclean = live & (err == 0) & ((x != (1 << 32)) | (pos != end))
    err = tl.where(unclean, 4, err)
    tl.store(err_ptr + g, err, mask=live)


def compile_kernels(arch: int = 90, block: int = BLOCK_LANES, num_warps: int = NUM_WARPS,
                    only: Sequence[str] | None = None) -> dict[str, Any]:
    """Compile the kernel variants (all, or those named in ``only``) for CUDA compute capability ``arch``.

    Needs no GPU: Triton's bundled LLVM and ptxas make the cubins, so CI checks the compiled
    path (which the interpreter does not type-check) on machines without CUDA. Variants are
    ``encode_p{12,16}_{rcp,div}`` and ``decode_p{12,16}_{lut16,lut32,search}``.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    i64 = ("lane_base_ptr", "lane_ibase_ptr", "lane_step_ptr", "region_start_ptr", "region_end_ptr", "rcp_ptr",
           "state_ptr", "nwords_ptr", "esc_ptr", "lane_state_ptr", "lane_pos_ptr", "lane_end_ptr")
    scalars = ("n_lanes", "stride", "n_tables")
    out = {}
    variants = [(_encode_kernel, f"encode_p{p}_{'rcp' if r else 'div'}", {"P": p, "BLOCK": block, "USE_RCP": r},
                 "*i32") for p in (12, 16) for r in (True, False)]
    variants += [(_decode_kernel, f"decode_p{p}_{name}", {"P": p, "BLOCK": block, "USE_LUT": name != "search",
                                                          "SEARCH_STEPS": 9}, lut_type)
                 for p in (12, 16) for name, lut_type in (("lut16", "*i16"), ("lut32", "*i32"), ("search", "*i32"))]
    for fn, name, constants, lut_type in variants:
        if only is not None and name not in only:
            continue
        signature = {}
        for arg in fn.arg_names:
            if arg in constants:
                signature[arg] = "constexpr"
            elif arg in scalars:
                signature[arg] = "i32"
            elif arg == "lut_ptr":
                signature[arg] = lut_type
            else:
                signature[arg] = "*i64" if arg in i64 else "*i32"
        out[name] = triton.compile(ASTSource(fn, signature, constants), target=target,
                                   options={"num_warps": num_warps})
    return out


# ============================================================================ tables on the device
@dataclass
class DeviceTables:
    """A `CdfTables` laid out for the kernels on one device."""

    cdf: torch.Tensor       # int32 [T * stride]
    sizes: torch.Tensor     # int32 [T]
    offsets: torch.Tensor   # int32 [T]
    rcp: torch.Tensor       # int64 [T * stride]: (2**64 - 1) // freq, bit-cast (0 past each escape)
    stride: int
    ntables: int
    precision: int
    lut: torch.Tensor | None = None  # int16/int32 [T << P]: slot -> symbol, built for decoding

    @property
    def search_steps(self) -> int:
        """Binary-search steps over a CDF row."""
        return max(1, (self.stride - 1).bit_length())

    def slot_lut(self, use_lut: bool | None = None) -> torch.Tensor | None:
        """The slot -> symbol table (built on first use), or None where it would be too large."""
        if use_lut is None:
            use_lut = self.ntables << self.precision <= LUT_MAX_ENTRIES
        if not use_lut:
            return None
        if self.lut is None:
            total = 1 << self.precision
            cdf = self.cdf.view(self.ntables, self.stride)
            slots = torch.arange(total, dtype=torch.int32, device=cdf.device).expand(self.ntables, total).contiguous()
            sym = torch.searchsorted(cdf, slots, right=True) - 1
            self.lut = sym.to(torch.int16 if self.stride <= 1 << 15 else torch.int32).reshape(-1)
        return self.lut


_TABLES: weakref.WeakKeyDictionary[CdfTables, dict[str, DeviceTables]] = weakref.WeakKeyDictionary()


def device_tables(tables: CdfTables, device: torch.device) -> DeviceTables:
    """``tables`` on ``device`` (cached per table set and device)."""
    per = _TABLES.setdefault(tables, {})
    key = str(device)
    if key not in per:
        freq = np.diff(tables.cdf.astype(np.int64), axis=1)
        rcp = np.zeros(tables.cdf.shape, dtype=np.uint64)
        rcp[:, :-1] = np.where(freq > 0, np.uint64(2 ** 64 - 1) // np.maximum(freq, 1).astype(np.uint64), 0)
        per[key] = DeviceTables(
            cdf=torch.from_numpy(np.ascontiguousarray(tables.cdf).reshape(-1)).to(device),
            sizes=torch.from_numpy(tables.sizes.copy()).to(device),
            offsets=torch.from_numpy(tables.offsets.copy()).to(device),
            rcp=torch.from_numpy(rcp.view(np.int64).reshape(-1)).to(device),
            stride=tables.stride, ntables=tables.num_tables, precision=tables.precision)
    return per[key]


# ============================================================================ host side
def _check_device(device: torch.device) -> None:
    """Raise unless the kernels can run on ``device`` (CUDA, or CPU under the interpreter)."""
    if device.type == "cuda" or (interpreting() and device.type == "cpu"):
        return
    raise EntropyCodingError(f"the Triton rANS kernels need CUDA tensors (or TRITON_INTERPRET=1 for CPU "
                             f"tensors), got a tensor on {device}")


def _launch_on(device: torch.device) -> Any:
    """Context that makes ``device`` current: Triton launches on the current CUDA device."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _block(n_lanes: int) -> tuple[int, int]:
    """(lanes per program, warps per program) for a launch over ``n_lanes`` lanes."""
    if interpreting():
        return int(min(INTERPRET_BLOCK_LANES, triton.next_power_of_2(max(n_lanes, 16)))), 1
    return BLOCK_LANES, NUM_WARPS


def _flat_int32(values: Any, what: str, device: torch.device) -> torch.Tensor:
    """A flat contiguous int32 tensor on ``device``, range-checked like the CPU coder's inputs."""
    if not isinstance(values, torch.Tensor):
        return torch.from_numpy(cpu_rans.as_int32(values, what)).to(device)
    t = values.detach().reshape(-1)
    if t.dtype.is_floating_point:
        if t.numel() and not bool(torch.all(torch.isfinite(t) & (t == torch.round(t)))):
            raise EntropyCodingError(f"{what} must hold integers")
    elif t.dtype.is_complex:
        raise EntropyCodingError(f"{what} must be an integer array, got {t.dtype}")
    if t.dtype != torch.int32:
        if t.numel() and t.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16):
            lo, hi = torch.aminmax(t)
            if float(lo) < INT32_MIN or float(hi) > INT32_MAX:
                raise EntropyCodingError(f"{what} has values outside the int32 range")
        t = t.to(torch.int32)
    return t.to(device).contiguous()


def _scalar_table(value: Any) -> int:
    """A scalar table index checked like the CPU coder (int32 range; must name a table)."""
    return cpu_rans._checked_int(value, "table_index", 0, INT32_MAX)


@dataclass
class _Streams:
    """Streams laid out for the kernels: per-stream facts on the host, per-lane arrays on the device."""

    device: torch.device
    n: list[int]
    lanes: list[int]
    sym: torch.Tensor             # int32, all streams' symbols (or the decoder's output)
    idx: torch.Tensor             # int32, table indexes of the streams that have them (else a dummy)
    idx_views: list[Any]          # per stream: its index tensor, or its scalar table
    first_lane: list[int]
    stream: torch.Tensor          # int64 [G]: stream of each lane
    j: torch.Tensor               # int64 [G]: lane number within its stream
    base: torch.Tensor            # int64 [G]: index of the lane's first symbol in ``sym``
    ibase: torch.Tensor           # int64 [G]: index of its first table index in ``idx``
    step: torch.Tensor            # int64 [G]: its stream's lane count
    count: torch.Tensor           # int32 [G]: its symbol count
    table: torch.Tensor           # int32 [G]: its constant table, or -1 to read ``idx``

    @property
    def n_lanes(self) -> int:
        """Lanes of all streams together."""
        return int(sum(self.lanes))


def _layout(device: torch.device, n: list[int], lanes: list[int], sym: torch.Tensor, idx: torch.Tensor,
            sym_base: list[int], idx_base: list[int], const_table: list[int], idx_views: list[Any]) -> _Streams:
    """Per-lane arrays for streams s of n[s] symbols in lanes[s] lanes (symbol i of a stream: lane i % L)."""
    g = sum(lanes)
    first = np.concatenate([[0], np.cumsum(lanes)[:-1]]).astype(np.int64)

    def per_stream(values: Sequence[int], dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """One value per stream, on the device."""
        return torch.tensor(list(values), dtype=dtype, device=device)

    lanes_t = per_stream(lanes)
    stream = torch.repeat_interleave(torch.arange(len(n), device=device), lanes_t, output_size=g)
    j = torch.arange(g, dtype=torch.int64, device=device) - per_stream(first)[stream]
    step = lanes_t[stream]
    nn = per_stream(n)[stream]
    count = (nn // step + (j < nn % step).to(torch.int64)).to(torch.int32)
    return _Streams(device, list(n), list(lanes), sym, idx, idx_views, first.tolist(), stream, j,
                    per_stream(sym_base)[stream] + j, per_stream(idx_base)[stream] + j, step, count,
                    per_stream(const_table, torch.int32)[stream])


def _check_lanes(lanes: Any, n: int) -> int:
    """The lane count for a stream of n symbols, checked like the C coder does."""
    lanes = gpu_default_lanes(n) if lanes is None else cpu_rans._checked_int(lanes, "lanes", 1, cpu_rans.MAX_LANES)
    if (n > 0 and lanes > n) or (n == 0 and lanes != 1):
        raise EntropyCodingError(f"lanes must be in 1..min(n, 2^24), got {lanes}")
    return lanes


def _prepare_encode(items: Sequence[tuple[Any, Any]], tables: CdfTables, lanes: Any,
                    device: torch.device | None) -> _Streams:
    """Lay out (symbols, table_index) pairs as one set of lanes on one device."""
    if device is None:
        device = next((x.device for pair in items for x in pair if isinstance(x, torch.Tensor)), None)
    if device is None:
        raise EntropyCodingError("the Triton coder needs torch tensors (or a device)")
    device = torch.device(device)
    _check_device(device)
    lane_list = list(lanes) if isinstance(lanes, (list, tuple)) else [lanes] * len(items)
    if len(lane_list) != len(items):
        raise EntropyCodingError(f"{len(lane_list)} lane counts for {len(items)} streams")
    syms, idxs, n, nl, sym_base, idx_base, const, views = [], [], [], [], [], [], [], []
    at = iat = 0
    for (symbols, table_index), lane_arg in zip(items, lane_list):
        s = _flat_int32(symbols, "symbols", device)
        size = s.numel()
        if cpu_rans._is_scalar(table_index):
            k = _scalar_table(table_index)
            if size and k >= tables.num_tables:
                raise EntropyCodingError(f"table_index[0] = {k} is outside 0..{tables.num_tables - 1}")
            const.append(k)
            idx_base.append(0)
            views.append(k)
        else:
            it = _flat_int32(table_index, "table_index", device)
            if it.numel() != size:
                raise EntropyCodingError(f"table_index has {it.numel()} entries for {size} symbols")
            const.append(-1)
            idx_base.append(iat)
            idxs.append(it)
            views.append(it)
            iat += size
        syms.append(s)
        n.append(size)
        nl.append(_check_lanes(lane_arg, size))
        sym_base.append(at)
        at += size
    sym = torch.cat(syms) if len(syms) > 1 else syms[0]
    idx = (torch.cat(idxs) if len(idxs) > 1 else idxs[0]) if idxs else torch.zeros(1, dtype=torch.int32, device=device)
    if sym.numel() == 0:
        sym = torch.zeros(1, dtype=torch.int32, device=device)
    if idx.numel() == 0:
        idx = torch.zeros(1, dtype=torch.int32, device=device)
    return _layout(device, n, nl, sym, idx, sym_base, idx_base, const, views)


def _bad_index_error(streams: _Streams, lane: int, ntables: int) -> EntropyCodingError:
    """The C coder's message for the first out-of-range table index of the stream of ``lane``."""
    s = int(streams.stream[lane])
    view = streams.idx_views[s]
    bad = torch.nonzero((view < 0) | (view >= ntables))
    i = int(bad[-1]) if bad.numel() else 0  # the encoder meets the last one first, as the C coder does
    return EntropyCodingError(f"table_index[{i}] = {int(view[i])} is outside 0..{ntables - 1}")


def _encode_streams(streams: _Streams, tables: CdfTables, use_rcp: bool = True) -> tuple[torch.Tensor, list[int]]:
    """Run the encoder over all lanes and assemble every stream; (int32 words, each stream's word offset)."""
    dt = device_tables(tables, streams.device)
    device, g = streams.device, streams.n_lanes
    budget = torch.tensor([(n // lanes) // 32 + 2 for n, lanes in zip(streams.n, streams.lanes)],
                          dtype=torch.int64, device=device)[streams.stream]
    total = sum(n + 4 * lanes * ((n // lanes) // 32 + 2) for n, lanes in zip(streams.n, streams.lanes))
    state = torch.empty(g, dtype=torch.int64, device=device)
    nw = torch.empty(g, dtype=torch.int64, device=device)
    nesc = torch.empty(g, dtype=torch.int64, device=device)
    err = torch.empty(g, dtype=torch.int32, device=device)
    block, warps = _block(g)
    while True:
        region = streams.count.to(torch.int64) + 4 * budget
        rend = torch.cumsum(region, 0)
        rstart = rend - region
        buf = torch.empty(max(total, 1), dtype=torch.int32, device=device)
        with _launch_on(device):
            _encode_kernel[(triton.cdiv(g, block),)](
                streams.sym, streams.idx, streams.base, streams.ibase, streams.step, streams.count, streams.table,
                rstart, rend, dt.cdf, dt.sizes, dt.offsets, dt.rcp, buf, state, nw, nesc, err,
                g, dt.stride, dt.ntables, P=dt.precision, BLOCK=block, USE_RCP=use_rcp, num_warps=warps)
        over = nesc > budget
        bad_lane, n_over, words = torch.stack([
            torch.where(err != 0, torch.arange(g, device=device), g).min(),
            over.sum(), nw.sum()]).tolist()
        if bad_lane < g:
            raise _bad_index_error(streams, int(bad_lane), dt.ntables)
        if n_over == 0:
            break
        budget = nesc.clone()  # exact escape counts: the second run fits
        total = int(torch.sum(streams.count.to(torch.int64) + 4 * budget))
    return _assemble(streams, dt.precision, state, nw, buf, rend, int(words))


def _assemble(streams: _Streams, precision: int, state: torch.Tensor, nw: torch.Tensor, buf: torch.Tensor,
              rend: torch.Tensor, words: int) -> tuple[torch.Tensor, list[int]]:
    """Header, lane table and payload of every stream, laid end to end as int32 words."""
    device, g, count_s = streams.device, streams.n_lanes, len(streams.n)
    lanes_t = torch.tensor(streams.lanes, dtype=torch.int64, device=device)
    first_t = torch.tensor(streams.first_lane, dtype=torch.int64, device=device)
    cend = torch.cumsum(nw, 0)
    cstart = cend - nw                                   # lane's first word in the joint payload
    stream_payload = cend[first_t + lanes_t - 1] - cstart[first_t]
    stream_words = 4 + 3 * lanes_t + stream_payload
    stream_start = torch.cumsum(stream_words, 0) - stream_words
    out = torch.empty(4 * count_s + 3 * g + words, dtype=torch.int32, device=device)
    head = b"".join(b"NR" + struct.pack("<BBIQ", cpu_rans.FORMAT_VERSION, precision, lanes, n)
                    for n, lanes in zip(streams.n, streams.lanes))
    out[(stream_start[:, None] + torch.arange(4, device=device)).reshape(-1)] = \
        torch.from_numpy(np.frombuffer(head, dtype="<i4").copy()).to(device)
    lane_at = stream_start[streams.stream] + 4 + 2 * streams.j
    out[torch.stack([lane_at, lane_at + 1], 1).reshape(-1)] = state.view(torch.int32)  # little-endian u64
    out[stream_start[streams.stream] + 4 + 2 * lanes_t[streams.stream] + streams.j] = nw.to(torch.int32)
    if words:
        lane_of_word = torch.repeat_interleave(torch.arange(g, device=device), nw, output_size=words)
        p = torch.arange(words, dtype=torch.int64, device=device)
        src_shift = rend - nw - cstart
        dst_shift = (stream_start + 4 + 3 * lanes_t - cstart[first_t])[streams.stream]
        out[p + dst_shift[lane_of_word]] = buf[p + src_shift[lane_of_word]]
    return out, stream_start.tolist()


def _to_outputs(out: torch.Tensor, starts: list[int], as_tensors: bool) -> list[Any]:
    """Split the joint int32 words into each stream's bytes (or uint8 device tensors)."""
    ends = starts[1:] + [out.numel()]
    if as_tensors:
        flat = out.view(torch.uint8)
        return [flat[4 * a: 4 * b] for a, b in zip(starts, ends)]
    host = out.cpu().numpy().astype("<i4", copy=False).tobytes()
    return [host[4 * a: 4 * b] for a, b in zip(starts, ends)]


def encode(symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None,
           use_rcp: bool = True) -> bytes:
    """Code ``symbols[i]`` with ``tables`` row ``table_index[i]`` on the symbols' device; the CPU coder's bytes."""
    return encode_batch([(symbols, table_index)], tables, lanes, use_rcp=use_rcp)[0]


def encode_tensor(symbols: Any, table_index: Any, tables: CdfTables, lanes: int | None = None,
                  use_rcp: bool = True) -> torch.Tensor:
    """Like `encode`, but the stream stays on the device as a uint8 tensor."""
    return encode_batch([(symbols, table_index)], tables, lanes, as_tensors=True, use_rcp=use_rcp)[0]


def encode_batch(streams: Sequence[tuple[Any, Any]], tables: CdfTables, lanes: Any = None,
                 as_tensors: bool = False, device: Any = None, use_rcp: bool = True) -> list[Any]:
    """Code many independent (symbols, table_index) streams in one launch; one stream each.

    ``table_index`` of a stream is a tensor of its length or a scalar table; ``lanes`` is one
    count for all, a list with one per stream, or None for `gpu_default_lanes` of each.
    Returns ``bytes`` per stream, or uint8 device tensors with ``as_tensors``.
    """
    items = list(streams)
    if not items:
        return []
    laid = _prepare_encode(items, tables, lanes, device)
    out, starts = _encode_streams(laid, tables, use_rcp)
    return _to_outputs(out, starts, as_tensors)


def encode_padded(symbols: torch.Tensor, table_index: Any, lengths: Any, tables: CdfTables, lanes: Any = None,
                  as_tensors: bool = False, use_rcp: bool = True) -> list[Any]:
    """Code row b of a padded ``[B, N]`` tensor up to ``lengths[b]`` as stream b, all in one launch.

    ``table_index`` is ``[B, N]`` (padded like the symbols), ``[B]`` (one table per row) or a scalar.
    """
    if symbols.dim() != 2:
        raise EntropyCodingError(f"padded symbols must be [B, N], got shape {tuple(symbols.shape)}")
    rows, width = symbols.shape
    lens = [cpu_rans._checked_int(v, "lengths", 0, width)
            for v in (lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths))]
    if len(lens) != rows:
        raise EntropyCodingError(f"{len(lens)} lengths for {rows} rows")
    if isinstance(table_index, torch.Tensor) and table_index.dim() == 2:
        if tuple(table_index.shape) != (rows, width):
            raise EntropyCodingError("a 2-D table_index must have the symbols' shape")
        items = [(symbols[b, :lens[b]], table_index[b, :lens[b]]) for b in range(rows)]
    else:
        per_row = table_index.tolist() if isinstance(table_index, torch.Tensor) and table_index.dim() == 1 \
            else [table_index] * rows
        if len(per_row) != rows:
            raise EntropyCodingError(f"{len(per_row)} table indexes for {rows} rows")
        items = [(symbols[b, :lens[b]], per_row[b]) for b in range(rows)]
    return encode_batch(items, tables, lanes, as_tensors=as_tensors, device=symbols.device, use_rcp=use_rcp)


# ---------------------------------------------------------------------------- decoding
def _stream_header(data: Any) -> tuple[cpu_rans.StreamHeader, int]:
    """(header, byte length) of a stream given as bytes-like or a uint8 tensor."""
    if isinstance(data, torch.Tensor):
        if data.dtype != torch.uint8:
            raise BitstreamError(f"a stream tensor must be uint8, got {data.dtype}")
        return cpu_rans.read_header(bytes(data[:cpu_rans.HEADER_BYTES].cpu().numpy())), int(data.numel())
    view = memoryview(data)
    return cpu_rans.read_header(bytes(view[:cpu_rans.HEADER_BYTES])), view.nbytes


def _check_stream(header: cpu_rans.StreamHeader, nbytes: int, precision: int, scalar_index: bool) -> None:
    """The checks the C decoder makes before decoding, with its messages."""
    if header.precision != precision:
        raise BitstreamError(f"stream was coded at precision {header.precision}, tables have {precision}")
    if header.lanes < 1 or header.lanes > cpu_rans.MAX_LANES or (header.n > 0 and header.lanes > header.n):
        raise BitstreamError(f"corrupt rANS header: {header.lanes} lanes for {header.n} symbols")
    payload = nbytes - cpu_rans.HEADER_BYTES - cpu_rans.LANE_BYTES * header.lanes
    if payload < 0:
        raise BitstreamError("truncated rANS stream: lane table is cut off")
    if payload % 4:
        raise BitstreamError(f"corrupt rANS stream: {payload} payload bytes are not whole 32-bit words")
    if scalar_index and header.n > cpu_rans.max_symbols(nbytes, precision):
        raise BitstreamError(f"corrupt rANS stream: {nbytes} bytes cannot hold the {header.n} symbols it announces")


def decode_batch(streams: Sequence[Any], table_index: Any, tables: CdfTables, device: Any = None,
                 use_lut: bool | None = None) -> list[torch.Tensor]:
    """Decode many streams (bytes or uint8 tensors) in one launch; an int32 tensor per stream.

    ``table_index`` is one entry per stream (a tensor of its symbol count, or a scalar table)
    or a single scalar for all. The device is ``device``, else that of the first tensor given.
    """
    datas = list(streams)
    if not datas:
        return []
    idx_list = list(table_index) if isinstance(table_index, (list, tuple)) else [table_index] * len(datas)
    if len(idx_list) != len(datas):
        raise EntropyCodingError(f"{len(idx_list)} table indexes for {len(datas)} streams")
    if device is None:
        device = next((x.device for x in [*datas, *idx_list] if isinstance(x, torch.Tensor)), None)
    if device is None:
        raise EntropyCodingError("the Triton decoder needs a device or tensors")
    device = torch.device(device)
    _check_device(device)
    dt = device_tables(tables, device)
    n, lanes, sym_base, idx_base, const, views, idxs, word_at, sizes = [], [], [], [], [], [], [], [], []
    at = iat = wat = 0
    for data, ti in zip(datas, idx_list):
        header, nbytes = _stream_header(data)
        sizes.append(nbytes)
        scalar = cpu_rans._is_scalar(ti)
        _check_stream(header, nbytes, tables.precision, scalar)
        if scalar:
            k = _scalar_table(ti)
            if header.n and k >= tables.num_tables:
                raise BitstreamError(f"table_index[0] is outside 0..{tables.num_tables - 1}")
            const.append(k)
            idx_base.append(0)
            views.append(k)
        else:
            it = _flat_int32(ti, "table_index", device)
            if it.numel() != header.n:
                raise BitstreamError(f"stream holds {header.n} symbols, {it.numel()} table indexes were given")
            const.append(-1)
            idx_base.append(iat)
            idxs.append(it)
            views.append(it)
            iat += header.n
        n.append(header.n)
        lanes.append(header.lanes)
        sym_base.append(at)
        word_at.append(wat)
        at += header.n
        wat += nbytes // 4
    pieces = [d.detach().reshape(-1).to(device) if isinstance(d, torch.Tensor)
              else torch.frombuffer(bytearray(d), dtype=torch.uint8).to(device) for d in datas]
    raw = pieces[0].contiguous() if len(pieces) == 1 else torch.cat(pieces)
    if raw.storage_offset() % 4:
        raw = raw.clone()  # a view at an odd byte offset cannot be read as 32-bit words
    words = raw.view(torch.int32)
    out = torch.empty(max(at, 1), dtype=torch.int32, device=device)
    idx = (torch.cat(idxs) if len(idxs) > 1 else idxs[0]) if idxs else torch.zeros(1, dtype=torch.int32, device=device)
    if idx.numel() == 0:
        idx = torch.zeros(1, dtype=torch.int32, device=device)
    laid = _layout(device, n, lanes, out, idx, sym_base, idx_base, const, views)
    g = laid.n_lanes
    lanes_t = laid.step
    ws = torch.tensor(word_at, dtype=torch.int64, device=device)[laid.stream]
    table_at = ws + 4 + 2 * laid.j
    state = (words[table_at].to(torch.int64) & 0xFFFFFFFF) | (words[table_at + 1].to(torch.int64) << 32)
    counts = words[ws + 4 + 2 * lanes_t + laid.j].to(torch.int64) & 0xFFFFFFFF
    cend = torch.cumsum(counts, 0)
    cstart = cend - counts
    first_t = torch.tensor(laid.first_lane, dtype=torch.int64, device=device)
    pos = ws + 4 + 3 * lanes_t + cstart - cstart[first_t][laid.stream]
    end = pos + counts
    announced = (cend[first_t + torch.tensor(lanes, device=device) - 1] - cstart[first_t]).tolist()
    for w, stream_lanes, nbytes in zip(announced, lanes, sizes):
        have = nbytes - cpu_rans.HEADER_BYTES - cpu_rans.LANE_BYTES * stream_lanes
        if 4 * w != have:
            raise BitstreamError(f"corrupt rANS stream: lanes announce {4 * w} payload bytes, stream holds {have}")
    err = torch.empty(g, dtype=torch.int32, device=device)
    lut = dt.slot_lut(use_lut)
    block, warps = _block(g)
    with _launch_on(device):
        _decode_kernel[(triton.cdiv(g, block),)](
            words, laid.idx, out, laid.base, laid.ibase, laid.step, laid.count, laid.table, state, pos, end,
            dt.cdf, dt.sizes, dt.offsets, lut if lut is not None else dt.sizes, err,
            g, dt.stride, dt.ntables, P=dt.precision, BLOCK=block, USE_LUT=lut is not None,
            SEARCH_STEPS=dt.search_steps, num_warps=warps)
    first_bad = int(torch.where(err != 0, torch.arange(g, device=device), g).min())
    if first_bad < g:
        raise _decode_error(laid, err, int(first_bad), dt.ntables)
    return [out[a: a + k] for a, k in zip(sym_base, n)]


def _decode_error(laid: _Streams, err: torch.Tensor, lane: int, ntables: int) -> BitstreamError:
    """A BitstreamError for the first failing lane (start-state errors first, as the C decoder checks them first)."""
    starts = torch.nonzero(err == _ERR_START)
    if starts.numel():
        lane = int(starts[0])
        return BitstreamError(f"corrupt rANS stream: lane {int(laid.j[lane])} starts in an invalid state")
    code, j = int(err[lane]), int(laid.j[lane])
    if code == _ERR_INDEX:
        return BitstreamError(f"a table index of lane {j} is outside 0..{ntables - 1}")
    if code == _ERR_UNDERFLOW:
        return BitstreamError(f"corrupt rANS stream: lane {j} ran out of words")
    if code == _ERR_ESCAPE:
        return BitstreamError(f"corrupt rANS stream: invalid escape in lane {j}")
    return BitstreamError(f"corrupt rANS stream: lane {j} does not end where its encoder began")


def decode(data: Any, table_index: Any, tables: CdfTables, count: int | None = None, device: Any = None,
           use_lut: bool | None = None) -> torch.Tensor:
    """Decode a whole stream (bytes or a uint8 tensor) on the GPU; an int32 tensor on ``device``."""
    if count is not None:
        n = _stream_header(data)[0].n
        if count != n:
            raise BitstreamError(f"stream holds {n} symbols, {count} were expected")
    return decode_batch([data], [table_index], tables, device=device, use_lut=use_lut)[0]
