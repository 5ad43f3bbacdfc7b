"""Wavelet transforms by lifting: integer 5/3 (reversible), integer and float CDF 9/7, 1D/2D/3D.

A transform is a list of two-tap lifting steps: predict steps add ``c * (s[i] + s[i+1])``
to the odd samples, update steps add ``c * (d[i-1] + d[i])`` to the even ones, with
whole-sample symmetric extension at the borders, so any length works (odd too). Integer
transforms apply each step in fixed point, ``(C * (a + b) + 2**(F-1)) >> F`` with
``C = round(c * 2**F)``, exactly invertible and the same on every device; with F = 15 the
5/3 steps are exactly JPEG 2000's ``floor((a + b) / 2)`` and ``floor((a + b + 2) / 4)``.
Float transforms scale the bands by K and 1/K afterwards (orthonormal-like gains).
Everything runs batched on torch tensors along any dims, on CPU or GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

FIXED_POINT_BITS = 15


@dataclass(frozen=True)
class Lifting:
    """A lifting scheme: alternating predict / update coefficients, integer or float, band scaling."""

    name: str
    steps: tuple[float, ...]     # predict, update, predict, update, ...
    integer: bool
    scale: float = 1.0           # float only: low band * scale, high band / scale

    def fixed(self) -> tuple[int, ...]:
        return tuple(int(round(c * (1 << FIXED_POINT_BITS))) for c in self.steps)


LE_GALL_53 = Lifting("5/3", (-0.5, 0.25), integer=True)
_A, _B, _G, _D, _K = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971, 1.230174104914001
CDF_97 = Lifting("9/7", (_A, _B, _G, _D), integer=False, scale=_K)
CDF_97_INT = Lifting("9/7-int", (_A, _B, _G, _D), integer=True)
TRANSFORMS = {t.name: t for t in (LE_GALL_53, CDF_97, CDF_97_INT)}


def _neighbours(v: Tensor, count: int, shift: int) -> tuple[Tensor, Tensor]:
    """For predict (shift=0): s[i], s[i+1]; for update (shift=-1): d[i-1], d[i], both mirrored at the ends."""
    n = v.shape[0]
    idx = torch.arange(count, device=v.device)
    first = (idx + shift).clamp(0, n - 1) if shift < 0 else idx.clamp(max=n - 1)
    second = idx.clamp(max=n - 1) if shift < 0 else (idx + 1).clamp(max=n - 1)
    return v[first], v[second]


def _step(target: Tensor, source: Tensor, coefficient: float, fixed: int, integer: bool, predict: bool,
          sign: int) -> Tensor:
    a, b = _neighbours(source, target.shape[0], 0 if predict else -1)
    if integer:
        delta = (fixed * (a + b) + (1 << (FIXED_POINT_BITS - 1))) >> FIXED_POINT_BITS
    else:
        delta = coefficient * (a + b)
    return target + sign * delta


def forward_1d(x: Tensor, dim: int = -1, lifting: Lifting = LE_GALL_53) -> tuple[Tensor, Tensor]:
    """One level along ``dim``: (low, high) bands of sizes ceil(n/2) and floor(n/2)."""
    v = x.movedim(dim, 0)
    v = v.long() if lifting.integer else (v if v.is_floating_point() else v.double())
    s, d = v[0::2], v[1::2]
    if d.shape[0]:
        for i, (c, f) in enumerate(zip(lifting.steps, lifting.fixed())):
            if i % 2 == 0:
                d = _step(d, s, c, f, lifting.integer, predict=True, sign=1)
            else:
                s = _step(s, d, c, f, lifting.integer, predict=False, sign=1)
        if not lifting.integer:
            s, d = s * lifting.scale, d / lifting.scale
    return s.movedim(0, dim), d.movedim(0, dim)


def inverse_1d(low: Tensor, high: Tensor, dim: int = -1, lifting: Lifting = LE_GALL_53) -> Tensor:
    """Inverse of `forward_1d`."""
    s, d = low.movedim(dim, 0), high.movedim(dim, 0)
    if d.shape[0]:
        if not lifting.integer:
            s, d = s / lifting.scale, d * lifting.scale
        for i in reversed(range(len(lifting.steps))):
            c, f = lifting.steps[i], lifting.fixed()[i]
            if i % 2 == 0:
                d = _step(d, s, c, f, lifting.integer, predict=True, sign=-1)
            else:
                s = _step(s, d, c, f, lifting.integer, predict=False, sign=-1)
    out = s.new_empty((s.shape[0] + d.shape[0], *s.shape[1:]))
    out[0::2], out[1::2] = s, d
    return out.movedim(0, dim)


@dataclass
class Subbands:
    """A multi-level decomposition over ``dims``: the final all-low band and, per level (finest
    first), the detail bands keyed by their low/high pattern along the dims ('HL', 'LH', 'HH' in
    2D with the first letter along the last dim, as JPEG 2000 names them)."""

    low: Tensor
    details: list[dict[str, Tensor]]
    dims: tuple[int, ...]

    @property
    def ll(self) -> Tensor:
        return self.low


def _forward_1d(x: Tensor, dim: int, lifting: Any) -> tuple[Tensor, Tensor]:
    """A fixed `Lifting`, or any object with its own ``forward_1d`` (e.g. `LearnedLifting`)."""
    return forward_1d(x, dim, lifting) if isinstance(lifting, Lifting) else lifting.forward_1d(x, dim)


def _inverse_1d(low: Tensor, high: Tensor, dim: int, lifting: Any) -> Tensor:
    return inverse_1d(low, high, dim, lifting) if isinstance(lifting, Lifting) else lifting.inverse_1d(low, high, dim)


def _at_level(lifting: Any, level: int) -> None:
    """Tell a per-level lifting scheme (one with ``at_level``) which level comes next."""
    if hasattr(lifting, "at_level"):
        lifting.at_level(level)


def _split(x: Tensor, dims: Sequence[int], lifting: Lifting) -> dict[str, Tensor]:
    """All 2**len(dims) bands of one level; keys read the dims from last to first."""
    bands = {"": x}
    for dim in reversed(dims):
        nxt = {}
        for key, band in bands.items():
            low, high = _forward_1d(band, dim, lifting)
            nxt[key + "L"], nxt[key + "H"] = low, high
        bands = nxt
    return bands


def _merge(bands: dict[str, Tensor], dims: Sequence[int], lifting: Lifting) -> Tensor:
    for step, dim in enumerate(dims):
        keep = len(dims) - 1 - step
        nxt = {}
        for key in {k[:keep] for k in bands}:
            nxt[key] = _inverse_1d(bands[key + "L"], bands[key + "H"], dim, lifting)
        bands = nxt
    return bands[""]


def forward(x: Tensor | np.ndarray, levels: int, dims: Sequence[int] = (-2, -1),
            lifting: Lifting = LE_GALL_53) -> Subbands:
    """``levels`` octaves over ``dims`` (1, 2 or 3 of them); stops early once every dim has length 1."""
    t = torch.as_tensor(x)
    dims = tuple(d % t.ndim for d in dims)
    low, details = t, []
    for level in range(levels):
        if all(low.shape[d] < 2 for d in dims):
            break
        _at_level(lifting, level)
        bands = _split(low, dims, lifting)
        low = bands.pop("L" * len(dims))
        details.append(bands)
    if not details:
        low = low.long() if getattr(lifting, "integer", True) else (low if low.is_floating_point() else low.double())
    return Subbands(low, details, dims)


def inverse(bands: Subbands, lifting: Lifting = LE_GALL_53) -> Tensor:
    """Inverse of `forward`."""
    low = bands.low
    for index in reversed(range(len(bands.details))):
        _at_level(lifting, index)
        low = _merge({**bands.details[index], "L" * len(bands.dims): low}, bands.dims, lifting)
    return low


def band_shapes(shape: Sequence[int], levels: int, dims: Sequence[int] = (-2, -1)) -> tuple[tuple[int, ...],
                                                                                             list[dict[str, tuple[int, ...]]]]:
    """Shapes of the low band and of each level's detail bands, as `forward` makes them."""
    shape = list(shape)
    dims = tuple(d % len(shape) for d in dims)
    details = []
    for _ in range(levels):
        if all(shape[d] < 2 for d in dims):
            break
        level = {}
        for pattern in product("LH", repeat=len(dims)):
            key = "".join(pattern)
            if key == "L" * len(dims):
                continue
            s = list(shape)
            for letter, dim in zip(key, reversed(dims)):
                s[dim] = (shape[dim] + 1) // 2 if letter == "L" else shape[dim] // 2
            level[key] = tuple(s)
        details.append(level)
        for d in dims:
            shape[d] = (shape[d] + 1) // 2
    return tuple(shape), details


