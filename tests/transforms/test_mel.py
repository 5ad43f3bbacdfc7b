"""Mel scale, filterbank and log-mel (`ncodec.transforms.mel`), on tones and the bundled speech."""
from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch
from tones import tone

from ncodec.transforms.mel import hz_to_mel, log_mel, mel_band_edges, mel_filterbank, mel_to_hz


def test_mel_scale_round_trip_and_slaney_points() -> None:
    hz = torch.tensor([0.0, 500.0, 1000.0, 4000.0, 12000.0])
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz.double(), rtol=1e-12, atol=1e-9)
    assert hz_to_mel(torch.tensor(1000.0)).item() == pytest.approx(15.0)  # Slaney: linear below 1 kHz
    assert hz_to_mel(torch.tensor(6400.0)).item() == pytest.approx(42.0)  # 27 mel per factor 6.4


def test_mel_filterbank_properties() -> None:
    sr, n_fft, n_mels = 24000, 1024, 64
    fb = mel_filterbank(sr, n_fft, n_mels)
    assert fb.shape == (n_mels, n_fft // 2 + 1)
    assert (fb >= 0).all()
    assert (fb.sum(dim=1) > 0).all(), "no empty bands"
    centres = mel_band_edges(n_mels, 0.0, sr / 2)[1:-1]
    assert (centres[1:] > centres[:-1]).all()
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()
    # Slaney area normalisation: each triangle integrates (over Hz) to about 1
    area = fb.double().sum(dim=1) * (sr / n_fft)
    assert torch.allclose(area[8:], torch.ones_like(area[8:]), atol=0.05)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 9000.0])
def test_pure_tone_peaks_in_its_band(freq: float) -> None:
    sr = 24000
    mel = log_mel(tone(freq, sr).float(), sr)
    centres = mel_band_edges(64, 0.0, sr / 2)[1:-1]
    expected = int((centres - freq).abs().argmin())
    assert abs(int(mel.mean(dim=1).argmax()) - expected) <= 1


def test_log_mel_shapes_on_bundled_speech(samples) -> None:
    data, sr = sf.read(samples / "speech.flac", dtype="float32", always_2d=True)
    mono = torch.from_numpy(data[:, 0])
    mel = log_mel(mono, sr)
    assert mel.shape == (64, mono.shape[0] // 256 + 1)
    assert torch.isfinite(mel).all()
    stereo = torch.stack([mono, mono])  # [C, T] is mixed down to the same spectrogram
    assert torch.allclose(log_mel(stereo, sr), mel, atol=1e-4)
    mel80 = log_mel(mono, sr, n_mels=80, n_fft=512, hop=128, f_min=50.0, f_max=8000.0)
    assert mel80.shape == (80, mono.shape[0] // 128 + 1)
    assert mel.min() >= math.log(1e-10) - 1e-4  # the floor holds
