"""Autoregressive entropy model (ARM) of the latent grids, and its bit-exact coder.

Model. Each latent is coded with a Laplace whose mean and scale a small MLP predicts from a
causal neighbourhood of already-decoded latents of the same grid (`CONTEXTS`; zero outside the
grid). The MLP is an ``nn.Sequential`` of 1x1 ``Conv2d`` and ``ReLU``; in training its layers run as matrix
products on the ``[N, C]`` neighbour rows of all levels at once (one ARM serves every level).

Coding (bit-exact on any device). The MLP is evaluated by `ncodec.models.exact.ExactNetwork` on the
gathered integer neighbours laid out as ``[1, C, N, 1]`` (N latents as pixels of a 1x1-conv
"image"), so its outputs are integers ``q / 2**14`` that depend only on the weights and the
latents. They become coding tables with integer operations only (`coding_params`): the mean
is rounded (half up) to the 1/8 grid, ``mu8 = (q_mu + 2**10) >> 11``; the latent is sent as
``y - (mu8 >> 3)`` with the centre ``(mu8 & 7) / 8``; the log-scale picks the nearest rung,
``k = clamp((q_s - round(L0 * 2**14) + 2**10) >> 11, 0, 63)``, of `tables.latent_tables`.

Decoding order. A latent depends on neighbours above (rows -3..-1, columns -2..+2) and to its
left, so all latents with the same ``t = x + 3 y`` (an anti-diagonal wavefront with slope 3)
are independent and decode together; the wavefronts of all levels with the same ``t`` are
batched too. A 512x768 image has ``768 + 3 * 511 = 2301`` such steps, each one exact ARM
evaluation on up to ~250 latents and one call of the rANS decoder. The encoder codes the
symbols in that order: for t = 0, 1, ...: for each level, finest first: by row.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...entropy import rans
from ...entropy.conditional import laplace_cdf
from ...entropy.model import lower_bound
from ...errors import BitstreamError, EntropyCodingError, Error
from ..exact import ExactNetwork
from . import tables as tb

Offsets = tuple[tuple[int, int], ...]
# Causal neighbourhoods (dy, dx): same row to the left, rows above within dx <= 2.
CONTEXTS: dict[int, Offsets] = {
    8: ((0, -2), (0, -1), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-2, 0)),
    12: ((0, -2), (0, -1), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
         (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2)),
    16: ((0, -3), (0, -2), (0, -1), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
         (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-3, -1), (-3, 0), (-3, 1)),
}
PAD_TOP, PAD_LEFT, PAD_RIGHT = 3, 3, 2   # covers every neighbourhood above
LATENT_MAX = 4096                        # |latent| bound: the encoder clamps, the decoder checks
FRAC_BITS = 14                           # ExactNetwork's fixed point
LIKELIHOOD_FLOOR = 2.0 ** -16            # a 16-bit table codes nothing below this
_L0_Q = int(tb.LATENT_LOG_SCALE_MIN * 2 ** FRAC_BITS)
_LOG_SCALE_MAX = float(tb.latent_log_scale(tb.LATENT_RUNGS - 1))


def wavefront_slope(offsets: Offsets) -> int:
    """The a in ``t = x + a y`` for which every neighbour has a smaller t than the latent."""
    if any(dy > 0 or (dy == 0 and dx >= 0) for dy, dx in offsets):
        raise ValueError("context offsets must be causal (rows above, or to the left in the same row)")
    return max([dx for dy, dx in offsets if dy < 0] + [0]) + 1


class Arm(nn.Module):
    """The ARM: an MLP (as 1x1 convs) from ``context`` causal neighbours to (mean, log-scale)."""

    def __init__(self, context: int = 16, hidden: int = 16, layers: int = 2):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"ARM context must be one of {sorted(CONTEXTS)}, got {context}")
        self.offsets = CONTEXTS[context]
        widths = [context] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Conv2d(a, b, 1), nn.ReLU()]
        body.append(nn.Conv2d(widths[-1], 2, 1))
        self.net = nn.Sequential(*body)
        with torch.no_grad():
            out = self.net[-1]
            assert isinstance(out, nn.Conv2d)
            out.weight.mul_(0.1)
            out.bias.zero_()

    def context(self, grid: Tensor) -> Tensor:
        """[1, 1, h, w] -> [h * w, C]: column c holds each latent's neighbour ``offsets[c]`` (0 outside).

        Stacked shifted views of the zero-padded grid: 3-4x faster than unfold + gather, forward and backward.
        """
        h, w = grid.shape[-2:]
        padded = F.pad(grid[0, 0], (PAD_LEFT, PAD_RIGHT, PAD_TOP, 0))
        shifted = [padded[PAD_TOP + dy:PAD_TOP + dy + h, PAD_LEFT + dx:PAD_LEFT + dx + w] for dy, dx in self.offsets]
        return torch.stack(shifted, dim=-1).reshape(h * w, len(self.offsets))

    def mlp(self, ctx: Tensor) -> Tensor:
        """The network on neighbour rows ``[N, C]`` -> ``[N, 2]`` (the 1x1 convs as matrix products)."""
        x = ctx
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                x = F.linear(x, layer.weight.flatten(1), layer.bias)
            else:
                x = layer(x)
        return x

    def forward(self, grid: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-scale) of every latent of a [1, 1, h, w] grid, each [1, 1, h, w]."""
        out = self.mlp(self.context(grid)).t().reshape(1, 2, *grid.shape[-2:])
        return out[:, :1], out[:, 1:]

    def rate_bits(self, grids: list[Tensor]) -> Tensor:
        """Bits of (proxy-)quantized grids under the Laplace the ARM predicts (differentiable)."""
        ctx = torch.cat([self.context(g) for g in grids])
        y = torch.cat([g.reshape(-1) for g in grids])
        out = self.mlp(ctx)
        mu, raw = out[:, 0], out[:, 1]
        log_b = lower_bound(raw, tb.LATENT_LOG_SCALE_MIN).clamp(max=_LOG_SCALE_MAX)
        b = torch.exp(log_b)
        v = (y - mu).abs()
        p = laplace_cdf((0.5 - v) / b) - laplace_cdf((-0.5 - v) / b)
        return -torch.log2(lower_bound(p, LIKELIHOOD_FLOOR)).sum()

    def macs_per_latent(self) -> int:
        return sum(m.weight.numel() for m in self.net if isinstance(m, nn.Conv2d))


