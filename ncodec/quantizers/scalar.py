"""Scalar quantization of hyperprior-style latents: one integer per channel and position.

Training uses the usual proxies of learned compression: additive uniform noise (Ballé et
al. 2017), rounding with a straight-through gradient, or "mixed" as in Minnen & Singh 2020
("Channel-wise autoregressive entropy models"): the decoder sees rounded values (STE) while
the rate model sees the noisy ones (``metrics["noisy"]``). The rounded integers, clamped to
``num_levels`` values, shifted to be non-negative, are the indices (K = D codebooks), so the
base class's categorical prior gives their real coded size.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .base import Quantizer, QuantizerOutput, codebook_metrics, compute_dtype, straight_through

ScalarMode = Literal["noise", "ste", "mixed"]
_MODES = ("noise", "ste", "mixed")


# ---------------------------------------------------------------- scalar quantizer
class ScalarQuantizer(Quantizer):
    """Per-channel uniform scalar quantizer with step ``step`` and ``num_levels`` (odd) values around 0.

    ``mode``: "noise" (training adds U(-1/2, 1/2) steps), "ste" (rounding, identity gradient),
    or "mixed" (rounded STE output; ``metrics["noisy"]`` holds the noisy proxy for the rate).
    """

    def __init__(self, dim: int, mode: ScalarMode = "noise", step: float = 1.0, num_levels: int | None = None):
        levels = 255 if num_levels is None else int(num_levels)
        if levels < 3 or levels % 2 == 0:
            raise ValueError(f"num_levels must be odd and >= 3 (zero is a level), got {num_levels}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not step > 0:
            raise ValueError(f"step must be positive, got {step}")
        super().__init__(dim, [levels] * int(dim))
        self.mode = mode
        self.step = float(step)
        self.num_levels = levels
        self.half = (levels - 1) // 2

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode!r}, step={self.step}, num_levels={self.num_levels}"

    def _scaled(self, x: Tensor) -> Tensor:
        """Input in units of the step, in the compute dtype."""
        if x.ndim < 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected input [B, {self.dim}, ...], got {tuple(x.shape)}")
        y = x.to(compute_dtype(x.dtype))
        return y if self.step == 1.0 else y / self.step

    def _rounded(self, y: Tensor) -> Tensor:
        """Nearest level (an integer-valued float) of the scaled input, clamped to the level range."""
        return torch.round(y).clamp_(-self.half, self.half)

    def forward(self, x: Tensor) -> QuantizerOutput:
        y = self._scaled(x)
        rounded = self._rounded(y.detach())
        indices = (rounded + self.half).long()
        metrics = codebook_metrics(indices, self.codebook_sizes)
        if self.training and self.mode == "noise":
            quantized = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            quantized = straight_through(y, rounded)
        if self.mode == "mixed":
            noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else quantized
            metrics["noisy"] = (noisy * self.step).to(x.dtype)
        quantized = (quantized * self.step).to(x.dtype)
        return QuantizerOutput(quantized, indices, torch.zeros((), device=x.device), metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Indices ``[B, D, *pos]``: rounded values + (num_levels - 1) / 2."""
        return (self._rounded(self._scaled(x)) + self.half).long()

    def decode(self, indices: Tensor) -> Tensor:
        """Dequantized float32 values ``[B, D, *pos]``."""
        self.check_indices(indices)
        return (indices - self.half).float() * self.step
