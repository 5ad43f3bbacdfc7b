"""Multi-scale STFT discriminator (EnCodec's MS-STFTD) and the hinge GAN losses that go with it.

Each scale takes the complex STFT of the waveform (Hann window, no centring, divided by the
window's L2 norm when ``normalized``), lays the real and imaginary parts of every audio
channel out as ``2 * channels`` image channels over (time frames, frequency bins), and runs
a stack of weight-normalised 2-d convolutions with LeakyReLU(0.2): one (3, 9) convolution,
one per time dilation (1, 2, 4) that also halves the frequency axis, a (3, 3) convolution,
then a (3, 3) convolution to one logit map. The activations after every convolution but the
last are the feature maps of the feature-matching loss. EnCodec uses three scales, FFT
sizes 1024 / 2048 / 512 with a hop of a quarter window.

Losses (Défossez et al. 2022, eqs. 2-4), averaged over scales:
``discriminator_hinge_loss = mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))``,
``generator_hinge_loss = mean(relu(1 - D(x_hat)))``, and
``feature_matching_loss = mean over scales and layers of |f(x) - f(x_hat)|_1 / mean |f(x)|``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

__all__ = ["DISCRIMINATOR_NORMS", "MultiScaleSTFTDiscriminator", "STFTDiscriminator", "discriminator_hinge_loss",
           "feature_matching_loss", "generator_hinge_loss"]

DISCRIMINATOR_NORMS = ("weight_norm", "spectral_norm", "none")
FeatureMaps = list[Tensor]


def _conv2d(in_channels: int, out_channels: int, kernel_size: tuple[int, int], norm: str,
            stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> nn.Module:
    """A 'same'-padded 2-d convolution (odd kernels) with the chosen weight normalisation."""
    padding = tuple((k - 1) * d // 2 for k, d in zip(kernel_size, dilation))
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, padding=padding)
    if norm == "weight_norm":
        return weight_norm(conv)
    if norm == "spectral_norm":
        return spectral_norm(conv)
    return conv


class STFTDiscriminator(nn.Module):
    """One scale: waveform ``[B, C, T]`` -> (logits ``[B, 1, frames', bins']``, feature maps)."""

    def __init__(self, filters: int = 32, in_channels: int = 1, n_fft: int = 1024, hop_length: int | None = None,
                 win_length: int | None = None, max_filters: int = 1024, filters_scale: int = 1,
                 kernel_size: tuple[int, int] = (3, 9), dilations: Sequence[int] = (1, 2, 4),
                 stride: tuple[int, int] = (1, 2), normalized: bool = True, norm: str = "weight_norm",
                 negative_slope: float = 0.2):
        super().__init__()
        if norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"norm must be one of {DISCRIMINATOR_NORMS}, got {norm!r}")
        if len(kernel_size) != 2 or len(stride) != 2 or any(k % 2 == 0 for k in kernel_size):
            raise ValueError("kernel_size must be two odd numbers and stride two numbers")
        self.in_channels, self.n_fft = int(in_channels), int(n_fft)
        self.win_length = int(win_length or n_fft)
        self.hop_length = int(hop_length or self.n_fft // 4)
        if self.win_length > self.n_fft:
            raise ValueError("the window cannot be longer than the FFT")
        self.normalized = bool(normalized)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.activation = nn.LeakyReLU(negative_slope)
        small = (kernel_size[0], kernel_size[0])
        width = min(filters_scale * filters, max_filters)
        convs: list[nn.Module] = [_conv2d(2 * self.in_channels, width, kernel_size, norm)]
        for i, dilation in enumerate(dilations):
            out = min(filters_scale ** (i + 1) * filters, max_filters)
            convs.append(_conv2d(width, out, kernel_size, norm, stride=stride, dilation=(int(dilation), 1)))
            width = out
        out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        convs.append(_conv2d(width, out, small, norm))
        self.convs = nn.ModuleList(convs)
        self.conv_post = _conv2d(out, 1, small, norm)

    def spectrogram(self, x: Tensor) -> Tensor:
        """Real and imaginary STFT parts ``[B, 2 * C, frames, bins]`` (float32)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a waveform [B, {self.in_channels}, T], got {tuple(x.shape)}")
        b, c, t = x.shape
        flat = x.reshape(b * c, t).float()
        if t < self.n_fft:  # at least one full frame
            flat = F.pad(flat, (0, self.n_fft - t))
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(flat, self.n_fft, self.hop_length, self.win_length, self.window.float(), center=False,
                              return_complex=True)
            if self.normalized:
                spec = spec / self.window.float().square().sum().sqrt()
        spec = spec.reshape(b, c, *spec.shape[-2:])                  # [B, C, bins, frames]
        return torch.cat([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2C, frames, bins]

    def forward(self, x: Tensor) -> tuple[Tensor, FeatureMaps]:
        z = self.spectrogram(x)
        fmaps: FeatureMaps = []
        for conv in self.convs:
            z = self.activation(conv(z))
            fmaps.append(z)
        return self.conv_post(z), fmaps


class MultiScaleSTFTDiscriminator(nn.Module):
    """`STFTDiscriminator` at several resolutions: waveform -> (logits per scale, feature maps per scale)."""

    def __init__(self, filters: int = 32, in_channels: int = 1, n_ffts: Sequence[int] = (1024, 2048, 512),
                 hop_lengths: Sequence[int] | None = None, win_lengths: Sequence[int] | None = None,
                 **options: object):
        super().__init__()
        hops = list(hop_lengths) if hop_lengths is not None else [n // 4 for n in n_ffts]
        wins = list(win_lengths) if win_lengths is not None else list(n_ffts)
        if not n_ffts or not len(n_ffts) == len(hops) == len(wins):
            raise ValueError("n_ffts, hop_lengths and win_lengths must be non-empty and of equal length")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(filters, in_channels, int(n), int(h), int(w), **options)  # type: ignore[arg-type]
            for n, h, w in zip(n_ffts, hops, wins))

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[FeatureMaps]]:
        logits, fmaps = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps


def discriminator_hinge_loss(real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor]) -> Tensor:
    """Mean over scales of ``mean(relu(1 - real)) + mean(relu(1 + fake))``."""
    if not real_logits or len(real_logits) != len(fake_logits):
        raise ValueError("one real and one fake logit map per scale")
    terms = [F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def generator_hinge_loss(fake_logits: Sequence[Tensor]) -> Tensor:
    """Mean over scales of ``mean(relu(1 - fake))``."""
    if not fake_logits:
        raise ValueError("no logits")
    return torch.stack([F.relu(1 - f.float()).mean() for f in fake_logits]).mean()


def feature_matching_loss(real_fmaps: Sequence[FeatureMaps], fake_fmaps: Sequence[FeatureMaps],
                          eps: float = 1e-8) -> Tensor:
    """Mean over scales and layers of ``mean|real - fake| / mean|real|`` (real maps are detached)."""
    if not real_fmaps or len(real_fmaps) != len(fake_fmaps):
        raise ValueError("one list of real and one of fake feature maps per scale")
    terms = []
    for real_scale, fake_scale in zip(real_fmaps, fake_fmaps):
        if len(real_scale) != len(fake_scale):
            raise ValueError("real and fake feature maps differ in number")
        for real, fake in zip(real_scale, fake_scale):
            real = real.detach().float()
            terms.append((real - fake.float()).abs().mean() / real.abs().mean().clamp_min(eps))
    return torch.stack(terms).mean()