# ----------------------------------------------------------------------------- exact coding
def coding_params(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ARM outputs ``q [2, N]`` (mean, log-scale, in 2**-14) -> (integer base, table index)."""
    shift = FRAC_BITS - tb.MEAN_FRAC_BITS
    mu8 = np.clip((q[0] + (1 << (shift - 1))) >> shift, -tb.MEAN_OFFSETS * LATENT_MAX,
                  tb.MEAN_OFFSETS * LATENT_MAX)
    step = FRAC_BITS - tb.LOG_SCALE_STEP_BITS
    rung = np.clip((q[1] - _L0_Q + (1 << (step - 1))) >> step, 0, tb.LATENT_RUNGS - 1)
    table = rung * tb.MEAN_OFFSETS + (mu8 & (tb.MEAN_OFFSETS - 1))
    return mu8 >> tb.MEAN_FRAC_BITS, table.astype(np.int32)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (the results are exact either way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Layout:
    """Where every latent of every level lives in one flat, padded int64 buffer, in decoding order."""

    def __init__(self, shapes: list[tuple[int, int]], offsets: Offsets):
        slope = wavefront_slope(offsets)
        starts, strides, pos, lvl, wave = [], [], [], [], []
        base = 0
        for lv, (h, w) in enumerate(shapes):
            stride = w + PAD_LEFT + PAD_RIGHT
            ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
            pos.append(base + (ys + PAD_TOP) * stride + xs + PAD_LEFT)
            wave.append(xs + slope * ys)
            lvl.append(np.full(h * w, lv, dtype=np.int64))
            starts.append(base)
            strides.append(stride)
            base += (h + PAD_TOP) * stride
        self.size = base
        self.level_start, self.level_stride = starts, strides
        wave_all, lvl_all, pos_all = np.concatenate(wave), np.concatenate(lvl), np.concatenate(pos)
        order = np.lexsort((pos_all, lvl_all, wave_all))          # by wave, then level, then raster
        self.pos, self.lvl = pos_all[order], lvl_all[order]
        self.wave_starts = np.searchsorted(wave_all[order], np.arange(int(wave_all.max()) + 2))
        self.neighbours = np.array([[dy * s + dx for dy, dx in offsets] for s in strides], dtype=np.int64)
        self.shapes = shapes

    def gather(self, buf: np.ndarray, sl: slice) -> np.ndarray:
        """Neighbour values ``[C, n]`` of the latents ``sl`` of the decoding order."""
        return buf[(self.pos[sl, None] + self.neighbours[self.lvl[sl]]).T]

    def grids(self, buf: np.ndarray) -> list[np.ndarray]:
        """The levels' [h, w] grids out of the padded buffer."""
        out = []
        for (h, w), start, stride in zip(self.shapes, self.level_start, self.level_stride):
            block = buf[start:start + (h + PAD_TOP) * stride].reshape(h + PAD_TOP, stride)
            out.append(block[PAD_TOP:, PAD_LEFT:PAD_LEFT + w].copy())
        return out

    def fill(self, grids: list[np.ndarray]) -> np.ndarray:
        """A padded buffer holding ``grids``."""
        buf = np.zeros(self.size, dtype=np.int64)
        for g, start, stride in zip(grids, self.level_start, self.level_stride):
            h, w = g.shape
            block = buf[start:start + (h + PAD_TOP) * stride].reshape(h + PAD_TOP, stride)
            block[PAD_TOP:, PAD_LEFT:PAD_LEFT + w] = g
        return buf


class ArmCoder:
    """Bit-exact coding of integer latent grids with an ARM (see the module docstring)."""

    def __init__(self, arm: Arm):
        self.offsets = arm.offsets
        net = copy.deepcopy(arm.net).cpu()
        try:
            self.exact = ExactNetwork(net)
        except Error as exc:
            raise EntropyCodingError(f"the ARM cannot be evaluated exactly: {exc}") from None

    def evaluate(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(base, table) of latents with neighbours ``ctx [C, n]`` (int64), through the exact network."""
        x = torch.from_numpy(ctx.astype(np.float64)).view(1, ctx.shape[0], ctx.shape[1], 1)
        out = self.exact(x).view(2, -1).numpy()
        q = np.rint(out * float(1 << FRAC_BITS)).astype(np.int64)  # exact: out is q / 2**14
        return coding_params(q)

    def symbols(self, grids: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(symbols, table indexes) of all latents in decoding order: what `encode` codes."""
        layout = _Layout([tuple(g.shape) for g in grids], self.offsets)  # type: ignore[misc]
        buf = layout.fill([np.asarray(g, dtype=np.int64) for g in grids])
        n = layout.pos.size
        base, table = self.evaluate(layout.gather(buf, slice(0, n)))
        return buf[layout.pos] - base, table

    def encode(self, grids: list[np.ndarray]) -> bytes:
        """One rANS stream of the integer grids (finest first; |values| <= LATENT_MAX)."""
        if any(np.abs(g).max(initial=0) > LATENT_MAX for g in grids):
            raise EntropyCodingError(f"latents must lie within +-{LATENT_MAX}")
        sym, table = self.symbols(grids)
        return rans.encode(sym, table, tb.latent_tables())

    def decode(self, data: bytes | memoryview, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
        """The integer grids of ``shapes`` from `encode`'s stream, one wavefront at a time."""
        layout = _Layout(shapes, self.offsets)
        n = layout.pos.size
        tables = tb.latent_tables()
        dec = rans.Decoder(data, tables)
        if dec.header.n != n:
            raise BitstreamError(f"latent stream holds {dec.header.n} symbols, the grids need {n}")
        if n > rans.max_symbols(len(data), tables.precision):
            raise BitstreamError(f"corrupt latent stream: {len(data)} bytes cannot hold {n} symbols")
        buf = np.zeros(layout.size, dtype=np.int64)
        ws = layout.wave_starts
        with _one_thread():   # wavefronts are tiny: thread start-up would cost more than the work
            for t in range(ws.size - 1):
                sl = slice(int(ws[t]), int(ws[t + 1]))
                if sl.start == sl.stop:
                    continue
                base, table = self.evaluate(layout.gather(buf, sl))
                values = dec.decode(table).astype(np.int64) + base
                if np.abs(values).max() > LATENT_MAX:
                    raise BitstreamError("corrupt latent stream: a latent is out of range")
                buf[layout.pos[sl]] = values
        dec.finish()
        return layout.grids(buf)
