"""Learned integer lifting (iWave-style): 5/3 lifting steps plus trainable CNN corrections.

Each level splits a signal along one dim into even samples ``s`` and odd samples ``d``, then

    predict:  d <- d + floor(-1/2 (s[i] + s[i+1]) + P(s)[i] + 1/2)
    update:   s <- s + floor( 1/4 (d[i-1] + d[i]) + U(d)[i] + 1/2)

``P`` and ``U`` are small CNNs that see a window of ``2 * taps`` samples along the lifting dim
and 3 samples across it, so the prediction is non-separable and data-adaptive. Whatever the
networks compute, each step is undone by subtracting the same quantity: the transform is
reversible by construction. With zero networks it is exactly JPEG 2000's 5/3.

The decoder must compute ``P`` and ``U`` bit for bit as the encoder did, so in coding (eval
mode) they run through `ncodec.models.exact.ExactNetwork` (integer arithmetic, identical on every
device). In training they run in float and the rounding passes gradients straight through.
Networks see samples divided by ``scale`` (2**bit_depth) and their output is multiplied back:
both powers of two, so exact.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .exact import ExactNetwork

__all__ = ["LearnedLifting", "rate_proxy"]


def _step_net(taps: int, hidden: int) -> nn.Sequential:
    """A lifting correction: (2 taps x 3) window -> hidden -> hidden -> 1, leaky ReLUs between."""
    net = nn.Sequential(nn.Conv2d(1, hidden, (2 * taps, 3)), nn.LeakyReLU(0.125),
                        nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(0.125), nn.Conv2d(hidden, 1, 1))
    nn.init.zeros_(net[-1].weight)  # start as plain 5/3
    nn.init.zeros_(net[-1].bias)
    return net


def _round_ste(x: Tensor) -> Tensor:
    """floor(x + 1/2), with the identity's gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


