"""Coordinate-network building blocks: SIREN and Fourier-feature MLPs (Sitzmann 2020, Tancik 2020).

Both map coordinates ``[..., in_features]`` (usually in [-1, 1]) to signal values
``[..., out_features]``. SIREN uses sine activations with its special initialisation
(first layer U(-1/n, 1/n), later layers U(-sqrt(6/n)/w0, sqrt(6/n)/w0)) so that activations
stay well distributed at depth; a Fourier-feature MLP maps coordinates through fixed random
sinusoids ``[sin(2 pi B v), cos(2 pi B v)]`` before a ReLU MLP, which lets it fit high frequencies.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def coordinate_grid(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Pixel-centre coordinates ``[H * W, 2]`` (y, x) in [-1, 1], row-major: the usual INR input."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 - 1
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


class SineLayer(nn.Module):
    """``sin(w0 * (W x + b))`` with SIREN's initialisation (``first`` for the input layer)."""

    def __init__(self, in_features: int, out_features: int, omega0: float = 30.0, first: bool = False):
        super().__init__()
        self.omega0 = float(omega0)
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / self.omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega0 * self.linear(x))


class Siren(nn.Module):
    """A SIREN: ``layers`` sine layers of width ``hidden``, then a linear output layer."""

    def __init__(self, in_features: int = 2, hidden: int = 64, out_features: int = 3, layers: int = 3,
                 omega0: float = 30.0, hidden_omega0: float = 30.0):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ValueError("a SIREN needs at least one hidden layer of width >= 1")
        blocks: list[nn.Module] = [SineLayer(in_features, hidden, omega0, first=True)]
        blocks += [SineLayer(hidden, hidden, hidden_omega0) for _ in range(layers - 1)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, out_features)
        bound = math.sqrt(6.0 / hidden) / hidden_omega0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: Tensor) -> Tensor:
        return self.head(self.body(coords))

    def macs_per_sample(self) -> int:
        """Multiply-accumulates per evaluated coordinate (sines not counted)."""
        return sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))


class FourierFeatures(nn.Module):
    """Fixed random Fourier features ``[sin(2 pi B v), cos(2 pi B v)]`` with ``B ~ N(0, sigma^2)``."""

    matrix: Tensor

    def __init__(self, in_features: int = 2, num_frequencies: int = 64, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", torch.randn(in_features, num_frequencies, generator=gen) * sigma)

    @property
    def out_features(self) -> int:
        return 2 * self.matrix.shape[1]

    def forward(self, coords: Tensor) -> Tensor:
        proj = 2 * math.pi * coords @ self.matrix
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class FourierMLP(nn.Module):
    """Fourier features followed by a ReLU MLP with ``layers`` hidden layers of width ``hidden``."""

    def __init__(self, in_features: int = 2, hidden: int = 64, out_features: int = 3, layers: int = 3,
                 num_frequencies: int = 64, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ValueError("a Fourier MLP needs at least one hidden layer of width >= 1")
        self.features = FourierFeatures(in_features, num_frequencies, sigma, seed)
        widths = [self.features.out_features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, out_features)

    def forward(self, coords: Tensor) -> Tensor:
        return self.head(self.body(self.features(coords)))

    def macs_per_sample(self) -> int:
        """Multiply-accumulates per evaluated coordinate (the feature projection included)."""
        linear = sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))
        return linear + self.features.matrix.numel()
