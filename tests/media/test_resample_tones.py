"""The resampler (`ncodec.media.resample`) on pure tones: level kept, aliasing suppressed, shapes."""
from __future__ import annotations

import math

import pytest
import torch
from tones import tone, tone_level_db

from ncodec.media.resample import resample


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