class LearnedLifting(nn.Module):
    """Integer-reversible lifting with learned predict/update corrections, one pair per level.

    Use it as the ``lifting`` argument of `ncodec.transforms.wavelet.forward` / `inverse` (it provides
    ``forward_1d`` / ``inverse_1d``); `levels` sets how many levels have their own networks
    (deeper levels reuse the last pair).
    """

    integer = True

    def __init__(self, levels: int = 5, taps: int = 2, hidden: int = 16, bit_depth: int = 8):
        super().__init__()
        if not (1 <= levels <= 16 and 1 <= taps <= 8 and 1 <= hidden <= 256 and 1 <= bit_depth <= 16):
            raise ValueError("LearnedLifting needs 1 <= levels <= 16, 1 <= taps <= 8, 1 <= hidden <= 256, "
                             "1 <= bit_depth <= 16")
        self.levels, self.taps, self.hidden, self.bit_depth = int(levels), int(taps), int(hidden), int(bit_depth)
        self.scale = float(2 ** self.bit_depth)
        self.predict = nn.ModuleList(_step_net(self.taps, self.hidden) for _ in range(self.levels))
        self.update_step = nn.ModuleList(_step_net(self.taps, self.hidden) for _ in range(self.levels))
        self._level = 0

    @property
    def name(self) -> str:
        return f"learned-{self.levels}x{self.taps}x{self.hidden}"

    # ------------------------------------------------------------ levels
    def at_level(self, level: int) -> LearnedLifting:
        """Select the networks of a decomposition level (0 = finest) for the next 1D calls."""
        self._level = min(int(level), self.levels - 1)
        return self

    def _exact(self, net: nn.Sequential) -> ExactNetwork:
        cache = self.__dict__.setdefault("_exact_nets", {})
        key = id(net)
        if key not in cache:
            cache[key] = ExactNetwork(net)
        return cache[key]

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> LearnedLifting:
        self.__dict__.pop("_exact_nets", None)
        return super()._apply(fn, *args, **kwargs)

    def _correction(self, net: nn.Sequential, source: Tensor, top: int, bottom: int, rows: int) -> Tensor:
        """``net`` over windows of ``source`` [N, L, W] (replicate-padded along L by top/bottom, along W by 1),
        first ``rows`` outputs, in sample units: float64 exact in eval, float (with grads) in training."""
        x = source.unsqueeze(1)
        x = x.to(torch.float64) / self.scale if not self.training else x.float() / self.scale
        x = F.pad(x, (1, 1, top, bottom), mode="replicate")
        if self.training:
            out = net(x)
        else:
            out = self._exact(net)(x)
        return out[:, 0, :rows] * self.scale

    # ------------------------------------------------------- lifting steps
    def _base_predict(self, s: Tensor, count: int) -> Tensor:
        idx = torch.arange(count, device=s.device)
        a, b = s[:, idx.clamp(max=s.shape[1] - 1)], s[:, (idx + 1).clamp(max=s.shape[1] - 1)]
        return -0.5 * (a + b)

    def _base_update(self, d: Tensor, count: int) -> Tensor:
        idx = torch.arange(count, device=d.device)
        a, b = d[:, (idx - 1).clamp(0, d.shape[1] - 1)], d[:, idx.clamp(max=d.shape[1] - 1)]
        return 0.25 * (a + b)

    def _deltas(self, s: Tensor, d: Tensor, which: str) -> Tensor:
        """The integer amount a step adds: predict (to d, from s) or update (to s, from d)."""
        level = self._level
        if which == "predict":
            base = self._base_predict(s, d.shape[1])
            corr = self._correction(self.predict[level], s, self.taps - 1, self.taps, d.shape[1])
        else:
            base = self._base_update(d, s.shape[1])
            corr = self._correction(self.update_step[level], d, self.taps, self.taps - 1, s.shape[1])
            if corr.shape[1] < s.shape[1]:  # (cannot happen: L_d + 1 >= L_s) kept for clarity
                corr = F.pad(corr, (0, 0, 0, s.shape[1] - corr.shape[1]))
        total = base.to(corr.dtype) + corr
        return _round_ste(total) if self.training else torch.floor(total + 0.5)

    @staticmethod
    def _to_rows(x: Tensor, dim: int) -> tuple[Tensor, tuple[int, ...]]:
        """x as [N, L, W] with ``dim`` along L (W: the last other dim, 1 for 1D), and the moved shape."""
        if x.dim() == 1:
            return x.reshape(1, -1, 1), (x.shape[0], 1)
        moved = x.transpose(-1, -2) if dim % x.dim() == x.dim() - 1 else x.movedim(dim, -2)
        return moved.reshape(-1, moved.shape[-2], moved.shape[-1]), tuple(moved.shape)

    @staticmethod
    def _from_rows(v: Tensor, shape: tuple[int, ...], rows: int, dim: int, ndim: int) -> Tensor:
        """Inverse of `_to_rows` for a result with ``rows`` samples along ``dim``."""
        if ndim == 1:
            return v.reshape(-1)
        out = v.reshape(*shape[:-2], rows, shape[-1])
        return out.transpose(-1, -2) if dim % ndim == ndim - 1 else out.movedim(-2, dim)

    def forward_1d(self, x: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
        """One level along ``dim``: (low, high), integer-valued (int64 in eval, float in training)."""
        v, shape = self._to_rows(x, dim)
        v = v if self.training else v.long()
        s, d = v[:, 0::2], v[:, 1::2]
        if d.shape[1]:
            d = d + self._deltas(s, d, "predict").to(d.dtype)
            s = s + self._deltas(s, d, "update").to(s.dtype)
        return (self._from_rows(s, shape, s.shape[1], dim, x.dim()),
                self._from_rows(d, shape, d.shape[1], dim, x.dim()))

    def inverse_1d(self, low: Tensor, high: Tensor, dim: int = -1) -> Tensor:
        """Inverse of `forward_1d` (exact in eval mode)."""
        s, shape = self._to_rows(low, dim)
        d, _ = self._to_rows(high, dim)
        if not self.training:
            s, d = s.long(), d.long()
        if d.shape[1]:
            s = s - self._deltas(s, d, "update").to(s.dtype)
            d = d - self._deltas(s, d, "predict").to(d.dtype)
        out = s.new_empty((s.shape[0], s.shape[1] + d.shape[1], s.shape[2]))
        out[:, 0::2], out[:, 1::2] = s, d
        return self._from_rows(out, shape, out.shape[1], dim, low.dim())

    def config(self) -> dict[str, int]:
        """What rebuilds this module (weights aside)."""
        return {"levels": self.levels, "taps": self.taps, "hidden": self.hidden, "bit_depth": self.bit_depth}


def rate_proxy(details: list[dict[str, Tensor]]) -> Tensor:
    """Bits per coefficient a Laplacian coder with one scale per band would spend (up to a constant):
    ``sum_b n_b log2(mean |d_b|)`` / total count. Differentiable; the training objective."""
    total, count = 0.0, 0
    for level in details:
        for band in level.values():
            n = band.numel()
            if n:
                total = total + n * torch.log2(band.abs().mean() + 0.5)
                count += n
    return total / max(count, 1) if count else torch.zeros(())  # type: ignore[return-value]
