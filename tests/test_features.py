"""Feature extraction: mel filterbank, log-mel, image patches on the bundled samples; resampler on tones."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from ncodec.transforms.mel import hz_to_mel, log_mel, mel_band_edges, mel_filterbank, mel_to_hz
from ncodec.train.data import image_from_patches, image_patch_set, image_patches, mel_frames
from ncodec.media.resample import resample


def tone(freq: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return amplitude * torch.sin(2 * math.pi * freq * t)


def tone_level_db(y: torch.Tensor, freq: float, sample_rate: int) -> float:
    """Amplitude in dB of the ``freq`` component of the middle half of ``y`` (least-squares sine fit)."""
    n = y.shape[-1]
    mid = slice(n // 4, 3 * n // 4)
    t = torch.arange(n, dtype=torch.float64)[mid] / sample_rate
    basis = torch.stack([torch.sin(2 * math.pi * freq * t), torch.cos(2 * math.pi * freq * t)], dim=1)
    coef = torch.linalg.lstsq(basis, y[mid].double()[:, None]).solution
    return 20 * math.log10(float(coef.norm()) + 1e-300)


# ------------------------------------------------------------------ mel
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


# ------------------------------------------------------------------ image patches
def test_patches_round_trip_bundled_image(samples) -> None:
    with Image.open(samples / "garden.png") as im:
        pixels = np.asarray(im.convert("RGB"))
    h, w, _ = pixels.shape
    patches = image_patches(pixels, 8)
    assert patches.shape == ((h // 8) * (w // 8), 192)
    assert patches.dtype == torch.float32 and 0.0 <= patches.min() and patches.max() <= 1.0
    back = image_from_patches(patches, h, w, 8, 3)
    assert np.array_equal(back.numpy(), pixels[: h // 8 * 8, : w // 8 * 8])
    # raster order, (row, column, channel) inside a patch
    assert torch.equal(patches[1].reshape(8, 8, 3), torch.from_numpy(pixels[:8, 8:16].copy()).float() / 255)


def test_patches_drop_partial_edges() -> None:
    pixels = np.arange(10 * 13 * 3, dtype=np.uint8).reshape(10, 13, 3)
    assert image_patches(pixels, 4).shape == (2 * 3, 48)
    with pytest.raises(ValueError):
        image_patches(pixels.astype(np.float32), 4)


# ------------------------------------------------------------------ resampler
@pytest.mark.parametrize("orig_sr", [44100, 48000])
def test_resample_keeps_1khz_tone(orig_sr: int) -> None:
    y = resample(tone(1000.0, orig_sr), orig_sr, 24000)
    assert y.shape == (24000,)
    assert abs(tone_level_db(y, 1000.0, 24000) - 20 * math.log10(0.5)) < 0.1
    # the tone is all there is: the residual after the fit is tiny
    n = y.shape[0]
    t = torch.arange(n, dtype=torch.float64) / 24000
    ref = 0.5 * torch.sin(2 * math.pi * 1000.0 * t)
    mid = slice(n // 4, 3 * n // 4)
    assert (y[mid] - ref[mid]).abs().max() < 1e-3


def test_resample_suppresses_aliasing() -> None:
    y = resample(tone(20000.0, 48000), 48000, 24000)
    # 20 kHz folds to 4 kHz at 24 kHz: it must be > 60 dB under the input level
    assert tone_level_db(y, 4000.0, 24000) - 20 * math.log10(0.5) < -60


def test_resample_shapes_and_dtypes() -> None:
    x = torch.randn(2, 3, 4410)
    y = resample(x, 44100, 24000)
    assert y.shape == (2, 3, 2400) and y.dtype == torch.float32
    assert resample(torch.randn(1000, dtype=torch.float64), 16000, 24000).shape == (1500,)
    assert torch.equal(resample(x, 24000, 24000), x)
    dc = resample(torch.ones(4800, dtype=torch.float64), 48000, 24000)
    assert torch.allclose(dc[200:-200], torch.ones_like(dc[200:-200]), atol=1e-6)


# ------------------------------------------------------------------ data sets
def test_data_set_builders(shared_data) -> None:
    frames = mel_frames(shared_data, sets=("speech/dev",), seconds_per_file=1.0)
    assert frames.ndim == 2 and frames.shape[1] == 64 and frames.shape[0] > 6 * 90
    assert torch.isfinite(frames).all()
    patches = image_patch_set(shared_data, "dev", patches_per_image=16)
    assert patches.shape[1] == 192 and patches.shape[0] == 16 * len(list((shared_data / "images/dev").iterdir()))
    assert torch.equal(patches, image_patch_set(shared_data, "dev", patches_per_image=16))
