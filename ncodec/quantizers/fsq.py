"""Finite Scalar Quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

`FSQ` projects the input to ``len(levels)`` channels, bounds channel i with a tanh to
``levels[i]`` values, rounds with a straight-through gradient and projects back: an
implicit codebook of ``prod(levels)`` codes, no codebook loss, no collapse. The index of a
code is its mixed-radix number (channel 0 least significant), so one codebook per position.

`ResidualFSQ` stacks ``num_quantizers`` FSQ levels on the residual, level i quantizing the
residual scaled up by ``levels ** i`` (as vector-quantize-pytorch's ResidualFSQ: symmetric
levels, hard clamp, the input soft-clamped first); K = num_quantizers codebooks. The levels
run without autograd and one straight-through estimator carries the gradient of their sum
to the soft-clamped input (vector-quantize-pytorch chains one per level, which scales the
gradient by the number of levels).

Numerics follow vector-quantize-pytorch (same bound, same rounding, same index order) so
both give the same codes for the same projected input; the work stays channels-first
(no transposes) and the rounding is one fused autograd function.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .base import (Quantizer, QuantizerOutput, channel_linear, codebook_metrics, compute_dtype, flatten_positions, straight_through,
                     unflatten_positions)


def _column(values: Sequence[float] | Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A ``[d, 1]`` tensor that broadcasts over ``[B, d, N]``."""
    return torch.as_tensor(values, dtype=dtype).reshape(-1, 1)


