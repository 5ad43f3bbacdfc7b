"""Building blocks of the learned image transforms: GDN and CompressAI-compatible conv helpers.

Module, parameter and buffer names follow CompressAI (``compressai.layers.GDN``,
``compressai.ops.NonNegativeParametrizer``, ``compressai.ops.LowerBound``) so that their
state dicts load here unchanged, and the arithmetic is done in the same order so that the
same weights give the same numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...entropy.model import lower_bound

__all__ = ["GDN", "LowerBound", "NonNegativeParametrizer", "conv", "deconv"]


class LowerBound(nn.Module):
    """``max(x, bound)`` with a gradient that still lets values below the bound move up.

    The bound is a buffer named ``bound`` (as CompressAI's), so it travels in state dicts.
    """

    bound: Tensor

    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: Tensor) -> Tensor:
        return lower_bound(x, self.bound.to(x.dtype))


class NonNegativeParametrizer(nn.Module):
    """Keeps a parameter >= ``minimum`` through ``lower_bound(p)**2 - pedestal`` (Ballé's GDN trick).

    Optimising the square root keeps gradients well scaled near zero; the pedestal
    (``reparam_offset**2``) keeps the square root away from 0, where its gradient blows up.
    """

    pedestal: Tensor

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2.0 ** -18):
        super().__init__()
        self.minimum = float(minimum)
        self.reparam_offset = float(reparam_offset)
        self.register_buffer("pedestal", torch.tensor([self.reparam_offset ** 2]))
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset ** 2) ** 0.5)

    def init(self, x: Tensor) -> Tensor:
        """The stored (reparametrised) value that represents ``x``."""
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, x: Tensor) -> Tensor:
        return self.lower_bound(x) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016): ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    ``inverse=True`` multiplies instead of dividing (IGDN, for synthesis transforms).
    ``beta`` and ``gamma`` are stored reparametrised (`NonNegativeParametrizer`), with
    CompressAI's names: ``beta``, ``gamma``, ``beta_reparam.pedestal``,
    ``beta_reparam.lower_bound.bound`` and the same under ``gamma_reparam``.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.channels = int(channels)
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=float(beta_min))
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(self.channels)))
        self.gamma_reparam = NonNegativeParametrizer()
        self.gamma = nn.Parameter(self.gamma_reparam.init(float(gamma_init) * torch.eye(self.channels)))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x ** 2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))

    def extra_repr(self) -> str:
        return f"{self.channels}, inverse={self.inverse}"


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """Strided convolution with "same" padding: the output is ``ceil(size / stride)`` (CompressAI's `conv`)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that multiplies the size by ``stride`` exactly (CompressAI's `deconv`)."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              output_padding=stride - 1, padding=kernel_size // 2)