# ---------------------------------------------------------------- 2D convenience (images)
def forward_2d(x: Tensor | np.ndarray, levels: int, lifting: Lifting = LE_GALL_53) -> Subbands:
    """2D decomposition of ``[..., H, W]``."""
    return forward(x, levels, (-2, -1), lifting)


def inverse_2d(bands: Subbands, lifting: Lifting = LE_GALL_53) -> Tensor:
    return inverse(bands, lifting)


def synthesis_gains(lifting: Lifting, levels: int, dims: int = 2, size: int = 256) -> tuple[float, list[dict[str, float]]]:
    """Squared L2 norm of each band's synthesis basis (how much a unit error in it costs in the
    image), measured by inverting unit impulses; used to weight quantization steps."""
    shape = [size] * dims
    low_shape, detail_shapes = band_shapes(shape, levels, range(dims))
    zero = forward(torch.zeros(shape, dtype=torch.float64), levels, range(dims), lifting)

    def gain(level: int | None, key: str | None) -> float:
        bands = Subbands(zero.low.clone(), [{k: v.clone() for k, v in lv.items()} for lv in zero.details], zero.dims)
        target = bands.low if level is None else bands.details[level][key]
        target[tuple(s // 2 for s in target.shape)] = 1.0
        return float(inverse(bands, lifting).double().square().sum())

    return gain(None, None), [{k: gain(i, k) for k in lv} for i, lv in enumerate(detail_shapes)]
