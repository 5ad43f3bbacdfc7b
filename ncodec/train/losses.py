"""Spectral reconstruction losses for training neural audio codecs.

* `MultiScaleMelLoss`: L1 between log10 mel magnitudes at several window sizes (DAC's
  recipe: windows 32 ... 2048 samples with 5 ... 320 Slaney mel bands, hop a quarter
  window, magnitudes clamped at 1e-5), summed over the scales. With its defaults it is
  `ncodec.eval.metrics.mel_distance` made differentiable and batched, so training and
  validation report the same number.
* `MultiResolutionSTFTLoss`: spectral convergence (relative Frobenius error of the
  magnitudes) plus L1 of the log magnitudes, averaged over resolutions (Parallel WaveGAN's
  multi-resolution STFT loss; its 24 kHz resolutions by default).

Both take ``estimate, reference`` of any shape ``[..., T]`` (e.g. ``[B, C, T]``), work in
float32 whatever autocast is active, and pass gradients to either argument. The mel
filterbanks are `ncodec.transforms.mel.mel_filterbank`'s; `stft_magnitude` is the STFT both use.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..transforms.mel import mel_filterbank
from ..eval.metrics import DAC_CLAMP, DAC_MEL_BANDS, DAC_MEL_WINDOWS

__all__ = ["MultiResolutionSTFTLoss", "MultiScaleMelLoss", "PWG_FFT_SIZES", "PWG_HOP_LENGTHS", "PWG_WIN_LENGTHS",
           "stft_magnitude"]

Reduction = Literal["mean", "sum"]

#: Parallel WaveGAN's resolutions (for 24 kHz audio).
PWG_FFT_SIZES = (1024, 2048, 512)
PWG_HOP_LENGTHS = (120, 240, 50)
PWG_WIN_LENGTHS = (600, 1200, 240)


def stft_magnitude(x: Tensor, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
                   window: Tensor | None = None, floor: float = 0.0) -> Tensor:
    """``|STFT|`` ``[..., n_fft // 2 + 1, frames]`` of ``x`` ``[..., T]`` in float32.

    Periodic Hann window of ``win_length`` (default ``n_fft``) unless ``window`` is given, hop
    ``hop_length`` (default ``n_fft // 4``), centred frames with reflect padding (a signal
    too short for that is first zero-extended). ``floor > 0`` returns
    ``sqrt(max(power, floor))`` (finite log and gradients everywhere), else ``abs``.
    """
    win_length = int(win_length or n_fft)
    hop_length = int(hop_length or n_fft // 4)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).float()
    if flat.shape[-1] <= n_fft // 2:
        flat = F.pad(flat, (0, n_fft // 2 + 1 - flat.shape[-1]))
    if window is None:
        window = torch.hann_window(win_length, device=x.device)
    with torch.autocast(x.device.type, enabled=False):
        spec = torch.stft(flat, n_fft, hop_length=hop_length, win_length=win_length, window=window.float(),
                          center=True, pad_mode="reflect", return_complex=True)
        if floor > 0:
            mag = (spec.real.square() + spec.imag.square()).clamp_min(floor).sqrt()
        else:
            mag = spec.abs()
    return mag.reshape(*lead, *mag.shape[-2:])


def _reduce(terms: list[Tensor], reduction: Reduction) -> Tensor:
    total = torch.stack(terms).sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / len(terms)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _check_pair(estimate: Tensor, reference: Tensor) -> None:
    if estimate.shape != reference.shape or estimate.ndim < 1:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must have one shape")


class MultiScaleMelLoss(nn.Module):
    """Sum (or mean) over scales of L1 between ``log10(clamp(mel, clamp) ** power)`` of estimate and reference."""

    def __init__(self, sample_rate: int, window_lengths: Sequence[int] = DAC_MEL_WINDOWS,
                 n_mels: Sequence[int] = DAC_MEL_BANDS, clamp: float = DAC_CLAMP, power: float = 1.0,
                 log_weight: float = 1.0, mag_weight: float = 0.0, f_min: float = 0.0, f_max: float | None = None,
                 reduction: Reduction = "sum"):
        super().__init__()
        if len(window_lengths) != len(n_mels) or not window_lengths:
            raise ValueError("window_lengths and n_mels must be non-empty and of equal length")
        self.sample_rate = int(sample_rate)
        self.window_lengths = [int(w) for w in window_lengths]
        self.n_mels = [int(m) for m in n_mels]
        self.clamp, self.power = float(clamp), float(power)
        self.log_weight, self.mag_weight = float(log_weight), float(mag_weight)
        self.reduction: Reduction = reduction
        for i, (window, bands) in enumerate(zip(self.window_lengths, self.n_mels)):
            fb = mel_filterbank(self.sample_rate, window, bands, f_min, f_max).clone()  # the cached one stays intact
            self.register_buffer(f"filterbank{i}", fb, persistent=False)
            self.register_buffer(f"window{i}", torch.hann_window(window), persistent=False)

    def mel(self, x: Tensor, scale: int) -> Tensor:
        """Mel magnitudes ``[..., n_mels, frames]`` of ``x`` ``[..., T]`` at scale ``scale``."""
        window = self.window_lengths[scale]
        mag = stft_magnitude(x, window, window // 4, window=getattr(self, f"window{scale}"))
        return getattr(self, f"filterbank{scale}") @ mag

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        """The loss, a float32 scalar."""
        _check_pair(estimate, reference)
        terms = []
        with torch.autocast(estimate.device.type, enabled=False):
            for scale in range(len(self.window_lengths)):
                mel_e, mel_r = self.mel(estimate, scale), self.mel(reference, scale)
                term = estimate.new_zeros((), dtype=torch.float32)
                if self.log_weight:
                    log_e = mel_e.clamp_min(self.clamp).pow(self.power).log10()
                    log_r = mel_r.clamp_min(self.clamp).pow(self.power).log10()
                    term = term + self.log_weight * (log_e - log_r).abs().mean()
                if self.mag_weight:
                    term = term + self.mag_weight * (mel_e - mel_r).abs().mean()
                terms.append(term)
        return _reduce(terms, self.reduction)


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of spectral convergence ``sc_weight`` and log-magnitude L1 ``mag_weight``."""

    def __init__(self, fft_sizes: Sequence[int] = PWG_FFT_SIZES, hop_lengths: Sequence[int] = PWG_HOP_LENGTHS,
                 win_lengths: Sequence[int] = PWG_WIN_LENGTHS, sc_weight: float = 1.0, mag_weight: float = 1.0,
                 floor: float = 1e-7):
        super().__init__()
        if not fft_sizes or not len(fft_sizes) == len(hop_lengths) == len(win_lengths):
            raise ValueError("fft_sizes, hop_lengths and win_lengths must be non-empty and of equal length")
        if any(w > n for w, n in zip(win_lengths, fft_sizes)):
            raise ValueError("a window cannot be longer than its FFT")
        self.fft_sizes = [int(n) for n in fft_sizes]
        self.hop_lengths = [int(h) for h in hop_lengths]
        self.win_lengths = [int(w) for w in win_lengths]
        self.sc_weight, self.mag_weight, self.floor = float(sc_weight), float(mag_weight), float(floor)
        for i, w in enumerate(self.win_lengths):
            self.register_buffer(f"window{i}", torch.hann_window(w), persistent=False)

    def terms(self, estimate: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        """(spectral convergence, log-magnitude L1), each averaged over the resolutions."""
        _check_pair(estimate, reference)
        sc, mag = [], []
        with torch.autocast(estimate.device.type, enabled=False):
            for i, (n_fft, hop, win) in enumerate(zip(self.fft_sizes, self.hop_lengths, self.win_lengths)):
                window = getattr(self, f"window{i}")
                m_e = stft_magnitude(estimate, n_fft, hop, win, window, self.floor)
                m_r = stft_magnitude(reference, n_fft, hop, win, window, self.floor)
                sc.append(torch.linalg.vector_norm(m_r - m_e) / torch.linalg.vector_norm(m_r).clamp_min(self.floor))
                mag.append((m_r.log() - m_e.log()).abs().mean())
        return torch.stack(sc).mean(), torch.stack(mag).mean()

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        """The loss, a float32 scalar."""
        sc, mag = self.terms(estimate, reference)
        return self.sc_weight * sc + self.mag_weight * mag
