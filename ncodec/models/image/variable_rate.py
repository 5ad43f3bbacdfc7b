"""One image model for every rate: the mean-scale hyperprior with gain units (Cui et al. 2021,
"Asymmetric Gained Deep Image Compression With Continuous Rate Adaptation").

Each of `LEVELS` quality levels has a per-channel gain ``g`` applied to the latent before
quantization and an inverse gain ``g'`` applied after (asymmetric: learned separately). A
larger gain quantizes the latent more finely: more bits, less distortion. Level ``l`` is
trained at CompressAI's MSE lambda of quality ``l``; a fractional quality interpolates the
gains geometrically between its two levels (and the training lambda likewise), so one model
covers the whole range continuously (``quality`` 1.0 ... 8.0, about 0.1 ... 1.5 bpp).

The gains touch only what the encoder quantizes and what the decoder synthesizes from: the
hyperprior's coding path (``h_s`` through `ExactNetwork`, the integer tables) is the mean-scale
model's, so streams stay bit-exact across devices. The stream must carry the quality.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .hyperprior import MeanScaleHyperprior, Size, Strings, crop

__all__ = ["LAMBDAS", "LEVELS", "GainedMeanScaleHyperprior", "lambda_for"]

#: CompressAI's MSE lambdas of its qualities 1 ... 8 (lambda * 255^2 * MSE + bpp): the levels' targets.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
LEVELS = len(LAMBDAS)


def _interpolation(quality: Tensor) -> tuple[Tensor, Tensor]:
    """(lower level index, weight of the upper level) of qualities in [1, LEVELS]."""
    q = quality.clamp(1.0, float(LEVELS))
    lower = torch.clamp(q.floor().long() - 1, 0, LEVELS - 2)
    return lower, q - 1.0 - lower.to(q.dtype)


def lambda_for(quality: Tensor | float) -> Tensor:
    """The training lambda of a (fractional) quality: `LAMBDAS` interpolated geometrically."""
    q = torch.as_tensor(quality, dtype=torch.float64)
    lower, t = _interpolation(q)
    logs = torch.tensor(LAMBDAS, dtype=torch.float64).log()
    return torch.exp(logs[lower] * (1 - t) + logs[lower + 1] * t)


class GainedMeanScaleHyperprior(MeanScaleHyperprior):
    """mbt2018-mean with a gain and an inverse gain per channel and quality level (``gain``, ``inverse_gain``:
    ``[LEVELS, M]``, stored as logarithms).

    `forward`, `compress` and `decompress` take ``quality``: a float in [1, `LEVELS`], or for
    `forward` a ``[B]`` tensor (one quality per image, as variable-rate training draws them).
    """

    def __init__(self, N: int, M: int):
        super().__init__(N, M)
        # start where a fixed-rate model's latent would sit: a gain growing with sqrt(lambda)
        start = 0.5 * (torch.tensor(LAMBDAS).log() - math.log(LAMBDAS[LEVELS // 2]))
        self.log_gain = nn.Parameter(start[:, None].repeat(1, self.M))
        self.log_inverse_gain = nn.Parameter(-start[:, None].repeat(1, self.M))

    def gains(self, quality: Tensor | float, batch: int) -> tuple[Tensor, Tensor]:
        """(gain, inverse gain), each ``[batch, M, 1, 1]``, of one quality or a ``[batch]`` tensor of them."""
        q = torch.as_tensor(quality, dtype=torch.float32, device=self.log_gain.device).reshape(-1)
        if q.numel() == 1:
            q = q.expand(batch)
        if q.numel() != batch or not bool(torch.isfinite(q).all()):
            raise ValueError(f"quality must be one finite number or one per image ({batch}), got {quality!r}")
        lower, t = _interpolation(q)
        t = t[:, None]

        def mix(logs: Tensor) -> Tensor:
            return torch.exp(logs[lower] * (1 - t) + logs[lower + 1] * t)[:, :, None, None]

        return mix(self.log_gain), mix(self.log_inverse_gain)

    def forward(self, x: Tensor, quality: Tensor | float = 4.0) -> dict[str, Any]:  # type: ignore[override]
        gain, inverse = self.gains(quality, x.shape[0])
        y = self.g_a(self.pad(x))
        y_hat, likelihoods = self._latent_forward(y * gain.to(y.dtype))
        x_hat = self.g_s(self._synthesis_input(y_hat * inverse.to(y_hat.dtype)))
        return {"x_hat": crop(x_hat, x.shape[-2:]), "likelihoods": likelihoods}

    @torch.no_grad()
    def compress(self, x: Tensor, quality: float = 4.0) -> dict[str, Any]:  # type: ignore[override]
        gain, _ = self.gains(quality, x.shape[0])
        y = self.g_a(self.pad(x))
        strings, shape = self._latent_compress(y * gain.to(y.dtype))
        return {"strings": strings, "shape": shape, "size": (int(x.shape[-2]), int(x.shape[-1])),
                "quality": float(quality)}

    @torch.no_grad()
    def decompress(self, strings: Strings, shape: Size, size: Size | None = None,  # type: ignore[override]
                   quality: float = 4.0) -> dict[str, Tensor]:
        y_hat = self._latent_decompress(strings, [int(s) for s in shape])
        _, inverse = self.gains(quality, y_hat.shape[0])
        x_hat = self.g_s(self._synthesis_input(y_hat * inverse.to(y_hat.dtype)))
        return {"x_hat": crop(x_hat.clamp_(0, 1), size)}
