"""Mel-scale spectral features without torchaudio: the Slaney mel scale and filterbank, and
`log_mel`, a log-power mel spectrogram (Hann-windowed `torch.stft`).

The metrics (`ncodec.eval.metrics`), the training losses (`ncodec.train.losses`) and the
training data sets (`ncodec.train.data`) all take their mel features from here.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ------------------------------------------------------------------ mel scale (Slaney)
_F_SP = 200.0 / 3.0                       # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0                      # the scale turns logarithmic above 1 kHz
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP        # = 15 mel
_LOG_STEP = math.log(6.4) / 27.0          # log-part step: 27 mel per factor 6.4 in frequency


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox, librosa's default): linear to 1 kHz, logarithmic above."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    log_part = _MIN_LOG_MEL + torch.log(hz.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of `hz_to_mel`."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    log_part = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel.clamp_min(_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def mel_band_edges(n_mels: int, f_min: float, f_max: float) -> Tensor:
    """The ``n_mels + 2`` band edges in Hz, equally spaced in mel; band i peaks at edge i + 1."""
    lo, hi = hz_to_mel(torch.tensor(float(f_min))), hz_to_mel(torch.tensor(float(f_max)))
    return mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int = 1024, n_mels: int = 64, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """Triangular Slaney filterbank ``[n_mels, n_fft // 2 + 1]`` (float32; cached, do not modify it).

    Each triangle rises from band edge i to i + 1 and falls to i + 2, and is scaled by
    ``2 / (edge[i+2] - edge[i])`` (Slaney area normalisation), as librosa's default.
    """
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    edges = mel_band_edges(n_mels, f_min, f_max)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    return (weights * (2.0 / (upper - lower))).float()


def _mono(samples: Tensor) -> Tensor:
    """``[T]`` or ``[C, T]`` -> ``[T]`` (channel mean)."""
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(dim=0)
    raise ValueError(f"audio must be [T] or [C, T], got shape {tuple(samples.shape)}")


def log_mel(samples: Tensor, sample_rate: int, n_mels: int = 64, n_fft: int = 1024, hop: int = 256,
            f_min: float = 0.0, f_max: float | None = None, floor: float = 1e-10) -> Tensor:
    """Natural-log mel power spectrogram ``[n_mels, frames]`` of ``[T]`` or ``[C, T]`` audio.

    Channels are averaged first. Frames are centred (reflect padding), so there are
    ``T // hop + 1`` of them. The periodic Hann window is unnormalised (a unit sine's STFT
    magnitude peaks at ``n_fft / 4``). ``floor`` bounds the mel power from below, so digital
    silence maps to ``log(floor)`` rather than -inf.
    """
    x = _mono(torch.as_tensor(samples)).float()
    if x.shape[-1] <= n_fft // 2:  # reflect padding needs more than n_fft / 2 samples
        x = F.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, n_fft, hop_length=hop, window=torch.hann_window(n_fft, device=x.device),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    mel = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).to(x.device) @ power
    return mel.clamp_min(floor).log()