class _BoundRound(torch.autograd.Function):
    """FSQ's ``round(tanh(z + shift) * half_l - offset) / half_width``, gradient through the tanh only.

    Returns (codes, rounded levels); one saved tensor instead of autograd's chain of five.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, shift: Tensor, half_l: Tensor, offset: Tensor,
                half_width: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.tanh(z + shift)
        rounded = torch.round(t * half_l - offset)
        codes = rounded / half_width
        ctx.save_for_backward(t, half_l, half_width)
        ctx.mark_non_differentiable(rounded)
        return codes, rounded

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_rounded: Tensor) -> tuple[Tensor | None, ...]:
        t, half_l, half_width = ctx.saved_tensors
        return grad * (1 - t * t) * (half_l / half_width), None, None, None, None


class _FSQBase(Quantizer):
    """Levels, mixed-radix basis and the optional projections shared by `FSQ` and `ResidualFSQ`."""

    _levels: Tensor
    _basis: Tensor

    def __init__(self, dim: int, levels: Sequence[int], num_codebooks: int, projection_bias: bool = True):
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty list of integers >= 2, got {levels}")
        super().__init__(dim, [math.prod(levels)] * num_codebooks)
        self.levels = levels
        self.codebook_dim = len(levels)
        self.codebook_size = math.prod(levels)
        self.register_buffer("_levels", _column(levels), persistent=False)
        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("_basis", _column(basis), persistent=False)
        self.register_buffer("_basis_int", _column(basis, torch.int64), persistent=False)
        self.register_buffer("_levels_int", _column(levels, torch.int64), persistent=False)
        has_projection = dim != len(levels)
        self.project_in = nn.Linear(dim, len(levels), bias=projection_bias) if has_projection else None
        self.project_out = nn.Linear(len(levels), dim, bias=projection_bias) if has_projection else None

    def _project_in(self, x: Tensor) -> Tensor:
        """``[B, D, *pos]`` -> ``[B, d, N]`` in the compute dtype."""
        if x.ndim < 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected input [B, {self.dim}, ...], got {tuple(x.shape)}")
        z = channel_linear(self.project_in, flatten_positions(x))
        return z.to(compute_dtype(z.dtype))

    def _project_out(self, codes: Tensor, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        """``[B, d, N]`` codes -> ``[B, D, *pos]`` in ``dtype``."""
        return unflatten_positions(channel_linear(self.project_out, codes), shape).to(dtype)

    def _digits_to_index(self, digits: Tensor) -> Tensor:
        """Per-channel level indices ``[B, d, N]`` (floats, 0..L-1) -> mixed-radix index ``[B, 1, N]``."""
        return (digits * self._basis).sum(dim=1, keepdim=True).long()

    def _index_to_digits(self, index: Tensor) -> Tensor:
        """Mixed-radix index ``[B, N]`` -> per-channel level indices ``[B, d, N]`` (int64)."""
        return torch.div(index[:, None], self._basis_int, rounding_mode="floor") % self._levels_int


class FSQ(_FSQBase):
    """Finite scalar quantizer: ``dim -> len(levels)`` (learned linear, or none when equal), tanh bound, round."""

    def __init__(self, dim: int, levels: Sequence[int] = (8, 5, 5, 5), *, eps: float = 1e-3,
                 projection_bias: bool = True):
        super().__init__(dim, levels, 1, projection_bias)
        self.eps = float(eps)
        lv = self._levels
        # Even level counts: the bound is shifted by half a step so the L values are -L/2 .. L/2 - 1.
        half_l = (lv - 1) * (1 + self.eps) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        self.register_buffer("_half_l", half_l, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_l), persistent=False)
        self.register_buffer("_half_width", torch.div(lv, 2, rounding_mode="floor"), persistent=False)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, levels={self.levels}"

    def _quantize(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Projected ``[B, d, N]`` -> (codes in [-1, 1] with STE gradient, index ``[B, 1, N]``)."""
        codes, rounded = _BoundRound.apply(z, self._shift, self._half_l, self._offset, self._half_width)
        return codes, self._digits_to_index(rounded + self._half_width)

    def forward(self, x: Tensor) -> QuantizerOutput:
        codes, index = self._quantize(self._project_in(x))
        indices = unflatten_positions(index, x.shape)
        quantized = self._project_out(codes, x.shape, x.dtype)
        return QuantizerOutput(quantized, indices, torch.zeros((), device=x.device),
                               codebook_metrics(indices, self.codebook_sizes))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Indices ``[B, 1, *pos]``."""
        return unflatten_positions(self._quantize(self._project_in(x))[1], x.shape)

    def decode(self, indices: Tensor) -> Tensor:
        """``[B, 1, *pos]`` indices -> ``[B, dim, *pos]`` (float32, or the projection's dtype)."""
        self.check_indices(indices)
        flat = flatten_positions(indices.long())
        return self._project_out(self._digits_codes(flat[:, 0]), indices.shape, self._half_l.dtype)

    def _digits_codes(self, index: Tensor) -> Tensor:
        """Index ``[B, N]`` -> codes ``[B, d, N]`` (same arithmetic as the forward pass)."""
        return (self._index_to_digits(index).float() - self._half_width) / self._half_width

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Codes ``[B, d, *pos]`` (values of the implicit codebook) -> indices ``[B, 1, *pos]``."""
        digits = torch.round(flatten_positions(codes).float() * self._half_width) + self._half_width
        return unflatten_positions(self._digits_to_index(digits), codes.shape)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices ``[B, 1, *pos]`` -> codes ``[B, d, *pos]`` before the output projection."""
        self.check_indices(indices)
        flat = flatten_positions(indices.long())
        return unflatten_positions(self._digits_codes(flat[:, 0]), indices.shape)

    def codebook(self) -> Tensor:
        """The implicit codebook ``[prod(levels), d]``: row i is the code of index i."""
        index = torch.arange(self.codebook_size, device=self._basis.device)[None]
        return self._digits_codes(index)[0].t()


class ResidualFSQ(_FSQBase):
    """``num_quantizers`` FSQ levels on the residual, level i on the residual scaled by ``levels ** i``.

    ``quantizer_dropout``: in training, keep a random number (>= ``dropout_min_levels``) of
    levels for the whole batch; dropped levels get index -1 and add nothing (`decode` accepts
    -1 and also fewer than K codebooks for coarse reconstructions).
    """

    def __init__(self, dim: int, levels: Sequence[int] = (8, 5, 5, 5), num_quantizers: int = 4, *,
                 quantizer_dropout: bool = False, dropout_min_levels: int = 1, projection_bias: bool = True):
        if num_quantizers < 1 or not 1 <= dropout_min_levels <= num_quantizers:
            raise ValueError("need num_quantizers >= 1 and 1 <= dropout_min_levels <= num_quantizers")
        super().__init__(dim, levels, num_quantizers, projection_bias)
        self.num_quantizers = int(num_quantizers)
        self.quantizer_dropout = bool(quantizer_dropout) and num_quantizers > 1
        self.dropout_min_levels = int(dropout_min_levels)
        lv = torch.tensor(self.levels)
        self.register_buffer("_scales", torch.stack([lv.float() ** -i for i in range(num_quantizers)])[..., None],
                             persistent=False)  # [Q, d, 1]
        self.register_buffer("_clamp", 1 + 1 / (self._levels - 1), persistent=False)
        self.register_buffer("_step", 2.0 / (self._levels - 1), persistent=False)
        self.register_buffer("_half_span", (self._levels - 1) / 2, persistent=False)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, levels={self.levels}, num_quantizers={self.num_quantizers}"

    def _soft_clamp(self, z: Tensor) -> Tensor:
        """Squash into about [-1 - 1/(L-1), 1 + 1/(L-1)] before the residual levels."""
        return torch.tanh(z / self._clamp) * self._clamp

    def _active_levels(self, training: bool) -> int:
        """How many levels this pass uses (all, unless quantizer dropout is on in training)."""
        if not (training and self.quantizer_dropout and torch.is_grad_enabled()):
            return self.num_quantizers
        return int(torch.randint(self.dropout_min_levels, self.num_quantizers + 1, ()).item())

    @torch.no_grad()
    def _residual_levels(self, z: Tensor, active: int) -> tuple[Tensor, Tensor]:
        """Soft-clamped ``[B, d, N]`` -> (sum of the level codes ``[B, d, N]``, indices ``[B, K, N]``)."""
        residual = z
        total: Tensor | None = None
        indices = torch.full((z.shape[0], self.num_quantizers, z.shape[2]), -1, dtype=torch.long, device=z.device)
        for i in range(active):
            scale = self._scales[i]
            digits = torch.floor((residual / scale).clamp_(-1, 1).add_(1).mul_(self._half_span).add_(0.5))
            q = (self._step * digits - 1) * scale
            residual = residual - q
            total = q if total is None else total + q
            indices[:, i:i + 1] = self._digits_to_index(digits)
        assert total is not None
        return total, indices

    def _run(self, x: Tensor, active: int) -> tuple[Tensor, Tensor]:
        """(quantized ``[B, d, N]`` with STE gradient, indices ``[B, K, N]``) from the first ``active`` levels."""
        z = self._soft_clamp(self._project_in(x))
        total, indices = self._residual_levels(z.detach(), active)
        return straight_through(z, total), indices

    def forward(self, x: Tensor) -> QuantizerOutput:
        active = self._active_levels(self.training)
        codes, index = self._run(x, active)
        indices = unflatten_positions(index, x.shape)
        quantized = self._project_out(codes, x.shape, x.dtype)
        return QuantizerOutput(quantized, indices, torch.zeros((), device=x.device),
                               codebook_metrics(indices, self.codebook_sizes, dropped=active < self.num_quantizers))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Indices ``[B, num_quantizers, *pos]``."""
        return unflatten_positions(self._run(x, self.num_quantizers)[1], x.shape)

    def _level_codes(self, index: Tensor) -> Tensor:
        """Index ``[B, N]`` of one level -> unscaled codes ``[B, d, N]`` in [-1, 1]."""
        return self._step * self._index_to_digits(index).float() - 1

    def decode(self, indices: Tensor) -> Tensor:
        """``[B, K', *pos]`` (K' <= K; -1 = dropped level) -> ``[B, dim, *pos]``."""
        if indices.ndim < 2 or not 1 <= indices.shape[1] <= self.num_quantizers:
            raise ValueError(f"indices must be [B, <= {self.num_quantizers}, ...], got {tuple(indices.shape)}")
        flat = flatten_positions(indices.long())
        if flat.numel() and ((flat < -1).any() or (flat >= self.codebook_size).any()):
            raise ValueError("indices outside their codebook")
        total: Tensor | None = None
        for i in range(flat.shape[1]):
            level = flat[:, i]
            q = self._level_codes(level.clamp_min(0)) * self._scales[i]
            q = torch.where((level < 0)[:, None], 0.0, q)
            total = q if total is None else total + q
        assert total is not None
        return self._project_out(total, indices.shape, self._step.dtype)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Per-level codes ``[B, K, d, *pos]`` (each in [-1, 1], unscaled) -> indices ``[B, K, *pos]``."""
        b, k, d = codes.shape[:3]
        flat = codes.reshape(b * k, d, -1).float()
        digits = torch.round((flat + 1) / self._step)
        return self._digits_to_index(digits).reshape(b, k, *codes.shape[3:])

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices ``[B, K, *pos]`` -> per-level unscaled codes ``[B, K, d, *pos]``."""
        b, k = indices.shape[:2]
        codes = self._level_codes(indices.reshape(b * k, -1).long())
        return codes.reshape(b, k, self.codebook_dim, *indices.shape[2:])
