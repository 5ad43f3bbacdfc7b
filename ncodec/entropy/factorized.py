"""The factorized entropy bottleneck of Ballé et al. 2018 ("Variational image compression with a
scale hyperprior"): one learned, non-parametric density per channel.

Each channel's CDF is a small monotone MLP of the value (softplus'd matrices, tanh-gated
residual factors), so any unimodal or multimodal shape can be fitted. Learnable
``quantiles`` track the median and the ``tail_mass`` tails through the auxiliary `loss`;
`update` turns the density into integer tables (medians as offsets) kept as buffers, so
that encoder and decoder code with the very same integers whatever device built them.
Parameter and buffer names follow CompressAI's ``EntropyBottleneck``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cdf import DEFAULT_PRECISION, CdfTables
from .model import MAX_SUPPORT, QuantizeMode, TableEntropyModel, quantize_values


class EntropyBottleneck(TableEntropyModel):
    """Per-channel learned density for latents without side information (e.g. a hyperprior's z)."""

    target: Tensor

    def __init__(self, channels: int, *, tail_mass: float = 1e-9, init_scale: float = 10.0,
                 filters: Sequence[int] = (3, 3, 3, 3), likelihood_bound: float = 1e-9,
                 precision: int = DEFAULT_PRECISION):
        super().__init__(likelihood_bound, precision)
        if not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be in (0, 1), got {tail_mass}")
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)
        self.tail_mass = float(tail_mass)

        widths = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        for i in range(len(self.filters) + 1):
            # softplus(init) = 1 / (scale * fan_out): the initial density is ~ uniform over ±init_scale.
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.register_parameter(f"_matrix{i}", nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.register_parameter(f"_bias{i}", nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(self.filters):
                self.register_parameter(f"_factor{i}", nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))

        self.quantiles = nn.Parameter(torch.tensor([-self.init_scale, 0.0, self.init_scale]).repeat(channels, 1, 1))
        logit = math.log(2.0 / self.tail_mass - 1.0)
        self.register_buffer("target", torch.tensor([-logit, 0.0, logit]))

    # ---------------------------------------------------------------- density
    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        """logit(CDF) of each channel at ``inputs`` ``[C, 1, N]``, in the inputs' dtype."""
        logits = inputs
        for i in range(len(self.filters) + 1):
            matrix, bias = getattr(self, f"_matrix{i}"), getattr(self, f"_bias{i}")
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix).to(inputs.dtype), logits) + bias.to(inputs.dtype)
            if i < len(self.filters):
                factor = getattr(self, f"_factor{i}")
                if stop_gradient:
                    factor = factor.detach()
                logits = logits + torch.tanh(factor).to(inputs.dtype) * torch.tanh(logits)
        return logits

    def _likelihood(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(P(bin), logit CDF at the lower edge, at the upper edge) for the unit bins around ``inputs``."""
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=False)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=False)
        # Difference taken on the side of the median where both sigmoids are small (accurate tails).
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)), lower, upper

    def _medians(self) -> Tensor:
        """Per-channel medians ``[C, 1, 1]`` (the rounding offsets)."""
        return self.quantiles[:, :, 1:2]

    def loss(self) -> Tensor:
        """Auxiliary loss that moves ``quantiles`` to the median and the tail_mass/2 tails of the density."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    # ---------------------------------------------------------------- training
    def forward(self, x: Tensor, training: bool | None = None,
                quantize: QuantizeMode = "noise") -> tuple[Tensor, Tensor]:
        """(quantised x, likelihoods) for ``x`` ``[B, C, ...]``: noisy/STE in training, rounded around medians in eval."""
        moved = x.transpose(0, 1)  # [C, B, ...]: the density is per channel
        values = moved.reshape(self.channels, 1, -1)
        values_hat = quantize_values(values, self._training(training), quantize, self._medians())
        likelihood = self._bound(self._likelihood(values_hat)[0])
        return (values_hat.reshape(moved.shape).transpose(0, 1),
                likelihood.reshape(moved.shape).transpose(0, 1))

    # ------------------------------------------------------------------ coding
    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Tabulate each channel's density (float64) between its quantiles, medians as offsets."""
        if self.has_tables and not force:
            return False
        q = self.quantiles.detach().double()[:, 0, :]
        medians = q[:, 1]
        minima = torch.ceil(medians - q[:, 0]).clamp(0, MAX_SUPPORT // 2)
        maxima = torch.ceil(q[:, 2] - medians).clamp(0, MAX_SUPPORT // 2)
        sizes = (minima + maxima + 1).long()
        samples = torch.arange(int(sizes.max()), dtype=torch.float64, device=q.device)
        samples = (samples[None, :] + (medians - minima)[:, None])[:, None, :]
        pmf, lower, upper = self._likelihood(samples)
        last = (sizes - 1)[:, None]
        escape = torch.sigmoid(lower[:, 0, 0]) + torch.sigmoid(-upper[:, 0, :].gather(1, last)[:, 0])
        self._store_tables(CdfTables.from_pmf(pmf[:, 0, :].cpu().numpy(), offsets=(-minima).long().cpu().numpy(),
                                              sizes=sizes.cpu().numpy(), escape_mass=escape.cpu().numpy(),
                                              precision=self.precision))
        return True

    def _channel_view(self, t: Tensor, ndim: int) -> Tensor:
        """``t`` of ``[C]`` entries viewed as ``[1, C, 1, ...]`` to broadcast over ``ndim`` dims."""
        return t.reshape(1, self.channels, *([1] * (ndim - 2)))

    def _indexes(self, shape: Sequence[int]) -> Tensor:
        """Table index (= channel) of every element of a ``[B, C, ...]`` tensor."""
        return self._channel_view(torch.arange(self.channels, dtype=torch.int32), len(shape)).expand(*shape)

    def compress(self, x: Tensor) -> list[bytes]:
        """One stream per batch element of ``round(x - medians)``, channel c coded with table c."""
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected x of shape [B, {self.channels}, ...], got {tuple(x.shape)}")
        medians = self._channel_view(self._medians().detach(), x.ndim)
        return self._encode(torch.round(x - medians), self._indexes(x.shape))

    def decompress(self, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
        """The eval-mode x_hat ``[len(strings), C, *size]`` from ``compress``'s streams, on the module's device."""
        shape = (len(strings), self.channels, *size)
        symbols = self._decode(strings, self._indexes(shape))
        medians = self._channel_view(self._medians().detach(), len(shape))
        return symbols.to(device=medians.device, dtype=medians.dtype) + medians
